"""Training settings that cannot work are refused in one line, before any model loads or process group waits.

In-process and fast; the launched runs are in test_training.py and test_training_lora.py.
"""

from __future__ import annotations

import json
import os

import pytest

from ochat.training_deepspeed import checkpoint, plan, preflight, train
from ochat.training_deepspeed.arguments import parse_args
from ochat.training_deepspeed.deepspeed_settings import TrainingSetupError, resolve_deepspeed_config
from ochat.training_deepspeed.model_shapes import BUILTIN_CONFIGS

MODEL_TYPE = "openchat_tiny"


def _common(model_dir, data_path, save_path):
    return ["--model_type", MODEL_TYPE, "--model_path", model_dir, "--data_path", data_path, "--save_path", save_path]


def _main_error(capsys, *args) -> str:
    import torch.distributed as dist

    with pytest.raises(SystemExit) as raised:
        train.main(list(args))
    assert raised.value.code == 2
    assert not dist.is_initialized()
    return capsys.readouterr().err


def _write_data(folder) -> None:
    with open(os.path.join(folder, f"{MODEL_TYPE}.train.json"), "w") as handle:
        json.dump([[[1, 5, 6, 7], [False, False, True, True]]], handle)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--save_every", "-1"], "--save_every must be 0 (never) or a positive"),
        (["--keep_checkpoints", "0"], "--keep_checkpoints must be at least 1"),
        (["--collective_timeout", "0"], "--collective_timeout must be a positive"),
        (["--load_in_4bit"], "add --lora_rank"),
        (["--lora_rank", "-2"], "--lora_rank must be 0"),
    ],
)
def test_impossible_flags_are_refused_by_the_parser(capsys, tmp_path, flags, message):
    with pytest.raises(SystemExit) as raised:
        parse_args(_common("m", "d", str(tmp_path)) + flags)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_unwritable_save_path_is_found_before_data_or_model(capsys, tiny_model_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # no training data exists either: the save path must be the first thing checked
    err = _main_error(capsys, *_common(tiny_model_dir, str(tmp_path / "no_data"), str(blocker / "out")))
    assert "cannot write to --save_path" in err and "a_file/out" in err
    assert "training data" not in err


def test_4bit_on_a_cpu_fails_at_once_with_the_reason(capsys, tiny_model_dir, tmp_path):
    _write_data(tmp_path)
    err = _main_error(
        capsys, *_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")), "--lora_rank", "8", "--load_in_4bit"
    )
    assert "--load_in_4bit (QLoRA) needs a CUDA GPU" in err


def _config(tmp_path, **fields) -> str:
    path = tmp_path / "ds.json"
    path.write_text(
        json.dumps(
            {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2}, **fields}
        )
    )
    return str(path)


def _resolve(tmp_path, config_path, *flags, world_size=2, on_cuda=False):
    args = parse_args(_common("m", "d", str(tmp_path / "out")) + list(flags))
    return resolve_deepspeed_config(config_path, args, world_size=world_size, on_cuda=on_cuda)


def test_a_typo_in_a_deepspeed_key_is_refused_with_the_likely_key(tmp_path):
    with pytest.raises(TrainingSetupError, match="unknown key 'gradient_clipingg'; did you mean 'gradient_clipping'"):
        _resolve(tmp_path, _config(tmp_path, gradient_clipingg=1.0))


def test_an_unrelated_unknown_key_is_named_in_a_warning(tmp_path, capsys):
    resolved = _resolve(tmp_path, _config(tmp_path, my_team_note="fast run", gradient_clipping=0.5))
    assert "key 'my_team_note' is not a DeepSpeed setting" in capsys.readouterr().err
    assert resolved["gradient_clipping"] == 0.5


def test_zero3_and_offload_flags_map_to_deepspeed_sections(tmp_path):
    resolved = _resolve(
        tmp_path,
        _config(tmp_path),
        "--zero_stage",
        "3",
        "--offload_optimizer",
        "cpu",
        "--offload_params",
        "cpu",
        on_cuda=True,
    )
    zero = resolved["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert zero["offload_param"] == {"device": "cpu", "pin_memory": True}
    on_cpu = _resolve(tmp_path, _config(tmp_path), "--offload_optimizer", "cpu")
    assert on_cpu["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert on_cpu["zero_force_ds_cpu_optimizer"] is False  # CPU ranks keep torch's AdamW


def test_parameter_offload_needs_zero3(tmp_path):
    with pytest.raises(TrainingSetupError, match="--offload_params needs ZeRO stage 3"):
        _resolve(tmp_path, _config(tmp_path), "--offload_params", "cpu")


def test_4bit_with_zero3_is_refused(tmp_path):
    with pytest.raises(TrainingSetupError, match="--load_in_4bit with ZeRO stage 3 is not supported"):
        _resolve(tmp_path, _config(tmp_path), "--zero_stage", "3", "--lora_rank", "8", "--load_in_4bit")


def test_a_setup_that_will_not_fit_is_warned_about_at_start(tmp_path):
    """The start-up plan for a 70B full fine-tune on one CPU rank exceeds this machine's memory: a warning."""
    from transformers import AutoConfig

    from ochat.config import Sample, get_model_config

    fields = dict(BUILTIN_CONFIGS["llama-70b"])
    AutoConfig.for_model(fields.pop("model_type"), **fields).save_pretrained(tmp_path)  # config.json only
    args = parse_args(_common(str(tmp_path), "d", str(tmp_path / "out")))
    setup = preflight.Setup(
        config=get_model_config("openchat"),
        tokenizer=None,
        train_samples=[Sample([1] * 64, [True] * 64)],
        eval_samples=[],
        train_file="t",
        eval_file=None,
        world_size=1,
        on_cuda=False,
        deepspeed_config={"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2}},
        steps_per_epoch=1,
        total_steps=1,
    )
    messages = []
    plan.warn_if_it_will_not_fit(args, setup, bf16=False, world_size=1, log=messages.append)
    assert messages[0].startswith("memory plan per rank: weights 27")  # 69B parameters x 4 bytes
    assert any(
        message.startswith("WARNING: this setup needs about") and "--model_path" in message for message in messages
    )


# ----------------------------------------------------------------------------- data, outputs, resume, LoRA


def _write_samples(folder, samples) -> str:
    with open(os.path.join(folder, f"{MODEL_TYPE}.train.json"), "w") as handle:
        json.dump(samples, handle)
    return str(folder)


@pytest.mark.parametrize(
    "samples, message",
    [
        ([[[1, 5, 6, 7], ["false", "false", "true", "true"]]], "supervise mask value 'false'"),
        ([[[1, 5, 6, 7], [False, False, True, True], [0.0, 0.0, 0.0, 0.0]]], "weight 0.0 at position 2"),
        ([[[1, -5, 6, 7], [False, False, True, True]]], "has token id -5"),
    ],
)
def test_data_that_would_train_wrongly_is_refused_before_any_rank_starts(
    capsys, tiny_model_dir, tmp_path, samples, message
):
    data = _write_samples(tmp_path, samples)
    err = _main_error(capsys, *_common(tiny_model_dir, data, str(tmp_path / "out")))
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "flag, value", [("--lora_alpha", "16"), ("--lora_dropout", "0.1"), ("--lora_target_modules", "q_proj")]
)
def test_lora_flags_without_a_lora_rank_are_refused(capsys, tmp_path, flag, value):
    with pytest.raises(SystemExit):
        parse_args(_common("m", "d", str(tmp_path)) + [flag, value])
    assert f"{flag} configures LoRA adapters, but --lora_rank is 0" in capsys.readouterr().err


def test_a_new_run_into_a_used_save_path_is_refused(capsys, tiny_model_dir, tmp_path):
    _write_data(tmp_path)
    save_path = tmp_path / "out"
    save_path.mkdir()
    (save_path / "metrics.jsonl").write_text('{"step": 1}\n')
    err = _main_error(capsys, *_common(tiny_model_dir, str(tmp_path), str(save_path)))
    assert "holds an earlier run (metrics.jsonl); pass --resume" in err


@pytest.mark.parametrize(
    "blocker, is_folder, flags, message",
    [
        ("checkpoints", False, ["--resume"], "in the way of the run's checkpoints/ folder"),
        ("adapter", False, ["--resume", "--lora_rank", "4"], "in the way of the run's adapter/ folder"),
        ("metrics.jsonl", True, ["--resume"], "metrics.jsonl is not a regular file"),
    ],
)
def test_a_file_in_the_way_of_an_output_is_found_before_training(
    capsys, tiny_model_dir, tmp_path, blocker, is_folder, flags, message
):
    _write_data(tmp_path)
    save_path = tmp_path / "out"
    save_path.mkdir()
    (save_path / blocker).mkdir() if is_folder else (save_path / blocker).write_text("x")
    err = _main_error(capsys, *_common(tiny_model_dir, str(tmp_path), str(save_path)), *flags)
    assert message in err


def test_a_lora_target_the_model_lacks_is_one_line_before_any_rank_starts(capsys, tiny_model_dir, tmp_path):
    _write_data(tmp_path)
    err = _main_error(
        capsys,
        *_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")),
        "--lora_rank",
        "4",
        "--lora_target_modules",
        "q_proj,qkv_proj",
    )
    assert "--lora_target_modules: qkv_proj is not a module" in err and "q_proj" in err.split("its modules:")[1]
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "change, key",
    [
        ({"world_size": 4}, "world_size: checkpoint 4, now 1"),
        ({"zero_stage": 3}, "zero_stage: checkpoint 3, now 2"),
        ({"model_type": "openchat_8192_tiny"}, "model_type: checkpoint 'openchat_8192_tiny'"),
        ({"model_path": "/elsewhere/model"}, "model_path: checkpoint '/elsewhere/model'"),
        ({"lora_rank": 8, "lora_alpha": 16.0}, "lora_rank: checkpoint 8, now 0"),
    ],
)
def test_resume_with_other_settings_than_the_checkpoint_is_refused_at_start(
    capsys, tiny_model_dir, tmp_path, change, key
):
    _write_data(tmp_path)
    save_path = tmp_path / "out"
    args = parse_args(_common(tiny_model_dir, str(tmp_path), str(save_path)))
    signature = preflight.prepare(args).run_signature
    checkpoint = save_path / "checkpoints" / "step_2"
    checkpoint.mkdir(parents=True)
    (save_path / "checkpoints" / "latest").write_text("step_2")
    (checkpoint / "run_signature.json").write_text(json.dumps({**signature, **change}))
    err = _main_error(capsys, *_common(tiny_model_dir, str(tmp_path), str(save_path)), "--resume")
    assert "cannot resume" in err and key in err and len(err.strip().splitlines()) == 1


def test_lora_resume_with_other_targets_or_alpha_is_refused(tiny_model_dir, tmp_path):
    _write_data(tmp_path)
    lora = ["--lora_rank", "4", "--lora_alpha", "8", "--lora_target_modules", "q_proj,v_proj"]
    args = parse_args(_common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")) + lora)
    saved = preflight.prepare(args).run_signature
    args = parse_args(
        _common(tiny_model_dir, str(tmp_path), str(tmp_path / "out")) + ["--lora_rank", "4", "--lora_alpha", "16"]
    )
    differences = checkpoint.signature_differences(saved, preflight.prepare(args).run_signature)
    assert "lora_alpha: checkpoint 8.0, now 16.0" in differences
    assert "lora_target_modules: checkpoint 'q_proj,v_proj', now 'all-linear'" in differences
