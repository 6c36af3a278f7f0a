"""Tokens supervised under the three ways of fitting conversations to the context.

    python benchmarks/supervision_modes.py --model-path MODEL_WITH_EOT --in-file sharegpt_gpt4.json

Runs `data_pipeline.generate_dataset`'s conversion with tail-cut (the
original), turn-cut (default) and split (--split-long) on the given clean
conversations and on a generated corpus of long multi-round conversations,
and prints, per mode: samples, tokens kept, supervised tokens kept, samples
whose answer lost its EOT, samples with nothing supervised.
"""

from __future__ import annotations

import argparse
import json
import random

from data_pipeline.tokenized_samples import ConversionStats, convert_conversations
from ochat.config import get_model_config, load_tokenizer
from ochat.utils.cli import ArgumentParser

MODES = [("tail-cut", "tail", False), ("turn-cut", "turn", False), ("split", "turn", True)]
WORDS = (
    "model data token answer question python function river mountain history energy music garden "
    "market science planet recipe travel language memory network"
).split()


def long_corpus(count: int, seed: int) -> list[dict]:
    """Conversations of 4-14 rounds with answers of 40-400 words: most exceed a 2048 context."""
    rng = random.Random(seed)
    conversations = []
    for index in range(count):
        items = []
        for _ in range(rng.randint(4, 14)):
            items.append({"from": "human", "value": " ".join(rng.choices(WORDS, k=rng.randint(5, 60))) + "?"})
            items.append({"from": "gpt", "value": " ".join(rng.choices(WORDS, k=rng.randint(40, 400))) + "."})
        conversations.append({"id": f"long{index}", "items": items})
    return conversations


def measure(config, tokenizer, conversations) -> list[dict]:
    rows = []
    for label, truncation, split_long in MODES:
        stats = ConversionStats()
        samples = convert_conversations(config, tokenizer, conversations, truncation, split_long, stats)
        rows.append(
            {
                "mode": label,
                "samples": len(samples),
                "tokens_kept": stats.tokens_kept,
                "tokens_total": stats.tokens_total,
                "supervised_kept": stats.supervised_kept,
                "supervised_total": stats.supervised_total,
                "answers_without_eot": sum(
                    sample.token_ids[-1] != tokenizer.eot_token_id and sample.supervise_mask[-1] for sample in samples
                ),
                "dropped_nothing_supervised": stats.dropped_no_supervised_tokens,
            }
        )
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    header = f"{'mode':<10} {'samples':>8} {'tokens kept':>18} {'supervised kept':>22} {'share':>7} {'no-EOT answers':>15} {'all-false':>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        share = row["supervised_kept"] / max(row["supervised_total"], 1)
        print(
            f"{row['mode']:<10} {row['samples']:>8} {row['tokens_kept']:>9}/{row['tokens_total']:<8} "
            f"{row['supervised_kept']:>11}/{row['supervised_total']:<10} {share:>7.1%} "
            f"{row['answers_without_eot']:>15} {row['dropped_nothing_supervised']:>10}"
        )


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_type", default="openchat_tiny")
    parser.add_argument("--model_path", required=True, help="model folder with the EOT token")
    parser.add_argument("--in_file", required=True, help="clean conversations, e.g. sharegpt_gpt4.json")
    parser.add_argument("--long_count", type=int, default=500, help="generated long conversations")
    args = parser.parse_args(argv)
    config = get_model_config(args.model_type)
    tokenizer = load_tokenizer(config, args.model_path)
    with open(args.in_file, encoding="utf-8") as handle:
        bundled = json.load(handle)
    print(f"model type {config.name}, context {config.max_context}")
    print_table(f"{args.in_file} ({len(bundled)} conversations)", measure(config, tokenizer, bundled))
    print_table(
        f"generated long corpus ({args.long_count} conversations)",
        measure(config, tokenizer, long_corpus(args.long_count, seed=0)),
    )


if __name__ == "__main__":
    main()
