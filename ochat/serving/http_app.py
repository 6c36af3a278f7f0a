"""The HTTP face of the server: aiohttp handlers, the server-sent-event writer, and the middlewares.

Handlers parse the wire format (`protocol`), hand the request to the chat
service (`chat_service`) and write its updates as JSON or as server-sent
events. Every failure leaves as OpenAI's error JSON (`error_middleware`); one
JSON line per request goes to the request log (`request_log_middleware`).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import time

import aiohttp_cors
from aiohttp import web

from ochat.serving.chat_service import ChatService, EngineFailure
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

logger = logging.getLogger("ochat.serving")
request_logger = logging.getLogger("ochat.serving.requests")
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

SERVICE_KEY = web.AppKey("service", ChatService)
API_KEYS_KEY = web.AppKey("api_keys", frozenset)
MAX_BODY_KEY = web.AppKey("max_body_bytes", int)


def json_error(error: OpenAIError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


async def read_json(request: web.Request):
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise OpenAIError(413, f"The request body is larger than the limit of {request.app[MAX_BODY_KEY]} bytes",
                          code="request_too_large") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OpenAIError(400, f"The request body is not valid JSON: {error}", code="invalid_json") from None


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
        raise OpenAIError(503, f"The model failed while generating: {error}", code="engine_error") from error
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
        raise OpenAIError(503, f"The model failed while generating: {error}", code="engine_error") from error
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
    return web.json_response(model_list(service.model_names[:1], service.created, service.served_condition))


async def get_model(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    name = request.match_info["model"]
    service.check_model(name)
    return web.json_response(model_card(name, service.created, service.served_condition))


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
    app = web.Application(client_max_size=args.max_body_bytes,
                          middlewares=[request_log_middleware, error_middleware, auth_middleware])
    app[SERVICE_KEY] = service
    app[MAX_BODY_KEY] = args.max_body_bytes
    app[API_KEYS_KEY] = frozenset(k.strip() for k in (args.api_keys or "").split(",") if k.strip())
    routes = [
        app.router.add_get("/v1/models", list_models),
        app.router.add_get("/v1/models/{model}", get_model),
        app.router.add_post("/v1/chat/completions", chat_completions),
        app.router.add_get("/health", health),
        app.router.add_get("/", chat_page),
    ]

    def split(value):
        return "*" if value.strip() == "*" else [v.strip() for v in value.split(",") if v.strip()]

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

    app.on_startup.append(start_pool)
    app.on_cleanup.append(stop_pool)
    return app
