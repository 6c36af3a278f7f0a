"""The one place a conversation becomes tokens.

Template (OpenChat): BOS (when the model type has one), then for every turn
`role_prefix + " " + content + <|end_of_turn|>`; the generation prompt is the
open assistant prefix (`Assistant:`, no trailing space, so the answer's first
token carries its own leading space exactly as in training). Special tokens are
resolved by id from the tokenizer's own special tokens; the text between two of
them (one turn) is tokenized as the whole chat-template text would be, so the
ids equal `tokenizer.apply_chat_template` with the exported template for
sentencepiece and byte-level BPE vocabularies alike. Text that looks like a
special token ("<|end_of_turn|>" typed by a user) stays text. The supervise
mask is true exactly on the tokens that carry assistant content, and its EOT:

    items = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]
    <s> | Human: Hi | <|end_of_turn|> | Assistant: | Hello! | <|end_of_turn|>
     0        0            0              0           1            1

(a token that straddles the boundary, such as BPE's `ĠHello`, belongs to the
content). With `add_generation_prompt=True` the assistant prefix is appended
open, which is the prompt the server and evaluation generate from.

Conditioned (C-RLFT) types put the conversation's data-source condition before
each role: `GPT4 User: Hi<|end_of_turn|>GPT4 Assistant:` (just `User:` when the
condition is empty). A conversation renders under its own condition in training
and under the type's inference condition when none is given. An assistant item
may carry a `weight` (its source's reward, 1.0 when absent): it lands on that
turn's supervised tokens, and a weight of 0 leaves the turn unsupervised.

The `hf_chat` type renders with the checkpoint's own chat template instead
(`render_with_checkpoint_template`), so an instruct model is served as shipped.
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


@dataclass
class Sample:
    """One tokenized conversation as data conversion, training and serving share it.

    `supervise_mask` is true on what the model learns to say; `weights` are the
    per-token loss weights, nonzero exactly where the mask is true (1.0 there when
    none are given).
    """

    token_ids: list[int]
    supervise_mask: list[bool]
    weights: Optional[list[float]] = None

    def __post_init__(self):
        if self.weights is None:
            self.weights = [1.0 if flag else 0.0 for flag in self.supervise_mask]


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


CONTENT_SEPARATOR = " "  # between a role prefix and non-empty content: "Human: Hi"


def turn_text(prefix: str, content: str) -> tuple[str, int]:
    """One closed turn's text between two special tokens, and where its content starts in it."""
    if not content:
        return prefix, len(prefix)
    return prefix + CONTENT_SEPARATOR + content, len(prefix) + len(CONTENT_SEPARATOR)


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
    if config.uses_checkpoint_template:
        raise ValueError(
            f"model type {config.name} renders with the checkpoint's own chat template; "
            "use render_with_checkpoint_template (training data needs a registry template such as openchat)"
        )
    conversations = [_with_system_prompt(config, items) for items in conversations]
    if conditions is None:
        conditions = [None] * len(conversations)
    if len(conditions) != len(conversations):
        raise ValueError(f"{len(conditions)} conditions for {len(conversations)} conversations")
    leads_text = tokenizer.bos_token_id is None  # without BOS the first turn opens the text
    spans: list[tuple[str, int, bool]] = []  # (text, content start, follows a special token)
    for items, condition in zip(conversations, conditions):
        _validate(items)
        for index, item in enumerate(items):
            text, content_start = turn_text(role_prefix(config, item["from"], condition), item["value"])
            spans.append((text, content_start, not (leads_text and index == 0)))
        if add_generation_prompt:
            prefix = role_prefix(config, config.ai_role, condition)
            spans.append((prefix, len(prefix), not (leads_text and not items)))
    encoded = iter(tokenizer.encode_spans([text for text, _, _ in spans], [after for _, _, after in spans]))
    starts = iter(start for _, start, _ in spans)

    def split(role: str, closed: bool, weight: float = 1.0) -> RenderedTurn:
        ids, ends = next(encoded)
        content_start = next(starts)
        boundary = next((i for i, end in enumerate(ends) if end > content_start), len(ids)) if closed else len(ids)
        return RenderedTurn(role, ids[:boundary], ids[boundary:], closed=closed, weight=weight)

    rendered = []
    for items in conversations:
        turns = [split(item["from"], True, float(item.get("weight", 1.0))) for item in items]
        if add_generation_prompt:
            turns.append(split(config.ai_role, False))
        rendered.append(turns)
    return rendered


def join_turns(config: ModelConfig, tokenizer: ChatTokenizer, turns: Sequence[RenderedTurn]) -> Sample:
    """BOS plus the turns, with the supervise mask and weights of each token."""
    bos_id: Optional[int] = tokenizer.bos_token_id
    token_ids: list[int] = [] if bos_id is None else [bos_id]
    supervise_mask: list[bool] = [False] * len(token_ids)
    weights: list[float] = [0.0] * len(token_ids)
    eot_token_id = tokenizer.eot_token_id
    for turn in turns:
        token_ids += turn.token_ids(eot_token_id)
        supervise_mask += turn.supervise_mask(config.ai_role)
        weights += turn.token_weights(config.ai_role)
    return Sample(token_ids, supervise_mask, weights)


def render_conversations(
    config: ModelConfig,
    tokenizer: ChatTokenizer,
    conversations: Sequence[Sequence[dict]],
    add_generation_prompt: bool = False,
    conditions: Optional[Sequence[Optional[str]]] = None,
) -> list[Sample]:
    """Render many conversations at once (the fast path for data conversion)."""
    if config.uses_checkpoint_template:
        return [render_with_checkpoint_template(tokenizer, items, add_generation_prompt) for items in conversations]
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
) -> Sample:
    """Render one conversation into a `Sample` (condition None: the type's inference condition)."""
    return render_conversations(config, tokenizer, [items], add_generation_prompt, [condition])[0]


def chat_template_jinja(config: ModelConfig) -> str:
    """The same template as a Jinja chat template, for tools that only read tokenizer_config.json.

    `apply_chat_template` with it gives the renderer's ids (`tests/test_template.py`);
    conditioned types take an optional `condition` variable, defaulting to the
    type's inference condition.
    """
    prefixes = {
        "system": config.role_prefix["system"],
        "user": config.role_prefix["human"],
        "assistant": config.role_prefix[config.ai_role],
    }
    if config.is_conditioned:
        head = (
            "{% if condition is not defined %}{% set condition = '"
            + config.inference_condition
            + "' %}{% endif %}{% set lead = condition + ' ' if condition else '' %}"
        )
        lead = "{{ lead }}"
    else:
        head, lead = "", ""
    bos = "{{ bos_token }}" if config.bos_token else ""
    return (
        head
        + bos
        + "{% for message in messages %}"
        + lead
        + "".join(
            f"{{% {'if' if i == 0 else 'elif'} message['role'] == '{role}' %}}{prefix}"
            for i, (role, prefix) in enumerate(prefixes.items())
        )
        + "{% endif %}{% if message['content'] %}"
        + CONTENT_SEPARATOR
        + "{{ message['content'] }}{% endif %}"
        + config.eot_token
        + "{% endfor %}"
        + "{% if add_generation_prompt %}"
        + lead
        + prefixes["assistant"]
        + "{% endif %}"
    )


def render_with_checkpoint_template(
    tokenizer: ChatTokenizer, items: Sequence[dict], add_generation_prompt: bool = True
) -> Sample:
    """A prompt rendered by the checkpoint's own chat template (the `hf_chat` type), as other engines render it."""
    _validate(items)
    roles = {"system": "system", "human": "user", "gpt": "assistant"}
    messages = [{"role": roles[item["from"]], "content": item["value"]} for item in items]
    hf_tokenizer = tokenizer.hf_tokenizer
    if not getattr(hf_tokenizer, "chat_template", None):
        raise ValueError("the checkpoint's tokenizer has no chat template; pick a registry model type such as openchat")
    text = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    token_ids = hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    return Sample(token_ids, [False] * len(token_ids))
