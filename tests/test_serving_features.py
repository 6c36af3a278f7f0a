"""The real server with the tiny model: structured outputs, logprobs, several model names, server-side sampling
defaults, admission against the KV budget, Prometheus metrics, and a replica that heals after SIGKILL.

One server for the module: `--model_name openchat_tiny,gpt-3.5-turbo`, greedy and 5 tokens by default, a KV
budget of 1024 tokens, batches of 8, one restart allowed. Structured outputs are checked with `jsonschema`, an
oracle independent of the grammar library; metrics with prometheus_client's own parser. The healing test runs
last.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import aiohttp
import jsonschema
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.serving import (
    MODEL_TYPE,
    engine_worker_pids,
    generate_reference,
    launch_server,
    post,
    read_events,
    stream,
    user,
)

NAMES = [MODEL_TYPE, "gpt-3.5-turbo"]
KV_BUDGET = 1024
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    process = launch_server(
        tiny_model_dir,
        tmp_path_factory.mktemp("serving_features"),
        "--model_name",
        ",".join(NAMES),
        "--default_temperature",
        "0",
        "--default_max_tokens",
        "5",
        "--kv_cache_tokens",
        str(KV_BUDGET),
        "--max_batch_size",
        "8",
        "--max_replica_restarts",
        "1",
    )
    try:
        yield process.wait_healthy(timeout=180)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    """Plain transformers `generate` on registry-rendered prompts: what greedy serving must reproduce."""
    return generate_reference(tiny_model_dir)


@pytest.fixture(scope="module")
def openai_client(server):
    return openai.OpenAI(base_url=server.api_base, api_key="unused", max_retries=0, timeout=120)


# -- model names and defaults ----------------------------------------------------------------------------------


def test_every_configured_model_name_is_listed_and_served(openai_client, tiny_model_dir):
    assert [model.id for model in openai_client.models.list().data] == NAMES
    folder = os.path.basename(os.path.normpath(tiny_model_dir))
    answers = {
        name: openai_client.chat.completions.create(model=name, messages=user("hi"), max_tokens=4)
        for name in [*NAMES, folder]
    }
    assert {name: answer.model for name, answer in answers.items()} == {name: name for name in answers}
    assert len({answer.choices[0].message.content for answer in answers.values()}) == 1  # greedy by default
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="gpt-4", messages=user("hi"))


def test_omitted_sampling_fields_take_the_server_defaults(openai_client, reference):
    messages = user("Tell me about the history of tea.")
    answer = openai_client.chat.completions.create(model=MODEL_TYPE, messages=messages)
    expected_text, expected_tokens = reference.greedy(messages, 5)
    assert answer.choices[0].message.content == expected_text
    assert answer.usage.completion_tokens == expected_tokens == 5
    longer = openai_client.chat.completions.create(model=MODEL_TYPE, messages=messages, max_tokens=9)
    assert longer.usage.completion_tokens == 9 and longer.choices[0].message.content.startswith(expected_text)


# -- admission ------------------------------------------------------------------------------------------------


def test_request_larger_than_the_kv_budget_is_400_at_once(server):
    started = time.monotonic()
    status, _, raw = asyncio.run(post(server, {"model": MODEL_TYPE, "messages": user("hi"), "max_tokens": 1500}))
    error = json.loads(raw)["error"]
    assert status == 400 and error["param"] == "max_tokens" and str(KV_BUDGET) in error["message"]
    assert time.monotonic() - started < 5


def test_more_choices_than_a_replica_runs_at_once_is_400_naming_n(server):
    status, _, raw = asyncio.run(post(server, {"model": MODEL_TYPE, "messages": user("hi"), "max_tokens": 4, "n": 9}))
    assert status == 400 and json.loads(raw)["error"]["param"] == "n"


# -- structured outputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["Who are you?", "Describe a person", "x"])
def test_json_schema_output_validates_against_the_schema(openai_client, prompt):
    answer = openai_client.chat.completions.create(
        model=MODEL_TYPE, messages=user(prompt), max_tokens=200, temperature=1.0, seed=1, response_format=PERSON_FORMAT
    )
    assert answer.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(answer.choices[0].message.content), PERSON)


def test_json_schema_output_streams_valid_json(openai_client):
    pieces = []
    finish_reason = None
    for chunk in openai_client.chat.completions.create(
        model=MODEL_TYPE,
        messages=user("Describe a person"),
        max_tokens=200,
        temperature=0.8,
        seed=2,
        stream=True,
        response_format=PERSON_FORMAT,
    ):
        pieces.append(chunk.choices[0].delta.content or "")
        finish_reason = chunk.choices[0].finish_reason or finish_reason
    assert finish_reason == "stop"
    jsonschema.validate(json.loads("".join(pieces)), PERSON)


def test_json_object_output_is_a_json_object(openai_client):
    answer = openai_client.chat.completions.create(
        model=MODEL_TYPE,
        messages=user("Give me JSON"),
        max_tokens=300,
        temperature=0.7,
        seed=3,
        response_format={"type": "json_object"},
    )
    if answer.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(answer.choices[0].message.content), dict)
    else:  # cut by max_tokens: what came out is still the start of an object
        assert answer.choices[0].finish_reason == "length" and answer.choices[0].message.content.startswith("{")


@pytest.mark.parametrize(
    "schema", [{"type": "bogus"}, {"type": "string", "pattern": "(?<=a)b"}, {"$ref": "#/definitions/missing"}]
)
def test_schema_the_grammar_cannot_compile_is_400_naming_response_format(server, schema):
    body = {
        "model": MODEL_TYPE,
        "messages": user("hi"),
        "response_format": {"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}},
    }
    status, _, raw = asyncio.run(post(server, body))
    assert status == 400 and json.loads(raw)["error"]["param"] == "response_format"


# -- logprobs ----------------------------------------------------------------------------------------------------


def test_logprobs_are_shaped_as_openai_shapes_them(openai_client):
    answer = openai_client.chat.completions.create(
        model=MODEL_TYPE,
        messages=user("Tell me about chess"),
        max_tokens=12,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = answer.choices[0].logprobs.content
    tokens = answer.usage.completion_tokens - (answer.choices[0].finish_reason == "stop")
    assert len(content) == tokens > 0
    for entry in content:
        assert entry.logprob <= 0 and entry.bytes and all(0 <= b < 256 for b in entry.bytes)
        assert len(entry.top_logprobs) == 3
        top = [alternative.logprob for alternative in entry.top_logprobs]
        assert top == sorted(top, reverse=True)
        # greedy: the chosen token is the most likely one
        assert (entry.token, entry.bytes) == (entry.top_logprobs[0].token, entry.top_logprobs[0].bytes)
        assert entry.logprob == pytest.approx(top[0], abs=1e-5)
    text = bytes(b for entry in content for b in entry.bytes).decode("utf-8", errors="replace")
    assert text.removeprefix(" ") == answer.choices[0].message.content


def test_streamed_logprobs_equal_the_whole_response(server, openai_client):
    body = {
        "model": MODEL_TYPE,
        "messages": user("Tell me about chess"),
        "max_tokens": 12,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
    }
    whole = openai_client.chat.completions.create(**{k: v for k, v in body.items()})
    events = asyncio.run(stream(server, body))
    streamed = [
        entry
        for event in events[:-1]
        for choice in event["choices"]
        if choice["logprobs"]
        for entry in choice["logprobs"]["content"]
    ]
    assert [e["token"] for e in streamed] == [e.token for e in whole.choices[0].logprobs.content]
    assert [e["logprob"] for e in streamed] == pytest.approx([e.logprob for e in whole.choices[0].logprobs.content])
    assert all(
        set(e) == {"token", "logprob", "bytes", "top_logprobs"} and len(e["top_logprobs"]) == 2 for e in streamed
    )


def test_logprobs_without_top_logprobs_have_empty_alternatives(openai_client):
    answer = openai_client.chat.completions.create(
        model=MODEL_TYPE, messages=user("hi"), max_tokens=4, temperature=0, logprobs=True
    )
    assert answer.choices[0].logprobs.content and all(e.top_logprobs == [] for e in answer.choices[0].logprobs.content)
    plain = openai_client.chat.completions.create(model=MODEL_TYPE, messages=user("hi"), max_tokens=4, temperature=0)
    assert plain.choices[0].logprobs is None


# -- metrics and healing (last: kills the replica) ----------------------------------------------------------------


def scrape(server) -> dict:
    """/metrics as {(name, replica): value} for every sample."""
    with urllib.request.urlopen(server.base_url + "/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, sample.labels.get("replica"), sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_report_the_engine_and_the_front_per_replica(server, openai_client):
    before = scrape(server)
    answer = openai_client.chat.completions.create(model=MODEL_TYPE, messages=user("count me"), max_tokens=7)
    after = scrape(server)
    assert after[("ochat_kv_cache_capacity_tokens", "0", None)] == KV_BUDGET
    assert 0 <= after[("ochat_kv_cache_tokens", "0", None)] <= KV_BUDGET
    assert after[("ochat_requests_running", "0", None)] == after[("ochat_requests_waiting", "0", None)] == 0
    generated = ("ochat_generation_tokens_total", "0", None)
    assert after[generated] - before[generated] == answer.usage.completion_tokens
    prompt = ("ochat_prompt_tokens_total", "0", None)
    assert after[prompt] - before[prompt] == answer.usage.prompt_tokens
    assert after[("ochat_preemptions_total", "0", None)] == 0
    assert after[("ochat_replica_restarts_total", "0", None)] == 0
    for histogram in ("ochat_time_to_first_token_seconds", "ochat_request_latency_seconds"):
        count = (f"{histogram}_count", "0", None)
        assert after[count] == before[count] + 1
        assert after[(f"{histogram}_bucket", "0", "+Inf")] == after[count]
    assert (
        after[("ochat_request_latency_seconds_sum", "0", None)]
        >= after[("ochat_time_to_first_token_seconds_sum", "0", None)]
    )


def test_replica_killed_under_load_fails_in_flight_with_503_and_serves_again(server):
    workers = engine_worker_pids(server.process.pid)
    assert len(workers) == 1
    body = {"model": MODEL_TYPE, "messages": user("a long answer please"), "max_tokens": 1000, "temperature": 0}

    async def run():
        async with aiohttp.ClientSession() as session:
            url = server.base_url + "/v1/chat/completions"

            async def streamed():
                async with session.post(url, json={**body, "stream": True}) as response:
                    if response.status != 200:  # not yet admitted when the replica died: refused at once
                        return response.status, (await response.json())["error"]
                    events = await asyncio.wait_for(read_events(response), 60)
                    assert events[-1] == "[DONE]"
                    return response.status, events[-2].get("error")

            async def whole():
                async with session.post(url, json=body) as response:
                    return response.status, (await response.json()).get("error")

            requests = [asyncio.create_task(streamed()) for _ in range(3)]
            requests += [asyncio.create_task(whole()) for _ in range(3)]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # decoding has begun (each request takes over a second)
                async with session.get(server.base_url + "/health") as health:
                    if (await health.json())["sequences_in_flight"] >= 1:
                        break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            os.kill(workers[0], signal.SIGKILL)
            killed = time.monotonic()
            answers = await asyncio.gather(*requests)
            health_codes = []
            while time.monotonic() - killed < 60:
                async with session.get(server.base_url + "/health") as health:
                    health_codes.append(health.status)
                    if health.status == 200:
                        break
                await asyncio.sleep(0.2)
            back_after = time.monotonic() - killed
            async with session.post(url, json={**body, "max_tokens": 4}) as after:
                return answers, health_codes, back_after, after.status

    answers, health_codes, back_after, status_after = asyncio.run(run())
    for status, error in answers:  # streams that had begun: an error event then [DONE]; the rest: a 503
        assert status in (200, 503) and error["code"] == "replica_unavailable" and error["type"] == "server_error"
    assert 503 in health_codes and health_codes[-1] == 200
    print(f"replica serving again {back_after:.1f} s after SIGKILL")
    assert back_after < 30 and status_after == 200
    assert scrape(server)[("ochat_replica_restarts_total", "0", None)] == 1
    assert engine_worker_pids(server.process.pid) != workers
