"""Scores from judge results: a table on the terminal and JSON for the eval-result visualizer.

Three kinds of results are read, chosen by `--mode` (default: by the files found):

`vicuna` — pairwise reviews from `evaluation.openai_eval` (`*_vs_*.jsonl`, in INPUT_PATH or
INPUT_PATH/reviews). Writes `summary.json`:

    {"benchmark": "vicuna", "baseline": "gpt-3.5-turbo",
     "models": [{"model": "m", "score_pct": 105.9, "total_model": 36.0, "total_baseline": 34.0,
                 "wins": 2, "ties": 1, "losses": 2, "failed": 3, "judged": 5, "failed_questions": 1,
                 "conflict_rate": 0.25, "position_checked": 4,
                 "categories": {"generic": {"score_pct": 114.3, "wins": 1, "ties": 0, "losses": 0}}}]}

score_pct is the model's total score over judged questions as a percentage of the
baseline's total; `failed` counts failed judge calls (left out), `judged` the questions
with a verdict, `conflict_rate` the share of pairs judged in both orders whose verdict
flips with the order (`position_checked` of them).

`mt_bench` — FastChat judgment files from `evaluation.mt_bench` (`*_single.jsonl` and/or
`*_pair.jsonl`). Writes `summary_mt_bench.json` with, per model, single-answer means per
turn and overall (ratings of -1, unparseable, left out) and pairwise win/tie/loss against
the baseline (games whose two orders disagree count as ties).

`alpaca_eval` — `*_annotations.json` from `evaluation.alpaca_eval`. Writes
`summary_alpaca_eval.json`: per model the win rate (draws count half), its standard error,
and win/draw/loss counts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev
from typing import Optional

from evaluation.benchmark_data import read_jsonl, write_text_atomic
from ochat.utils.cli import ArgumentParser


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m evaluation.summarize",
                                     description="Summarize judge results into a table and a JSON file.")
    parser.add_argument("--input_path", required=True,
                        help="folder with judge results (reviews/, *_vs_*.jsonl, *_single.jsonl, *_pair.jsonl, "
                             "*_annotations.json)")
    parser.add_argument("--output_path", default=None, help="folder for the summary JSON (default INPUT_PATH)")
    parser.add_argument("--mode", choices=["auto", "vicuna", "mt_bench", "alpaca_eval"], default="auto",
                        help="which kind of results to read (default: by the files found)")
    parser.add_argument("--baseline", default=None, help="vicuna / MT-bench pairwise: the baseline to summarize "
                                                         "when results against several exist")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    input_path = Path(args.input_path)
    if not input_path.is_dir():
        raise SystemExit(f"--input_path {input_path} is not a folder")
    mode = args.mode if args.mode != "auto" else detect_mode(input_path)
    output_path = Path(args.output_path or input_path)
    if mode == "vicuna":
        summary = summarize_pairwise_reviews(load_review_files(input_path, args.baseline))
        print(format_vicuna_table(summary))
        target = output_path / "summary.json"
    elif mode == "mt_bench":
        summary = summarize_mt_bench(input_path, args.baseline)
        print(format_mt_bench_tables(summary))
        target = output_path / "summary_mt_bench.json"
    else:
        summary = summarize_alpaca_eval(input_path)
        print(format_alpaca_table(summary))
        target = output_path / "summary_alpaca_eval.json"
    write_text_atomic(target, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"summary: {target}", file=sys.stderr)


def detect_mode(input_path: Path) -> str:
    if review_files(input_path):
        return "vicuna"
    if list(input_path.glob("*_single.jsonl")) or list(input_path.glob("*_pair.jsonl")):
        return "mt_bench"
    if list(input_path.glob("*_annotations.json")):
        return "alpaca_eval"
    raise SystemExit(f"no judge results in {input_path}: expected reviews (*_vs_*.jsonl), MT-bench judgments "
                     "(*_single.jsonl / *_pair.jsonl) or AlpacaEval annotations (*_annotations.json)")


# ---------------------------------------------------------------- Vicuna-style pairwise reviews

def review_files(input_path: Path) -> list[Path]:
    folders = [input_path, input_path / "reviews"]
    return sorted(path for folder in folders if folder.is_dir() for path in folder.glob("*_vs_*.jsonl")
                  if not path.name.endswith(".calls.jsonl"))


def load_review_files(input_path: Path, baseline: Optional[str]) -> list[list[dict]]:
    per_file = [read_jsonl(path) for path in review_files(input_path)]
    per_file = [records for records in per_file if records]
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


def summarize_pairwise_reviews(per_model_records: list[list[dict]]) -> dict:
    """The contract's summary.json from one reviews file per model."""
    models = [summarize_model_reviews(records) for records in per_model_records]
    first = per_model_records[0][0]
    return {"benchmark": first.get("benchmark", "vicuna"), "baseline": first["baseline"],
            "models": sorted(models, key=lambda entry: -(entry["score_pct"] or 0))}


def summarize_model_reviews(records: list[dict]) -> dict:
    judged = [record for record in records if record["verdict"] is not None]
    both_orders = [record for record in records if judged_in_both_orders(record)]
    entry = {"model": records[0]["model"], **score_counts(judged),
             "failed": sum(review["failed"] for record in records for review in record["reviews"]),
             "judged": len(judged), "failed_questions": len(records) - len(judged),
             "conflict_rate": (sum(record["conflict"] for record in both_orders) / len(both_orders)
                               if both_orders else None),
             "position_checked": len(both_orders), "categories": {}}
    by_category = defaultdict(list)
    for record in judged:
        by_category[record["category"]].append(record)
    for category, category_records in by_category.items():
        counts = score_counts(category_records)
        entry["categories"][category] = {key: counts[key] for key in ("score_pct", "wins", "ties", "losses")}
    return entry


def score_counts(judged: list[dict]) -> dict:
    total_model = sum(record["score_model"] for record in judged)
    total_baseline = sum(record["score_baseline"] for record in judged)
    verdicts = [record["verdict"] for record in judged]
    return {"score_pct": 100.0 * total_model / total_baseline if total_baseline else None,
            "total_model": total_model, "total_baseline": total_baseline,
            "wins": verdicts.count("win"), "ties": verdicts.count("tie"), "losses": verdicts.count("loss")}


def judged_in_both_orders(record: dict) -> bool:
    return len({review["order"] for review in record["reviews"] if not review["failed"]}) == 2


def format_vicuna_table(summary: dict) -> str:
    rows = [[entry["model"], _pct(entry["score_pct"]), f"{entry['wins']}/{entry['ties']}/{entry['losses']}",
             str(entry["judged"]), str(entry["failed"]), _pct(_times100(entry["conflict_rate"]))]
            for entry in summary["models"]]
    lines = [f"{summary['benchmark']}: score as % of {summary['baseline']}",
             format_table(["model", "score %", "win/tie/loss", "judged", "failed calls", "conflicts"], rows)]
    categories = sorted({category for entry in summary["models"] for category in entry["categories"]})
    if categories:
        rows = [[entry["model"]] + [_pct(entry["categories"].get(category, {}).get("score_pct"))
                                    for category in categories] for entry in summary["models"]]
        lines += ["", "per category, score %", format_table(["model"] + categories, rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------- MT-bench (FastChat judgments)

def summarize_mt_bench(input_path: Path, baseline: Optional[str]) -> dict:
    summary = {"benchmark": "mt_bench", "single": None, "pairwise": None}
    single_rows = [row for path in sorted(input_path.glob("*_single.jsonl")) for row in read_jsonl(path)]
    pair_rows = [row for path in sorted(input_path.glob("*_pair.jsonl")) for row in read_jsonl(path)]
    if single_rows:
        summary["single"] = summarize_single_ratings(single_rows)
    if pair_rows:
        summary["pairwise"] = summarize_pairwise_games(pair_rows, baseline)
    return summary


def summarize_single_ratings(rows: list[dict]) -> dict:
    """Per model: mean rating per turn and overall, per category; ratings of -1 (unparseable) left out."""
    by_model = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)
    models = []
    for model, model_rows in by_model.items():
        scored = [row for row in model_rows if row["score"] != -1]
        entry = {"model": model, "mean": _mean([row["score"] for row in scored]),
                 "scored": len(scored), "failed": len(model_rows) - len(scored), "turns": {}, "categories": {}}
        for turn in sorted({row["turn"] for row in model_rows}):
            entry["turns"][str(turn)] = _mean([row["score"] for row in scored if row["turn"] == turn])
        for category in sorted({row.get("category") for row in scored if row.get("category")}):
            entry["categories"][category] = _mean([row["score"] for row in scored if row.get("category") == category])
        models.append(entry)
    judges = sorted({tuple(row["judge"])[0] for row in rows})
    return {"judge": judges[0] if len(judges) == 1 else judges,
            "models": sorted(models, key=lambda entry: -(entry["mean"] or 0))}


def summarize_pairwise_games(rows: list[dict], baseline: Optional[str]) -> dict:
    """Per model against the baseline: a game counts only when both orders agree; disagreement is a tie."""
    baselines = sorted({row["model_2"] for row in rows})
    if baseline is None:
        if len(baselines) > 1:
            raise SystemExit(f"pairwise games against several baselines {baselines}; choose one with --baseline")
        baseline = baselines[0]
    by_model = defaultdict(lambda: {"wins": 0, "ties": 0, "losses": 0, "inconsistent": 0, "failed": 0})
    for row in rows:
        if row["model_2"] != baseline:
            continue
        counts = by_model[row["model_1"]]
        g1, g2 = row["g1_winner"], row["g2_winner"]
        if "error" in (g1, g2):
            counts["failed"] += 1
            continue
        if g1 != g2:
            counts["inconsistent"] += 1
            winner = "tie"
        else:
            winner = g1
        counts[{"model_1": "wins", "model_2": "losses", "tie": "ties"}[winner]] += 1
    models = []
    for model, counts in by_model.items():
        total = counts["wins"] + counts["ties"] + counts["losses"]
        models.append({"model": model, **counts, "games": total,
                       "win_rate": counts["wins"] / total if total else None,
                       "loss_rate": counts["losses"] / total if total else None,
                       "win_rate_adjusted": (counts["wins"] + 0.5 * counts["ties"]) / total if total else None})
    return {"baseline": baseline, "models": sorted(models, key=lambda entry: -(entry["win_rate_adjusted"] or 0))}


def format_mt_bench_tables(summary: dict) -> str:
    lines = []
    if summary["single"]:
        turn_names = sorted({turn for entry in summary["single"]["models"] for turn in entry["turns"]})
        rows = [[entry["model"]] + [_num(entry["turns"].get(turn)) for turn in turn_names]
                + [_num(entry["mean"]), str(entry["scored"]), str(entry["failed"])]
                for entry in summary["single"]["models"]]
        lines += ["MT-bench single-answer grading (1-10)",
                  format_table(["model"] + [f"turn {turn}" for turn in turn_names] + ["mean", "scored", "failed"],
                               rows)]
    if summary["pairwise"]:
        rows = [[entry["model"], str(entry["wins"]), str(entry["ties"]), str(entry["losses"]),
                 str(entry["inconsistent"]), str(entry["failed"]), _pct(_times100(entry["win_rate"])),
                 _pct(_times100(entry["win_rate_adjusted"]))] for entry in summary["pairwise"]["models"]]
        lines += ([""] if lines else []) + [f"MT-bench pairwise against {summary['pairwise']['baseline']}",
                  format_table(["model", "win", "tie", "loss", "inconsistent", "failed", "win %", "adjusted %"],
                               rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------- AlpacaEval-style preferences

def summarize_alpaca_eval(input_path: Path) -> dict:
    models = []
    for path in sorted(input_path.glob("*_annotations.json")):
        annotations = json.loads(path.read_text(encoding="utf-8"))
        if annotations:
            models.append(alpaca_win_rate(annotations))
    if not models:
        raise SystemExit(f"no annotations in {input_path}")
    return {"benchmark": "alpaca_eval", "models": sorted(models, key=lambda entry: -entry["win_rate"])}


def alpaca_win_rate(annotations: list[dict]) -> dict:
    """Win rate = mean over instructions of (preference - 1), in %; draws (1.5) count half; SE of that mean."""
    preferences = [a["preference"] for a in annotations if a["preference"] is not None]
    wins = [preference - 1.0 for preference in preferences]
    return {"model": annotations[0]["generator_2"], "reference": annotations[0]["generator_1"],
            "win_rate": 100.0 * mean(wins) if wins else float("nan"),
            "standard_error": 100.0 * stdev(wins) / math.sqrt(len(wins)) if len(wins) > 1 else None,
            "n_wins": sum(p > 1.5 for p in preferences), "n_draws": sum(p == 1.5 for p in preferences),
            "n_losses": sum(p < 1.5 for p in preferences), "n_total": len(preferences),
            "failed": len(annotations) - len(preferences)}


def format_alpaca_table(summary: dict) -> str:
    rows = [[entry["model"], _num(entry["win_rate"]), _num(entry["standard_error"]),
             f"{entry['n_wins']}/{entry['n_draws']}/{entry['n_losses']}", str(entry["failed"])]
            for entry in summary["models"]]
    return "\n".join([f"AlpacaEval-style win rate against {summary['models'][0]['reference']}",
                      format_table(["model", "win rate %", "std. error", "win/draw/loss", "failed"], rows)])


# ---------------------------------------------------------------- helpers

def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain aligned text table; small enough not to need a dependency."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    def line(cells):
        return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * width for width in widths])] + [line(row) for row in rows])


def _mean(values: list[float]) -> Optional[float]:
    return mean(values) if values else None


def _times100(value: Optional[float]) -> Optional[float]:
    return None if value is None else 100.0 * value


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _num(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


if __name__ == "__main__":
    main()
