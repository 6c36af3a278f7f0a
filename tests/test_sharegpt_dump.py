"""ShareGPT JSON dumps through clean_sharegpt: the page rules per record, FILE#INDEX accounting, HTML only where
HTML, streaming in batches, and run_data_pipeline.sh on a folder of pages and a dump."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import data_pipeline.clean_workers as clean_workers
from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.sharegpt_dump import value_holds_html
from data_pipeline.sharegpt_page import record_from_page
from tests.helpers.repo import EXAMPLES_DIR, REPO_ROOT, TINY_MODEL_TYPE, run_module

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


def test_only_an_answer_that_opens_with_a_block_element_is_html():
    assert value_holds_html('<div class="markdown"><p>Hi</p></div>')
    assert value_holds_html("2 / 2<div><p>Hi</p></div>")
    assert value_holds_html("<p>Use <b>this</b></p>")
    assert not value_holds_html("Some text<br>more")
    assert not value_holds_html("Use the `<div>` element:\n\n```html\n<div><p>x</p></div>\n```")
    assert not value_holds_html("if a < b and c > d: pass")


def test_a_markdown_answer_with_an_inline_tag_keeps_its_blank_lines_code_and_comparisons(tmp_path):
    answer = "First line<br>still first.\n\nSecond paragraph: a<b and b>c.\n\n```python\nif x:\n    return 1\n```"
    record = {"id": "md", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": answer}]}
    [conversation], _ = clean_pages([write_dump(tmp_path / "d.json", [record])])
    assert conversation["items"][1]["value"] == answer


def sharegpt_record(record_id, question="q", answer="a"):
    return {"id": record_id, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}


def accounted(report):
    return report["kept"] + report["duplicates"] + sum(report["dropped"].values()) + report["skipped"]


GOOD = [json.dumps(sharegpt_record(f"r{index}", f"question {index}")) for index in range(3)]
MALFORMED_DUMPS = {
    # name: (text, records kept, drop reasons)
    "bom": ("\ufeff[" + ",".join(GOOD) + "]", 3, {}),
    "nan": ("[" + GOOD[0] + ',{"id": "x", "views": NaN},' + ",".join(GOOD[1:]) + "]", 3, {"invalid_items": 1}),
    "nan_views": (
        "[" + GOOD[0] + "," + json.dumps(sharegpt_record("x", "nan?"))[:-1] + ',"views": NaN},' + GOOD[1] + "]",
        2,
        {"invalid_views": 1},
    ),
    "infinity": (
        "[" + GOOD[0] + ',{"id": "x", "score": -Infinity},' + ",".join(GOOD[1:]) + "]",
        3,
        {"invalid_items": 1},
    ),
    "1e400": ("[" + GOOD[0] + ',{"id": "x", "views": 1e400},' + ",".join(GOOD[1:]) + "]", 3, {"invalid_items": 1}),
    "30_digits": ("[" + GOOD[0] + ',{"id": ' + "9" * 30 + "}," + ",".join(GOOD[1:]) + "]", 3, {"invalid_items": 1}),
    "5000_digits": ("[" + GOOD[0] + ',{"id": ' + "9" * 5000 + "}," + ",".join(GOOD[1:]) + "]", 3, {"bad_json": 1}),
    "syntax_error": ("[" + GOOD[0] + ',{"id": "x",, "y": 1},' + ",".join(GOOD[1:]) + "]", 3, {"bad_json": 1}),
    "brackets_in_strings": ("[" + json.dumps(sharegpt_record("s", '[{,]}\\"', "}],[{")) + "," + GOOD[0] + "]", 2, {}),
    "second_list": ("[" + GOOD[0] + "]\n[" + ",".join(GOOD[1:]) + "]", 3, {}),
    "garbage_after": ("[" + ",".join(GOOD) + "] trailing text", 3, {"bad_json": 1}),
    "trailing_comma": ("[" + ",".join(GOOD) + ",]", 3, {"bad_json": 1}),
    "cut_after_a_record": ("[" + ",".join(GOOD) + ",", 3, {"bad_json": 1}),
    "not_utf8": ("[" + GOOD[0] + ',{"id": "caf\udcff"},' + GOOD[1] + "]", 2, {"bad_json": 1}),
}


@pytest.mark.parametrize("name", MALFORMED_DUMPS)
def test_every_record_of_a_malformed_dump_is_kept_or_dropped_with_a_reason(tmp_path, name):
    text, kept, dropped = MALFORMED_DUMPS[name]
    dump = tmp_path / f"{name}.json"
    dump.write_bytes(text.encode("utf-8", "surrogateescape"))
    conversations, report = clean_pages([dump], num_workers=1)
    assert (report["kept"], report["dropped"]) == (kept, dropped)
    assert report["entries"] == accounted(report) == len(report["files"])
    assert len(conversations) == kept


def test_a_huge_record_and_a_string_across_read_chunks_are_cut_whole(tmp_path, monkeypatch):
    import data_pipeline.sharegpt_dump as sharegpt_dump

    monkeypatch.setattr(sharegpt_dump, "READ_CHUNK", 7)
    answer = 'long "quoted" \\ answer, with [brackets] and {braces} ' * 50
    records = [sharegpt_record("a", "q1", answer), sharegpt_record("b", "q2"), sharegpt_record("c", "q3")]
    dump = write_dump(tmp_path / "d.json", records)
    entries = list(sharegpt_dump.iter_dump(dump))
    assert [entry.record for entry in entries] == records


def test_ids_0_and_text_0_are_one_id_and_the_second_is_dropped(tmp_path):
    records = [sharegpt_record(0, "first"), sharegpt_record("0", "second"), sharegpt_record("1", "third")]
    conversations, report = clean_pages([write_dump(tmp_path / "d.json", records)])
    assert [c["id"] for c in conversations] == ["0", "1"]
    [dropped] = report_entries(report, "dropped")
    assert dropped["reason"] == "duplicate_id" and "d.json#0" in dropped["detail"]
    assert report["entries"] == accounted(report) == 3


def test_the_regeneration_counter_goes_only_where_sharegpt_put_it(tmp_path):
    records = [
        sharegpt_record("markdown", "10 / 2 = ?", "10 / 2 = 5"),
        sharegpt_record("html", "2 / 2What is 3 / 4?", "1 / 2<div><p>0.75</p></div>"),
        sharegpt_record("html_spaced", "10 / 2 = ?", "<div><p>5</p></div>"),
        sharegpt_record("stacked", "1 / 12 / 3Quick question?", "1 / 1<p>Yes.</p>"),
        sharegpt_record("digits", "10 / 23 apples, 4 / 5 pears?", "<p>" + "9" * 5000 + " / " + "9" * 5000 + "</p>"),
    ]
    conversations, _ = clean_pages([write_dump(tmp_path / "d.json", records)])
    assert [[item["value"] for item in c["items"]] for c in conversations] == [
        ["10 / 2 = ?", "10 / 2 = 5"],
        ["What is 3 / 4?", "0.75"],
        ["10 / 2 = ?", "5"],
        ["Quick question?", "Yes."],
        ["10 / 23 apples, 4 / 5 pears?", "9" * 5000 + " / " + "9" * 5000],
    ]


@pytest.mark.parametrize(
    "question, answer, reason",
    [
        ("Who made you?", "ｏｐｅｎａｉ did", "blocked_word"),
        ("Who made you?", "Open\u200bAI did", "blocked_word"),
        ("Who made you?", "Open\u00adAI did", "blocked_word"),
        ("\u200b", "an answer", "empty_turn"),
        ("a question", "\u200b\u2060\ufeff \u3000", "empty_turn"),
    ],
)
def test_invisible_and_fullwidth_characters_do_not_hide_a_blocked_word_or_an_empty_turn(
    tmp_path, question, answer, reason
):
    conversations, report = clean_pages([write_dump(tmp_path / "d.json", [sharegpt_record("x", question, answer)])])
    assert conversations == [] and report["dropped"] == {reason: 1}


def test_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path):
    dump = write_dump(tmp_path / "d.json", [sharegpt_record("x")])
    before = dump.read_bytes()
    result = run_module_result("--in_file", dump, "--out_file", dump)
    assert result.returncode == 2 and "is the input file" in result.stderr.splitlines()[-1]
    folder = tmp_path / "ShareGPT"
    folder.mkdir()
    write_dump(folder / "d.json", [sharegpt_record("x")])
    result = run_module_result("--in_dir", folder, "--out_file", folder / "clean.json")
    assert result.returncode == 2 and "inside the input folder" in result.stderr.splitlines()[-1]
    assert dump.read_bytes() == before and sorted(os.listdir(folder)) == ["d.json"]


def run_module_result(*args):
    return subprocess.run(
        [sys.executable, "-m", "data_pipeline.clean_sharegpt", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_sigterm_mid_dump_leaves_no_temporary_file(tmp_path):
    records = [
        sharegpt_record(f"r{index}", f"question {index}", f"<div><p>answer {index}</p><ul><li>x</li></ul></div>")
        for index in range(40_000)
    ]
    dump = write_dump(tmp_path / "big.json", records)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "data_pipeline.clean_sharegpt",
            "--in_file",
            str(dump),
            "--out_file",
            str(out / "c.json"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(name.endswith(".tmp") for name in os.listdir(out))):
        assert process.poll() is None and time.monotonic() < deadline, "no temporary output appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert os.listdir(out) == []


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
    monkeypatch.setattr(clean_workers, "DUMP_BATCH", 7)
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
