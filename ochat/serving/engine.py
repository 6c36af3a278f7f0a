"""Continuous batching under a KV-memory budget: which sequences run, which wait, which are preempted.

Every `step()` runs one decode step for the running rows and, when the batch and the
budget have room, one batched prefill for waiting sequences, then merges them into the
running batch (layout in `ochat.serving.kv_cache`). Finished or aborted sequences leave
before the next step, so a new request waits at most one step to start.

The budget, in the spirit of vLLM's scheduler: the cache holds rows x columns token slots
(padding and spare room included) and never more than `budget_tokens` between steps.
Waiting sequences join first-come first-served while the batch, grown by them and by one
more column, fits, and one prefill stays within one context of tokens (the activation
headroom measured at start-up). When the running rows cannot grow by one column within the
budget, the newest row is preempted: its cache is dropped and it waits at the head of the
queue to be recomputed (prompt + tokens so far in one prefill), so its output is unchanged.
A sequence never outgrows the whole budget: at that length it ends with "length".

Why hand-written: transformers' own continuous batching (`generate_batch`)
runs on a CPU, but for the tiny model it took 12.7 s for 8 prompts x 64 tokens
where 8 sequential `generate` calls took 0.55 s: its per-step scheduling cost
dominates small models. The engine uses transformers' pieces that do serve
(the model forward, its `Cache` API, SDPA with a 2-D padding mask and explicit
per-row `position_ids`) and adds only the batch bookkeeping.

Events: `step()` returns `TokenEvent`s (`ochat.serving.engine_types`); a sequence that fails alone
ends with `FinishReason.ERROR` and an `EngineError` (codes and messages in `ochat.serving.sampling`).
Example: `TokenEvent("req1-0", 345, None, -0.7)`, then `TokenEvent("req1-0", None, FinishReason.STOP)`.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch
from transformers import Cache

from ochat.serving.engine_types import (
    GREEDY_TEMPERATURE,
    MAX_TOP_LOGPROBS,
    EngineError,
    FinishReason,
    ReplicaLimits,
    SamplingParams,
    TokenEvent,
    admission_error,
)
from ochat.serving.kv_cache import (
    GIB,
    cache_columns,
    cache_tensors,
    derive_budget_tokens,
    kv_bytes_per_token,
    left_pad,
    make_cache,
    weights_bytes,
)
from ochat.serving.sampling import SequenceFailure, as_failure, choose_tokens

logger = logging.getLogger(__name__)


@dataclass
class _Sequence:
    seq_id: str
    prompt_ids: list[int]
    params: SamplingParams
    generator: torch.Generator
    arrival: int
    matcher: Optional[object] = None  # structured.GrammarMatcher when a response format constrains the output
    output_ids: list[int] = field(default_factory=list)  # sampled so far; the last one is not in the cache yet
    position: int = 0  # real tokens in the KV cache for this row
    token_counts: Optional[torch.Tensor] = None  # per-vocabulary counts, only when penalties are set
    bias: Optional[tuple] = None  # (token ids, values) tensors of `params.logit_bias`, built on first use

    @property
    def next_input(self) -> int:
        return self.output_ids[-1]

    @property
    def greedy(self) -> bool:
        return self.params.temperature <= GREEDY_TEMPERATURE


@dataclass
class _Batch:
    """The running rows and their shared, left-padded KV cache."""

    sequences: list[_Sequence] = field(default_factory=list)
    cache: Optional[Cache] = None  # rows in `sequences` order
    attention_mask: Optional[torch.Tensor] = None  # [rows, cache length], 0 on left padding

    @property
    def length(self) -> int:
        return 0 if self.attention_mask is None else self.attention_mask.shape[1]


class GenerationEngine:
    """Continuous batching: `add` and `abort` at any time, `step` advances every running sequence by one token."""

    def __init__(
        self,
        model,
        stop_token_ids: Sequence[int],
        max_context: int,
        max_batch_size: int = 32,
        kv_cache_tokens: Optional[int] = None,
        gpu_memory_utilization: float = 0.9,
        tokenizer=None,
    ):
        self.model = model
        self.device = next(model.parameters()).device
        self.stop_token_ids = set(stop_token_ids)
        self.max_context = max_context
        self.max_batch_size = max_batch_size
        self.budget_tokens = derive_budget_tokens(
            model, max_context, max_batch_size, kv_cache_tokens, gpu_memory_utilization
        )
        self._longest_sequence = min(max_context, self.budget_tokens)
        dtype = next(model.parameters()).dtype
        per_token = kv_bytes_per_token(model.config, dtype)
        self.limits = ReplicaLimits(
            device=str(self.device),
            dtype=str(dtype).removeprefix("torch."),
            max_batch_size=max_batch_size,
            kv_cache_capacity_tokens=self.budget_tokens,
            max_context=max_context,
            weights_gib=round(weights_bytes(model) / GIB, 4),
            kv_cache_gib=round(self.budget_tokens * per_token / GIB, 4),
            kv_bytes_per_token=per_token,
        )
        self.tokenizer = tokenizer  # a transformers tokenizer; needed only for structured outputs
        # A prefill samples from the last position only; projecting every prompt position onto the vocabulary
        # cost a fifth of SmolLM2's prefill (32 prompts x 40 tokens x 49152 logits, 250 MB of float32).
        accepts = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._last_logits_only = {"logits_to_keep": 1} if accepts else {}
        self._grammars = None
        self.waiting: collections.deque[_Sequence] = collections.deque()
        self.batch = _Batch()
        self._aborted: set[str] = set()
        self.unfinished: set[str] = set()  # every sequence added and not yet ended
        self._arrivals = itertools.count()
        self.kv_tokens_used = 0  # what the cache layout holds after the last step
        self.preemptions_total = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.sequence_failures_total = 0

    # -- requests --------------------------------------------------------------------------------
    def add(self, seq_id: str, prompt_ids: Sequence[int], params: SamplingParams) -> None:
        if not prompt_ids:
            raise ValueError("prompt must hold at least one token")
        refusal = admission_error(self.limits, len(prompt_ids), None)
        if refusal is not None:
            raise ValueError(refusal.message)
        vocab_size = self.model.config.vocab_size
        if min(prompt_ids) < 0 or max(prompt_ids) >= vocab_size:
            raise ValueError(f"prompt token ids must be in [0, {vocab_size})")
        if params.logit_bias and not all(
            0 <= token_id < vocab_size and -100 <= bias <= 100 for token_id, bias in params.logit_bias.items()
        ):
            raise ValueError(f"logit_bias takes token ids in [0, {vocab_size}) and biases in [-100, 100]")
        if not 0 <= params.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ValueError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")
        matcher = self._grammar_matcher(params.response_format)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(params.seed if params.seed is not None else torch.seed() % (1 << 63))
        self.waiting.append(_Sequence(seq_id, list(prompt_ids), params, generator, next(self._arrivals), matcher))
        self.unfinished.add(seq_id)

    def _grammar_matcher(self, response_format: Optional[dict]):
        if response_format is None or response_format.get("type") == "text":
            return None
        if self._grammars is None:
            if self.tokenizer is None:
                raise ValueError("this engine was started without a tokenizer, so it cannot follow response_format")
            from ochat.serving.structured import GrammarCompiler

            self._grammars = GrammarCompiler(self.tokenizer, self.model.config.vocab_size, sorted(self.stop_token_ids))
        return self._grammars.matcher(response_format)

    def abort(self, seq_id: str) -> None:
        self._aborted.add(seq_id)

    @property
    def num_running(self) -> int:
        return len(self.batch.sequences)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    def has_work(self) -> bool:
        return bool(self.waiting or self.batch.sequences or self._aborted)

    def metrics(self) -> dict:
        return {
            "kv_cache_tokens": self.kv_tokens_used,
            "kv_cache_capacity_tokens": self.budget_tokens,
            "requests_running": self.num_running,
            "requests_waiting": self.num_waiting,
            "preemptions_total": self.preemptions_total,
            "prompt_tokens_total": self.prompt_tokens_total,
            "generation_tokens_total": self.generation_tokens_total,
            "sequence_failures_total": self.sequence_failures_total,
        }

    def fail_all(self, message: str) -> list[TokenEvent]:
        """End every unfinished sequence (after a failed step: running, waiting or mid-prefill) with an
        engine error saying `message`."""
        failed, self.unfinished = list(self.unfinished), set()
        self.batch = _Batch()
        self.waiting.clear()
        self.kv_tokens_used = 0
        return [TokenEvent(seq_id, None, FinishReason.ERROR, error=EngineError(message)) for seq_id in failed]

    # -- one step ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self) -> list[TokenEvent]:
        events: list[TokenEvent] = []
        self._drop_aborted(events)
        if self.batch.sequences:
            events += self._make_room()
        if self.batch.sequences:
            decoded = self._decode()
            self._drop_finished(decoded)  # before admitting, so their slots go to waiting requests in this step
            events += decoded
        joiners = self._admit()
        if joiners:
            joined = self._prefill(joiners)
            self._drop_finished(joined)
            events += joined
        self.kv_tokens_used = len(self.batch.sequences) * cache_columns(self.batch.cache)
        self.unfinished.difference_update(event.seq_id for event in events if event.finish_reason is not None)
        return events

    def _make_room(self) -> list[TokenEvent]:
        """Preempt the newest rows until the batch can grow by one column within the budget."""
        events = []
        while self.batch.sequences:
            rows, columns = len(self.batch.sequences), self.batch.length + 1
            if columns <= cache_columns(self.batch.cache) or rows * columns <= self.budget_tokens:
                return events
            if rows == 1:  # alone and still too long: the budget is its context
                seq = self.batch.sequences[0]
                events.append(TokenEvent(seq.seq_id, None, FinishReason.LENGTH))
                self._keep_rows([])
                return events
            newest = max(range(rows), key=lambda row: self.batch.sequences[row].arrival)
            preempted = self.batch.sequences[newest]
            self._keep_rows([row for row in range(rows) if row != newest])
            preempted.position = 0
            position = 0
            while position < len(self.waiting) and self.waiting[position].arrival < preempted.arrival:
                position += 1
            self.waiting.insert(position, preempted)
            self.preemptions_total += 1
        return events

    def _admit(self) -> list[_Sequence]:
        """Waiting sequences, first come first served, while the batch and the budget hold them."""
        joiners: list[_Sequence] = []
        rows, length = len(self.batch.sequences), self.batch.length
        while self.waiting and rows + len(joiners) < self.max_batch_size:
            candidate = self.waiting[0]
            new_length = max(length, len(candidate.prompt_ids) + len(candidate.output_ids))
            if (rows + len(joiners) + 1) * (new_length + 1) > self.budget_tokens:
                break
            # One prefill stays within the activation memory measured for one full context.
            if joiners and (len(joiners) + 1) * new_length > self.max_context:
                break
            joiners.append(self.waiting.popleft())
            length = new_length
        return joiners

    def _drop_aborted(self, events: list[TokenEvent]) -> None:
        if not self._aborted:
            return
        aborted, self._aborted = self._aborted, set()
        kept_waiting = collections.deque()
        for seq in self.waiting:
            if seq.seq_id in aborted:
                events.append(TokenEvent(seq.seq_id, None, FinishReason.ABORT))
            else:
                kept_waiting.append(seq)
        self.waiting = kept_waiting
        keep = [i for i, seq in enumerate(self.batch.sequences) if seq.seq_id not in aborted]
        for seq in self.batch.sequences:
            if seq.seq_id in aborted:
                events.append(TokenEvent(seq.seq_id, None, FinishReason.ABORT))
        self._keep_rows(keep)

    def _drop_finished(self, events: list[TokenEvent]) -> None:
        finished = {event.seq_id for event in events if event.finish_reason is not None}
        if finished:
            self._keep_rows([i for i, seq in enumerate(self.batch.sequences) if seq.seq_id not in finished])

    def _room_limit(self, rows: int) -> int:
        """Columns a batch of `rows` may allocate (content, padding and spare room) within the budget."""
        return self.budget_tokens // rows

    def _keep_rows(self, keep: list[int]) -> None:
        """Select rows of the batch, then cut left-padding columns that no remaining row needs."""
        batch = self.batch
        if len(keep) == len(batch.sequences):
            return
        if not keep:
            self.batch = _Batch()
            return
        index = torch.tensor(keep, device=self.device)
        mask = batch.attention_mask.index_select(0, index)
        shortest_padding = int((mask.shape[1] - mask.sum(dim=1)).min().item())
        tensors = [
            (k.index_select(0, index)[:, :, shortest_padding:], v.index_select(0, index)[:, :, shortest_padding:])
            for k, v in cache_tensors(batch.cache)
        ]
        cache = make_cache(tensors, self._room_limit(len(keep)))
        self.batch = _Batch([batch.sequences[i] for i in keep], cache, mask[:, shortest_padding:])

    def _decode(self) -> list[TokenEvent]:
        batch = self.batch
        rows = len(batch.sequences)
        input_ids = torch.tensor([[seq.next_input] for seq in batch.sequences], device=self.device)
        position_ids = torch.tensor([[seq.position] for seq in batch.sequences], device=self.device)
        batch.attention_mask = torch.cat([batch.attention_mask, batch.attention_mask.new_ones((rows, 1))], dim=1)
        output = self.model(
            input_ids=input_ids,
            attention_mask=batch.attention_mask,
            position_ids=position_ids,
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.cache = output.past_key_values
        for seq in batch.sequences:
            seq.position += 1
        return self._sample(batch.sequences, output.logits[:, -1, :])

    def _prefill(self, joiners: list[_Sequence]) -> list[TokenEvent]:
        """Run the new prompts (a preempted sequence: prompt and output so far) as one left-padded batch, then
        merge them into the running batch."""
        inputs = [seq.prompt_ids + seq.output_ids for seq in joiners]
        self.prompt_tokens_total += sum(map(len, inputs))  # prefilled, recomputation after preemption included
        length = max(len(ids) for ids in inputs)
        input_ids = torch.zeros((len(joiners), length), dtype=torch.long, device=self.device)
        attention_mask = torch.zeros((len(joiners), length), dtype=torch.long, device=self.device)
        for row, (seq, ids) in enumerate(zip(joiners, inputs)):
            input_ids[row, length - len(ids) :] = torch.tensor(ids, device=self.device)
            attention_mask[row, length - len(ids) :] = 1
            seq.position = len(ids)
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=make_cache([], room_limit=0),
            use_cache=True,
            **self._last_logits_only,
        )
        events = self._sample(joiners, output.logits[:, -1, :])
        self._merge(joiners, output.past_key_values, attention_mask)
        return events

    def _merge(self, joiners: list[_Sequence], cache, attention_mask: torch.Tensor) -> None:
        batch = self.batch
        rows = len(batch.sequences) + len(joiners)
        if not batch.sequences:
            self.batch = _Batch(joiners, make_cache(cache_tensors(cache), self._room_limit(rows)), attention_mask)
            return
        length = max(batch.attention_mask.shape[1], attention_mask.shape[1])
        tensors = [
            (
                torch.cat([left_pad(old_k, length, 2), left_pad(new_k, length, 2)], dim=0),
                torch.cat([left_pad(old_v, length, 2), left_pad(new_v, length, 2)], dim=0),
            )
            for (old_k, old_v), (new_k, new_v) in zip(cache_tensors(batch.cache), cache_tensors(cache))
        ]
        mask = torch.cat([left_pad(batch.attention_mask, length, 1), left_pad(attention_mask, length, 1)], dim=0)
        self.batch = _Batch(batch.sequences + joiners, make_cache(tensors, self._room_limit(rows)), mask)

    # -- sampling ----------------------------------------------------------------------------------------------
    def _sample(self, sequences: list[_Sequence], logits: torch.Tensor) -> list[TokenEvent]:
        """Pick the next token of every row (argmax, or seeded top-p sampling); a row whose grammar, logits or
        draw fails ends alone with an error, and the others get exactly the tokens they would have."""
        next_tokens, reported, failures = choose_tokens(sequences, logits)
        events = []
        for row, (seq, token_id) in enumerate(zip(sequences, next_tokens)):
            if row in failures:
                events.append(self._failed(seq, failures[row]))
                continue
            self.generation_tokens_total += 1
            seq.output_ids.append(token_id)
            logprob, top = reported.get(row, (None, ()))
            if seq.token_counts is not None:
                seq.token_counts[token_id] += 1
            if token_id in self.stop_token_ids:
                events.append(TokenEvent(seq.seq_id, None, FinishReason.STOP, logprob, top))
                continue
            if seq.matcher is not None:
                try:
                    seq.matcher.advance(token_id)
                except Exception as error:
                    events.append(self._failed(seq, as_failure(error, "grammar_failed")))
                    continue
            # A sequence ends at the context, or at the whole budget (then it runs alone, at most).
            if len(seq.output_ids) >= seq.params.max_tokens or seq.position + 1 >= self._longest_sequence:
                events.append(TokenEvent(seq.seq_id, token_id, FinishReason.LENGTH, logprob, top))
            else:
                events.append(TokenEvent(seq.seq_id, token_id, None, logprob, top))
        return events

    def _failed(self, seq: _Sequence, failure: SequenceFailure) -> TokenEvent:
        """The event that ends a failed sequence; the detail goes to the log under the sequence's id only."""
        self.sequence_failures_total += 1
        logger.warning("sequence %s failed (%s): %s", seq.seq_id, failure.code, failure.detail[:2000])
        return TokenEvent(seq.seq_id, None, FinishReason.ERROR, error=failure.engine_error())
