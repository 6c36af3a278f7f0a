"""Look at the data and the results in a browser.

- `embed`: one vector per conversation of a `T.*.text.json` (offline MiniLM, or an OpenAI-compatible endpoint).
- `dim_reduction`: UMAP to 3-D + K-Means colours -> `T.visualizer.json` (and optionally a self-contained page).
- `eval_report`: evaluation results -> a self-contained results page.
- `install_plotly`: copies plotly.js from the `plotly` package to `static/` so the pages open offline.
- `ui/visualizer.html`, `eval_result_ui/eval_result_visualizer.html`: the static pages (open with a double click).
"""
