"""The plan -> collate -> loss loop, in one place for training, evaluation, the demo and the benchmarks.

A step plan (`batch_plan.plan_step` / `batch_plan.plan_epoch`) says which samples each rank
puts in each micro-batch; `micro_batch_losses` turns one rank's share into
model inputs and yields each micro-batch's weighted loss, so the caller decides
what to do with it (backward and `engine.step()` when training, a running sum
when evaluating). An empty micro-batch still runs a weight-0 dummy row, so
every rank calls the model the same number of times (ZeRO-3 gathers parameters
inside each forward and would hang otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ochat.training_deepspeed.batch_plan import StepPlan, plan_step
from ochat.training_deepspeed.data import collate, supervised_target_count


def whole_set_plan(samples: Sequence, packing: bool, world_size: int = 1, micro_batch_size: int = 1) -> StepPlan:
    """One plan over every sample (an eval set), length-grouped or packed, spread evenly over the ranks."""
    lengths = [len(sample.token_ids) for sample in samples]
    supervised = [supervised_target_count(sample.supervise_mask) for sample in samples]
    slots = max(1, -(-len(samples) // (micro_batch_size * world_size)))
    grouping = "packing" if packing else "length"
    return plan_step(list(range(len(samples))), lengths, supervised, grouping, world_size, slots, micro_batch_size)


def micro_batch_losses(
    model,
    samples: Sequence,
    plan: StepPlan,
    rank: int,
    device,
    pad_token_id: int,
    packing: bool,
    loss_reduction: str = "token",
) -> Iterator[torch.Tensor]:
    """This rank's micro-batches of `plan`, collated and run through `model`: one weighted loss each."""
    from ochat.training_deepspeed.loss import weighted_loss

    for indices in plan.micro_batches[rank]:
        batch = collate(samples, indices, plan, pad_token_id, packing=packing, loss_reduction=loss_reduction)
        yield weighted_loss(model, batch, device)


def dataset_loss(
    model,
    samples: Sequence,
    device,
    pad_token_id: int,
    packing: bool = False,
    loss_reduction: str = "token",
    rank: int = 0,
    world_size: int = 1,
    micro_batch_size: int = 1,
) -> torch.Tensor:
    """This rank's share of the loss over a whole data set (sum across ranks for the total), without gradients."""
    plan = whole_set_plan(samples, packing, world_size, micro_batch_size)
    total = torch.zeros((), device=device, dtype=torch.float32)
    with torch.no_grad():
        for loss in micro_batch_losses(model, samples, plan, rank, device, pad_token_id, packing, loss_reduction):
            total += loss.float()
    return total
