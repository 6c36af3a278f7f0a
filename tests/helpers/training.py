"""Real training runs for the tests: the DeepSpeed launcher on 2 CPU ranks with the tiny model, and what it writes."""

from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest

from ochat.training_deepspeed.launch import deepspeed_command
from tests.helpers.repo import REPO_ROOT, TINY_MODEL_TYPE

MODEL_TYPE = TINY_MODEL_TYPE
RUN_TIMEOUT_S = 600


def launch_command(model_dir: str, data_path: str, save_path: str, *extra: str) -> list[str]:
    """The tiny model type's run on 2 CPU ranks."""
    return deepspeed_command(2, MODEL_TYPE, model_dir, data_path, save_path, extra)


def training_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def run_training(*command: str, log_path: str) -> subprocess.CompletedProcess:
    with open(log_path, "w") as log:
        result = subprocess.run(
            list(command),
            cwd=REPO_ROOT,
            env=training_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT_S,
        )
    if result.returncode != 0:
        pytest.fail(f"training failed ({result.returncode}):\n{open(log_path).read()[-6000:]}")
    assert not leftover_shared_memory(command), "the run left DeepSpeed's all-reduce buffers in /dev/shm"
    return result


def leftover_shared_memory(command) -> list[str]:
    """DeepSpeed CPU all-reduce buffers of this launch (named after its master port) still in /dev/shm."""
    port = command[list(command).index("--master_port") + 1]
    return glob.glob(f"/dev/shm/deepspeed_allreduce_buffer_*_{port}_*")


def read_metrics(save_path: str) -> tuple[dict[int, dict], list[dict]]:
    """Last train record per step, and eval records."""
    steps, evals = {}, []
    with open(os.path.join(save_path, "metrics.jsonl")) as handle:
        for line in handle:
            record = json.loads(line)
            if "eval_loss" in record:
                evals.append(record)
            else:
                steps[record["step"]] = record
    return steps, evals
