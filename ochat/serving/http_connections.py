"""Connection hygiene: what the server does with a connection before and between requests.

aiohttp's own settings carry most of it: `keepalive_timeout` closes a connection that
has not completed a request's headers within that long of connecting or of its last
response (idle keep-alive, and a client that never sends a whole request). This module
adds what aiohttp lacks, in its connection handler (`GuardedRequestHandler`):

- a header-read timeout: once the first bytes of a request arrive, its headers must be
  complete within `header_read_timeout` seconds (slow-loris clients), else 408 and close;
- a cap on open connections, kept below the process's file-descriptor limit: past it a
  new connection gets 503 at once and is closed, so `/health` and chat keep working;
- a half-closed request (the client shut its sending side) still gets its response;
- an HTTP/0.9 request line (`GET /`), which aiohttp would wait on forever, gets 400;
- errors aiohttp's parser raises, in OpenAI's error shape instead of plain text that
  repeats the request's bytes.

Every answer given here is OpenAI's error JSON followed by a closed connection.
"""

from __future__ import annotations

import json
import logging
import re
import resource
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ochat.serving.protocol import error_body

logger = logging.getLogger("ochat.serving")
REQUEST_LINE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP/\d\.\d\r?$")
REJECT_LINGER = 2.0  # seconds a refused connection may take to read its answer before it is closed


@dataclass
class ConnectionLimit:
    """Open connections, shared by every connection handler of one server."""

    limit: int
    open: int = 0
    refused_total: int = 0


def default_max_connections(reserve: float = 0.25, ceiling: int = 10_000) -> int:
    """Three quarters of the file-descriptor limit (the rest: refused connections closing, Ray, files), at most
    `ceiling`; the soft limit is first raised to the hard one, as far as the ceiling needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = int(ceiling / (1 - reserve)) + 1
    if soft != resource.RLIM_INFINITY and soft < wanted and (hard == resource.RLIM_INFINITY or hard > soft):
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return ceiling
    return max(16, min(ceiling, int(soft * (1 - reserve))))


def error_response_bytes(status: int, message: str, code: str) -> bytes:
    """A whole HTTP/1.1 response carrying OpenAI's error JSON, for answers written straight to a socket."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = json.dumps(error_body(message, kind, code=code)).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nServer: ochat\r\n"
    )
    if status == 503:
        head += "Retry-After: 1\r\n"
    return head.encode() + b"\r\n" + body


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler with a header-read timeout, a connection cap, half-close support and
    OpenAI-shaped answers to what its HTTP parser rejects. Build one per connection with `handler_factory`."""

    def __init__(self, *args, header_read_timeout: float, limit: ConnectionLimit, **kwargs):
        super().__init__(*args, **kwargs)
        self._header_read_timeout = header_read_timeout
        self._limit = limit
        self._refused = False
        self._header_timer = None
        self._first_line = b""  # the connection's first request line, until complete

    # -- the cap ---------------------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        if self._limit.open >= self._limit.limit:
            self._refused = True
            self._limit.refused_total += 1
            logger.warning("connection refused: %d connections are open (--max_connections)", self._limit.open)
            self._answer_and_close(
                transport, 503, "The server has too many open connections; retry shortly", "too_many_connections"
            )
            return
        self._limit.open += 1
        super().connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self._refused:
            return
        self._limit.open -= 1
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _answer_and_close(self, transport, status: int, message: str, code: str) -> None:
        """Write a whole error response, end our side, and close once the client has read it (or soon)."""
        transport.write(error_response_bytes(status, message, code))
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(REJECT_LINGER, transport.close)

    # -- reading a request ---------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._request_count == 0 and not self._first_line.endswith(b"\n"):
            self._first_line = (self._first_line + data)[:8192]
            line, newline, _ = self._first_line.partition(b"\n")
            if newline and not REQUEST_LINE.match(line):
                return self._refuse_request(400, "The request line is not HTTP/1.x", "bad_http_request")
        requests_before = self._request_count
        super().data_received(data)
        if self._request_count != requests_before:
            self._cancel_header_timer()
        elif self._waiting_for_request() and self._header_timer is None and not self._force_close:
            self._header_timer = self._loop.call_later(self._header_read_timeout, self._header_read_timed_out)

    def eof_received(self) -> bool:
        """The client shut its sending side: answer what it asked, then close (instead of dropping the answer);
        with nothing asked, close now."""
        if self._waiting_for_request():
            self._cancel_header_timer()
            self.force_close()
        else:
            self.close()
        return True

    def _waiting_for_request(self) -> bool:
        return self._waiter is not None and not self._waiter.done()

    def _header_read_timed_out(self) -> None:
        self._header_timer = None
        if self._waiting_for_request() and self.transport is not None:
            self._refuse_request(
                408,
                f"The request headers did not arrive within {self._header_read_timeout:g} s",
                "request_timeout",
            )

    def _refuse_request(self, status: int, message: str, code: str) -> None:
        transport = self.transport
        self._cancel_header_timer()
        self._force_close = True  # read nothing more; aiohttp's loop ends at its next turn
        if self._waiter is not None:
            self._waiter.cancel()
        if transport is not None:
            self._answer_and_close(transport, status, message, code)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def log_exception(self, *args, **kwargs) -> None:
        """A body that cannot be decoded (a Content-Encoding it does not have) was answered with 400 already;
        aiohttp meets it again while draining the body before closing, which is no server error."""
        error = kwargs.get("exc_info")
        if isinstance(error, RequestPayloadError):
            logger.debug("undecodable request body drained: %r", error)
            return
        super().log_exception(*args, **kwargs)

    # -- what aiohttp's parser rejects -----------------------------------------------------------------------------
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


def handler_factory(server: web.Server, loop, keepalive_timeout: float, header_read_timeout: float, limit):
    """The protocol factory for `loop.create_server`: one `GuardedRequestHandler` per connection."""
    return lambda: GuardedRequestHandler(
        server,
        loop=loop,
        access_log=None,
        keepalive_timeout=keepalive_timeout,
        header_read_timeout=header_read_timeout,
        limit=limit,
    )


async def expect_guard(request: web.Request, handler):
    """`Expect: 100-continue` as aiohttp does; any other expectation is 417 in OpenAI's shape, then close.
    (aiohttp answers it in plain text, before any middleware runs, so this wraps the app's own handler.)"""
    expect = request.headers.get("Expect")
    if expect is not None and expect.strip().lower() != "100-continue":
        response = web.json_response(
            error_body("Only 'Expect: 100-continue' is supported", code="expectation_failed"),
            status=417,
            headers={"Server": "ochat"},
        )
        response.force_close()
        return response
    return await handler(request)
