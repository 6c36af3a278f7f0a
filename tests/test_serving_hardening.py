"""One request never harms another, against the real server: attacker schemas beside innocent streams, request
fields never silently ignored, 0 x 5xx under a seeded fuzz, and connections that are timed out and capped.

One server for the module: batches of 8, a 2 s header-read timeout, a 3 s keep-alive timeout and a cap of
400 connections. The connection tests run last; the cap test fills the cap.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import time
import zlib

import aiohttp
import pytest

from benchmarks.serving_connections import fill_the_cap
from benchmarks.serving_fuzz import run_fuzz
from ochat.config import get_model_config, load_tokenizer
from tests.helpers.serving import ERROR_FIELDS, MODEL_TYPE, launch_server, raw_exchange, read_events, user

HEADER_READ_TIMEOUT, KEEPALIVE_TIMEOUT, MAX_CONNECTIONS = 2, 3, 400
RECURSIVE_REQUIRED = {"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]}
BARE_SELF_REFERENCE = {"$ref": "#"}
# Passes the check before admission (an integer is a way out) and explodes only once the answer opens an object.
EXPLODES_AFTER_A_BRACE = {
    "anyOf": [{"type": "integer"}, {"$ref": "#/definitions/bad"}],
    "definitions": {"bad": {"type": "object", "properties": {"n": {"$ref": "#/definitions/bad"}}, "required": ["n"]}},
}


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    process = launch_server(
        tiny_model_dir,
        tmp_path_factory.mktemp("serving_hardening"),
        "--max_batch_size", "8",
        "--default_max_tokens", "8",
        "--header_read_timeout", str(HEADER_READ_TIMEOUT),
        "--keepalive_timeout", str(KEEPALIVE_TIMEOUT),
        "--max_connections", str(MAX_CONNECTIONS),
    )  # fmt: skip
    try:
        yield process.wait_healthy(timeout=180)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def brace_id(tiny_model_dir) -> int:
    tokenizer = load_tokenizer(get_model_config(MODEL_TYPE), tiny_model_dir).hf_tokenizer
    return tokenizer.convert_tokens_to_ids("{")


def body(**fields) -> dict:
    return {"model": MODEL_TYPE, "messages": user("hi"), "max_tokens": 4, "temperature": 0, **fields}


async def post_json(session, server, payload: dict) -> tuple[int, object]:
    """(status, parsed JSON body) or, for a stream, (status, list of events)."""
    async with session.post(server.base_url + "/v1/chat/completions", json=payload) as response:
        if response.headers.get("Content-Type", "").startswith("text/event-stream"):
            return response.status, await read_events(response)
        return response.status, await response.json()


def stream_text(events: list) -> str:
    return "".join(c["delta"].get("content") or "" for e in events if isinstance(e, dict) for c in e.get("choices", []))


# -- one request never harms another ------------------------------------------------------------------------------


def test_innocent_streams_beside_attacker_schemas_are_unchanged(server, brace_id):
    innocents = [
        body(messages=user(f"tell me about {topic}"), max_tokens=24, stream=True)
        for topic in ("tea", "coffee", "rain", "ships", "maps", "bread", "stars", "music")
    ]
    innocents[3]["response_format"] = {"type": "json_object"}
    attackers = [
        body(response_format=schema_format(schema), stream=stream, max_tokens=24)
        for schema in (RECURSIVE_REQUIRED, BARE_SELF_REFERENCE)
        for stream in (False, True)
    ] + [
        body(response_format=schema_format(EXPLODES_AFTER_A_BRACE), logit_bias={str(brace_id): 100}, stream=stream)
        for stream in (False, True, True)
    ]

    async def run(payloads):
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(post_json(session, server, payload) for payload in payloads))

    alone = asyncio.run(run(innocents))
    together = asyncio.run(run(attackers + innocents + attackers))
    for status, events in alone + together[len(attackers) : len(attackers) + len(innocents)]:
        assert status == 200 and events[-1] == "[DONE]"
        assert not [e for e in events if isinstance(e, dict) and "error" in e]
    assert [stream_text(e) for _, e in together[len(attackers) : len(attackers) + len(innocents)]] == [
        stream_text(e) for _, e in alone
    ]
    for payload, (status, answer) in zip(
        attackers + attackers, together[: len(attackers)] + together[-len(attackers) :]
    ):
        if "logit_bias" not in payload:  # refused before admission
            assert status == 400 and answer["error"]["param"] == "response_format"
            assert "admits no JSON value" in answer["error"]["message"]
            continue
        if payload["stream"]:  # failed while generating: its own stream ends with its own error
            assert status == 200 and answer[-1] == "[DONE]"
            error = answer[-2]["error"]
        else:
            assert status == 400
            error = answer["error"]
        assert error["code"] == "grammar_failed" and "Too many items" not in error["message"]


def test_schema_that_admits_no_json_value_is_400_not_an_empty_answer(server):
    async def run():
        async with aiohttp.ClientSession() as session:
            return await post_json(session, server, body(response_format=schema_format(BARE_SELF_REFERENCE)))

    status, answer = asyncio.run(run())
    assert status == 400 and answer["error"]["param"] == "response_format"


# -- nothing silently ignored, nothing a 500 --------------------------------------------------------------------


def ask(server, payload: dict) -> tuple[int, object]:
    async def run():
        async with aiohttp.ClientSession() as session:
            return await post_json(session, server, payload)

    return asyncio.run(run())


def test_stop_null_is_accepted(server):
    status, answer = ask(server, body(stop=None))
    assert status == 200 and answer["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    "field, value",
    [
        ("tool_choice", "auto"),
        ("tool_choice", "none"),
        ("parallel_tool_calls", False),
        ("function_call", "auto"),
        ("modalities", ["text", "audio"]),
        ("structured_outputs", {"json": {"type": "object"}}),
        ("top_k", 5),
        ("guided_json", {"type": "object"}),
    ],
)
def test_fields_that_would_change_the_answer_are_400_naming_them(server, field, value):
    status, answer = ask(server, body(**{field: value}))
    assert status == 400 and answer["error"]["param"] == field and set(answer["error"]) == ERROR_FIELDS


def test_harmless_extra_fields_pass(server):
    status, _ = ask(server, body(metadata={"team": "a"}, store=False, modalities=["text"], tool_choice=None))
    assert status == 200


def test_logit_bias_is_applied_and_validated(server, brace_id):
    status, answer = ask(server, body(logit_bias={str(brace_id): 100}, max_tokens=3))
    assert status == 200 and answer["choices"][0]["message"]["content"] == "{{{"
    for bad in ({"5": 101}, {"-1": 1}, {"x": 1}, {"99999999": 1}):
        status, answer = ask(server, body(logit_bias=bad))
        assert status == 400 and answer["error"]["param"] == "logit_bias", bad


def raw_post(server, payload: bytes, *headers: bytes) -> bytes:
    return raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + b"".join(header + b"\r\n" for header in headers)
        + b"Content-Length: %d\r\n\r\n" % len(payload)
        + payload,
    )


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_content_encoding_the_body_does_not_have_is_400(server, encoding):
    answer = raw_post(server, json.dumps(body()).encode(), b"Content-Encoding: " + encoding)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "invalid_content_encoding"


@pytest.mark.parametrize("encoding, compress", [(b"gzip", gzip.compress), (b"deflate", zlib.compress)])
def test_a_really_compressed_body_is_served(server, encoding, compress):
    answer = raw_post(server, compress(json.dumps(body()).encode()), b"Content-Encoding: " + encoding)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_seeded_fuzz_gets_no_5xx(server):
    outcomes, failures = asyncio.run(run_fuzz(server.base_url, MODEL_TYPE, count=300, seed=1, concurrency=6))
    assert outcomes["requests"] == 300 and outcomes["status 4xx"] > 100 and outcomes["status 2xx"] > 30
    assert outcomes["failures"] == 0, failures


# -- connections ----------------------------------------------------------------------------------------------------


def read_until_closed(connection: socket.socket, wait: float) -> tuple[bytes, bool]:
    connection.settimeout(wait)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
        return received, True
    except (TimeoutError, ConnectionResetError):
        return received, False


def test_half_closed_request_still_gets_its_response(server):
    payload = json.dumps(body()).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload) + payload
        )
        connection.shutdown(socket.SHUT_WR)
        answer, closed = read_until_closed(connection, 10)
    assert answer.startswith(b"HTTP/1.1 200 ") and closed


@pytest.mark.parametrize(
    "request_bytes, status",
    [(b"GET /\r\n", 400), (b"GET /health HTTP/1.1\r\nHost: x\r\nExpect: 999-foo\r\n\r\n", 417)],
)
def test_http_09_and_unknown_expect_get_an_openai_error_and_a_closed_socket(server, request_bytes, status):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request_bytes)
        answer, closed = read_until_closed(connection, 5)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.1 %d " % status, head) and b"application/json" in head
    assert set(json.loads(payload)["error"]) == ERROR_FIELDS and closed


def normal_request_seconds(server) -> float:
    started = time.monotonic()
    status, _ = ask(server, body(max_tokens=2))
    assert status == 200
    return time.monotonic() - started


def test_half_sent_requests_do_not_block_others_and_are_closed_by_the_header_timeout(server):
    half_sent = []
    try:
        for _ in range(300):
            connection = socket.create_connection(("127.0.0.1", server.port))
            connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
            half_sent.append(connection)
        opened = time.monotonic()
        assert normal_request_seconds(server) < 5
        closed = sum(
            read_until_closed(c, max(0.1, opened + HEADER_READ_TIMEOUT + 3 - time.monotonic()))[1] for c in half_sent
        )
        assert closed == len(half_sent)
    finally:
        for connection in half_sent:
            connection.close()


def test_idle_connection_is_closed_after_the_keepalive_timeout(server):
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        started = time.monotonic()
        _, closed = read_until_closed(connection, KEEPALIVE_TIMEOUT + 3)
    assert closed and KEEPALIVE_TIMEOUT - 0.5 < time.monotonic() - started < KEEPALIVE_TIMEOUT + 3


def test_at_the_connection_cap_new_connections_get_503_and_the_server_stays_up(server):
    outcomes = fill_the_cap(server.port, MAX_CONNECTIONS, 50)
    assert set(outcomes) == {"HTTP/1.1 200 OK", "HTTP/1.1 503 Service Unavailable"}, outcomes
    assert outcomes["HTTP/1.1 503 Service Unavailable"] >= 40, outcomes
    deadline = time.monotonic() + 10
    while True:  # the held connections' slots are free again once the server has seen them close
        try:
            assert normal_request_seconds(server) < 5
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
