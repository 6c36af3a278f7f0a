"""One sequence's failure ends that sequence alone: the engine in process on the tiny model, with attackers beside
innocent sequences. Oracle: the same innocent sequences run without the attackers (greedy and seeded)."""

from __future__ import annotations

import pytest
import torch

from ochat.serving.engine_types import EngineError, FinishReason, NoReplica, SamplingParams, TokenEvent
from ochat.serving.http_middlewares import openai_error
from ochat.serving.sampling import FAILURE_MESSAGES
from ochat.serving.structured import ResponseFormatChecker
from tests.helpers.engine import Reference, run, tokens

RECURSIVE_REQUIRED = {"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]}
BARE_SELF_REFERENCE = {"$ref": "#"}
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}}, "required": ["name"]}


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


@pytest.fixture(scope="module")
def reference(tiny_model_dir) -> Reference:
    return Reference(tiny_model_dir)


INNOCENT_IDS = ("greedy", "greedy-2", "seeded", "seeded-2", "schema", "logprobs", "penalty", "biased")


def innocents(reference: Reference) -> list[tuple[str, list[int], SamplingParams]]:
    """Eight ordinary sequences: greedy and seeded, free text, a schema, logprobs, penalties."""
    prompt = reference.prompt_ids
    return [
        ("greedy", prompt("tell me about tea"), SamplingParams(max_tokens=24, temperature=0)),
        ("greedy-2", prompt("and coffee?"), SamplingParams(max_tokens=24, temperature=0)),
        ("seeded", prompt("a story"), SamplingParams(max_tokens=24, temperature=0.9, top_p=0.9, seed=7)),
        ("seeded-2", prompt("a poem"), SamplingParams(max_tokens=24, temperature=1.0, seed=8)),
        ("schema", prompt("who"), SamplingParams(max_tokens=24, temperature=0, response_format=schema_format(PERSON))),
        ("logprobs", prompt("numbers"), SamplingParams(max_tokens=24, temperature=0, logprobs=True, top_logprobs=3)),
        ("penalty", prompt("repeat"), SamplingParams(max_tokens=24, temperature=0, frequency_penalty=1.0)),
        ("biased", prompt("bias"), SamplingParams(max_tokens=24, temperature=0, logit_bias={5: 10.0})),
    ]


def run_with(reference: Reference, attackers: list[tuple[str, list[int], SamplingParams]], tamper=None) -> dict:
    engine = reference.engine(max_batch_size=16)
    for seq_id, prompt, params in innocents(reference) + attackers:
        engine.add(seq_id, prompt, params)
    if tamper is not None:
        tamper(engine)
    return run(engine)


def innocent_outcome(events: dict) -> dict:
    """Per innocent sequence: its tokens, how it ended, and its logprobs."""
    return {
        seq_id: (tokens(events[seq_id]), events[seq_id][-1].finish_reason, [e.logprob for e in events[seq_id]])
        for seq_id in INNOCENT_IDS
    }


def failure(event: TokenEvent) -> tuple[str, str]:
    """(code, message for the client) of an event that ended its sequence with an error."""
    assert event.finish_reason is FinishReason.ERROR
    return event.error.code, str(event.error)


@pytest.fixture(scope="module")
def alone(reference) -> dict:
    return innocent_outcome(run_with(reference, []))


def test_attacker_schemas_end_alone_and_innocents_are_unchanged(reference, alone):
    prompt = reference.prompt_ids("attack")
    attackers = [
        (f"attacker-{i}", prompt, SamplingParams(max_tokens=24, temperature=0, response_format=schema_format(schema)))
        for i, schema in enumerate([RECURSIVE_REQUIRED, BARE_SELF_REFERENCE, RECURSIVE_REQUIRED, BARE_SELF_REFERENCE])
    ]
    events = run_with(reference, attackers)
    assert innocent_outcome(events) == alone
    assert all(reason in ("stop", "length") for _, reason, _ in alone.values())
    for seq_id, _, _ in attackers:
        code, message = failure(events[seq_id][-1])
        assert (code, message) == ("grammar_failed", FAILURE_MESSAGES["grammar_failed"])
        assert "Too many items" not in message and "$ref" not in message


class _Tamper:
    """Stands in for a sequence's grammar matcher to make its row fail in one way."""

    def __init__(self, how: str):
        self.how = how

    def mask_logits(self, row_logits: torch.Tensor) -> None:
        if self.how == "nan":
            row_logits[3] = float("nan")
        elif self.how == "raise":
            raise RuntimeError("internal detail that must not reach the client")

    def advance(self, token_id: int) -> None:
        if self.how == "advance":
            raise RuntimeError("internal detail")


@pytest.mark.parametrize(
    "how, code", [("nan", "invalid_logits"), ("raise", "sampling_failed"), ("advance", "grammar_failed")]
)
def test_a_row_that_fails_in_sampling_ends_alone(reference, alone, how, code):
    prompt = reference.prompt_ids("victim")
    attackers = [
        ("bad-greedy", prompt, SamplingParams(max_tokens=24, temperature=0)),
        ("bad-sampled", prompt, SamplingParams(max_tokens=24, temperature=1.0, seed=3)),
    ]

    def tamper(engine):
        for seq in engine.waiting:
            if seq.seq_id.startswith("bad"):
                seq.matcher = _Tamper(how)

    events = run_with(reference, attackers, tamper)
    assert innocent_outcome(events) == alone
    for seq_id, _, _ in attackers:
        assert failure(events[seq_id][-1]) == (code, FAILURE_MESSAGES[code])


def test_a_draw_that_raises_is_redone_row_by_row(reference, alone):
    """A value the batched draw trips over fails only its own row; seeded rows still draw what they would."""
    bad = SamplingParams(max_tokens=24, temperature=1.0, seed=1)
    bad.top_p = "not a number"  # only possible past validation: the draw's comparison raises
    events = run_with(reference, [("bad", reference.prompt_ids("x"), bad)])
    assert innocent_outcome(events) == alone
    assert failure(events["bad"][-1])[0] == "sampling_failed"


def test_logit_bias_bans_and_forces_tokens(reference):
    prompt = reference.prompt_ids("tell me about tea")
    plain = reference.greedy(prompt, 8)
    engine = reference.engine()
    engine.add("ban", prompt, SamplingParams(max_tokens=8, temperature=0, logit_bias={plain[0]: -100}))
    engine.add("force", prompt, SamplingParams(max_tokens=8, temperature=0.8, seed=1, logit_bias={42: 100}))
    events = run(engine)
    assert tokens(events["ban"])[0] != plain[0] and plain[0] not in tokens(events["ban"])
    assert tokens(events["force"]) == [42] * 8


def test_logit_bias_out_of_vocabulary_is_refused_by_add(reference):
    engine = reference.engine()
    with pytest.raises(ValueError, match="logit_bias"):
        engine.add("a", [1, 2], SamplingParams(max_tokens=2, logit_bias={reference.model.config.vocab_size: 1.0}))
    with pytest.raises(ValueError, match="prompt token ids"):
        engine.add("a", [reference.model.config.vocab_size + 5], SamplingParams(max_tokens=2))


# -- refused before admission -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checker(reference) -> ResponseFormatChecker:
    return ResponseFormatChecker(reference.tokenizer.hf_tokenizer, reference.stop_ids, reference.config.max_context)


@pytest.mark.parametrize(
    "schema, fragment",
    [
        (RECURSIVE_REQUIRED, "endless forced prefix"),
        ({"type": "array", "items": {"$ref": "#"}, "minItems": 1}, "endless forced prefix"),
        (BARE_SELF_REFERENCE, "admits no JSON value"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "not supported"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "not supported"),
    ],
)
def test_schemas_the_engine_cannot_serve_are_refused_by_the_checker(checker, schema, fragment):
    with pytest.raises(ValueError, match=fragment) as caught:
        checker.check(schema_format(schema))
    assert "<state>" not in str(caught.value) and len(str(caught.value)) < 400
    with pytest.raises(ValueError, match=fragment):  # remembered
        checker.check(schema_format(schema))


@pytest.mark.parametrize(
    "response_format",
    [
        None,
        {"type": "text"},
        {"type": "json_object"},
        schema_format(PERSON),
        schema_format({"type": "object", "properties": {"n": {"$ref": "#"}}}),  # recursion with a way out
        schema_format({"const": 5}),
        schema_format({"anyOf": [{"$ref": "#"}, {"type": "integer"}]}),
    ],
)
def test_schemas_with_a_finite_answer_pass_the_checker(checker, response_format):
    checker.check(response_format)


# -- the front's side: detokenizing and the error each failure becomes --------------------------------------------


def test_a_detokenizer_that_raises_ends_its_request_with_a_sanitized_error(reference):
    from ochat.serving.chat_service import ChatService, Choice
    from ochat.serving.detokenize import StopStringFilter

    class BrokenDecoder:
        def step(self, token_id):
            raise RuntimeError("internal detail of the decoder")

    service = ChatService(reference.config, reference.tokenizer, pool=None, metrics=None, model_names=["m"])
    choice = Choice(0, BrokenDecoder(), StopStringFilter([]))
    with pytest.raises(EngineError) as caught:
        service._advance(choice, TokenEvent("chatcmpl-1-0", 5, None), False, "chatcmpl-1")
    assert caught.value.code == "detokenize_failed" and openai_error(caught.value).status == 500
    assert "internal detail" not in str(caught.value)


@pytest.mark.parametrize(
    "code, message, status",
    [
        ("grammar_failed", FAILURE_MESSAGES["grammar_failed"], 400),
        ("invalid_logits", FAILURE_MESSAGES["invalid_logits"], 500),
        ("invalid_request", "prompt token ids must be in [0, 2049)", 400),
        ("engine_error", "the model failed while running a batch step", 503),
        ("replica_unavailable", "the model replica stopped; it is being restarted", 503),
    ],
)
def test_each_engine_failure_maps_to_its_own_status(code, message, status):
    error = openai_error(EngineError(message, code))
    assert (error.code, error.status) == (code, status) and message in error.message


def test_no_live_replica_is_a_503_asking_to_retry():
    error = openai_error(NoReplica())
    assert (error.status, error.code, error.headers) == (503, "replica_unavailable", {"Retry-After": "5"})
    assert error.body()["error"]["type"] == "server_error"
