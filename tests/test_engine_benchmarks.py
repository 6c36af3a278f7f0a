"""The GPU benchmarks' code paths (serving and training), run on a CPU with a tiny shape so they cannot rot unseen."""

from __future__ import annotations

import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_serving_benchmark_runs_on_a_cpu_with_a_tiny_shape():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_serving",
            "--device",
            "cpu",
            "--tiny",
            "--batch_sizes",
            "1",
            "4",
            "--prompt_tokens",
            "8",
            "--new_tokens",
            "6",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| engine") or line.startswith("| static")]
    assert len(rows) == 4, result.stdout
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and float(cells[3]) > 0, row  # tokens/s and ms per step were measured
        assert cells[4].endswith("%"), row


def test_gpu_training_benchmark_runs_on_a_cpu_with_a_tiny_shape():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_training", "--device", "cpu", "--tiny"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| full,") or line.startswith("| lora,"):
            rows[cells[0]] = cells
    assert sorted(rows) == ["full, length", "full, packing", "lora, length", "lora, packing"], result.stdout
    for setup, (_, tokens_per_s, mfu, peak_gb, padding, _) in rows.items():
        assert float(tokens_per_s) > 0 and mfu.endswith("%") and float(peak_gb) > 0, setup
        # packing fills every position; length grouping pads the random lengths of a batch to its longest
        assert (float(padding.rstrip("%")) == 0) == setup.endswith("packing"), setup
    assert int(rows["lora, packing"][5].replace(",", "")) < int(rows["full, packing"][5].replace(",", "")) / 4
