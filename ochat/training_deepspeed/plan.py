"""Memory planner: what a fine-tuning setup needs per GPU, before anything is downloaded or loaded.

    python -m ochat.training_deepspeed.plan --model_config llama-13b --num_gpus 1 --gpu_memory_gb 80
    python -m ochat.training_deepspeed.plan --model_path /models/llama-13b-eot --num_gpus 8 --gpu_memory_gb 80 \\
        --lora_rank 64 --context 2048 --micro_batch_size 2

The model is built on the meta device from its config (no weights), so a 70B
plan runs on a laptop. Built-in shapes: llama-7b, llama-13b, llama-70b,
mistral-7b. Per GPU, in bf16 mixed precision with AdamW, N GPUs, P parameters
(T trainable), for each setup:

    weights      2P (ZeRO-3: 2P/N + the layers gathered for compute); QLoRA: 4-bit linears (~0.52 B/param)
    gradients    2T/N bf16 + 4T/N fp32 (DeepSpeed's ZeRO optimizer flattens its gradient partition into
                 fp32 for the step); 0 with the optimizer offloaded (they go to host memory as they are reduced)
    optimizer    12T/N: fp32 master weights, Adam momentum and variance; 0 when offloaded
    activations  gradient checkpointing: each layer's input (B x L x h) kept, one layer recomputed at a time,
                 plus the logits and their fp32 loss copies (B x L x V x 10 B)
    buffers      DeepSpeed's gradient bucket (ZeRO-2: reduce_bucket_size x 2 B) or ZeRO-3 prefetch bucket

Worked example, LLaMA-13B (P = 13.0e9) on one GPU: the bf16 weights are
26 GB; full fine-tuning keeps the usual 16 B/param of model state (2 weights
+ 2 gradients + 12 Adam) = 208 GB, and DeepSpeed's fp32 gradient partition
adds 4 B/param: 20 B/param = 260 GB, matching DeepSpeed's own estimator
(`estimate_zero2_model_states_mem_needs_all_cold`: 2P + 18P/N). Nothing of
that fits a 40 or 80 GB card; with 8 x 80 GB ZeRO-2 needs 26 + 18 x 13 / 8 =
55 GB of model state per GPU. LoRA (rank 64, all linears, ~0.25 B trainable)
keeps the 26 GB base and adds about 5 GB; QLoRA stores the base in ~7 GB.

A figure is a plan, not a promise: the CUDA context (~0.5-1 GB), allocator
fragmentation and kernels' workspaces come on top, so a setup "fits" here
only with 10% of the card left free. `train.py` prints this plan for its own
setup at start and warns when it does not fit. Measured against real runs in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

from ochat.training_deepspeed.model_shapes import BUILTIN_CONFIGS, ModelShape, hf_config_of, model_shape
from ochat.utils.cli import ArgumentParser

GB = 1e9
HEADROOM = 0.9  # a setup fits when its total is within this share of the card
REDUCE_BUCKET_ELEMENTS = 5e8  # deepspeed_config.json's reduce_bucket_size
ZERO3_PREFETCH_ELEMENTS = 5e7  # DeepSpeed's default stage3_prefetch_bucket_size
QLORA_BYTES_PER_PARAM = 0.5 + 0.127 / 8 + 4 / 64 / 8  # NF4 + double-quantized block constants


@dataclass
class Estimate:
    """Bytes per GPU for one setup (and host bytes of the node for what is offloaded)."""

    setup: str
    weights: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float
    host: float
    trainable_params: int

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.buffers


def activation_bytes(
    shape: ModelShape, micro_batch_size: int, context: int, dtype_bytes: int, gradient_checkpointing: bool = True
) -> float:
    """Activations of one micro-batch: kept layer inputs, one layer's recompute working set, the logits."""
    tokens = micro_batch_size * context
    h, i, kv = shape.hidden_size, shape.intermediate_size, shape.kv_size
    # what one decoder layer saves for backward: norms' inputs, q/k/v, attention output, MLP gate/up/act/product
    layer_working_set = tokens * (6 * h + 2 * kv + 5 * i) * dtype_bytes
    kept = (
        shape.num_layers * tokens * h * dtype_bytes if gradient_checkpointing else shape.num_layers * layer_working_set
    )
    recompute = layer_working_set if gradient_checkpointing else 0
    logits = tokens * shape.vocab_size * (dtype_bytes + 4 + 4)  # logits, fp32 copy for the loss, its gradient
    return kept + recompute + logits


def estimate(
    shape: ModelShape,
    setup: str,
    num_gpus: int,
    micro_batch_size: int,
    context: int,
    lora_rank: int = 0,
    zero_stage: int = 2,
    offload_optimizer: bool = False,
    offload_params: bool = False,
    quantized: bool = False,
    dtype_bytes: int = 2,
    gradient_checkpointing: bool = True,
    reduce_bucket_elements: float = REDUCE_BUCKET_ELEMENTS,
) -> Estimate:
    """Per-GPU bytes of one setup; `dtype_bytes` 2 for bf16 mixed precision, 4 for fp32 (CPU runs)."""
    n, p = num_gpus, shape.params
    trainable = lora_rank * shape.lora_params_per_rank if lora_rank else p
    # the gradient partition in the training dtype plus the flat fp32 copy DeepSpeed's optimizer step makes of it
    gradient_bytes = dtype_bytes + 4
    if quantized:
        weights = shape.linear_params * QLORA_BYTES_PER_PARAM + (p - shape.linear_params) * dtype_bytes
    elif zero_stage == 3:
        weights = (0 if offload_params else p * dtype_bytes / n) + 2 * shape.largest_layer_params * dtype_bytes
    else:
        weights = p * dtype_bytes
    if lora_rank and zero_stage != 3:
        weights += trainable * dtype_bytes
    gradients = 0.0 if offload_optimizer else trainable * gradient_bytes / n
    optimizer = 0.0 if offload_optimizer else trainable * 12 / n
    # host memory of the node (all its ranks): fp32 master, Adam state and fp32 gradients; offloaded weights
    host = (trainable * 16 if offload_optimizer else 0.0) + (p * dtype_bytes if offload_params else 0.0)
    activations = activation_bytes(shape, micro_batch_size, context, dtype_bytes, gradient_checkpointing)
    if zero_stage == 3:
        buffers = 2 * ZERO3_PREFETCH_ELEMENTS * dtype_bytes
    elif n > 1 or zero_stage == 2:
        buffers = min(reduce_bucket_elements, trainable) * dtype_bytes
    else:
        buffers = 0.0
    return Estimate(setup, weights, gradients, optimizer, activations, buffers, host, trainable)


def standard_setups(
    shape: ModelShape, num_gpus: int, micro_batch_size: int, context: int, lora_rank: int
) -> list[Estimate]:
    """Full fine-tuning under ZeRO-2, ZeRO-3 and with offload; LoRA; QLoRA."""
    common = dict(num_gpus=num_gpus, micro_batch_size=micro_batch_size, context=context)
    rank = lora_rank or 64
    return [
        estimate(shape, "full, ZeRO-2", zero_stage=2, **common),
        estimate(shape, "full, ZeRO-3", zero_stage=3, **common),
        estimate(shape, "full, ZeRO-2 + optimizer offload", zero_stage=2, offload_optimizer=True, **common),
        estimate(
            shape,
            "full, ZeRO-3 + optimizer & param offload",
            zero_stage=3,
            offload_optimizer=True,
            offload_params=True,
            **common,
        ),
        estimate(shape, f"LoRA r={rank}, ZeRO-2", lora_rank=rank, **common),
        estimate(shape, f"QLoRA r={rank} (4-bit base)", lora_rank=rank, quantized=True, **common),
    ]


def fits(estimate_: Estimate, gpu_memory_gb: float) -> bool:
    return estimate_.total <= HEADROOM * gpu_memory_gb * GB


def format_table(estimates: list[Estimate], gpu_memory_gb: float) -> str:
    header = (
        f"{'setup':42} {'weights':>8} {'grads':>8} {'optim':>8} {'activ':>8} {'buffers':>8} {'total':>8} "
        f"{'host/node':>10}  fits {gpu_memory_gb:g} GB"
    )
    lines = [header, "-" * len(header)]
    for row in estimates:
        lines.append(
            f"{row.setup:42} {row.weights / GB:8.1f} {row.gradients / GB:8.1f} {row.optimizer / GB:8.1f} "
            f"{row.activations / GB:8.1f} {row.buffers / GB:8.1f} {row.total / GB:8.1f} "
            f"{row.host / GB:10.1f}  {'yes' if fits(row, gpu_memory_gb) else 'no'}"
        )
    lines.append("GB per GPU (1 GB = 1e9 bytes); host/node: offloaded state in the node's host memory")
    return "\n".join(lines)


def warn_if_it_will_not_fit(args, setup, bf16: bool, world_size: int, log) -> None:
    """Print the memory plan of this very setup and warn when it exceeds the device's memory."""
    from ochat.models import load_model_config

    try:
        shape = model_shape(load_model_config(setup.config, args.model_path))
    except Exception as error:  # noqa: BLE001 - a plan is advice; never stop a run for it
        log(f"memory plan skipped: {error}")
        return
    zero = setup.deepspeed_config.get("zero_optimization", {})
    longest = max(len(sample.token_ids) for sample in setup.train_samples)
    micro = setup.deepspeed_config["train_micro_batch_size_per_gpu"]
    this_run = estimate(
        shape,
        "this run",
        num_gpus=world_size,
        micro_batch_size=micro,
        context=longest,
        lora_rank=args.lora_rank,
        zero_stage=int(zero.get("stage", 0)),
        quantized=args.load_in_4bit,
        offload_optimizer=zero.get("offload_optimizer", {}).get("device", "none") not in (None, "none"),
        offload_params=zero.get("offload_param", {}).get("device", "none") not in (None, "none"),
        dtype_bytes=2 if bf16 else 4,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        reduce_bucket_elements=float(zero.get("reduce_bucket_size", REDUCE_BUCKET_ELEMENTS)),
    )
    available, where = device_memory_bytes(setup.on_cuda, world_size)
    log(
        f"memory plan per rank: weights {this_run.weights / GB:.2f} GB, gradients {this_run.gradients / GB:.2f}, "
        f"optimizer {this_run.optimizer / GB:.2f}, activations {this_run.activations / GB:.2f}, "
        f"buffers {this_run.buffers / GB:.2f}: total {this_run.total / GB:.2f} GB of {available / GB:.1f} GB {where}"
    )
    if this_run.total > HEADROOM * available:
        log(
            f"WARNING: this setup needs about {this_run.total / GB:.1f} GB per rank but {where} has "
            f"{available / GB:.1f} GB; it will probably run out of memory. See the options that fit with "
            f"python -m ochat.training_deepspeed.plan --model_path {args.model_path} --num_gpus {world_size} "
            f"--gpu_memory_gb {available / GB:.0f} (LoRA, ZeRO-3, offload)"
        )


def device_memory_bytes(on_cuda: bool, world_size: int) -> tuple[float, str]:
    import torch

    if on_cuda:
        return float(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory), "each GPU"
    import psutil

    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    return psutil.virtual_memory().total / max(1, ranks_here), "each CPU rank's share of host memory"


def main(argv=None):
    parser = ArgumentParser(
        prog="python -m ochat.training_deepspeed.plan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_path", help="Hugging Face model folder (only config.json is read)")
    source.add_argument("--model_config", choices=sorted(BUILTIN_CONFIGS), help="a built-in model shape")
    parser.add_argument("--num_gpus", type=int, default=1, help="GPUs (data-parallel ranks) in all (default 1)")
    parser.add_argument("--gpu_memory_gb", type=float, required=True, help="memory of one GPU in GB, e.g. 40 or 80")
    parser.add_argument("--lora_rank", type=int, default=0, help="LoRA rank for the LoRA/QLoRA rows (default 64)")
    parser.add_argument("--context", type=int, default=2048, help="tokens per sample (default 2048)")
    parser.add_argument("--micro_batch_size", type=int, default=1, help="samples per GPU per micro-batch (default 1)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    for name in ("num_gpus", "context", "micro_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.gpu_memory_gb <= 0 or args.lora_rank < 0:
        parser.error("--gpu_memory_gb must be positive and --lora_rank not negative")
    try:
        shape = model_shape(hf_config_of(args.model_path, args.model_config))
    except (OSError, ValueError) as error:
        parser.error(str(error))
    rows = standard_setups(shape, args.num_gpus, args.micro_batch_size, args.context, args.lora_rank)
    if args.json:
        print(
            json.dumps(
                [dict(asdict(row), total=row.total, fits=fits(row, args.gpu_memory_gb)) for row in rows], indent=1
            )
        )
        return
    name = args.model_config or args.model_path
    print(
        f"{name}: {shape.params / 1e9:.2f}B parameters; {args.num_gpus} GPU(s) x {args.gpu_memory_gb:g} GB, "
        f"micro-batch {args.micro_batch_size} x {args.context} tokens, bf16, gradient checkpointing"
    )
    print(format_table(rows, args.gpu_memory_gb))
    if not any(fits(row, args.gpu_memory_gb) for row in rows):
        print("nothing fits: add GPUs, lower --context / --micro_batch_size, or use a smaller model", file=sys.stderr)


if __name__ == "__main__":
    main()
