"""OpenAI-compatible chat server: an aiohttp front over Ray engine replicas.

    python -m ochat.serving.openai_api_server --model_type openchat --model_path ./openchat-13b
    curl localhost:18888/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"model": "openchat", "messages": [{"role": "user", "content": "Hi"}]}'

Endpoints: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions`
(JSON or server-sent events), `GET /health`, and a chat page at `GET /`.
Prompts are rendered by the model registry's template (`ochat.config`), so the
server and training see the same tokens. Each replica is a Ray actor holding
the model and a continuous-batching engine (`ochat.serving.engine`); the front
renders prompts, routes each request to the least-loaded replica, and turns
token ids back into text. Chat UIs that only offer OpenAI's model names work
with `--model_name gpt-3.5-turbo` (or whichever name they send). One JSON line
per request goes to `--logfile` or stderr, for example:

    {"time": "2026-11-21T10:00:00Z", "id": "chatcmpl-..", "method": "POST", "path": "/v1/chat/completions",
     "status": 200, "stream": true, "prompt_tokens": 31, "completion_tokens": 64, "latency_ms": 212.4}
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional

from aiohttp import web

from ochat.serving.detokenize import IncrementalDecoder, byte_token_ids, special_token_ids
from ochat.serving.protocol import (
    ChatCompletionRequest,
    ChunkEncoder,
    OpenAIError,
    chat_completion,
    error_body,
    model_card,
    model_list,
    new_completion_id,
    now,
    parse_chat_request,
    usage_chunk,
)
from ochat.utils.cli import ArgumentParser

logger = logging.getLogger("ochat.serving")
request_logger = logging.getLogger("ochat.serving.requests")
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_logging(args.logfile)
    from ochat.config import get_model_config, load_tokenizer

    try:
        config = get_model_config(args.model_type)
        tokenizer = load_tokenizer(config, args.model_path)
        tokenizer.eot_token_id  # fails early, with the fix, when the checkpoint lacks <|end_of_turn|>
    except (ValueError, FileNotFoundError, OSError) as error:
        sys.exit(f"error: {error}")
    # Take the port first, so a busy port is reported before minutes of model loading, not after. It is only
    # bound here: aiohttp starts listening once the replicas are ready, and until then connections are refused
    # rather than left hanging in the backlog.
    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as error:
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {error}")
    try:
        replicas = start_replicas(args)
    except Exception as error:
        import ray

        ray.shutdown()
        sys.exit(f"error: the model replicas did not start: {error}")
    service = ChatService(
        config=config,
        tokenizer=tokenizer,
        pool=ReplicaPool(replicas, capacity_per_replica=args.max_batch_size + args.max_queue),
        model_names=served_model_names(args),
    )
    app = build_app(service, args)
    logger.info("serving %s on http://%s:%d/v1 (%d replica(s))", service.model_names[0], args.host, args.port,
                len(replicas))
    web.run_app(app, sock=listener, shutdown_timeout=args.shutdown_timeout,
                handler_cancellation=True, access_log=None, print=None)
    logger.info("server stopped")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_type", required=True, help="registry model type, e.g. openchat, openchat_8192, opencoder")
    parser.add_argument("--model_path", required=True, help="Hugging Face model folder (with <|end_of_turn|>)")
    parser.add_argument("--model_name", default=None,
                        help="model id clients send and /v1/models lists (default: the model type; the folder name "
                             "is accepted too)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=18888, help="port to bind (default 18888)")
    parser.add_argument("--num_replicas", type=int, default=1, help="model replicas, one Ray actor each (default 1)")
    parser.add_argument("--ray_address", default=None,
                        help="address of a running Ray cluster (auto, or HEAD_IP:6379); default: start a local one")
    parser.add_argument("--ray_num_cpus", type=int, default=None,
                        help="CPUs of the local Ray cluster (default: this machine's)")
    parser.add_argument("--replica_cpus", type=float, default=1, help="CPUs Ray reserves for each replica (default 1)")
    parser.add_argument("--device", default="auto", help="replica device: auto (cuda when present), cpu or cuda")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="weights dtype (default: the checkpoint's)")
    parser.add_argument("--max_batch_size", type=int, default=32,
                        help="sequences decoded together per replica (default 32)")
    parser.add_argument("--max_queue", type=int, default=256,
                        help="sequences that may wait per replica beyond the batch; more get 429 (default 256)")
    parser.add_argument("--api_keys", dest="api_keys", default=None,
                        help="comma-separated keys; when set, /v1 requires 'Authorization: Bearer KEY'")
    parser.add_argument("--allowed_origins", dest="allowed_origins", default="*",
                        help="CORS: comma-separated origins allowed to call the API (default *)")
    parser.add_argument("--allowed_methods", dest="allowed_methods", default="*",
                        help="CORS: comma-separated methods (default *)")
    parser.add_argument("--allowed_headers", dest="allowed_headers", default="*",
                        help="CORS: comma-separated request headers (default *)")
    parser.add_argument("--allow_credentials", dest="allow_credentials", action="store_true",
                        help="CORS: allow cookies and auth headers from other origins")
    parser.add_argument("--max_body_bytes", type=int, default=4 << 20,
                        help="largest request body accepted; larger gets 413 (default 4 MiB)")
    parser.add_argument("--shutdown_timeout", type=float, default=30.0,
                        help="on SIGTERM, seconds in-flight requests may take to finish before they are cancelled")
    parser.add_argument("--logfile", default=None, help="file for the JSON request log (default: stderr)")
    args = parser.parse_args(argv)
    for name in ("num_replicas", "max_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.max_queue < 0:
        parser.error("--max_queue must not be negative")
    return args


def setup_logging(logfile: Optional[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    request_logger.addHandler(handler)
    request_logger.setLevel(logging.INFO)
    request_logger.propagate = False


def served_model_names(args) -> list[str]:
    names = [args.model_name or args.model_type]
    folder = os.path.basename(os.path.normpath(args.model_path))
    if folder and folder not in names:
        names.append(folder)
    return names


def start_replicas(args) -> list:
    """Start Ray (locally or by address) and one engine actor per replica; wait until all loaded the model."""
    if not args.ray_address:
        # A local cluster talks over loopback only (Ray otherwise binds the machine's network address, to be
        # reachable by other nodes): the front and the replicas share this machine. Read when ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from ochat.serving.engine import engine_actor_class

    pythonpath = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath}}
    if args.ray_address:
        ray.init(address=args.ray_address, runtime_env=runtime_env, log_to_driver=True)
    else:
        # Ray starts workers at niceness 15; the replica is the server's main work, so it runs at normal priority.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=args.ray_num_cpus or max(os.cpu_count() or 1, args.num_replicas), include_dashboard=False,
                 runtime_env=runtime_env, object_store_memory=128 << 20)
    use_gpu = args.device == "cuda" or (args.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    actor_class = engine_actor_class(num_cpus=args.replica_cpus, num_gpus=1 if use_gpu else 0)
    actors = [
        actor_class.remote(args.model_type, os.path.abspath(args.model_path), args.max_batch_size,
                           "cuda" if use_gpu else "cpu", args.dtype)
        for _ in range(args.num_replicas)
    ]
    for info in ray.get([actor.ready.remote() for actor in actors]):
        logger.info("replica ready: %s", info)
    return actors


# -- replicas --------------------------------------------------------------------------------------


class ReplicaPool:
    """Routes sequences to replicas and engine events back to the requests that wait for them.

    One poller task per replica asks its actor for every event since the last
    poll, so one Ray round trip serves all sequences of a decode step.
    """

    def __init__(self, actors: list, capacity_per_replica: int):
        self.actors = actors
        self.capacity_per_replica = capacity_per_replica
        self.load = [0] * len(actors)
        self.alive = [True] * len(actors)
        self.routes: dict[str, asyncio.Queue] = {}
        self.route_replica: dict[str, int] = {}
        self._pollers: list[asyncio.Task] = []

    def start(self) -> None:
        self._pollers = [asyncio.create_task(self._poll(index)) for index in range(len(self.actors))]

    async def stop(self) -> None:
        for task in self._pollers:
            task.cancel()
        await asyncio.gather(*self._pollers, return_exceptions=True)
        import ray

        for actor in self.actors:
            ray.kill(actor)

    def reserve(self, sequences: int) -> Optional[int]:
        """The least-loaded live replica with room for `sequences` more, or None when all are full."""
        candidates = [i for i in range(len(self.actors)) if self.alive[i]]
        if not candidates:
            raise OpenAIError(503, "no model replica is running", error_type="server_error", code="replica_unavailable")
        replica = min(candidates, key=lambda i: self.load[i])
        if self.load[replica] + sequences > self.capacity_per_replica:
            return None
        self.load[replica] += sequences
        return replica

    def release(self, replica: int, sequences: int) -> None:
        self.load[replica] -= sequences

    def submit(self, replica: int, requests: list[tuple], queue: asyncio.Queue) -> None:
        for seq_id, _prompt, _params in requests:
            self.routes[seq_id] = queue
            self.route_replica[seq_id] = replica
        self.actors[replica].submit_many.remote(requests)

    def forget(self, seq_ids: list[str], abort: bool) -> None:
        replicas = {self.route_replica.pop(seq_id, None) for seq_id in seq_ids}
        for seq_id in seq_ids:
            self.routes.pop(seq_id, None)
        if abort:
            for replica in replicas - {None}:
                if self.alive[replica]:
                    self.actors[replica].abort.remote(seq_ids)

    async def _poll(self, replica: int) -> None:
        actor = self.actors[replica]
        while True:
            try:
                events = await actor.poll.remote()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the actor died: fail its requests instead of leaving them hanging
                logger.error("replica %d failed: %s", replica, error)
                self.alive[replica] = False
                for seq_id, owner in list(self.route_replica.items()):
                    if owner == replica and seq_id in self.routes:
                        self.routes[seq_id].put_nowait((seq_id, None, "error: the model replica stopped"))
                return
            for event in events:
                queue = self.routes.get(event[0])
                if queue is not None:
                    queue.put_nowait(event)


# -- what a request means for the engine -----------------------------------------------------------


class StopStringFilter:
    """Releases text while holding back any tail that could start a stop string."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show, whether a stop string ended the choice)."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [index for index in (self.pending.find(stop) for stop in self.stops) if index >= 0]
        if hits:
            released, self.pending = self.pending[:min(hits)], ""
            return released, True
        hold = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(self.pending)), hold, -1):
                if stop.startswith(self.pending[-length:]):
                    hold = length
                    break
        released = self.pending[:len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        return released, False

    def flush(self) -> str:
        released, self.pending = self.pending, ""
        return released


@dataclass
class Choice:
    index: int
    decoder: IncrementalDecoder
    stops: StopStringFilter
    text: str = ""
    completion_tokens: int = 0
    finish_reason: Optional[str] = None


@dataclass
class ChoiceUpdate:
    index: int
    text: str
    finish_reason: Optional[str] = None


class EngineFailure(Exception):
    """The engine could not finish a sequence (step failure or replica loss)."""


@dataclass
class ChatService:
    """Renders prompts, admits requests, and turns engine events into choice text."""

    config: object
    tokenizer: object
    pool: ReplicaPool
    model_names: list[str]
    created: int = field(default_factory=now)

    def __post_init__(self):
        hf_tokenizer = self.tokenizer.hf_tokenizer
        self._byte_ids = byte_token_ids(hf_tokenizer)
        self._special_ids = special_token_ids(hf_tokenizer)
        # The fast tokenizer's own (Rust) decode gives the same text as the transformers wrapper at a third of
        # the cost, which matters: streaming decodes twice per token per client.
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is not None:
            self._decode = lambda ids: backend.decode(ids, skip_special_tokens=True)
        else:
            self._decode = lambda ids: hf_tokenizer.decode(ids, skip_special_tokens=True)

    def check_model(self, name: str) -> None:
        if name not in self.model_names:
            raise OpenAIError(404, f"The model `{name}` does not exist; this server serves {self.model_names[0]!r}",
                              param="model", code="model_not_found")

    def render(self, request: ChatCompletionRequest) -> tuple[list[int], int]:
        """Prompt ids and the completion budget, or a 400 when the context cannot hold them."""
        from ochat.config import render_conversation

        prompt_ids, _mask = render_conversation(self.config, self.tokenizer, request.conversation,
                                                add_generation_prompt=True)
        max_context = self.config.max_context
        room = max_context - len(prompt_ids)
        if room <= 0:
            raise OpenAIError(400, f"This model's maximum context length is {max_context} tokens. However, your "
                                   f"messages resulted in {len(prompt_ids)} tokens. Please reduce the length of the "
                                   "messages.", param="messages", code="context_length_exceeded")
        if request.max_tokens is not None and request.max_tokens > room:
            raise OpenAIError(400, f"This model's maximum context length is {max_context} tokens. However, you "
                                   f"requested {len(prompt_ids) + request.max_tokens} tokens ({len(prompt_ids)} in the "
                                   f"messages, {request.max_tokens} in the completion). Please reduce the length of "
                                   "the messages or completion.", param="max_tokens", code="context_length_exceeded")
        return prompt_ids, request.max_tokens or room

    async def generate(self, request: ChatCompletionRequest, completion_id: str,
                       stats: dict) -> AsyncIterator[list[ChoiceUpdate]]:
        """Yield text updates as tokens arrive; the sequences are aborted however the caller stops."""
        from ochat.serving.engine import SamplingParams

        prompt_ids, max_tokens = self.render(request)
        stats["prompt_tokens"] = len(prompt_ids)
        replica = self.pool.reserve(request.n)
        if replica is None:
            raise OpenAIError(429, "The server is at capacity; retry shortly", error_type="requests",
                              code="rate_limit_exceeded", headers={"Retry-After": "1"})
        choices = [Choice(i, IncrementalDecoder(self._decode, self._byte_ids, self._special_ids),
                          StopStringFilter(request.stop)) for i in range(request.n)]
        seq_ids = [f"{completion_id}-{i}" for i in range(request.n)]
        queue: asyncio.Queue = asyncio.Queue()
        submissions = []
        for i, seq_id in enumerate(seq_ids):
            seed = None if request.seed is None else request.seed + i
            params = SamplingParams(max_tokens=max_tokens, temperature=request.temperature, top_p=request.top_p,
                                    seed=seed, presence_penalty=request.presence_penalty,
                                    frequency_penalty=request.frequency_penalty)
            submissions.append((seq_id, prompt_ids, params))
        self.pool.submit(replica, submissions, queue)
        unfinished = request.n
        try:
            while unfinished:
                events = [await queue.get()]
                while not queue.empty():
                    events.append(queue.get_nowait())
                updates: dict[int, ChoiceUpdate] = {}  # one update per choice: tokens that arrived together merge
                for seq_id, token_id, finish_reason in events:
                    choice = choices[int(seq_id.rsplit("-", 1)[1])]
                    if choice.finish_reason is not None:
                        continue
                    update = self._advance(choice, token_id, finish_reason)
                    if choice.finish_reason is not None:
                        unfinished -= 1
                        self.pool.forget([seq_id], abort=finish_reason is None)
                    if update.text or update.finish_reason:
                        merged = updates.get(choice.index)
                        if merged is None:
                            updates[choice.index] = update
                        else:
                            merged.text += update.text
                            merged.finish_reason = update.finish_reason
                stats["completion_tokens"] = sum(choice.completion_tokens for choice in choices)
                if updates:
                    yield list(updates.values())
        finally:
            self.pool.forget([s for s, c in zip(seq_ids, choices) if c.finish_reason is None], abort=True)
            self.pool.release(replica, request.n)

    def _advance(self, choice: Choice, token_id: Optional[int], finish_reason: Optional[str]) -> ChoiceUpdate:
        if finish_reason is not None and finish_reason.startswith("error"):
            raise EngineFailure(finish_reason.partition(": ")[2] or finish_reason)
        if finish_reason == "abort":
            raise EngineFailure("the sequence was cancelled")
        choice.completion_tokens += 1
        text = choice.decoder.step(token_id) if token_id is not None else ""
        if finish_reason is not None:
            text += choice.decoder.flush()
        released, stopped = choice.stops.feed(text)
        if stopped:
            finish_reason = "stop"
        elif finish_reason is not None:
            released += choice.stops.flush()
        choice.text += released
        choice.finish_reason = finish_reason
        return ChoiceUpdate(choice.index, released, finish_reason)


# -- HTTP --------------------------------------------------------------------------------------------

SERVICE_KEY = web.AppKey("service", ChatService)
API_KEYS_KEY = web.AppKey("api_keys", frozenset)


def json_error(error: OpenAIError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


async def read_json(request: web.Request):
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise OpenAIError(413, f"The request body is larger than the limit of {request.app._client_max_size} bytes",
                          code="request_too_large")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OpenAIError(400, f"The request body is not valid JSON: {error}", code="invalid_json")


def sse(payload) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    chat = parse_chat_request(await read_json(request))
    service.check_model(chat.model)
    completion_id = new_completion_id()
    stats = request["stats"]
    stats.update(id=completion_id, stream=chat.stream)
    if chat.stream:
        return await stream_chat_completion(request, service, chat, completion_id, stats)
    texts = [""] * chat.n
    finish_reasons = [None] * chat.n
    try:
        async for updates in service.generate(chat, completion_id, stats):
            for update in updates:
                texts[update.index] += update.text
                finish_reasons[update.index] = update.finish_reason or finish_reasons[update.index]
    except EngineFailure as error:
        raise OpenAIError(503, f"The model failed while generating: {error}", code="engine_error")
    return web.json_response(chat_completion(completion_id, now(), chat.model, texts, finish_reasons,
                                             stats["prompt_tokens"], stats.get("completion_tokens", 0)))


async def stream_chat_completion(request, service: ChatService, chat: ChatCompletionRequest, completion_id: str,
                                 stats: dict) -> web.StreamResponse:
    created = now()
    updates_iter = service.generate(chat, completion_id, stats)
    # Pull the first update before sending headers, so prompt and admission errors still get a proper status.
    try:
        first = await updates_iter.__anext__()
    except StopAsyncIteration:
        first = []
    except EngineFailure as error:
        raise OpenAIError(503, f"The model failed while generating: {error}", code="engine_error")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)

    chunk = ChunkEncoder(completion_id, created, chat.model, chat.include_usage).encode
    await response.write(b"".join(chunk(i, {"role": "assistant", "content": ""}) for i in range(chat.n)))
    try:
        pending = first
        while True:
            out = []
            for update in pending:
                if update.text:
                    out.append(chunk(update.index, {"content": update.text}))
                if update.finish_reason:
                    out.append(chunk(update.index, {}, update.finish_reason))
            if out:
                await response.write(b"".join(out))
            try:
                pending = await updates_iter.__anext__()
            except StopAsyncIteration:
                break
        if chat.include_usage:
            await response.write(sse(usage_chunk(completion_id, created, chat.model, stats["prompt_tokens"],
                                                 stats.get("completion_tokens", 0))))
    except EngineFailure as error:
        stats["error"] = str(error)
        await response.write(sse(error_body(f"The model failed while generating: {error}", "server_error",
                                            code="engine_error")))
    finally:
        await updates_iter.aclose()
    await response.write(sse("[DONE]"))
    await response.write_eof()
    return response


async def list_models(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return web.json_response(model_list(service.model_names[:1], service.created))


async def get_model(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["model"]
    service.check_model(name)
    return web.json_response(model_card(name, service.created))


async def health(request: web.Request) -> web.Response:
    pool = request.app[SERVICE_KEY].pool
    healthy = all(pool.alive)
    body = {"status": "ok" if healthy else "degraded", "replicas": len(pool.actors),
            "replicas_alive": sum(pool.alive), "sequences_in_flight": sum(pool.load)}
    return web.json_response(body, status=200 if healthy else 503)


async def chat_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "chat.html"))


@web.middleware
async def request_log_middleware(request: web.Request, handler):
    """One JSON line per request, also when the client went away mid-stream."""
    started = time.perf_counter()
    request["stats"] = {}
    status = 499  # client closed the connection, unless a response says otherwise
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        if request.path != "/health":
            entry = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                     "method": request.method, "path": request.path, "status": status,
                     "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
            entry.update(request["stats"])
            request_logger.info(json.dumps(entry))


@web.middleware
async def error_middleware(request: web.Request, handler):
    """Every failure leaves as OpenAI's error JSON; an unexpected one is logged with its traceback."""
    try:
        return await handler(request)
    except OpenAIError as error:
        request["stats"]["error"] = error.message
        return json_error(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(error.status)
        message = {404: f"Unknown path {request.path}",
                   405: f"Method {request.method} is not allowed on {request.path}"}.get(error.status, error.text)
        return json_error(OpenAIError(error.status, message, code=code))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return json_error(OpenAIError(500, "The server had an error while processing your request",
                                      code="internal_error"))


@web.middleware
async def auth_middleware(request: web.Request, handler):
    api_keys = request.app[API_KEYS_KEY]
    if api_keys and request.path.startswith("/v1") and request.method != "OPTIONS":
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in api_keys:
            raise OpenAIError(401, "Incorrect API key provided. Pass 'Authorization: Bearer YOUR_KEY'.",
                              code="invalid_api_key")
    return await handler(request)


def build_app(service: ChatService, args) -> web.Application:
    import aiohttp_cors

    app = web.Application(client_max_size=args.max_body_bytes,
                          middlewares=[request_log_middleware, error_middleware, auth_middleware])
    app[SERVICE_KEY] = service
    app[API_KEYS_KEY] = frozenset(k.strip() for k in (args.api_keys or "").split(",") if k.strip())
    routes = [
        app.router.add_get("/v1/models", list_models),
        app.router.add_get("/v1/models/{model}", get_model),
        app.router.add_post("/v1/chat/completions", chat_completions),
        app.router.add_get("/health", health),
        app.router.add_get("/", chat_page),
    ]
    split = lambda value: "*" if value.strip() == "*" else [v.strip() for v in value.split(",") if v.strip()]
    options = aiohttp_cors.ResourceOptions(allow_credentials=args.allow_credentials, expose_headers="*",
                                           allow_headers=split(args.allowed_headers),
                                           allow_methods=split(args.allowed_methods))
    origins = split(args.allowed_origins)
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in (["*"] if origins == "*" else origins)})
    for route in routes:
        cors.add(route)

    async def start_pool(app):
        service.pool.start()

    async def stop_pool(app):
        await service.pool.stop()
        import ray

        ray.shutdown()

    app.on_startup.append(start_pool)
    app.on_cleanup.append(stop_pool)
    return app


if __name__ == "__main__":
    main()
