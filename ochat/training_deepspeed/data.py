"""Training samples, the batch plan of every optimizer step, and collation into model inputs.

Input (written by `data_pipeline.generate_dataset`): a JSON list of samples,
each `[token_ids, supervise_mask]` of equal length, e.g.

    [[[1, 12, 7, 2049, 40, 9, 2049], [false, false, false, false, false, true, true]]]

or, for conditioned (C-RLFT) data, `[token_ids, supervise_mask, weights]` with
per-token weights (the source's reward) nonzero exactly where the mask is true:

    [[[1, 12, 7, 2049, 40, 9, 2049], [false, false, false, false, false, true, true],
      [0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1]]]

Batch plan. Each epoch shuffles the samples (seed + epoch) and cuts them into
global batches of `train_batch_size` samples, one optimizer step each (the
last step of an epoch takes the remainder, so no sample is left out). Inside a
step the samples are dealt to ranks x accumulation micro-batches:

    none      in shuffled order, `micro_batch_size` samples each, padded
    length    sorted by length, runs of `micro_batch_size` similar lengths,
              dealt round robin so every rank gets a similar share of work
    packing   longest first into the micro-batch with the fewest tokens; each
              micro-batch is one padding-free row whose position ids restart
              at every sample

A sample never leaves its step, so all three modes train on the same samples
per optimizer step and, with the token-mean loss, on the same gradient; they
differ only in speed.

Loss weights. Every target token (the next token, where the supervise mask is
true) carries a weight so that summing `weight * cross_entropy` over all
micro-batches of all ranks gives the step's loss. With `w` the target token's
own weight (1.0 unless the data carries weights):

    token       w / (sum of w over the target tokens of the whole global batch)
    per_sample  w / (supervised tokens of the sample * samples in the global batch)

So `token` is OpenChat's reward-weighted C-RLFT loss, sum(w * CE) / sum(w), and
with all weights 1.0 both are exactly the unweighted means. Samples keep their
weights through length grouping and packing: plans deal sample indices, and
`collate` reads each sample's weights.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from ochat.config.conversation_template import TokenizedSample

IGNORE_INDEX = -100
GROUPING_MODES = ("none", "length", "packing")
LOSS_REDUCTIONS = ("token", "per_sample")


class DataError(ValueError):
    """Training data that cannot be used as it is; the message says what to do."""


def resolve_data_files(data_path: str, model_type: str) -> tuple[str, Optional[str]]:
    """`(train_file, eval_file or None)` from a folder holding T.train.json or a direct path to it."""
    if os.path.isdir(data_path):
        train_file = os.path.join(data_path, f"{model_type}.train.json")
    else:
        train_file = data_path
    if not os.path.isfile(train_file):
        raise DataError(
            f"training data {train_file!r} not found; --data_path must be the folder holding "
            f"{model_type}.train.json (made by data_pipeline.generate_dataset) or that file itself"
        )
    eval_file = os.path.join(os.path.dirname(train_file), f"{model_type}.eval.json")
    if train_file.endswith(".train.json"):
        eval_file = train_file[: -len(".train.json")] + ".eval.json"
    return train_file, eval_file if os.path.isfile(eval_file) else None


def load_samples(path: str, vocab_size: int, max_context: int) -> list[TokenizedSample]:
    """Read and check one data file: shape, token ids within the vocabulary, lengths within the context.

    Each sample unpacks as `(token_ids, supervise_mask)`; its per-token `.weights` are 1.0 on the
    supervised tokens of two-field data.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(raw, list):
        raise DataError(f"{path} must hold a JSON list of [token_ids, supervise_mask] samples")
    samples = []
    for index, sample in enumerate(raw):
        if (
            not isinstance(sample, (list, tuple))
            or len(sample) not in (2, 3)
            or not all(isinstance(field, list) and len(field) == len(sample[0]) for field in sample)
            or not sample[0]
        ):
            raise DataError(
                f"{path}: sample {index} is not [token_ids, supervise_mask] or [token_ids, supervise_mask, weights] "
                "of equal-length, non-empty lists"
            )
        token_ids, supervise_mask = sample[0], sample[1]
        if not all(type(token_id) is int for token_id in token_ids):
            wrong = next(token_id for token_id in token_ids if type(token_id) is not int)
            raise DataError(
                f"{path}: sample {index} has a token id that is not an integer ({wrong!r:.40}); "
                "regenerate the data with data_pipeline.generate_dataset"
            )
        smallest, largest = min(token_ids), max(token_ids)
        if smallest < 0:
            raise DataError(
                f"{path}: sample {index} has token id {smallest}; token ids are 0 or more - regenerate the data with "
                "data_pipeline.generate_dataset"
            )
        if largest >= vocab_size:
            raise DataError(
                f"{path}: sample {index} has token id {largest} but the model's vocabulary has {vocab_size} entries; "
                "the data was tokenized for another model type or tokenizer - regenerate it with "
                "data_pipeline.generate_dataset for this --model_type and --model_path"
            )
        if len(token_ids) > max_context:
            raise DataError(
                f"{path}: sample {index} has {len(token_ids)} tokens, more than the model type's context of "
                f"{max_context}; the data was made for another model type"
            )
        wrong_flag = next((flag for flag in supervise_mask if flag not in (True, False) or type(flag) is float), None)
        if wrong_flag is not None:  # "false" is a true value to bool(): every token would be supervised
            raise DataError(
                f"{path}: sample {index} has a supervise mask value {wrong_flag!r:.40}; the mask holds true/false "
                "(or 1/0) - regenerate the data with data_pipeline.generate_dataset"
            )
        supervise_mask = [bool(flag) for flag in supervise_mask]
        weights = _checked_weights(path, index, sample[2], supervise_mask) if len(sample) == 3 else None
        samples.append(TokenizedSample(token_ids, supervise_mask, weights))
    return samples


def _checked_weights(path: str, index: int, weights: list, supervise_mask: list[bool]) -> list[float]:
    """Per-token weights: finite numbers >= 0, nonzero exactly where the mask is true."""
    for position, (weight, supervised) in enumerate(zip(weights, supervise_mask)):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise DataError(
                f"{path}: sample {index} has weight {weight!r} at position {position}; weights are numbers >= 0"
            )
        if bool(weight) != supervised:
            raise DataError(
                f"{path}: sample {index} has weight {weight} at position {position}, where the supervise mask is "
                f"{str(supervised).lower()}; weights are nonzero exactly on the supervised tokens (a weight of 0 "
                "trains nothing: leave such a turn unsupervised)"
            )
    return [float(weight) for weight in weights]


def supervised_target_count(supervise_mask: Sequence[bool]) -> int:
    """Tokens the model is trained to predict: every supervised position after the first."""
    return sum(supervise_mask[1:])


@dataclass
class StepPlan:
    """One optimizer step: `micro_batches[rank][k]` lists sample indices; the normalisers are global."""

    micro_batches: list[list[list[int]]]
    supervised_tokens: int  # target tokens in the whole global batch
    samples_with_targets: int  # samples in the global batch that have at least one target
    tokens: int  # all tokens in the global batch
    padded_tokens: int  # positions the model computes: tokens plus padding
    target_weight: Optional[float] = None  # sum of target-token weights in the global batch; set by `collate`


def _deal_round_robin(groups: list[list[int]], world_size: int, accumulation_steps: int) -> list[list[list[int]]]:
    """Group k goes to rank k % world_size; missing micro-batches stay empty lists."""
    per_rank: list[list[list[int]]] = [[[] for _ in range(accumulation_steps)] for _ in range(world_size)]
    for k, group in enumerate(groups):
        per_rank[k % world_size][k // world_size] = group
    return per_rank


def plan_step(
    indices: list[int],
    lengths: Sequence[int],
    supervised: Sequence[int],
    grouping: str,
    world_size: int,
    accumulation_steps: int,
    micro_batch_size: int,
) -> StepPlan:
    """Deal one global batch of sample indices to ranks and micro-batches."""
    slots = world_size * accumulation_steps
    if grouping == "packing":
        bins: list[list[int]] = [[] for _ in range(slots)]
        loads = [0] * slots
        for index in sorted(indices, key=lambda i: (-lengths[i], i)):
            lightest = min(range(slots), key=lambda k: (loads[k], k))
            bins[lightest].append(index)
            loads[lightest] += lengths[index]
        groups = bins
    else:
        ordered = sorted(indices, key=lambda i: (-lengths[i], i)) if grouping == "length" else list(indices)
        # spread a short last batch evenly instead of leaving whole micro-batches empty
        size = min(micro_batch_size, -(-len(ordered) // slots))
        groups = [ordered[start : start + size] for start in range(0, len(ordered), size)]
    return StepPlan(
        micro_batches=_deal_round_robin(groups, world_size, accumulation_steps),
        supervised_tokens=sum(supervised[i] for i in indices),
        samples_with_targets=sum(1 for i in indices if supervised[i] > 0),
        tokens=sum(lengths[i] for i in indices),
        padded_tokens=sum(len(group) * max((lengths[i] for i in group), default=0) for group in groups)
        if grouping != "packing"
        else sum(lengths[i] for i in indices),
    )


def plan_epoch(
    lengths: Sequence[int],
    supervised: Sequence[int],
    epoch: int,
    seed: int,
    train_batch_size: int,
    grouping: str,
    world_size: int,
    accumulation_steps: int,
    micro_batch_size: int,
) -> list[StepPlan]:
    """All steps of one epoch; the same arguments give the same plan on every rank and after a resume."""
    if grouping not in GROUPING_MODES:
        raise ValueError(f"grouping must be one of {GROUPING_MODES}")
    order = list(range(len(lengths)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [
        plan_step(
            order[start : start + train_batch_size],
            lengths,
            supervised,
            grouping,
            world_size,
            accumulation_steps,
            micro_batch_size,
        )
        for start in range(0, len(order), train_batch_size)
    ]


def steps_per_epoch(sample_count: int, train_batch_size: int) -> int:
    return -(-sample_count // train_batch_size)


def _targets(token_ids: Sequence[int], supervise_mask: Sequence[bool]) -> list[int]:
    """Next-token targets aligned with the inputs; unsupervised and last positions are ignored."""
    return [token_ids[t + 1] if supervise_mask[t + 1] else IGNORE_INDEX for t in range(len(token_ids) - 1)] + [
        IGNORE_INDEX
    ]


def target_token_weights(sample) -> list[float]:
    """Each position's target weight (that of the next token where it is supervised), aligned with `_targets`."""
    token_ids, supervise_mask = sample
    weights = getattr(sample, "weights", None) or [1.0 if flag else 0.0 for flag in supervise_mask]
    return [weights[t + 1] if supervise_mask[t + 1] else 0.0 for t in range(len(token_ids) - 1)] + [0.0]


def step_target_weight(samples: Sequence, plan: StepPlan) -> float:
    """Sum of target weights over the global batch (every rank's micro-batches); the same on every rank."""
    if plan.target_weight is None:
        plan.target_weight = sum(
            sum(target_token_weights(samples[index]))
            for rank_batches in plan.micro_batches
            for indices in rank_batches
            for index in indices
        )
    return plan.target_weight


def _loss_weights(sample, supervised_count: int, samples: Sequence, plan: StepPlan, loss_reduction: str) -> list[float]:
    """Each position's share of the step loss (see the module docstring)."""
    if supervised_count == 0:
        return [0.0] * len(sample[0])
    if loss_reduction == "token":
        normaliser = step_target_weight(samples, plan)
    else:
        normaliser = supervised_count * plan.samples_with_targets
    return [weight / normaliser if weight else 0.0 for weight in target_token_weights(sample)]


def collate(
    samples: Sequence[tuple[list[int], list[bool]]],
    indices: Sequence[int],
    plan: StepPlan,
    pad_token_id: int,
    packing: bool,
    loss_reduction: str = "token",
) -> dict:
    """Model inputs plus `targets` and `weights` for one micro-batch (a weight-0 dummy row when it is empty).

    Padded: input_ids / attention_mask / targets / weights of shape [rows, longest].
    Packed: one row of all samples back to back, `position_ids` restarting at 0
    per sample, `cu_seq_lens` (sample boundaries, transformers' varlen convention)
    and no attention mask.
    """
    if not indices:
        one = torch.tensor([[pad_token_id]])
        return {
            "input_ids": one,
            "attention_mask": None,
            "position_ids": None,
            "cu_seq_lens": None,
            "targets": torch.full((1, 1), IGNORE_INDEX),
            "weights": torch.zeros(1, 1),
            "tokens": 0,
            "padded_tokens": 1,
        }
    rows = []
    for index in indices:
        token_ids, supervise_mask = samples[index]
        targets = _targets(token_ids, supervise_mask)
        weights = _loss_weights(samples[index], supervised_target_count(supervise_mask), samples, plan, loss_reduction)
        rows.append((token_ids, targets, weights))
    tokens = sum(len(row[0]) for row in rows)

    if packing:
        lengths = [len(row[0]) for row in rows]
        cu_seq_lens = torch.tensor([0] + lengths).cumsum(0, dtype=torch.int32)
        return {
            "input_ids": torch.tensor([[t for row in rows for t in row[0]]]),
            "attention_mask": None,
            "position_ids": torch.tensor([[p for length in lengths for p in range(length)]]),
            "cu_seq_lens": cu_seq_lens,
            "max_length": max(lengths),
            "targets": torch.tensor([[t for row in rows for t in row[1]]]),
            "weights": torch.tensor([[w for row in rows for w in row[2]]], dtype=torch.float32),
            "tokens": tokens,
            "padded_tokens": tokens,
        }

    longest = max(len(row[0]) for row in rows)
    input_ids = torch.full((len(rows), longest), pad_token_id)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    targets = torch.full((len(rows), longest), IGNORE_INDEX)
    weights = torch.zeros((len(rows), longest), dtype=torch.float32)
    for r, (token_ids, row_targets, row_weights) in enumerate(rows):
        n = len(token_ids)
        input_ids[r, :n] = torch.tensor(token_ids)
        attention_mask[r, :n] = 1
        targets[r, :n] = torch.tensor(row_targets)
        weights[r, :n] = torch.tensor(row_weights)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": None,
        "cu_seq_lens": None,
        "targets": targets,
        "weights": weights,
        "tokens": tokens,
        "padded_tokens": len(rows) * longest,
    }
