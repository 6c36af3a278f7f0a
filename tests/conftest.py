"""Shared fixtures: the tiny model and the bundled corpus run through the pipeline, built once per session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES_DIR = os.path.join(REPO_ROOT, "data_pipeline", "examples")
TINY_MODEL_TYPE = "openchat_tiny"


def run_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m module args` from the repo root; fail the test with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        pytest.fail(f"python -m {module} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> str:
    """The tiny openchat base model (no EOT token), as a user's LLaMA folder would be."""
    out = str(tmp_path_factory.mktemp("tiny_base"))
    run_module("ochat.models.build_tiny", "--model_type", TINY_MODEL_TYPE, "--out", out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_base_dir, tmp_path_factory) -> str:
    """The tiny openchat model with <|end_of_turn|> added: ready to convert data for, train and serve."""
    out = str(tmp_path_factory.mktemp("tiny_eot"))
    run_module("ochat.models.add_eot_token", "--model_type", TINY_MODEL_TYPE, "--in", tiny_base_dir, "--out", out)
    return out


@pytest.fixture(scope="session")
def tiny_data_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The bundled corpus cleaned, filtered to GPT-4 and tokenized for the tiny model (eval ratio 0.1)."""
    out = str(tmp_path_factory.mktemp("tiny_data"))
    clean = os.path.join(out, "sharegpt_clean.json")
    gpt4 = os.path.join(out, "sharegpt_gpt4.json")
    run_module("data_pipeline.clean_sharegpt", "--in-dir", os.path.join(EXAMPLES_DIR, "ShareGPT"), "--out-file", clean)
    run_module("data_pipeline.filter_sharegpt", "--in-file", clean, "--out-file", gpt4)
    run_module(
        "data_pipeline.generate_dataset", "--model-type", TINY_MODEL_TYPE, "--model-path", tiny_model_dir,
        "--in-file", gpt4, "--out-dir", out, "--eval-ratio", "0.1",
    )
    return out


CRLFT_MODEL_TYPE = "openchat_v3.2_tiny"


@pytest.fixture(scope="session")
def tiny_crlft_model_dir(tiny_base_dir, tmp_path_factory) -> str:
    """The tiny base with <|end_of_turn|> added for the conditioned (C-RLFT) type openchat_v3.2_tiny."""
    out = str(tmp_path_factory.mktemp("tiny_crlft_eot"))
    run_module("ochat.models.add_eot_token", "--model_type", CRLFT_MODEL_TYPE, "--in", tiny_base_dir, "--out", out)
    return out
