"""Hostile input through the data pipeline: nothing crashes a run, nothing hangs, nothing is lost or silently wrong.

The seeded corpus of `tests/helpers/hostile_corpus.py` goes through `run_data_pipeline.sh`
with two worker counts; the tests around it pin each defence on its own.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.deadline_pool import map_with_deadline
from data_pipeline.sharegpt_conversation import DROP_REASONS
from data_pipeline.sharegpt_markdown import clean_markdown, remove_empty_code_blocks
from data_pipeline.sharegpt_page import clean_page, inspect_page
from tests.helpers.hostile_corpus import (
    conversation_json,
    hostile_dumps,
    hostile_pages,
    next_data_page,
    turns,
    write_hostile_corpus,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_CORPUS = REPO_ROOT / "data_pipeline" / "examples" / "ShareGPT"
PIPELINE_OUTPUTS = (
    "sharegpt_clean.json",
    "sharegpt_clean.report.json",
    "sharegpt_gpt4.json",
    "openchat_tiny.train.json",
    "openchat_tiny.eval.json",
    "openchat_tiny.train.text.json",
    "openchat_tiny.eval.text.json",
    "openchat_tiny.report.json",
)


def run_pipeline(input_dir, output_dir, **env):
    return subprocess.run(
        ["bash", str(REPO_ROOT / "run_data_pipeline.sh"), str(input_dir), str(output_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable, **env},
    )


def run_module(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(fragment in lines[-1] for fragment in fragments), result.stderr


def strict_json(path):
    """JSON as the standard defines it: NaN and Infinity refused."""

    def refuse(name):
        raise ValueError(f"{path} holds {name}")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)


def small_input(folder, count=6):
    pages = folder / "ShareGPT"
    pages.mkdir(parents=True)
    for path in sorted(BUNDLED_CORPUS.glob("*.html"))[:count]:
        (pages / path.name).write_bytes(path.read_bytes())
    return folder


# ----------------------------------------------------------------------------- the whole hostile corpus

# What the cleaner must make of each hostile kind (kinds not listed are kept).
EXPECTED_REASONS = {
    "props_list": "no_content",
    "page_props_list": "no_content",
    "content_string": "no_content",
    "items_dict": "invalid_items",
    "huge_integer": "invalid_json",
    "huge_integer_elsewhere": "invalid_json",
    "deep_json": "invalid_json",
    "lone_surrogate": "invalid_unicode",
    "lone_surrogate_escaped": "invalid_unicode",
    "lone_surrogate_id": "invalid_unicode",
    "nan_views": "invalid_views",
    "infinity_views": "invalid_views",
    "float_views": "invalid_views",
    "negative_views": "invalid_views",
    "list_id": "invalid_id",
    "bool_id": "invalid_id",
    "unclosed_pre": "unparseable_markup",
    "unclosed_code": "unparseable_markup",
    "repeated_next_data": "invalid_json",
    "unclosed_comment": "no_next_data",
    "next_data_in_comment": "no_next_data",
    "truncated": "invalid_json",
    "unknown_roles": "unknown_role",
    "empty_file": "no_next_data",
    "not_utf8": "undecodable_bytes",
    "markup_too_deep": "unparseable_markup",
    "fifo": "not_regular_file",
    "symlink_to_device": "not_regular_file",
    "dangling_symlink": "unreadable_file",
    "symlink_loop": "unreadable_file",
    "folder_named_html": "unreadable_file",
    "too_large": "page_too_large",
    "slow_nested_quotes": "timeout",
    "upper_case_suffix": "not_html",
    "htm_suffix": "not_html",
    "other_file": "not_html",
    "folder": "not_html",
}


def test_hostile_corpus_runs_through_the_pipeline_fully_accounted_and_deterministic(tmp_path, tiny_model_dir):
    kinds = write_hostile_corpus(tmp_path / "in" / "ShareGPT", seed=0)
    assert len(os.listdir(tmp_path / "in" / "ShareGPT")) == len(kinds) >= 300
    dumps = hostile_dumps()
    entries = len(kinds) - len(dumps) + sum(len(outcomes) for _, _, outcomes in dumps.values())  # a record each
    out = tmp_path / "out"
    outputs = {}
    for workers in ("2", "1"):  # the same folder twice: the re-run also replaces every output
        started = time.monotonic()
        result = run_pipeline(
            tmp_path / "in",
            out,
            MODEL_PATHS=tiny_model_dir,
            NUM_WORKERS=workers,
            CLEAN_ARGS="--max_page_bytes 2000000 --page_timeout 5",
        )
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert elapsed < 60, f"hostile run took {elapsed:.0f} s"
        outputs[workers] = {name: (out / name).read_bytes() for name in PIPELINE_OUTPUTS}

    assert outputs["1"] == outputs["2"]  # a second run, with another worker count, writes the same bytes
    for name in PIPELINE_OUTPUTS:
        strict_json(out / name)
    report = strict_json(out / "sharegpt_clean.report.json")
    assert report["kept"] + report["duplicates"] + sum(report["dropped"].values()) + report["skipped"] == entries
    assert report["entries"] == entries == len(report["files"]) == len({entry["file"] for entry in report["files"]})
    assert report["kept"] == len(strict_json(out / "sharegpt_clean.json"))
    assert not [reason for reason in report["dropped"] if reason.startswith("error:")]
    assert set(report["dropped"]) <= set(DROP_REASONS)
    assert report["dropped"]["timeout"] == 1 and "worker_crashed" not in report["dropped"]

    by_file = {entry["file"]: entry for entry in report["files"]}
    for name, kind in kinds.items():
        if name in dumps:
            continue  # accounted record by record below
        entry = by_file[os.fsencode(name).decode("utf-8", "backslashreplace")]
        if kind in EXPECTED_REASONS:
            assert entry.get("reason") == EXPECTED_REASONS[kind], (name, entry)
    for name, (_, _, outcomes) in dumps.items():
        found = [by_file[f"{name}#{index}"] for index in range(len(outcomes))]
        assert [entry.get("reason", entry["status"]) for entry in found] == outcomes, name
    assert by_file["folder.html"]["detail"] == "Is a directory"
    assert by_file["dangling.html"]["detail"] == "No such file or directory"
    assert "name_\\xff.html" in by_file


# ----------------------------------------------------------------------------- a bad page is a drop, not a crash


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("props_list", "no_content"),
        ("huge_integer", "invalid_json"),
        ("deep_json", "invalid_json"),
        ("lone_surrogate", "invalid_unicode"),
        ("lone_surrogate_id", "invalid_unicode"),
    ],
)
def test_pages_python_refuses_are_dropped_with_a_reason(kind, reason):
    pages = {page_kind: page for page_kind, page in hostile_pages().values()}
    assert clean_page(pages[kind]) == (None, reason)


def test_an_unforeseen_failure_is_a_drop_named_after_the_exception():
    conversation, reason, detail = inspect_page(12345)  # neither a path nor bytes
    assert conversation is None and reason == "error:TypeError" and detail


def test_a_kept_page_never_holds_text_utf8_cannot_write(tmp_path):
    (tmp_path / "a.html").write_bytes(next_data_page(conversation_json(turns(question="ok \ud83d\ude00"))))
    (tmp_path / "b.html").write_bytes(next_data_page(conversation_json(turns(question="bad \udfff"))))
    conversations, report = clean_pages(sorted(tmp_path.glob("*.html")))
    assert [conversation["items"][0]["value"] for conversation in conversations] == ["ok \U0001f600"]
    assert report["dropped"] == {"invalid_unicode": 1}
    json.dumps(conversations, ensure_ascii=False).encode("utf-8")


# ----------------------------------------------------------------------------- linear patterns, page deadline


def seconds(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


@pytest.mark.parametrize(
    "text",
    [
        "a```\n" + "\n" * 200_000 + "b",  # empty-code-block pattern entered at every newline
        "\n" * 200_000 + "```\nx",
        "```\n" + "x" * 200_000,  # an unclosed fence
        "Copy" + "9" * 200_000,
    ],
)
def test_markdown_cleanup_is_linear_on_long_runs(text):
    assert seconds(clean_markdown, text) < 2


@pytest.mark.parametrize(
    "html",
    [
        "<pre" * 32_000,
        "<pre><code>" + "<code" * 32_000 + "</pre>",
        "<p>x</p>" + "<span" * 32_000,
        "<pre><div><div><span>py</span><button>" * 8_000,
        "<!--" * 32_000,
    ],
)
def test_markup_with_unclosed_tags_cleans_in_linear_time(html):
    assert seconds(clean_page, next_data_page(conversation_json(turns(html)))) < 5  # quadratic: 10-45 s


def test_new_empty_code_block_pattern_matches_like_the_quadratic_one():
    quadratic = re.compile(r"\n*```\n[^\n`]*Copy code\s*```\n*")
    rng = random.Random(0)
    pieces = ["\n", "\n\n", "```\n", "```", "Copy code", "python", " ", "x", "`"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        assert remove_empty_code_blocks(text) == quadratic.sub("\n\n", text), repr(text)


def hang_on_negative(number):
    if number < 0:
        time.sleep(600)
    if number == 13:
        os._exit(3)  # a worker that dies mid-item
    return number * 2


def test_pool_replaces_a_stuck_or_dead_worker_and_keeps_order():
    items = [1, -1, 2, 3, 13, 4, -2, 5, 6]
    started = time.monotonic()
    results = list(
        map_with_deadline(hang_on_negative, items, num_workers=2, timeout=2.0, timed_out="timeout", crashed="crashed")
    )
    assert results == [2, "timeout", 4, 6, "crashed", 8, "timeout", 10, 12]
    assert time.monotonic() - started < 30


def test_a_page_over_the_time_budget_is_dropped_as_timeout_and_the_run_goes_on(tmp_path):
    pages = tmp_path / "ShareGPT"
    pages.mkdir()
    (pages / "a.html").write_bytes(next_data_page(conversation_json(turns(question="first"), page_id="a")))
    (pages / "b.html").write_bytes(next_data_page(conversation_json(turns("<p><b>x</b></p>" * 200_000), page_id="b")))
    (pages / "c.html").write_bytes(next_data_page(conversation_json(turns(question="third"), page_id="c")))
    out_file = tmp_path / "clean.json"
    result = run_module(
        "data_pipeline.clean_sharegpt",
        "--in_dir",
        pages,
        "--out_file",
        out_file,
        "--page_timeout",
        "1",
        "--num_workers",
        "1",
    )
    assert result.returncode == 0, result.stderr
    report = strict_json(tmp_path / "clean.report.json")
    assert report["dropped"] == {"timeout": 1}
    assert [entry["status"] for entry in report["files"]] == ["kept", "dropped", "kept"]


# ----------------------------------------------------------------------------- only regular files, size cap


def test_fifo_device_and_oversized_pages_are_dropped_unread(tmp_path):
    os.mkfifo(tmp_path / "p.html")
    os.symlink("/dev/zero", tmp_path / "zero.html")
    (tmp_path / "big.html").write_bytes(b" " * 5000)
    paths = [tmp_path / name for name in ("big.html", "p.html", "zero.html")]
    _, report = clean_pages(paths, page_timeout=20, max_page_bytes=4000)
    assert [(entry["reason"], entry["detail"]) for entry in report["files"]] == [
        ("page_too_large", "5000 bytes, limit 4000"),
        ("not_regular_file", "a FIFO"),
        ("not_regular_file", "a character device"),
    ]


# ----------------------------------------------------------------------------- accounting


def test_every_folder_entry_is_accounted_for_in_the_report(tmp_path):
    pages = tmp_path / "ShareGPT"
    pages.mkdir()
    good = sorted(BUNDLED_CORPUS.glob("*.html"))[0].read_bytes()
    for name in ("PAGE.HTML", "page.htm", "keep.html", "notes"):
        (pages / name).write_bytes(good)
    (pages / "dir.html").mkdir()
    result = run_module("data_pipeline.clean_sharegpt", "--in_dir", pages, "--out_file", tmp_path / "c.json")
    assert result.returncode == 0, result.stderr
    report = strict_json(tmp_path / "c.report.json")
    assert [(entry["file"], entry["status"], entry.get("reason")) for entry in report["files"]] == [
        ("PAGE.HTML", "skipped", "not_html"),
        ("dir.html", "dropped", "unreadable_file"),
        ("keep.html", "kept", None),
        ("notes", "skipped", "not_html"),
        ("page.htm", "skipped", "not_html"),
    ]
    assert report["files"][1]["detail"] == "Is a directory"
    assert (report["entries"], report["kept"], report["skipped"]) == (5, 1, 3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied_is_kept_in_the_detail(tmp_path):
    page = tmp_path / "locked.html"
    page.write_bytes(b"x")
    page.chmod(0)
    assert inspect_page(page)[1:] == ("unreadable_file", "Permission denied")


@pytest.mark.parametrize(
    "page, reason",
    [
        (next_data_page(conversation_json(turns()))[:-40], "invalid_json"),  # saved half-way: the script never closes
        (
            next_data_page(conversation_json([{"from": "user", "value": "q"}, {"from": "assistant", "value": "a"}])),
            "unknown_role",
        ),
        (
            b'<html><!-- <script id="__NEXT_DATA__">' + conversation_json(turns()).encode() + b"</script> --></html>",
            "no_next_data",
        ),
    ],
)
def test_drop_reasons_name_the_real_fault(page, reason):
    assert clean_page(page) == (None, reason)


# ----------------------------------------------------------------------------- metadata types


@pytest.mark.parametrize(
    "raw_id, raw_views, expected",
    [
        ('"abc"', "42", ("abc", 42)),
        ("123", "42.0", ("123", 42)),
        ('"abc"', '"17"', ("abc", 17)),
        ('"abc"', "null", ("abc", None)),
        ("null", "1", ("page", 1)),
        ('"abc"', "NaN", "invalid_views"),
        ('"abc"', "Infinity", "invalid_views"),
        ('"abc"', "-1", "invalid_views"),
        ('"abc"', "true", "invalid_views"),
        ('"abc"', "[1]", "invalid_views"),
        ('"abc"', "1.5", "invalid_views"),
        ("{}", "1", "invalid_id"),
        ("1.5", "1", "invalid_id"),
        ("false", "1", "invalid_id"),
    ],
)
def test_ids_and_views_are_normalised_or_the_page_dropped(tmp_path, raw_id, raw_views, expected):
    path = tmp_path / "page.html"
    path.write_bytes(next_data_page(conversation_json(turns(), raw_id=raw_id, raw_views=raw_views)))
    conversation, reason = clean_page(path)
    if isinstance(expected, str):
        assert (conversation, reason) == (None, expected)
    else:
        assert (conversation["id"], conversation["views"]) == expected


def test_filter_refuses_nan_in_its_input_instead_of_passing_it_on(tmp_path):
    source = tmp_path / "clean.json"
    source.write_text('[{"id": "a", "model": "Model: GPT-4", "views": NaN, "items": []}]')
    result = run_module("data_pipeline.filter_sharegpt", "--in_file", source, "--out_file", tmp_path / "out.json")
    assert_one_line_error(result, "NaN")
    assert not (tmp_path / "out.json").exists()


# ----------------------------------------------------------------------------- model folders checked first


@pytest.mark.parametrize("case", ["wrong_architecture", "no_eot", "unknown_type"])
def test_model_problems_stop_the_pipeline_before_cleaning(tmp_path, tiny_model_dir, tiny_base_dir, case):
    model_type, model_path, message = {
        "wrong_architecture": ("opencoder_tiny", tiny_model_dir, "needs a gpt_bigcode model"),
        "no_eot": ("openchat_tiny", tiny_base_dir, "add_eot_token"),
        "unknown_type": ("openchat_huge_tiny", "", "unknown model type"),
    }[case]
    env = {"MODEL_TYPES": model_type, **({"MODEL_PATHS": model_path} if model_path else {})}
    result = run_pipeline(small_input(tmp_path / "in"), tmp_path / "out", **env)
    assert_one_line_error(result, message)
    assert not (tmp_path / "out" / "sharegpt_clean.json").exists()  # found before the clean stage ran


@pytest.mark.parametrize(
    "tokenizer_files, message",
    [
        ({}, "has no tokenizer"),
        ({"tokenizer.model": b"not a sentencepiece model"}, "unreadable or incomplete"),
    ],
)
def test_a_folder_without_a_usable_tokenizer_is_named_not_blamed_on_a_library(
    tmp_path, tiny_model_dir, tokenizer_files, message
):
    from data_pipeline.generate_dataset import check_model_path
    from ochat.config import get_model_config

    (tmp_path / "config.json").write_bytes((Path(tiny_model_dir) / "config.json").read_bytes())
    for name, data in tokenizer_files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError) as raised:
        check_model_path(get_model_config("openchat_tiny"), str(tmp_path))
    assert message in str(raised.value) and "install" not in str(raised.value)


# ----------------------------------------------------------------------------- no stale outputs


def test_a_failed_rerun_leaves_no_output_of_the_previous_run(tmp_path, tiny_model_dir):
    small_input(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    for name in PIPELINE_OUTPUTS:  # what an earlier run left
        (out / name).write_text('"from an earlier run"')

    result = run_pipeline(tmp_path / "in", out, MODEL_PATHS=tiny_model_dir, GENERATE_ARGS="--eval_ratio 7")
    assert result.returncode != 0 and "--eval_ratio" in result.stderr
    assert strict_json(out / "sharegpt_gpt4.json") != "from an earlier run"
    assert not [name for name in PIPELINE_OUTPUTS[3:] if (out / name).exists()]
    assert not list(out.glob(".*.tmp"))


# ----------------------------------------------------------------------------- one-line errors


@pytest.mark.parametrize("stage", ["clean", "filter", "convert"])
def test_an_unwritable_output_is_one_line_error(tmp_path, tiny_data_dir, tiny_model_dir, stage):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    gpt4 = os.path.join(tiny_data_dir, "sharegpt_gpt4.json")
    result = {
        "clean": lambda: run_module(
            "data_pipeline.clean_sharegpt",
            "--in_dir",
            BUNDLED_CORPUS,
            "--out_file",
            blocker / "clean.json",
            "--num_workers",
            "1",
        ),
        "filter": lambda: run_module(
            "data_pipeline.filter_sharegpt", "--in_file", gpt4, "--out_file", blocker / "gpt4.json"
        ),
        "convert": lambda: run_module(
            "data_pipeline.generate_dataset",
            "--model_type",
            "openchat_tiny",
            "--model_path",
            tiny_model_dir,
            "--in_file",
            gpt4,
            "--out_dir",
            blocker,
        ),
    }[stage]()
    assert_one_line_error(result, str(blocker))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line_error(tmp_path):
    out = tmp_path / "read_only"
    out.mkdir()
    out.chmod(0o555)
    result = run_module("data_pipeline.clean_sharegpt", "--in_dir", BUNDLED_CORPUS, "--out_file", out / "c.json")
    assert_one_line_error(result, "Permission denied")


def test_token_ids_as_strings_are_a_clear_data_error(tmp_path):
    from ochat.training_deepspeed.data import DataError, load_samples

    path = tmp_path / "openchat_tiny.train.json"
    path.write_text(json.dumps([[["1", "2"], [False, True]]]))
    with pytest.raises(DataError, match="not an integer"):
        load_samples(str(path), vocab_size=100, max_context=10)


def test_readme_explains_every_drop_reason_in_one_line():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for reason in DROP_REASONS + ("duplicate", "not_html"):
        shown = "error:<ExceptionType>" if reason == "error:" else reason
        assert (
            len(re.findall(rf"^\| `{re.escape(shown)}` \| .+ \|$", readme, re.M)) == 1 or f"`{shown}` (status" in readme
        )


def test_hostile_corpus_is_the_same_for_the_same_seed(tmp_path):
    def regular_files(folder):
        return {
            path.name: path.read_bytes()
            for path in sorted(folder.iterdir())
            if path.is_file() and not path.is_symlink() and path.name != "p.html"
        }

    write_hostile_corpus(tmp_path / "a", seed=3, mutations=20)
    write_hostile_corpus(tmp_path / "b", seed=3, mutations=20)
    write_hostile_corpus(tmp_path / "c", seed=4, mutations=20)
    assert regular_files(tmp_path / "a") == regular_files(tmp_path / "b") != regular_files(tmp_path / "c")
