"""Copy plotly.js from the installed `plotly` Python package next to the static pages.

    python -m visualization.install_plotly

writes `visualization/static/plotly.min.js` (git-ignored), which both
`ui/visualizer.html` and `eval_result_ui/eval_result_visualizer.html` load, so
the pages open with a double click and never touch the network.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ochat.utils.cli import ArgumentParser
from visualization.pages import PLOTLY_JS_PATH, plotly_js_source


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m visualization.install_plotly",
        description="Copy plotly.min.js from the installed plotly Python package to visualization/static/, "
        "where the visualizer pages load it (offline, no CDN).",
    )
    parser.add_argument("--out_file", default=str(PLOTLY_JS_PATH), help="where to write plotly.min.js")
    args = parser.parse_args(argv)
    source = plotly_js_source()
    out_file = Path(args.out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if out_file.exists() and out_file.read_text(encoding="utf-8") == source:
        print(f"{out_file} is up to date", file=sys.stderr)
        return
    out_file.write_text(source, encoding="utf-8")
    print(f"wrote {out_file} ({len(source) / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
