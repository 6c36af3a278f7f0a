"""Step 2: `./run_data_pipeline.sh` on the input pages, for the demo's model type, into `data/`."""

from __future__ import annotations

import json
import os
import sys

from ochat.demo_steps.run import REPO_ROOT, Demo


def step_data(demo: Demo) -> str:
    data_dir = demo.path("data")
    demo.run(
        ["bash", os.path.join(REPO_ROOT, "run_data_pipeline.sh"), demo.args.input, data_dir],
        "data",
        env={
            "MODEL_TYPES": demo.model_type,
            "MODEL_PATHS": demo.model_dir,
            "PYTHON": sys.executable,
            "GENERATE_ARGS": "--eval-ratio 0.05",
        },
    )
    with open(os.path.join(data_dir, f"{demo.model_type}.report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    return (
        f"{report['train']['samples']} train / {report['eval']['samples']} eval samples in "
        f"{data_dir}/{demo.model_type}.{{train,eval}}.json (report: {data_dir}/sharegpt_clean.report.json)"
    )
