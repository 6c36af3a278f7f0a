"""The middlewares every request passes: request log, OpenAI-shaped errors, API keys; and the app's settings keys.

What happens to a connection before and between requests (timeouts, the connection cap, what aiohttp's
HTTP parser rejects) is in `http_connections`.

Order (outermost first): `request_log_middleware` (one JSON line per request,
also when the client went away mid-stream), `error_middleware` (every failure
leaves as OpenAI's error JSON, engine errors and "no replica" included: `openai_error`), `auth_middleware` (`--api_keys` guard `/v1`
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

from aiohttp import web

from ochat.serving.engine_types import EngineError, NoReplica
from ochat.serving.protocol import OpenAIError

logger = logging.getLogger("ochat.serving")
request_logger = logging.getLogger("ochat.serving.requests")
CLIENT_CLOSED = 499  # logged when the client went away before a response was complete (nginx's convention)
GUARDED_PREFIXES = ("/v1", "/metrics")
# The HTTP status of each `EngineError` code; any other code (invalid_logits, detokenize_failed, ...) is a 500.
ENGINE_ERROR_STATUS = {"grammar_failed": 400, "invalid_request": 400, "engine_error": 503, "replica_unavailable": 503}


@dataclass(frozen=True)
class HttpSettings:
    api_keys: frozenset = frozenset()
    max_body_bytes: int = 4 << 20
    body_read_timeout: float = 30.0
    shutdown_timeout: float = 30.0
    header_read_timeout: float = 10.0  # from a request's first bytes to its complete headers
    keepalive_timeout: float = 15.0  # an idle connection (no complete request) is closed after this long
    max_connections: int = 1024  # open connections; past it new ones get 503 (the CLI derives it from the fd limit)
    listen_backlog: int = 1024


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


def openai_error(error: OpenAIError | EngineError | NoReplica) -> OpenAIError:
    """The error as the client sees it: what the engine side could not serve becomes OpenAI's error by its kind."""
    if isinstance(error, OpenAIError):
        return error
    if isinstance(error, NoReplica):
        return OpenAIError(
            503,
            "No model replica is running right now; retry shortly",
            error_type="server_error",
            code="replica_unavailable",
            headers={"Retry-After": "5"},
        )
    status = ENGINE_ERROR_STATUS.get(error.code, 500)
    if status == 400:
        return OpenAIError(
            400, str(error), param="response_format" if error.code == "grammar_failed" else None, code=error.code
        )
    return OpenAIError(status, f"The model failed while generating: {error}", code=error.code)


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
    except (OpenAIError, EngineError, NoReplica) as failure:
        error = openai_error(failure)
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


class RateLimitFilter(logging.Filter):
    """At most `lines` lines per `period` seconds of each message template; the next line let through after a
    quiet spell says how many were dropped. A flood (thousands of refused connections a second) then costs a
    few lines, not megabytes."""

    def __init__(self, lines: int = 10, period: float = 10.0):
        super().__init__()
        self.lines, self.period = lines, period
        self._windows: dict[tuple, list] = {}  # (logger, template) -> [window start, lines let through, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.lines <= 0:
            return True
        key = (record.name, record.msg if isinstance(record.msg, str) else type(record.msg).__name__)
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.period:
            dropped = window[2] if window else 0
            if len(self._windows) > 4096:
                self._windows.clear()
            self._windows[key] = window = [now, 0, 0]
            if dropped:
                record.msg = f"{record.msg} ({dropped} similar lines dropped in the last {self.period:g} s)"
        if window[1] >= self.lines:
            window[2] += 1
            return False
        window[1] += 1
        return True


def setup_logging(logfile: str | None, rate_limit: int = 10) -> None:
    """Server messages to stderr, at most `rate_limit` lines per 10 s of each kind; the one-JSON-line-per-request
    log to `logfile` (default: stderr too)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for root_handler in logging.getLogger().handlers:
        root_handler.addFilter(RateLimitFilter(rate_limit))
    handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    request_logger.addHandler(handler)
    request_logger.setLevel(logging.INFO)
    request_logger.propagate = False
