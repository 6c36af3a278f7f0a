"""ShareGPT JSON dumps through clean_sharegpt: the page rules per record, FILE#INDEX accounting, HTML only where
HTML, streaming in batches, and run_data_pipeline.sh on a folder of pages and a dump."""

import json
import os
import subprocess

import pytest

import data_pipeline.clean_sharegpt as clean_sharegpt
from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.sharegpt_dump import record_from_page, value_holds_html
from tests.conftest import EXAMPLES_DIR, REPO_ROOT, TINY_MODEL_TYPE, run_module

BUNDLED_PAGES = sorted(
    (p for p in os.scandir(os.path.join(EXAMPLES_DIR, "ShareGPT")) if p.name.endswith(".html")),
    key=lambda entry: entry.name,
)


def bundled_records():
    """The bundled pages as an old-style dump (HTML values), in file order."""
    records = []
    for entry in BUNDLED_PAGES:
        with open(entry.path, "rb") as handle:
            record = record_from_page(handle.read())
        if record is not None:
            records.append(record)
    return records


def write_dump(path, records):
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def report_entries(report, status=None):
    return [entry for entry in report["files"] if status is None or entry["status"] == status]


def test_value_holds_html_looks_past_code():
    assert value_holds_html('<div class="markdown"><p>Hi</p></div>')
    assert value_holds_html("Some text<br>more")
    assert not value_holds_html("Use the `<div>` element:\n\n```html\n<div><p>x</p></div>\n```")
    assert not value_holds_html("if a < b and c > d: pass")


def test_a_dump_of_the_bundled_pages_cleans_to_the_pages_conversations(tmp_path):
    records = bundled_records()
    dump = write_dump(tmp_path / "dump.json", records)
    page_conversations, _ = clean_pages([entry.path for entry in BUNDLED_PAGES], num_workers=2)
    dump_conversations, report = clean_pages([dump], num_workers=2)
    assert dump_conversations == page_conversations
    assert report["total_files"] == len(records)
    assert report_entries(report)[0]["file"] == "dump.json#0"
    assert report["kept"] + report["duplicates"] + sum(report["dropped"].values()) == len(records)


def test_records_follow_the_page_rules_and_markdown_values_stay_as_written(tmp_path):
    markdown_answer = "Here you go:\n\n```python\nprint('<b>hi</b>')\n```\n\n- one\n- two"
    dump = write_dump(
        tmp_path / "d.json",
        [
            {
                "id": "md",
                "model": "Model: GPT-4",
                "conversations": [
                    {"from": "system", "value": "You are ChatGPT"},
                    {"from": "human", "value": "Show me"},
                    {"from": "gpt", "value": markdown_answer},
                ],
            },
            {
                "id": "html",
                "conversations": [
                    {"from": "user", "value": "Bold?"},
                    {"from": "assistant", "value": "<p>Use <strong>b</strong></p>"},
                ],
            },
            {
                "id": "blocked",
                "conversations": [{"from": "human", "value": "Who made you?"}, {"from": "gpt", "value": "OpenAI did."}],
            },
            {"id": "short", "conversations": [{"from": "human", "value": "hello"}]},
            {"id": "bing", "conversations": [{"from": "human", "value": "q"}, {"from": "bing", "value": "a"}]},
            {"conversations": [{"from": "human", "value": "no id"}, {"from": "gpt", "value": "fine"}]},
            {
                "id": "views",
                "views": "many",
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
            },
            ["not", "a", "record"],
            {
                "id": "md-again",
                "conversations": [{"from": "human", "value": "Show me"}, {"from": "gpt", "value": markdown_answer}],
            },
        ],
    )
    conversations, report = clean_pages([dump])
    assert [c["id"] for c in conversations] == ["md", "html", "d.json#5"]
    assert conversations[0]["items"][1]["value"] == markdown_answer
    assert conversations[0]["model"] == "Model: GPT-4"
    assert conversations[1]["items"] == [{"from": "human", "value": "Bold?"}, {"from": "gpt", "value": "Use **b**"}]
    reasons = {entry["file"]: entry.get("reason") for entry in report_entries(report) if entry["status"] != "kept"}
    assert reasons == {
        "d.json#2": "blocked_word",
        "d.json#3": "too_few_turns",
        "d.json#4": "unknown_role",
        "d.json#6": "invalid_views",
        "d.json#7": "invalid_items",
        "d.json#8": "duplicate",
    }
    assert report_entries(report, "duplicate")[0]["duplicate_of"] == "d.json#0"


def test_a_truncated_dump_keeps_what_came_before_and_says_where_it_broke(tmp_path):
    records = bundled_records()[:40]
    text = json.dumps(records)
    dump = tmp_path / "cut.json"
    dump.write_text(text[: len(text) // 2], encoding="utf-8")
    conversations, report = clean_pages([dump])
    [broken] = [entry for entry in report_entries(report) if entry.get("reason") == "bad_json"]
    broken_index = int(broken["file"].rsplit("#", 1)[1])
    assert 10 < broken_index < 30 and report["total_files"] == broken_index + 1
    assert all(int(entry["file"].rsplit("#", 1)[1]) < broken_index for entry in report_entries(report, "kept"))


def test_json_lines_dump_and_a_fifo_named_json(tmp_path):
    records = bundled_records()[:5]
    (tmp_path / "a.json").write_text("".join(json.dumps(record) + "\n" for record in records))
    os.mkfifo(tmp_path / "b.json")
    conversations, report = clean_pages([tmp_path / "a.json", tmp_path / "b.json"])
    assert report["total_files"] == 6
    assert report_entries(report)[-1] == {
        "file": "b.json",
        "status": "dropped",
        "reason": "not_regular_file",
        "detail": "a FIFO",
    }
    assert [c["id"] for c in conversations] == [r["id"] for r in records if r["id"] in {c["id"] for c in conversations}]


def test_small_batches_give_the_same_output_as_one_batch(tmp_path, monkeypatch):
    dump = write_dump(tmp_path / "dump.json", bundled_records()[:60])
    pages = [entry.path for entry in BUNDLED_PAGES[:20]]
    whole = clean_pages([dump, *pages], num_workers=2)
    monkeypatch.setattr(clean_sharegpt, "DUMP_BATCH", 7)
    assert clean_pages([dump, *pages], num_workers=2) == whole


def test_cli_reads_a_folder_of_pages_and_dumps_and_a_single_in_file(tmp_path):
    folder = tmp_path / "ShareGPT"
    folder.mkdir()
    for entry in BUNDLED_PAGES[:60]:
        (folder / entry.name).write_bytes(open(entry.path, "rb").read())
    extra = [
        {
            "id": f"dump{index}",
            "conversations": [
                {"from": "human", "value": f"question {index}"},
                {"from": "gpt", "value": f"<p>answer {index}</p>"},
            ],
        }
        for index in range(5)
    ]
    write_dump(folder / "zz_dump.json", extra)
    (folder / "notes.txt").write_text("not data")
    out = tmp_path / "out" / "clean.json"
    run_module("data_pipeline.clean_sharegpt", "--in_dir", str(folder), "--out_file", str(out))
    conversations = json.loads(out.read_text())
    report = json.loads(out.with_name("clean.report.json").read_text())
    assert [c["id"] for c in conversations][-5:] == [f"dump{index}" for index in range(5)]
    assert conversations[-1]["items"][1]["value"] == "answer 4"
    assert report["total_files"] == 65 and report["skipped"] == 1

    single = tmp_path / "single.json"
    run_module("data_pipeline.clean_sharegpt", "--in-file", str(folder / "zz_dump.json"), "--out-file", str(single))
    assert json.loads(single.read_text()) == conversations[-5:]
    assert json.loads(single.with_name("single.report.json").read_text())["in_file"].endswith("zz_dump.json")


@pytest.mark.timeout(600)
def test_run_data_pipeline_runs_unchanged_on_pages_and_a_dump(tmp_path, tiny_model_dir):
    input_folder = tmp_path / "INPUT"
    (input_folder / "ShareGPT").mkdir(parents=True)
    for entry in BUNDLED_PAGES[:40]:
        (input_folder / "ShareGPT" / entry.name).write_bytes(open(entry.path, "rb").read())
    dump_records = [{**record, "id": "dump-" + str(record["id"])} for record in bundled_records()[40:100]]
    write_dump(input_folder / "ShareGPT" / "sharegpt_dump.json", dump_records)
    out = tmp_path / "OUT"
    result = subprocess.run(
        [os.path.join(REPO_ROOT, "run_data_pipeline.sh"), str(input_folder), str(out)],
        env={**os.environ, "MODEL_TYPES": TINY_MODEL_TYPE, "MODEL_PATHS": tiny_model_dir},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cleaned = json.loads((out / "sharegpt_clean.json").read_text())
    ids = [c["id"] for c in cleaned]
    assert any(i.startswith("dump-") for i in ids) and any(not i.startswith("dump-") for i in ids)
    train = json.loads((out / f"{TINY_MODEL_TYPE}.train.json").read_text())
    assert len(train) > 0


def test_a_record_nested_without_end_is_skipped_and_reported_without_building_it(tmp_path):
    good = {"id": "ok", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    deep = '{"id": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    dump = tmp_path / "hostile.json"
    dump.write_text(
        "["
        + json.dumps(good)
        + ","
        + deep
        + ","
        + json.dumps(
            {**good, "id": "ok2", "conversations": [{"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]}
        )
        + "]"
    )
    lines = tmp_path / "hostile_lines.json"
    lines.write_text("{" + '"x": ' + "[" * 500 + "]" * 500 + "}\n" + json.dumps(good) + "\n")
    conversations, report = clean_pages([dump, lines])
    assert [c["id"] for c in conversations] == ["ok", "ok2"]
    reasons = [(e["file"], e["status"], e.get("reason"), e.get("detail")) for e in report["files"]]
    assert ("hostile.json#1", "dropped", "bad_json", "nested deeper than 64 levels") in reasons
    assert ("hostile_lines.json#0", "dropped", "bad_json", "nested deeper than 64 levels") in reasons
    assert ("hostile_lines.json#1", "duplicate", "duplicate", None) in reasons
