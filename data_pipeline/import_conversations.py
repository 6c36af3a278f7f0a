"""Import public conversation data sets into the clean-conversation format the pipeline trains on.

Formats (`--format`, dash spellings such as `sharegpt-json` accepted too):

- `sharegpt_json`: a ShareGPT dump, `[{"id", "conversations": [{"from": "human"|"gpt"|"system", "value"}],
  "model"?}]`; values holding HTML become Markdown as in `clean_sharegpt`, Markdown is kept.
- `alpaca`: Alpaca JSON, `[{"instruction", "input", "output"}]`; the human turn is the instruction,
  then a blank line and the input when there is one.
- `hh`: Anthropic HH JSONL, `{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}`; the
  `chosen` transcript is split on `\\n\\nHuman:` / `\\n\\nAssistant:`.
- `openai_messages`: OpenAI chat JSONL, `{"messages": [{"role": "system"|"user"|"assistant", "content"}]}`
  (content a string or a list of `{"type": "text", "text"}` parts); `model` is kept when a record names one.
- `openchat`: OpenChat conversation JSONL, `{"items": [{"role": "user"|"assistant", "content", "weight"}],
  "condition": "GPT4", "system": ""}`; the C-RLFT labels go through unchanged: the conversation keeps its
  `condition` (also written as `model`) and each item its `weight`, so `filter_sharegpt --mode c-rlft` and
  `generate_dataset` train it under the same condition and reward. A weight that is not a finite number
  >= 0, or a condition that is not text, drops the record (`invalid_weight`, `invalid_record`).

A JSON list is parsed incrementally, so any of these may also be given as JSON Lines and the
other way round. Every record goes through the same shape rules as a page: a leading
non-human and a trailing human turn are dropped, then at least 2 turns alternating
human/assistant, none empty; exact duplicates (same `hash`) keep the first. A leading
system prompt has no place in the clean format: it is dropped and counted
(`system_prompts_dropped`). Output (`--out_file`), a JSON list in input order:

    [{"id": "alpaca-0", "model": null, "views": null, "source": "alpaca",
      "items": [{"from": "human", "value": "Give three tips for staying healthy."},
                {"from": "gpt", "value": "1. Eat a balanced diet ..."}],
      "hash": "3f1c...e9"}]

`id` is the record's own string id, else `SOURCE-INDEX`. The report beside it
(`NAME.report.json`) counts every record and names each one not kept (`FILE#INDEX`):

    {"format": "alpaca", "in_file": "...", "source": "alpaca", "total_records": 52002, "kept": 51990,
     "duplicates": 7, "dropped": {"empty_turn": 5}, "system_prompts_dropped": 0,
     "records": [{"record": "alpaca.json#17", "status": "dropped", "reason": "empty_turn"}]}

total_records = kept + duplicates + sum(dropped).

    python -m data_pipeline.import_conversations --format alpaca --in_file alpaca_data.json \\
        --out_file OUT/alpaca_clean.json
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

from tqdm import tqdm

from data_pipeline.sharegpt_conversation import (
    BAD_JSON,
    EMPTY_TURN,
    ROLES_NOT_ALTERNATING,
    TOO_FEW_TURNS,
    UNPARSEABLE_MARKUP,
    conversation_hash,
    text_for_checks,
)
from data_pipeline.sharegpt_dump import BrokenRecord, iter_dump, record_turns, value_holds_html
from data_pipeline.sharegpt_markdown import clean_markdown, html_to_markdown, strip_regeneration_counter
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic

FORMATS = ("sharegpt_json", "alpaca", "hh", "openai_messages", "openchat")

# Reasons a record is dropped, as they appear in the report; the rest are shared with pages and dumps.
BAD_ROLE = "bad_role"
INVALID_RECORD = "invalid_record"
INVALID_WEIGHT = "invalid_weight"
DUPLICATE = "duplicate"

HH_TURN_MARKER = re.compile(r"\n\n(Human|Assistant):[ \t]?")
OPENAI_ROLES = {"user": "human", "assistant": "gpt", "system": "system"}


class RecordError(Exception):
    """A record that cannot become a conversation; `reason` names why, for the report."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def main():
    args = parse_args()
    source = args.source or args.format
    conversations, report = import_file(args.in_file, args.format, source, show_progress=True)
    report_path = args.out_file.with_name(args.out_file.stem + ".report.json")
    write_json_atomic(args.out_file, conversations)
    write_json_atomic(report_path, report)
    print(format_summary(report, args.out_file, report_path))


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m data_pipeline.import_conversations",
        description="Import ShareGPT JSON, Alpaca, Anthropic HH, OpenAI chat messages or OpenChat conversation "
        "JSONL into clean conversations; bad records are dropped with reasons in a report.",
    )
    parser.add_argument(
        "--format",
        required=True,
        type=lambda name: name.replace("-", "_"),
        choices=FORMATS,
        help="input format: " + ", ".join(FORMATS),
    )
    parser.add_argument("--in_file", type=Path, required=True, help="input JSON list or JSONL file")
    parser.add_argument("--out_file", type=Path, required=True, help="output JSON, e.g. alpaca_clean.json")
    parser.add_argument(
        "--source", default=None, help="name written in each conversation's `source` field (default: the format name)"
    )
    args = parser.parse_args(argv)
    if not args.in_file.is_file():
        parser.error(f"--in_file {args.in_file} is not a file")
    return args


def import_file(in_file, format_name, source=None, show_progress=False):
    """Read, convert and deduplicate one file. Returns (conversations, report)."""
    source = source or format_name
    to_turns = TURN_READERS[format_name]
    conversations, records = [], []
    dropped = collections.Counter()
    first_id_by_hash = {}
    total = duplicates = system_prompts = 0
    try:
        entries = iter_dump(in_file)
        for entry in tqdm(
            entries, desc=f"importing {format_name}", unit="record", disable=not show_progress, file=sys.stderr
        ):
            total += 1
            index = int(entry.label.rsplit("#", 1)[1])
            try:
                if isinstance(entry, BrokenRecord):
                    raise RecordError(BAD_JSON)
                record_id, model, turns, system_prompt = to_turns(entry.record)
                items = shape_turns(turns)
            except RecordError as error:
                dropped[error.reason] += 1
                records.append({"record": entry.label, "status": "dropped", "reason": error.reason})
                continue
            system_prompts += bool(system_prompt)
            conversation_id = record_id if isinstance(record_id, str) and record_id else f"{source}-{index}"
            digest = conversation_hash(items)
            if digest in first_id_by_hash:
                duplicates += 1
                records.append(
                    {
                        "record": entry.label,
                        "status": "duplicate",
                        "reason": DUPLICATE,
                        "duplicate_of": first_id_by_hash[digest],
                    }
                )
                continue
            first_id_by_hash[digest] = conversation_id
            conversation = {"id": conversation_id, "model": model, "views": None, "source": source, "items": items}
            if format_name == "openchat" and model is not None:
                conversation["condition"] = model
            conversations.append({**conversation, "hash": digest})
    except OSError as error:
        sys.exit(f"error: cannot read {in_file}: {error.strerror or error}")
    report = {
        "format": format_name,
        "in_file": str(in_file),
        "source": source,
        "total_records": total,
        "kept": len(conversations),
        "duplicates": duplicates,
        "dropped": dict(sorted(dropped.items())),
        "system_prompts_dropped": system_prompts,
        "records": records,
    }
    return conversations, report


# ----------------------------------------------------------------------------- one record per format
# Each reader returns (id, model, [(role, text) or (role, text, weight)], system prompt) with role
# "human" | "gpt" | "system", or raises RecordError.


def sharegpt_turns(record):
    parts = record_turns(record)
    if parts is None:
        raise RecordError(INVALID_RECORD)
    record_id, model, _views, items = parts
    turns = []
    for item in items:
        value = item["value"]
        if item["from"] == "gpt" and value_holds_html(value):
            try:
                value = html_to_markdown(strip_regeneration_counter(value))
            except Exception:  # markup the parser rejects drops the record, not the run
                raise RecordError(UNPARSEABLE_MARKUP) from None
        turns.append((item["from"], clean_markdown(value)))
    return record_id, model, turns, ""


def alpaca_turns(record):
    if not isinstance(record, dict):
        raise RecordError(INVALID_RECORD)
    instruction, extra, output = record.get("instruction"), record.get("input", ""), record.get("output")
    if not all(isinstance(value, str) for value in (instruction, extra, output)):
        raise RecordError(INVALID_RECORD)
    prompt = instruction.strip() + ("\n\n" + extra.strip() if extra.strip() else "")
    return None, None, [("human", prompt), ("gpt", output)], ""


def hh_turns(record):
    if not isinstance(record, dict) or not isinstance(record.get("chosen"), str):
        raise RecordError(INVALID_RECORD)
    pieces = HH_TURN_MARKER.split(record["chosen"])
    if pieces[0].strip():  # text before the first marker: not an HH transcript
        raise RecordError(INVALID_RECORD)
    turns = [("human" if marker == "Human" else "gpt", text) for marker, text in zip(pieces[1::2], pieces[2::2])]
    return None, None, turns, ""


def openai_turns(record):
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise RecordError(INVALID_RECORD)
    turns = [(message_role(message, "role"), message_text(message.get("content"))) for message in record["messages"]]
    model = record.get("model")
    system_prompt, turns = split_system_prompt(turns)
    return record.get("id"), model if isinstance(model, str) else None, turns, system_prompt


def openchat_turns(record):
    if not isinstance(record, dict) or not isinstance(record.get("items"), list):
        raise RecordError(INVALID_RECORD)
    turns = [
        (message_role(item, "role"), message_text(item.get("content")), *item_weight(item)) for item in record["items"]
    ]
    condition, system = record.get("condition"), record.get("system", "")
    if (condition is not None and not isinstance(condition, str)) or not isinstance(system, str):
        raise RecordError(INVALID_RECORD)
    return record.get("id"), condition or None, turns, system


def message_role(message, key):
    if not isinstance(message, dict):
        raise RecordError(INVALID_RECORD)
    role = OPENAI_ROLES.get(message.get(key))
    if role is None:
        raise RecordError(BAD_ROLE)
    return role


def item_weight(item):
    """`(weight,)` of a conversation JSONL item, `()` when it has none; RecordError for one no loss can use."""
    if "weight" not in item:
        return ()
    weight = item["weight"]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
        raise RecordError(INVALID_WEIGHT)
    return (float(weight),)


def message_text(content):
    """A message's text: a string, or the text parts of a content list (any other part drops the record)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str) for part in content
    ):
        return "".join(part["text"] for part in content)
    raise RecordError(INVALID_RECORD)


def split_system_prompt(turns):
    if turns and turns[0][0] == "system":
        return turns[0][1], turns[1:]
    return "", turns


TURN_READERS = {
    "sharegpt_json": sharegpt_turns,
    "alpaca": alpaca_turns,
    "hh": hh_turns,
    "openai_messages": openai_turns,
    "openchat": openchat_turns,
}


def shape_turns(turns):
    """The page rules on turn shape: trim a leading non-human and a trailing human turn, then check."""
    start = 1 if turns and turns[0][0] != "human" else 0
    end = len(turns) - 1 if len(turns) > start and turns[-1][0] == "human" else len(turns)
    turns = turns[start:end]
    if any(turn[0] not in ("human", "gpt") for turn in turns):
        raise RecordError(BAD_ROLE)
    if len(turns) < 2:
        raise RecordError(TOO_FEW_TURNS)
    if any(turn[0] != ("human" if index % 2 == 0 else "gpt") for index, turn in enumerate(turns)):
        raise RecordError(ROLES_NOT_ALTERNATING)
    items = [
        {"from": turn[0], "value": turn[1].strip(), **({"weight": turn[2]} if len(turn) > 2 else {})} for turn in turns
    ]
    if any(not text_for_checks(item["value"]).strip() for item in items):
        raise RecordError(EMPTY_TURN)
    return items


def format_summary(report, out_file, report_path):
    lines = [
        f"records     {report['total_records']:>8}",
        f"kept        {report['kept']:>8}   -> {out_file}",
        f"duplicates  {report['duplicates']:>8}",
        f"dropped     {sum(report['dropped'].values()):>8}",
    ]
    lines += [f"  {reason:<22}{count:>6}" for reason, count in report["dropped"].items()]
    if report["system_prompts_dropped"]:
        lines.append(f"system prompts dropped {report['system_prompts_dropped']}")
    lines.append(f"report: {report_path}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
