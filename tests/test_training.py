"""The real launcher: `deepspeed --num_gpus=2 --module ochat.training_deepspeed.train` on 2 CPU ranks, tiny model.

Each run starts two ranks (a few seconds of imports each; the first run on a machine
also builds DeepSpeed's shared-memory comm op with g++, about 30 s), so the runs are
shared between tests through module fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from ochat.config import get_model_config, load_tokenizer, render_conversation
from ochat.models import load_model
from ochat.training_deepspeed.loss import IGNORE_INDEX
from tests.helpers.repo import REPO_ROOT
from tests.helpers.training import (
    MODEL_TYPE,
    RUN_TIMEOUT_S,
    launch_command,
    leftover_shared_memory,
    read_metrics,
    run_training,
    training_env,
)

SHORT_RUN = [
    "--length_grouping",
    "--epochs",
    "1",
    "--train_batch_size",
    "8",
    "--micro_batch_size",
    "2",
    "--max_steps",
    "8",
    "--save_every",
    "2",
    "--lr",
    "2e-3",
]


@pytest.fixture(scope="module")
def reference_run(tiny_model_dir, tiny_data_dir, tmp_path_factory) -> str:
    """Eight optimizer steps on the bundled corpus, uninterrupted."""
    save_path = str(tmp_path_factory.mktemp("reference_run"))
    run_training(
        *launch_command(tiny_model_dir, tiny_data_dir, save_path, *SHORT_RUN),
        log_path=os.path.join(save_path, "launcher.log"),
    )
    return save_path


def test_two_cpu_ranks_train_and_the_loss_falls(reference_run):
    steps, evals = read_metrics(reference_run)
    assert sorted(steps) == list(range(1, 9))
    first, last = steps[1]["loss"], steps[8]["loss"]
    assert last < first - 0.3, f"loss did not fall: {first:.3f} -> {last:.3f}"
    assert evals and evals[-1]["step"] == 8 and evals[-1]["eval_loss"] < first
    assert all(record["samples"] == 8 and record["tokens_per_s"] > 0 for record in steps.values())
    log = open(os.path.join(reference_run, "launcher.log")).read()
    assert "no GPU found: training on CPU with 2 rank(s), backend gloo, fp32" in log
    assert "memory plan per rank: weights" in log and "WARNING" not in log.split("memory plan per rank")[1][:400]
    assert all(record["peak_memory_gb"] > record["runtime_memory_gb"] > 0 for record in steps.values())


def test_saved_model_loads_in_transformers_and_generates(reference_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(reference_run)
    tokenizer = AutoTokenizer.from_pretrained(reference_run)
    eot_id = tokenizer.convert_tokens_to_ids("<|end_of_turn|>")
    assert model.generation_config.eos_token_id[0] == eot_id
    assert tokenizer.chat_template and os.path.isfile(os.path.join(reference_run, "tokenizer.model"))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello there"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert output.shape[1] > prompt["input_ids"].shape[1]


def test_saved_model_loads_through_the_registry(reference_run):
    config = get_model_config(MODEL_TYPE)
    model = load_model(config, reference_run)
    tokenizer = load_tokenizer(config, reference_run)
    prompt_ids = render_conversation(
        config, tokenizer, [{"from": "human", "value": "Hi"}], add_generation_prompt=True
    ).token_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids])).logits
    assert logits.shape == (1, len(prompt_ids), model.config.vocab_size)
    assert model.config.max_position_embeddings == config.max_context


def test_killed_run_resumes_to_the_same_steps_losses_and_weights(
    reference_run, tiny_model_dir, tiny_data_dir, tmp_path
):
    from safetensors.torch import load_file

    save_path = str(tmp_path / "killed")
    command = launch_command(tiny_model_dir, tiny_data_dir, save_path, *SHORT_RUN)
    with open(tmp_path / "killed.log", "w") as log:
        launcher = subprocess.Popen(
            command, cwd=REPO_ROOT, env=training_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + RUN_TIMEOUT_S
        metrics = os.path.join(save_path, "metrics.jsonl")
        # step 3 logged means the step-2 checkpoint is complete (a barrier follows every save)
        while time.monotonic() < deadline and launcher.poll() is None:
            if os.path.exists(metrics) and any(json.loads(line).get("step", 0) >= 3 for line in open(metrics)):
                break
            time.sleep(0.1)
        assert launcher.poll() is None, "the run ended before it could be killed"
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    killed_steps, _ = read_metrics(save_path)
    assert max(killed_steps) < 8

    run_training(
        *launch_command(tiny_model_dir, tiny_data_dir, save_path, *SHORT_RUN, "--resume"),
        log_path=str(tmp_path / "resumed.log"),
    )
    resumed_log = open(tmp_path / "resumed.log").read()
    assert "resumed from" in resumed_log and "at optimizer step" in resumed_log
    with open(os.path.join(save_path, "metrics.jsonl")) as handle:
        logged_steps = [json.loads(line)["step"] for line in handle if "eval_loss" not in line]
    assert logged_steps == list(range(1, 9)), "steps logged after the checkpoint by the killed run were kept"
    steps, _ = read_metrics(save_path)
    reference_steps, _ = read_metrics(reference_run)
    assert sorted(steps) == sorted(reference_steps) == list(range(1, 9))
    for step in range(1, 9):
        assert steps[step]["loss"] == pytest.approx(reference_steps[step]["loss"], rel=1e-4), step
        assert steps[step]["lr"] == pytest.approx(reference_steps[step]["lr"], rel=1e-6), step
    resumed_weights = load_file(os.path.join(save_path, "model.safetensors"))
    reference_weights = load_file(os.path.join(reference_run, "model.safetensors"))
    for name, tensor in reference_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=1e-4, atol=1e-6)


def test_two_ranks_with_accumulation_optimise_the_global_token_mean(tiny_model_dir, tiny_data_dir, tmp_path):
    """2 ranks x 4 accumulated packed micro-batches: logged loss and gradient norm equal one plain batch of all 8.

    Packing runs here (the reference run covers padded length grouping), so the per-sample attention,
    gradient checkpointing and DeepSpeed's reduction are all inside the comparison.
    """
    with open(os.path.join(tiny_data_dir, f"{MODEL_TYPE}.train.json")) as handle:
        samples = sorted(json.load(handle), key=lambda sample: len(sample[0]))[:8]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for split in ("train", "eval"):
        with open(data_dir / f"{MODEL_TYPE}.{split}.json", "w") as handle:
            json.dump(samples, handle)
    save_path = str(tmp_path / "out")
    run_training(
        *launch_command(
            tiny_model_dir,
            str(data_dir),
            save_path,
            "--epochs",
            "1",
            "--train_batch_size",
            "8",
            "--micro_batch_size",
            "1",
            "--lr",
            "0",
            "--packing",
        ),
        log_path=str(tmp_path / "launcher.log"),
    )
    steps, evals = read_metrics(save_path)
    assert list(steps) == [1]
    log = open(tmp_path / "launcher.log").read()
    assert "accumulation 4 x 2 ranks" in log and "attention ochat_packed_sdpa" in log

    # plain PyTorch, one process, one batch of all 8 samples, mean over every supervised token
    model = load_model(get_model_config(MODEL_TYPE), tiny_model_dir, dtype=torch.float32)
    lengths = [len(ids) for ids, _ in samples]
    longest = max(lengths)
    input_ids = torch.zeros(8, longest, dtype=torch.long)
    attention_mask = torch.zeros(8, longest, dtype=torch.long)
    labels = torch.full((8, longest), IGNORE_INDEX)
    for row, (ids, mask) in enumerate(samples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, : len(ids)] = torch.where(torch.tensor(mask), torch.tensor(ids), IGNORE_INDEX)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    loss.backward()
    grad_norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()

    assert steps[1]["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert steps[1]["grad_norm"] == pytest.approx(grad_norm, rel=1e-4)
    assert evals[-1]["eval_loss"] == pytest.approx(loss.item(), rel=1e-5)  # lr 0: eval sees the same model


def test_bad_data_stops_the_launcher_with_a_clear_error(tiny_model_dir, tmp_path):
    with open(tmp_path / f"{MODEL_TYPE}.train.json", "w") as handle:
        json.dump([[[1, 5, 99999], [False, True, True]]], handle)
    started = time.monotonic()
    result = subprocess.run(
        launch_command(tiny_model_dir, str(tmp_path), str(tmp_path / "out")),
        cwd=REPO_ROOT,
        env=training_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "token id 99999" in result.stdout + result.stderr
    assert time.monotonic() - started < 120


def test_zero3_with_optimizer_and_parameter_offload_matches_zero2(
    reference_run, tiny_model_dir, tiny_data_dir, tmp_path
):
    """Same data, same steps: ZeRO-3 with both offloads logs ZeRO-2's losses and saves the same gathered weights."""
    from safetensors.torch import load_file

    save_path = str(tmp_path / "zero3")
    run_training(
        *launch_command(
            tiny_model_dir,
            tiny_data_dir,
            save_path,
            *SHORT_RUN,
            "--zero_stage",
            "3",
            "--offload_optimizer",
            "cpu",
            "--offload_params",
            "cpu",
        ),
        log_path=str(tmp_path / "zero3.log"),
    )
    assert "ZeRO stage 3, optimizer offload cpu, parameter offload cpu" in open(tmp_path / "zero3.log").read()
    steps, evals = read_metrics(save_path)
    reference_steps, reference_evals = read_metrics(reference_run)
    assert sorted(steps) == list(range(1, 9))
    for step in range(1, 9):
        assert steps[step]["loss"] == pytest.approx(reference_steps[step]["loss"], rel=1e-4), step
    assert evals[-1]["eval_loss"] == pytest.approx(reference_evals[-1]["eval_loss"], rel=1e-4)
    weights = load_file(os.path.join(save_path, "model.safetensors"))
    reference_weights = load_file(os.path.join(reference_run, "model.safetensors"))
    assert set(weights) == set(reference_weights)
    for name, tensor in reference_weights.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-3, atol=1e-5)


def test_a_stopped_rank_ends_the_run_with_its_name(tiny_model_dir, tiny_data_dir, tmp_path):
    """SIGSTOP one rank mid-run: the other names it and the launcher exits non-zero within the timeout."""
    import psutil

    save_path = str(tmp_path / "stopped")
    command = launch_command(
        tiny_model_dir,
        tiny_data_dir,
        save_path,
        "--epochs",
        "1",
        "--train_batch_size",
        "8",
        "--micro_batch_size",
        "2",
        "--collective_timeout",
        "0.25",
    )
    metrics = os.path.join(save_path, "metrics.jsonl")
    with open(tmp_path / "stopped.log", "w") as log:
        launcher = subprocess.Popen(
            command, cwd=REPO_ROOT, env=training_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while (
                time.monotonic() < deadline
                and launcher.poll() is None
                and not (os.path.exists(metrics) and open(metrics).read().strip())
            ):
                time.sleep(0.1)
            rank_one = [
                child
                for child in psutil.Process(launcher.pid).children(recursive=True)
                if "--local_rank=1" in child.cmdline()
            ]
            assert len(rank_one) == 1 and launcher.poll() is None
            rank_one[0].send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            returncode = launcher.wait(timeout=180)
        finally:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
    output = open(tmp_path / "stopped.log").read()
    assert returncode != 0
    assert "rank 1 stopped answering" in output, output[-3000:]
    assert not leftover_shared_memory(command)  # a run that dies leaves no /dev/shm buffers either
    # the watchdog's 7.5 s and its period: the stopped rank is killed, so the launcher's 30 s SIGTERM grace is not spent
    assert time.monotonic() - stopped_at < 25


def test_a_one_rank_run_leaves_no_shared_memory_and_checkpoints_its_settings(tiny_model_dir, tiny_data_dir, tmp_path):
    save_path = str(tmp_path / "one_rank")
    command = launch_command(
        tiny_model_dir, tiny_data_dir, save_path, *SHORT_RUN[:-6], "--max_steps", "1", "--save_every", "1"
    )
    command[command.index("--num_gpus=2")] = "--num_gpus=1"
    run_training(*command, log_path=str(tmp_path / "one_rank.log"))  # asserts no /dev/shm buffer is left
    signature = json.load(open(os.path.join(save_path, "checkpoints", "step_1", "run_signature.json")))
    assert (signature["world_size"], signature["model_type"], signature["zero_stage"]) == (1, MODEL_TYPE, 2)
