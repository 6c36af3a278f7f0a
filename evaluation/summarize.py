"""Scores from judge results, with bootstrap confidence intervals: a table on the terminal and JSON for the page.

Every kind of result is read (`--mode`, default: every kind found in INPUT_PATH):

`vicuna` — pairwise reviews from `evaluation.openai_eval` (`*_vs_*.jsonl`, in INPUT_PATH or
INPUT_PATH/reviews). Writes `summary.json`:

    {"benchmark": "vicuna", "mode": "vicuna", "baseline": "gpt-3.5-turbo", "min_judged": 20, "seed": 0,
     "models": [{"model": "m", "score_pct": 105.9, "score_pct_ci95": [98.1, 113.0],
                 "win_rate": 50.0, "win_rate_ci95": [30.0, 70.0], "total_model": 36.0, "total_baseline": 34.0,
                 "wins": 2, "ties": 1, "losses": 2, "failed": 3, "judged": 5, "failed_questions": 1,
                 "meaningful": false, "note": "only 5 judged questions (fewer than 20): not meaningful",
                 "conflict_rate": 0.25, "position_checked": 4,
                 "categories": {"generic": {"score_pct": 114.3, "wins": 1, "ties": 0, "losses": 0, "judged": 1}}}]}

score_pct is the model's total score over judged questions as a percentage of the
baseline's total; win_rate counts ties half. `failed` counts failed judge calls (left out),
`judged` the questions with a verdict, `conflict_rate` the share of pairs judged in both
orders whose verdict flips with the order (`position_checked` of them).

`mt_bench` — FastChat judgment files from `evaluation.mt_bench` (`*_single.jsonl` and/or
`*_pair.jsonl`). Writes `summary_mt_bench.json` ({"benchmark": "mt_bench", "mode": "mt_bench",
"single": {...}, "pairwise": {...}}): per model, single-answer means per turn and overall
(ratings of -1, unparseable, left out) with `mean_ci95`, and pairwise win/tie/loss against the
baseline (games whose two orders disagree count as ties) with `win_rate_adjusted_ci95`.

`alpaca_eval` — `*_annotations.json` from `evaluation.alpaca_eval`. Writes
`summary_alpaca_eval.json`: per model the win rate (draws count half) with `win_rate_ci95`,
its standard error, and win/draw/loss counts.

Every interval is a percentile bootstrap over questions (`--bootstrap_resamples` resamples,
seeded by `--seed`, so the same results give the same interval). Every model entry says how
many questions were judged and how many judge calls failed, and `meaningful` is false below
`--min_judged` (20) judged questions. Nothing judged at all exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from evaluation.benchmark_data import read_jsonl
from evaluation.summary_statistics import (
    Statistics,
    alpaca_win_rate,
    summarize_pairwise_games,
    summarize_pairwise_reviews,
    summarize_single_ratings,
)
from evaluation.summary_tables import format_alpaca_table, format_mt_bench_tables, format_vicuna_table
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic

MODES = ("vicuna", "mt_bench", "alpaca_eval")
SUMMARY_FILES = {
    "vicuna": "summary.json",
    "mt_bench": "summary_mt_bench.json",
    "alpaca_eval": "summary_alpaca_eval.json",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.summarize",
        description="Summarize judge results into a table and a JSON file, with bootstrap "
        "95% confidence intervals over questions.",
    )
    parser.add_argument(
        "--input_path",
        required=True,
        help="folder with judge results (reviews/, *_vs_*.jsonl, *_single.jsonl, *_pair.jsonl, *_annotations.json)",
    )
    parser.add_argument("--output_path", default=None, help="folder for the summary JSON (default INPUT_PATH)")
    parser.add_argument(
        "--mode",
        choices=["auto", *MODES],
        default="auto",
        help="which kind of results to read (default: every kind found)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="vicuna / MT-bench pairwise: the baseline to summarize when results against several exist",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default %(default)s)")
    parser.add_argument(
        "--bootstrap_resamples", type=int, default=2000, help="bootstrap resamples per interval (default %(default)s)"
    )
    parser.add_argument(
        "--min_judged",
        type=int,
        default=20,
        help="fewer judged questions than this and a figure is marked not meaningful (default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    input_path = Path(args.input_path)
    if not input_path.is_dir():
        raise SystemExit(f"--input_path {input_path} is not a folder")
    modes = [args.mode] if args.mode != "auto" else detect_modes(input_path)
    output_path = Path(args.output_path or input_path)
    statistics = Statistics(args.seed, args.bootstrap_resamples, args.min_judged)
    judged = failed = calls = 0
    for mode in modes:
        if mode == "vicuna":
            summary = summarize_pairwise_reviews(load_review_files(input_path, args.baseline), statistics)
            table = format_vicuna_table(summary)
        elif mode == "mt_bench":
            summary = summarize_mt_bench(input_path, args.baseline, statistics)
            table = format_mt_bench_tables(summary)
        else:
            summary = summarize_alpaca_eval(input_path, statistics)
            table = format_alpaca_table(summary)
        summary.update({"mode": mode, "seed": args.seed, "min_judged": args.min_judged})
        print(table)
        target = output_path / SUMMARY_FILES[mode]
        write_json_atomic(target, summary, indent=2)
        print(f"summary: {target}", file=sys.stderr)
        for entry in model_entries(summary):
            judged += entry["judged"]
            failed += entry["failed"]
            calls += entry["calls"]
    if judged == 0:
        raise SystemExit(f"error: nothing could be judged in {input_path}: all {calls} judge calls failed")
    if failed:
        print(
            f"warning: {failed} of {calls} judge calls failed ({100 * failed / calls:.1f}%) and are left out of "
            "every figure",
            file=sys.stderr,
        )


def detect_modes(input_path: Path) -> list[str]:
    modes = []
    if review_files(input_path):
        modes.append("vicuna")
    if list(input_path.glob("*_single.jsonl")) or list(input_path.glob("*_pair.jsonl")):
        modes.append("mt_bench")
    if list(input_path.glob("*_annotations.json")):
        modes.append("alpaca_eval")
    if not modes:
        raise SystemExit(
            f"no judge results in {input_path}: expected reviews (*_vs_*.jsonl), MT-bench judgments "
            "(*_single.jsonl / *_pair.jsonl) or AlpacaEval annotations (*_annotations.json)"
        )
    return modes


def model_entries(summary: dict) -> list[dict]:
    if summary.get("mode") == "mt_bench":
        return [entry for part in ("single", "pairwise") if summary[part] for entry in summary[part]["models"]]
    return summary["models"]


# ---------------------------------------------------------------- reading judge results


def review_files(input_path: Path) -> list[Path]:
    folders = [input_path, input_path / "reviews"]
    return sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.glob("*_vs_*.jsonl")
        if not path.name.endswith(".calls.jsonl")
    )


def load_review_files(input_path: Path, baseline: Optional[str]) -> list[list[dict]]:
    per_file = unique_reviews([(path, read_jsonl(path)) for path in review_files(input_path)])
    baselines = sorted({records[0]["baseline"] for records in per_file})
    if baseline is not None:
        per_file = [records for records in per_file if records[0]["baseline"] == baseline]
        if not per_file:
            raise SystemExit(f"no reviews against baseline {baseline!r} (found: {baselines})")
    elif len(baselines) > 1:
        raise SystemExit(f"reviews against several baselines {baselines}; choose one with --baseline")
    if not per_file:
        raise SystemExit(f"no reviews in {input_path}")
    return per_file


def unique_reviews(files: list[tuple[Path, list[dict]]]) -> list[list[dict]]:
    """One review list per model and baseline: a copy of the same reviews (in `X/` and `X/reviews/`) is
    counted once; two files that review the same pair differently are refused, naming both."""
    first_by_pair: dict[tuple, tuple[Path, list[dict]]] = {}
    for path, records in files:
        if not records:
            continue
        if not all(isinstance(record, dict) and "model" in record and "baseline" in record for record in records):
            raise SystemExit(f"error: {path} is not a review file (records need model and baseline)")
        pair = (records[0]["model"], records[0]["baseline"])
        if pair not in first_by_pair:
            first_by_pair[pair] = (path, records)
        elif first_by_pair[pair][1] != records:
            raise SystemExit(
                f"error: {first_by_pair[pair][0]} and {path} both review {pair[0]} against {pair[1]}, differently; "
                "keep one of them"
            )
        else:
            print(f"{path}: the same reviews as {first_by_pair[pair][0]}, counted once", file=sys.stderr)
    return [records for _, records in first_by_pair.values()]


def summarize_mt_bench(input_path: Path, baseline: Optional[str], statistics: Statistics) -> dict:
    summary = {"benchmark": "mt_bench", "single": None, "pairwise": None}
    single_rows = [row for path in sorted(input_path.glob("*_single.jsonl")) for row in read_jsonl(path)]
    pair_rows = [row for path in sorted(input_path.glob("*_pair.jsonl")) for row in read_jsonl(path)]
    if single_rows:
        summary["single"] = summarize_single_ratings(single_rows, statistics)
    if pair_rows:
        summary["pairwise"] = summarize_pairwise_games(pair_rows, baseline, statistics)
    if not single_rows and not pair_rows:
        raise SystemExit(f"no MT-bench judgments in {input_path}")
    return summary


def summarize_alpaca_eval(input_path: Path, statistics: Statistics) -> dict:
    models = []
    for path in sorted(input_path.glob("*_annotations.json")):
        try:
            annotations = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}: not JSON ({error})") from None
        if annotations:
            models.append(alpaca_win_rate(annotations, statistics))
    if not models:
        raise SystemExit(f"no annotations in {input_path}")
    return {
        "benchmark": "alpaca_eval",
        "reference": models[0]["reference"],
        "models": sorted(models, key=lambda entry: -(entry["win_rate"] or 0)),
    }


if __name__ == "__main__":
    main()
