"""Serving throughput: the continuous-batching server against a one-request-at-a-time `model.generate` server.

    python benchmarks/serve_throughput.py                       # tiny model, built on the spot
    python benchmarks/serve_throughput.py --model_type openchat --model_path ./llama-1b-eot --device cuda

Both servers are started on free loopback ports with the same model and
driven by 1, 8 and 32 concurrent streaming clients (aiohttp, server-sent
events) over the same fixed prompts, each asking for `--max_tokens` tokens.
A third run, `ochat_kv25`, serves the largest client count with the KV-cache
budget (`--kv_cache_tokens`) at `--budget_fraction` (25%) of what those clients
need (clients x (longest prompt + max_tokens)), so the engine preempts and
recomputes; its row sits next to the unlimited one.
Printed per server and concurrency: output tokens/s (completion tokens from
the usage chunk over wall time), time to first token p50/p99 and inter-token
latency p50/p99 (gap between content chunks, divided by the tokens a chunk
carries when several arrive together).

The baseline is the original design, written here as a small aiohttp server:
a lock lets one request at a time run `model.generate` with a
`TextIteratorStreamer`, and the others wait their turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from ochat.models.tiny_chat_model import prepare_tiny_chat_model
from ochat.utils.cli import ArgumentParser
from ochat.utils.net import free_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOPICS = [
    "the history of tea",
    "how a compiler works",
    "why the sky is blue",
    "a recipe for bread",
    "sorting algorithms",
    "the rules of chess",
    "how vaccines work",
    "a poem about autumn",
]


def fixed_prompts(count: int) -> list[str]:
    return [f"Please tell me about {TOPICS[i % len(TOPICS)]}, part {i}." for i in range(count)]


# -- the baseline server ------------------------------------------------------------------------------


def run_baseline_server(model_type: str, model_path: str, port: int, device: str, torch_threads: int) -> None:
    """One request at a time: render with the registry, `model.generate` in a thread, stream its text."""
    import threading

    import torch

    torch.set_num_threads(torch_threads)
    from aiohttp import web
    from transformers import TextIteratorStreamer

    from ochat.config import get_model_config, load_tokenizer, render_conversation
    from ochat.models import load_model
    from ochat.serving.protocol import ROLE_TO_TEMPLATE
    from ochat.serving.responses import ChunkEncoder, new_completion_id, now, usage_chunk

    config = get_model_config(model_type)
    tokenizer = load_tokenizer(config, model_path)
    device = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    model = load_model(config, model_path, device=device).eval()
    lock = asyncio.Lock()

    async def chat(request):
        body = await request.json()
        items = [{"from": ROLE_TO_TEMPLATE[m["role"]], "value": m["content"]} for m in body["messages"]]
        prompt_ids = render_conversation(config, tokenizer, items, add_generation_prompt=True).token_ids
        completion_id, created, model_name = new_completion_id(), now(), body["model"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        async with lock:
            streamer = TextIteratorStreamer(tokenizer.hf_tokenizer, skip_prompt=True, skip_special_tokens=True)
            output = {}

            def generate():
                with torch.inference_mode():
                    output["ids"] = model.generate(
                        torch.tensor([prompt_ids], device=device),
                        max_new_tokens=body["max_tokens"],
                        do_sample=False,
                        eos_token_id=tokenizer.stop_token_ids,
                        streamer=streamer,
                        pad_token_id=tokenizer.hf_tokenizer.pad_token_id,
                    )

            thread = threading.Thread(target=generate)
            thread.start()
            chunk = ChunkEncoder(completion_id, created, model_name).encode
            await response.write(chunk(0, {"role": "assistant", "content": ""}))
            iterator = iter(streamer)
            while True:
                text = await asyncio.to_thread(next, iterator, None)
                if text is None:
                    break
                if text:
                    await response.write(chunk(0, {"content": text}))
            thread.join()
            completion_tokens = output["ids"].shape[1] - len(prompt_ids)
        await response.write(
            f"data: {json.dumps(usage_chunk(completion_id, created, model_name, len(prompt_ids), completion_tokens))}\n\ndata: [DONE]\n\n".encode()
        )
        return response

    async def health(request):
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- the load generator ---------------------------------------------------------------------------------


async def one_stream(session, url: str, model: str, prompt: str, max_tokens: int) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    arrivals: list[tuple[float, int]] = []  # (time, characters) of each content chunk
    completion_tokens = prompt_tokens = 0
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        async for line in response.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                completion_tokens = chunk["usage"]["completion_tokens"]
                prompt_tokens = chunk["usage"]["prompt_tokens"]
            for choice in chunk.get("choices", []):
                if choice["delta"].get("content"):
                    arrivals.append((time.perf_counter(), len(choice["delta"]["content"])))
    ttft = arrivals[0][0] - started if arrivals else float("nan")
    gaps = []
    if len(arrivals) > 1 and completion_tokens > 1:
        total_chars = sum(chars for _, chars in arrivals[1:]) or 1
        tokens_after_first = completion_tokens - 1
        for (previous, _), (current, chars) in zip(arrivals, arrivals[1:]):
            tokens_in_chunk = max(1.0, tokens_after_first * chars / total_chars)
            gaps.extend([(current - previous) / tokens_in_chunk] * round(tokens_in_chunk))
    return {"ttft": ttft, "gaps": gaps, "completion_tokens": completion_tokens, "prompt_tokens": prompt_tokens}


async def drive(
    base_url: str, model: str, prompts: list[str], concurrency: int, max_tokens: int, fresh_connections: bool = False
) -> dict:
    """`concurrency` clients stream the prompts; `fresh_connections` opens a connection per request, for
    servers that close a kept-alive one after a stream (llama.cpp's `llama-server`)."""
    import aiohttp

    queue: asyncio.Queue = asyncio.Queue()
    for prompt in prompts:
        queue.put_nowait(prompt)
    results = []

    async def client(session):
        while not queue.empty():
            results.append(
                await one_stream(session, base_url + "/v1/chat/completions", model, queue.get_nowait(), max_tokens)
            )

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=fresh_connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=3600)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ttfts = sorted(r["ttft"] for r in results)
    gaps = sorted(g for r in results for g in r["gaps"])
    tokens = sum(r["completion_tokens"] for r in results)
    return {
        "requests": len(results),
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "mean_prompt_tokens": sum(r["prompt_tokens"] for r in results) / max(1, len(results)),
        "mean_completion_tokens": tokens / max(1, len(results)),
        "ttft_p50": percentile(ttfts, 50),
        "ttft_p95": percentile(ttfts, 95),
        "ttft_p99": percentile(ttfts, 99),
        "itl_p50": percentile(gaps, 50),
        "itl_p95": percentile(gaps, 95),
        "itl_p99": percentile(gaps, 99),
    }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


# -- Ray transport: how tokens travel from a replica to the front ------------------------------------


def compare_ray_transports(streams: int, tokens: int, step_s: float = 0.003) -> None:
    """A fake replica emits one token per stream every `step_s`; the front receives them either by one
    batched `poll` per step (what the server does) or by one Ray streaming generator per request."""
    import threading

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only, as the server's local cluster
    os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 << 20, log_to_driver=False)

    @ray.remote(num_cpus=1)
    class PolledReplica:
        def __init__(self):
            self.outbox, self.lock, self.ready = [], threading.Lock(), None

        async def start(self):
            loop, self.ready = asyncio.get_running_loop(), asyncio.Event()

            def produce():
                for token in range(tokens):
                    time.sleep(step_s)
                    with self.lock:
                        self.outbox.extend((stream, token, time.time()) for stream in range(streams))
                    loop.call_soon_threadsafe(self.ready.set)

            threading.Thread(target=produce, daemon=True).start()

        async def poll(self):
            while True:
                with self.lock:
                    if self.outbox:
                        events, self.outbox = self.outbox, []
                        return events
                    self.ready.clear()
                await self.ready.wait()

    @ray.remote(num_cpus=1)
    class StreamingReplica:
        async def stream(self, stream):
            for token in range(tokens):
                await asyncio.sleep(step_s)
                yield stream, token, time.time()

    async def by_poll():
        replica = PolledReplica.remote()
        await replica.start.remote()
        latencies = []
        while len(latencies) < streams * tokens:
            latencies += [time.time() - sent for _, _, sent in await replica.poll.remote()]
        return latencies

    async def by_generator():
        replica = StreamingReplica.remote()
        await replica.__ray_ready__.remote()
        latencies = []

        async def one(stream):
            async for ref in replica.stream.options(num_returns="streaming").remote(stream):
                latencies.append(time.time() - (await ref)[2])

        await asyncio.gather(*(one(stream) for stream in range(streams)))
        return latencies

    for name, method in (("batched poll per step", by_poll), ("streaming generator per request", by_generator)):
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        latencies = sorted(asyncio.run(method()))
        wall, cpu = time.perf_counter() - wall_started, time.process_time() - cpu_started
        print(
            f"| {name} | {streams} | {tokens} | {wall:.2f} | {cpu:.2f} | {percentile(latencies, 50) * 1000:.2f} "
            f"| {percentile(latencies, 99) * 1000:.2f} |"
        )
    ray.shutdown()


# -- orchestration -------------------------------------------------------------------------------------


def ensure_tiny_model(work_dir: str) -> str:
    return prepare_tiny_chat_model("openchat_tiny", os.path.join(work_dir, "tiny"))[1]


def start_server(command: list[str], port: int, log_path: str, timeout: float = 300) -> subprocess.Popen:
    import urllib.request

    log = open(log_path, "w")
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"server did not become healthy in {timeout} s; see {log_path}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def budget_tokens_needed(model_type: str, model_path: str, clients: int, max_tokens: int) -> int:
    """KV tokens `clients` concurrent requests need at once: clients x (longest prompt + max_tokens)."""
    from ochat.config import get_model_config, load_tokenizer, render_conversation

    config = get_model_config(model_type)
    tokenizer = load_tokenizer(config, model_path)
    longest = max(
        len(
            render_conversation(
                config, tokenizer, [{"from": "human", "value": prompt}], add_generation_prompt=True
            ).token_ids
        )
        for prompt in fixed_prompts(clients)
    )
    return clients * (longest + max_tokens)


def preemptions(base_url: str) -> float | None:
    """The server's `ochat_preemptions_total` (summed over replicas), or None without a /metrics endpoint."""
    import urllib.request

    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("ochat_preemptions_total")
    )


def measure(
    name: str, command: list[str], port: int, model: str, args, log_dir: str, concurrencies: list[int] | None = None
) -> list[dict]:
    process = start_server(command, port, os.path.join(log_dir, f"{name}.log"))
    rows = []
    try:
        base_url = f"http://127.0.0.1:{port}"
        asyncio.run(drive(base_url, model, fixed_prompts(2), 1, 8))  # warm-up
        for concurrency in concurrencies or args.concurrency:
            prompts = fixed_prompts(max(concurrency * args.rounds, args.min_requests))
            result = asyncio.run(drive(base_url, model, prompts, concurrency, args.max_tokens))
            result.update(server=name, concurrency=concurrency, preemptions=preemptions(base_url))
            rows.append(result)
            print(f"  {name:<10} clients={concurrency:<3} {result['tokens_per_s']:8.1f} tok/s", flush=True)
    finally:
        stop_server(process)
    return rows


def print_table(rows: list[dict]) -> None:
    header = (
        f"| {'server':<10} | clients | requests | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        print(
            f"| {row['server']:<10} | {row['concurrency']:>7} | {row['requests']:>8} | {row['tokens_per_s']:>12.1f} "
            f"| {row['ttft_p50'] * 1000:>11.1f} | {row['ttft_p99'] * 1000:>11.1f} | {row['itl_p50'] * 1000:>10.2f} "
            f"| {row['itl_p99'] * 1000:>10.2f} |"
        )
    by_key = {(row["server"], row["concurrency"]): row for row in rows}
    for concurrency in sorted({row["concurrency"] for row in rows}):
        if ("ochat", concurrency) in by_key and ("baseline", concurrency) in by_key:
            ratio = by_key[("ochat", concurrency)]["tokens_per_s"] / by_key[("baseline", concurrency)]["tokens_per_s"]
            print(f"clients={concurrency}: continuous batching gives {ratio:.1f}x the baseline's output tokens/s")
        if ("ochat_kv25", concurrency) in by_key and ("ochat", concurrency) in by_key:
            budget = by_key[("ochat_kv25", concurrency)]
            ratio = budget["tokens_per_s"] / by_key[("ochat", concurrency)]["tokens_per_s"]
            print(
                f"clients={concurrency}: with the KV budget at {budget['budget_fraction']:.0%} of what they need "
                f"({budget['kv_cache_tokens']} tokens): {budget['tokens_per_s']:.1f} tok/s, {ratio:.2f}x the "
                f"unlimited server's, preemptions {budget['preemptions']}"
            )


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_type", default="openchat_tiny", help="registry model type (default openchat_tiny)")
    parser.add_argument("--model_path", default=None, help="model folder (default: build the tiny model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="client counts (default 1 8 32)")
    parser.add_argument("--max_tokens", type=int, default=128, help="tokens asked per request (default 128)")
    parser.add_argument("--rounds", type=int, default=2, help="requests per client at each concurrency (default 2)")
    parser.add_argument("--min_requests", type=int, default=8, help="fewest requests per measurement (default 8)")
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["ochat", "ochat_kv25", "baseline"],
        choices=["ochat", "ochat_kv25", "baseline"],
        help="ochat_kv25: ochat with the KV budget cut, at the largest client count only",
    )
    parser.add_argument(
        "--budget_fraction",
        type=float,
        default=0.25,
        help="ochat_kv25's KV budget as a fraction of what the clients need (default 0.25)",
    )
    parser.add_argument(
        "--work_dir",
        default=os.path.join(REPO_ROOT, "benchmarks", "_work"),
        help="where the tiny model and server logs go",
    )
    parser.add_argument(
        "--torch_threads",
        type=int,
        default=1,
        help="CPU threads of the baseline's torch, as a replica gets from Ray (default 1)",
    )
    parser.add_argument(
        "--ray_transport",
        action="store_true",
        help="instead: compare batched polling with Ray streaming generators for moving tokens",
    )
    parser.add_argument("--baseline_server_port", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.baseline_server_port:
        run_baseline_server(
            args.model_type, args.model_path, args.baseline_server_port, args.device, args.torch_threads
        )
        return
    if args.ray_transport:
        print("| transport | streams | tokens each | wall s | front CPU s | latency p50 ms | latency p99 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for streams in args.concurrency:
            compare_ray_transports(streams, args.max_tokens)
        return
    os.makedirs(args.work_dir, exist_ok=True)
    model_path = args.model_path or ensure_tiny_model(args.work_dir)
    print(f"model: {args.model_type} at {model_path}; {args.max_tokens} tokens per request, greedy", flush=True)
    rows = []
    for name in args.servers:
        port = free_port()
        concurrencies = None
        if name.startswith("ochat"):
            command = [
                sys.executable,
                "-m",
                "ochat.serving.openai_api_server",
                "--model_type",
                args.model_type,
                "--model_path",
                model_path,
                "--port",
                str(port),
                "--device",
                args.device,
                "--logfile",
                os.path.join(args.work_dir, f"{name}_requests.log"),
            ]
            if name == "ochat_kv25":
                concurrencies = [max(args.concurrency)]
                needed = budget_tokens_needed(args.model_type, model_path, concurrencies[0], args.max_tokens)
                budget = int(needed * args.budget_fraction)
                command += ["--kv_cache_tokens", str(budget)]
                print(f"ochat_kv25: {concurrencies[0]} clients need {needed} KV tokens; budget {budget}", flush=True)
        else:
            command = [
                sys.executable,
                os.path.abspath(__file__),
                "--model_type",
                args.model_type,
                "--model_path",
                model_path,
                "--device",
                args.device,
                "--torch_threads",
                str(args.torch_threads),
                "--baseline_server_port",
                str(port),
            ]
        measured = measure(name, command, port, args.model_type, args, args.work_dir, concurrencies)
        if name == "ochat_kv25":
            for row in measured:
                row.update(kv_cache_tokens=budget, budget_fraction=args.budget_fraction)
        rows += measured
    print()
    order = {"ochat": 0, "ochat_kv25": 1, "baseline": 2}
    print_table(sorted(rows, key=lambda row: (row["concurrency"], order[row["server"]])))


if __name__ == "__main__":
    main()
