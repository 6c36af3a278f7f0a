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
with `--model_name openchat,gpt-3.5-turbo` (every name listed is served).
Conditioned (C-RLFT) types such as `openchat_v3.2` answer under the request's
extra body field `condition` (`"GPT4"`, `"GPT3"`, ...), else under
`--condition`, else under the type's inference condition; other types refuse
one. `GET /metrics` gives Prometheus metrics. One JSON line per request goes to
`--logfile` or stderr, for example:

    {"time": "2026-11-21T10:00:00Z", "id": "chatcmpl-..", "method": "POST", "path": "/v1/chat/completions",
     "status": 200, "stream": true, "prompt_tokens": 31, "completion_tokens": 64, "latency_ms": 212.4}
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from typing import Optional

from ochat.config import check_condition, get_model_config, load_tokenizer
from ochat.serving.http_connections import default_max_connections
from ochat.serving.http_middlewares import HttpSettings, setup_logging
from ochat.utils.cli import ArgumentParser

logger = logging.getLogger("ochat.serving")


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_logging(args.logfile, args.log_rate_limit)
    try:
        config = get_model_config(args.model_type, args.model_path)
        check_condition(config, args.condition)
        tokenizer = load_tokenizer(config, args.model_path)
        _ = tokenizer.eot_token_id  # fails early, with the fix, when the checkpoint lacks <|end_of_turn|>
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
    # The serving stack (torch, Ray, the engine) loads only now, so --help and the checks above answer at once.
    import ray

    from ochat.serving.chat_service import ChatService, SamplingDefaults
    from ochat.serving.http_app import build_app, serve
    from ochat.serving.metrics import ServerMetrics
    from ochat.serving.replica_pool import ReplicaPool, describe_replica, start_ray, start_replicas

    try:
        start_ray(args.ray_address, args.ray_num_cpus, args.num_replicas)
        actors, limits = start_replicas(
            args.model_type,
            args.model_path,
            args.num_replicas,
            args.replica_cpus,
            args.device,
            args.max_replica_restarts,
            worker_options(args),
        )
    except Exception as error:
        ray.shutdown()
        sys.exit(f"error: the model replicas did not start: {error}")
    for index, replica_limits in enumerate(limits):
        logger.info(describe_replica(index, replica_limits))
    stop = asyncio.Event()
    metrics = ServerMetrics(len(actors))
    pool = ReplicaPool(
        actors, limits, args.max_batch_size + args.max_queue, metrics, args.max_replica_restarts, on_lost_all=stop.set
    )
    service = ChatService(
        config=config,
        tokenizer=tokenizer,
        pool=pool,
        metrics=metrics,
        model_names=listed_model_names(args),
        aliases=[os.path.basename(os.path.normpath(args.model_path))],
        defaults=SamplingDefaults(args.default_temperature, args.default_top_p, args.default_max_tokens),
        default_condition=args.condition,
    )
    settings = HttpSettings(
        api_keys=frozenset(split_list(args.api_keys)),
        max_body_bytes=args.max_body_bytes,
        body_read_timeout=args.body_read_timeout,
        shutdown_timeout=args.shutdown_timeout,
        header_read_timeout=args.header_read_timeout,
        keepalive_timeout=args.keepalive_timeout,
        max_connections=args.max_connections or default_max_connections(),
    )
    app = build_app(
        service,
        settings,
        split_list(args.allowed_origins),
        args.allow_credentials,
        split_list(args.allowed_methods, "*"),
        split_list(args.allowed_headers, "*"),
    )
    logger.info(
        "serving %s on http://%s:%d/v1 (%d replica(s))", service.model_names[0], args.host, args.port, len(actors)
    )
    logger.info(
        "connections: at most %d open, headers within %g s, idle ones closed after %g s",
        settings.max_connections,
        settings.header_read_timeout,
        settings.keepalive_timeout,
    )
    asyncio.run(serve(app, listener, args.shutdown_timeout, stop))
    ray.shutdown()
    if pool.lost_all:
        sys.exit("error: every model replica stopped and none could be restarted")
    logger.info("server stopped")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model_type", required=True, help="registry model type, e.g. openchat, openchat_8192, opencoder"
    )
    parser.add_argument("--model_path", required=True, help="Hugging Face model folder (with <|end_of_turn|>)")
    parser.add_argument(
        "--model_name",
        default=None,
        help="comma-separated model ids clients may send, all listed by /v1/models (default: the "
        "model type; the checkpoint folder's name is accepted too)",
    )
    parser.add_argument(
        "--condition",
        default=None,
        help="C-RLFT condition for requests that name none (conditioned types such as openchat_v3.2 "
        "only; default: the type's inference condition, e.g. GPT4); a request's own `condition` "
        "field overrides it",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=18888, help="port to bind (default 18888)")
    parser.add_argument("--num_replicas", type=int, default=1, help="model replicas, one Ray actor each (default 1)")
    parser.add_argument(
        "--ray_address",
        default=None,
        help="address of a running Ray cluster (auto, or HEAD_IP:6379); default: start a local one",
    )
    parser.add_argument(
        "--ray_num_cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: this machine's)"
    )
    parser.add_argument("--replica_cpus", type=float, default=1, help="CPUs Ray reserves for each replica (default 1)")
    parser.add_argument("--device", default="auto", help="replica device: auto (cuda when present), cpu or cuda")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="weights dtype (default: the checkpoint's)",
    )
    parser.add_argument(
        "--max_batch_size", type=int, default=32, help="sequences decoded together per replica (default 32)"
    )
    parser.add_argument(
        "--kv_cache_tokens",
        type=int,
        default=None,
        help="KV-cache budget of each replica in tokens (default: derived from the device's memory)",
    )
    parser.add_argument(
        "--gpu_memory_utilization",
        type=float,
        default=None,
        help="on CUDA, the fraction of the card a replica may use for weights, activations and KV "
        "cache, from which the KV budget is derived (default 0.9)",
    )
    parser.add_argument(
        "--adapter_path", default=None, help="a peft LoRA adapter folder applied on top of --model_path"
    )
    parser.add_argument(
        "--max_replica_restarts",
        type=int,
        default=3,
        help="times Ray restarts a replica whose process died (killed, out of memory, a CUDA error); "
        "when no replica is left the server exits non-zero (default 3)",
    )
    parser.add_argument(
        "--max_queue",
        type=int,
        default=256,
        help="sequences that may wait per replica beyond the batch; more get 429 (default 256)",
    )
    parser.add_argument(
        "--api_keys",
        dest="api_keys",
        default=None,
        help="comma-separated keys; when set, /v1 requires 'Authorization: Bearer KEY'",
    )
    parser.add_argument(
        "--allowed_origins",
        dest="allowed_origins",
        default=None,
        help="CORS: comma-separated origins allowed to call the API from a browser, or * for any "
        "(default: none, and no CORS headers at all)",
    )
    parser.add_argument(
        "--allowed_methods", dest="allowed_methods", default="*", help="CORS: comma-separated methods (default *)"
    )
    parser.add_argument(
        "--allowed_headers",
        dest="allowed_headers",
        default="*",
        help="CORS: comma-separated request headers (default *)",
    )
    parser.add_argument(
        "--allow_credentials",
        dest="allow_credentials",
        action="store_true",
        help="CORS: allow cookies and auth headers from the listed origins (not with *)",
    )
    parser.add_argument(
        "--max_body_bytes",
        type=int,
        default=4 << 20,
        help="largest request body accepted; larger gets 413 (default 4 MiB)",
    )
    parser.add_argument(
        "--body_read_timeout",
        type=float,
        default=30.0,
        help="seconds a client may take to send a request body; slower gets 408 (default 30)",
    )
    parser.add_argument(
        "--shutdown_timeout",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds in-flight requests may take to finish; streams still running then "
        "end with an error event and [DONE] (default 30)",
    )
    parser.add_argument(
        "--default_temperature",
        type=float,
        default=1.0,
        help="temperature for requests that leave it out (default 1.0, as OpenAI's)",
    )
    parser.add_argument(
        "--default_top_p",
        type=float,
        default=1.0,
        help="top_p for requests that leave it out (default 1.0, as OpenAI's)",
    )
    parser.add_argument(
        "--default_max_tokens",
        type=int,
        default=None,
        help="max_tokens for requests that leave it out (default: what the context leaves)",
    )
    parser.add_argument(
        "--header_read_timeout",
        type=float,
        default=10.0,
        help="seconds from a request's first bytes to its complete headers; slower gets 408 and is closed (default 10)",
    )
    parser.add_argument(
        "--keepalive_timeout",
        type=float,
        default=15.0,
        help="seconds a connection may stay open without a complete request, after connecting or after its "
        "last response (default 15)",
    )
    parser.add_argument(
        "--max_connections",
        type=int,
        default=None,
        help="open connections at most; more get 503 and are closed (default: three quarters of the "
        "file-descriptor limit, at most 10000)",
    )
    parser.add_argument("--logfile", default=None, help="file for the JSON request log (default: stderr)")
    parser.add_argument(
        "--log_rate_limit",
        type=int,
        default=10,
        help="server messages of one kind let through per 10 s, the rest counted and dropped; 0: all (default 10)",
    )
    args = parser.parse_args(argv)
    for name in ("num_replicas", "max_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.kv_cache_tokens is not None and args.kv_cache_tokens < 1:
        parser.error("--kv_cache_tokens must be at least 1")
    if args.gpu_memory_utilization is not None and not 0 < args.gpu_memory_utilization <= 1:
        parser.error("--gpu_memory_utilization must be in (0, 1]")
    if args.allow_credentials and "*" in split_list(args.allowed_origins):
        parser.error("--allow_credentials needs explicit --allowed_origins, not *")
    if not 0 <= args.default_temperature <= 2 or not 0 <= args.default_top_p <= 1:
        parser.error("--default_temperature must be in [0, 2] and --default_top_p in [0, 1]")
    if args.default_max_tokens is not None and args.default_max_tokens < 1:
        parser.error("--default_max_tokens must be at least 1")
    if args.max_replica_restarts < 0:
        parser.error("--max_replica_restarts must not be negative")
    if args.max_queue < 0:
        parser.error("--max_queue must not be negative")
    if args.header_read_timeout <= 0 or args.keepalive_timeout <= 0:
        parser.error("--header_read_timeout and --keepalive_timeout must be positive")
    if args.max_connections is not None and args.max_connections < 1:
        parser.error("--max_connections must be at least 1")
    if args.log_rate_limit < 0:
        parser.error("--log_rate_limit must not be negative")
    return args


def split_list(value: Optional[str], default=None):
    """A comma-separated option as a list ([] or `default` when unset); a lone * stays the string "*"."""
    if value is None:
        return default if default is not None else []
    if value.strip() == "*":
        return "*" if default == "*" else ["*"]
    return [part.strip() for part in value.split(",") if part.strip()]


def listed_model_names(args) -> list[str]:
    return split_list(args.model_name) or [args.model_type]


def worker_options(args) -> dict:
    """Keyword arguments of `EngineWorker` taken from the command line; options left unset keep its defaults."""
    options = {"max_batch_size": args.max_batch_size, "dtype": args.dtype}
    for name in ("kv_cache_tokens", "gpu_memory_utilization", "adapter_path"):
        if getattr(args, name) is not None:
            options[name] = os.path.abspath(args.adapter_path) if name == "adapter_path" else getattr(args, name)
    return options


if __name__ == "__main__":
    main()
