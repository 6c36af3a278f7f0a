"""The memory planner: its arithmetic, DeepSpeed's own estimators, and a real run's measured peak."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ochat.training_deepspeed import plan
from ochat.training_deepspeed.model_shapes import ModelShape, hf_config_of, model_shape
from tests.helpers.training import launch_command, read_metrics, run_training

GB = 1e9


@pytest.fixture(scope="module")
def llama_13b() -> ModelShape:
    return model_shape(hf_config_of(model_config="llama-13b"))


def test_13b_matches_the_arithmetic_in_the_docstring(llama_13b):
    p = llama_13b.params
    assert 13.0e9 < p < 13.1e9
    full = plan.estimate(llama_13b, "full", num_gpus=1, micro_batch_size=1, context=2048)
    assert full.weights / GB == pytest.approx(26.0, abs=0.1)  # bf16 weights
    # the usual 16 B/param: 2 weights + 2 bf16 gradients + 12 Adam (fp32 master, momentum, variance) = 208 GB
    assert (full.weights + 2 * p + full.optimizer) / GB == pytest.approx(208, rel=0.01)
    assert full.optimizer == 12 * p and full.gradients == 6 * p  # + DeepSpeed's fp32 gradient partition
    assert (full.weights + full.gradients + full.optimizer) / GB == pytest.approx(260, rel=0.01)
    eight = plan.estimate(llama_13b, "full", num_gpus=8, micro_batch_size=1, context=2048)
    assert (eight.weights + eight.gradients + eight.optimizer) / GB == pytest.approx(26 + 18 * 13.02 / 8, rel=0.01)
    lora = plan.estimate(llama_13b, "lora", num_gpus=1, micro_batch_size=1, context=2048, lora_rank=64)
    assert 0.2e9 < lora.trainable_params < 0.3e9 and lora.total < 40 * GB
    qlora = plan.estimate(
        llama_13b, "qlora", num_gpus=1, micro_batch_size=1, context=2048, lora_rank=64, quantized=True
    )
    assert 6 * GB < qlora.weights < 9 * GB


@pytest.mark.parametrize("num_gpus", [1, 8])
def test_model_states_agree_with_deepspeeds_estimators(llama_13b, num_gpus):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    p = llama_13b.params
    common = dict(num_gpus=num_gpus, micro_batch_size=1, context=2048)

    def model_states(row):
        return row.weights + row.gradients + row.optimizer

    _, zero2_gpu = estimate_zero2_model_states_mem_needs(p, num_gpus_per_node=num_gpus, cpu_offload=False)
    assert model_states(plan.estimate(llama_13b, "z2", zero_stage=2, **common)) == pytest.approx(zero2_gpu, rel=1e-6)
    _, offload_gpu = estimate_zero2_model_states_mem_needs(p, num_gpus_per_node=num_gpus, cpu_offload=True)
    offload = plan.estimate(llama_13b, "z2o", zero_stage=2, offload_optimizer=True, **common)
    assert model_states(offload) == pytest.approx(offload_gpu, rel=1e-6)
    offload_cpu, _ = estimate_zero2_model_states_mem_needs(
        p, num_gpus_per_node=num_gpus, cpu_offload=True, additional_buffer_factor=1.0
    )
    assert offload.host == pytest.approx(offload_cpu, rel=1e-6) if num_gpus <= 4 else offload.host < offload_cpu
    _, zero3_gpu, _ = estimate_zero3_model_states_mem_needs(
        p, llama_13b.largest_layer_params, num_gpus_per_node=num_gpus, cpu_offload=False, cpu_offload_params=False
    )
    # DeepSpeed's ZeRO-3 estimator counts 18 B/param/N; ours adds the 2 B bf16 gradient partition it leaves out
    assert model_states(plan.estimate(llama_13b, "z3", zero_stage=3, **common)) == pytest.approx(zero3_gpu, rel=0.15)


def test_cli_prints_which_setups_fit_13b_on_one_40gb_card(run_module_output):
    output = run_module_output(
        "ochat.training_deepspeed.plan", "--model_config", "llama-13b", "--num_gpus", "1", "--gpu_memory_gb", "40"
    )
    rows = {line[:42].strip(): line.split()[-1] for line in output.splitlines() if line[:4] in ("full", "LoRA", "QLoR")}
    assert rows["full, ZeRO-2"] == "no" and rows["full, ZeRO-3"] == "no"
    assert rows["LoRA r=64, ZeRO-2"] == "yes" and rows["QLoRA r=64 (4-bit base)"] == "yes"
    assert "13.02B parameters" in output


def test_model_path_plans_from_the_config_alone(tiny_model_dir, tmp_path):
    shutil.copy(os.path.join(tiny_model_dir, "config.json"), tmp_path / "config.json")  # no weights at all
    shape = model_shape(hf_config_of(model_path=str(tmp_path)))
    from transformers import AutoModelForCausalLM

    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())
    assert shape.params == real


@pytest.fixture
def run_module_output():
    import subprocess
    import sys

    def run(module, *args):
        result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run


def _small_llama(tiny_model_dir: str, out: str) -> str:
    """A ~27M-parameter LLaMA with the tiny model's tokenizer: big enough that model state dominates the increment."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shutil.copytree(tiny_model_dir, out, ignore=shutil.ignore_patterns("*.safetensors"))
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.update(
        dict(
            hidden_size=512,
            intermediate_size=1376,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=8,
            head_dim=64,
        )
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


def test_plan_is_within_25_percent_of_a_real_runs_measured_peak(tiny_model_dir, tmp_path):
    """Two ZeRO-2 ranks in fp32: planned total vs rank 0's peak resident memory minus what was resident before."""
    model_dir = _small_llama(tiny_model_dir, str(tmp_path / "small"))
    context = 512
    samples = [
        [[1] + [5 + (i + k) % 1900 for k in range(context - 1)], [k >= context // 2 for k in range(context)]]
        for i in range(16)
    ]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "openchat_tiny.train.json").write_text(json.dumps(samples))
    save_path = str(tmp_path / "out")
    # glibc keeps freed blocks below its (growing) mmap threshold in the heap; a fixed threshold returns freed
    # tensors to the OS, so the resident set follows live tensors as a GPU's allocated-memory figure does
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    try:
        run_training(
            *launch_command(
                model_dir,
                str(data_dir),
                save_path,
                "--epochs",
                "1",
                "--train_batch_size",
                "8",
                "--micro_batch_size",
                "2",
                "--max_steps",
                "2",
            ),
            log_path=str(tmp_path / "launcher.log"),
        )
    finally:
        del os.environ["MALLOC_MMAP_THRESHOLD_"]
    steps, _ = read_metrics(save_path)
    measured = (steps[2]["peak_memory_gb"] - steps[2]["runtime_memory_gb"]) * GB
    shape = model_shape(hf_config_of(model_path=model_dir))
    planned = plan.estimate(shape, "run", num_gpus=2, micro_batch_size=2, context=context, dtype_bytes=4).total
    assert planned == pytest.approx(measured, rel=0.25), (planned / GB, measured / GB)
