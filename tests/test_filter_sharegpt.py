"""data_pipeline.filter_sharegpt keeps the conversations of one model label."""

import json
import subprocess
import sys
from pathlib import Path

from data_pipeline.filter_sharegpt import filter_by_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def conversation(conversation_id, model):
    return {"id": conversation_id, "model": model, "views": 1, "hash": conversation_id,
            "items": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}


CONVERSATIONS = [
    conversation("a", "Model: GPT-4"),
    conversation("b", "Model: Default (GPT-3.5)"),
    conversation("c", None),
    conversation("d", "Model: GPT-4"),
    conversation("e", "Model: GPT-4 (something else)"),
]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "data_pipeline.filter_sharegpt", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_ROOT)


def test_default_keeps_exactly_gpt4_in_order():
    assert [item["id"] for item in filter_by_model(CONVERSATIONS)] == ["a", "d"]


def test_other_model_label_can_be_chosen():
    assert [item["id"] for item in filter_by_model(CONVERSATIONS, "Model: Default (GPT-3.5)")] == ["b"]


def test_cli_writes_kept_conversations_unchanged_and_prints_counts(tmp_path):
    in_file = tmp_path / "sharegpt_clean.json"
    in_file.write_text(json.dumps(CONVERSATIONS))
    out_file = tmp_path / "sharegpt_gpt4.json"
    result = run_cli("--in-file", in_file, "--out-file", out_file)
    assert result.returncode == 0, result.stderr
    assert json.loads(out_file.read_text()) == [CONVERSATIONS[0], CONVERSATIONS[3]]
    assert "conversations        5" in result.stdout and "kept                 2" in result.stdout


def test_cli_model_option(tmp_path):
    in_file = tmp_path / "clean.json"
    in_file.write_text(json.dumps(CONVERSATIONS))
    out_file = tmp_path / "out.json"
    assert run_cli("--in-file", in_file, "--out-file", out_file, "--model", "Model: Default (GPT-3.5)").returncode == 0
    assert [item["id"] for item in json.loads(out_file.read_text())] == ["b"]


def test_cli_rejects_input_that_is_not_a_conversation_list(tmp_path):
    in_file = tmp_path / "clean.json"
    in_file.write_text('{"not": "a list"}')
    result = run_cli("--in-file", in_file, "--out-file", tmp_path / "out.json")
    assert result.returncode != 0 and "JSON list of conversations" in result.stderr
