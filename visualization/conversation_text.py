"""Turn a decoded training sample back into readable conversation turns.

The data pipeline writes `T.train.text.json`: a JSON list of strings, each a
decoded sample with its special tokens visible, for example

    "<s>Human: How do I sort a list?<|end_of_turn|>Assistant: Use `sorted(xs)`.<|end_of_turn|>"

Embedding wants plain prose (no BOS, no special tokens, turns separated by a
blank line), and the visualizer page wants the turns one by one. Both come
from `split_turns`, so the two never disagree about where a turn starts.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ochat.config import MODEL_CONFIGS

TITLE_MAX_CHARS = 80


@lru_cache(maxsize=1)
def _special_token_patterns() -> tuple[re.Pattern, re.Pattern, dict[str, str]]:
    """Build, from the model registry, the turn separator, the tokens to drop and the role prefixes."""
    eot_tokens = {config.eot_token for config in MODEL_CONFIGS.values() if config.eot_token}
    dropped = {config.bos_token for config in MODEL_CONFIGS.values() if config.bos_token}
    for config in MODEL_CONFIGS.values():
        dropped.update(config.extra_stop_tokens)
    dropped.update({"<s>", "</s>", "<unk>", "<pad>"})
    eot_pattern = re.compile("|".join(re.escape(token) for token in sorted(eot_tokens, key=len, reverse=True)))
    # Any other "<|...|>" marker is a special token too (e.g. "<|endoftext|>").
    dropped_alternatives = [re.escape(token) for token in sorted(dropped, key=len, reverse=True)]
    dropped_pattern = re.compile("|".join(dropped_alternatives + [r"<\|[^<>|\s]{1,40}\|>"]))
    role_by_prefix: dict[str, str] = {}
    for config in MODEL_CONFIGS.values():
        for role, prefix in config.role_prefix.items():
            if prefix.strip():
                role_by_prefix.setdefault(prefix.strip(), role)
    return eot_pattern, dropped_pattern, role_by_prefix


def split_turns(decoded_sample: str) -> list[dict]:
    """Split a decoded sample into turns: [{"from": "human"|"gpt"|"system"|"unknown", "role": "Human", "value": str}].

    Turns end at the end-of-turn token; a turn's role comes from its template
    prefix ("Human:", "Assistant:", "User:", "System:"). Text without a known
    prefix is kept as an "unknown" turn rather than dropped.
    """
    eot_pattern, dropped_pattern, role_by_prefix = _special_token_patterns()
    turns = []
    for segment in eot_pattern.split(decoded_sample):
        segment = dropped_pattern.sub("", segment).strip()
        if not segment:
            continue
        role_label, source = "", "unknown"
        head, colon, rest = segment.partition(":")
        if colon and head.strip() + ":" in role_by_prefix:
            role_label = head.strip()
            source = role_by_prefix[role_label + ":"]
            segment = rest.strip()
        turns.append({"from": source, "role": role_label, "value": segment})
    return turns


def turns_to_text(turns: list[dict]) -> str:
    """Plain text of a conversation: "Role: text" per turn, turns separated by a blank line."""
    return "\n\n".join(f"{turn['role']}: {turn['value']}" if turn["role"] else turn["value"] for turn in turns)


def clean_text(decoded_sample: str) -> str:
    """The text that gets embedded: special tokens and BOS removed, end-of-turn turned into a blank line."""
    return turns_to_text(split_turns(decoded_sample))


def make_title(turns: list[dict], max_chars: int = TITLE_MAX_CHARS) -> str:
    """A short title: the first line of the first human turn (or of any turn), cut at a word boundary."""
    first = next((turn for turn in turns if turn["from"] == "human" and turn["value"]), None)
    first = first or next((turn for turn in turns if turn["value"]), None)
    if first is None:
        return "(empty conversation)"
    line = next(line.strip() for line in first["value"].splitlines() if line.strip())
    line = re.sub(r"\s+", " ", line)
    if len(line) <= max_chars:
        return line
    cut = line[: max_chars - 1].rsplit(" ", 1)[0] or line[: max_chars - 1]
    return cut.rstrip(" ,.;:") + "…"
