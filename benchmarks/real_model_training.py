"""CPU training speed of a real model: SmolLM2-135M-Instruct, packed, through the real DeepSpeed launcher.

    python benchmarks/real_model_training.py                  # every setup, 2 CPU ranks, ~15 min
    python benchmarks/real_model_training.py --setups "full fp32 (grad ckpt)" "full bf16"

Each setup runs `--steps` optimizer steps of `deepspeed --module ochat.training_deepspeed.train
--packing` on the bundled corpus converted for `openchat` (SmolLM2 + <|end_of_turn|>, built once by
`smollm2_inputs.py`); the first step is warm-up and not counted. Setups differ in the levers that
hold a small model back on a CPU:

    gradient checkpointing   recomputes every layer's forward in the backward pass; it saves memory that a
                             135M model does not need, at about a third more compute
    bf16                     DeepSpeed's bf16 mode (bf16 weights and activations, fp32 master weights):
                             CPUs with AVX512-BF16 or AMX run bf16 matmuls faster than fp32
    LoRA                     adapters of rank 16 on every linear layer; the base is frozen
    threads per rank         OMP_NUM_THREADS; ranks x threads = the cores

The table gives supervised target tokens per second of step time (all ranks together) and the
median step time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm2_inputs import REPO_ROOT, WORK_DIR, smollm2_data, smollm2_eot  # noqa: E402

from ochat.training_deepspeed.deepspeed_settings import DEFAULT_DEEPSPEED_CONFIG  # noqa: E402
from ochat.training_deepspeed.launch import deepspeed_command  # noqa: E402
from ochat.utils.cli import ArgumentParser  # noqa: E402

NO_CKPT = ["--no_gradient_checkpointing"]
LORA = ["--lora_rank", "16"]
# label -> (ranks, threads per rank, train flags, bf16)
SETUPS = {
    "full fp32 (grad ckpt)": (2, 1, [], False),
    "full fp32": (2, 1, NO_CKPT, False),
    "full bf16": (2, 1, NO_CKPT, True),
    "full bf16, 1 rank x 2 threads": (1, 2, NO_CKPT, True),
    "LoRA fp32 (grad ckpt)": (2, 1, LORA, False),
    "LoRA bf16": (2, 1, LORA + NO_CKPT, True),
}


def run_setup(label: str, args, model: str, data: str) -> dict:
    ranks, threads, flags, bf16 = SETUPS[label]
    save_path = os.path.join(
        WORK_DIR, "train_runs", label.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    )
    shutil.rmtree(save_path, ignore_errors=True)
    with open(DEFAULT_DEEPSPEED_CONFIG, encoding="utf-8") as handle:
        ds_config = json.load(handle)
    ds_config["bf16"] = {"enabled": bf16}
    config_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(ds_config, config_file)
    config_file.close()
    command = deepspeed_command(
        ranks,
        "openchat",
        model,
        data,
        save_path,
        [
            "--packing",
            "--max_steps",
            str(args.steps),
            "--train_batch_size",
            str(args.train_batch_size),
            "--micro_batch_size",
            "1",
            *flags,
        ],
        epochs=1,
        deepspeed_config=config_file.name,
    )
    log_path = save_path + ".log"
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    started = time.time()
    with open(log_path, "w") as log:
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=dict(os.environ, OMP_NUM_THREADS=str(threads)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    os.unlink(config_file.name)
    if result.returncode != 0:
        sys.exit(f"{label}: training failed, see {log_path}")
    with open(os.path.join(save_path, "metrics.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    steps = [r for r in records if "eval_loss" not in r][1:]
    return {
        "supervised_tokens_per_s": statistics.median(r["supervised_tokens_per_s"] for r in steps),
        "median_step_s": statistics.median(r["step_seconds"] for r in steps),
        "loss": steps[-1].get("loss"),
        "wall_s": time.time() - started,
    }


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS), help="which setups to run")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per setup; the first is not counted")
    parser.add_argument("--train_batch_size", type=int, default=4, help="global batch in samples (default 4)")
    args = parser.parse_args(argv)
    model, data = smollm2_eot("openchat"), smollm2_data("openchat")
    rows = {label: run_setup(label, args, model, data) for label in args.setups}
    print(
        f"SmolLM2-135M-Instruct + EOT, packed, global batch {args.train_batch_size}, {args.steps} steps per setup "
        f"(first not counted); {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    header = f"| {'setup':<30} | {'supervised tok/s':>16} | {'median step s':>13} | {'vs first':>8} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    first = next(iter(rows.values()))["supervised_tokens_per_s"]
    for label, row in rows.items():
        print(
            f"| {label:<30} | {row['supervised_tokens_per_s']:>16.0f} | {row['median_step_s']:>13.2f} | "
            f"{row['supervised_tokens_per_s'] / first:>7.2f}x |"
        )


if __name__ == "__main__":
    main()
