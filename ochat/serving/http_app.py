"""The HTTP face of the server: the aiohttp app factory, its handlers, and the server-sent-event writer.

Handlers read the body (size, type and time limits checked before parsing),
parse it (`protocol`; large bodies on a worker thread, so other streams keep
flowing), hand the request to the chat service (`chat_service`) and write its
updates as JSON or as server-sent events. Middlewares and settings live in
`http_middlewares`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import socket

import aiohttp_cors
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ochat.serving.chat_service import ChatService, ChoiceUpdate
from ochat.serving.engine_types import EngineError
from ochat.serving.http_connections import ConnectionLimit, expect_guard, handler_factory
from ochat.serving.http_middlewares import (
    SETTINGS_KEY,
    SHUTDOWN_KEY,
    HttpSettings,
    ShutdownState,
    auth_middleware,
    error_middleware,
    openai_error,
    plain_server_header,
    request_log_middleware,
)
from ochat.serving.metrics import CONTENT_TYPE
from ochat.serving.protocol import ChatCompletionRequest, OpenAIError, error_body, parse_chat_request
from ochat.serving.responses import (
    ChunkEncoder,
    chat_completion,
    model_card,
    model_list,
    new_completion_id,
    now,
    usage_chunk,
)

logger = logging.getLogger("ochat.serving")
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
SERVICE_KEY = web.AppKey("service", ChatService)
CONNECTIONS_KEY = web.AppKey("connections", ConnectionLimit)
PARSE_OFF_LOOP_BYTES = 64 << 10  # bodies larger than this are parsed on a worker thread
DECODED_ENCODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate"})  # request bodies aiohttp decompresses


async def read_chat_request(request: web.Request) -> ChatCompletionRequest:
    """The body as a validated request; 415, 413, 408 or 400 in OpenAI's shape otherwise."""
    settings = request.app[SETTINGS_KEY]
    if request.content_type != "application/json":
        raise OpenAIError(
            415,
            "The request body must be JSON, sent with 'Content-Type: application/json'",
            code="unsupported_media_type",
        )
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in DECODED_ENCODINGS:
        raise OpenAIError(
            415,
            f"Content-Encoding must be one of {', '.join(sorted(DECODED_ENCODINGS))}",
            code="unsupported_media_type",
            headers={"Connection": "close"},
        )
    too_large = OpenAIError(
        413,
        f"The request body is larger than the limit of {settings.max_body_bytes} bytes",
        code="request_too_large",
        headers={"Connection": "close"},
    )
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise too_large
    try:
        raw = await asyncio.wait_for(request.read(), settings.body_read_timeout)
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except RequestPayloadError:  # e.g. "Content-Encoding: gzip" on a body that is not gzip
        raise OpenAIError(
            400,
            f"The request body could not be decoded as its Content-Encoding ({encoding}) says",
            code="invalid_content_encoding",
            headers={"Connection": "close"},
        ) from None
    except asyncio.TimeoutError:
        raise OpenAIError(
            408,
            f"The request body did not arrive within {settings.body_read_timeout:g} s",
            code="request_timeout",
            headers={"Connection": "close"},
        ) from None
    if len(raw) <= PARSE_OFF_LOOP_BYTES:
        return parse_chat_request(raw)
    return await asyncio.get_running_loop().run_in_executor(None, parse_chat_request, raw)


def sse(payload) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    chat = await read_chat_request(request)
    service.check_model(chat.model)
    completion_id = new_completion_id()
    stats = request["stats"]
    stats.update(id=completion_id, stream=chat.streaming)
    if chat.streaming:
        return await stream_chat_completion(request, service, chat, completion_id, stats)
    n = chat.choices
    texts, finish_reasons = [""] * n, [None] * n
    logprobs = [[] for _ in range(n)] if chat.logprobs else None
    async for updates in service.generate(chat, completion_id, stats):  # its errors leave through error_middleware
        for update in updates:
            texts[update.index] += update.text
            finish_reasons[update.index] = update.finish_reason or finish_reasons[update.index]
            if logprobs is not None and update.logprobs:
                logprobs[update.index] += update.logprobs
    return web.json_response(
        chat_completion(
            completion_id,
            now(),
            chat.model,
            texts,
            finish_reasons,
            stats["prompt_tokens"],
            stats.get("completion_tokens", 0),
            logprobs,
        )
    )


async def stream_chat_completion(
    request: web.Request, service: ChatService, chat: ChatCompletionRequest, completion_id: str, stats: dict
) -> web.StreamResponse:
    created = now()
    updates_iter = service.generate(chat, completion_id, stats)
    # Pull the first update before sending headers, so prompt, admission and engine errors still get a proper status.
    try:
        first = await updates_iter.__anext__()
    except StopAsyncIteration:
        first = []
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    shutdown = request.app[SHUTDOWN_KEY]
    shutdown.streams.add(request.task)
    chunk = ChunkEncoder(completion_id, created, chat.model, chat.include_usage).encode
    try:
        await response.write(b"".join(chunk(i, {"role": "assistant", "content": ""}) for i in range(chat.choices)))
        pending: list[ChoiceUpdate] = first
        while True:
            out = []
            for update in pending:
                if update.text or update.logprobs:
                    out.append(chunk(update.index, {"content": update.text}, None, update.logprobs))
                if update.finish_reason:
                    out.append(chunk(update.index, {}, update.finish_reason))
            if out:
                await response.write(b"".join(out))
            try:
                pending = await updates_iter.__anext__()
            except StopAsyncIteration:
                break
        if chat.include_usage:
            await response.write(
                sse(
                    usage_chunk(
                        completion_id, created, chat.model, stats["prompt_tokens"], stats.get("completion_tokens", 0)
                    )
                )
            )
    except EngineError as error:
        stats["error"] = str(error)
        await response.write(sse(openai_error(error).body()))
    except asyncio.CancelledError:
        if not shutdown.cutting:
            raise  # the client went away
        stats.update(error="the server shut down before the answer was complete", closed_by="server")
        await response.write(sse(error_body(stats["error"], "server_error", code="server_shutdown")))
    finally:
        shutdown.streams.discard(request.task)
        await updates_iter.aclose()
    await response.write(sse("[DONE]"))
    await response.write_eof()
    return response


async def list_models(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return web.json_response(model_list(service.model_names, service.created, service.served_condition))


async def get_model(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["model"]
    service.check_model(name)
    return web.json_response(model_card(name, service.created, service.served_condition))


async def health(request: web.Request) -> web.Response:
    pool = request.app[SERVICE_KEY].pool
    alive = sum(pool.alive)
    body = {
        "status": "ok" if alive == len(pool.actors) else ("degraded" if alive else "unavailable"),
        "replicas": len(pool.actors),
        "replicas_alive": alive,
        "sequences_in_flight": sum(pool.load),
    }
    return web.json_response(body, status=200 if alive else 503)


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    await service.pool.refresh_metrics()
    return web.Response(body=service.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def chat_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "chat.html"))


def build_app(
    service: ChatService,
    settings: HttpSettings,
    allowed_origins: list[str],
    allow_credentials: bool,
    allowed_methods: list[str],
    allowed_headers: list[str],
) -> web.Application:
    """The aiohttp app; CORS headers only for `allowed_origins` (none when empty)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[request_log_middleware, error_middleware, auth_middleware]
    )
    app[SERVICE_KEY] = service
    app[SETTINGS_KEY] = settings
    app[SHUTDOWN_KEY] = ShutdownState()
    routes = [
        app.router.add_get("/v1/models", list_models),
        app.router.add_get("/v1/models/{model}", get_model),
        app.router.add_post("/v1/chat/completions", chat_completions),
        app.router.add_get("/health", health),
        app.router.add_get("/metrics", metrics),
        app.router.add_get("/", chat_page),
    ]
    if allowed_origins:
        options = aiohttp_cors.ResourceOptions(
            allow_credentials=allow_credentials,
            expose_headers="*",
            allow_headers=allowed_headers,
            allow_methods=allowed_methods,
        )
        cors = aiohttp_cors.setup(app, defaults={origin: options for origin in allowed_origins})
        for route in routes:
            cors.add(route)
    app.on_response_prepare.append(plain_server_header)

    async def start_pool(app):
        service.pool.start()

    async def begin_shutdown(app):
        shutdown = app[SHUTDOWN_KEY]
        shutdown.closing = True
        asyncio.get_running_loop().call_later(settings.shutdown_timeout, shutdown.cut_streams)

    async def stop_pool(app):
        await service.pool.stop()

    app.on_startup.append(start_pool)
    app.on_shutdown.append(begin_shutdown)
    app.on_cleanup.append(stop_pool)
    return app


async def serve(app: web.Application, listener: socket.socket, shutdown_timeout: float, stop: asyncio.Event) -> None:
    """Serve `app` on an already bound socket until SIGTERM, SIGINT or `stop` is set; then shut down gracefully."""
    settings = app[SETTINGS_KEY]
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    runner.server.request_handler = functools.partial(expect_guard, handler=runner.server.request_handler)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listener.listen(settings.listen_backlog)
    limit = ConnectionLimit(settings.max_connections)
    app[CONNECTIONS_KEY] = limit
    server = await loop.create_server(
        handler_factory(runner.server, loop, settings.keepalive_timeout, settings.header_read_timeout, limit),
        sock=listener,
    )
    try:
        await stop.wait()
    finally:
        server.close()
        await runner.cleanup()
