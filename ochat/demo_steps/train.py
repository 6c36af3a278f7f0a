"""Step 3: the DeepSpeed launcher on `--num_gpus` ranks (CPU ranks without a GPU) into `checkpoint/`, and the eval
loss of the base and the trained model that says training worked."""

from __future__ import annotations

import json
import os
import shutil

from ochat.demo_steps.run import Demo
from ochat.training_deepspeed.deepspeed_settings import DEFAULT_DEEPSPEED_CONFIG
from ochat.training_deepspeed.launch import deepspeed_command
from ochat.utils.files import write_json_atomic


def step_train(demo: Demo) -> str:
    args = demo.args
    shutil.rmtree(demo.checkpoint_dir, ignore_errors=True)
    command = deepspeed_command(
        args.num_gpus,
        demo.model_type,
        demo.model_dir,
        demo.path("data"),
        demo.checkpoint_dir,
        [
            "--packing" if args.base == "smollm2" else "--length_grouping",
            "--lr",
            str(args.lr),
            "--train_batch_size",
            str(args.train_batch_size),
            "--micro_batch_size",
            str(args.micro_batch_size),
        ],
        epochs=args.epochs,
        deepspeed_config=DEFAULT_DEEPSPEED_CONFIG if args.base == "tiny" else real_model_deepspeed_config(demo),
    )
    if args.base == "smollm2":  # a 135M model needs no memory saving; recomputing costs a third more time
        command.append("--no_gradient_checkpointing")
    if args.max_steps:
        command += ["--max_steps", str(args.max_steps)]
    demo.run(command, "train", env={"OMP_NUM_THREADS": "1"})
    losses = eval_losses(demo)
    return (
        f"checkpoint {demo.checkpoint_dir}; eval loss {losses['base']:.3f} (base) -> "
        f"{losses['trained']:.3f} (trained); metrics {demo.checkpoint_dir}/metrics.jsonl"
    )


def real_model_deepspeed_config(demo: Demo) -> str:
    """The training config with bf16 on where the CPU multiplies bf16 natively (AVX512-BF16, AMX): 2.4x the
    fp32 steps of SmolLM2 on such a CPU (benchmarks/RESULTS.md, "A real model"); a GPU gets bf16 anyway."""
    import torch

    with open(DEFAULT_DEEPSPEED_CONFIG, encoding="utf-8") as handle:
        ds_config = json.load(handle)
    if not torch.cuda.is_available() and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        ds_config["bf16"] = {"enabled": True}
    path = demo.path("deepspeed_config.json")
    write_json_atomic(path, ds_config)
    return path


def eval_losses(demo: Demo) -> dict:
    """Token-mean eval loss of the base and the trained model, the figure that says training worked."""
    losses_path = demo.path("eval_losses.json")
    if not os.path.exists(losses_path):
        data_file = demo.path("data", f"{demo.model_type}.eval.json")
        losses = {
            "base": eval_loss_of_checkpoint(demo.model_type, demo.model_dir, data_file),
            "trained": eval_loss_of_checkpoint(demo.model_type, demo.checkpoint_dir, data_file),
        }
        write_json_atomic(losses_path, losses)
    with open(losses_path, encoding="utf-8") as handle:
        return json.load(handle)


def eval_loss_of_checkpoint(model_type: str, model_path: str, data_file: str) -> float:
    """Mean cross entropy over the supervised tokens of a tokenized file, with training's own batching and loss."""
    import torch

    from ochat.config import get_model_config
    from ochat.models import load_model
    from ochat.training_deepspeed.data import load_samples
    from ochat.training_deepspeed.steps import dataset_loss

    config = get_model_config(model_type)
    model = load_model(config, model_path, dtype=torch.float32).eval()
    samples = load_samples(data_file, model.config.vocab_size, config.max_context)
    return dataset_loss(model, samples, "cpu", pad_token_id=model.config.pad_token_id or 0).item()
