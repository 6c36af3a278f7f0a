"""What a chat request means for the engine: render the prompt, admit it, and turn token events into text.

The service knows the model registry's template, the tokenizer and the replica
pool; it knows nothing of HTTP. `generate` yields, per engine step, one
`ChoiceUpdate` per choice that changed: new text (stop strings already cut,
multi-byte characters never split), its tokens' log-probabilities when asked
for, and at the end the finish reason. A sequence the engine could not finish
raises its `EngineError`; no live replica raises `NoReplica`. Torch stays out of
this process's imports: the response-format checker, which needs it, loads on first use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ochat.config import ChatTokenizer, ModelConfig, check_condition, render_conversation
from ochat.config.conversation_template import CONTENT_SEPARATOR
from ochat.serving.detokenize import (
    IncrementalDecoder,
    StopStringFilter,
    TokenPieces,
    byte_token_ids,
    special_token_ids,
)
from ochat.serving.engine_types import EngineError, FinishReason, SamplingParams, TokenEvent, admission_error
from ochat.serving.metrics import ServerMetrics
from ochat.serving.protocol import ChatCompletionRequest, OpenAIError
from ochat.serving.replica_pool import ReplicaPool
from ochat.serving.responses import now, token_logprob

if TYPE_CHECKING:
    from ochat.serving.structured import ResponseFormatChecker

logger = logging.getLogger("ochat.serving")
# Prompts longer than this are tokenized on a worker thread, so streams keep flowing meanwhile.
LONG_PROMPT_CHARACTERS = 16_384
# Seconds a response format may take to be checked (compiled and probed, on a worker thread) before it is refused.
GRAMMAR_CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class SamplingDefaults:
    """What a request that leaves a field out gets; OpenAI's own defaults unless the server is told otherwise."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: Optional[int] = None  # None: whatever room the context leaves


@dataclass
class Choice:
    index: int
    decoder: IncrementalDecoder
    stops: StopStringFilter
    text: str = ""
    completion_tokens: int = 0
    finish_reason: Optional[str] = None


@dataclass
class ChoiceUpdate:
    index: int
    text: str
    finish_reason: Optional[str] = None
    logprobs: Optional[list[dict]] = None  # OpenAI `logprobs.content` entries of the tokens that arrived


@dataclass
class ChatService:
    """Renders prompts, admits requests, and turns engine events into choice text."""

    config: ModelConfig
    tokenizer: ChatTokenizer
    pool: ReplicaPool
    metrics: ServerMetrics
    model_names: list[str]  # listed by /v1/models; the first is the main one
    aliases: list[str] = field(default_factory=list)  # accepted too, not listed (the checkpoint folder's name)
    defaults: SamplingDefaults = field(default_factory=SamplingDefaults)
    created: int = field(default_factory=now)
    default_condition: Optional[str] = None  # condition of requests that name none; None: the type's inference one

    def __post_init__(self):
        hf_tokenizer = self.tokenizer.hf_tokenizer
        self._format_checker: Optional[ResponseFormatChecker] = None
        self._grammar_threads = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="grammar-check")
        self._byte_ids = byte_token_ids(hf_tokenizer)
        self._special_ids = special_token_ids(hf_tokenizer)
        self._pieces = TokenPieces(hf_tokenizer)
        # The prompt ends at "Assistant:"; the answer's first token brings the separating space, not part of the answer.
        self._answer_lead = "" if self.config.uses_checkpoint_template else CONTENT_SEPARATOR
        # The fast tokenizer's own (Rust) decode gives the same text as the transformers wrapper at a third of
        # the cost, which matters: streaming decodes twice per token per client.
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is not None:
            self._decode = lambda ids: backend.decode(ids, skip_special_tokens=True)
        else:
            self._decode = lambda ids: hf_tokenizer.decode(ids, skip_special_tokens=True)

    def check_model(self, name: str) -> None:
        if name not in self.model_names and name not in self.aliases:
            raise OpenAIError(
                404,
                f"The model `{name}` does not exist; this server serves {', '.join(map(repr, self.model_names))}",
                param="model",
                code="model_not_found",
            )

    @property
    def served_condition(self) -> Optional[str]:
        """The condition a request without one is answered under (None for unconditioned types)."""
        if not self.config.is_conditioned:
            return None
        return self.config.inference_condition if self.default_condition is None else self.default_condition

    def condition_of(self, request: ChatCompletionRequest) -> Optional[str]:
        """The request's condition, or the default; a 400 when the model type takes none."""
        condition = self.default_condition if request.condition is None else request.condition
        try:
            check_condition(self.config, condition)
        except ValueError as error:
            raise OpenAIError(400, str(error), param="condition", code="condition_not_supported") from None
        return condition

    def render(self, request: ChatCompletionRequest) -> tuple[list[int], int]:
        """Prompt ids and the completion budget; a 400 at once for what no replica can ever run (the context
        cannot hold it, or waiting for room would never help), rather than endless 429s."""
        prompt_ids = render_conversation(
            self.config,
            self.tokenizer,
            request.conversation,
            add_generation_prompt=True,
            condition=self.condition_of(request),
        ).token_ids
        room = self.config.max_context - len(prompt_ids)
        max_tokens = request.completion_limit
        if max_tokens is None and self.defaults.max_tokens is not None:
            max_tokens = min(self.defaults.max_tokens, room)
        refusal = admission_error(self.pool.limits[0], len(prompt_ids), max_tokens, request.choices)
        if refusal is not None:
            raise OpenAIError(400, refusal.message, param=refusal.param, code=refusal.code)
        return prompt_ids, max_tokens or room

    async def check_response_format(self, response_format: dict) -> None:
        """A 400 for a format the engine could not serve (`ResponseFormatChecker`), checked on a worker thread
        and time-boxed, so neither a slow grammar nor a flood of them holds up the event loop."""

        def check():
            if self._format_checker is None:
                from ochat.serving.structured import ResponseFormatChecker

                self._format_checker = ResponseFormatChecker(
                    self.tokenizer.hf_tokenizer, sorted(self.tokenizer.stop_token_ids), self.config.max_context
                )
            self._format_checker.check(response_format)

        future = asyncio.get_running_loop().run_in_executor(self._grammar_threads, check)
        try:
            await asyncio.wait_for(future, GRAMMAR_CHECK_TIMEOUT)
        except ValueError as error:
            raise OpenAIError(400, str(error), param="response_format") from None
        except asyncio.TimeoutError:
            raise OpenAIError(
                400,
                f"response_format schema could not be compiled within {GRAMMAR_CHECK_TIMEOUT:g} s; simplify it",
                param="response_format",
            ) from None

    def check_logit_bias(self, request: ChatCompletionRequest) -> None:
        vocab_size = len(self.tokenizer.hf_tokenizer)
        if request.token_biases and max(request.token_biases) >= vocab_size:
            raise OpenAIError(
                400, f"logit_bias names a token id beyond this model's vocabulary of {vocab_size}", param="logit_bias"
            )

    async def prepare(self, request: ChatCompletionRequest) -> tuple[list[int], int]:
        """`render`, on a worker thread when the prompt is long enough to hold up other streams; the response
        format is checked first, since a grammar that cannot be served makes tokenizing pointless."""
        self.check_logit_bias(request)
        if request.response_format_dict is not None:
            await self.check_response_format(request.response_format_dict)
        if sum(len(message.content or "") for message in request.messages) < LONG_PROMPT_CHARACTERS:
            return self.render(request)
        return await asyncio.get_running_loop().run_in_executor(None, self.render, request)

    def sampling_params(self, request: ChatCompletionRequest, max_tokens: int, choice: int) -> SamplingParams:
        options = {}
        if request.logprobs:
            options.update(logprobs=True, top_logprobs=request.top_logprobs or 0)
        if request.response_format_dict is not None:
            options["response_format"] = request.response_format_dict
        if request.token_biases:
            options["logit_bias"] = request.token_biases
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=self.defaults.temperature if request.temperature is None else request.temperature,
            top_p=self.defaults.top_p if request.top_p is None else request.top_p,
            seed=None if request.seed is None else request.seed + choice,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            **options,
        )

    async def generate(
        self, request: ChatCompletionRequest, completion_id: str, stats: dict
    ) -> AsyncIterator[list[ChoiceUpdate]]:
        """Yield text updates as tokens arrive; the sequences are aborted however the caller stops."""
        started = time.perf_counter()
        prompt_ids, max_tokens = await self.prepare(request)
        stats["prompt_tokens"] = len(prompt_ids)
        n = request.choices
        replica = self.pool.reserve(n)
        if replica is None:
            raise OpenAIError(
                429,
                "The server is at capacity; retry shortly",
                error_type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        choices = [
            Choice(
                i,
                IncrementalDecoder(self._decode, self._byte_ids, self._special_ids, self._answer_lead),
                StopStringFilter(request.stop_sequences),
            )
            for i in range(n)
        ]
        seq_ids = [f"{completion_id}-{i}" for i in range(n)]
        choice_of = dict(zip(seq_ids, choices))
        queue: asyncio.Queue = asyncio.Queue()
        self.pool.submit(
            replica,
            [(seq_id, prompt_ids, self.sampling_params(request, max_tokens, i)) for i, seq_id in enumerate(seq_ids)],
            queue,
        )
        unfinished, label, first_text = n, str(replica), True
        try:
            while unfinished:
                events = [await queue.get()]
                while not queue.empty():
                    events.append(queue.get_nowait())
                updates: dict[int, ChoiceUpdate] = {}  # one update per choice: tokens that arrived together merge
                for event in events:
                    choice = choice_of[event.seq_id]
                    if choice.finish_reason is not None:
                        continue
                    update = self._advance(choice, event, request.logprobs, completion_id)
                    if choice.finish_reason is not None:
                        unfinished -= 1
                        self.pool.forget([event.seq_id], abort=event.finish_reason is None)
                    merged = updates.get(choice.index)
                    if merged is None:
                        updates[choice.index] = update
                    else:
                        merged.text += update.text
                        merged.finish_reason = update.finish_reason
                        if update.logprobs:
                            merged.logprobs = (merged.logprobs or []) + update.logprobs
                stats["completion_tokens"] = sum(choice.completion_tokens for choice in choices)
                changed = [u for u in updates.values() if u.text or u.finish_reason or u.logprobs]
                if changed:
                    if first_text:
                        self.metrics.time_to_first_token.labels(label).observe(time.perf_counter() - started)
                        first_text = False
                    yield changed
            self.metrics.request_latency.labels(label).observe(time.perf_counter() - started)
        finally:
            self.pool.forget([s for s, c in zip(seq_ids, choices) if c.finish_reason is None], abort=True)
            self.pool.release(replica, n)

    def _advance(
        self, choice: Choice, event: TokenEvent, want_logprobs: Optional[bool], completion_id: str
    ) -> ChoiceUpdate:
        if event.error is not None:
            raise event.error
        if event.finish_reason is FinishReason.ABORT:
            raise EngineError("the sequence was cancelled")
        token_id = event.token_id
        finish_reason = None if event.finish_reason is None else event.finish_reason.value  # OpenAI's own string
        choice.completion_tokens += 1
        try:
            text = choice.decoder.step(token_id) if token_id is not None else ""
            if finish_reason is not None:
                text += choice.decoder.flush()
            released, stopped = choice.stops.feed(text)
            if stopped:
                finish_reason = "stop"
            elif finish_reason is not None:
                released += choice.stops.flush()
            logprobs = [self._logprob_entry(event)] if want_logprobs and token_id is not None else None
        except Exception:  # this answer's tokens could not become text: it ends alone, the detail stays in the log
            logger.exception("detokenizing %s choice %d failed at token %s", completion_id, choice.index, token_id)
            raise EngineError("The answer's tokens could not be turned into text.", code="detokenize_failed") from None
        choice.text += released
        choice.finish_reason = finish_reason
        return ChoiceUpdate(choice.index, released, finish_reason, logprobs)

    def _logprob_entry(self, event: TokenEvent) -> dict:
        token, token_bytes = self._pieces(event.token_id)
        top = []
        for token_id, logprob in event.top_logprobs:
            top_token, top_bytes = self._pieces(token_id)
            top.append({"token": top_token, "logprob": logprob, "bytes": top_bytes})
        return token_logprob(token, token_bytes, event.logprob, top)
