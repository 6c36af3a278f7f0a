"""Sampling pieces of the engine: penalties, token biases, seeded top-p draws, the log-probabilities reported,
and the isolation of failures that belong to one sequence.

Each works on the rows of one step's logits; a row's sequence carries its `params`
(`engine_types.SamplingParams`), its seeded `generator`, `greedy`, `token_counts` for penalties and
its grammar `matcher`. `choose_tokens` is the whole pick: a row whose grammar, logits or
draw fails is reported in `failures` and the other rows are picked exactly as without it
(every step is row-independent; a batched step that raises is redone row by row).

    failure:  {row: SequenceFailure("grammar_failed", "Too many items (limit 50000 ...)")}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch

from ochat.serving.engine_types import EngineError

MASKED_LOGPROB = -9999.0  # reported for a token the grammar forbids (-inf cannot travel in JSON), as vLLM does

# What a client hears when its own sequence fails; the detail (parser state, tensors) stays in the log.
FAILURE_MESSAGES = {
    "grammar_failed": "The response_format schema could not be followed: the grammar engine gave up on it "
    "(too complex, or no JSON value fits it). Simplify the schema.",
    "invalid_logits": "The model produced invalid scores (NaN or infinite) for this answer.",
    "sampling_failed": "Choosing the next token failed for this answer.",
}


class SequenceFailure(Exception):
    """A failure that belongs to one sequence: it ends that sequence alone. `code` picks the client's message."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(detail or code)
        self.code = code
        self.detail = detail

    def engine_error(self) -> EngineError:
        """What the client hears: the message for `code`, never the detail."""
        return EngineError(FAILURE_MESSAGES[self.code], self.code)


def as_failure(error: Exception, code: str) -> SequenceFailure:
    return error if isinstance(error, SequenceFailure) else SequenceFailure(code, f"{type(error).__name__}: {error}")


def report_logprobs(sequences: list, logits: torch.Tensor, chosen: torch.Tensor) -> list[tuple[float, tuple]]:
    """(log-probability of the chosen token, top alternatives) per row, after penalties, grammar mask and
    temperature (none for greedy rows): the distribution the token was drawn from, before top-p."""
    temperature = torch.tensor(
        [1.0 if seq.greedy else seq.params.temperature for seq in sequences], device=logits.device
    )
    logprobs = torch.log_softmax(logits / temperature[:, None], dim=-1)
    chosen_logprobs = logprobs.gather(1, chosen[:, None]).squeeze(1).tolist()
    widest = max(seq.params.top_logprobs for seq in sequences)
    if widest:
        top_values, top_ids = (values.tolist() for values in logprobs.topk(widest, dim=-1))
    reported = []
    for row, seq in enumerate(sequences):
        count = seq.params.top_logprobs
        # A token the grammar forbids has -inf, which JSON cannot carry; report it as vLLM does.
        top = (
            tuple(
                (token_id, max(value, MASKED_LOGPROB))
                for token_id, value in zip(top_ids[row][:count], top_values[row][:count])
            )
            if count
            else ()
        )
        reported.append((chosen_logprobs[row], top))
    return reported


def penalize(seq, row_logits: torch.Tensor) -> None:
    """OpenAI's presence and frequency penalties over the tokens this sequence generated so far."""
    if seq.token_counts is None:
        seq.token_counts = torch.zeros(row_logits.shape[0], device=row_logits.device)
    counts = seq.token_counts
    row_logits -= seq.params.frequency_penalty * counts + seq.params.presence_penalty * (counts > 0).float()


def apply_logit_bias(seq, row_logits: torch.Tensor) -> None:
    """OpenAI's `logit_bias`: a value added to the logit of each listed token id (-100 bans it, 100 all but forces it)."""
    if seq.bias is None:
        ids, values = zip(*seq.params.logit_bias.items())
        seq.bias = (
            torch.tensor(ids, dtype=torch.long, device=row_logits.device),
            torch.tensor(values, dtype=row_logits.dtype, device=row_logits.device),
        )
    ids, values = seq.bias
    row_logits.index_add_(0, ids, values)


def sample_rows(sequences: list, logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One token per row: an inverse-CDF draw with the row's `uniforms` value from the tempered distribution,
    within the top-p nucleus if asked."""
    temperature = torch.tensor([seq.params.temperature for seq in sequences], device=logits.device)
    probs = torch.softmax(logits / temperature[:, None], dim=-1)
    token_order = None
    nucleus_rows = [row for row, seq in enumerate(sequences) if seq.params.top_p < 1.0]
    if nucleus_rows:
        # Sorting the vocabulary is the costly part of sampling on a CPU, so only rows that ask for top-p pay it.
        token_order = torch.arange(probs.shape[1], device=logits.device).expand_as(probs).clone()
        top_p = torch.tensor([sequences[row].params.top_p for row in nucleus_rows], device=logits.device)
        sorted_probs, sorted_ids = probs[nucleus_rows].sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the most likely token).
        outside_nucleus = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p[:, None]
        outside_nucleus[:, 0] = False
        probs[nucleus_rows] = sorted_probs.masked_fill(outside_nucleus, 0.0)
        token_order[nucleus_rows] = sorted_ids
    cumulative = probs.cumsum(dim=-1)
    # right=True: a draw never lands on a zero-probability token (masked by top-p or a grammar).
    targets = (uniforms * cumulative[:, -1])[:, None]
    picked = torch.searchsorted(cumulative, targets, right=True).clamp(max=probs.shape[1] - 1)
    if token_order is not None:
        picked = token_order.gather(1, picked)
    return picked.squeeze(1)


def choose_tokens(
    sequences: list, logits: torch.Tensor
) -> tuple[list[int], dict[int, tuple[float, tuple]], dict[int, SequenceFailure]]:
    """(next token per row, {row: reported logprobs}, {row: failure}); a failed row's token is meaningless."""
    logits = logits.float()
    failures: dict[int, SequenceFailure] = {}
    for row, seq in enumerate(sequences):
        try:
            if seq.params.presence_penalty or seq.params.frequency_penalty:
                penalize(seq, logits[row])
            if seq.params.logit_bias:
                apply_logit_bias(seq, logits[row])
            if seq.matcher is not None:
                seq.matcher.mask_logits(logits[row])
        except Exception as error:
            failures[row] = as_failure(error, "sampling_failed")
    invalid = (torch.isnan(logits) | torch.isposinf(logits)).any(dim=-1).tolist()
    for row in (row for row, bad in enumerate(invalid) if bad and row not in failures):
        failures[row] = SequenceFailure("invalid_logits", "NaN or +inf in the row's logits")
    if failures:
        logits[list(failures)] = 0.0  # harmless values, so the batched steps below cannot trip over them
    next_tokens = logits.argmax(dim=-1)
    # One seeded uniform per sampled row, drawn before the batched draw: a redo row by row draws the same.
    sampled = [row for row, seq in enumerate(sequences) if not seq.greedy and row not in failures]
    uniforms = {row: torch.rand((), generator=sequences[row].generator, device=logits.device) for row in sampled}

    def draw(rows: list[int]) -> list[int]:
        picked = sample_rows([sequences[r] for r in rows], logits[rows], torch.stack([uniforms[r] for r in rows]))
        return picked.tolist()

    for row, token_id in _row_isolated(sampled, draw, failures, "sampling_failed").items():
        next_tokens[row] = token_id

    def report(rows: list[int]) -> list[tuple[float, tuple]]:
        return report_logprobs([sequences[r] for r in rows], logits[rows], next_tokens[rows])

    wanted = [
        row
        for row, seq in enumerate(sequences)
        if (seq.params.logprobs or seq.params.top_logprobs) and row not in failures
    ]
    reported = _row_isolated(wanted, report, failures, "sampling_failed")
    return next_tokens.tolist(), reported, failures


def _row_isolated(rows: list[int], compute: Callable[[list[int]], list], failures: dict, code: str) -> dict:
    """`compute(rows)` as {row: result}; when the batched call raises, row by row, so only a failing row fails."""
    if not rows:
        return {}
    try:
        return dict(zip(rows, compute(rows)))
    except Exception:
        results = {}
        for row in rows:
            try:
                results[row] = compute([row])[0]
            except Exception as error:
                failures[row] = as_failure(error, code)
        return results


def grammar_failure(detail: Optional[str]) -> SequenceFailure:
    return SequenceFailure("grammar_failed", detail or "the grammar matcher is in an error state")
