"""What a chat request means for the engine: render the prompt, admit it, and turn token events into text.

The service knows the model registry's template, the tokenizer and the replica
pool; it knows nothing of HTTP. `generate` yields, per engine step, one
`ChoiceUpdate` per choice that changed: new text (stop strings already cut,
multi-byte characters never split) and, at the end, the finish reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Optional

from ochat.config import ChatTokenizer, ModelConfig, check_condition, render_conversation
from ochat.serving.detokenize import IncrementalDecoder, byte_token_ids, special_token_ids
from ochat.serving.engine import SamplingParams
from ochat.serving.protocol import ChatCompletionRequest, OpenAIError, now
from ochat.serving.replica_pool import ReplicaPool


class StopStringFilter:
    """Releases text while holding back any tail that could start a stop string."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show, whether a stop string ended the choice)."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [index for index in (self.pending.find(stop) for stop in self.stops) if index >= 0]
        if hits:
            released, self.pending = self.pending[:min(hits)], ""
            return released, True
        hold = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(self.pending)), hold, -1):
                if stop.startswith(self.pending[-length:]):
                    hold = length
                    break
        released = self.pending[:len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        return released, False

    def flush(self) -> str:
        released, self.pending = self.pending, ""
        return released


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


class EngineFailure(Exception):
    """The engine could not finish a sequence (step failure or replica loss)."""


@dataclass
class ChatService:
    """Renders prompts, admits requests, and turns engine events into choice text."""

    config: ModelConfig
    tokenizer: ChatTokenizer
    pool: ReplicaPool
    model_names: list[str]
    created: int = field(default_factory=now)
    default_condition: Optional[str] = None  # condition of requests that name none; None: the type's inference one

    def __post_init__(self):
        hf_tokenizer = self.tokenizer.hf_tokenizer
        self._byte_ids = byte_token_ids(hf_tokenizer)
        self._special_ids = special_token_ids(hf_tokenizer)
        # The fast tokenizer's own (Rust) decode gives the same text as the transformers wrapper at a third of
        # the cost, which matters: streaming decodes twice per token per client.
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is not None:
            self._decode = lambda ids: backend.decode(ids, skip_special_tokens=True)
        else:
            self._decode = lambda ids: hf_tokenizer.decode(ids, skip_special_tokens=True)

    def check_model(self, name: str) -> None:
        if name not in self.model_names:
            raise OpenAIError(404, f"The model `{name}` does not exist; this server serves {self.model_names[0]!r}",
                              param="model", code="model_not_found")

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
        """Prompt ids and the completion budget, or a 400 when the context cannot hold them."""
        prompt_ids, _mask = render_conversation(self.config, self.tokenizer, request.conversation,
                                                add_generation_prompt=True, condition=self.condition_of(request))
        max_context = self.config.max_context
        room = max_context - len(prompt_ids)
        if room <= 0:
            raise OpenAIError(400, f"This model's maximum context length is {max_context} tokens. However, your "
                                   f"messages resulted in {len(prompt_ids)} tokens. Please reduce the length of the "
                                   "messages.", param="messages", code="context_length_exceeded")
        if request.max_tokens is not None and request.max_tokens > room:
            raise OpenAIError(400, f"This model's maximum context length is {max_context} tokens. However, you "
                                   f"requested {len(prompt_ids) + request.max_tokens} tokens ({len(prompt_ids)} in the "
                                   f"messages, {request.max_tokens} in the completion). Please reduce the length of "
                                   "the messages or completion.", param="max_tokens", code="context_length_exceeded")
        return prompt_ids, request.max_tokens or room

    async def generate(self, request: ChatCompletionRequest, completion_id: str,
                       stats: dict) -> AsyncIterator[list[ChoiceUpdate]]:
        """Yield text updates as tokens arrive; the sequences are aborted however the caller stops."""
        prompt_ids, max_tokens = self.render(request)
        stats["prompt_tokens"] = len(prompt_ids)
        replica = self.pool.reserve(request.n)
        if replica is None:
            raise OpenAIError(429, "The server is at capacity; retry shortly", error_type="requests",
                              code="rate_limit_exceeded", headers={"Retry-After": "1"})
        choices = [Choice(i, IncrementalDecoder(self._decode, self._byte_ids, self._special_ids),
                          StopStringFilter(request.stop)) for i in range(request.n)]
        seq_ids = [f"{completion_id}-{i}" for i in range(request.n)]
        queue: asyncio.Queue = asyncio.Queue()
        submissions = []
        for i, seq_id in enumerate(seq_ids):
            seed = None if request.seed is None else request.seed + i
            params = SamplingParams(max_tokens=max_tokens, temperature=request.temperature, top_p=request.top_p,
                                    seed=seed, presence_penalty=request.presence_penalty,
                                    frequency_penalty=request.frequency_penalty)
            submissions.append((seq_id, prompt_ids, params))
        self.pool.submit(replica, submissions, queue)
        unfinished = request.n
        try:
            while unfinished:
                events = [await queue.get()]
                while not queue.empty():
                    events.append(queue.get_nowait())
                updates: dict[int, ChoiceUpdate] = {}  # one update per choice: tokens that arrived together merge
                for seq_id, token_id, finish_reason in events:
                    choice = choices[int(seq_id.rsplit("-", 1)[1])]
                    if choice.finish_reason is not None:
                        continue
                    update = self._advance(choice, token_id, finish_reason)
                    if choice.finish_reason is not None:
                        unfinished -= 1
                        self.pool.forget([seq_id], abort=finish_reason is None)
                    if update.text or update.finish_reason:
                        merged = updates.get(choice.index)
                        if merged is None:
                            updates[choice.index] = update
                        else:
                            merged.text += update.text
                            merged.finish_reason = update.finish_reason
                stats["completion_tokens"] = sum(choice.completion_tokens for choice in choices)
                if updates:
                    yield list(updates.values())
        finally:
            self.pool.forget([s for s, c in zip(seq_ids, choices) if c.finish_reason is None], abort=True)
            self.pool.release(replica, request.n)

    def _advance(self, choice: Choice, token_id: Optional[int], finish_reason: Optional[str]) -> ChoiceUpdate:
        if finish_reason is not None and finish_reason.startswith("error"):
            raise EngineFailure(finish_reason.partition(": ")[2] or finish_reason)
        if finish_reason == "abort":
            raise EngineFailure("the sequence was cancelled")
        choice.completion_tokens += 1
        text = choice.decoder.step(token_id) if token_id is not None else ""
        if finish_reason is not None:
            text += choice.decoder.flush()
        released, stopped = choice.stops.feed(text)
        if stopped:
            finish_reason = "stop"
        elif finish_reason is not None:
            released += choice.stops.flush()
        choice.text += released
        choice.finish_reason = finish_reason
        return ChoiceUpdate(choice.index, released, finish_reason)
