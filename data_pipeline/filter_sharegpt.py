"""Keep only the clean conversations answered by one model (GPT-4 by default).

OpenChat trains on GPT-4 answers only; ShareGPT labels each page with the
model the user chose, e.g. `Model: GPT-4` or `Model: Default (GPT-3.5)`.
Input and output are clean-conversation lists as written by clean_sharegpt:

    [{"id": "Ab3xY9z", "model": "Model: GPT-4", "views": 42,
      "items": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}], "hash": "..."}]

    python -m data_pipeline.filter_sharegpt --in-file sharegpt_clean.json --out-file sharegpt_gpt4.json
"""

import collections
import json
import sys
from pathlib import Path

from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic

DEFAULT_MODEL = "Model: GPT-4"


def main():
    args = parse_args()
    conversations = load_conversations(args.in_file)
    kept = filter_by_model(conversations, args.model)
    write_output(args.out_file, kept)
    print(format_counts(conversations, kept, args.model, args.out_file))


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m data_pipeline.filter_sharegpt",
        description="Keep the clean ShareGPT conversations whose model label equals --model exactly.",
    )
    parser.add_argument("--in_file", type=Path, required=True, help="clean conversations, e.g. sharegpt_clean.json")
    parser.add_argument("--out_file", type=Path, required=True, help="output JSON, e.g. sharegpt_gpt4.json")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f'model label to keep (default: "{DEFAULT_MODEL}")')
    return parser.parse_args(argv)


def filter_by_model(conversations, model=DEFAULT_MODEL):
    """Conversations labelled exactly `model`, in their original order."""
    return [conversation for conversation in conversations if conversation.get("model") == model]


def write_output(path, conversations):
    """Written whole or not at all; a failed write also removes the last run's file, so nothing stale remains."""
    try:
        write_json_atomic(path, conversations)
    except OSError as error:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            pass
        sys.exit(f"error: cannot write {path}: {error.strerror or error}")


def load_conversations(path):
    try:
        with open(path, encoding="utf-8") as input_file:
            conversations = json.load(input_file, parse_constant=refuse_non_json_number)
    except FileNotFoundError:
        sys.exit(f"error: input file {path} does not exist")
    except (ValueError, RecursionError) as error:  # bad JSON, bad UTF-8, NaN or Infinity
        sys.exit(f"error: {path} is not valid JSON: {error}")
    except OSError as error:
        sys.exit(f"error: cannot read {path}: {error.strerror or error}")
    if not isinstance(conversations, list) or not all(isinstance(item, dict) for item in conversations):
        sys.exit(f"error: {path} must hold a JSON list of conversations as written by clean_sharegpt")
    return conversations


def refuse_non_json_number(name):
    raise ValueError(f"{name} is not a JSON number")


def format_counts(conversations, kept, model, out_file):
    by_model = collections.Counter(conversation.get("model") or "(no model)" for conversation in conversations)
    lines = [f"conversations {len(conversations):>8}", f"kept          {len(kept):>8}   ({model}) -> {out_file}"]
    lines += [f"  {label:<30}{count:>6}" for label, count in by_model.most_common()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
