"""Write a self-contained evaluation-results page: the result files and plotly.js inlined.

    python -m visualization.eval_report --results-dir eval_results --html eval_results/report.html

Takes every summary `evaluation.summarize` writes (`summary.json` for Vicuna-style pairwise
reviews, `summary_mt_bench.json`, `summary_alpaca_eval.json`) and every `reviews/*.jsonl`
(or `*_vs_*.jsonl` in the folder itself) as written by `evaluation.openai_eval`, and
inlines them, as they are, into a copy of
`eval_result_ui/eval_result_visualizer.html`. The page checks them exactly as
it checks files picked by hand, so a broken file shows the same message.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ochat.utils.cli import ArgumentParser
from visualization.pages import EVAL_RESULT_PAGE, write_standalone_page


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m visualization.eval_report",
        description="Bundle evaluation results (summary*.json, reviews/*.jsonl) into one offline HTML page.",
    )
    parser.add_argument("--results_dir", required=True, help="folder with summary*.json and/or reviews/")
    parser.add_argument("--html", required=True, help="where to write the page")
    args = parser.parse_args(argv)

    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        sys.exit(f"error: results folder not found: {results_dir}")
    paths = sorted(results_dir.glob("summary*.json"))
    paths += sorted(results_dir.glob("reviews/*.jsonl")) + sorted(results_dir.glob("*_vs_*.jsonl"))
    paths = [path for path in paths if not path.name.endswith(".calls.jsonl")]  # the judge's call log
    if not paths:
        sys.exit(f"error: {results_dir} has neither summary*.json nor reviews/*.jsonl")
    files = [{"name": str(path.relative_to(results_dir)), "text": path.read_text(encoding="utf-8")} for path in paths]
    write_standalone_page(EVAL_RESULT_PAGE, {"files": files}, args.html)
    print(f"wrote {args.html} with {len(files)} result files", file=sys.stderr)


if __name__ == "__main__":
    main()
