"""Where the static pages live, and how to make a self-contained copy of one.

The pages under `ui/` and `eval_result_ui/` load `../static/plotly.min.js`,
`../static/common.js` and `../static/common.css`. plotly.js is not committed
(it is 4.8 MB); `python -m visualization.install_plotly` copies it from the
installed `plotly` Python package. `standalone_page` instead inlines every one
of those files, plus a data set, into one HTML file that opens anywhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

VISUALIZATION_DIR = Path(__file__).resolve().parent
STATIC_DIR = VISUALIZATION_DIR / "static"
PLOTLY_JS_PATH = STATIC_DIR / "plotly.min.js"
VISUALIZER_PAGE = VISUALIZATION_DIR / "ui" / "visualizer.html"
EVAL_RESULT_PAGE = VISUALIZATION_DIR / "eval_result_ui" / "eval_result_visualizer.html"

_SCRIPT_TAG = re.compile(r'<script src="\.\./static/([\w.]+)"></script>')
_STYLE_TAG = re.compile(r'<link rel="stylesheet" href="\.\./static/([\w.]+)">')
_DATA_TAG = '<script id="embedded-data" type="application/json"></script>'


def plotly_js_source() -> str:
    """plotly.js as shipped inside the installed `plotly` Python package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _static_source(name: str) -> str:
    if name == "plotly.min.js":
        return plotly_js_source()
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def _inline_safe(text: str) -> str:
    """Keep inlined text from closing its <script>/<style> element early."""
    return re.sub(r"</(script|style)", r"<\\/\1", text, flags=re.IGNORECASE)


def standalone_page(page_path: Path, data: object) -> str:
    """The page with its scripts, styles and `data` inlined: one file, no other file or network needed."""
    html = page_path.read_text(encoding="utf-8")
    if _DATA_TAG not in html:
        raise ValueError(f"{page_path} has no embedded-data slot")
    html = _SCRIPT_TAG.sub(lambda match: "<script>" + _inline_safe(_static_source(match.group(1))) + "</script>", html)
    html = _STYLE_TAG.sub(lambda match: "<style>" + _inline_safe(_static_source(match.group(1))) + "</style>", html)
    # "<" only occurs inside JSON strings, where \u003c means the same; no "</script" or "<!--" can reach the parser.
    data_json = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return html.replace(_DATA_TAG, _DATA_TAG.replace("></script>", ">" + data_json + "</script>"))


def write_standalone_page(page_path: Path, data: object, out_path: str | Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(standalone_page(page_path, data), encoding="utf-8")
    return out_path
