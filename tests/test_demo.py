"""The one-command loop: raw pages to a judged, served, visualized model, on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM

from tests.helpers.repo import REPO_ROOT


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "ochat.demo", "--quick", "--out", str(out), "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return out, result.stdout


def _load(path):
    with open(path, encoding="utf-8") as handle:
        if str(path).endswith(".jsonl"):
            return [json.loads(line) for line in handle if line.strip()]
        return json.load(handle)


def test_every_step_reports_what_it_did(demo_run):
    _, stdout = demo_run
    for index, step in enumerate(("model", "data", "train", "serve", "evaluate", "visualize"), start=1):
        assert f"== [{index}/6] {step}" in stdout
    assert stdout.count("   done in ") == 6
    assert "visualizer.html" in stdout and "eval_result_visualizer.html" in stdout


def test_data_outputs_are_well_formed(demo_run):
    out, _ = demo_run
    report = _load(out / "data" / "sharegpt_clean.report.json")
    assert report["kept"] > 0
    samples = _load(out / "data" / "openchat_tiny.train.json")
    assert samples and all(len(ids) == len(mask) <= 2048 and any(mask) for ids, mask in samples)


def test_trained_checkpoint_loads_and_beats_the_base_model(demo_run):
    out, _ = demo_run
    model = AutoModelForCausalLM.from_pretrained(out / "checkpoint")
    assert model.config.model_type == "llama"
    losses = _load(out / "eval_losses.json")
    assert losses["trained"] < losses["base"]


def test_server_streamed_a_completion(demo_run):
    """The printed reply is real text that came from the demo's server, not just the demo's own labels."""
    out, stdout = demo_run
    reply = re.search(r"   assistant> (.*)\n", stdout).group(1)
    streamed = int(re.search(r"streamed (\d+) characters", stdout).group(1))
    assert reply.strip() and streamed == len(reply) > 0
    log_entries = []
    for line in (out / "logs" / "server.log").read_text().splitlines():
        if line.startswith("{"):
            log_entries.append(json.loads(line))
    chats = [e for e in log_entries if e.get("path") == "/v1/chat/completions"]
    assert chats[0]["stream"] is True and chats[0]["status"] == 200 and chats[0]["completion_tokens"] > 0


def test_evaluation_wrote_answers_reviews_and_a_summary(demo_run):
    out, _ = demo_run
    answers = out / "eval" / "answers"
    trained = _load(answers / "vicuna_trained.jsonl")
    assert len(trained) == 8 and all(isinstance(a["text"], str) for a in trained)
    summary = _load(answers / "summary.json")
    assert summary["models"][0]["model"] == "trained"
    reviews = [name for name in os.listdir(answers / "reviews") if name.endswith(".jsonl")]
    assert reviews


def test_visualizer_json_has_a_point_per_conversation(demo_run):
    out, _ = demo_run
    points = _load(out / "visualization" / "openchat_tiny.visualizer.json")
    texts = _load(out / "data" / "openchat_tiny.train.text.json")
    assert len(points["points"]) == len(texts)
    assert (out / "visualization" / "visualizer_standalone.html").stat().st_size > 100_000
    assert (out / "visualization" / "eval_report.html").stat().st_size > 100_000


def test_rerun_reuses_finished_steps(demo_run):
    out, _ = demo_run
    result = subprocess.run(
        [sys.executable, "-m", "ochat.demo", "--quick", "--out", str(out), "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("reused (finished earlier)") == 5


def test_a_failing_step_stops_the_run_with_its_name(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ochat.demo",
            "--out",
            str(tmp_path),
            "--model_type",
            "openchat",
            "--model_path",
            str(tmp_path / "no_such_model"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "step 'model' failed" in result.stderr and "no_such_model" in result.stderr
