"""Step 6: embeddings, UMAP and K-Means of the training texts, and the self-contained pages of the data map and the
evaluation, in `visualization/`."""

from __future__ import annotations

import os

from ochat.demo_steps.run import Demo


def step_visualize(demo: Demo) -> str:
    vis_dir = demo.path("visualization")
    os.makedirs(vis_dir, exist_ok=True)
    texts = demo.path("data", f"{demo.model_type}.train.text.json")
    embeddings = os.path.join(vis_dir, f"{demo.model_type}.train.embeddings.json")
    points = os.path.join(vis_dir, f"{demo.model_type}.visualizer.json")
    demo.run(demo.python("visualization.embed", "--in-file", texts, "--out-file", embeddings), "visualize")
    demo.run(
        demo.python(
            "visualization.dim_reduction",
            "--embeddings",
            embeddings,
            "--texts",
            texts,
            "--out-file",
            points,
            "--html",
            os.path.join(vis_dir, "visualizer_standalone.html"),
        ),
        "visualize",
    )
    demo.run(
        demo.python(
            "visualization.eval_report",
            "--results-dir",
            demo.path("eval", "answers"),
            "--html",
            os.path.join(vis_dir, "eval_report.html"),
        ),
        "visualize",
    )
    return f"{points}; demo-contained pages visualizer_standalone.html and eval_report.html beside it"
