"""Sampling pieces of the engine: penalties, seeded top-p draws, and the log-probabilities reported.

Each works on the rows of one step's logits; a row's sequence carries its `params`
(`SamplingParams`), its seeded `generator`, `greedy`, and `token_counts` for penalties.
"""

from __future__ import annotations

import torch

MASKED_LOGPROB = -9999.0  # reported for a token the grammar forbids (-inf cannot travel in JSON), as vLLM does


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


def sample_rows(sequences: list, logits: torch.Tensor) -> torch.Tensor:
    """One token per row: a seeded draw from the tempered distribution, within the top-p nucleus if asked."""
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
    # Inverse-CDF draw: one seeded uniform per row keeps a request's sample independent of its batch mates.
    uniforms = torch.stack([torch.rand((), generator=seq.generator, device=logits.device) for seq in sequences])
    # right=True: a draw never lands on a zero-probability token (masked by top-p or a grammar).
    targets = (uniforms * cumulative[:, -1])[:, None]
    picked = torch.searchsorted(cumulative, targets, right=True).clamp(max=probs.shape[1] - 1)
    if token_order is not None:
        picked = token_order.gather(1, picked)
    return picked.squeeze(1)
