"""What the training loss is: supervised tokens only, normalised over the global batch, the same packed or padded.

These run in one process on the tiny model; `test_training.py` drives the real DeepSpeed launcher.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from ochat.config import Sample, get_model_config
from ochat.models import load_model
from ochat.training_deepspeed import arguments, train
from ochat.training_deepspeed.arguments import parse_args
from ochat.training_deepspeed.batch_plan import plan_epoch, plan_step
from ochat.training_deepspeed.data import collate, supervised_target_count
from ochat.training_deepspeed.deepspeed_settings import resolve_deepspeed_config
from ochat.training_deepspeed.final_model import save_hf_checkpoint
from ochat.training_deepspeed.loss import IGNORE_INDEX, weighted_loss
from ochat.training_deepspeed.modeling import choose_attn_implementation
from ochat.training_deepspeed.steps import micro_batch_losses

MODEL_TYPE = "openchat_tiny"


def _sample(length: int, supervised_from: int, seed: int, vocab: int = 2000) -> Sample:
    generator = torch.Generator().manual_seed(seed)
    token_ids = [1] + torch.randint(3, vocab, (length - 1,), generator=generator).tolist()
    return Sample(token_ids, [index >= supervised_from for index in range(length)])


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    """Eight samples of very different lengths and supervised shares."""
    shapes = [(300, 40), (12, 5), (150, 149), (64, 10), (33, 20), (200, 100), (7, 3), (90, 45)]
    return [_sample(length, start, seed) for seed, (length, start) in enumerate(shapes)]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    torch.manual_seed(0)
    attn = choose_attn_implementation(packing=True, on_cuda=False)  # per-sample SDPA for packed, SDPA for padded
    model = load_model(get_model_config(MODEL_TYPE), tiny_model_dir, dtype=torch.float32, attn_implementation=attn)
    model.config.use_cache = False
    return model


def _plan(samples, indices, grouping="none", world_size=1, accumulation=1, micro=None):
    lengths = [len(sample.token_ids) for sample in samples]
    supervised = [supervised_target_count(sample.supervise_mask) for sample in samples]
    return plan_step(list(indices), lengths, supervised, grouping, world_size, accumulation, micro or len(indices))


def _loss_and_grads(model, samples, plan, rank=0, packing=False, loss_reduction="token"):
    """Sum of the weighted micro-batch losses of one rank (training's own loop), and the accumulated gradient."""
    model.zero_grad(set_to_none=True)
    total = 0.0
    for loss in micro_batch_losses(model, samples, plan, rank, "cpu", 0, packing, loss_reduction):
        loss.backward()
        total += loss.item()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    return total, grads


def _loss(model, samples, plan, loss_reduction="token") -> float:
    with torch.no_grad():
        return sum(loss.item() for loss in micro_batch_losses(model, samples, plan, 0, "cpu", 0, False, loss_reduction))


def _hand_computed_token_losses(model, token_ids, supervise_mask) -> torch.Tensor:
    """Plain PyTorch: the sample alone, log-softmax, -log p(next token) where the next token is supervised."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([token_ids]), use_cache=False).logits[0]
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    return torch.stack([-log_probs[t, token_ids[t + 1]] for t in range(len(token_ids) - 1) if supervise_mask[t + 1]])


def test_token_loss_equals_hand_computed_mean_over_supervised_tokens_of_long_and_short_sample(model):
    long_sample, short_sample = _sample(400, 50, seed=11), _sample(20, 12, seed=12)
    samples = [long_sample, short_sample]
    per_token = [_hand_computed_token_losses(model, sample.token_ids, sample.supervise_mask) for sample in samples]
    expected_token_mean = torch.cat(per_token).mean().item()
    expected_sample_mean = torch.stack([losses.mean() for losses in per_token]).mean().item()

    plan = _plan(samples, [0, 1])
    token_loss = _loss(model, samples, plan)
    sample_loss = _loss(model, samples, plan, loss_reduction="per_sample")

    assert token_loss == pytest.approx(expected_token_mean, rel=1e-5)
    assert sample_loss == pytest.approx(expected_sample_mean, rel=1e-5)
    assert abs(token_loss - sample_loss) > 1e-3  # the short answer weighs more per token under per_sample


def test_changing_labels_of_masked_out_positions_changes_nothing(model, samples):
    plan = _plan(samples, range(4))
    batch = collate(samples, [0, 1, 2, 3], plan, pad_token_id=0, packing=False)
    with torch.no_grad():
        reference = weighted_loss(model, batch, "cpu").item()
        ignored = batch["targets"] == IGNORE_INDEX
        scrambled = dict(batch, targets=torch.where(ignored, torch.randint(3, 2000, ignored.shape), batch["targets"]))
        assert weighted_loss(model, scrambled, "cpu").item() == pytest.approx(reference, rel=1e-6)
        # the weights, not only ignore_index, keep them out: a wrong weight on a masked position would show here
        assert (batch["weights"][ignored] == 0).all()


def test_padding_tokens_change_nothing(model, samples):
    plan = _plan(samples, range(4))
    with torch.no_grad():
        pad_zero = weighted_loss(model, collate(samples, [0, 1, 2, 3], plan, pad_token_id=0, packing=False), "cpu")
        pad_other = weighted_loss(model, collate(samples, [0, 1, 2, 3], plan, pad_token_id=1234, packing=False), "cpu")
    assert pad_other.item() == pytest.approx(pad_zero.item(), rel=1e-5)


def test_packed_loss_and_gradients_equal_padded(model, samples):
    plan = _plan(samples, range(len(samples)))
    padded_loss, padded_grads = _loss_and_grads(model, samples, plan, packing=False)
    packed_loss, packed_grads = _loss_and_grads(model, samples, plan, packing=True)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    torch.testing.assert_close(packed_grads, padded_grads, rtol=1e-4, atol=1e-7)


def test_packed_row_restarts_positions_and_keeps_samples_apart(samples):
    plan = _plan(samples, [1, 3, 6])
    batch = collate(samples, [1, 3, 6], plan, pad_token_id=0, packing=True)
    lengths = [len(samples[i].token_ids) for i in (1, 3, 6)]
    assert batch["attention_mask"] is None
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert batch["position_ids"][0].tolist() == [p for n in lengths for p in range(n)]
    assert batch["cu_seq_lens"].tolist() == [0, lengths[0], lengths[0] + lengths[1], sum(lengths)]
    # the last position of each sample predicts nothing (no target leaks across a boundary)
    for end in batch["cu_seq_lens"][1:].tolist():
        assert batch["targets"][0, end - 1].item() == IGNORE_INDEX


@pytest.mark.parametrize("loss_reduction", ["token", "per_sample"])
def test_four_accumulated_micro_batches_give_the_gradient_of_one_batch(model, samples, loss_reduction):
    one_batch = _plan(samples, range(8), accumulation=1, micro=8)
    accumulated = _plan(samples, range(8), grouping="length", accumulation=4, micro=2)
    assert sum(1 for m in accumulated.micro_batches[0] if m) == 4
    loss_one, grads_one = _loss_and_grads(model, samples, one_batch, loss_reduction=loss_reduction)
    loss_four, grads_four = _loss_and_grads(model, samples, accumulated, loss_reduction=loss_reduction)
    assert loss_four == pytest.approx(loss_one, rel=1e-5)
    torch.testing.assert_close(grads_four, grads_one, rtol=1e-4, atol=1e-7)


def test_two_ranks_share_of_the_gradient_adds_up_to_one_batch(model, samples):
    """Summed over ranks (what DeepSpeed's averaging times world size gives) the weighted grads equal one batch."""
    one_batch = _plan(samples, range(8))
    two_ranks = _plan(samples, range(8), grouping="length", world_size=2, accumulation=2, micro=2)
    loss_one, grads_one = _loss_and_grads(model, samples, one_batch)
    rank_results = [_loss_and_grads(model, samples, two_ranks, rank=rank) for rank in (0, 1)]
    assert sum(loss for loss, _ in rank_results) == pytest.approx(loss_one, rel=1e-5)
    torch.testing.assert_close(rank_results[0][1] + rank_results[1][1], grads_one, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("grouping", ["none", "length", "packing"])
def test_every_sample_is_trained_once_per_epoch_in_the_same_order_on_every_call(grouping):
    lengths = [5 + (i * 37) % 300 for i in range(101)]
    supervised = [length // 2 for length in lengths]
    plan = plan_epoch(
        lengths,
        supervised,
        epoch=3,
        seed=7,
        train_batch_size=16,
        grouping=grouping,
        world_size=2,
        accumulation_steps=2,
        micro_batch_size=4,
    )
    again = plan_epoch(
        lengths,
        supervised,
        epoch=3,
        seed=7,
        train_batch_size=16,
        grouping=grouping,
        world_size=2,
        accumulation_steps=2,
        micro_batch_size=4,
    )
    seen = [i for step in plan for rank in step.micro_batches for micro in rank for i in micro]
    assert sorted(seen) == list(range(101))
    assert len(plan) == 7  # 6 full global batches and one of 5
    assert [step.micro_batches for step in plan] == [step.micro_batches for step in again]
    assert all(len(step.micro_batches) == 2 and all(len(rank) == 2 for rank in step.micro_batches) for step in plan)


def test_length_grouping_reduces_padding():
    lengths = [5 + (i * 37) % 300 for i in range(128)]
    supervised = [1] * 128

    def padding(grouping):
        plan = plan_epoch(lengths, supervised, 0, 0, 64, grouping, 2, 4, 8)
        return sum(1 - step.tokens / step.padded_tokens for step in plan) / len(plan)

    assert padding("length") < padding("none") / 3
    assert padding("packing") == 0


def _write(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def _run_main_expecting_error(capsys, *args) -> str:
    import torch.distributed as dist

    with pytest.raises(SystemExit) as raised:
        train.main(list(args))
    assert raised.value.code == 2
    assert not dist.is_initialized()  # failed before any process group could wait for peers
    return capsys.readouterr().err


def _common(model_dir, data_path, save_path, model_type=MODEL_TYPE):
    return ["--model_type", model_type, "--model_path", model_dir, "--data_path", data_path, "--save_path", save_path]


def test_unknown_model_type_is_a_clear_error_before_the_process_group(capsys, tiny_model_dir, tmp_path):
    err = _run_main_expecting_error(
        capsys, *_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out"), "llama_huge")
    )
    assert "unknown model type 'llama_huge'" in err and "openchat_tiny" in err


def test_missing_training_data_is_a_clear_error(capsys, tiny_model_dir, tmp_path):
    err = _run_main_expecting_error(capsys, *_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")))
    assert f"{MODEL_TYPE}.train.json" in err and "not found" in err


def test_token_ids_beyond_the_vocabulary_are_a_clear_error(capsys, tiny_model_dir, tmp_path):
    _write(tmp_path / f"{MODEL_TYPE}.train.json", [[[1, 5, 40000], [False, True, True]]])
    err = _run_main_expecting_error(capsys, *_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")))
    assert "token id 40000" in err and "another model type" in err


def test_empty_train_set_is_a_clear_error(capsys, tiny_model_dir, tmp_path):
    train_file = tmp_path / f"{MODEL_TYPE}.train.json"
    _write(train_file, [])
    err = _run_main_expecting_error(capsys, *_common(tiny_model_dir, str(train_file), str(tmp_path / "out")))
    assert "no samples" in err


def test_global_batch_that_does_not_split_over_ranks_is_a_clear_error(capsys, tiny_model_dir, tmp_path, monkeypatch):
    _write(tmp_path / f"{MODEL_TYPE}.train.json", [[[1, 5, 6], [False, True, True]]])
    monkeypatch.setenv("WORLD_SIZE", "2")
    err = _run_main_expecting_error(
        capsys,
        *_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")),
        "--train_batch_size",
        "10",
        "--micro_batch_size",
        "4",
    )
    assert "not a multiple of micro-batch 4 x 2 ranks" in err


def test_bundled_config_resolves_to_zero2_fp32_on_cpu_and_bf16_on_gpu(tiny_model_dir, tmp_path):
    args = parse_args(_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")))
    on_cpu = resolve_deepspeed_config(args.deepspeed_config, args, world_size=2, on_cuda=False)
    on_gpu = resolve_deepspeed_config(args.deepspeed_config, args, world_size=8, on_cuda=True)
    assert on_cpu["train_batch_size"] == on_gpu["train_batch_size"] == 128
    assert on_cpu["gradient_accumulation_steps"] * on_cpu["train_micro_batch_size_per_gpu"] * 2 == 128
    assert on_gpu["gradient_accumulation_steps"] * on_gpu["train_micro_batch_size_per_gpu"] * 8 == 128
    assert on_cpu["zero_optimization"]["stage"] == 2 and on_cpu["gradient_clipping"] == 1.0
    assert on_cpu["bf16"]["enabled"] is False and on_gpu["bf16"]["enabled"] is True
    assert os.path.samefile(
        args.deepspeed_config, os.path.join(os.path.dirname(arguments.__file__), "deepspeed_config.json")
    )


def test_checkpoint_of_an_8192_type_keeps_the_extended_context_and_stops_on_eot(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, GenerationConfig

    from ochat.config import load_tokenizer

    config = get_model_config("openchat_8192_tiny")
    model = load_model(config, tiny_model_dir, dtype=torch.float32)
    tokenizer = load_tokenizer(config, tiny_model_dir)
    save_hf_checkpoint(model, config, tokenizer, tiny_model_dir, str(tmp_path))
    assert AutoConfig.from_pretrained(tmp_path).max_position_embeddings == 8192
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id[0] == tokenizer.eot_token_id
    assert (tmp_path / "tokenizer.model").is_file()
    assert load_model(config, str(tmp_path)).config.max_position_embeddings == 8192
