"""Everything a run checks before its process group starts, the same way on every rank: the model type, the
tokenizer's <|end_of_turn|>, the data, the DeepSpeed config, the output folder and, on resume, the checkpoint's
settings. A mistake found here is one line on stderr instead of a hang in `deepspeed.init_distributed`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ochat.training_deepspeed.batch_plan import steps_per_epoch
from ochat.training_deepspeed.checkpoint import CHECKPOINT_DIR, check_resume_signature, run_signature
from ochat.training_deepspeed.data import (
    DataError,
    load_samples,
    resolve_data_files,
    supervised_target_count,
)
from ochat.training_deepspeed.deepspeed_settings import TrainingSetupError, check_save_path, resolve_deepspeed_config
from ochat.training_deepspeed.lora import ADAPTER_DIR, check_4bit_available, check_lora_targets, lora_settings
from ochat.training_deepspeed.run_metrics import METRICS_FILE

# What a finished or started run leaves in --save_path; a new run there would mix with it.
RUN_OUTPUTS = (METRICS_FILE, CHECKPOINT_DIR, ADAPTER_DIR, "model.safetensors", "config.json")


@dataclass
class Setup:
    """Everything checked before the process group starts."""

    config: object  # ochat ModelConfig
    tokenizer: object  # ochat ChatTokenizer
    train_samples: list
    eval_samples: list
    train_file: str
    eval_file: str | None
    deepspeed_config: dict
    world_size: int
    on_cuda: bool
    steps_per_epoch: int
    total_steps: int
    run_signature: dict = field(default_factory=dict)


def prepare(args) -> Setup:
    """Check every input the same way on every rank, before `deepspeed.init_distributed` can hang on a failure."""
    import torch

    from ochat.config import get_model_config, load_tokenizer
    from ochat.models import load_model_config
    from ochat.models.loading import context_length

    try:
        config = get_model_config(args.model_type)
    except ValueError as error:
        raise TrainingSetupError(str(error)) from None
    check_save_path(args.save_path)
    check_outputs_can_be_written(args.save_path, args.resume, bool(args.lora_rank))
    if args.load_in_4bit:
        check_4bit_available()
    try:
        hf_config = load_model_config(config, args.model_path)
        tokenizer = load_tokenizer(config, args.model_path)
        _ = tokenizer.eot_token_id  # raises with the add_eot_token command when the token is missing
    except (FileNotFoundError, ValueError, OSError) as error:
        raise TrainingSetupError(str(error)) from None
    if args.lora_rank:
        check_lora_targets(hf_config, lora_settings(args))
    vocab_size = min(hf_config.vocab_size, len(tokenizer))
    max_context = min(config.max_context, context_length(hf_config))

    train_file, eval_file = resolve_data_files(args.data_path, args.model_type)
    train_samples = load_samples(train_file, vocab_size, max_context)
    if not train_samples:
        raise DataError(f"{train_file} holds no samples; nothing to train on")
    if not any(supervised_target_count(sample.supervise_mask) for sample in train_samples):
        raise DataError(f"{train_file}: no sample has a supervised token; nothing to train on")
    eval_samples = load_samples(eval_file, vocab_size, max_context) if eval_file else []

    world_size = int(os.environ.get("WORLD_SIZE", 1))
    on_cuda = torch.cuda.is_available()
    ds_config = resolve_deepspeed_config(args.deepspeed_config, args, world_size, on_cuda)
    per_epoch = steps_per_epoch(len(train_samples), ds_config["train_batch_size"])
    total_steps = per_epoch * args.epochs
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    signature = run_signature(args, ds_config, world_size, len(train_samples), total_steps)
    if args.resume:
        check_resume_signature(os.path.join(args.save_path, CHECKPOINT_DIR), signature)
    return Setup(
        config,
        tokenizer,
        train_samples,
        eval_samples,
        train_file,
        eval_file,
        ds_config,
        world_size,
        on_cuda,
        per_epoch,
        total_steps,
        signature,
    )


def check_outputs_can_be_written(save_path: str, resume: bool, lora: bool) -> None:
    """Find, before training, what would stop the run writing its outputs, and an earlier run a new one would mix with."""
    folders = [CHECKPOINT_DIR] + ([ADAPTER_DIR] if lora else [])
    for name in folders + [METRICS_FILE]:
        path = os.path.join(save_path, name)
        if not os.path.lexists(path):
            continue
        if name in folders and not os.path.isdir(path):
            raise TrainingSetupError(f"{path} is a file in the way of the run's {name}/ folder; move it away")
        if name == METRICS_FILE and not os.path.isfile(path):
            raise TrainingSetupError(
                f"{path} is not a regular file, and the run appends its metrics there; move it away"
            )
    if not resume:
        found = [name for name in RUN_OUTPUTS if os.path.lexists(os.path.join(save_path, name))]
        if found:
            raise TrainingSetupError(
                f"--save_path {save_path} holds an earlier run ({', '.join(found)}); pass --resume to continue it, "
                "or choose an empty folder (a new run there would mix its metrics and checkpoints with the old ones)"
            )
