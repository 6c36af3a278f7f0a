"""Where this checkout keeps things, and its commands run from the repository root as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES_DIR = os.path.join(REPO_ROOT, "data_pipeline", "examples")
TINY_MODEL_TYPE = "openchat_tiny"


def run_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m module args` from the repo root; fail the test with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        pytest.fail(
            f"python -m {module} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def run_data_pipeline(input_dir: str, output_dir: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`./run_data_pipeline.sh INPUT OUTPUT` with this interpreter; fails the test with its output if it fails."""
    result = subprocess.run(
        ["bash", os.path.join(REPO_ROOT, "run_data_pipeline.sh"), input_dir, output_dir],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
    )
    if result.returncode != 0:
        pytest.fail(f"run_data_pipeline.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
