"""Seeded fuzz of `POST /v1/chat/completions` bodies against the real server: every answer must be a 2xx or a
4xx in OpenAI's shape, never a 5xx, a hang or a stream that ends in a server error.

    python benchmarks/serving_fuzz.py --count 5000 --seed 0            # starts the tiny model's server
    python benchmarks/serving_fuzz.py --base_url http://127.0.0.1:18888 --model openchat --count 5000

Each mutation starts from a valid request and changes one thing: a field set to a value from a pool of
hostile values (null, wrong types, huge numbers, long strings, surrogates, deep nesting), a field deleted or
added, a message or content part broken, a response_format schema built to explode or to admit nothing,
bytes flipped, cut or spliced, or headers (Content-Type, a Content-Encoding the body does not have, a real
gzip body). The same seed sends the same requests. Prints requests, status classes, 4xx by error code and
the 5xx count; exits non-zero on any 5xx, timeout or stream that ends in a server error.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import os
import random
import sys
import tempfile
import time

import aiohttp

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from ochat.utils.cli import ArgumentParser  # noqa: E402

FIELDS = [
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "seed",
    "stream", "stream_options", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
    "response_format", "user", "condition", "tools", "functions", "logit_bias", "tool_choice",
    "parallel_tool_calls", "function_call", "modalities", "structured_outputs", "metadata", "store", "audio",
]  # fmt: skip
HOSTILE_VALUES = [
    None, True, False, 0, 1, 2, -1, 3.5, -0.0, 1e308, -1e308, 2**31, 2**63, 10**30, "", "x", "2", "null",
    "\u0000", "\ud7ff\ue000", "x" * 5000, [], [None], ["a", "b", "c", "d", "e"], [[]], {}, {"a": 1},
    {"type": "text"}, {"include_usage": True}, {"5": 100}, {"-1": 1}, {"999999999": -100}, {"5": 101},
    [{"role": "user", "content": "hi"}], "user", 16, 17, 20, 21, 1e-39,
]  # fmt: skip
ATTACK_SCHEMAS = [
    {"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]},
    {"$ref": "#"},
    {"$ref": "#/definitions/missing"},
    {"type": "array", "items": {"$ref": "#"}, "minItems": 1},
    {"allOf": [{"type": "string"}, {"type": "integer"}]},
    {"type": "string", "minLength": 5, "maxLength": 2},
    {"type": "string", "pattern": "(a+)+$"},
    {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(200)}},
    {"anyOf": [{"type": "integer"}, {"$ref": "#"}]},
    {"enum": []},
    {"type": "nonsense"},
    {"not": {}},
    {"const": 5},
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}, "required": ["name"]},
]
CONTENT_TYPES = ["application/json", "text/plain", "application/json; charset=latin-1", "", "multipart/form-data"]


def base_request(model: str, rng: random.Random) -> dict:
    return {
        "model": model,
        "messages": [{"role": "user", "content": rng.choice(["hi", "tell me a story", "2+2?", "héllo ✓"])}],
        "max_tokens": rng.choice([1, 2, 4]),
        "temperature": rng.choice([0, 0.7]),
        "stream": rng.random() < 0.3,
    }


def deep(depth: int):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def mutate(model: str, rng: random.Random) -> tuple[str, bytes, dict]:
    """(mutation kind, body bytes, headers) for one request."""
    body = base_request(model, rng)
    headers = {"Content-Type": "application/json"}
    kind = rng.choice(
        ["field", "field", "field", "delete", "extra", "message", "schema", "bytes", "headers", "combo", "valid"]
    )
    if kind in ("field", "combo"):
        for _ in range(1 if kind == "field" else rng.randint(2, 5)):
            body[rng.choice(FIELDS)] = rng.choice(HOSTILE_VALUES + [deep(rng.choice([5, 60, 300]))])
    elif kind == "delete":
        body.pop(rng.choice(list(body)))
    elif kind == "extra":
        name = rng.choice(["x", "top_k", "min_p", "guided_json", "reasoning_effort", "\u2028", "a" * 300, ""])
        body[name] = rng.choice(HOSTILE_VALUES)
    elif kind == "message":
        message = body["messages"][0]
        choice = rng.randrange(6)
        if choice == 0:
            message["role"] = rng.choice(["tool", "function", "USER", "", None, ["user"], 5])
        elif choice == 1:
            message["content"] = rng.choice(HOSTILE_VALUES)
        elif choice == 2:
            message["content"] = [rng.choice([{"type": "text", "text": "a"}, {"type": "image_url"}, {}, None, "x"])]
        elif choice == 3:
            body["messages"] = rng.choice([[], {}, "hi", [None], [[]], [message] * rng.choice([2, 50])])
        elif choice == 4:
            message["name"] = rng.choice(HOSTILE_VALUES)
        else:
            body["messages"].append({"role": "assistant", "content": None, "tool_calls": []})
    elif kind == "schema":
        schema = rng.choice(ATTACK_SCHEMAS)
        body["response_format"] = rng.choice(
            [
                {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
                {"type": "json_schema", "json_schema": {"name": "bad name!", "schema": schema}},
                {"type": "json_schema", "json_schema": schema},
                {"type": "json_object"},
                {"type": "xml"},
            ]
        )
    raw = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        raw = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(raw))
            operation = rng.randrange(4)
            if operation == 0:
                raw[position] = rng.randrange(256)
            elif operation == 1:
                del raw[position:]
            elif operation == 2:
                raw[position:position] = rng.choice([b"{", b"}", b"]", b",", b'"', b"\\u", b"\xff", b"NaN", b"1e999"])
            else:
                raw += raw[position : position + 40]
            if not raw:
                raw = bytearray(b"{")
        raw = bytes(raw)
    elif kind == "headers":
        choice = rng.randrange(4)
        if choice == 0:
            headers["Content-Type"] = rng.choice(CONTENT_TYPES)
        elif choice == 1:
            headers["Content-Encoding"] = rng.choice(["gzip", "deflate", "br", "identity", "bogus"])
        elif choice == 2:
            headers["Content-Encoding"] = "gzip"
            raw = gzip.compress(raw)
        else:
            headers["Content-Encoding"] = "gzip"
            raw = gzip.compress(raw)[: rng.randrange(1, 30)]
    return kind, raw, headers


async def send(session: aiohttp.ClientSession, url: str, raw: bytes, headers: dict, timeout: float) -> tuple:
    """(status, error code or None, server error seen inside a stream or None)."""
    async with session.post(
        url, data=raw, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
    ) as response:
        payload = await response.read()
    if response.status != 200:
        try:
            error = json.loads(payload)["error"]
            assert set(error) == {"message", "type", "param", "code"}
            kind = error["code"] or ("invalid_parameter" if error["param"] else "invalid_request")
            return response.status, kind, None
        except Exception:
            return response.status, "not_openai_shape", None
    stream_error = None
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        for line in payload.split(b"\n"):
            if line.startswith(b"data: {") and b'"error"' in line:
                event = json.loads(line[6:])
                if "error" in event:  # not a chunk whose text happens to hold the word
                    stream_error = f"{event['error']['type']}:{event['error']['code']}"
    return response.status, None, stream_error


async def run_fuzz(base_url: str, model: str, count: int, seed: int, concurrency: int = 8, timeout: float = 120):
    """Send `count` seeded mutations; returns a `collections.Counter` of outcomes and a few examples of 5xx."""
    rng = random.Random(seed)
    requests = [mutate(model, rng) for _ in range(count)]
    url = base_url.rstrip("/") + "/v1/chat/completions"
    outcomes: collections.Counter = collections.Counter()
    failures: list = []
    queue = collections.deque(requests)

    async def worker(session):
        while queue:
            kind, raw, headers = queue.popleft()
            try:
                status, code, stream_error = await send(session, url, raw, headers, timeout)
            except (asyncio.TimeoutError, aiohttp.ClientError) as error:
                status, code, stream_error = 0, type(error).__name__, None
            outcomes["requests"] += 1
            outcomes[f"status {status // 100}xx" if status else "no answer"] += 1
            if 400 <= status < 500:
                outcomes[f"4xx {code}"] += 1
            if stream_error:
                outcomes[f"stream error {stream_error}"] += 1
            if status >= 500 or status == 0 or (stream_error or "").startswith("server_error"):
                outcomes["failures"] += 1
                if len(failures) < 10:
                    failures.append((kind, status, code, stream_error, raw[:300], headers))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return outcomes, failures


def print_table(outcomes: collections.Counter, seconds: float) -> None:
    print(f"{'outcome':<48}{'requests':>10}")
    for name in ["requests", "status 2xx", "status 4xx", "status 5xx", "no answer", "failures"]:
        print(f"{name:<48}{outcomes.get(name, 0):>10}")
    for name in sorted(key for key in outcomes if key.startswith(("4xx ", "stream error "))):
        print(f"  {name:<46}{outcomes[name]:>10}")
    print(f"{'seconds':<48}{seconds:>10.1f}")


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="mutated requests (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--base_url", default=None, help="a running server; default: start the tiny model's")
    parser.add_argument("--model", default="openchat_tiny", help="model name to send (default openchat_tiny)")
    args = parser.parse_args(argv)
    server = None
    if args.base_url is None:
        from ochat.models.tiny_chat_model import prepare_tiny_chat_model
        from ochat.utils.server_process import ServerProcess

        work_dir = tempfile.mkdtemp(prefix="serving_fuzz_")
        _, model_dir = prepare_tiny_chat_model(args.model, os.path.join(work_dir, "tiny"))
        server = ServerProcess.start(
            args.model,
            model_dir,
            "--default_max_tokens", "8", "--max_batch_size", "8", "--ray_num_cpus", "2",
            "--logfile", os.path.join(work_dir, "requests.log"),
            log_path=os.path.join(work_dir, "server.out"),
        )  # fmt: skip
        args.base_url = server.base_url
    try:
        started = time.perf_counter()
        outcomes, failures = asyncio.run(run_fuzz(args.base_url, args.model, args.count, args.seed, args.concurrency))
        print_table(outcomes, time.perf_counter() - started)
    finally:
        if server is not None:
            server.stop()
    for failure in failures:
        print("FAILURE", failure)
    sys.exit(1 if outcomes["failures"] else 0)


if __name__ == "__main__":
    main()
