"""The figures of a summary, computed from judge records: scores, win rates and means, each with a seeded
percentile-bootstrap 95% interval over questions, and a "meaningful" flag below `min_judged` judged questions."""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import mean, stdev
from typing import Optional

import numpy as np
from scipy.stats import bootstrap


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


# ---------------------------------------------------------------- MT-bench (FastChat judgments)


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


# ---------------------------------------------------------------- AlpacaEval-style preferences


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


def _mean(values: list[float]) -> Optional[float]:
    return mean(values) if values else None
