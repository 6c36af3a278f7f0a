"""The one place a conversation becomes tokens.

Template (OpenChat): BOS (when the model type has one), then for every turn
`role_prefix + content + <|end_of_turn|>`. Prefix and content are tokenized as
separate text segments, special tokens are inserted by id, and the supervise
mask is true exactly on assistant content and its EOT token:

    items = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]
    <s> | Human: | Hi | <|end_of_turn|> | Assistant: | Hello! | <|end_of_turn|>
     0      0      0          0              0           1            1

With `add_generation_prompt=True` the assistant prefix is appended open, which
is the prompt the server and evaluation generate from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ochat.config.model_config import ModelConfig
from ochat.config.tokenizer import ChatTokenizer

ROLES = ("system", "human", "gpt")


@dataclass
class RenderedTurn:
    """One turn's tokens; `supervised` turns carry mask=true on content and EOT."""

    role: str
    prefix_ids: list[int]
    content_ids: list[int]
    closed: bool  # False for the open generation prompt (no content, no EOT)

    def token_ids(self, eot_token_id: int) -> list[int]:
        return self.prefix_ids + self.content_ids + ([eot_token_id] if self.closed else [])

    def supervise_mask(self, ai_role: str) -> list[bool]:
        supervised = self.role == ai_role and self.closed
        return [False] * len(self.prefix_ids) + [supervised] * (len(self.content_ids) + int(self.closed))


def _with_system_prompt(config: ModelConfig, items: Sequence[dict]) -> list[dict]:
    items = list(items)
    has_system = any(item["from"] == "system" for item in items)
    if config.system_prompt and not has_system:
        items.insert(0, {"from": "system", "value": config.system_prompt})
    return items


def _validate(items: Sequence[dict]) -> None:
    for index, item in enumerate(items):
        role = item.get("from") if isinstance(item, dict) else None
        if role not in ROLES:
            raise ValueError(f"turn {index}: role {role!r} is not one of {ROLES}")
        if not isinstance(item.get("value"), str):
            raise ValueError(f"turn {index}: value must be a string")


def render_turns_batch(
    config: ModelConfig,
    tokenizer: ChatTokenizer,
    conversations: Sequence[Sequence[dict]],
    add_generation_prompt: bool = False,
) -> list[list[RenderedTurn]]:
    """Tokenize many conversations in one batched call; each as a list of turns (BOS not included)."""
    conversations = [_with_system_prompt(config, items) for items in conversations]
    texts: list[str] = []
    for items in conversations:
        _validate(items)
        for item in items:
            texts.append(config.role_prefix[item["from"]])
            texts.append(item["value"])
        if add_generation_prompt:
            texts.append(config.role_prefix[config.ai_role])
    encoded = iter(tokenizer.encode_segments(texts))

    rendered = []
    for items in conversations:
        turns = [RenderedTurn(item["from"], next(encoded), next(encoded), closed=True) for item in items]
        if add_generation_prompt:
            turns.append(RenderedTurn(config.ai_role, next(encoded), [], closed=False))
        rendered.append(turns)
    return rendered


def join_turns(
    config: ModelConfig, tokenizer: ChatTokenizer, turns: Sequence[RenderedTurn]
) -> tuple[list[int], list[bool]]:
    """BOS plus the turns, as `(token_ids, supervise_mask)`."""
    bos_id: Optional[int] = tokenizer.bos_token_id
    token_ids: list[int] = [] if bos_id is None else [bos_id]
    supervise_mask: list[bool] = [False] * len(token_ids)
    eot_token_id = tokenizer.eot_token_id
    for turn in turns:
        token_ids += turn.token_ids(eot_token_id)
        supervise_mask += turn.supervise_mask(config.ai_role)
    return token_ids, supervise_mask


def render_conversations(
    config: ModelConfig,
    tokenizer: ChatTokenizer,
    conversations: Sequence[Sequence[dict]],
    add_generation_prompt: bool = False,
) -> list[tuple[list[int], list[bool]]]:
    """Render many conversations at once (the fast path for data conversion)."""
    return [
        join_turns(config, tokenizer, turns)
        for turns in render_turns_batch(config, tokenizer, conversations, add_generation_prompt)
    ]


def render_conversation(
    config: ModelConfig,
    tokenizer: ChatTokenizer,
    items: Sequence[dict],
    add_generation_prompt: bool = False,
) -> tuple[list[int], list[bool]]:
    """Render one conversation into `(token_ids, supervise_mask)`."""
    return render_conversations(config, tokenizer, [items], add_generation_prompt)[0]


def chat_template_jinja(config: ModelConfig) -> str:
    """The same template as a Jinja chat template, for tools that only read tokenizer_config.json.

    It renders the same text; exact ids come from `render_conversation`, which
    tokenizes prefix and content as separate segments.
    """
    prefixes = {"system": config.role_prefix["system"], "user": config.role_prefix["human"],
                "assistant": config.role_prefix[config.ai_role]}
    bos = "{{ bos_token }}" if config.bos_token else ""
    return (
        bos
        + "{% for message in messages %}"
        + "".join(
            f"{{% {'if' if i == 0 else 'elif'} message['role'] == '{role}' %}}{prefix}"
            for i, (role, prefix) in enumerate(prefixes.items())
        )
        + "{% endif %}{{ message['content'] }}" + config.eot_token + "{% endfor %}"
        + "{% if add_generation_prompt %}" + prefixes["assistant"] + "{% endif %}"
    )
