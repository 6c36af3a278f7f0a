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
import math
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev
from typing import Optional

import numpy as np
from scipy.stats import bootstrap

from evaluation.benchmark_data import read_jsonl
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


class Statistics:
    """Seeded percentile-bootstrap intervals over questions, and the "meaningful" threshold."""

    def __init__(self, seed: int = 0, resamples: int = 2000, min_judged: int = 20):
        self.seed, self.resamples, self.min_judged = seed, resamples, min_judged

    def ratio_ci(self, numerators: list[float], denominators: list[float], scale: float = 1.0) -> Optional[list]:
        """95% interval of sum(numerators) / sum(denominators) when questions are resampled with replacement.

        Every figure here is such a ratio over questions: a score ratio (model / baseline totals),
        a mean (ratings / counts), a win rate (wins + ties / 2 over games)."""
        if len(numerators) < 2:
            return None
        numerators, denominators = np.asarray(numerators, float), np.asarray(denominators, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            result = bootstrap(
                (numerators, denominators),
                lambda n, d, axis: n.sum(axis) / d.sum(axis),
                paired=True,
                vectorized=True,
                method="percentile",
                confidence_level=0.95,
                n_resamples=self.resamples,
                rng=np.random.default_rng(self.seed),
            )
        low, high = result.confidence_interval
        if not (math.isfinite(low) and math.isfinite(high)):
            return None
        return [round(float(low) * scale, 4), round(float(high) * scale, 4)]

    def reliability(self, judged: int) -> dict:
        meaningful = judged >= self.min_judged
        return {
            "meaningful": meaningful,
            "note": None
            if meaningful
            else f"only {judged} judged questions (fewer than {self.min_judged}): the figure is not meaningful",
        }


# ---------------------------------------------------------------- Vicuna-style pairwise reviews


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


def summarize_pairwise_reviews(per_model_records: list[list[dict]], statistics: Statistics) -> dict:
    """The contract's summary.json from one reviews file per model."""
    models = [summarize_model_reviews(records, statistics) for records in per_model_records]
    first = per_model_records[0][0]
    return {
        "benchmark": first.get("benchmark", "vicuna"),
        "baseline": first["baseline"],
        "models": sorted(models, key=lambda entry: -(entry["score_pct"] or 0)),
    }


def summarize_model_reviews(records: list[dict], statistics: Statistics) -> dict:
    judged = [record for record in records if record["verdict"] is not None]
    both_orders = [record for record in records if judged_in_both_orders(record)]
    counts = score_counts(judged)
    wins = [1.0 if r["verdict"] == "win" else 0.5 if r["verdict"] == "tie" else 0.0 for r in judged]
    entry = {
        "model": records[0]["model"],
        **counts,
        "score_pct_ci95": statistics.ratio_ci(
            [r["score_model"] for r in judged], [r["score_baseline"] for r in judged], 100.0
        ),
        "win_rate": 100.0 * mean(wins) if wins else None,
        "win_rate_ci95": statistics.ratio_ci(wins, [1.0] * len(wins), 100.0),
        "failed": sum(review["failed"] for record in records for review in record["reviews"]),
        "calls": sum(len(record["reviews"]) for record in records),
        "judged": len(judged),
        "failed_questions": len(records) - len(judged),
        **statistics.reliability(len(judged)),
        "conflict_rate": (
            sum(record["conflict"] for record in both_orders) / len(both_orders) if both_orders else None
        ),
        "position_checked": len(both_orders),
        "categories": {},
    }
    by_category = defaultdict(list)
    for record in judged:
        by_category[record["category"]].append(record)
    for category, category_records in by_category.items():
        category_counts = score_counts(category_records)
        entry["categories"][category] = {key: category_counts[key] for key in ("score_pct", "wins", "ties", "losses")}
        entry["categories"][category]["judged"] = len(category_records)
    return entry


def score_counts(judged: list[dict]) -> dict:
    total_model = sum(record["score_model"] for record in judged)
    total_baseline = sum(record["score_baseline"] for record in judged)
    verdicts = [record["verdict"] for record in judged]
    return {
        "score_pct": 100.0 * total_model / total_baseline if total_baseline else None,
        "total_model": total_model,
        "total_baseline": total_baseline,
        "wins": verdicts.count("win"),
        "ties": verdicts.count("tie"),
        "losses": verdicts.count("loss"),
    }


def judged_in_both_orders(record: dict) -> bool:
    return len({review["order"] for review in record["reviews"] if not review["failed"]}) == 2


def format_vicuna_table(summary: dict) -> str:
    rows = [
        [
            entry["model"],
            _pct(entry["score_pct"]),
            _ci(entry["score_pct_ci95"]),
            _pct(entry["win_rate"]),
            _ci(entry["win_rate_ci95"]),
            f"{entry['wins']}/{entry['ties']}/{entry['losses']}",
            str(entry["judged"]),
            f"{entry['failed']}/{entry['calls']}",
            _pct(_times100(entry["conflict_rate"])),
            "" if entry["meaningful"] else "not meaningful",
        ]
        for entry in summary["models"]
    ]
    lines = [
        f"{summary['benchmark']}: score as % of {summary['baseline']} (95% bootstrap CI over questions)",
        format_table(
            [
                "model",
                "score %",
                "95% CI",
                "win rate",
                "95% CI",
                "win/tie/loss",
                "judged",
                "failed calls",
                "conflicts",
                "",
            ],
            rows,
        ),
    ]
    categories = sorted({category for entry in summary["models"] for category in entry["categories"]})
    if categories:
        rows = [
            [entry["model"]] + [_category_cell(entry["categories"].get(category)) for category in categories]
            for entry in summary["models"]
        ]
        lines += ["", "per category, score % (judged questions)", format_table(["model"] + categories, rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------- MT-bench (FastChat judgments)


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


def summarize_single_ratings(rows: list[dict], statistics: Statistics) -> dict:
    """Per model: mean rating per turn and overall, per category; ratings of -1 (unparseable) left out."""
    by_model = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)
    models = []
    for model, model_rows in by_model.items():
        scored = [row for row in model_rows if row["score"] != -1]
        per_question = defaultdict(list)
        for row in scored:
            per_question[row["question_id"]].append(row["score"])
        entry = {
            "model": model,
            "mean": _mean([row["score"] for row in scored]),
            "mean_ci95": statistics.ratio_ci(
                [sum(v) for v in per_question.values()], [len(v) for v in per_question.values()]
            ),
            "scored": len(scored),
            "failed": len(model_rows) - len(scored),
            "calls": len(model_rows),
            "judged": len(per_question),
            **statistics.reliability(len(per_question)),
            "turns": {},
            "categories": {},
        }
        for turn in sorted({row["turn"] for row in model_rows}):
            entry["turns"][str(turn)] = _mean([row["score"] for row in scored if row["turn"] == turn])
        for category in sorted({row.get("category") for row in scored if row.get("category")}):
            entry["categories"][category] = _mean([row["score"] for row in scored if row.get("category") == category])
        models.append(entry)
    judges = sorted({tuple(row["judge"])[0] for row in rows})
    return {
        "judge": judges[0] if len(judges) == 1 else judges,
        "models": sorted(models, key=lambda entry: -(entry["mean"] or 0)),
    }


def summarize_pairwise_games(rows: list[dict], baseline: Optional[str], statistics: Statistics) -> dict:
    """Per model against the baseline: a game counts only when both orders agree; disagreement is a tie."""
    baselines = sorted({row["model_2"] for row in rows})
    if baseline is None:
        if len(baselines) > 1:
            raise SystemExit(f"pairwise games against several baselines {baselines}; choose one with --baseline")
        baseline = baselines[0]
    by_model = defaultdict(lambda: {"wins": 0, "ties": 0, "losses": 0, "inconsistent": 0, "failed": 0, "calls": 0})
    points = defaultdict(lambda: defaultdict(list))  # model -> question -> [1, 0.5, 0] per game
    for row in rows:
        if row["model_2"] != baseline:
            continue
        counts = by_model[row["model_1"]]
        g1, g2 = row["g1_winner"], row["g2_winner"]
        counts["calls"] += 2
        if "error" in (g1, g2):
            counts["failed"] += (g1 == "error") + (g2 == "error")
            continue
        if g1 != g2:
            counts["inconsistent"] += 1
            winner = "tie"
        else:
            winner = g1
        counts[{"model_1": "wins", "model_2": "losses", "tie": "ties"}[winner]] += 1
        points[row["model_1"]][row["question_id"]].append({"model_1": 1.0, "tie": 0.5, "model_2": 0.0}[winner])
    models = []
    for model, counts in by_model.items():
        total = counts["wins"] + counts["ties"] + counts["losses"]
        per_question = points[model]
        models.append(
            {
                "model": model,
                **counts,
                "games": total,
                "win_rate": counts["wins"] / total if total else None,
                "loss_rate": counts["losses"] / total if total else None,
                "win_rate_adjusted": (counts["wins"] + 0.5 * counts["ties"]) / total if total else None,
                "win_rate_adjusted_ci95": statistics.ratio_ci(
                    [sum(v) for v in per_question.values()], [len(v) for v in per_question.values()]
                ),
                "judged": len(per_question),
                **statistics.reliability(len(per_question)),
            }
        )
    return {"baseline": baseline, "models": sorted(models, key=lambda entry: -(entry["win_rate_adjusted"] or 0))}


def format_mt_bench_tables(summary: dict) -> str:
    lines = []
    if summary["single"]:
        turn_names = sorted({turn for entry in summary["single"]["models"] for turn in entry["turns"]})
        rows = [
            [entry["model"]]
            + [_num(entry["turns"].get(turn)) for turn in turn_names]
            + [
                _num(entry["mean"]),
                _ci(entry["mean_ci95"], 2),
                str(entry["judged"]),
                f"{entry['failed']}/{entry['calls']}",
                "" if entry["meaningful"] else "not meaningful",
            ]
            for entry in summary["single"]["models"]
        ]
        lines += [
            "MT-bench single-answer grading (1-10; 95% bootstrap CI over questions)",
            format_table(
                ["model"] + [f"turn {turn}" for turn in turn_names] + ["mean", "95% CI", "judged", "failed calls", ""],
                rows,
            ),
        ]
    if summary["pairwise"]:
        rows = [
            [
                entry["model"],
                str(entry["wins"]),
                str(entry["ties"]),
                str(entry["losses"]),
                str(entry["inconsistent"]),
                _pct(_times100(entry["win_rate"])),
                _pct(_times100(entry["win_rate_adjusted"])),
                _ci(_times100_pair(entry["win_rate_adjusted_ci95"])),
                str(entry["judged"]),
                f"{entry['failed']}/{entry['calls']}",
                "" if entry["meaningful"] else "not meaningful",
            ]
            for entry in summary["pairwise"]["models"]
        ]
        lines += ([""] if lines else []) + [
            f"MT-bench pairwise against {summary['pairwise']['baseline']}",
            format_table(
                [
                    "model",
                    "win",
                    "tie",
                    "loss",
                    "inconsistent",
                    "win %",
                    "adjusted %",
                    "95% CI",
                    "judged",
                    "failed calls",
                    "",
                ],
                rows,
            ),
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------- AlpacaEval-style preferences


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


def alpaca_win_rate(annotations: list[dict], statistics: Statistics) -> dict:
    """Win rate = mean over instructions of (preference - 1), in %; draws (1.5) count half; SE of that mean."""
    preferences = [a["preference"] for a in annotations if a["preference"] is not None]
    wins = [preference - 1.0 for preference in preferences]
    calls = sum(len(a.get("order_preference") or {}) for a in annotations)
    return {
        "model": annotations[0]["generator_2"],
        "reference": annotations[0]["generator_1"],
        "win_rate": 100.0 * mean(wins) if wins else None,
        "win_rate_ci95": statistics.ratio_ci(wins, [1.0] * len(wins), 100.0),
        "standard_error": 100.0 * stdev(wins) / math.sqrt(len(wins)) if len(wins) > 1 else None,
        "n_wins": sum(p > 1.5 for p in preferences),
        "n_draws": sum(p == 1.5 for p in preferences),
        "n_losses": sum(p < 1.5 for p in preferences),
        "n_total": len(preferences),
        "judged": len(preferences),
        "failed_questions": len(annotations) - len(preferences),
        "failed": sum(value is None for a in annotations for value in (a.get("order_preference") or {}).values()),
        "calls": calls,
        **statistics.reliability(len(preferences)),
    }


def format_alpaca_table(summary: dict) -> str:
    rows = [
        [
            entry["model"],
            _num(entry["win_rate"]),
            _ci(entry["win_rate_ci95"]),
            _num(entry["standard_error"]),
            f"{entry['n_wins']}/{entry['n_draws']}/{entry['n_losses']}",
            str(entry["judged"]),
            f"{entry['failed']}/{entry['calls']}",
            "" if entry["meaningful"] else "not meaningful",
        ]
        for entry in summary["models"]
    ]
    return "\n".join(
        [
            f"AlpacaEval-style win rate against {summary['reference']} (95% bootstrap CI over instructions)",
            format_table(
                ["model", "win rate %", "95% CI", "std. error", "win/draw/loss", "judged", "failed calls", ""], rows
            ),
        ]
    )


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


def _category_cell(category: Optional[dict]) -> str:
    return "-" if not category else f"{_pct(category['score_pct'])} ({category.get('judged', '?')})"


def _times100_pair(pair: Optional[list]) -> Optional[list]:
    return None if pair is None else [100.0 * value for value in pair]


def _ci(pair: Optional[list], digits: int = 1) -> str:
    return "-" if pair is None else f"[{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _num(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


if __name__ == "__main__":
    main()
