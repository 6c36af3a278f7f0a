"""The OpenAI-compatible server, run for real on a loopback port with the tiny model.

Two servers are started once for this module: an open one (every endpoint,
error, streaming, n>1, stop strings, disconnects, 32 concurrent clients) and a
guarded one with API keys, a one-sequence batch and queue, a small body limit
and one CORS origin (auth, 429, 413, CORS, SIGTERM). Expected answers come from
plain `model.generate` on the same registry-rendered prompt.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aiohttp
import openai
import pytest
import torch

from ochat.serving.detokenize import IncrementalDecoder, StopStringFilter, byte_token_ids, special_token_ids
from ochat.serving.engine import GenerationEngine
from ochat.serving.engine_types import SamplingParams
from ochat.serving.kv_cache import RoomyLayer
from ochat.serving.responses import ChunkEncoder
from ochat.utils.server_process import ServerProcess
from tests.helpers.repo import REPO_ROOT
from tests.helpers.serving import (
    MODEL_TYPE,
    engine_worker_pids,
    generate_reference,
    launch_server,
    log_lines,
    post,
    read_events,
    stream,
    user,
)

API_KEYS = ("key-one", "key-two")
ALLOWED_ORIGIN = "http://allowed.example"


@pytest.fixture(scope="module")
def servers(tiny_model_dir, tmp_path_factory):
    """Both servers of this module, started side by side so their start-ups overlap."""
    work_dir = tmp_path_factory.mktemp("serving")
    launched = {
        "open": launch_server(
            tiny_model_dir, work_dir, "--max_batch_size", "8", "--max_queue", "40", "--max_replica_restarts", "0"
        ),
        "guarded": launch_server(
            tiny_model_dir,
            work_dir,
            "--api-keys",
            ",".join(API_KEYS),
            "--max_batch_size",
            "1",
            "--max_queue",
            "1",
            "--max_body_bytes",
            "4096",
            "--allowed-origins",
            ALLOWED_ORIGIN,
        ),
    }
    try:
        for process in launched.values():
            process.wait_healthy(timeout=180)
        yield launched
    finally:
        ServerProcess.stop_all(launched.values())


@pytest.fixture(scope="module")
def server(servers):
    return servers["open"]


@pytest.fixture(scope="module")
def guarded_server(servers):
    return servers["guarded"]


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    """Plain transformers `generate` on registry-rendered prompts: what greedy serving must reproduce."""
    return generate_reference(tiny_model_dir)


def client(server: ServerProcess, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=api_key, max_retries=0, timeout=60)


# -- command line --------------------------------------------------------------------------------------


def run_server_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ochat.serving.openai_api_server", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_model_type_exits_with_the_known_ones(tiny_model_dir):
    result = run_server_command("--model_type", "nope", "--model_path", tiny_model_dir)
    assert result.returncode != 0 and "known model types" in result.stderr and "openchat_tiny" in result.stderr


def test_checkpoint_without_eot_token_exits_with_the_fix(tiny_base_dir):
    result = run_server_command("--model_type", MODEL_TYPE, "--model_path", tiny_base_dir)
    assert result.returncode != 0 and "add_eot_token" in result.stderr


def test_busy_port_exits_before_loading_the_model(tiny_model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_server_command(
            "--model_type", MODEL_TYPE, "--model_path", tiny_model_dir, "--port", str(taken.getsockname()[1])
        )
    assert result.returncode != 0 and "cannot listen" in result.stderr
    assert "ready on" not in result.stderr


# -- endpoints ----------------------------------------------------------------------------------------


def test_models_endpoint_lists_the_model_type(server):
    models = client(server).models.list()
    assert [model.id for model in models.data] == [MODEL_TYPE]
    assert client(server).models.retrieve(MODEL_TYPE).id == MODEL_TYPE


def test_checkpoint_folder_name_is_accepted_as_model(server, tiny_model_dir, reference):
    folder = os.path.basename(os.path.normpath(tiny_model_dir))
    completion = client(server).chat.completions.create(model=folder, messages=user("hi"), max_tokens=2, temperature=0)
    assert completion.model == folder
    assert completion.choices[0].message.content == reference.greedy(user("hi"), 2)[0]


def test_start_up_log_names_each_replica_and_its_device(server):
    log = server.log_path.read_text()
    line = re.search(
        r"replica 0 ready on cpu \(float32, batch 8\): weights ([\d.]+) GiB, KV cache budget (\d+) "
        r"tokens \(([\d.]+) GiB\)",
        log,
    )
    weights_gib, budget_tokens, budget_gib = float(line.group(1)), int(line.group(2)), float(line.group(3))
    assert 0 < weights_gib < 1 and budget_tokens >= 2048 and budget_gib > 0


def test_health_reports_replicas(server):
    with urllib.request.urlopen(server.base_url + "/health") as response:
        body = json.loads(response.read())
    assert body["status"] == "ok" and body["replicas_alive"] == 1


def test_greedy_completion_equals_model_generate(server, reference):
    messages = user("Tell me about the history of tea.")
    expected_text, expected_tokens = reference.greedy(messages, 24)
    completion = client(server).chat.completions.create(
        model=MODEL_TYPE, messages=messages, max_tokens=24, temperature=0
    )
    assert completion.choices[0].message.content == expected_text
    assert completion.choices[0].message.role == "assistant"
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.usage.prompt_tokens == len(reference.prompt_ids(messages))
    assert completion.usage.completion_tokens == expected_tokens
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + expected_tokens


def test_system_message_is_rendered_through_the_template(server, reference):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there"}]
    expected_text, _ = reference.greedy(messages, 12)
    completion = client(server).chat.completions.create(
        model=MODEL_TYPE, messages=messages, max_tokens=12, temperature=0
    )
    assert completion.usage.prompt_tokens == len(reference.prompt_ids(messages))
    assert completion.usage.prompt_tokens > len(reference.prompt_ids(messages[1:]))
    assert completion.choices[0].message.content == expected_text


def test_multi_turn_conversation_equals_model_generate(server, reference):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Explain sorting."},
    ]
    expected_text, _ = reference.greedy(messages, 16)
    completion = client(server).chat.completions.create(
        model=MODEL_TYPE, messages=messages, max_tokens=16, temperature=0
    )
    assert completion.choices[0].message.content == expected_text


def test_max_tokens_defaults_to_what_fits_the_context(server, reference):
    words = 300
    while len(reference.prompt_ids(user("word " * words))) < reference.config.max_context - 6:
        words += 1
    messages = user("word " * words)
    room = reference.config.max_context - len(reference.prompt_ids(messages))
    completion = client(server).chat.completions.create(model=MODEL_TYPE, messages=messages, temperature=0)
    assert completion.usage.completion_tokens <= room
    if completion.choices[0].finish_reason == "length":
        assert completion.usage.completion_tokens == room


def test_max_tokens_beyond_the_context_is_400_naming_max_tokens(server, reference):
    messages = user("word " * 500)
    room = reference.config.max_context - len(reference.prompt_ids(messages))
    body = {"model": MODEL_TYPE, "messages": messages, "max_tokens": room + 1}
    status, _, raw = asyncio.run(post(server, body))
    assert status == 400 and json.loads(raw)["error"]["code"] == "context_length_exceeded"
    assert json.loads(raw)["error"]["param"] == "max_tokens"


def test_prompt_longer_than_context_is_400_context_length_exceeded(server):
    with pytest.raises(openai.BadRequestError) as error:
        client(server).chat.completions.create(model=MODEL_TYPE, messages=user("word " * 3000), max_tokens=4)
    assert error.value.code == "context_length_exceeded"
    assert error.value.param == "messages"


# -- streaming --------------------------------------------------------------------------------------------


def test_stream_sends_role_first_then_content_then_finish_usage_and_done(server, reference):
    messages = user("Tell me about the history of tea.")
    expected_text, expected_tokens = reference.greedy(messages, 24)
    events = asyncio.run(
        stream(
            server,
            {
                "model": MODEL_TYPE,
                "messages": messages,
                "max_tokens": 24,
                "temperature": 0,
                "stream_options": {"include_usage": True},
            },
        )
    )
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({chunk["id"] for chunk in chunks}) == 1 and len({chunk["created"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content_chunks = chunks[1:-2]
    assert all(
        set(c["choices"][0]["delta"]) == {"content"} and c["choices"][0]["finish_reason"] is None
        for c in content_chunks
    )
    assert "".join(c["choices"][0]["delta"]["content"] for c in content_chunks) == expected_text
    assert chunks[-2]["choices"][0]["finish_reason"] == "length" and chunks[-2]["usage"] is None
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == expected_tokens


def test_openai_client_streams_the_same_text_as_non_streaming(server):
    messages = user("How does a compiler work?")
    openai_client = client(server)
    whole = openai_client.chat.completions.create(model=MODEL_TYPE, messages=messages, max_tokens=20, temperature=0)
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in openai_client.chat.completions.create(
            model=MODEL_TYPE, messages=messages, max_tokens=20, temperature=0, stream=True
        )
    ]
    assert "".join(pieces) == whole.choices[0].message.content


def test_stream_without_usage_option_has_no_usage_chunk(server):
    events = asyncio.run(stream(server, {"model": MODEL_TYPE, "messages": user("hi"), "max_tokens": 3}))
    assert events[-1] == "[DONE]"
    assert all(chunk["choices"] and "usage" not in chunk for chunk in events[:-1])


def test_stream_errors_before_the_first_token_get_a_status(server):
    status, _, raw = asyncio.run(post(server, {"model": MODEL_TYPE, "messages": user("x " * 3000), "stream": True}))
    assert status == 400 and json.loads(raw)["error"]["code"] == "context_length_exceeded"


# -- sampling, n, stop ----------------------------------------------------------------------------------


def test_n_choices_are_indexed_and_seeded_sampling_repeats(server):
    kwargs = dict(model=MODEL_TYPE, messages=user("Write a poem"), max_tokens=12, temperature=1.0, n=3, seed=7)
    first = client(server).chat.completions.create(**kwargs)
    second = client(server).chat.completions.create(**kwargs)
    assert [choice.index for choice in first.choices] == [0, 1, 2]
    assert [c.message.content for c in first.choices] == [c.message.content for c in second.choices]
    assert len({c.message.content for c in first.choices}) > 1
    assert 3 <= first.usage.completion_tokens <= 3 * 12


def test_n_choices_stream_each_index_with_its_own_finish(server):
    events = asyncio.run(
        stream(
            server,
            {"model": MODEL_TYPE, "messages": user("hi"), "max_tokens": 5, "n": 2, "temperature": 0.8, "seed": 1},
        )
    )
    chunks = events[:-1]
    roles = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["delta"].get("role")]
    finishes = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert roles == [0, 1] and sorted(finishes) == [0, 1]


def test_different_seeds_give_different_samples(server):
    def make(seed):
        return (
            client(server)
            .chat.completions.create(
                model=MODEL_TYPE, messages=user("Write a poem"), max_tokens=12, temperature=1.0, seed=seed
            )
            .choices[0]
            .message.content
        )

    assert make(1) != make(2)


def test_tiny_top_p_samples_the_greedy_answer(server, reference):
    messages = user("Tell me about chess.")
    expected_text, _ = reference.greedy(messages, 10)
    completion = client(server).chat.completions.create(
        model=MODEL_TYPE, messages=messages, max_tokens=10, temperature=1.5, top_p=1e-9, seed=3
    )
    assert completion.choices[0].message.content == expected_text


def test_frequency_penalty_changes_greedy_output(server):
    def make(penalty):
        return (
            client(server)
            .chat.completions.create(
                model=MODEL_TYPE,
                messages=user("Repeat after me"),
                max_tokens=40,
                temperature=0,
                frequency_penalty=penalty,
            )
            .choices[0]
            .message.content
        )

    assert make(2.0) != make(0.0)


def test_stop_string_truncates_and_finishes_with_stop(server, reference):
    messages = user("Tell me about the rules of chess.")
    full_text, _ = reference.greedy(messages, 30)
    stop = full_text[8:11]
    expected = full_text[: full_text.index(stop)]
    completion = client(server).chat.completions.create(
        model=MODEL_TYPE, messages=messages, max_tokens=30, temperature=0, stop=[stop, "never-there"]
    )
    assert completion.choices[0].message.content == expected
    assert completion.choices[0].finish_reason == "stop"
    events = asyncio.run(
        stream(server, {"model": MODEL_TYPE, "messages": messages, "max_tokens": 30, "temperature": 0, "stop": stop})
    )
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-1])
    assert streamed == expected and events[-2]["choices"][0]["finish_reason"] == "stop"


def test_stop_filter_holds_back_a_possible_stop_prefix():
    stops = StopStringFilter(["END"])
    assert stops.feed("abc E") == ("abc ", False)
    assert stops.feed("N") == ("", False)
    assert stops.feed("Dx") == ("", True)
    other = StopStringFilter(["END"])
    assert other.feed("E") == ("", False) and other.feed("X") == ("EX", False)


def chat_chunk(
    completion_id: str,
    created: int,
    model: str,
    index: int,
    delta: dict,
    finish_reason=None,
    include_usage: bool = False,
) -> dict:
    """OpenAI's `chat.completion.chunk` shape, written out as the API reference gives it."""
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def test_fast_chunk_encoding_equals_the_chunk_shape():
    for include_usage in (False, True):
        encoder = ChunkEncoder("chatcmpl-1", 1700000000, 'model "x"', include_usage)
        for index, delta, finish in (
            (0, {"role": "assistant", "content": ""}, None),
            (2, {"content": 'a"é\n🙂'}, None),
            (1, {}, "stop"),
        ):
            raw = encoder.encode(index, delta, finish)
            assert raw.startswith(b"data: ") and raw.endswith(b"\n\n")
            assert json.loads(raw[6:]) == chat_chunk(
                "chatcmpl-1", 1700000000, 'model "x"', index, delta, finish, include_usage
            )


# -- text ---------------------------------------------------------------------------------------------------


def test_incremental_decoding_never_splits_multibyte_characters(reference):
    hf_tokenizer = reference.tokenizer.hf_tokenizer

    def decode(ids):
        return hf_tokenizer.decode(ids, skip_special_tokens=True)

    text = "café naïve 你好 世界 🙂 emoji"
    ids = reference.tokenizer.encode_segments([text])[0]
    decoder = IncrementalDecoder(decode, byte_token_ids(hf_tokenizer), special_token_ids(hf_tokenizer))
    deltas = [decoder.step(token_id) for token_id in ids] + [decoder.flush()]
    assert "".join(deltas) == decode(ids) == text
    assert not any("\ufffd" in delta for delta in deltas)


def test_incremental_decoding_equals_full_decode_on_random_ids(reference):
    import random

    hf_tokenizer = reference.tokenizer.hf_tokenizer

    def decode(ids):
        return hf_tokenizer.decode(ids, skip_special_tokens=True)

    generator = random.Random(0)
    for _ in range(200):
        ids = [
            generator.randrange(len(hf_tokenizer)) if generator.random() < 0.5 else generator.randrange(300)
            for _ in range(generator.randrange(1, 40))
        ]
        decoder = IncrementalDecoder(decode, byte_token_ids(hf_tokenizer), special_token_ids(hf_tokenizer))
        assert "".join(decoder.step(token_id) for token_id in ids) + decoder.flush() == decode(ids)


def test_incremental_decoding_holds_split_characters_of_byte_level_bpe():
    """GPT-2 style vocabularies (StarCoder) have no byte pieces; a token may end inside a character."""
    import random

    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        ["café naïve 你好 世界 🙂"] * 5 + ["the quick brown fox"] * 5,
        vocab_size=300,
        min_frequency=1,
        show_progress=False,
    )
    ids = tokenizer.encode("café 你好 🙂 fox").ids
    decoder = IncrementalDecoder(tokenizer.decode)
    deltas = [decoder.step(token_id) for token_id in ids] + [decoder.flush()]
    assert "".join(deltas) == "café 你好 🙂 fox" and not any("\ufffd" in delta for delta in deltas)
    generator = random.Random(0)
    for _ in range(200):
        ids = [generator.randrange(tokenizer.get_vocab_size()) for _ in range(generator.randrange(1, 30))]
        decoder = IncrementalDecoder(tokenizer.decode)
        assert "".join(decoder.step(token_id) for token_id in ids) + decoder.flush() == tokenizer.decode(ids)


def test_engine_joins_requests_mid_batch_and_matches_generate(reference):
    prompts = [reference.prompt_ids(user("hello " * (i % 5 + 1) + str(i))) for i in range(6)]
    engine = GenerationEngine(
        reference.model, reference.tokenizer.stop_token_ids, reference.config.max_context, max_batch_size=4
    )
    outputs = {str(i): [] for i in range(6)}
    finished, step = set(), 0
    while len(finished) < 6:
        if step < 6:  # one new request per step, while earlier ones are mid-generation
            engine.add(str(step), prompts[step], SamplingParams(max_tokens=12, temperature=0))
        for event in engine.step():
            if event.token_id is not None:
                outputs[event.seq_id].append(event.token_id)
            if event.finish_reason:
                finished.add(event.seq_id)
        step += 1
    stop_ids = set(reference.tokenizer.stop_token_ids)
    for i, prompt in enumerate(prompts):
        with torch.inference_mode():
            expected = reference.model.generate(
                torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=list(stop_ids)
            )[0, len(prompt) :].tolist()
        assert outputs[str(i)] == [t for t in expected if t not in stop_ids]


def test_engine_matches_generate_past_the_cache_spare_room(reference):
    """A long sequence outgrows its cache buffers (256 spare columns) while a short one joins and leaves."""
    long_prompt, short_prompt = reference.prompt_ids(user("long answer")), reference.prompt_ids(user("short"))
    engine = GenerationEngine(reference.model, reference.tokenizer.stop_token_ids, reference.config.max_context)
    engine.add("long", long_prompt, SamplingParams(max_tokens=300, temperature=0))
    outputs, step = {"long": [], "short": []}, 0
    while engine.has_work():
        if step == 100:
            engine.add("short", short_prompt, SamplingParams(max_tokens=20, temperature=0))
        for event in engine.step():
            if event.token_id is not None:
                outputs[event.seq_id].append(event.token_id)
        step += 1
    assert len(long_prompt) + len(outputs["long"]) > RoomyLayer.spare_columns
    stop_ids = reference.tokenizer.stop_token_ids
    for name, prompt, max_tokens in (("long", long_prompt, 300), ("short", short_prompt, 20)):
        with torch.inference_mode():
            expected = reference.model.generate(
                torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=False, eos_token_id=stop_ids
            )[0, len(prompt) :].tolist()
        assert outputs[name] == [t for t in expected if t not in stop_ids]


# -- errors ---------------------------------------------------------------------------------------------------

# Greedy, so long requests below run to their token budget the same way every time (a sampled answer may
# draw <|end_of_turn|> early).
VALID = {"model": MODEL_TYPE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}


@pytest.mark.parametrize(
    "change, param",
    [
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": 7}, "model"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"n": 1000}, "n"),
        ({"stop": 5}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": "x"}, "seed"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"frequency_penalty": "a"}, "frequency_penalty"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"user": 5}, "user"),
    ],
)
def test_invalid_parameter_is_400_naming_it(server, change, param):
    status, _, raw = asyncio.run(post(server, {**VALID, **change}))
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"} and error["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_malformed_body_is_400(server, raw):
    status, headers, body = asyncio.run(post(server, None, raw=raw))
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}


def test_unknown_model_is_404_model_not_found(server):
    with pytest.raises(openai.NotFoundError) as error:
        client(server).chat.completions.create(model="gpt-17", messages=user("hi"))
    assert error.value.code == "model_not_found" and error.value.param == "model"


def test_openai_client_sees_bad_request_with_param(server):
    with pytest.raises(openai.BadRequestError) as error:
        client(server).chat.completions.create(model=MODEL_TYPE, messages=user("hi"), temperature=5)
    assert error.value.param == "temperature"


def test_unknown_path_and_wrong_method_answer_in_openai_shape(server):
    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.get(server.base_url + "/v1/nothing") as missing:
                missing_body = await missing.json()
                missing_status = missing.status
            async with session.get(server.base_url + "/v1/chat/completions") as wrong:
                return missing_status, missing_body, wrong.status, await wrong.json()

    missing_status, missing_body, wrong_status, wrong_body = asyncio.run(run())
    assert missing_status == 404 and missing_body["error"]["code"] == "not_found"
    assert wrong_status == 405 and wrong_body["error"]["code"] == "method_not_allowed"


# -- load and disconnects -------------------------------------------------------------------------------------


def test_disconnect_mid_stream_frees_the_slot(server):
    async def run():
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                server.base_url + "/v1/chat/completions",
                json={**VALID, "messages": user("disconnect me"), "max_tokens": 1800, "stream": True},
            )
            seen = 0
            async for line in response.content:
                if line.startswith(b"data: "):
                    seen += 1
                if seen == 5:
                    break
            response.close()  # drop the connection mid-stream
            deadline = time.time() + 5
            while time.time() < deadline:
                async with session.get(server.base_url + "/health") as health:
                    if (await health.json())["sequences_in_flight"] == 0:
                        return time.time() - (deadline - 5)
                await asyncio.sleep(0.02)
            return None

    freed_after = asyncio.run(run())
    assert freed_after is not None and freed_after < 2.0
    time.sleep(0.2)
    entries = [e for e in log_lines(server) if e.get("status") == 499]
    assert entries and entries[-1]["completion_tokens"] < 1800


def test_32_concurrent_clients_are_all_answered_correctly(server, reference):
    prompts = [f"Question number {i}: what is {i} plus {i}?" for i in range(32)]
    expected = [reference.greedy(user(prompt), 16)[0] for prompt in prompts]

    async def run():
        async_client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)

        async def ask(index):
            if index % 2:  # half stream, half do not
                pieces = []
                async for chunk in await async_client.chat.completions.create(
                    model=MODEL_TYPE, messages=user(prompts[index]), max_tokens=16, temperature=0, stream=True
                ):
                    pieces.append(chunk.choices[0].delta.content or "")
                return "".join(pieces)
            completion = await async_client.chat.completions.create(
                model=MODEL_TYPE, messages=user(prompts[index]), max_tokens=16, temperature=0
            )
            return completion.choices[0].message.content

        try:
            return await asyncio.gather(*(ask(i) for i in range(32)))
        finally:
            await async_client.close()

    assert asyncio.run(run()) == expected


def test_every_request_gets_one_json_log_line(server):
    response = client(server).chat.completions.create(model=MODEL_TYPE, messages=user("log me"), max_tokens=3)
    time.sleep(0.1)
    entries = [e for e in log_lines(server) if e.get("id") == response.id]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["path"] == "/v1/chat/completions" and entry["status"] == 200
    assert entry["completion_tokens"] == response.usage.completion_tokens > 0
    assert entry["prompt_tokens"] > 0 and entry["latency_ms"] > 0


def test_replica_failure_mid_stream_ends_with_an_error_chunk_then_done_and_the_server_exits(server):
    """Runs last on the open server: it kills its only replica, which may not restart (--max_replica_restarts 0)."""
    workers = engine_worker_pids(server.process.pid)
    assert len(workers) == 1

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.post(
                server.base_url + "/v1/chat/completions", json={**VALID, "max_tokens": 1800, "stream": True}
            ) as response:
                first = await response.content.readline()
                os.kill(workers[0], signal.SIGKILL)
                return first, await asyncio.wait_for(read_events(response), 30)

    first, events = asyncio.run(run())
    assert first.startswith(b"data: ")
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "replica_unavailable"
    assert set(events[-2]["error"]) == {"message", "type", "param", "code"}
    assert server.process.wait(timeout=60) != 0  # nothing left to serve with: a supervisor should restart it
    assert "every model replica stopped" in server.log_path.read_text()


# -- the guarded server: auth, limits, CORS, shutdown -------------------------------------------------------


def test_missing_or_wrong_api_key_is_401(guarded_server):
    with pytest.raises(openai.AuthenticationError) as error:
        client(guarded_server, "wrong").chat.completions.create(model=MODEL_TYPE, messages=user("hi"), max_tokens=2)
    assert error.value.code == "invalid_api_key"
    status, _, raw = asyncio.run(post(guarded_server, VALID))
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"


def test_each_configured_api_key_is_accepted(guarded_server):
    for key in API_KEYS:
        completion = client(guarded_server, key).chat.completions.create(
            model=MODEL_TYPE, messages=user("hi"), max_tokens=2
        )
        assert completion.usage.completion_tokens == 2


def test_health_and_chat_page_need_no_key(guarded_server):
    with urllib.request.urlopen(guarded_server.base_url + "/health") as response:
        assert json.loads(response.read())["status"] == "ok"
    with urllib.request.urlopen(guarded_server.base_url + "/") as response:
        assert b"<html" in response.read().lower()


def test_metrics_need_an_api_key_like_v1(guarded_server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(guarded_server.base_url + "/metrics")
    assert refused.value.code == 401
    request = urllib.request.Request(
        guarded_server.base_url + "/metrics", headers={"Authorization": f"Bearer {API_KEYS[0]}"}
    )
    with urllib.request.urlopen(request) as response:
        assert 'ochat_kv_cache_capacity_tokens{replica="0"}' in response.read().decode()


def test_body_over_the_limit_is_413(guarded_server):
    body = {**VALID, "messages": user("x" * 10000)}
    status, _, raw = asyncio.run(post(guarded_server, body, headers={"Authorization": f"Bearer {API_KEYS[0]}"}))
    assert status == 413 and json.loads(raw)["error"]["code"] == "request_too_large"


def test_cors_preflight_allows_only_the_configured_origin(guarded_server):
    async def preflight(origin):
        async with aiohttp.ClientSession() as session:
            async with session.options(
                guarded_server.base_url + "/v1/chat/completions",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            ) as response:
                return response.status, response.headers.get("Access-Control-Allow-Origin")

    assert asyncio.run(preflight(ALLOWED_ORIGIN)) == (200, ALLOWED_ORIGIN)
    status, allowed = asyncio.run(preflight("http://elsewhere.example"))
    assert allowed is None and status != 200


def test_full_queue_is_429_with_retry_after(guarded_server):
    headers = {"Authorization": f"Bearer {API_KEYS[0]}"}

    async def run():
        async with aiohttp.ClientSession(headers=headers) as session:
            long_body = {**VALID, "max_tokens": 1800, "stream": True}
            url = guarded_server.base_url + "/v1/chat/completions"
            # One sequence decoding, one waiting: the server is full.
            holders = [asyncio.create_task(session.post(url, json=long_body)) for _ in range(2)]
            deadline = time.time() + 10
            while True:
                async with session.get(guarded_server.base_url + "/health") as health:
                    if (await health.json())["sequences_in_flight"] == 2:
                        break
                assert time.time() < deadline, "the two long requests never filled the server"
                await asyncio.sleep(0.01)
            async with session.post(url, json=VALID) as third:
                result = third.status, third.headers.get("Retry-After"), await third.json()
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
            return result

    status, retry_after, body = asyncio.run(run())
    assert status == 429 and retry_after is not None and float(retry_after) > 0
    assert body["error"]["code"] == "rate_limit_exceeded"


def test_sigterm_finishes_in_flight_stream_and_exits_zero(guarded_server):
    """Runs last on the guarded server: it stops it."""
    deadline = time.time() + 5
    while time.time() < deadline:  # the 429 test's streams are cancelled by now
        with urllib.request.urlopen(guarded_server.base_url + "/health") as response:
            if json.loads(response.read())["sequences_in_flight"] == 0:
                break
        time.sleep(0.05)

    async def run():
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEYS[1]}"}) as session:
            async with session.post(
                guarded_server.base_url + "/v1/chat/completions", json={**VALID, "max_tokens": 200, "stream": True}
            ) as response:
                first = await response.content.readline()
                guarded_server.process.send_signal(signal.SIGTERM)
                events = await read_events(response)
                return first, events

    first, events = asyncio.run(run())
    assert first.startswith(b"data: ")
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] in ("length", "stop")
    assert guarded_server.process.wait(timeout=60) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(guarded_server.base_url + "/health", timeout=2)
