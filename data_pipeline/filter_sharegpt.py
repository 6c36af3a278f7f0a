"""Keep only the clean conversations answered by one model (GPT-4 by default).

OpenChat trains on GPT-4 answers only; ShareGPT labels each page with the
model the user chose, e.g. `Model: GPT-4` or `Model: Default (GPT-3.5)`.
Input and output are clean-conversation lists as written by clean_sharegpt:

    [{"id": "Ab3xY9z", "model": "Model: GPT-4", "views": 42,
      "items": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}], "hash": "..."}]

    python -m data_pipeline.filter_sharegpt --in_file sharegpt_clean.json --out_file sharegpt_gpt4.json

C-RLFT (`--mode c-rlft`) keeps GPT-4 and GPT-3.5 conversations alike and labels
each with its source's condition and reward, as conversation JSONL (see
`data_pipeline.conversations`), one conversation a line:

    {"items": [{"role": "user", "content": "...", "weight": 0.0},
               {"role": "assistant", "content": "...", "weight": 0.1}], "condition": "GPT3", "system": ""}

    python -m data_pipeline.filter_sharegpt --mode c-rlft --in_file sharegpt_clean.json --out_file sharegpt_crlft.jsonl

A conversation that already carries a `condition` (imported from OpenChat's JSONL) keeps it
and its item weights. One that cannot be labelled (a `model` that is not text, turns that are
not `{"from": "human"|"gpt"|"system", "value": str}`, a weight no loss can use) is dropped and
counted, in both modes.
"""

import collections
import re
import sys
from pathlib import Path

from data_pipeline.conversations import ConversationFileError, load_clean_json, to_conversation_record
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic, write_jsonl_atomic

DEFAULT_MODEL = "Model: GPT-4"
MODES = ("model", "c-rlft")
NO_LABEL = "(no model label)"  # stands for pages without a `Model:` line in --conditions
INVALID = "(invalid conversation)"  # a conversation no label can be read from, counted among the dropped
ROLES = ("human", "gpt", "system")
REWARD_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
# ShareGPT label -> (condition, reward); GPT-3.5 pages and pages with no label are the sub-optimal class.
DEFAULT_CONDITIONS = {
    "Model: GPT-4": ("GPT4", 1.0),
    "Model: Default (GPT-3.5)": ("GPT3", 0.1),
    "Model: Legacy (GPT-3.5)": ("GPT3", 0.1),
    NO_LABEL: ("GPT3", 0.1),
}


def main():
    args = parse_args()
    conversations = load_conversations(args.in_file)
    if args.mode == "c-rlft":
        try:
            conditions = parse_conditions(args.conditions) if args.conditions is not None else DEFAULT_CONDITIONS
        except ValueError as error:
            sys.exit(f"error: --conditions: {error}")
        records = label_conditions(conversations, conditions)
        write_output(args.out_file, records, write_jsonl_atomic)
        print(format_condition_counts(conversations, records, conditions, args.out_file))
        return
    kept = filter_by_model(conversations, args.model)
    write_output(args.out_file, kept)
    print(format_counts(conversations, kept, args.model, args.out_file))


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m data_pipeline.filter_sharegpt",
        description="Keep the clean ShareGPT conversations whose model label equals --model exactly, or, with "
        "--mode c-rlft, keep GPT-4 and GPT-3.5 conversations labelled with a condition and a reward for C-RLFT.",
    )
    parser.add_argument("--in_file", type=Path, required=True, help="clean conversations, e.g. sharegpt_clean.json")
    parser.add_argument("--out_file", type=Path, required=True, help="output JSON, e.g. sharegpt_gpt4.json")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f'model label to keep in the default mode (default: "{DEFAULT_MODEL}")'
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="model",
        help="model: keep one model label, write clean JSON (default); c-rlft: keep every mapped "
        "label, write conversation JSONL with a condition and a reward per conversation. "
        'By default "Model: GPT-4" becomes condition GPT4 with reward 1.0, and '
        '"Model: Default (GPT-3.5)", "Model: Legacy (GPT-3.5)" and pages with no model label '
        "count as GPT-3.5: condition GPT3 with reward 0.1",
    )
    parser.add_argument(
        "--conditions",
        default=None,
        help='c-rlft mapping "LABEL=CONDITION:REWARD,..." replacing the default, e.g. '
        '"Model: GPT-4=GPT4:1.0,Model: Default (GPT-3.5)=GPT3:0.1"; '
        f'"{NO_LABEL}" names pages without a label; unmapped labels are dropped and counted',
    )
    return parser.parse_args(argv)


def parse_conditions(text):
    """`"LABEL=CONDITION:REWARD,..."` as `{label: (condition, reward)}`; a clear ValueError otherwise.

    Strict, since a typo here silently relabels data: the reward is a plain decimal (`0.1`, not
    `1_0` or `1e-1`), the condition holds no `:`, and a label appears once.
    """
    conditions = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            raise ValueError(f"{text!r} has an empty entry; write LABEL=CONDITION:REWARD,...")
        label, equals, target = entry.rpartition("=")
        condition, colon, reward_text = target.partition(":")
        label, condition, reward_text = label.strip(), condition.strip(), reward_text.strip()
        if not equals or not colon or not label or not condition:
            raise ValueError(f"{entry!r} is not LABEL=CONDITION:REWARD")
        if not REWARD_TEXT.fullmatch(reward_text):
            raise ValueError(f"{entry!r}: reward {reward_text!r} is not a decimal number such as 0.1")
        reward = float(reward_text)
        if not reward > 0:
            raise ValueError(f"{entry!r}: reward must be above 0")
        if label in conditions:
            raise ValueError(f"label {label!r} is mapped twice")
        conditions[label] = (condition, reward)
    return conditions


def label_conditions(conversations, conditions=DEFAULT_CONDITIONS):
    """Conversation JSONL records of every conversation whose label is mapped, in their original order.

    A conversation with its own `condition` keeps it and its items' weights.
    """
    records = []
    for conversation in conversations:
        label = model_label(conversation)
        if label == INVALID:
            continue
        if has_own_condition(conversation):
            records.append({**labelled_record(conversation), "id": conversation.get("id")})
            continue
        mapped = conditions.get(label)
        if mapped is not None:
            condition, reward = mapped
            records.append({**to_conversation_record(conversation, condition, reward), "id": conversation.get("id")})
    return records


def model_label(conversation):
    """The conversation's model label (NO_LABEL when it names none), or INVALID when it cannot be labelled."""
    model, items = conversation.get("model"), conversation.get("items")
    if model is not None and not isinstance(model, str):
        return INVALID
    if not isinstance(items, list) or not all(
        isinstance(item, dict)
        and item.get("from") in ROLES
        and isinstance(item.get("value"), str)
        and valid_weight(item.get("weight", 0.0))
        for item in items
    ):
        return INVALID
    condition = conversation.get("condition")
    if condition is not None and not (isinstance(condition, str) and condition.strip()):
        return INVALID
    return model or NO_LABEL


def has_own_condition(conversation):
    return isinstance(conversation.get("condition"), str) and bool(conversation["condition"].strip())


def valid_weight(weight):
    return not isinstance(weight, bool) and isinstance(weight, (int, float)) and 0 <= weight < float("inf")


def labelled_record(conversation):
    """A conversation that carries its own condition and weights, as conversation JSONL, unchanged."""
    record = to_conversation_record(conversation, conversation["condition"], 1.0)
    for record_item, item in zip(record["items"], (item for item in conversation["items"] if item["from"] != "system")):
        if "weight" in item:
            record_item["weight"] = float(item["weight"])
    return record


def format_condition_counts(conversations, records, conditions, out_file):
    by_condition = collections.Counter(record["condition"] for record in records)
    rewards = {condition: reward for condition, reward in conditions.values()}
    rewards.update({condition: None for condition in by_condition if condition not in rewards})
    dropped = collections.Counter(
        label
        for label, conversation in zip(map(model_label, conversations), conversations)
        if label == INVALID or (label not in conditions and not has_own_condition(conversation))
    )
    lines = [f"conversations {len(conversations):>8}", f"kept          {len(records):>8}   (c-rlft) -> {out_file}"]
    lines += [
        f"  condition {condition:<20}{by_condition[condition]:>6}   "
        + (f"reward {reward:g}" if reward is not None else "(its own condition and weights)")
        for condition, reward in rewards.items()
    ]
    lines += [
        f"  dropped {label:<22}{count:>6}   "
        + ("(bad model label, turns or weights)" if label == INVALID else "(label not in the mapping)")
        for label, count in dropped.most_common()
    ]
    return "\n".join(lines)


def filter_by_model(conversations, model=DEFAULT_MODEL):
    """Conversations labelled exactly `model` whose turns are well formed, in their original order."""
    return [
        conversation
        for conversation in conversations
        if conversation.get("model") == model and model_label(conversation) != INVALID
    ]


def write_output(path, records, writer=write_json_atomic):
    """Written whole or not at all; a failed write also removes the last run's file, so nothing stale remains."""
    try:
        writer(path, records)
    except OSError as error:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            pass
        sys.exit(f"error: cannot write {path}: {error.strerror or error}")


def load_conversations(path):
    try:
        conversations = load_clean_json(path, allow_nan=False)
    except ConversationFileError as error:
        sys.exit(f"error: {error}")
    if not isinstance(conversations, list) or not all(isinstance(item, dict) for item in conversations):
        sys.exit(f"error: {path} must hold a JSON list of conversations as written by clean_sharegpt")
    return conversations


def format_counts(conversations, kept, model, out_file):
    by_model = collections.Counter(
        INVALID if label == INVALID else label if label != NO_LABEL else "(no model)"
        for label in map(model_label, conversations)
    )
    lines = [f"conversations {len(conversations):>8}", f"kept          {len(kept):>8}   ({model}) -> {out_file}"]
    lines += [f"  {label:<30}{count:>6}" for label, count in by_model.most_common()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
