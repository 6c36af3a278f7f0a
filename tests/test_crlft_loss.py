"""The C-RLFT loss: sum of weight x cross entropy over supervised tokens / the global batch's total weight."""

from __future__ import annotations

import json

import pytest
import torch

from ochat.config import Sample, get_model_config
from ochat.models import load_model
from ochat.training_deepspeed.batch_plan import plan_step
from ochat.training_deepspeed.data import DataError, collate, load_samples, supervised_target_count
from ochat.training_deepspeed.loss import weighted_loss
from ochat.training_deepspeed.modeling import choose_attn_implementation


def _sample(length: int, supervised_from: int, seed: int) -> Sample:
    generator = torch.Generator().manual_seed(seed)
    token_ids = [1] + torch.randint(3, 2000, (length - 1,), generator=generator).tolist()
    return Sample(token_ids, [index >= supervised_from for index in range(length)])


def _weighted(sample: Sample, weight: float) -> Sample:
    mask = sample.supervise_mask
    return Sample(sample.token_ids, mask, [weight if flag else 0.0 for flag in mask])


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    attn = choose_attn_implementation(packing=True, on_cuda=False)
    model = load_model(get_model_config("openchat_tiny"), tiny_model_dir, dtype=torch.float32, attn_implementation=attn)
    model.config.use_cache = False
    return model.eval()


@pytest.fixture(scope="module")
def pairs():
    shapes = [(120, 40), (12, 5), (60, 59), (33, 20), (90, 45), (7, 3)]
    return [_sample(length, start, seed) for seed, (length, start) in enumerate(shapes)]


def _plan(samples, grouping="none", world_size=1, accumulation=1, micro=None):
    lengths = [len(sample.token_ids) for sample in samples]
    supervised = [supervised_target_count(sample.supervise_mask) for sample in samples]
    return plan_step(
        list(range(len(samples))), lengths, supervised, grouping, world_size, accumulation, micro or len(samples)
    )


def _step_loss(model, samples, plan, packing=False, loss_reduction="token") -> float:
    """The step loss: every rank's micro-batches summed, as DeepSpeed's gradient all-reduce sums them."""
    with torch.no_grad():
        return sum(
            weighted_loss(
                model, collate(samples, indices, plan, 0, packing=packing, loss_reduction=loss_reduction), "cpu"
            ).item()
            for rank_batches in plan.micro_batches
            for indices in rank_batches
        )


@pytest.mark.parametrize("loss_reduction", ["token", "per_sample"])
@pytest.mark.parametrize("packing", [False, True])
def test_all_one_weights_give_exactly_the_unweighted_loss(model, pairs, packing, loss_reduction):
    weighted = [_weighted(pair, 1.0) for pair in pairs]
    plain_plan, weighted_plan = _plan(pairs), _plan(weighted)
    plain = collate(pairs, list(range(len(pairs))), plain_plan, 0, packing=packing, loss_reduction=loss_reduction)
    ones = collate(weighted, list(range(len(pairs))), weighted_plan, 0, packing=packing, loss_reduction=loss_reduction)
    assert torch.equal(plain["weights"], ones["weights"]) and torch.equal(plain["targets"], ones["targets"])
    with torch.no_grad():
        assert weighted_loss(model, plain, "cpu").item() == weighted_loss(model, ones, "cpu").item()


def test_three_field_file_of_ones_loads_to_the_same_batches_as_the_pair_file(pairs, tmp_path):
    pair_file, triple_file = tmp_path / "pairs.json", tmp_path / "triples.json"
    pair_file.write_text(json.dumps([[pair.token_ids, pair.supervise_mask] for pair in pairs]))
    triple_file.write_text(
        json.dumps(
            [[pair.token_ids, pair.supervise_mask, [1.0 if f else 0.0 for f in pair.supervise_mask]] for pair in pairs]
        )
    )
    from_pairs, from_triples = load_samples(str(pair_file), 2048, 4096), load_samples(str(triple_file), 2048, 4096)
    assert from_pairs == from_triples
    batches = [
        collate(samples, [0, 1, 2], _plan(samples[:3]), 0, packing=False)["weights"]
        for samples in (from_pairs[:3], from_triples[:3])
    ]
    assert torch.equal(*batches)


def _hand_computed_token_losses(model, token_ids, supervise_mask) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([token_ids]), use_cache=False).logits[0]
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    return torch.stack([-log_probs[t, token_ids[t + 1]] for t in range(len(token_ids) - 1) if supervise_mask[t + 1]])


@pytest.mark.parametrize("grouping", ["none", "length", "packing"])
def test_two_class_loss_equals_the_hand_computed_reward_weighted_mean(model, pairs, grouping):
    """Expert samples weigh 1.0 and sub-optimal ones 0.1: loss = (sum CE_expert + 0.1 sum CE_sub) / (n_e + 0.1 n_s)."""
    rewards = [1.0, 0.1, 1.0, 0.1, 0.1, 1.0]
    samples = [_weighted(pair, reward) for pair, reward in zip(pairs, rewards)]
    per_sample = [_hand_computed_token_losses(model, pair.token_ids, pair.supervise_mask) for pair in pairs]
    numerator = sum(reward * losses.sum() for reward, losses in zip(rewards, per_sample))
    denominator = sum(reward * len(losses) for reward, losses in zip(rewards, per_sample))
    expected = (numerator / denominator).item()

    plan = _plan(samples, grouping, world_size=2, accumulation=2, micro=2)  # 2 ranks x 2 micro-batches
    loss = _step_loss(model, samples, plan, packing=grouping == "packing")
    assert loss == pytest.approx(expected, rel=1e-5)
    unweighted = torch.cat(per_sample).mean().item()
    assert abs(loss - unweighted) > 1e-4  # the rewards changed it


def test_weights_on_unsupervised_positions_or_negative_weights_are_refused(tmp_path):
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps([[[1, 5, 6], [False, True, True], [0.5, 1.0, 1.0]]]))
    with pytest.raises(DataError, match="supervise mask is false"):
        load_samples(str(bad_file), 2048, 4096)
    bad_file.write_text(json.dumps([[[1, 5, 6], [False, True, True], [0.0, -1.0, 1.0]]]))
    with pytest.raises(DataError, match="weights are numbers >= 0"):
        load_samples(str(bad_file), 2048, 4096)
    bad_file.write_text(json.dumps([[[1, 5, 6], [False, True, True], [0.0, 1.0]]]))
    with pytest.raises(DataError, match="equal-length"):
        load_samples(str(bad_file), 2048, 4096)
