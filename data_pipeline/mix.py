"""Mix clean-conversation files into one training set, Koala-style: each source by a ratio or a count.

Each `--in NAME=FILE[:AMOUNT]` names a clean-conversation JSON list (from `clean_sharegpt`,
`import_conversations` or `self_chat`) and how much of it to take:

- `:COUNT` (an integer, e.g. `:5000`): exactly COUNT conversations;
- `:WEIGHT` (with a decimal point, e.g. `:0.5`, `:2.0`): round(WEIGHT x size) conversations;
- nothing: all of it (weight 1.0).

Below the source's size a sample is drawn without replacement; above it, every
conversation is taken floor(n / size) times and the remainder sampled, so upsampling
repeats whole conversations as evenly as it can. Draws and the final order are shuffled
from `--seed` alone: the same command gives the same file. Each conversation's `source`
is set to its NAME. Output: one JSON list of clean conversations; the report beside it
(`NAME.report.json`) gives, per source, its size, the amount asked and what was taken:

    {"seed": 0, "total": 1500, "sources": [{"name": "sharegpt", "file": "...", "available": 1000,
      "asked": "weight 1.0", "taken": 1000, "repeated": 0, "share": 0.667}, ...]}

    python -m data_pipeline.mix --in sharegpt=OUT/sharegpt_gpt4.json alpaca=OUT/alpaca_clean.json:0.25 \\
        --out_file OUT/mixed.json --seed 0
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from data_pipeline.conversations import ConversationFileError, load_clean_json
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic

SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_TOTAL = 100_000_000  # conversations in one mix: far beyond any real one, well before memory runs out


@dataclass(frozen=True)
class SourceSpec:
    name: str
    path: Path
    count: int | None = None  # exact number asked for, or
    weight: float = 1.0  # a multiple of the source's size

    def wanted(self, available):
        return self.count if self.count is not None else round(self.weight * available)

    def describe(self):
        return f"count {self.count}" if self.count is not None else f"weight {self.weight}"


def main():
    args = parse_args()
    sources = [(spec, load_conversations(spec.path)) for spec in args.sources]
    mixed, report = mix(sources, args.seed)
    report_path = args.out_file.with_name(args.out_file.stem + ".report.json")
    write_json_atomic(args.out_file, mixed)
    write_json_atomic(report_path, report)
    print(format_table(report, args.out_file))


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m data_pipeline.mix",
        description="Mix clean-conversation files by ratio or count into one shuffled training set, "
        "with a per-source report.",
    )
    parser.add_argument(
        "--in",
        dest="sources",
        nargs="+",
        required=True,
        type=parse_source,
        metavar="NAME=FILE[:AMOUNT]",
        help="a source: NAME=FILE takes all, NAME=FILE:0.5 a weight (x size), NAME=FILE:5000 a count",
    )
    parser.add_argument("--out_file", type=Path, required=True, help="output JSON, e.g. mixed.json")
    parser.add_argument("--seed", type=int, default=0, help="seed for sampling and shuffling (default %(default)s)")
    args = parser.parse_args(argv)
    names = [spec.name for spec in args.sources]
    if len(set(names)) != len(names):
        parser.error(f"--in: source names must differ, got {', '.join(names)}")
    for number, spec in enumerate(args.sources):
        for earlier in args.sources[:number]:
            if same_file(spec.path, earlier.path):
                parser.error(
                    f"--in: {spec.name} and {earlier.name} are the same file ({spec.path}); it would be taken twice "
                    "- give it once, with the amount you want (e.g. :2.0 for twice)"
                )
    return args


def same_file(first, second):
    """True when two paths name one file (also through links or other spellings)."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return Path(first).resolve() == Path(second).resolve()


def parse_source(text):
    """`NAME=FILE[:AMOUNT]` -> SourceSpec; a trailing `:x` that is not a number belongs to the path."""
    name, separator, rest = text.partition("=")
    if not separator or not SOURCE_NAME.match(name) or not rest:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE[:AMOUNT], got {text!r}")
    path, _, amount = rest.rpartition(":")
    if not path or not re.fullmatch(r"\d+(\.\d*)?|\.\d+", amount):
        return SourceSpec(name, Path(rest))
    if "." in amount:
        weight = float(amount)
        return SourceSpec(name, Path(path), weight=weight)
    return SourceSpec(name, Path(path), count=int(amount))


def load_conversations(path):
    try:
        conversations = load_clean_json(path)
    except ConversationFileError as error:
        sys.exit(f"error: {error}")
    if not isinstance(conversations, list) or not all(
        isinstance(c, dict) and isinstance(c.get("items"), list) for c in conversations
    ):
        sys.exit(f"error: {path} is not a list of clean conversations (objects with `items`)")
    return conversations


def mix(sources, seed):
    """[(SourceSpec, conversations)] -> (mixed conversations, report); deterministic for `seed`."""
    rng = random.Random(seed)
    mixed, rows = [], []
    for spec, conversations in sources:
        wanted = spec.wanted(len(conversations))
        if wanted > MAX_TOTAL or len(mixed) + wanted > MAX_TOTAL:
            sys.exit(
                f"error: source {spec.name}: {spec.describe()} asks for {wanted:,} conversations; a mix holds at "
                f"most {MAX_TOTAL:,}"
            )
        if wanted and not conversations:
            sys.exit(f"error: source {spec.name} ({spec.path}) is empty but {spec.describe()} was asked")
        taken = draw(conversations, wanted, rng)
        mixed.extend({**conversation, "source": spec.name} for conversation in taken)
        rows.append(
            {
                "name": spec.name,
                "file": str(spec.path),
                "available": len(conversations),
                "asked": spec.describe(),
                "taken": len(taken),
                "repeated": max(0, len(taken) - len(conversations)),
            }
        )
    rng.shuffle(mixed)
    for row in rows:
        row["share"] = round(row["taken"] / len(mixed), 4) if mixed else 0.0
    return mixed, {"seed": seed, "total": len(mixed), "sources": rows}


def draw(conversations, wanted, rng):
    """`wanted` conversations: whole copies of the list, then a sample without replacement for the rest."""
    if not conversations:
        return []
    copies, remainder = divmod(wanted, len(conversations))
    return conversations * copies + rng.sample(conversations, remainder)


def format_table(report, out_file):
    lines = [f"{'source':<16}{'available':>10}{'asked':>16}{'taken':>8}{'share':>8}"]
    lines += [
        f"{row['name']:<16}{row['available']:>10}{row['asked']:>16}{row['taken']:>8}{row['share']:>8.1%}"
        for row in report["sources"]
    ]
    lines.append(f"{'total':<16}{'':>10}{'':>16}{report['total']:>8}   -> {out_file}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
