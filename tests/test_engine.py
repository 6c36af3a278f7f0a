"""The generation engine in process on the tiny model: KV budget and preemption, admission, structured outputs,
logprobs. Oracles are independent of the engine: `model.generate`, the cache tensors' own sizes, `jsonschema`,
and the model's logits computed here."""

from __future__ import annotations

import asyncio
import json
import math
import os

import jsonschema
import pytest
import torch

from ochat.serving.engine import GenerationEngine
from ochat.serving.engine_types import FinishReason, ReplicaLimits, SamplingParams, TokenEvent, admission_error
from ochat.serving.replica_worker import EngineWorker
from ochat.serving.structured import validate_response_format
from tests.helpers.engine import MODEL_TYPE, Reference, run, tokens

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]}, "maxItems": 3},
        "pet": {
            "type": "object",
            "properties": {"kind": {"enum": ["cat", "dog"]}},
            "required": ["kind"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "tags", "pet"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def reference(tiny_model_dir) -> Reference:
    return Reference(tiny_model_dir)


def held_tokens(engine: GenerationEngine) -> int:
    """Token slots the running batch's cache buffers really hold, read from the tensors (all layers alike)."""
    cache = engine.batch.cache
    if cache is None or not engine.batch.sequences:
        return 0
    config = engine.model.config
    per_token = config.num_key_value_heads * getattr(
        config, "head_dim", config.hidden_size // config.num_attention_heads
    )
    layer = cache.layers[0]
    return max(layer._key_buffer.numel(), layer.keys.numel()) // per_token


# -- memory budget and preemption --------------------------------------------------------------------------------


def test_small_budget_serves_24_long_requests_equal_to_generate_within_budget(reference):
    prompts = [reference.prompt_ids("tell me about " + "llamas " * (i % 6) + str(i)) for i in range(24)]
    max_tokens = 32
    engine = reference.engine(max_batch_size=32, kv_cache_tokens=600)
    for i, prompt in enumerate(prompts):
        engine.add(str(i), prompt, SamplingParams(max_tokens=max_tokens, temperature=0))
    seen = {"peak": 0, "most_running": 0}

    def check(engine):
        held = held_tokens(engine)
        assert held <= 600, f"the cache holds {held} token slots, over the budget of 600"
        assert engine.metrics()["kv_cache_tokens"] == held
        seen["peak"] = max(seen["peak"], held)
        seen["most_running"] = max(seen["most_running"], engine.num_running)

    events = run(engine, check)
    metrics = engine.metrics()
    assert metrics["preemptions_total"] > 0
    assert metrics["kv_cache_tokens"] == 0 and metrics["requests_running"] == metrics["requests_waiting"] == 0
    assert 1 < seen["most_running"] < 24  # the budget, not the batch size, bounded the batch
    assert seen["peak"] > 600 // 2  # and the budget was used, not left idle
    assert metrics["prompt_tokens_total"] > sum(len(p) for p in prompts)  # preempted ones were prefilled again
    for i, prompt in enumerate(prompts):
        assert events[str(i)][-1].finish_reason in ("stop", "length")
        assert tokens(events[str(i)]) == reference.greedy(prompt, max_tokens), f"request {i} differs"


def test_seeded_sampling_is_unchanged_by_preemption(reference):
    prompts = [reference.prompt_ids(f"story {i}") for i in range(6)]

    def sample(budget):
        engine = reference.engine(kv_cache_tokens=budget)
        for i, prompt in enumerate(prompts):
            engine.add(str(i), prompt, SamplingParams(max_tokens=40, temperature=0.8, seed=i))
        events = run(engine)
        return {key: tokens(value) for key, value in events.items()}, engine.preemptions_total

    unlimited, none = sample(None)
    tight, preempted = sample(180)
    assert none == 0 and preempted > 0
    assert tight == unlimited


def test_lone_row_that_outgrows_the_budget_ends_with_length(reference):
    prompt = reference.prompt_ids("hi")
    engine = reference.engine(kv_cache_tokens=len(prompt) + 5)
    engine.add("a", prompt, SamplingParams(max_tokens=50, temperature=0, logprobs=False))
    events = run(engine)["a"]
    assert events[-1].finish_reason == "stop" or (events[-1].finish_reason == "length" and len(tokens(events)) == 5)
    assert len(events) <= 5


def test_prompt_beyond_the_budget_is_refused_by_add(reference):
    engine = reference.engine(kv_cache_tokens=10)
    with pytest.raises(ValueError, match="budget of 10 tokens"):
        engine.add("a", list(range(3, 20)), SamplingParams(max_tokens=5))


def test_kv_size_per_token_comes_from_the_model_config(reference, tiny_model_dir):
    from ochat.serving.kv_cache import kv_bytes_per_token

    with open(os.path.join(tiny_model_dir, "config.json")) as file:
        config = json.load(file)
    expected = config["num_hidden_layers"] * config["num_key_value_heads"] * config["head_dim"] * 2 * 4  # keys, values
    assert kv_bytes_per_token(reference.model.config, torch.float32) == expected
    assert kv_bytes_per_token(reference.model.config, torch.bfloat16) == expected // 2


def test_derived_cpu_budget_never_exceeds_what_the_batch_can_use(reference):
    engine = reference.engine(max_batch_size=2)  # RAM allows far more than two full contexts of the tiny model
    assert engine.budget_tokens == 2 * reference.config.max_context


# -- admission -------------------------------------------------------------------------------------------------

LIMITS = ReplicaLimits(
    device="cpu",
    dtype="float32",
    max_batch_size=8,
    kv_cache_capacity_tokens=1000,
    max_context=2048,
    weights_gib=0.1,
    kv_cache_gib=0.1,
    kv_bytes_per_token=100,
)


@pytest.mark.parametrize(
    "prompt_tokens, max_new_tokens, n, fragment",
    [
        (100, 100, 1, None),
        (100, None, 1, None),
        (100, 100, 8, None),  # eight rows fit to start (8 x 101); they may take turns later
        (900, 101, 1, "budget of 1000"),  # 1001 > the budget
        (2048, 1, 1, "maximum context length"),
        (1000, 1049, 1, "maximum context length"),
        (10, 10, 9, "more choices"),
        (200, 10, 5, "to start together"),  # 5 x 201 > 1000
    ],
)
def test_admission_error_refuses_only_what_can_never_run(prompt_tokens, max_new_tokens, n, fragment):
    error = admission_error(LIMITS, prompt_tokens, max_new_tokens, n)
    if fragment is None:
        assert error is None
    else:
        assert error is not None and fragment in error.message


def test_worker_reports_limits_metrics_and_events_in_process(tiny_model_dir, reference):
    worker = EngineWorker(MODEL_TYPE, tiny_model_dir, max_batch_size=4, device="cpu", kv_cache_tokens=400)
    try:
        limits = asyncio.run(worker.ready())
        assert limits.kv_cache_capacity_tokens == 400 and limits.max_batch_size == 4
        assert limits.max_context == reference.config.max_context and limits.device == "cpu"
        assert limits.weights_gib > 0 and 0 < limits.kv_cache_gib < 1
        assert admission_error(limits, 10, 500, 1) is not None and admission_error(limits, 10, 300, 1) is None
        prompt = reference.prompt_ids("hello")

        async def serve():
            await worker.submit_many([("x-0", prompt, SamplingParams(max_tokens=8, temperature=0, logprobs=True))])
            received = []
            while not received or received[-1].finish_reason is None:
                received += await worker.poll(timeout=30)
            return received, await worker.metrics()

        received, metrics = asyncio.run(serve())
        assert tokens(received) == reference.greedy(prompt, 8)
        assert all(event.logprob is not None for event in received)
        assert metrics["generation_tokens_total"] == len(received) and metrics["kv_cache_capacity_tokens"] == 400
        assert metrics["prompt_tokens_total"] == len(prompt) and metrics["preemptions_total"] == 0
    finally:
        worker.loop.stop()


# -- structured outputs ----------------------------------------------------------------------------------------


def test_json_schema_output_validates_on_the_random_model(reference):
    engine = reference.engine()
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    for seed in range(8):
        engine.add(
            str(seed),
            reference.prompt_ids(f"who {seed}"),
            SamplingParams(max_tokens=120, temperature=1.0, seed=seed, response_format=response_format),
        )
    engine.add(
        "greedy",
        reference.prompt_ids("who"),
        SamplingParams(max_tokens=120, temperature=0, response_format=response_format),
    )
    finished = 0
    for seq_id, events in run(engine).items():
        text = reference.tokenizer.hf_tokenizer.decode(tokens(events))
        if events[-1].finish_reason == "length":
            continue  # cut by max_tokens: allowed to be incomplete
        assert events[-1].finish_reason == "stop", seq_id
        jsonschema.validate(json.loads(text), PERSON)
        finished += 1
    assert finished >= 5


def test_json_object_output_is_one_json_object(reference):
    engine = reference.engine()
    for seed in range(4):
        engine.add(
            str(seed),
            reference.prompt_ids("json please"),
            SamplingParams(max_tokens=60, temperature=0.7, seed=seed, response_format={"type": "json_object"}),
        )
    outputs = run(engine)
    for events in outputs.values():
        text = reference.tokenizer.hf_tokenizer.decode(tokens(events))
        assert text.lstrip().startswith("{")
        if events[-1].finish_reason == "stop":
            assert isinstance(json.loads(text), dict)


def test_text_response_format_leaves_output_free(reference):
    prompt = reference.prompt_ids("hello")
    engine = reference.engine()
    engine.add("a", prompt, SamplingParams(max_tokens=10, temperature=0, response_format={"type": "text"}))
    assert tokens(run(engine)["a"]) == reference.greedy(prompt, 10)


@pytest.mark.parametrize(
    "response_format, fragment",
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}, "nonsense"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/missing"}}}, "missing"),
        ({"type": "xml"}, "response_format.type"),
        ({"type": "json_schema", "json_schema": "not an object"}, "json_schema"),
    ],
)
def test_schema_the_grammar_cannot_compile_is_a_value_error(response_format, fragment):
    with pytest.raises(ValueError, match=fragment):
        validate_response_format(response_format)


def test_valid_response_formats_pass_validation():
    for response_format in (
        None,
        {"type": "text"},
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON, "strict": True}},
    ):
        validate_response_format(response_format)


# -- logprobs ---------------------------------------------------------------------------------------------------


def test_greedy_logprobs_match_the_model_and_lead_the_top_list(reference):
    prompt = reference.prompt_ids("numbers")
    engine = reference.engine()
    engine.add("a", prompt, SamplingParams(max_tokens=6, temperature=0, logprobs=True, top_logprobs=5))
    events = run(engine)["a"]
    generated = tokens(events)
    with torch.inference_mode():
        logits = reference.model(torch.tensor([prompt + generated])).logits[0].float()
    expected = torch.log_softmax(logits, dim=-1)
    for step, event in enumerate(events):
        if event.token_id is None:
            continue
        assert event.top_logprobs[0][0] == event.token_id  # greedy takes the most likely token
        assert event.logprob == pytest.approx(event.top_logprobs[0][1])
        assert event.logprob == pytest.approx(expected[len(prompt) - 1 + step, event.token_id].item(), abs=1e-4)
        values = [value for _, value in event.top_logprobs]
        assert len(values) == 5 and values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-5


def test_sampled_logprobs_are_under_the_tempered_distribution(reference):
    prompt = reference.prompt_ids("random")
    engine = reference.engine()
    engine.add("a", prompt, SamplingParams(max_tokens=1, temperature=0.5, seed=3, logprobs=True, top_logprobs=20))
    event = run(engine)["a"][0]
    with torch.inference_mode():
        logits = reference.model(torch.tensor([prompt])).logits[0, -1].float()
    expected = torch.log_softmax(logits / 0.5, dim=-1)
    token_id = event.token_id if event.token_id is not None else None
    if token_id is not None:
        assert event.logprob == pytest.approx(expected[token_id].item(), abs=1e-4)
    top_ids = [token for token, _ in event.top_logprobs]
    assert top_ids == expected.topk(20).indices.tolist()


def test_no_logprobs_unless_asked(reference):
    engine = reference.engine()
    engine.add("a", reference.prompt_ids("hello"), SamplingParams(max_tokens=4, temperature=0))
    assert all(event.logprob is None and event.top_logprobs == () for event in run(engine)["a"])


def test_tiny_temperature_is_greedy(reference):
    prompt = reference.prompt_ids("cold")
    engine = reference.engine()
    engine.add("a", prompt, SamplingParams(max_tokens=12, temperature=1e-39, seed=1))
    engine.add("b", prompt, SamplingParams(max_tokens=12, temperature=1e-6, seed=2))
    events = run(engine)
    assert tokens(events["a"]) == tokens(events["b"]) == reference.greedy(prompt, 12)


def test_a_failed_step_ends_every_sequence_with_an_error(reference):
    """A forward that raises (here: injected once) fails the sequences it touched, running, waiting and joining,
    with a message that carries no internal detail; the engine thread lives on and serves the next request."""
    from ochat.serving.replica_worker import STEP_FAILED, EngineLoop

    engine = reference.engine(max_batch_size=2)
    forward, calls = engine.model.forward, []

    def failing_forward(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("CUDA error: an illegal memory access (internal detail)")
        return forward(*args, **kwargs)

    loop = EngineLoop(engine)
    engine.model.forward = failing_forward
    try:
        prompt = reference.prompt_ids("hello")
        loop.submit("running", prompt, SamplingParams(max_tokens=200, temperature=0))
        loop.submit("bad", [reference.model.config.vocab_size + 5], SamplingParams(max_tokens=5))
        loop.submit("joining", prompt, SamplingParams(max_tokens=50))
        loop.submit("waiting", prompt, SamplingParams(max_tokens=5))
        ends = {}

        async def collect(count):
            while len(ends) < count:
                for event in await loop.wait_events(timeout=30):
                    if event.finish_reason is not None:
                        ends[event.seq_id] = event

        def failed_with(event: TokenEvent, code: str, message: str) -> bool:
            return event.finish_reason is FinishReason.ERROR and (event.error.code, str(event.error)) == (code, message)

        asyncio.run(asyncio.wait_for(collect(4), 120))
        assert ends["bad"].error.code == "invalid_request" and str(ends["bad"].error).startswith("prompt token ids")
        assert failed_with(ends["running"], "engine_error", STEP_FAILED) and "internal detail" not in STEP_FAILED
        assert all(
            failed_with(event, "engine_error", STEP_FAILED) or event.finish_reason in ("length", "stop")
            for seq, event in ends.items()
            if seq != "bad"
        )
        assert loop.engine.unfinished == set() and not loop.engine.has_work()
        loop.submit("after", prompt, SamplingParams(max_tokens=3, temperature=0))
        asyncio.run(asyncio.wait_for(collect(5), 120))
        assert ends["after"].finish_reason in ("length", "stop")
    finally:
        engine.model.forward = forward
        loop.stop()
