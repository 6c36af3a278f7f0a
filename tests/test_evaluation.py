"""The evaluation chain against real local HTTP endpoints: answers, pairwise judging with EC + BPC, summaries.

The judge is a scripted OpenAI-compatible server (evaluation/scripted_judge.py) on a loopback
port; the stages run as subprocesses, as a user runs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluation.scripted_judge import RunningServer, ScriptedJudge
from tests.helpers.evaluation import (
    BASELINE,
    FAST_RETRIES,
    MODEL,
    MT_BENCH_SAMPLE,
    SCENARIO_QUESTIONS,
    SCENARIO_SCRIPT,
    SHARED_BENCHMARKS,
    VICUNA_DATA,
    answer_with_both,
    needs_shared,
    read_jsonl,
    run_stage,
    write_question_set,
)
from tests.helpers.repo import REPO_ROOT


@pytest.fixture
def judge():
    server = RunningServer(ScriptedJudge(script=SCENARIO_SCRIPT, baseline=BASELINE))
    yield server
    server.stop()


def judge_arguments(judge: RunningServer, data_path, baseline_file, results=None) -> list:
    """`evaluation.openai_eval` options for judging `results` against `baseline_file` with the scripted judge."""
    arguments = ["--data_path", data_path, "--baseline_path", baseline_file]
    if results is not None:
        arguments += ["--input_path", results]
    return [*arguments, "--api-base", judge.url, "--model", "judge"]


@pytest.fixture(scope="module")
def judged_scenario(tmp_path_factory):
    """The scenario run once through answers, judging and summary; its tests read the results."""
    tmp_path = tmp_path_factory.mktemp("judged_scenario")
    judge = RunningServer(ScriptedJudge(script=SCENARIO_SCRIPT, baseline=BASELINE))
    try:
        data_path = write_question_set(tmp_path / "scenario", SCENARIO_QUESTIONS)
        baseline_file, results = answer_with_both(judge, data_path, tmp_path)
        run_stage("evaluation.openai_eval", *judge_arguments(judge, data_path, baseline_file, results), *FAST_RETRIES)
        summary_run = run_stage("evaluation.summarize", "--input_path", results)
    finally:
        judge.stop()
    reviews = {
        record["question_id"]: record
        for record in read_jsonl(results / "reviews" / f"scenario_{MODEL}_vs_{BASELINE}.jsonl")
    }
    summary = json.loads((results / "summary.json").read_text())
    return {"reviews": reviews, "summary": summary, "table": summary_run.stdout, "judge": judge.judge}


# ---------------------------------------------------------------- score parsing


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("8 7", (8, 7)),
        ("8, 7", (8, 7)),
        ("The first is better.\n[8, 7]", (8, 7)),
        ("Reasons...\n8/10 and 7/10", (8, 7)),
        ("Reasons...\nAssistant 1: 8\nAssistant 2: 7", (8, 7)),
        ("Scores: 8.5 7\nThe first answer covers 3 points and the second 2.", (8.5, 7)),
        ("**Assistant 1**: 9/10, **Assistant 2**: 6/10", (9, 6)),
        ("Assistant 1 receives a score of 4, while Assistant 2 receives 10.", (4, 10)),
        ("8 out of 10 and 7 out of 10", (8, 7)),
    ],
)
def test_score_parser_reads_common_formats(reply, expected):
    from evaluation.verdicts import parse_score_pair

    assert parse_score_pair(reply) == expected


@pytest.mark.parametrize("reply", ["I cannot decide.", "", "Scores: 8", "Scores: 80 70", "1 2 3"])
def test_score_parser_returns_none_rather_than_guessing(reply):
    from evaluation.verdicts import parse_score_pair

    assert parse_score_pair(reply) is None


# ---------------------------------------------------------------- loaders


def test_own_question_set_has_the_original_category_counts():
    from evaluation.benchmark_data import load_questions, load_reviewers

    questions = load_questions(VICUNA_DATA)
    counts = {}
    for question in questions:
        counts[question.category] = counts.get(question.category, 0) + 1
    assert counts == {
        "generic": 10,
        "knowledge": 10,
        "roleplay": 10,
        "common-sense": 10,
        "fermi": 10,
        "counterfactual": 10,
        "coding": 7,
        "math": 3,
        "writing": 10,
    }
    assert [question.question_id for question in questions] == list(range(1, 81))
    assert set(load_reviewers(VICUNA_DATA)) == {"general", "coding", "math"}


@needs_shared
def test_loaders_read_the_official_vicuna_and_fastchat_files():
    from evaluation.benchmark_data import load_questions, load_reviewers, reviewer_for

    official = load_questions(SHARED_BENCHMARKS / "vicuna")
    fastchat = load_questions(SHARED_BENCHMARKS / "vicuna_bench_fastchat")
    assert len(official) == 80 and [q.text for q in official] == [q.text for q in fastchat]
    reviewers = load_reviewers(SHARED_BENCHMARKS / "vicuna")
    assert reviewer_for(reviewers, "math").reviewer_id == "gpt-4-math"
    assert reviewer_for(reviewers, "roleplay").reviewer_id == "gpt-4-default"
    messages = reviewer_for(reviewers, "coding").render("Q?", "first", "second")
    assert "first" in messages[1]["content"] and "coding abilities" in messages[1]["content"]
    mt_bench = load_questions(SHARED_BENCHMARKS / "mt_bench")
    assert len(mt_bench) == 80 and all(len(q.turns) == 2 for q in mt_bench)


# ---------------------------------------------------------------- client


def test_client_waits_at_least_retry_after_on_429():
    from ochat.utils.openai_client import ChatClient

    server = RunningServer(
        ScriptedJudge(script=[{"match": "ping", "steps": [{"status": 429, "retry_after": 0.4}, {"reply": "pong"}]}])
    )
    try:

        async def ask():
            async with ChatClient(api_base=server.url, retry_base_delay=0.001, max_retries=3) as client:
                started = time.monotonic()
                reply = await client.chat("judge", [{"role": "user", "content": "ping"}])
                return reply, time.monotonic() - started

        reply, elapsed = asyncio.run(ask())
    finally:
        server.stop()
    assert reply == "pong" and elapsed >= 0.4


def test_client_gives_up_after_max_retries_with_a_clear_error():
    from ochat.utils.openai_client import ChatClient, ChatRequestError

    server = RunningServer(ScriptedJudge(script=[{"match": "ping", "steps": [{"status": 503}]}]))
    try:

        async def ask():
            async with ChatClient(api_base=server.url, retry_base_delay=0.001, max_retries=2) as client:
                await client.chat("judge", [{"role": "user", "content": "ping"}])

        with pytest.raises(ChatRequestError, match="3 attempts.*HTTP 503"):
            asyncio.run(ask())
    finally:
        server.stop()
    assert len(server.judge.judge_requests()) == 3


# ---------------------------------------------------------------- answering


def test_answer_stages_write_one_answer_per_question_and_skip_existing_files(judge, tmp_path):
    data_path = write_question_set(tmp_path / "tiny", SCENARIO_QUESTIONS[:3])
    baseline_file, results = answer_with_both(judge, data_path, tmp_path)
    answers = read_jsonl(results / f"tiny_{MODEL}.jsonl")
    assert [a["question_id"] for a in answers] == [1, 2, 3]
    assert answers[0]["model"] == MODEL and answers[0]["text"] == f"Answer from {MODEL}: [q1] How do I plan a week?"
    assert read_jsonl(baseline_file)[2]["text"].startswith(f"Answer from {BASELINE}: [q3]")
    answered = len(judge.judge.requests)
    rerun = run_stage(
        "evaluation.get_model_answer",
        "--data_path",
        data_path,
        "--output_path",
        results,
        "--api-base",
        judge.url,
        "--model",
        MODEL,
    )
    assert "exists; skipping" in rerun.stderr and len(judge.judge.requests) == answered


def test_multi_turn_questions_are_answered_turn_by_turn(judge, tmp_path):
    data_path = tmp_path / "two_turns"
    data_path.mkdir()
    (data_path / "question.jsonl").write_text(
        json.dumps({"question_id": 7, "category": "writing", "turns": ["Write a line.", "Now shorten it."]}) + "\n"
    )
    run_stage(
        "evaluation.get_model_answer",
        "--data_path",
        data_path,
        "--output_path",
        tmp_path / "out",
        "--api-base",
        judge.url,
        "--model",
        MODEL,
    )
    (answer,) = read_jsonl(tmp_path / "out" / f"two_turns_{MODEL}.jsonl")
    assert answer["turns"] == [f"Answer from {MODEL}: Write a line.", f"Answer from {MODEL}: Now shorten it."]


# ---------------------------------------------------------------- judging and summary


def test_summary_matches_hand_computed_scores(judged_scenario):
    (entry,) = judged_scenario["summary"]["models"]
    assert judged_scenario["summary"]["baseline"] == BASELINE
    assert judged_scenario["summary"]["benchmark"] == "scenario"
    assert entry["total_model"] == pytest.approx(8 + 7 + 6 + 5 + 10 + 7)
    assert entry["total_baseline"] == pytest.approx(7 + 8 + 6 + 9 + 4 + 7)
    assert entry["score_pct"] == pytest.approx(100 * 43 / 41)
    assert (entry["wins"], entry["ties"], entry["losses"]) == (2, 2, 2)
    assert entry["judged"] == 6 and entry["failed"] == 3 and entry["failed_questions"] == 1


def test_position_conflict_rate_counts_pairs_judged_in_both_orders(judged_scenario):
    (entry,) = judged_scenario["summary"]["models"]
    assert entry["position_checked"] == 5  # q5 has one order only, q6 none
    assert entry["conflict_rate"] == pytest.approx(1 / 5)
    assert [qid for qid, record in judged_scenario["reviews"].items() if record["conflict"]] == [2]


def test_per_category_breakdown(judged_scenario):
    categories = judged_scenario["summary"]["models"][0]["categories"]
    assert categories["generic"] == {
        "score_pct": pytest.approx(100 * 8 / 7),
        "wins": 1,
        "ties": 0,
        "losses": 0,
        "judged": 1,
    }
    assert categories["knowledge"]["score_pct"] == pytest.approx(100 * 7 / 8)
    assert categories["writing"]["score_pct"] == pytest.approx(250.0)
    assert "roleplay" not in categories  # its only question has no verdict


def test_scores_are_mapped_back_to_model_and_baseline_whatever_the_order(judged_scenario):
    reviews = {(r["order"], r["sample"]): r for r in judged_scenario["reviews"][4]["reviews"]}
    assert reviews[("model_first", 0)]["scores"] == [5, 9]
    assert reviews[("baseline_first", 0)]["scores"] == [5, 9]
    assert judged_scenario["reviews"][4]["verdict"] == "loss"


def test_unparseable_reviews_are_retried_then_recorded_failed_never_zero(judged_scenario):
    all_failed = judged_scenario["reviews"][6]
    assert all_failed["verdict"] is None and all_failed["score_model"] is None
    assert [r["failed"] for r in all_failed["reviews"]] == [True, True]
    assert all(r["scores"] is None for r in all_failed["reviews"])
    one_failed = judged_scenario["reviews"][5]
    assert (one_failed["score_model"], one_failed["score_baseline"]) == (10, 4)
    retried = judged_scenario["reviews"][7]
    assert retried["verdict"] == "tie" and not any(r["failed"] for r in retried["reviews"])
    q6_rule = 5
    asked = [entry for entry in judged_scenario["judge"].judge_requests() if entry[1] == q6_rule]
    assert len(asked) == 2 * 3  # both orders, first try + 2 parse retries


def test_rate_limits_server_errors_and_timeouts_are_retried(judged_scenario):
    kinds = [entry[4] for entry in judged_scenario["judge"].judge_requests()]
    assert {"status", "sleep"} <= set(kinds)
    assert judged_scenario["reviews"][2]["verdict"] == "loss"  # the 429 was retried
    assert judged_scenario["reviews"][3]["verdict"] == "tie"  # the 500 and the timeout were retried


def test_summary_table_is_printed(judged_scenario):
    assert "104.9%" in judged_scenario["table"] and "2/2/2" in judged_scenario["table"]


def test_num_samples_draws_reviews_per_order_and_averages_them(tmp_path):
    script = [
        {"match": "[q1]", "seed": 0, "steps": [{"reply": "8 6"}]},
        {"match": "[q1]", "seed": 1, "steps": [{"reply": "6 6"}]},
    ]
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE))
    try:
        data_path = write_question_set(tmp_path / "sampled", SCENARIO_QUESTIONS[:1])
        baseline_file, results = answer_with_both(server, data_path, tmp_path)
        run_stage(
            "evaluation.openai_eval",
            *judge_arguments(server, data_path, baseline_file, results),
            "--num_samples",
            "2",
            "--temperature",
            "1.0",
            *FAST_RETRIES,
        )
    finally:
        server.stop()
    (record,) = read_jsonl(results / "reviews" / f"sampled_{MODEL}_vs_{BASELINE}.jsonl")
    assert len(record["reviews"]) == 4
    # model_first: model 8 and 6 -> 7, baseline 6; baseline_first: baseline 8 and 6 -> 7, model 6
    assert (record["score_model"], record["score_baseline"]) == (pytest.approx(6.5), pytest.approx(6.5))
    assert record["conflict"] is True


def test_existing_reviews_are_not_overwritten_without_continue(judge, tmp_path):
    data_path = write_question_set(tmp_path / "again", SCENARIO_QUESTIONS[:1])
    baseline_file, results = answer_with_both(judge, data_path, tmp_path)
    arguments = judge_arguments(judge, data_path, baseline_file, results)
    run_stage("evaluation.openai_eval", *arguments)
    second = run_stage("evaluation.openai_eval", *arguments, check=False)
    assert second.returncode != 0 and "--continue" in second.stderr


def test_calls_lost_to_transport_errors_are_recorded_failed_and_asked_again_on_continue(tmp_path):
    script = [{"match": "[q1]", "steps": [{"status": 500}]}]
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE))
    try:
        data_path = write_question_set(tmp_path / "flaky", SCENARIO_QUESTIONS[:2])
        baseline_file, results = answer_with_both(server, data_path, tmp_path)
        arguments = [
            *judge_arguments(server, data_path, baseline_file, results),
            "--max_retries",
            "1",
            *FAST_RETRIES[:4],
        ]
        first = run_stage("evaluation.openai_eval", *arguments)
        reviews_file = results / "reviews" / f"flaky_{MODEL}_vs_{BASELINE}.jsonl"
        q1 = read_jsonl(reviews_file)[0]
        assert q1["verdict"] is None and [r["failed"] for r in q1["reviews"]] == [True, True]
        assert "--continue" in first.stderr
        server.judge.script[0]["steps"] = [{"reply": "Fine.\n9 3"}]
        asked = len(server.judge.judge_requests())
        run_stage("evaluation.openai_eval", *arguments, "--continue")
        assert len(server.judge.judge_requests()) - asked == 2  # only q1's two orders
    finally:
        server.stop()
    q1 = read_jsonl(reviews_file)[0]
    assert (q1["score_model"], q1["score_baseline"]) == (6.0, 6.0)  # 9:3 and, swapped, 3:9


# ---------------------------------------------------------------- crash and resume


def crash_script() -> list[dict]:
    """Order-dependent scores that vary by question, so a wrong resume would show in the results."""
    rules = []
    for number in range(1, 81):
        tag = f"[c{number}]"
        first, second = 3 + number % 7, 2 + number % 5
        rules.append(
            {
                "match": tag,
                "model_first": [{"reply": f"Explanation.\n{first} {second}"}],
                "baseline_first": [{"reply": f"Explanation.\n[{second + number % 2}, {first}]"}],
            }
        )
    return rules


def test_killed_run_resumes_with_continue_to_the_same_results(tmp_path):
    questions = [
        (category, f"[c{number}] question {number}?")
        for number, category in enumerate(["generic", "coding", "math", "writing"] * 20, 1)
    ]
    data_path = write_question_set(tmp_path / "crash", questions)
    server = RunningServer(ScriptedJudge(script=crash_script(), baseline=BASELINE, latency=0.02))
    try:
        baseline_file, results = answer_with_both(server, data_path, tmp_path)
        uninterrupted = tmp_path / "uninterrupted"
        shutil.copytree(results, uninterrupted)
        base_arguments = [*judge_arguments(server, data_path, baseline_file), "--parallel", "2", *FAST_RETRIES]
        run_stage("evaluation.openai_eval", *base_arguments, "--input_path", uninterrupted)
        asked_before = len(server.judge.judge_requests())

        command = [sys.executable, "-m", "evaluation.openai_eval", *map(str, base_arguments), "--input_path", results]
        victim = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        calls_log = results / "reviews" / f"crash_{MODEL}_vs_{BASELINE}.calls.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not calls_log.exists() or len(calls_log.read_bytes().splitlines()) < 40):
            time.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        logged_at_kill = len(read_jsonl(calls_log))
        assert 40 <= logged_at_kill < 160, "the kill should land mid-run"
        assert not (results / "reviews" / f"crash_{MODEL}_vs_{BASELINE}.jsonl").exists()

        run_stage("evaluation.openai_eval", *base_arguments, "--input_path", results, "--continue")
        asked_after = len(server.judge.judge_requests()) - asked_before
    finally:
        server.stop()
    name = f"reviews/crash_{MODEL}_vs_{BASELINE}.jsonl"
    assert read_jsonl(results / name) == read_jsonl(uninterrupted / name)
    assert asked_after <= 160 + 2, "judged calls were asked again (at most the 2 in flight may repeat)"
    assert len(read_jsonl(calls_log)) <= 160 + 2


def test_continue_drops_a_half_written_last_log_line_and_asks_that_call_again(judge, tmp_path):
    data_path = write_question_set(tmp_path / "torn", SCENARIO_QUESTIONS[:1])
    baseline_file, results = answer_with_both(judge, data_path, tmp_path)
    arguments = judge_arguments(judge, data_path, baseline_file, results)
    run_stage("evaluation.openai_eval", *arguments)
    reviews_file = results / "reviews" / f"torn_{MODEL}_vs_{BASELINE}.jsonl"
    complete = read_jsonl(reviews_file)
    calls_log = results / "reviews" / f"torn_{MODEL}_vs_{BASELINE}.calls.jsonl"
    first_line, second_line = calls_log.read_text().splitlines(keepends=True)
    calls_log.write_text(first_line + second_line[: len(second_line) // 2])
    reviews_file.unlink()
    asked = len(judge.judge.judge_requests())
    run_stage("evaluation.openai_eval", *arguments, "--continue")
    assert len(judge.judge.judge_requests()) - asked == 1
    assert read_jsonl(reviews_file) == complete
    assert len(read_jsonl(calls_log)) == 2


# ---------------------------------------------------------------- the real ochat server answering

SERVER_MODULE = Path(REPO_ROOT) / "ochat" / "serving" / "openai_api_server.py"


@pytest.mark.skipif(not SERVER_MODULE.exists(), reason="ochat/serving/openai_api_server.py is not in the tree yet")
@pytest.mark.timeout(600)
def test_whole_chain_with_the_ochat_server_answering_and_a_scripted_judge(tiny_model_dir, tmp_path):
    """Slow (about a minute: builds the tiny model, starts Ray and the real server): checkpoints folder ->
    answers through the ochat engine -> pairwise judging -> summary."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    os.symlink(tiny_model_dir, checkpoints / "tiny_a")
    (checkpoints / "notes").mkdir()  # a folder without config.json is not a checkpoint
    data_path = write_question_set(tmp_path / "served", SCENARIO_QUESTIONS[:3])
    results = tmp_path / "results"
    run_stage(
        "evaluation.get_model_answer",
        "--model_type",
        "openchat_tiny",
        "--models_path",
        checkpoints,
        "--data_path",
        data_path,
        "--output_path",
        results,
        "--max_tokens",
        "8",
        "--num_replicas",
        "1",
        timeout=540,
    )
    answers = read_jsonl(results / "served_tiny_a.jsonl")
    assert [a["question_id"] for a in answers] == [1, 2, 3]
    assert all(isinstance(a["text"], str) and a["model"] == "tiny_a" for a in answers)
    assert answers[0]["metadata"]["seed"] == 42

    # The judge cannot tell the tiny model's answers apart by name, so it always replies "[8, 7]":
    # 8 for whichever answer it saw first. Both orders average to 7.5 : 7.5, a tie with a position conflict.
    server = RunningServer(ScriptedJudge(baseline=BASELINE))
    try:
        run_stage(
            "evaluation.get_openai_answer",
            "--data_path",
            data_path,
            "--output_path",
            tmp_path / "baselines",
            "--model_types",
            BASELINE,
            "--api-base",
            server.url,
        )
        baseline_file = tmp_path / "baselines" / f"served_{BASELINE}.jsonl"
        run_stage("evaluation.openai_eval", *judge_arguments(server, data_path, baseline_file, results))
    finally:
        server.stop()
    run_stage("evaluation.summarize", "--input_path", results)
    (entry,) = json.loads((results / "summary.json").read_text())["models"]
    assert entry["model"] == "tiny_a" and entry["score_pct"] == pytest.approx(100.0)
    assert (entry["wins"], entry["ties"], entry["losses"], entry["conflict_rate"]) == (0, 3, 0, 1.0)


# ---------------------------------------------------------------- MT-bench


def mt_bench_data(folder: Path, questions: list[dict]) -> Path:
    """A FastChat-format MT-bench folder: the given questions with the official judge prompts."""
    folder.mkdir(parents=True)
    shutil.copy(MT_BENCH_SAMPLE / "judge_prompts.jsonl", folder / "judge_prompts.jsonl")
    with open(folder / "question.jsonl", "w") as handle:
        for question in questions:
            handle.write(json.dumps(question) + "\n")
    return folder


MT_QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["[w1] Write a limerick.", "[w2] Make it sadder."]},
    {
        "question_id": 2,
        "category": "math",
        "turns": ["[m1] What is 2+3?", "[m2] And times 4?"],
        "reference": ["REFERENCE-5", "REFERENCE-20"],
    },
]


def test_mt_bench_single_grading_scores_per_turn_and_leaves_out_unreadable_ratings(tmp_path):
    script = [
        {"match": "[w2]", "steps": [{"reply": "Good follow-up. Rating: [[6]]"}]},
        {"match": "[w1]", "steps": [{"reply": "Lively. Rating: [[8]]"}]},
        {"match": "[m2]", "steps": [{"reply": "Correct, matches the reference. [[4]]"}]},
        {"match": "[m1]", "steps": [{"reply": "I would rate it highly."}]},
    ]
    server = RunningServer(ScriptedJudge(script=script))
    try:
        data_path = mt_bench_data(tmp_path / "mt_bench", MT_QUESTIONS)
        run_stage(
            "evaluation.get_model_answer",
            "--data_path",
            data_path,
            "--output_path",
            tmp_path / "answers",
            "--api-base",
            server.url,
            "--model",
            MODEL,
        )
        run_stage(
            "evaluation.mt_bench",
            "--data_path",
            data_path,
            "--answer_path",
            tmp_path / "answers",
            "--output_path",
            tmp_path / "judgment",
            "--judge_model",
            "judge",
            "--api-base",
            server.url,
            *FAST_RETRIES,
        )
    finally:
        server.stop()
    rows = {(row["question_id"], row["turn"]): row for row in read_jsonl(tmp_path / "judgment" / "judge_single.jsonl")}
    assert {key: row["score"] for key, row in rows.items()} == {(1, 1): 8, (1, 2): 6, (2, 1): -1, (2, 2): 4}
    assert rows[(2, 2)]["judge"] == ["judge", "single-math-v1-multi-turn"]
    assert "REFERENCE-5" in rows[(2, 1)]["user_prompt"] and "REFERENCE-20" in rows[(2, 2)]["user_prompt"]
    assert f"Answer from {MODEL}: [m2] And times 4?" in rows[(2, 2)]["user_prompt"]
    run_stage("evaluation.summarize", "--input_path", tmp_path / "judgment")
    (entry,) = json.loads((tmp_path / "judgment" / "summary_mt_bench.json").read_text())["single"]["models"]
    assert entry["turns"] == {"1": 8, "2": 5} and entry["mean"] == pytest.approx(6)
    assert entry["failed"] == 1 and entry["scored"] == 3


def test_mt_bench_pairwise_counts_swapped_order_disagreement_as_a_tie(tmp_path):
    script = [
        {"match": "[w2]", "model_first": [{"reply": "[[A]]"}], "baseline_first": [{"reply": "[[A]]"}]},
        {
            "match": "[w1]",
            "model_first": [{"reply": "A is better. [[A]]"}],
            "baseline_first": [{"reply": "B is better. [[B]]"}],
        },
        {"match": "[m2]", "model_first": [{"reply": "no verdict"}], "baseline_first": [{"reply": "[[C]]"}]},
        {"match": "[m1]", "steps": [{"reply": "Equal. [[C]]"}]},
    ]
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE))
    try:
        data_path = mt_bench_data(tmp_path / "mt_bench", MT_QUESTIONS)
        for model in (MODEL, BASELINE):
            run_stage(
                "evaluation.get_model_answer",
                "--data_path",
                data_path,
                "--output_path",
                tmp_path / "answers",
                "--api-base",
                server.url,
                "--model",
                model,
            )
        run_stage(
            "evaluation.mt_bench",
            "--data_path",
            data_path,
            "--answer_path",
            tmp_path / "answers",
            "--output_path",
            tmp_path / "judgment",
            "--judge_model",
            "judge",
            "--mode",
            "pairwise-baseline",
            "--baseline",
            BASELINE,
            "--api-base",
            server.url,
            *FAST_RETRIES,
        )
    finally:
        server.stop()
    games = {
        (row["question_id"], row["turn"]): (row["g1_winner"], row["g2_winner"])
        for row in read_jsonl(tmp_path / "judgment" / "judge_pair.jsonl")
    }
    assert games == {
        (1, 1): ("model_1", "model_1"),
        (1, 2): ("model_1", "model_2"),
        (2, 1): ("tie", "tie"),
        (2, 2): ("error", "tie"),
    }
    run_stage("evaluation.summarize", "--input_path", tmp_path / "judgment", "--mode", "mt_bench")
    (entry,) = json.loads((tmp_path / "judgment" / "summary_mt_bench.json").read_text())["pairwise"]["models"]
    assert (entry["wins"], entry["ties"], entry["losses"], entry["inconsistent"], entry["failed"]) == (1, 2, 0, 1, 1)
    assert entry["win_rate"] == pytest.approx(1 / 3) and entry["win_rate_adjusted"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- AlpacaEval-style


def test_alpaca_eval_win_rate_counts_draws_half_with_standard_error(tmp_path):
    instructions = [
        "[i1] Name a fruit.",
        "[i2] Name a color.",
        "[i3] Name a planet.",
        "[i4] Name a tree.",
        "[i5] Name a river.",
    ]
    for generator, path in ((MODEL, tmp_path / "model.json"), (BASELINE, tmp_path / "reference.json")):
        path.write_text(
            json.dumps(
                [
                    {"instruction": text, "output": f"Answer from {generator}: {text}", "generator": generator}
                    for text in instructions
                ]
            )
        )
    # (model_first verdict, reference_first verdict) -> model preference per order
    script = [
        {"match": "[i1]", "model_first": [{"reply": "[[a]]"}], "baseline_first": [{"reply": "[[b]]"}]},  # 2, 2
        {"match": "[i2]", "model_first": [{"reply": "[[b]]"}], "baseline_first": [{"reply": "[[a]]"}]},  # 1, 1
        {"match": "[i3]", "model_first": [{"reply": "[[a]]"}], "baseline_first": [{"reply": "[[a]]"}]},  # 2, 1
        {"match": "[i4]", "steps": [{"reply": "Equal. [[tie]]"}]},  # 1.5
        {"match": "[i5]", "steps": [{"reply": "Cannot tell."}]},
    ]  # failed
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE))
    try:
        run_stage(
            "evaluation.alpaca_eval",
            "--model_outputs",
            tmp_path / "model.json",
            "--reference_outputs",
            tmp_path / "reference.json",
            "--output_path",
            tmp_path / "alpaca",
            "--judge_model",
            "judge",
            "--api-base",
            server.url,
            *FAST_RETRIES,
        )
    finally:
        server.stop()
    annotations = json.loads((tmp_path / "alpaca" / f"alpaca_eval_{MODEL}_annotations.json").read_text())
    assert [a["preference"] for a in annotations] == [2.0, 1.0, 1.5, 1.5, None]
    run_stage("evaluation.summarize", "--input_path", tmp_path / "alpaca")
    (entry,) = json.loads((tmp_path / "alpaca" / "summary_alpaca_eval.json").read_text())["models"]
    wins = [1.0, 0.0, 0.5, 0.5]
    standard_error = 100 * (sum((w - 0.5) ** 2 for w in wins) / 3) ** 0.5 / 2
    assert entry["win_rate"] == pytest.approx(50.0) and entry["standard_error"] == pytest.approx(standard_error)
    assert (entry["n_wins"], entry["n_draws"], entry["n_losses"], entry["failed_questions"], entry["failed"]) == (
        1,
        2,
        1,
        1,
        2,
    )
