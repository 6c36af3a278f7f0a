"""import_conversations: every format, malformed records dropped with reasons, the CLI and its report."""

import json

import pytest

from data_pipeline.import_conversations import import_file
from data_pipeline.sharegpt_conversation import conversation_hash
from tests.helpers.repo import run_module


def write_jsonl(path, records):
    path.write_text(
        "".join((record if isinstance(record, str) else json.dumps(record)) + "\n" for record in records),
        encoding="utf-8",
    )
    return path


def values(conversation):
    return [(item["from"], item["value"]) for item in conversation["items"]]


def dropped_reasons(report):
    return [(entry["record"], entry["reason"]) for entry in report["records"] if entry["status"] == "dropped"]


def test_alpaca_instruction_and_input_become_the_human_turn(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(
        json.dumps(
            [
                {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
                {"instruction": "Name a colour.", "input": "", "output": "Blue."},
                {"instruction": "No answer.", "input": "", "output": "  "},
                {"instruction": 5, "input": "", "output": "x"},
                ["not", "a", "record"],
            ]
        ),
        encoding="utf-8",
    )
    conversations, report = import_file(path, "alpaca")
    assert [values(c) for c in conversations] == [
        [("human", "Translate to French.\n\nGood morning"), ("gpt", "Bonjour")],
        [("human", "Name a colour."), ("gpt", "Blue.")],
    ]
    assert [c["id"] for c in conversations] == ["alpaca-0", "alpaca-1"]
    assert all(c["source"] == "alpaca" and c["hash"] == conversation_hash(c["items"]) for c in conversations)
    assert dropped_reasons(report) == [
        ("alpaca.json#2", "empty_turn"),
        ("alpaca.json#3", "invalid_record"),
        ("alpaca.json#4", "invalid_record"),
    ]
    assert report["total_records"] == 5 == report["kept"] + report["duplicates"] + sum(report["dropped"].values())


def test_hh_chosen_transcript_is_split_on_human_and_assistant_markers(tmp_path):
    path = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {
                "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: 6.",
                "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5.",
            },
            {"chosen": "\n\nHuman: Hi\n\nAssistant:"},  # empty final answer: the trailing human turn stays
            {"chosen": "preamble\n\nHuman: x\n\nAssistant: y"},
            {"chosen": "\n\nHuman: a\n\nHuman: b\n\nAssistant: c"},
            "{not json",
            {"rejected": "no chosen"},
        ],
    )
    conversations, report = import_file(path, "hh", source="anthropic_hh")
    assert [values(c) for c in conversations] == [
        [("human", "What is 2+2?"), ("gpt", "4."), ("human", "And 3+3?"), ("gpt", "6.")]
    ]
    assert conversations[0]["source"] == "anthropic_hh"
    assert dropped_reasons(report) == [
        ("hh.jsonl#1", "empty_turn"),
        ("hh.jsonl#2", "invalid_record"),
        ("hh.jsonl#3", "roles_not_alternating"),
        ("hh.jsonl#4", "bad_json"),
        ("hh.jsonl#5", "invalid_record"),
    ]


def test_openai_messages_keep_model_drop_and_count_system_prompts(tmp_path):
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Capital of Peru?"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Lima."}]},
                ],
            },
            {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "t"}]},
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
                    {"role": "assistant", "content": "a"},
                ]
            },
            {"messages": [{"role": "user", "content": "only a question"}]},
            {"messages": "nope"},
        ],
    )
    conversations, report = import_file(path, "openai_messages")
    assert [values(c) for c in conversations] == [[("human", "Capital of Peru?"), ("gpt", "Lima.")]]
    assert conversations[0]["model"] == "gpt-4o"
    assert report["system_prompts_dropped"] == 1
    assert dropped_reasons(report) == [
        ("chat.jsonl#1", "bad_role"),
        ("chat.jsonl#2", "invalid_record"),
        ("chat.jsonl#3", "too_few_turns"),
        ("chat.jsonl#4", "invalid_record"),
    ]


def test_openchat_conversations_take_the_condition_as_model(tmp_path):
    path = write_jsonl(
        tmp_path / "oc.jsonl",
        [
            {
                "items": [
                    {"role": "user", "content": "Hi", "weight": 0.0},
                    {"role": "assistant", "content": "Hello!", "weight": 1.0},
                ],
                "condition": "GPT4",
                "system": "",
            },
            {
                "items": [
                    {"role": "user", "content": "Hi", "weight": 0.0},
                    {"role": "assistant", "content": "Hello!", "weight": 1.0},
                ],
                "condition": "GPT4",
                "system": "",
            },
            {"items": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}], "condition": ""},
            {"items": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "condition": 3},
        ],
    )
    conversations, report = import_file(path, "openchat")
    assert [values(c) for c in conversations] == [[("human", "Hi"), ("gpt", "Hello!")]]
    assert conversations[0]["model"] == "GPT4"
    assert report["duplicates"] == 1
    assert report["records"][0] == {
        "record": "oc.jsonl#1",
        "status": "duplicate",
        "reason": "duplicate",
        "duplicate_of": "openchat-0",
    }
    assert dropped_reasons(report) == [("oc.jsonl#2", "too_few_turns"), ("oc.jsonl#3", "invalid_record")]


def test_sharegpt_json_converts_html_answers_and_keeps_markdown_ones(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "html1",
                    "model": "Model: GPT-4",
                    "conversations": [
                        {"from": "system", "value": "You are ChatGPT."},
                        {"from": "human", "value": "List two fruits"},
                        {"from": "gpt", "value": "<div><p>Here:</p><ol><li>apple</li><li>pear</li></ol></div>"},
                    ],
                },
                {
                    "id": "md1",
                    "conversations": [
                        {"from": "user", "value": "Show a div"},
                        {"from": "assistant", "value": "Use `<div>`:\n\n```html\n<div>x</div>\n```\n\n*done*"},
                    ],
                },
                {"id": "bad", "conversations": [{"from": "human", "value": 3}]},
                {"id": "bing", "conversations": [{"from": "human", "value": "q"}, {"from": "bing", "value": "a"}]},
            ]
        ),
        encoding="utf-8",
    )
    conversations, report = import_file(path, "sharegpt_json")
    assert [c["id"] for c in conversations] == ["html1", "md1"]
    assert values(conversations[0]) == [("human", "List two fruits"), ("gpt", "Here:\n\n1. apple\n2. pear")]
    assert conversations[0]["model"] == "Model: GPT-4"
    assert values(conversations[1])[1] == ("gpt", "Use `<div>`:\n\n```html\n<div>x</div>\n```\n\n*done*")
    assert dropped_reasons(report) == [("dump.json#2", "invalid_record"), ("dump.json#3", "bad_role")]


def test_a_dump_that_breaks_off_is_accounted_where_it_broke(tmp_path):
    records = [{"instruction": f"question {i}", "input": "", "output": f"answer {i} " + "x" * 200} for i in range(2000)]
    text = json.dumps(records)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) * 3 // 4], encoding="utf-8")
    conversations, report = import_file(path, "alpaca")
    assert report["dropped"] == {"bad_json": 1}
    broken_index = int(dropped_reasons(report)[0][0].rsplit("#", 1)[1])
    assert broken_index == len(conversations) and 1450 < broken_index < 1550  # every whole record before the cut


@pytest.mark.parametrize("spelling", ["openai-messages", "openai_messages"])
def test_cli_accepts_both_spellings_and_writes_output_and_report(tmp_path, spelling):
    in_file = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]},
            {"messages": [{"role": "user", "content": "q2"}]},
        ],
    )
    out_file = tmp_path / "out" / "chat_clean.json"
    result = run_module(
        "data_pipeline.import_conversations",
        "--format",
        spelling,
        "--in-file",
        str(in_file),
        "--out_file",
        str(out_file),
        "--source",
        "mychat",
    )
    conversations = json.loads(out_file.read_text())
    report = json.loads((tmp_path / "out" / "chat_clean.report.json").read_text())
    assert [c["source"] for c in conversations] == ["mychat"]
    assert report["kept"] == 1 and report["dropped"] == {"too_few_turns": 1}
    assert "too_few_turns" in result.stdout


def test_cli_rejects_an_unknown_format_in_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_pipeline.import_conversations",
            "--format",
            "csv",
            "--in_file",
            str(tmp_path),
            "--out_file",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "invalid choice: 'csv'" in result.stderr and "Traceback" not in result.stderr
