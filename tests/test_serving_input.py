"""Hostile and sloppy input against the real server: every case is a 4xx in OpenAI's shape, never a 500 or a hang.

One server for the module (default body limit, 1 s body-read and shutdown
timeouts, no CORS options); the shutdown test runs last and stops it.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time

import aiohttp
import pytest

from tests.helpers.serving import ERROR_FIELDS, MODEL_TYPE, launch_server, log_lines, raw_exchange, read_events, user

VALID = {"model": MODEL_TYPE, "messages": user("hi"), "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    process = launch_server(
        tiny_model_dir,
        tmp_path_factory.mktemp("serving_input"),
        "--max_batch_size",
        "4",
        "--body_read_timeout",
        "1",
        "--shutdown_timeout",
        "1",
    )
    try:
        yield process.wait_healthy(timeout=180)
    finally:
        process.stop()


def post_raw(server, data: bytes, content_type: str = "application/json", method: str = "POST"):
    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.request(
                method, server.base_url + "/v1/chat/completions", data=data, headers={"Content-Type": content_type}
            ) as response:
                return response.status, dict(response.headers), await response.read()

    return asyncio.run(run())


def assert_openai_error(status_body, status: int, param=None, code=None) -> dict:
    status_got, headers, raw = status_body
    assert status_got == status, raw
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(raw)["error"]
    assert set(error) == ERROR_FIELDS and error["message"]
    assert error["param"] == param and (code is None or error["code"] == code)
    return error


# -- bodies that used to crash the server ---------------------------------------------------------------------


@pytest.mark.parametrize("role", [["user"], {}, None, 1])
def test_unhashable_or_wrong_role_is_400(server, role):
    body = json.dumps({**VALID, "messages": [{"role": role, "content": "hi"}]}).encode()
    assert_openai_error(post_raw(server, body), 400, "messages[0].role")


def test_lone_surrogate_in_content_is_400(server):
    body = json.dumps(VALID).encode().replace(b'"hi"', b'"a\\ud800b"')
    assert_openai_error(post_raw(server, body), 400, None, "invalid_json")


@pytest.mark.parametrize("where", ["seed", "extra_field", "messages"])
def test_integer_of_5000_digits_anywhere_is_400(server, where):
    huge = b"7" * 5000
    if where == "messages":
        body = json.dumps({**VALID, "messages": [{"role": "user", "content": "hi", "x": 0}]}).encode()
        body = body.replace(b'"x": 0', b'"x": ' + huge)
    else:
        body = (
            json.dumps({**VALID, where: 0}).encode().replace(f'"{where}": 0'.encode(), f'"{where}": '.encode() + huge)
        )
    error = assert_openai_error(post_raw(server, body), 400, None, "invalid_json")
    assert "7777" not in error["message"]


def test_json_nested_1000_deep_is_400(server):
    body = (
        json.dumps({**VALID, "metadata": 0})
        .encode()
        .replace(b'"metadata": 0', b'"metadata": ' + b"[" * 1000 + b"]" * 1000)
    )
    assert_openai_error(post_raw(server, body), 400, None, "invalid_json")


def test_nan_temperature_is_400(server):
    body = json.dumps(VALID).encode().replace(b'"temperature": 0', b'"temperature": NaN')
    assert_openai_error(post_raw(server, body), 400, "temperature")


# -- limits on the request itself ---------------------------------------------------------------------------------


def test_post_without_json_content_type_is_415(server):
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        assert_openai_error(
            post_raw(server, json.dumps(VALID).encode(), content_type), 415, None, "unsupported_media_type"
        )


def test_declared_length_over_the_limit_is_413_before_the_body_is_sent(server):
    started = time.monotonic()
    answer = raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n{",
    )
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 0.9  # before the 1 s read timeout
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_too_large"


def test_chunked_body_over_the_limit_is_413(server):
    async def body():
        for _ in range(5):
            yield b"x" * (1 << 20)

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.post(
                server.base_url + "/v1/chat/completions", data=body(), headers={"Content-Type": "application/json"}
            ) as response:
                return response.status, await response.json()

    status, payload = asyncio.run(run())
    assert status == 413 and payload["error"]["code"] == "request_too_large"


def test_body_that_never_finishes_arriving_is_408_after_the_read_timeout(server):
    started = time.monotonic()
    answer = raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"model": ',
    )
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408") and 0.9 < elapsed < 5
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\x01: <script>\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ<script>\r\n",
        b"<script>alert(1)</script> / HTTP/1.1\r\n\r\n",
    ],
)
def test_http_parser_errors_answer_in_openai_shape_without_echoing_the_request(server, request_bytes):
    answer = raw_exchange(server, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 400 ", head) and b"application/json" in head
    assert set(json.loads(body)["error"]) == ERROR_FIELDS
    assert b"script" not in answer


def test_wrong_method_is_405_with_allow_header(server):
    status, headers, raw = post_raw(server, b"", method="PUT")
    assert status == 405 and headers["Allow"] == "POST"
    assert json.loads(raw)["error"]["code"] == "method_not_allowed"


def test_server_header_carries_no_version(server):
    status, headers, _ = post_raw(server, b"{}", method="POST")
    assert status == 400 and headers["Server"] == "ochat"


def test_no_cors_headers_without_allowed_origins(server):
    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.options(
                server.base_url + "/v1/chat/completions",
                headers={
                    "Origin": "http://evil.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization",
                },
            ) as preflight:
                preflight_headers = dict(preflight.headers)
            async with session.get(server.base_url + "/v1/models", headers={"Origin": "http://evil.example"}) as get:
                return preflight_headers, dict(get.headers), get.status

    preflight_headers, get_headers, get_status = asyncio.run(run())
    assert get_status == 200
    for headers in (preflight_headers, get_headers):
        assert not [name for name in headers if name.lower().startswith("access-control-")]


# -- sampling edge ------------------------------------------------------------------------------------------------


def test_tiny_temperature_is_greedy(server):
    messages = user("Tell me about the history of tea.")

    def ask(temperature):
        status, _, raw = post_raw(
            server,
            json.dumps(
                {**VALID, "messages": messages, "max_tokens": 12, "temperature": temperature, "seed": 5}
            ).encode(),
        )
        assert status == 200
        return json.loads(raw)["choices"][0]["message"]["content"]

    greedy = ask(0)
    assert greedy and ask(1e-39) == greedy and ask(1e-6) == greedy


# -- the loop stays responsive --------------------------------------------------------------------------------------


def test_stream_keeps_flowing_while_a_3_mb_body_is_posted(server):
    big_body = json.dumps({**VALID, "messages": user("word " * (600 << 10))}).encode()  # 3 MB, too long a prompt
    assert 3_000_000 < len(big_body) < 4 << 20

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.post(
                server.base_url + "/v1/chat/completions",
                json={**VALID, "messages": user("stream on"), "max_tokens": 1500, "stream": True},
            ) as stream:
                arrivals = []

                async def read_stream():
                    async for line in stream.content:
                        if line.startswith(b"data: "):
                            arrivals.append(time.monotonic())

                reader = asyncio.create_task(read_stream())
                while len(arrivals) < 5:
                    await asyncio.sleep(0.01)
                started = time.monotonic()
                async with session.post(
                    server.base_url + "/v1/chat/completions",
                    data=big_body,
                    headers={"Content-Type": "application/json"},
                ) as big:
                    big_status, big_payload = big.status, await big.json()
                finished = time.monotonic()
                reader.cancel()
                return arrivals, started, finished, big_status, big_payload

    # Handled on the loop, the stream stalls for the whole request: measured, 3-4 chunks arrive meanwhile and the
    # largest gap is 95-99% of the request's time. Off the loop it only shares the CPU with the parser and the
    # tokenizer: hundreds of chunks arrive, and the largest gap stayed under 80% even with the rest of the test
    # suite running beside it. The best of five tries counts: a blocked loop fails every one.
    tries = []
    for _ in range(5):
        arrivals, started, finished, big_status, big_payload = asyncio.run(run())
        assert big_status == 400 and big_payload["error"]["code"] == "context_length_exceeded"
        during = [t for t in arrivals if started <= t <= finished]
        gaps = [b - a for a, b in zip([started, *during], [*during, finished])]
        tries.append((max(gaps) / (finished - started), len(during), max(gaps), finished - started))
        print(
            f"3 MB body handled in {finished - started:.2f} s; {len(during)} stream chunks meanwhile, "
            f"largest gap {max(gaps):.3f} s"
        )
        if len(during) >= 20 and max(gaps) < 0.85 * (finished - started):
            return
    pytest.fail(f"the stream stalled while a 3 MB body was handled: (gap share, chunks, gap s, request s) {tries}")


# -- shutdown (last: it stops the server) -------------------------------------------------------------------------


def test_stream_cut_by_the_shutdown_timeout_ends_with_an_error_then_done(server):
    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.post(
                server.base_url + "/v1/chat/completions",
                json={**VALID, "messages": user("a long answer"), "max_tokens": 1800, "stream": True},
            ) as response:
                await response.content.readline()
                server.process.send_signal(signal.SIGTERM)
                return await asyncio.wait_for(read_events(response), 30)

    events = asyncio.run(run())
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "server_shutdown"
    assert server.process.wait(timeout=60) == 0
    entry = [e for e in log_lines(server) if e.get("stream")][-1]
    assert entry["status"] == 200 and entry["closed_by"] == "server" and entry["completion_tokens"] < 1800
