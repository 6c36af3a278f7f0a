"""The two conversation formats the pipeline reads, and the C-RLFT conversation JSONL it writes.

Clean ShareGPT JSON (written by clean_sharegpt / filter_sharegpt), one JSON list:

    [{"id": "Ab3xY9z", "model": "Model: GPT-4", "items": [{"from": "human", "value": "Hi"},
                                                          {"from": "gpt", "value": "Hello!"}], ...}]

Conversation JSONL (OpenChat's later format; filter_sharegpt --mode c-rlft writes it), one conversation a line:

    {"items": [{"role": "user", "content": "Hi", "weight": 0.0},
               {"role": "assistant", "content": "Hello!", "weight": 1.0}],
     "condition": "GPT4", "system": ""}

An optional `id` names the source conversation. `weight` on an assistant item is the reward of the conversation's source (the
C-RLFT loss weight of its tokens); user items carry 0.0. `condition` names the
source and is rendered before every role by conditioned model types. Both read
into the same internal shape, so the same conversation gives the same tokens:

    {"id": ..., "items": [{"from": "human"|"gpt"|"system", "value": str, "weight": float}], "condition": str|None}

Every stage that reads clean ShareGPT JSON (`filter_sharegpt`, `mix`, `generate_dataset`) reads it
through `load_clean_json`, so a file that cannot be read or parsed is named the same way everywhere.
"""

from __future__ import annotations

import json
from typing import Optional

from ochat.utils.files import read_jsonl

FORMATS = ("sharegpt_json", "conversation_jsonl")
ROLE_TO_FROM = {"user": "human", "assistant": "gpt"}


class ConversationFileError(ValueError):
    """A conversation file that cannot be read or parsed; the message names the file and why, in one line."""


def load_clean_json(path, allow_nan: bool = True):
    """What a clean ShareGPT JSON file holds, parsed; the caller checks the shape it needs.

    `allow_nan=False` refuses NaN and Infinity, which Python's parser reads but JSON does not have.
    Raises ConversationFileError.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle, parse_constant=None if allow_nan else refuse_non_json_number)
    except FileNotFoundError:
        raise ConversationFileError(f"input file {path} does not exist") from None
    except (ValueError, RecursionError) as error:  # bad JSON, bad UTF-8, NaN or Infinity when refused
        raise ConversationFileError(f"{path} is not valid JSON: {error}") from None
    except OSError as error:
        raise ConversationFileError(f"cannot read {path}: {error.strerror or error}") from None


def refuse_non_json_number(name):
    raise ValueError(f"{name} is not a JSON number")


def detect_format(path: str) -> str:
    """`sharegpt_json` when the file starts with `[`, `conversation_jsonl` when with `{`."""
    with open(path, encoding="utf-8") as handle:
        head = handle.read(4096).lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        return "sharegpt_json"
    if head.startswith("{"):
        return "conversation_jsonl"
    raise ValueError(f"{path} is neither clean ShareGPT JSON (a list) nor conversation JSONL (one object a line)")


def to_conversation_record(conversation: dict, condition: str, reward: float) -> dict:
    """A clean ShareGPT conversation as a conversation JSONL record: assistant items weigh `reward`, user items 0."""
    system = "\n\n".join(item["value"] for item in conversation["items"] if item["from"] == "system")
    items = [
        {
            "role": "user" if item["from"] == "human" else "assistant",
            "content": item["value"],
            "weight": reward if item["from"] == "gpt" else 0.0,
        }
        for item in conversation["items"]
        if item["from"] != "system"
    ]
    return {"items": items, "condition": condition, "system": system}


def from_conversation_record(record: dict, line_number: int) -> dict:
    """A conversation JSONL record in the internal shape; unknown roles pass through so validation reports them."""
    items = record.get("items") if isinstance(record, dict) else None
    if not isinstance(items, list):
        return {"id": f"line {line_number}", "items": None}
    converted = []
    system = record.get("system") or ""
    if system:
        converted.append({"from": "system", "value": system})
    for item in items:
        if not isinstance(item, dict):
            converted.append(item)
            continue
        role = item.get("role")
        turn = {"from": ROLE_TO_FROM.get(role, role), "value": item.get("content")}
        if "weight" in item:
            turn["weight"] = item["weight"]
        converted.append(turn)
    condition: Optional[str] = record.get("condition")
    return {"id": record.get("id", f"line {line_number}"), "items": converted, "condition": condition}


def read_conversations(path: str) -> tuple[list[dict], str]:
    """Every conversation of a clean ShareGPT JSON or conversation JSONL file, and which format it was."""
    file_format = detect_format(path)
    if file_format == "sharegpt_json":
        conversations = load_clean_json(path)
        if not isinstance(conversations, list):
            raise ValueError(f"{path} must hold a JSON list of conversations")
        return conversations, file_format
    return [from_conversation_record(record, n) for n, record in enumerate(read_jsonl(path), 1)], file_format
