"""The batch plan of every optimizer step: which samples each rank puts in each micro-batch.

Each epoch shuffles the samples (seed + epoch) and cuts them into
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
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

GROUPING_MODES = ("none", "length", "packing")


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
