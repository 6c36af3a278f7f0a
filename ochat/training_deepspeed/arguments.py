"""The training command line: every flag of `ochat.training_deepspeed.train`, checked, with defaults filled in.

Flags that contradict each other (LoRA settings without `--lora_rank`, 4-bit without LoRA) end the run here,
with argparse's usage message, before DeepSpeed or a model is touched.
"""

from __future__ import annotations

import argparse
import os

from ochat.training_deepspeed.deepspeed_settings import DEFAULT_DEEPSPEED_CONFIG, OFFLOAD_CHOICES
from ochat.training_deepspeed.lora import DEFAULT_TARGET_MODULES
from ochat.training_deepspeed.loss import LOSS_REDUCTIONS
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import resolve_source_path

LORA_ONLY_FLAGS = ("lora_alpha", "lora_dropout", "lora_target_modules")


def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    """The checked flags; `description` is the help text above them (the entry module's docstring)."""
    import deepspeed

    parser = ArgumentParser(
        prog="deepspeed --module ochat.training_deepspeed.train",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model_type", required=True, help="registry model type, e.g. openchat, openchat_8192, opencoder"
    )
    parser.add_argument("--model_path", required=True, help="base model folder with the <|end_of_turn|> token added")
    parser.add_argument(
        "--data_path", required=True, help="folder holding MODEL_TYPE.train.json (and .eval.json), or that file"
    )
    parser.add_argument("--save_path", required=True, help="folder for the fine-tuned model, metrics and checkpoints")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training set (default 5)")
    batching = parser.add_mutually_exclusive_group()
    batching.add_argument("--length_grouping", action="store_true", help="micro-batches of similar-length samples")
    batching.add_argument("--packing", action="store_true", help="padding-free rows of several samples each")
    parser.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default 2e-5)")
    parser.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    parser.add_argument(
        "--warmup_ratio", type=float, default=0.03, help="share of steps spent warming up (default 0.03)"
    )
    parser.add_argument(
        "--loss_reduction",
        choices=LOSS_REDUCTIONS,
        default="token",
        help="token: mean over all supervised tokens of the global batch (default); "
        "per_sample: mean of each sample's mean",
    )
    parser.add_argument(
        "--train_batch_size", type=int, default=None, help="global batch in samples (overrides the config)"
    )
    parser.add_argument(
        "--micro_batch_size", type=int, default=None, help="samples per rank per micro-batch (overrides the config)"
    )
    parser.add_argument(
        "--max_steps", type=int, default=None, help="stop after this many optimizer steps (the schedule ends there too)"
    )
    parser.add_argument(
        "--save_every", type=int, default=0, help="write a DeepSpeed checkpoint every N optimizer steps (0: never)"
    )
    parser.add_argument(
        "--keep_checkpoints", type=int, default=2, help="DeepSpeed checkpoints kept on disk (default 2)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in SAVE_PATH/checkpoints"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the data order (default 42)")
    parser.add_argument(
        "--no_gradient_checkpointing", action="store_true", help="keep activations instead of recomputing them"
    )
    parser.add_argument(
        "--collective_timeout",
        type=float,
        default=10.0,
        help="minutes a rank waits for the others before the run stops with an error naming "
        "the rank that does not answer (default 10; raise it when saving a checkpoint of a "
        "very large model to a slow disk takes longer)",
    )
    memory = parser.add_argument_group("ZeRO and offload")
    memory.add_argument(
        "--zero_stage",
        type=int,
        choices=(0, 1, 2, 3),
        default=None,
        help="ZeRO stage (overrides the config's, which is 2): 3 also partitions the parameters",
    )
    memory.add_argument(
        "--offload_optimizer",
        choices=OFFLOAD_CHOICES,
        default="none",
        help="cpu: keep optimizer state (and its step) in host memory (ZeRO-Offload)",
    )
    memory.add_argument(
        "--offload_params",
        choices=OFFLOAD_CHOICES,
        default="none",
        help="cpu: keep parameters in host memory between uses (ZeRO-3 only)",
    )
    lora = parser.add_argument_group("LoRA (peft)")
    lora.add_argument("--lora_rank", type=int, default=0, help="train LoRA adapters of this rank (0: full fine-tuning)")
    lora.add_argument("--lora_alpha", type=float, default=None, help="LoRA scaling numerator (default 2 x rank)")
    lora.add_argument("--lora_dropout", type=float, default=None, help="dropout on the LoRA input (default 0.05)")
    lora.add_argument(
        "--lora_target_modules",
        default=None,
        help="comma-separated module names to adapt, e.g. q_proj,v_proj "
        "(default all-linear: every linear layer of attention and MLP)",
    )
    lora.add_argument(
        "--load_in_4bit",
        action="store_true",
        help="QLoRA: load the frozen base in 4-bit NF4 (bitsandbytes, CUDA only; needs --lora_rank)",
    )
    parser.add_argument(
        "--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)), help="set by the launcher"
    )
    parser = deepspeed.add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.deepspeed_config is None:
        args.deepspeed_config = DEFAULT_DEEPSPEED_CONFIG
    args.deepspeed_config = resolve_source_path(args.deepspeed_config)
    for name in ("epochs", "train_batch_size", "micro_batch_size", "max_steps", "keep_checkpoints"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    if args.save_every < 0:
        parser.error("--save_every must be 0 (never) or a positive number of optimizer steps")
    if args.collective_timeout <= 0:
        parser.error("--collective_timeout must be a positive number of minutes")
    if args.lora_rank < 0:
        parser.error("--lora_rank must be 0 (full fine-tuning) or positive")
    lora_flags = [name for name in LORA_ONLY_FLAGS if getattr(args, name) is not None]
    if lora_flags and not args.lora_rank:
        parser.error(
            f"--{lora_flags[0]} configures LoRA adapters, but --lora_rank is 0 (full fine-tuning): "
            "add --lora_rank (e.g. 64) or drop the LoRA flags"
        )
    args.lora_dropout = 0.05 if args.lora_dropout is None else args.lora_dropout
    args.lora_target_modules = args.lora_target_modules or DEFAULT_TARGET_MODULES
    if not 0 <= args.lora_dropout < 1:
        parser.error("--lora_dropout must be in [0, 1)")
    if args.load_in_4bit and not args.lora_rank:
        parser.error("--load_in_4bit trains LoRA adapters on a 4-bit base: add --lora_rank (e.g. 64)")
    if args.lora_alpha is None:
        args.lora_alpha = 2.0 * args.lora_rank
    if not 0 <= args.warmup_ratio < 1:
        parser.error("--warmup_ratio must be in [0, 1)")
    return args
