"""The middlewares every request passes: request log, OpenAI-shaped errors, API keys; and the app's settings keys.

`OpenAIErrorRequestHandler` gives requests that aiohttp's HTTP parser rejects the same error shape.

Order (outermost first): `request_log_middleware` (one JSON line per request,
also when the client went away mid-stream), `error_middleware` (every failure
leaves as OpenAI's error JSON), `auth_middleware` (`--api_keys` guard `/v1`
and `/metrics`).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web

from ochat.serving.protocol import OpenAIError, error_body

logger = logging.getLogger("ochat.serving")
request_logger = logging.getLogger("ochat.serving.requests")
CLIENT_CLOSED = 499  # logged when the client went away before a response was complete (nginx's convention)
GUARDED_PREFIXES = ("/v1", "/metrics")


@dataclass(frozen=True)
class HttpSettings:
    api_keys: frozenset = frozenset()
    max_body_bytes: int = 4 << 20
    body_read_timeout: float = 30.0
    shutdown_timeout: float = 30.0


@dataclass
class ShutdownState:
    """Streams still running when the shutdown timeout ends are cut: an error event, then `[DONE]`."""

    closing: bool = False
    cutting: bool = False
    streams: set = field(default_factory=set)  # the tasks of the requests streaming now

    def cut_streams(self) -> None:
        self.cutting = True
        for task in list(self.streams):
            task.cancel()


SETTINGS_KEY = web.AppKey("settings", HttpSettings)
SHUTDOWN_KEY = web.AppKey("shutdown", ShutdownState)


def json_error(error: OpenAIError) -> web.Response:
    response = web.json_response(error.body(), status=error.status, headers=error.headers)
    if error.headers.get("Connection") == "close":
        response.force_close()  # the rest of the body is not read, so the connection cannot carry another request
    return response


@web.middleware
async def request_log_middleware(request: web.Request, handler):
    started = time.perf_counter()
    request["stats"] = {}
    status = CLIENT_CLOSED
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        if request.path not in ("/health", "/metrics"):
            entry = {
                "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "method": request.method,
                "path": request.path,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            }
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
        headers = {}
        if isinstance(error, web.HTTPMethodNotAllowed):
            headers["Allow"] = ", ".join(sorted(error.allowed_methods))
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(error.status)
        message = {
            404: f"Unknown path {request.path}",
            405: f"Method {request.method} is not allowed on {request.path}",
        }.get(error.status, error.reason)
        return json_error(OpenAIError(error.status, message, code=code, headers=headers))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return json_error(
            OpenAIError(500, "The server had an error while processing your request", code="internal_error")
        )


@web.middleware
async def auth_middleware(request: web.Request, handler):
    api_keys = request.app[SETTINGS_KEY].api_keys
    if api_keys and request.path.startswith(GUARDED_PREFIXES) and request.method != "OPTIONS":
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in api_keys:
            raise OpenAIError(
                401, "Incorrect API key provided. Pass 'Authorization: Bearer YOUR_KEY'.", code="invalid_api_key"
            )
    return await handler(request)


async def plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No software version in `Server`: it only helps whoever looks for a known hole."""
    response.headers["Server"] = "ochat"


class OpenAIErrorRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering what its HTTP parser rejects (bad headers, bad chunking) in
    OpenAI's error shape; aiohttp's own answer is plain text that repeats the offending bytes."""

    def handle_error(self, request, status: int = 500, exc=None, message=None) -> web.StreamResponse:
        logger.debug("unreadable HTTP request from %s: %r", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; the connection is closed instead")
        phrase = HTTPStatus(status).phrase
        kind = "server_error" if status >= 500 else "invalid_request_error"
        response = web.json_response(
            error_body(f"The request could not be read as HTTP: {phrase}", kind, code="bad_http_request"),
            status=status,
            headers={"Server": "ochat"},
        )
        response.force_close()
        return response


def setup_logging(logfile: str | None) -> None:
    """Server messages to stderr; the one-JSON-line-per-request log to `logfile` (default: stderr too)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    request_logger.addHandler(handler)
    request_logger.setLevel(logging.INFO)
    request_logger.propagate = False
