"""The judge core under a hostile or limited judge: broken 200s, nothing judgeable, structured verdicts and
their fallback, seeded bootstrap intervals, and answers kept as they arrive.

Every judge is the scripted OpenAI-protocol server (evaluation/scripted_judge.py) on a loopback port.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from evaluation.scripted_judge import RunningServer, ScriptedJudge
from evaluation.summary_statistics import Statistics
from tests.helpers.evaluation import (
    BASELINE,
    FAST_RETRIES,
    MODEL,
    MT_BENCH_SAMPLE,
    SCENARIO_QUESTIONS,
    answer_with_both,
    read_jsonl,
    run_stage,
    write_question_set,
)

BROKEN_200S = {
    "text/plain": {"raw": "upstream busy", "content_type": "text/plain"},
    "HTML": {"raw": "<html><body>502 Bad Gateway</body></html>", "content_type": "text/html"},
    "bad JSON": {"raw": '{"choices": [', "content_type": "application/json"},
    "no choices": {"body": {"id": "x", "object": "chat.completion"}},
    "empty choices": {"body": {"choices": []}},
    "null content": {"body": {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}},
}


def test_every_kind_of_broken_200_is_retried_like_a_5xx():
    from ochat.utils.openai_client import ChatClient, ChatRequestError

    script = [{"match": f"[{name}]", "steps": [step, {"reply": "fine"}]} for name, step in BROKEN_200S.items()]
    script += [{"match": "[always]", "steps": [BROKEN_200S["HTML"]]}]
    server = RunningServer(ScriptedJudge(script=script))

    async def ask_all():
        async with ChatClient(api_base=server.url, retry_base_delay=0.001, max_retries=2) as client:
            replies = [await client.chat("judge", [{"role": "user", "content": f"[{name}]"}]) for name in BROKEN_200S]
            with pytest.raises(ChatRequestError, match="HTTP 200 with a malformed body"):
                await client.chat("judge", [{"role": "user", "content": "[always]"}])
            return replies

    try:
        assert asyncio.run(ask_all()) == ["fine"] * len(BROKEN_200S)
    finally:
        server.stop()
    assert len(server.judge.judge_requests()) == 2 * len(BROKEN_200S) + 3


def vicuna_run(tmp_path, script, *extra, questions=SCENARIO_QUESTIONS[:3], check=True, **judge_options):
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE, **judge_options))
    try:
        data_path = write_question_set(tmp_path / "bench", questions)
        baseline_file, results = answer_with_both(server, data_path, tmp_path)
        result = run_stage(
            "evaluation.openai_eval",
            "--data_path",
            data_path,
            "--baseline_path",
            baseline_file,
            "--input_path",
            results,
            "--api-base",
            server.url,
            "--model",
            "judge",
            *FAST_RETRIES,
            *extra,
            check=check,
        )
    finally:
        server.stop()
    return result, results, server.judge


def test_a_judge_sending_broken_200s_costs_only_those_calls_and_never_a_traceback(tmp_path):
    script = [
        {"match": "[q1]", "steps": [BROKEN_200S["HTML"]]},
        {"match": "[q2]", "model_first": [BROKEN_200S["null content"], {"reply": "ok\n6 4"}]},
    ]
    result, results, _ = vicuna_run(tmp_path, script, "--max_retries", "1")
    assert "Traceback" not in result.stderr
    assert "warning: 2 of 6 judge calls failed (33.3%" in result.stderr
    reviews = {r["question_id"]: r for r in read_jsonl(results / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.jsonl")}
    assert reviews[1]["verdict"] is None and reviews[2]["score_model"] == pytest.approx((6 + 7) / 2)
    calls = read_jsonl(results / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.calls.jsonl")
    assert sum("malformed body" in (call["error"] or "") for call in calls) == 2


def test_openai_eval_and_summarize_exit_non_zero_when_nothing_could_be_judged(tmp_path):
    result, results, _ = vicuna_run(
        tmp_path, [{"match": "[q", "steps": [{"status": 500}]}], "--max_retries", "1", check=False
    )
    assert result.returncode == 1 and "none of 6 judge calls gave a verdict" in result.stderr
    assert "Traceback" not in result.stderr
    summary = run_stage("evaluation.summarize", "--input_path", results, check=False)
    assert summary.returncode == 1 and "nothing could be judged" in summary.stderr


def test_unreadable_replies_alone_also_make_the_run_fail(tmp_path):
    result, _, _ = vicuna_run(
        tmp_path, [{"match": "[q", "steps": [{"reply": "No idea."}]}], "--parse_retries", "0", check=False
    )
    assert result.returncode == 1 and "0 never got a reply, 6 unreadable" in result.stderr


# ---------------------------------------------------------------- structured verdicts

STRUCTURED_SCRIPT = [
    {
        "match": "[q1]",
        "model_first": [{"reply": "Free text.\n1 1", "json": {"explanation": "A", "score_1": 9, "score_2": 4}}],
        "baseline_first": [{"reply": "Free text.\n1 1", "json": {"explanation": "B", "score_1": 5, "score_2": 8}}],
    },
    {
        "match": "[q2]",
        "steps": [{"reply": "The first.\n7 6", "json": {"explanation": "C", "score_1": 7, "score_2": 6.5}}],
    },
    {
        "match": "[q3]",
        "steps": [
            {"reply": "Even.\n5 5", "json": {"explanation": "D", "score_1": 11, "score_2": 2}},
            {"reply": "Even.\n5 5", "json": {"explanation": "D", "score_1": 5, "score_2": 5}},
        ],
    },
]


def test_structured_verdicts_are_asked_through_response_format_with_the_explanation_first(tmp_path):
    result, results, judge = vicuna_run(tmp_path, STRUCTURED_SCRIPT, "--structured", "--max_explanation_chars", "300")
    judge_bodies = [body for body in judge.bodies if body["model"] == "judge"]
    assert judge_bodies and all(body["response_format"]["type"] == "json_schema" for body in judge_bodies)
    schema = judge_bodies[0]["response_format"]["json_schema"]["schema"]
    assert (
        list(schema["properties"]) == ["explanation", "score_1", "score_2"] and schema["required"][0] == "explanation"
    )
    assert schema["properties"]["explanation"]["maxLength"] == 300  # bounded, so the verdict fits max_tokens
    assert schema["properties"]["score_1"] == {"type": "integer", "minimum": 0, "maximum": 10}
    assert '"explanation"' in judge_bodies[0]["messages"][-1]["content"]
    reviews = {r["question_id"]: r for r in read_jsonl(results / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.jsonl")}
    # q1: model 9 and 8, baseline 4 and 5; q2: 7 : 6.5 first, then swapped 6.5 : 7; q3: out of range, asked again.
    assert (reviews[1]["score_model"], reviews[1]["score_baseline"]) == (8.5, 4.5)
    assert (reviews[2]["score_model"], reviews[2]["score_baseline"]) == (pytest.approx(6.75), pytest.approx(6.75))
    assert reviews[3]["verdict"] == "tie"
    calls = read_jsonl(results / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.calls.jsonl")
    assert all(call["structured"] for call in calls) and {call["attempts"] for call in calls} == {1, 2}
    assert "falling back" not in result.stderr


def test_a_judge_refusing_response_format_falls_back_to_free_text_with_one_warning(tmp_path):
    result, results, judge = vicuna_run(
        tmp_path, STRUCTURED_SCRIPT, "--structured", "--parallel", "1", reject_response_format=True
    )
    assert result.stderr.count("falling back to free-text verdicts") == 1
    judge_bodies = [body for body in judge.bodies if body["model"] == "judge"]
    assert sum("response_format" in body for body in judge_bodies) == 1  # asked once, refused, never again
    reviews = {r["question_id"]: r for r in read_jsonl(results / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.jsonl")}
    assert (reviews[1]["score_model"], reviews[1]["score_baseline"]) == (1, 1)  # the free-text "1 1"
    assert (reviews[2]["score_model"], reviews[2]["score_baseline"]) == (6.5, 6.5)
    calls = read_jsonl(results / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.calls.jsonl")
    assert not any(call["structured"] for call in calls) and not any(call["failed"] for call in calls)


def test_mt_bench_and_alpaca_modes_ask_for_their_own_structured_verdicts(tmp_path):
    script = [
        {"match": "lighthouse", "steps": [{"reply": "x", "json": {"explanation": "ok", "rating": 7}}]},
        {"match": "[i1]", "steps": [{"reply": "x", "json": {"explanation": "ok", "verdict": "tie"}}]},
    ]
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE))
    try:
        run_stage(
            "evaluation.get_model_answer",
            "--data_path",
            MT_BENCH_SAMPLE,
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
            MT_BENCH_SAMPLE,
            "--answer_path",
            tmp_path / "answers",
            "--output_path",
            tmp_path / "judgment",
            "--judge_model",
            "judge",
            "--api-base",
            server.url,
            "--structured",
            "--parse_retries",
            "0",
            *FAST_RETRIES,
            check=False,
        )
        for generator, path in ((MODEL, tmp_path / "model.json"), (BASELINE, tmp_path / "reference.json")):
            path.write_text(
                json.dumps(
                    [{"instruction": "[i1] Name a tree.", "output": f"Answer from {generator}", "generator": generator}]
                )
            )
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
            "--structured",
            *FAST_RETRIES,
        )
    finally:
        server.stop()
    schemas = {
        body["response_format"]["json_schema"]["name"] for body in server.judge.bodies if "response_format" in body
    }
    assert schemas == {"rating", "preference_ab"}
    rows = read_jsonl(tmp_path / "judgment" / "judge_single.jsonl")
    assert [row["score"] for row in rows if row["question_id"] == 1] == [7, 7]
    (annotation,) = json.loads((tmp_path / "alpaca" / f"alpaca_eval_{MODEL}_annotations.json").read_text())
    assert annotation["preference"] == 1.5


# ---------------------------------------------------------------- statistics


def write_reviews(path, verdicts: list[tuple[float, float]], model=MODEL):
    records = []
    for number, (mine, theirs) in enumerate(verdicts, 1):
        verdict = "win" if mine > theirs else "loss" if mine < theirs else "tie"
        records.append(
            {
                "question_id": number,
                "category": "generic",
                "question": "q",
                "model": model,
                "baseline": BASELINE,
                "benchmark": "bench",
                "answer_model": "a",
                "answer_baseline": "b",
                "reviews": [
                    {"order": "model_first", "sample": 0, "text": "", "scores": [mine, theirs], "failed": False}
                ],
                "score_model": mine,
                "score_baseline": theirs,
                "verdict": verdict,
                "conflict": False,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_bootstrap_interval_is_reproducible_under_a_seed_and_brackets_the_figure():
    numerators, denominators = [8, 7, 6, 5, 10, 7, 9, 3], [7, 8, 6, 9, 4, 7, 8, 5]
    first = Statistics(seed=3).ratio_ci(numerators, denominators, 100.0)
    assert first == Statistics(seed=3).ratio_ci(numerators, denominators, 100.0)
    assert first != Statistics(seed=4).ratio_ci(numerators, denominators, 100.0)
    assert first[0] < 100 * sum(numerators) / sum(denominators) < first[1]
    assert Statistics().ratio_ci([1.0], [1.0]) is None  # one question: no interval


def test_summary_carries_intervals_counts_and_says_when_a_figure_is_not_meaningful(tmp_path):
    few, many = tmp_path / "few", tmp_path / "many"
    write_reviews(few / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.jsonl", [(8, 6), (5, 7), (6, 6)])
    write_reviews(
        many / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.jsonl", [(5 + number % 4, 6) for number in range(24)]
    )
    table = run_stage("evaluation.summarize", "--input_path", few, "--seed", "1").stdout
    (entry,) = json.loads((few / "summary.json").read_text())["models"]
    assert entry["judged"] == 3 and entry["failed"] == 0 and entry["meaningful"] is False
    assert "not meaningful" in entry["note"] and "not meaningful" in table
    assert entry["win_rate"] == pytest.approx(100 * 1.5 / 3)
    run_stage("evaluation.summarize", "--input_path", many, "--seed", "1")
    first = json.loads((many / "summary.json").read_text())
    run_stage("evaluation.summarize", "--input_path", many, "--seed", "1")
    assert json.loads((many / "summary.json").read_text()) == first
    (entry,) = first["models"]
    assert entry["meaningful"] is True and entry["note"] is None and entry["judged"] == 24
    low, high = entry["score_pct_ci95"]
    assert low < entry["score_pct"] < high and entry["win_rate_ci95"][0] < entry["win_rate"]


# ---------------------------------------------------------------- answers


def test_duplicate_question_ids_in_an_answer_file_stop_openai_eval(tmp_path):
    data_path = write_question_set(tmp_path / "bench", SCENARIO_QUESTIONS[:2])
    results = tmp_path / "results"
    results.mkdir()
    record = {"question_id": 1, "model": MODEL, "text": "a"}
    (results / f"bench_{MODEL}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in (record, record, {**record, "question_id": 2})) + "\n"
    )
    result = run_stage(
        "evaluation.openai_eval",
        "--data_path",
        data_path,
        "--baseline_path",
        results / f"bench_{MODEL}.jsonl",
        "--input_path",
        results,
        check=False,
    )
    assert result.returncode == 1 and "duplicate question_id values [1]" in result.stderr
    assert "Traceback" not in result.stderr


def test_get_model_answer_keeps_answers_after_a_failure_and_continue_asks_only_the_rest(tmp_path):
    script = [{"model": MODEL, "match": "[q2]", "steps": [{"status": 500}]}]
    server = RunningServer(ScriptedJudge(script=script))
    try:
        data_path = write_question_set(tmp_path / "bench", SCENARIO_QUESTIONS[:4])
        arguments = [
            "--data_path",
            data_path,
            "--output_path",
            tmp_path / "out",
            "--api-base",
            server.url,
            "--model",
            MODEL,
            "--max_retries",
            "1",
            *FAST_RETRIES[:4],
        ]
        first = run_stage("evaluation.get_model_answer", *arguments, check=False)
        assert first.returncode == 1 and "--continue" in first.stderr and "Traceback" not in first.stderr
        partial = tmp_path / "out" / f"bench_{MODEL}.jsonl.partial"
        assert sorted(r["question_id"] for r in read_jsonl(partial)) == [1, 3, 4]
        refused = run_stage("evaluation.get_model_answer", *arguments, check=False)
        assert refused.returncode == 1 and "--continue" in refused.stderr
        server.judge.script.clear()
        asked = len(server.judge.requests)
        run_stage("evaluation.get_model_answer", *arguments, "--continue")
        assert len(server.judge.requests) - asked == 1
    finally:
        server.stop()
    answers = read_jsonl(tmp_path / "out" / f"bench_{MODEL}.jsonl")
    assert [a["question_id"] for a in answers] == [1, 2, 3, 4] and not partial.exists()
    assert answers[1]["text"] == f"Answer from {MODEL}: [q2] Why do tides happen?"


# ---------------------------------------------------------------- the ochat server as a structured judge


def test_the_ochat_server_as_structured_judge_gives_json_verdicts_or_one_clean_fallback(tiny_model_dir, tmp_path):
    """Slow (starts the real server with the tiny model). A server with response_format must give a verdict on
    every call (grammar-constrained JSON); one without it must be probed once and fall back to free text."""
    from ochat.utils.server_process import ServerProcess

    server = RunningServer(ScriptedJudge(baseline=BASELINE))
    try:
        data_path = write_question_set(tmp_path / "bench", SCENARIO_QUESTIONS[:3])
        baseline_file, results = answer_with_both(server, data_path, tmp_path)
    finally:
        server.stop()
    with ServerProcess.start(
        "openchat_tiny", tiny_model_dir, "--num_replicas", "1", log_path=tmp_path / "server.log"
    ) as ochat:
        result = run_stage(
            "evaluation.openai_eval",
            "--data_path",
            data_path,
            "--baseline_path",
            baseline_file,
            "--input_path",
            results,
            "--api-base",
            ochat.api_base,
            "--model",
            "openchat_tiny",
            "--structured",
            "--max_explanation_chars",
            "120",
            "--parse_retries",
            "0",
            "--max_tokens",
            "192",
            "--temperature",
            "0",
            check=False,
            timeout=300,
        )
    calls = read_jsonl(results / "reviews" / f"bench_{MODEL}_vs_{BASELINE}.calls.jsonl")
    assert len(calls) == 6 and not any(call["error"] for call in calls) and "Traceback" not in result.stderr
    if "falling back to free-text verdicts" in result.stderr:
        assert result.stderr.count("falling back") == 1 and not any(call["structured"] for call in calls)
    else:
        assert all(call["structured"] for call in calls) and not any(call["failed"] for call in calls)
        assert result.returncode == 0
