"""LoRA through the real launcher (2 CPU ranks, tiny model): learning, what changes, the saved forms, resume.

One reference LoRA run is shared by the tests; the kill + resume test adds one more run (two launches).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from ochat.config import get_model_config, load_tokenizer
from ochat.models import load_model
from tests.helpers.repo import REPO_ROOT
from tests.helpers.training import MODEL_TYPE, RUN_TIMEOUT_S, launch_command, read_metrics, run_training, training_env

LORA_RUN = [
    "--length_grouping",
    "--epochs",
    "1",
    "--train_batch_size",
    "8",
    "--micro_batch_size",
    "2",
    "--max_steps",
    "6",
    "--save_every",
    "2",
    "--lr",
    "1e-2",
    "--lora_rank",
    "8",
    "--lora_dropout",
    "0",
]
PROBE = torch.tensor([[1, 57, 300, 1200, 2048, 9, 44, 2048]])


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tiny_data_dir, tmp_path_factory) -> str:
    save_path = str(tmp_path_factory.mktemp("lora_run"))
    run_training(
        *launch_command(tiny_model_dir, tiny_data_dir, save_path, *LORA_RUN),
        log_path=os.path.join(save_path, "launcher.log"),
    )
    return save_path


def _base(tiny_model_dir):
    return load_model(get_model_config(MODEL_TYPE), tiny_model_dir, dtype=torch.float32).eval()


def test_lora_loss_falls_and_only_a_small_share_trains(lora_run):
    steps, evals = read_metrics(lora_run)
    assert sorted(steps) == list(range(1, 7))
    assert steps[6]["loss"] < steps[1]["loss"] - 0.2, (steps[1]["loss"], steps[6]["loss"])
    assert evals and evals[-1]["eval_loss"] < steps[1]["loss"]
    log = open(os.path.join(lora_run, "launcher.log")).read()
    trainable, total = (
        int(n.replace(",", "")) for n in log.split("parameters trainable")[0].rsplit(":", 1)[1].split(" of ")
    )
    assert 0 < trainable < total / 10


def test_only_adapters_and_the_eot_rows_change(lora_run, tiny_model_dir):
    """In the merged model: norms and every non-EOT embedding/output row are the base's; linears and EOT rows moved."""
    eot = load_tokenizer(get_model_config(MODEL_TYPE), tiny_model_dir).eot_token_id
    base = load_file(os.path.join(tiny_model_dir, "model.safetensors"))
    merged = load_file(os.path.join(lora_run, "model.safetensors"))
    assert set(merged) == set(base)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        moved = (merged[name] - base[name]).abs().amax(dim=1) > 0
        assert moved.nonzero().flatten().tolist() == [eot], name
    for name, tensor in base.items():
        if "norm" in name:
            assert torch.equal(merged[name], tensor), name
        elif name.endswith("_proj.weight"):
            assert not torch.equal(merged[name], tensor), f"{name} did not learn"
    adapter = load_file(os.path.join(lora_run, "adapter", "adapter_model.safetensors"))
    assert all("lora_" in name or "trainable_tokens" in name for name in adapter)
    assert any("trainable_tokens" in name for name in adapter)


def test_merged_checkpoint_equals_base_plus_adapter(lora_run, tiny_model_dir):
    from peft import PeftModel

    with_adapter = PeftModel.from_pretrained(_base(tiny_model_dir), os.path.join(lora_run, "adapter")).eval()
    merged = load_model(get_model_config(MODEL_TYPE), lora_run, dtype=torch.float32).eval()
    through_loader = load_model(
        get_model_config(MODEL_TYPE),
        tiny_model_dir,
        dtype=torch.float32,
        adapter_path=os.path.join(lora_run, "adapter"),
    ).eval()
    with torch.no_grad():
        expected = with_adapter(input_ids=PROBE).logits
        base_logits = _base(tiny_model_dir)(input_ids=PROBE).logits
        torch.testing.assert_close(merged(input_ids=PROBE).logits, expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(through_loader(input_ids=PROBE).logits, expected, rtol=1e-4, atol=1e-4)
    assert (expected - base_logits).abs().max() > 1e-2  # the adapter does something


def test_a_bad_adapter_path_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a peft adapter folder"):
        load_model(get_model_config(MODEL_TYPE), tiny_model_dir, adapter_path=str(tmp_path))


def test_killed_lora_run_resumes_to_the_same_weights_and_clean_metrics(
    lora_run, tiny_model_dir, tiny_data_dir, tmp_path
):
    save_path = str(tmp_path / "killed")
    metrics = os.path.join(save_path, "metrics.jsonl")
    with open(tmp_path / "killed.log", "w") as log:
        launcher = subprocess.Popen(
            launch_command(tiny_model_dir, tiny_data_dir, save_path, *LORA_RUN),
            cwd=REPO_ROOT,
            env=training_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + RUN_TIMEOUT_S
        # step 3 logged: the step-2 checkpoint is complete and one step past it is in metrics.jsonl
        while time.monotonic() < deadline and launcher.poll() is None:
            if os.path.exists(metrics) and any(json.loads(line).get("step", 0) >= 3 for line in open(metrics)):
                break
            time.sleep(0.1)
        assert launcher.poll() is None, "the run ended before it could be killed"
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    logged_before_kill = [json.loads(line)["step"] for line in open(metrics)]
    checkpoints = sorted(os.listdir(os.path.join(save_path, "checkpoints")))
    assert max(logged_before_kill) < 6 and checkpoints
    # a LoRA checkpoint holds the trainable weights only, not a copy of the frozen base
    model_states = [
        os.path.join(root, name)
        for root, _, names in os.walk(os.path.join(save_path, "checkpoints"))
        for name in names
        if name.endswith("model_states.pt")
    ]
    assert (
        model_states
        and max(os.path.getsize(path) for path in model_states)
        < os.path.getsize(os.path.join(tiny_model_dir, "model.safetensors")) / 4
    )

    run_training(
        *launch_command(tiny_model_dir, tiny_data_dir, save_path, *LORA_RUN, "--resume"),
        log_path=str(tmp_path / "resumed.log"),
    )
    train_steps = [json.loads(line)["step"] for line in open(metrics) if "eval_loss" not in line]
    assert train_steps == list(range(1, 7)), "stale steps from the killed run were kept"
    steps, _ = read_metrics(save_path)
    reference, _ = read_metrics(lora_run)
    for step in range(1, 7):
        assert steps[step]["loss"] == pytest.approx(reference[step]["loss"], rel=1e-4), step
    resumed = load_file(os.path.join(save_path, "model.safetensors"))
    for name, tensor in load_file(os.path.join(lora_run, "model.safetensors")).items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-4, atol=1e-6)
    resumed_adapter = load_file(os.path.join(save_path, "adapter", "adapter_model.safetensors"))
    for name, tensor in load_file(os.path.join(lora_run, "adapter", "adapter_model.safetensors")).items():
        torch.testing.assert_close(resumed_adapter[name], tensor, rtol=1e-4, atol=1e-6)


def test_server_with_base_and_adapter_answers_like_the_merged_model(lora_run, tiny_model_dir, tmp_path):
    """`--model_path BASE --adapter_path ADAPTER`: greedy answers equal transformers' generate on the merged folder."""
    import openai

    from ochat.config import render_conversation
    from ochat.utils.server_process import ServerProcess

    config = get_model_config(MODEL_TYPE)
    tokenizer = load_tokenizer(config, lora_run)
    merged = load_model(config, lora_run, dtype=torch.float32).eval()
    question = "Tell me about the history of tea."
    prompt = render_conversation(
        config, tokenizer, [{"from": "human", "value": question}], add_generation_prompt=True
    ).token_ids
    with torch.inference_mode():
        output = merged.generate(
            torch.tensor([prompt]),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=tokenizer.stop_token_ids,
            pad_token_id=tokenizer.hf_tokenizer.pad_token_id,
        )
    expected = tokenizer.decode(output[0, len(prompt) :].tolist(), skip_special_tokens=True)
    with ServerProcess.start(
        MODEL_TYPE,
        tiny_model_dir,
        "--adapter_path",
        os.path.join(lora_run, "adapter"),
        log_path=str(tmp_path / "server.log"),
    ) as server:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
        answer = client.chat.completions.create(
            model=MODEL_TYPE, messages=[{"role": "user", "content": question}], max_tokens=16, temperature=0
        )
    assert answer.choices[0].message.content == expected
