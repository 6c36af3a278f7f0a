"""Trainer-only GPU efficiency: ~1B LLaMA, bf16, one GPU, packed vs length-grouped, full fine-tuning vs LoRA.

    python benchmarks/gpu_training.py                       # on a CUDA machine, a few minutes
    python benchmarks/gpu_training.py --device cpu --tiny   # the same code path on a CPU, seconds

Needs only torch, transformers and peft (no DeepSpeed, no network): the model
is a randomly initialised TinyLlama-1.1B-shaped LLaMA (22 layers, hidden 2048,
GQA with 4 KV heads, vocab 32000), the data random token ids with a
ShareGPT-like spread of lengths (log-normal, 32..2048 tokens, seeded). Each
optimizer step takes one global batch through ochat's own batch plan, collation
and weighted loss (`ochat.training_deepspeed.steps`), with gradient
checkpointing as `train.py` uses it, and AdamW (fused) on bf16 weights.

Per setup, after warm-up steps:

    tok/s        real (non-padding) tokens per second
    MFU          model FLOPs / time / the card's peak, where the peak is this card's bf16 matmul rate
                 measured here (8192^3 matmuls); model FLOPs per token: 6 x parameters (full) or
                 4 x parameters (LoRA: no weight gradients for the frozen base), plus causal attention
                 6 x layers x hidden x length; recomputation by gradient checkpointing is not counted
    peak GB      torch.cuda.max_memory_allocated (CPU: peak resident memory of the process)
    padding      share of computed positions that are padding
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run as a script from anywhere, also where ochat is not installed

from ochat.config import Sample  # noqa: E402
from ochat.training_deepspeed.model_shapes import BUILTIN_CONFIGS  # noqa: E402

LLAMA_1B = {name: value for name, value in BUILTIN_CONFIGS["llama-1b"].items() if name != "model_type"}
TINY = dict(
    hidden_size=64,
    intermediate_size=172,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    vocab_size=512,
    max_position_embeddings=256,
)
SETUPS = [("full", "packing"), ("full", "length"), ("lora", "packing"), ("lora", "length")]


def synthetic_samples(count: int, vocab: int, max_length: int, seed: int) -> list[Sample]:
    """Random token ids with a ShareGPT-like length spread; the second half of each sample is supervised."""
    rng = random.Random(seed)
    samples = []
    for _ in range(count):
        length = int(min(max_length, max(32, rng.lognormvariate(math.log(max_length / 4), 0.8))))
        ids = [1] + [rng.randrange(3, vocab) for _ in range(length - 1)]
        samples.append(Sample(ids, [k >= length // 2 for k in range(length)]))
    return samples


def measure_matmul_peak(device, dtype, size: int, seconds: float = 2.0) -> float:
    """FLOP/s of back-to-back square matmuls: the card's practical peak for the MFU denominator."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(10):
            a @ b
        runs += 10
        synchronize(device)
    return 2 * size**3 * runs / (time.perf_counter() - started)


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def build_model(shape: dict, device, dtype, method: str, lora_rank: int, packing: bool):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ochat.training_deepspeed.lora import LoraSettings, apply_lora
    from ochat.training_deepspeed.model_setup import enable_activation_checkpointing
    from ochat.training_deepspeed.modeling import choose_attn_implementation

    config = LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, use_cache=False)
    config._attn_implementation = choose_attn_implementation(packing, device.type == "cuda")
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    enable_activation_checkpointing(model)
    if method == "lora":
        model = apply_lora(
            model, LoraSettings(lora_rank, 2.0 * lora_rank, 0.0, "all-linear"), [shape["vocab_size"] - 1]
        )
    model.train()
    return model


def run_setup(method: str, grouping: str, args, device, dtype, samples) -> dict:
    import torch

    from ochat.training_deepspeed.batch_plan import plan_epoch
    from ochat.training_deepspeed.data import supervised_target_count
    from ochat.training_deepspeed.steps import micro_batch_losses

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    packing = grouping == "packing"
    model = build_model(args.shape, device, dtype, method, args.lora_rank, packing)
    parameters = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=device.type == "cuda")
    lengths = [len(sample.token_ids) for sample in samples]
    supervised = [supervised_target_count(sample.supervise_mask) for sample in samples]
    # packing: each micro-batch is one row of about --tokens_per_micro_batch tokens; length grouping: padded rows
    accumulation = max(1, round(args.batch_samples * (sum(lengths) / len(lengths)) / args.tokens_per_micro_batch))
    micro = -(-args.batch_samples // accumulation)
    plan = plan_epoch(lengths, supervised, 0, 0, args.batch_samples, grouping, 1, accumulation, micro)
    steps = plan[: args.warmup + args.steps]
    if len(steps) < args.warmup + args.steps:
        raise SystemExit("not enough samples for the steps asked; raise --samples")
    timed_tokens = timed_padded = 0
    flops = 0.0
    per_token = (6 if method == "full" else 4) * parameters
    layers, hidden = args.shape["num_hidden_layers"], args.shape["hidden_size"]
    started = None
    for index, step in enumerate(steps):
        if index == args.warmup:
            synchronize(device)
            started = time.perf_counter()
        for loss in micro_batch_losses(model, samples, step, 0, device, 0, packing):
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= args.warmup:
            timed_tokens += step.tokens
            timed_padded += step.padded_tokens
            step_indices = [i for group in step.micro_batches[0] for i in group]
            flops += sum(per_token * lengths[i] + 6 * layers * hidden * lengths[i] ** 2 for i in step_indices)
    synchronize(device)
    elapsed = time.perf_counter() - started
    row = {
        "method": method,
        "grouping": grouping,
        "parameters": parameters,
        "trainable": sum(p.numel() for p in trainable),
        "micro_batches_per_step": accumulation,
        "tokens_per_s": timed_tokens / elapsed,
        "flops_per_s": flops / elapsed,
        "padding": 1 - timed_tokens / timed_padded,
        "peak_gb": peak_memory(device) / 1e9,
    }
    del model, optimizer
    return row


def main(argv=None):
    from ochat.utils.cli import ArgumentParser

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny LLaMA instead of the ~1B one (CPU smoke run)")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per setup (default 6; tiny 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; tiny 1)")
    parser.add_argument(
        "--batch_samples", type=int, default=None, help="samples per optimizer step (default 64; tiny 8)"
    )
    parser.add_argument(
        "--tokens_per_micro_batch",
        type=int,
        default=None,
        help="about this many tokens per micro-batch (default 16384; tiny 512)",
    )
    parser.add_argument("--lora_rank", type=int, default=None, help="LoRA rank (default 64; tiny 8)")
    parser.add_argument(
        "--setups",
        nargs="+",
        default=[f"{m}/{g}" for m, g in SETUPS],
        help="method/grouping pairs (default all four: full|lora x packing|length)",
    )
    args = parser.parse_args(argv)

    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; run with --device cpu --tiny for the CPU path")
    args.shape = TINY if args.tiny else LLAMA_1B
    args.lora_rank = args.lora_rank or (8 if args.tiny else 64)
    args.steps = args.steps or (2 if args.tiny else 6)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 2)
    args.batch_samples = args.batch_samples or (8 if args.tiny else 64)
    args.tokens_per_micro_batch = args.tokens_per_micro_batch or (512 if args.tiny else 16384)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    peak = measure_matmul_peak(device, dtype, 8192 if device.type == "cuda" else 512)
    samples = synthetic_samples(
        args.batch_samples * (args.warmup + args.steps),
        args.shape["vocab_size"],
        args.shape["max_position_embeddings"],
        seed=0,
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}: measured {str(dtype).split('.')[-1]} matmul peak {peak / 1e12:.3g} TFLOP/s; "
        f"{'tiny' if args.tiny else '~1.1B'} LLaMA, {args.batch_samples} samples per step, "
        f"{args.steps} timed steps after {args.warmup} warm-up, gradient checkpointing, LoRA rank {args.lora_rank}"
    )
    header = f"| {'setup':<18} | {'tok/s':>9} | {'MFU':>6} | {'peak GB':>8} | {'padding':>7} | {'trainable':>11} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for setup in args.setups:
        method, grouping = setup.split("/")
        row = run_setup(method, grouping, args, device, dtype, samples)
        print(
            f"| {method + ', ' + grouping:<18} | {row['tokens_per_s']:>9.0f} | {row['flops_per_s'] / peak:>6.1%} | "
            f"{row['peak_gb']:>8.2f} | {row['padding']:>7.1%} | {row['trainable']:>11,} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
