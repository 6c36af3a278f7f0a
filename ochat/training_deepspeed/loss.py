"""The training loss in one place: each target token's weight, the weighted cross entropy, and the factor
that undoes DeepSpeed's own averaging.

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

DeepSpeed divides each micro-batch's loss by the accumulation steps and averages
gradients over the ranks; these weights already normalise over the whole global
batch, so the training step multiplies each share by `deepspeed_averaging_undone`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ochat.config.conversation_template import Sample
from ochat.training_deepspeed.batch_plan import StepPlan
from ochat.training_deepspeed.modeling import model_inputs

IGNORE_INDEX = -100
LOSS_REDUCTIONS = ("token", "per_sample")


def target_token_weights(sample: Sample) -> list[float]:
    """Each position's target weight (that of the next token where it is supervised), aligned with `data`'s targets."""
    token_ids, supervise_mask, weights = sample.token_ids, sample.supervise_mask, sample.weights
    return [weights[t + 1] if supervise_mask[t + 1] else 0.0 for t in range(len(token_ids) - 1)] + [0.0]


def step_target_weight(samples: Sequence[Sample], plan: StepPlan) -> float:
    """Sum of target weights over the global batch (every rank's micro-batches); the same on every rank."""
    if plan.target_weight is None:
        plan.target_weight = sum(
            sum(target_token_weights(samples[index]))
            for rank_batches in plan.micro_batches
            for indices in rank_batches
            for index in indices
        )
    return plan.target_weight


def loss_weights(
    sample: Sample, supervised_count: int, samples: Sequence[Sample], plan: StepPlan, loss_reduction: str
) -> list[float]:
    """Each position's share of the step loss (see the module docstring)."""
    if supervised_count == 0:
        return [0.0] * len(sample.token_ids)
    if loss_reduction == "token":
        normaliser = step_target_weight(samples, plan)
    else:
        normaliser = supervised_count * plan.samples_with_targets
    return [weight / normaliser if weight else 0.0 for weight in target_token_weights(sample)]


def token_losses(model, batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position cross entropy (0 where ignored) and the target mask, both flat and in fp32."""
    logits = model(**model_inputs(batch, device)).logits
    targets = batch["targets"].to(device).reshape(-1)
    losses = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return losses, targets != IGNORE_INDEX


def weighted_loss(model, batch: dict, device) -> torch.Tensor:
    """This micro-batch's share of the step loss: sum of weight x cross entropy (see the weights above)."""
    losses, _ = token_losses(model, batch, device)
    return (losses * batch["weights"].to(device).reshape(-1)).sum()


def deepspeed_averaging_undone(accumulation_steps: int, world_size: int) -> int:
    """What each micro-batch's share is multiplied by before `engine.backward`, so the gradient is that of the
    step's loss (DeepSpeed divides by the accumulation steps and averages over the ranks)."""
    return accumulation_steps * world_size
