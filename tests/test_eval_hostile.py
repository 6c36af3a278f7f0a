"""Evaluation inputs that used to crash or be read wrongly: verdicts without their format, stale verdicts on
`--continue`, reviews listed twice, broken answer files and hand-edited call logs."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from evaluation.benchmark_data import answer_path, benchmark_name, load_answers, read_jsonl
from evaluation.judge import CallLog, JudgeRequest, read_call_log, run_judgements
from evaluation.summarize import unique_reviews
from evaluation.verdicts import VERDICT_KINDS, parse_score_pair
from tests.helpers.repo import REPO_ROOT


@pytest.mark.parametrize(
    "reply",
    [
        "-1 7",
        "Scores: -1, 7",
        "Assistant 1 lists 3 steps while Assistant 2 lists 5 steps.",
        "Both answers are fine.\nThe first has 2 examples, the second 4.",
    ],
)
def test_a_reply_without_a_verdict_in_its_format_is_unreadable(reply):
    assert parse_score_pair(reply) is None
    assert VERDICT_KINDS["score_pair"].parse(reply, structured=True) is None  # a non-JSON reply under --structured


def test_a_verdict_line_still_reads_after_prose_with_numbers():
    assert parse_score_pair("Assistant 1 lists 3 steps while Assistant 2 lists 5 steps.\n7 9") == (7.0, 9.0)
    assert parse_score_pair("8-7") == (8.0, 7.0)


def request(answer):
    return JudgeRequest(
        key=("m", 1, "model_first", 0), messages=[{"role": "user", "content": answer}], kind="rating", model="judge"
    )


class CountingJudge:
    def __init__(self):
        self.asked = []

    async def ask(self, judge_request):
        self.asked.append(judge_request)
        return {
            "key": list(judge_request.key),
            "kind": judge_request.kind,
            "text": "[[7]]",
            "verdict": 7.0,
            "failed": False,
            "error": None,
            "content_sha256": judge_request.content_sha256(),
        }


def test_continue_asks_again_when_what_the_judge_was_shown_changed(tmp_path):
    path = tmp_path / "x.calls.jsonl"
    judge = CountingJudge()
    log = CallLog(path)
    asyncio.run(run_judgements([request("old answer")], log, judge, "judging"))
    log.close()
    for answer, asked in (("old answer", 1), ("new answer", 2)):
        log = CallLog(path, resume=True)
        asyncio.run(run_judgements([request(answer)], log, judge, "judging"))
        log.close()
        assert len(judge.asked) == asked
    assert (
        CallLog(path, resume=True).get(request("new answer").key)["content_sha256"]
        == request("new answer").content_sha256()
    )


@pytest.mark.parametrize(
    "kind, verdict",
    [("rating", "seven"), ("rating", 70), ("score_pair", [8]), ("score_pair", [8, "x"]), ("verdict_abc", "D")],
)
def test_a_hand_edited_call_log_verdict_is_one_line_naming_file_and_line(tmp_path, kind, verdict):
    path = tmp_path / "x.calls.jsonl"
    good = {"key": ["a"], "kind": kind, "verdict": None, "failed": True, "error": None}
    edited = {"key": ["b"], "kind": kind, "verdict": verdict, "failed": False, "error": None}
    path.write_text(json.dumps(good) + "\n" + json.dumps(edited) + "\n")
    with pytest.raises(SystemExit) as raised:
        read_call_log(path)
    assert str(raised.value).startswith(f"{path}:2: verdict") and "\n" not in str(raised.value)


def answer_lines(*lines):
    return b"".join(line + b"\n" for line in lines)


@pytest.mark.parametrize(
    "content, where",
    [
        (
            answer_lines(b'{"question_id": 1, "model": "m", "text": "a"}', b'{"question_id": 2, "model": "m", "te'),
            ":2: not valid JSON",
        ),
        (answer_lines('{"question_id": 1, "model": "m", "text": "caf\xe9"}'.encode("latin-1")), ":1: not UTF-8 text"),
    ],
)
def test_an_answer_file_that_cannot_be_read_is_one_line_naming_file_and_line(tmp_path, content, where):
    path = tmp_path / "vicuna_m.jsonl"
    path.write_bytes(content)
    for reader in (load_answers, read_jsonl):
        with pytest.raises(SystemExit) as raised:
            reader(path)
        message = str(raised.value)
        assert f"{path}{where}" in message and "\n" not in message


def review(model, question_id, score):
    return {"model": model, "baseline": "gpt-3.5", "question_id": question_id, "score_model": score}


def test_the_same_reviews_in_a_folder_and_its_reviews_folder_count_once(tmp_path):
    records = [review("mine", 1, 8.0), review("mine", 2, 7.0)]
    files = [(tmp_path / "mine_vs_gpt.jsonl", records), (tmp_path / "reviews" / "mine_vs_gpt.jsonl", list(records))]
    assert unique_reviews(files) == [records]
    files[1] = (files[1][0], [review("mine", 1, 3.0)])
    with pytest.raises(SystemExit, match="both review mine against gpt-3.5, differently"):
        unique_reviews(files)


def test_the_readme_names_mt_bench_sample_answer_files_as_the_modes_read_them():
    readme = open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8").read()
    bench = benchmark_name(os.path.join(REPO_ROOT, "evaluation", "mt_bench_sample"))
    assert answer_path("eval_results", bench, "openchat").name == "mt_bench_sample_openchat.jsonl"
    assert "`mt_bench_sample_openchat.jsonl` for `--data_path evaluation/mt_bench_sample`" in readme
