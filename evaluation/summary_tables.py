"""The terminal tables of `evaluation.summarize`: one plain aligned text table per kind of result, read from its
summary dict; `format_table` also lays out the HumanEval report."""

from __future__ import annotations

import math
from typing import Optional


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


# ---------------------------------------------------------------- cells


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain aligned text table; small enough not to need a dependency."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths])] + [line(row) for row in rows])


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
