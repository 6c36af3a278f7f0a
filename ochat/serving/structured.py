"""Structured outputs: `response_format` compiled to a grammar whose token masks constrain decoding.

The engine asks a `GrammarMatcher` per sequence for the tokens allowed next, masks the
rest out of the logits, and feeds it every sampled token. End of turn is allowed only
where the grammar accepts, so a finished answer always parses; an answer cut by
`max_tokens` may not. The grammars come from llguidance: with xgrammar it had the lowest per-step mask cost of
the libraries tried (benchmarks/grammar_mask_cost.py, figures in benchmarks/RESULTS.md)
and needs no extra runtime (xgrammar pulls triton and tvm-ffi).

A schema the grammar engine cannot serve is refused before admission where that can be known
(`ResponseFormatChecker`, run by the front with llguidance's resource limits): one that does not
compile, one that admits no JSON value (`{"$ref": "#"}`), or one whose forced prefix never ends
(`{"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]}`). What only shows
while generating (the parser giving up later) ends that sequence alone (`sampling.SequenceFailure`).

Accepted `response_format` values (OpenAI's):
    {"type": "text"}                                         free text
    {"type": "json_object"}                                  any JSON object
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {...}, "strict": true}}
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Optional

import llguidance
import llguidance.hf
import llguidance.torch
import torch

from ochat.serving.sampling import grammar_failure

_ANY_OBJECT = {"type": "object"}
# llguidance's own resource limits (items per step, lexer fuel, grammar size) at their defaults, without the
# parser state in error texts: those reach logs, and a client only ever hears about its own schema.
LIMITS = llguidance.LLParserLimits(verbose_errors=False)


def _schema_of(response_format: Optional[dict]) -> Optional[dict]:
    """The JSON schema a response format asks for; None for free text. Raises ValueError on a malformed format."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise ValueError("response_format must be an object")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return _ANY_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise ValueError("response_format.json_schema must be an object")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise ValueError("response_format.json_schema.schema must be an object")
        return schema
    raise ValueError(f"response_format.type must be 'text', 'json_object' or 'json_schema', not {kind!r}")


def _grammar(schema: dict) -> str:
    # Whitespace between JSON items is free in the grammar; without a bound a random model can emit it forever.
    return llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
    )


def validate_response_format(response_format: Optional[dict]) -> None:
    """Raise ValueError(message) when `response_format` is malformed or its schema cannot be compiled."""
    schema = _schema_of(response_format)
    if schema is None:
        return
    try:
        grammar = _grammar(schema)
    except (TypeError, ValueError) as error:
        raise ValueError(f"response_format schema is not supported: {error}") from None
    error = llguidance.LLMatcher.validate_grammar(grammar, limits=LIMITS)
    if error:
        raise ValueError(f"response_format schema is not supported: {_first_line(error)}")


def _first_line(error: str) -> str:
    return error.strip().splitlines()[0] if error.strip() else "the grammar engine rejected it"


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 words -> bool per token (bit i of word w allows token 32 w + i); tokens past the words are forbidden.

    llguidance's own `apply_token_bitmask_inplace` took 174 ms a step on this CPU; this takes microseconds.
    """
    bits = (bitmask[:, None] >> torch.arange(32, dtype=torch.int32)) & 1
    allowed = bits.reshape(-1)[:vocab_size].bool()
    if allowed.shape[0] < vocab_size:
        allowed = torch.cat([allowed, allowed.new_zeros(vocab_size - allowed.shape[0])])
    return allowed


class GrammarCompiler:
    """Turns response formats into per-sequence matchers for one tokenizer (wrapping it costs ~1 s, once)."""

    def __init__(self, hf_tokenizer, vocab_size: int, stop_token_ids: list[int]):
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size, eos_token=stop_token_ids)
        self.vocab_size = vocab_size
        self.stop_token_ids = list(stop_token_ids)

    def matcher(self, response_format: Optional[dict]) -> Optional[GrammarMatcher]:
        schema = _schema_of(response_format)
        if schema is None:
            return None
        return GrammarMatcher(llguidance.LLMatcher(self.tokenizer, _grammar(schema), log_level=0, limits=LIMITS), self)


class GrammarMatcher:
    """One sequence's position in its grammar."""

    def __init__(self, matcher: llguidance.LLMatcher, compiler: GrammarCompiler):
        self.matcher = matcher
        self.compiler = compiler
        error = matcher.get_error()
        if error:
            raise ValueError(f"response_format schema is not supported: {_first_line(error)}")

    def mask_logits(self, row_logits: torch.Tensor) -> None:
        """Set the logits of tokens the grammar forbids next to -inf (in place, one row); a grammar that gave
        up, or allows nothing, is this sequence's failure (`SequenceFailure`)."""
        bitmask = llguidance.torch.allocate_token_bitmask(1, self.compiler.vocab_size)
        llguidance.torch.fill_next_token_bitmask(self.matcher, bitmask, 0)
        if self.matcher.is_error():
            raise grammar_failure(self.matcher.get_error())
        allowed = unpack_bitmask(bitmask[0], row_logits.shape[0]).to(row_logits.device)
        if not allowed.any():
            raise grammar_failure("the grammar allows no next token")
        row_logits.masked_fill_(~allowed, float("-inf"))

    def advance(self, token_id: int) -> None:
        if not self.matcher.consume_token(token_id):
            raise grammar_failure(f"token {token_id} rejected: {self.matcher.get_error()}")

    def is_accepting(self) -> bool:
        return self.matcher.is_accepting()


class ResponseFormatChecker:
    """Refuses, before admission, response formats the engine could not serve: one that does not compile, one
    that admits no JSON value, one whose forced prefix outruns the context. Thread-safe; recent verdicts are
    kept, since clients (judges, extractors) send the same schema again and again.

        checker.check({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#"}}})
        ValueError: response_format schema admits no JSON value ...
    """

    def __init__(self, hf_tokenizer, stop_token_ids: list[int], max_tokens: int, remembered: int = 256):
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=len(hf_tokenizer), eos_token=stop_token_ids)
        self.vocab_size = len(hf_tokenizer)
        self.stop_token_ids = set(stop_token_ids)
        self.max_tokens = max_tokens
        self._verdicts: collections.OrderedDict[str, str] = collections.OrderedDict()  # format -> "" or error
        self._remembered = remembered
        self._lock = threading.Lock()

    def check(self, response_format: Optional[dict]) -> None:
        """Raise ValueError(message for the client) when `response_format` cannot be served."""
        schema = _schema_of(response_format)
        if schema is None:
            return
        key = json.dumps(response_format, sort_keys=True)
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is not None:
                self._verdicts.move_to_end(key)
        if verdict is None:
            try:
                self._probe(schema)
                verdict = ""
            except ValueError as error:
                verdict = str(error)
            with self._lock:
                self._verdicts[key] = verdict
                while len(self._verdicts) > self._remembered:
                    self._verdicts.popitem(last=False)
        if verdict:
            raise ValueError(verdict)

    def _probe(self, schema: dict) -> None:
        try:
            grammar = _grammar(schema)
        except (TypeError, ValueError) as error:
            raise ValueError(f"response_format schema is not supported: {_first_line(str(error))}") from None
        matcher = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0, limits=LIMITS)
        if matcher.is_error():
            raise ValueError(f"response_format schema is not supported: {_first_line(matcher.get_error())}")
        forced = matcher.compute_ff_tokens()
        if not matcher.is_error() and len(forced) >= self.max_tokens:
            raise ValueError(
                f"response_format schema admits no JSON value within the model's context of {self.max_tokens} "
                "tokens: every answer would begin with an endless forced prefix (for example a required "
                "property that refers back to its own object)"
            )
        if not matcher.is_error():
            matcher.consume_tokens(forced)
        if not matcher.is_error():
            allowed = unpack_bitmask(
                torch.frombuffer(bytearray(matcher.compute_bitmask()), dtype=torch.int32), self.vocab_size
            )
        if matcher.is_error():
            raise ValueError(
                "response_format schema admits no JSON value the grammar engine can produce "
                f"({_first_line(matcher.get_error())})"
            )
        content = [token for token in allowed.nonzero().flatten().tolist() if token not in self.stop_token_ids]
        if not forced and not content:
            raise ValueError("response_format schema admits no JSON value (for example a bare self-reference)")
