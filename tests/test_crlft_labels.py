"""C-RLFT labels are never lost or silently changed: imports keep conditions and weights, the filter and
the converter refuse or count what they cannot label, `--conditions` is strict, and the recipes that
make data (self-chat, mix) write what the next stage keeps."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from data_pipeline import self_chat
from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.filter_sharegpt import (
    DEFAULT_CONDITIONS,
    filter_by_model,
    format_condition_counts,
    format_counts,
    label_conditions,
    parse_conditions,
)
from data_pipeline.generate_dataset import generate_dataset
from data_pipeline.import_conversations import import_file
from data_pipeline.tokenized_samples import convert_conversations
from ochat.config import get_model_config, load_tokenizer
from ochat.utils.files import write_jsonl_atomic
from tests.helpers.repo import REPO_ROOT

CRLFT_TYPE = "openchat_v3.2_tiny"


def openchat_record(question, answer, condition, weight):
    return {
        "items": [
            {"role": "user", "content": question, "weight": 0.0},
            {"role": "assistant", "content": answer, "weight": weight},
        ],
        "condition": condition,
        "system": "",
    }


OPENCHAT_RECORDS = [
    openchat_record("What is a cat?", "A cat is an animal.", "GPT4", 1.0),
    openchat_record("What is a dog?", "A dog is an animal too.", "GPT3", 0.1),
]


def clean_turns(model="Model: GPT-4", question="q", answer="a"):
    return {
        "id": question,
        "model": model,
        "items": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
    }


def run(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )


def test_an_openchat_import_keeps_every_condition_and_weight_through_the_c_rlft_filter(tmp_path):
    source = tmp_path / "oc.jsonl"
    write_jsonl_atomic(source, OPENCHAT_RECORDS)
    conversations, report = import_file(source, "openchat")
    assert report["kept"] == 2
    relabelled = [
        {key: value for key, value in record.items() if key != "id"} for record in label_conditions(conversations)
    ]
    assert relabelled == OPENCHAT_RECORDS


def test_an_openchat_import_converts_to_the_samples_of_its_jsonl(tiny_crlft_model_dir, tmp_path):
    source = tmp_path / "oc.jsonl"
    write_jsonl_atomic(source, OPENCHAT_RECORDS)
    conversations, _ = import_file(source, "openchat")
    config = get_model_config(CRLFT_TYPE)
    tokenizer = load_tokenizer(config, tiny_crlft_model_dir)
    from data_pipeline.conversations import read_conversations

    from_jsonl = convert_conversations(config, tokenizer, read_conversations(str(source))[0])
    from_import = convert_conversations(config, tokenizer, conversations)
    assert [list(sample.weights) for sample in from_import] == [list(sample.weights) for sample in from_jsonl]
    assert [sample.token_ids for sample in from_import] == [sample.token_ids for sample in from_jsonl]
    assert {weight for sample in from_import for weight in sample.weights if weight} == {1.0, 0.1}


@pytest.mark.parametrize("weight", [-0.5, "0.1", True, None])
def test_an_openchat_record_with_a_weight_no_loss_can_use_is_dropped_and_counted(tmp_path, weight):
    source = tmp_path / "oc.jsonl"
    write_jsonl_atomic(source, [openchat_record("q", "a", "GPT3", weight)])
    conversations, report = import_file(source, "openchat")
    assert conversations == [] and report["dropped"] == {"invalid_weight": 1}


def test_the_c_rlft_filter_counts_what_it_cannot_label_and_takes_no_tool_turn_for_an_answer():
    conversations = [
        clean_turns(["Model: GPT-4"], "list model"),
        clean_turns({"name": "GPT-4"}, "dict model"),
        {"id": "no value", "model": "Model: GPT-4", "items": [{"from": "human"}, {"from": "gpt", "value": "a"}]},
        {
            "id": "tool",
            "model": "Model: GPT-4",
            "items": [{"from": "human", "value": "q"}, {"from": "tool", "value": "x"}],
        },
        clean_turns("Model: GPT-4", "fine"),
    ]
    records = label_conditions(conversations)
    assert [record["id"] for record in records] == ["fine"]
    summary = format_condition_counts(conversations, records, DEFAULT_CONDITIONS, "out.jsonl")
    assert "(invalid conversation)" in summary and "4" in summary.split("(invalid conversation)")[1].split("\n")[0]
    assert [c["id"] for c in filter_by_model(conversations)] == ["fine"]
    assert "(invalid conversation)" in format_counts(conversations, [], "Model: GPT-4", "out.json")


def test_the_filter_cli_survives_odd_model_labels(tmp_path):
    source = tmp_path / "clean.json"
    source.write_text(
        json.dumps([clean_turns(["x"], "a"), clean_turns({"y": 1}, "b"), clean_turns("Model: GPT-4", "c")])
    )
    for mode in ("model", "c-rlft"):
        result = run(
            "data_pipeline.filter_sharegpt", "--in_file", source, "--out_file", tmp_path / "out", "--mode", mode
        )
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty entry"),
        ("Model: GPT-4=GPT4:1.0,,x=GPT3:0.1", "empty entry"),
        ("Model: GPT-4=GPT4:1.0,Model: GPT-4=GPT3:0.1", "mapped twice"),
        ("Model: GPT-4=GPT4:1.0:2.0", "not a decimal number"),
        ("Model: GPT-4=GPT4:1_0", "not a decimal number"),
        ("Model: GPT-4=GPT4:1e-1", "not a decimal number"),
        ("Model: GPT-4=GPT4:0", "above 0"),
        ("GPT4:1.0", "not LABEL=CONDITION:REWARD"),
    ],
)
def test_conditions_are_parsed_strictly(text, message):
    with pytest.raises(ValueError, match=message):
        parse_conditions(text)


def test_conditions_keep_a_condition_with_a_space():
    assert parse_conditions("Model: GPT-4=GPT4 Correct:1.0") == {"Model: GPT-4": ("GPT4 Correct", 1.0)}


def test_an_empty_conditions_flag_is_an_error_not_the_defaults(tmp_path):
    source = tmp_path / "clean.json"
    source.write_text(json.dumps([clean_turns()]))
    result = run(
        "data_pipeline.filter_sharegpt",
        "--in_file",
        source,
        "--out_file",
        tmp_path / "o",
        "--mode",
        "c-rlft",
        "--conditions",
        "",
    )
    assert result.returncode != 0 and "--conditions" in result.stderr.splitlines()[-1]


def test_a_condition_that_is_not_text_makes_the_conversation_invalid(tiny_crlft_model_dir):
    config = get_model_config(CRLFT_TYPE)
    tokenizer = load_tokenizer(config, tiny_crlft_model_dir)
    conversations = [
        {**clean_turns(question="listed"), "condition": ["GPT4"]},
        {**clean_turns(question="numbered"), "condition": 5},
        {**clean_turns(question="fine"), "condition": "GPT3"},
    ]
    from data_pipeline.tokenized_samples import ConversionStats

    stats = ConversionStats()
    samples = convert_conversations(config, tokenizer, conversations, stats=stats)
    assert len(samples) == 1 and stats.invalid == ["listed", "numbered"]
    assert "GPT3 User:" in tokenizer.decode(samples[0].token_ids)


def test_an_unconditioned_type_refuses_weighted_answers_in_one_line(tiny_model_dir, tmp_path):
    source = tmp_path / "crlft.jsonl"
    write_jsonl_atomic(source, OPENCHAT_RECORDS)
    with pytest.raises(ValueError, match="weigh answers other than 1.0.*openchat_tiny"):
        generate_dataset("openchat_tiny", tiny_model_dir, str(source), str(tmp_path / "out"))
    write_jsonl_atomic(source, OPENCHAT_RECORDS[:1])  # all answers at 1.0: fine, the condition is ignored
    report = generate_dataset("openchat_tiny", tiny_model_dir, str(source), str(tmp_path / "out"), eval_ratio=0)
    assert report["train"]["samples"] == 1


def readme_self_chat_args():
    readme = open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8").read()
    start = readme.index("python -m data_pipeline.self_chat")
    command = readme[start : readme.index("\n```", start)].replace("\\\n", " ")
    words = shlex.split(command, comments=True)
    return words[3:]


def test_the_readme_self_chat_recipe_writes_dialogues_the_default_filter_keeps(tmp_path):
    args = self_chat.parse_args([*readme_self_chat_args(), "--out_file", str(tmp_path / "self_chat.json")])
    run_ = self_chat.SelfChatRun(args.out_file, ["How do I learn Rust?"], args)
    run_.results[0] = {
        "seed_index": 0,
        "seed": "How do I learn Rust?",
        "method": args.method,
        "model": args.model,
        "status": "valid",
        "conversation": [["human", "How do I learn Rust?"], ["gpt", "Read the book, then write code."]],
    }
    run_.write_output()
    cleaned, report = clean_pages([args.out_file])
    assert report["kept"] == 1
    assert [c["id"] for c in filter_by_model(cleaned)] == ["self_chat-0"]
    assert json.loads(args.out_file.read_text())[0]["generator"] == args.model


def test_mix_refuses_one_file_under_two_names_and_a_huge_count(tmp_path):
    data = tmp_path / "a.json"
    data.write_text(json.dumps([clean_turns(question=f"q{n}") for n in range(3)]))
    os.symlink(data, tmp_path / "b.json")
    result = run(
        "data_pipeline.mix", "--in", f"a={data}", f"b={tmp_path / 'b.json'}", "--out_file", tmp_path / "m.json"
    )
    assert result.returncode == 2 and "are the same file" in result.stderr.splitlines()[-1]
    result = run("data_pipeline.mix", "--in", f"a={data}:10000000000000", "--out_file", tmp_path / "m.json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "asks for 10,000,000,000,000 conversations" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "m.json").exists()
