"""data_pipeline.filter_sharegpt keeps the conversations of one model label."""

import json
import subprocess
import sys
from pathlib import Path

from data_pipeline.filter_sharegpt import filter_by_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def conversation(conversation_id, model):
    return {
        "id": conversation_id,
        "model": model,
        "views": 1,
        "hash": conversation_id,
        "items": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
    }


CONVERSATIONS = [
    conversation("a", "Model: GPT-4"),
    conversation("b", "Model: Default (GPT-3.5)"),
    conversation("c", None),
    conversation("d", "Model: GPT-4"),
    conversation("e", "Model: GPT-4 (something else)"),
]


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "data_pipeline.filter_sharegpt", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )


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


MIXED = CONVERSATIONS + [conversation("f", "Model: Legacy (GPT-3.5)"), conversation("g", "Model: Plugins")]


def test_c_rlft_maps_gpt4_to_the_expert_and_gpt35_or_no_label_to_the_suboptimal_condition():
    from data_pipeline.filter_sharegpt import label_conditions

    records = label_conditions(MIXED)
    assert [(r["id"], r["condition"]) for r in records] == [
        ("a", "GPT4"),
        ("b", "GPT3"),
        ("c", "GPT3"),
        ("d", "GPT4"),
        ("f", "GPT3"),
    ]
    assert records[0]["items"] == [
        {"role": "user", "content": "q", "weight": 0.0},
        {"role": "assistant", "content": "a", "weight": 1.0},
    ]
    assert [item["weight"] for item in records[1]["items"]] == [0.0, 0.1]
    assert records[0]["system"] == ""


def test_c_rlft_cli_writes_conversation_jsonl_and_counts_per_condition(tmp_path):
    in_file = tmp_path / "clean.json"
    in_file.write_text(json.dumps(MIXED))
    out_file = tmp_path / "crlft.jsonl"
    result = run_cli("--mode", "c-rlft", "--in_file", in_file, "--out_file", out_file)
    assert result.returncode == 0, result.stderr
    lines = out_file.read_text().splitlines()
    assert [json.loads(line)["condition"] for line in lines] == ["GPT4", "GPT3", "GPT3", "GPT4", "GPT3"]
    assert "condition GPT4                     2   reward 1" in result.stdout
    assert "condition GPT3                     3   reward 0.1" in result.stdout
    assert "dropped Model: Plugins" in result.stdout and "dropped Model: GPT-4 (something else)" in result.stdout


def test_conditions_option_overrides_the_mapping(tmp_path):
    in_file = tmp_path / "clean.json"
    in_file.write_text(json.dumps(MIXED))
    out_file = tmp_path / "crlft.jsonl"
    result = run_cli(
        "--mode",
        "c-rlft",
        "--in_file",
        in_file,
        "--out_file",
        out_file,
        "--conditions",
        "Model: GPT-4=GPT4:1.0,Model: Default (GPT-3.5)=GPT3:0.25",
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [(r["id"], r["condition"], r["items"][1]["weight"]) for r in records] == [
        ("a", "GPT4", 1.0),
        ("b", "GPT3", 0.25),
        ("d", "GPT4", 1.0),
    ]
    assert "dropped (no model label)" in result.stdout  # no longer mapped


def test_bad_conditions_are_one_line_errors(tmp_path):
    in_file = tmp_path / "clean.json"
    in_file.write_text(json.dumps(MIXED))
    for bad in ("Model: GPT-4", "Model: GPT-4=GPT4:lots", "Model: GPT-4=GPT4:0"):
        result = run_cli(
            "--mode", "c-rlft", "--in_file", in_file, "--out_file", tmp_path / "o.jsonl", "--conditions", bad
        )
        assert (
            result.returncode != 0
            and result.stderr.startswith("error: --conditions")
            and "Traceback" not in result.stderr
        )


def test_help_says_how_gpt35_and_unlabelled_pages_count():
    help_text = " ".join(run_cli("--help").stdout.split())
    assert '"Model: Legacy (GPT-3.5)" and pages with no model label count as GPT-3.5' in help_text
