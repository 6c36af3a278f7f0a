"""The engine on a GPU: decode speed of a ~1B LLaMA-architecture model against the memory-bandwidth roofline.

    python benchmarks/gpu_serving.py                       # CUDA, 1.1B (TinyLlama shape), bf16, batch 1 8 32 64
    python benchmarks/gpu_serving.py --device cpu --tiny   # the same code on a tiny shape, to check it runs

Engine only: no HTTP, no Ray, no downloads (random init). Needs only torch and transformers.
For each batch size, two decoders of the same model:

- engine: `GenerationEngine` as the server runs it (continuous batching, left-padded
  dynamic cache, eager forward); all requests join at once, decode steps are timed after
  the joint prefill.
- static+compile: transformers' `generate` with a static cache, which transformers compiles
  (CUDA graphs through torch.compile) on CUDA: what static shapes buy.

Per row: output tokens/s, ms per decode step, and the fraction of the roofline: a decode
step must read every weight and the cached keys/values once, so its floor is
(weight bytes + batch x mean context x KV bytes per token) / measured copy bandwidth
(device-to-device copy of 1 GiB, read + write bytes over time).
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ochat.serving.engine import GenerationEngine
from ochat.serving.engine_types import SamplingParams
from ochat.serving.kv_cache import kv_bytes_per_token, weights_bytes
from ochat.training_deepspeed.model_shapes import BUILTIN_CONFIGS

SHAPES = {
    # TinyLlama-1.1B: 22 layers, grouped-query attention with 4 KV heads.
    "1b": {
        name: value
        for name, value in BUILTIN_CONFIGS["llama-1b"].items()
        if name not in ("model_type", "max_position_embeddings")
    },
    "tiny": dict(
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
    ),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_bandwidth(device: torch.device, size_bytes: int) -> float:
    """Bytes per second of a device-local copy (bytes read plus bytes written)."""
    source = torch.empty(size_bytes // 2, dtype=torch.bfloat16, device=device)
    target = torch.empty_like(source)
    for _ in range(3):
        target.copy_(source)
    synchronize(device)
    repeats = 10
    start = time.perf_counter()
    for _ in range(repeats):
        target.copy_(source)
    synchronize(device)
    return 2 * size_bytes * repeats / (time.perf_counter() - start)


def build_model(shape: str, dtype: torch.dtype, device: torch.device, max_context: int):
    config = LlamaConfig(
        **SHAPES[shape], max_position_embeddings=max_context, eos_token_id=None, bos_token_id=None, pad_token_id=None
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.to(dtype).eval()


def roofline_fraction(model, batch: int, mean_context: float, step_s: float, bandwidth: float) -> float:
    per_token = kv_bytes_per_token(model.config, next(model.parameters()).dtype)
    floor_s = (weights_bytes(model) + batch * mean_context * per_token) / bandwidth
    return floor_s / step_s


def prompts(batch: int, length: int, vocab: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(batch)
    return torch.randint(1, vocab, (batch, length), generator=generator).tolist()


def run_engine(model, batch: int, prompt_len: int, new_tokens: int, max_context: int) -> tuple[float, float]:
    """(output tokens/s over decode steps, seconds per decode step)."""
    device = next(model.parameters()).device
    engine = GenerationEngine(
        model, stop_token_ids=[], max_context=max_context, max_batch_size=batch, kv_cache_tokens=batch * max_context
    )
    for i, prompt in enumerate(prompts(batch, prompt_len, model.config.vocab_size)):
        engine.add(str(i), prompt, SamplingParams(max_tokens=new_tokens, temperature=0))
    engine.step()  # the joint prefill (and first token of each)
    synchronize(device)
    steps, tokens, start = 0, 0, time.perf_counter()
    while engine.has_work():
        tokens += sum(event.token_id is not None for event in engine.step())
        steps += 1
    synchronize(device)
    elapsed = time.perf_counter() - start
    return tokens / elapsed, elapsed / steps


@torch.inference_mode()
def run_static(model, batch: int, prompt_len: int, new_tokens: int) -> tuple[float, float]:
    """(output tokens/s, seconds per decode step) of `generate` with a static (compiled on CUDA) cache; the
    prefill is timed apart (a one-token generate) and subtracted."""
    device = next(model.parameters()).device
    input_ids = torch.tensor(prompts(batch, prompt_len, model.config.vocab_size), device=device)
    kwargs = dict(do_sample=False, cache_implementation="static", pad_token_id=0)

    def generate(tokens):
        synchronize(device)
        start = time.perf_counter()
        model.generate(input_ids, max_new_tokens=tokens, min_new_tokens=tokens, **kwargs)
        synchronize(device)
        return time.perf_counter() - start

    generate(new_tokens)  # compile and capture at these shapes
    # best of three of each, so a stall from other work on the machine does not count
    prefill = min(generate(1) for _ in range(3))
    total = min(generate(new_tokens) for _ in range(3))
    # at tiny shapes timing noise can exceed the decode steps; then the prefill is not subtracted
    step_s = (total - prefill) / (new_tokens - 1) if total > prefill else total / new_tokens
    return batch / step_s, step_s


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny shape instead of 1.1B (to check the script)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--prompt_tokens", type=int, default=128)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--dtype", default=None, help="default bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--skip_static", action="store_true", help="only the engine")
    parser.add_argument(
        "--time_limit_s",
        type=float,
        default=420,
        help="stop starting new measurements after this many seconds (default 420)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; use --device cpu --tiny to check the script on a CPU")
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    max_context = args.prompt_tokens + args.new_tokens + 1
    model = build_model("tiny" if args.tiny else "1b", dtype, device, max_context)
    bandwidth = copy_bandwidth(device, (64 << 20) if args.tiny else (1 << 30))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, torch {torch.__version__}, {'tiny' if args.tiny else '1.1B'} LLaMA, {dtype}, "
        f"weights {weights_bytes(model) / 2**30:.2f} GiB, copy bandwidth {bandwidth / 1e9:.0f} GB/s, "
        f"prompt {args.prompt_tokens} + {args.new_tokens} new tokens"
    )
    print("| decoder | batch | output tokens/s | ms per decode step | roofline fraction |")
    print("|---|---|---|---|---|")
    mean_context = args.prompt_tokens + args.new_tokens / 2
    decoders = [("engine", lambda b: run_engine(model, b, args.prompt_tokens, args.new_tokens, max_context))]
    if not args.skip_static:
        decoders.append(("static+compile", lambda b: run_static(model, b, args.prompt_tokens, args.new_tokens)))
    for decoder, measure in decoders:
        for batch in args.batch_sizes:
            if time.perf_counter() - started > args.time_limit_s:
                print(f"| {decoder} | {batch} | skipped: past --time_limit_s | | |")
                continue
            try:
                tokens_per_s, step_s = measure(batch)
            except Exception as error:  # one failing decoder (e.g. a compile error) must not hide the others
                print(f"| {decoder} | {batch} | failed: {type(error).__name__}: {str(error)[:100]} | | |")
                continue
            fraction = roofline_fraction(model, batch, mean_context, step_s, bandwidth)
            print(f"| {decoder} | {batch} | {tokens_per_s:.0f} | {step_s * 1000:.2f} | {fraction:.0%} |", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
