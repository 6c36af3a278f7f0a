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

Conditioned (C-RLFT) types put the conversation's data-source condition before
each role, as one prefix segment: `GPT4 User:` | content | EOT, `GPT4 Assistant:` ...
(just `User:` when the condition is empty). A conversation renders under its
own condition in training and under the type's inference condition when none
is given. An assistant item may carry a `weight` (its source's reward, 1.0 when
absent): it lands on that turn's supervised tokens, and a weight of 0 leaves
the turn unsupervised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

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
    weight: float = 1.0  # loss weight of an assistant turn's tokens (C-RLFT reward); 0 leaves it unsupervised

    def token_ids(self, eot_token_id: int) -> list[int]:
        return self.prefix_ids + self.content_ids + ([eot_token_id] if self.closed else [])

    def supervise_mask(self, ai_role: str) -> list[bool]:
        supervised = self.role == ai_role and self.closed and self.weight > 0
        return [False] * len(self.prefix_ids) + [supervised] * (len(self.content_ids) + int(self.closed))

    def token_weights(self, ai_role: str) -> list[float]:
        """The turn's weight on exactly its supervised tokens, 0.0 elsewhere."""
        return [self.weight if supervised else 0.0 for supervised in self.supervise_mask(ai_role)]


class TokenizedSample(tuple):
    """`(token_ids, supervise_mask)` as every stage unpacks it, with per-token loss `weights` alongside.

    It stays a pair so code written for unweighted samples keeps working; the
    weights (nonzero exactly where the mask is true) ride along as an attribute.
    """

    weights: list[float]

    def __new__(cls, token_ids: list[int], supervise_mask: list[bool], weights: Optional[list[float]] = None):
        sample = super().__new__(cls, (token_ids, supervise_mask))
        sample.weights = [1.0 if flag else 0.0 for flag in supervise_mask] if weights is None else weights
        return sample


def role_prefix(config: ModelConfig, role: str, condition: Optional[str] = None) -> str:
    """The text before a turn: the registry's prefix, led by the condition on conditioned types.

    `condition=None` means the model type's inference condition; an unconditioned
    type refuses a non-empty condition.
    """
    check_condition(config, condition)
    if condition is None:
        condition = config.inference_condition or ""
    if not condition:
        return config.role_prefix[role]
    return f"{condition} {config.role_prefix[role]}"


def check_condition(config: ModelConfig, condition: Optional[str]) -> None:
    """A clear error for a condition the model type cannot take."""
    if condition and not config.is_conditioned:
        raise ValueError(
            f"model type {config.name} takes no condition (got {condition!r}); "
            "conditioned types: openchat_v3.2, openchat_3.5 and their _tiny twins"
        )


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
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"turn {index}: weight must be a finite number >= 0, not {weight!r}")


def render_turns_batch(
    config: ModelConfig,
    tokenizer: ChatTokenizer,
    conversations: Sequence[Sequence[dict]],
    add_generation_prompt: bool = False,
    conditions: Optional[Sequence[Optional[str]]] = None,
) -> list[list[RenderedTurn]]:
    """Tokenize many conversations in one batched call; each as a list of turns (BOS not included).

    `conditions[i]` is conversation i's condition (None: the type's inference condition).
    """
    conversations = [_with_system_prompt(config, items) for items in conversations]
    if conditions is None:
        conditions = [None] * len(conversations)
    if len(conditions) != len(conversations):
        raise ValueError(f"{len(conditions)} conditions for {len(conversations)} conversations")
    texts: list[str] = []
    for items, condition in zip(conversations, conditions):
        _validate(items)
        for item in items:
            texts.append(role_prefix(config, item["from"], condition))
            texts.append(item["value"])
        if add_generation_prompt:
            texts.append(role_prefix(config, config.ai_role, condition))
    encoded = iter(tokenizer.encode_segments(texts))

    rendered = []
    for items in conversations:
        turns = [
            RenderedTurn(item["from"], next(encoded), next(encoded), closed=True, weight=float(item.get("weight", 1.0)))
            for item in items
        ]
        if add_generation_prompt:
            turns.append(RenderedTurn(config.ai_role, next(encoded), [], closed=False))
        rendered.append(turns)
    return rendered


def join_turns(config: ModelConfig, tokenizer: ChatTokenizer, turns: Sequence[RenderedTurn]) -> TokenizedSample:
    """BOS plus the turns, as `(token_ids, supervise_mask)` with `.weights`."""
    bos_id: Optional[int] = tokenizer.bos_token_id
    token_ids: list[int] = [] if bos_id is None else [bos_id]
    supervise_mask: list[bool] = [False] * len(token_ids)
    weights: list[float] = [0.0] * len(token_ids)
    eot_token_id = tokenizer.eot_token_id
    for turn in turns:
        token_ids += turn.token_ids(eot_token_id)
        supervise_mask += turn.supervise_mask(config.ai_role)
        weights += turn.token_weights(config.ai_role)
    return TokenizedSample(token_ids, supervise_mask, weights)


def render_conversations(
    config: ModelConfig,
    tokenizer: ChatTokenizer,
    conversations: Sequence[Sequence[dict]],
    add_generation_prompt: bool = False,
    conditions: Optional[Sequence[Optional[str]]] = None,
) -> list[TokenizedSample]:
    """Render many conversations at once (the fast path for data conversion)."""
    return [
        join_turns(config, tokenizer, turns)
        for turns in render_turns_batch(config, tokenizer, conversations, add_generation_prompt, conditions)
    ]


def render_conversation(
    config: ModelConfig,
    tokenizer: ChatTokenizer,
    items: Sequence[dict],
    add_generation_prompt: bool = False,
    condition: Optional[str] = None,
) -> TokenizedSample:
    """Render one conversation into `(token_ids, supervise_mask)` (None: the type's inference condition)."""
    return render_conversations(config, tokenizer, [items], add_generation_prompt, [condition])[0]


def chat_template_jinja(config: ModelConfig) -> str:
    """The same template as a Jinja chat template, for tools that only read tokenizer_config.json.

    It renders the same text; exact ids come from `render_conversation`, which
    tokenizes prefix and content as separate segments. Conditioned types render
    the same ids too (`tests/test_crlft_template.py`); they take an optional
    `condition` variable, defaulting to the type's inference condition.
    """
    if config.is_conditioned:
        return _conditioned_chat_template_jinja(config)
    prefixes = {
        "system": config.role_prefix["system"],
        "user": config.role_prefix["human"],
        "assistant": config.role_prefix[config.ai_role],
    }
    bos = "{{ bos_token }}" if config.bos_token else ""
    return (
        bos
        + "{% for message in messages %}"
        + "".join(
            f"{{% {'if' if i == 0 else 'elif'} message['role'] == '{role}' %}}{prefix}"
            for i, (role, prefix) in enumerate(prefixes.items())
        )
        + "{% endif %}{{ message['content'] }}"
        + config.eot_token
        + "{% endfor %}"
        + "{% if add_generation_prompt %}"
        + prefixes["assistant"]
        + "{% endif %}"
    )


def _conditioned_chat_template_jinja(config: ModelConfig) -> str:
    """`<s> GPT4 User: Hi<|end_of_turn|> GPT4 Assistant:`: a space leads every segment.

    The renderer tokenizes each prefix and content alone, so each starts with
    sentencepiece's dummy-prefix space; a fast tokenizer adds that space only at
    the very start of the text, so the template writes it out to give the same ids.
    """
    prefixes = {
        "system": config.role_prefix["system"],
        "user": config.role_prefix["human"],
        "assistant": config.role_prefix[config.ai_role],
    }
    bos = "{{ bos_token }}" if config.bos_token else ""
    return (
        "{% if condition is not defined %}{% set condition = '"
        + config.inference_condition
        + "' %}{% endif %}"
        + "{% set lead = ' ' + condition + ' ' if condition else ' ' %}"
        + bos
        + "{% for message in messages %}{{ lead }}"
        + "".join(
            f"{{% {'if' if i == 0 else 'elif'} message['role'] == '{role}' %}}{prefix}"
            for i, (role, prefix) in enumerate(prefixes.items())
        )
        + "{% endif %}{% if message['content'] %} {{ message['content'] }}{% endif %}"
        + config.eot_token
        + "{% endfor %}"
        + "{% if add_generation_prompt %}{{ lead }}"
        + prefixes["assistant"]
        + "{% endif %}"
    )
