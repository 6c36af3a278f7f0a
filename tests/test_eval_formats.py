"""Answer, question and judge-prompt files in their published formats: read right, or refused in one line.

The OpenChat answer format copies the question's fields (`text`, `category`) into each answer;
reading `text` as the answer judged question against question. The end-to-end test here runs
`openai_eval` on such a file against the scripted judge and checks a hand-computed result.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.benchmark_data import load_answers, load_judge_prompts, load_questions, load_reviewers
from evaluation.scripted_judge import RunningServer, ScriptedJudge
from tests.helpers.evaluation import (
    BASELINE,
    FAST_RETRIES,
    MODEL,
    MT_BENCH_SAMPLE,
    SHARED_BENCHMARKS,
    VICUNA_DATA,
    needs_shared,
    read_jsonl,
    run_stage,
    write_question_set,
)


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


QUESTIONS = [
    {"question_id": 1, "text": "Name a fruit.", "category": "generic"},
    {"question_id": 2, "text": "Name a colour.", "category": "generic"},
]
ANSWERS = ["An apple.", "Blue."]
ANSWER_FILES = {
    "ochat": [
        {"question_id": q["question_id"], "model": "m", "text": a, "answer_id": "x", "metadata": {}}
        for q, a in zip(QUESTIONS, ANSWERS)
    ],
    "openchat": [{**q, "answer_model": "m", "answer": a} for q, a in zip(QUESTIONS, ANSWERS)],
    "fastchat_model_answer": [
        {
            "question_id": q["question_id"],
            "answer_id": "x",
            "model_id": "m",
            "choices": [{"index": 0, "turns": [a]}],
            "tstamp": 1.0,
        }
        for q, a in zip(QUESTIONS, ANSWERS)
    ],
    "fastchat_vicuna_answer": [
        {"answer_id": "x", "question_id": q["question_id"], "model_id": "m", "text": a, "metadata": {}}
        for q, a in zip(QUESTIONS, ANSWERS)
    ],
}


@pytest.mark.parametrize("answer_format", sorted(ANSWER_FILES))
def test_each_answer_format_is_detected_said_and_read_as_the_answer(answer_format, tmp_path, capsys):
    path = write_jsonl(tmp_path / "answers.jsonl", ANSWER_FILES[answer_format])
    answers = load_answers(path)
    assert answers == {1: {"model": "m", "turns": ["An apple."]}, 2: {"model": "m", "turns": ["Blue."]}}
    assert f"({answer_format} format)" in capsys.readouterr().err


def test_multi_turn_answers_keep_every_turn(tmp_path):
    path = write_jsonl(
        tmp_path / "mt.jsonl",
        [{"question_id": 81, "model_id": "m", "choices": [{"index": 0, "turns": ["one", "two"]}]}],
    )
    assert load_answers(path)[81]["turns"] == ["one", "two"]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"question_id": 1, "model": "m", "model_id": "m", "text": "A."}, "ambiguous"),  # ochat and FastChat Vicuna
        ({"question_id": 1, "model": "m", "text": "Q?", "answer": "A."}, "ambiguous"),  # which one is the answer?
        ({"question_id": 1, "answer_model": "m", "answer": "A.", "model": "m"}, "ambiguous"),
        ({"question_id": 1, "model_id": "m", "choices": [{"turns": ["A."]}], "text": "A?"}, "ambiguous"),
        ({"question_id": 1, "output": "A."}, "fits no known answer format"),
    ],
)
def test_an_ambiguous_or_unknown_answer_record_is_refused(record, message, tmp_path):
    path = write_jsonl(tmp_path / "answers.jsonl", [record])
    with pytest.raises(SystemExit, match=message):
        load_answers(path)


def test_a_file_mixing_answer_formats_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "answers.jsonl", [ANSWER_FILES["ochat"][0], ANSWER_FILES["openchat"][1]])
    with pytest.raises(SystemExit, match=r"mixed answer formats \['ochat', 'openchat'\]"):
        load_answers(path)


def test_duplicate_question_ids_in_an_answer_file_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "answers.jsonl", [ANSWER_FILES["ochat"][0], ANSWER_FILES["ochat"][0]])
    with pytest.raises(SystemExit, match=r"duplicate question_id values \[1\]"):
        load_answers(path)


@pytest.mark.parametrize("answer", [None, 3, [], ["ok", 4]])
def test_an_answer_that_is_not_text_is_refused(answer, tmp_path):
    path = write_jsonl(tmp_path / "answers.jsonl", [{"question_id": 1, "answer_model": "m", "answer": answer}])
    with pytest.raises(SystemExit, match="must be text"):
        load_answers(path)


def test_question_files_of_both_formats_load_and_an_ambiguous_one_is_refused(tmp_path, capsys):
    vicuna = load_questions(write_jsonl(tmp_path / "v" / "question.jsonl", QUESTIONS))
    fastchat = load_questions(
        write_jsonl(tmp_path / "f" / "question.jsonl", [{"question_id": 1, "category": "writing", "turns": ["a", "b"]}])
    )
    assert [q.turns for q in vicuna] == [["Name a fruit."], ["Name a colour."]] and fastchat[0].turns == ["a", "b"]
    assert "(vicuna_question format)" in capsys.readouterr().err
    for name, records, message in [
        ("both", [{"question_id": 1, "text": "a", "turns": ["a"]}], "ambiguous"),
        ("mixed", [QUESTIONS[0], {"question_id": 2, "turns": ["b"]}], "mixed question formats"),
        ("answers", ANSWER_FILES["openchat"], "is this an answer file"),
        ("dupes", [QUESTIONS[0], QUESTIONS[0]], "duplicate question_id"),
    ]:
        with pytest.raises(SystemExit, match=message):
            load_questions(write_jsonl(tmp_path / name / "question.jsonl", records))


def test_judge_prompt_files_are_checked_record_by_record(tmp_path):
    folder = tmp_path / "vicuna"
    write_question_set(folder, [("generic", "Q?")])
    (folder / "prompt.jsonl").write_text(json.dumps({"prompt_id": 1, "system_prompt": "s"}) + "\n")
    with pytest.raises(
        SystemExit, match=r"prompt.jsonl:1: not a Vicuna judge prompt \(missing \['prompt_template'\]\)"
    ):
        load_reviewers(folder)
    (folder / "prompt.jsonl").write_text(
        json.dumps({"prompt_id": 1, "system_prompt": "s", "prompt_template": "{question} {answer_3}"}) + "\n"
    )
    with pytest.raises(SystemExit, match="placeholder"):
        load_reviewers(folder)
    bad = write_jsonl(tmp_path / "judge_prompts.jsonl", [{"name": "single-v1", "prompt_template": "{question}"}])
    with pytest.raises(SystemExit, match="not an MT-bench judge prompt"):
        load_judge_prompts(bad)


def test_the_bundled_mt_bench_sample_is_in_fastchat_formats():
    questions = load_questions(MT_BENCH_SAMPLE)
    prompts = load_judge_prompts(MT_BENCH_SAMPLE / "judge_prompts.jsonl")
    references = load_answers(MT_BENCH_SAMPLE / "reference_answer" / "reference.jsonl")
    assert all(len(question.turns) == 2 for question in questions)
    assert {"single-v1", "single-math-v1", "pair-v2", "pair-math-v1"} <= set(prompts)
    assert {f"{name}-multi-turn" for name in ("single-v1", "pair-v2")} <= set(prompts)
    needing = {q.question_id for q in questions if q.category in ("math", "coding", "reasoning")}
    assert needing and needing <= set(references)


@needs_shared
def test_the_official_files_load_in_their_own_formats():
    assert len(load_questions(SHARED_BENCHMARKS / "vicuna")) == 80
    assert len(load_reviewers(SHARED_BENCHMARKS / "vicuna_gpt3.5eval")) == 3
    assert {"single-v1", "pair-v2-multi-turn"} <= set(
        load_judge_prompts(SHARED_BENCHMARKS / "mt_bench" / "judge_prompts.jsonl")
    )
    references = load_answers(SHARED_BENCHMARKS / "mt_bench" / "reference_answer" / "gpt-4.jsonl")
    assert all(len(answer["turns"]) == 2 for answer in references.values())


def test_openai_eval_points_an_mt_bench_folder_to_mt_bench(tmp_path):
    result = run_stage(
        "evaluation.openai_eval",
        "--data_path",
        MT_BENCH_SAMPLE,
        "--baseline_path",
        tmp_path / "b.jsonl",
        "--input_path",
        tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "evaluation.mt_bench" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- the OpenChat-format bug, end to end

# Scores per order as the judge sees the answers: the first number is for the first answer shown.
# q1: model 9, baseline 6 -> win | q2: model 5, baseline 8 -> loss | q3: model 7, baseline 5 -> win
OPENCHAT_SCRIPT = [
    {
        "match": "[o1]",
        "model_first": [{"reply": "The first is better.\n9 6"}],
        "baseline_first": [{"reply": "The second is better.\n6 9"}],
    },
    {
        "match": "[o2]",
        "model_first": [{"reply": "The second is better.\n5 8"}],
        "baseline_first": [{"reply": "The first is better.\n[8, 5]"}],
    },
    {
        "match": "[o3]",
        "model_first": [{"reply": "The first is better.\n7 5"}],
        "baseline_first": [{"reply": "The second is better.\n5 7"}],
    },
]


def test_openchat_format_answers_are_judged_as_answers_with_the_hand_computed_result(tmp_path):
    questions = [
        ("generic", "[o1] Plan a picnic."),
        ("knowledge", "[o2] Why is the sea salty?"),
        ("writing", "[o3] Write a short toast."),
    ]
    data_path = write_question_set(tmp_path / "bench", questions)
    results = tmp_path / "results"
    question_records = read_jsonl(data_path / "question.jsonl")
    # OpenChat's get_model_answer wrote the question's fields with the answer beside them.
    write_jsonl(
        results / f"bench_{MODEL}.jsonl",
        [{**q, "answer_model": MODEL, "answer": f"Answer from {MODEL}: {q['text']}"} for q in question_records],
    )
    write_jsonl(
        tmp_path / f"bench_{BASELINE}.jsonl",
        [
            {
                "answer_id": str(q["question_id"]),
                "question_id": q["question_id"],
                "model_id": BASELINE,
                "text": f"Answer from {BASELINE}: {q['text']}",
                "metadata": {},
            }
            for q in question_records
        ],
    )
    server = RunningServer(ScriptedJudge(script=OPENCHAT_SCRIPT, baseline=BASELINE))
    try:
        judged = run_stage(
            "evaluation.openai_eval",
            "--data_path",
            data_path,
            "--baseline_path",
            tmp_path / f"bench_{BASELINE}.jsonl",
            "--input_path",
            results,
            "--api-base",
            server.url,
            "--model",
            "judge",
            *FAST_RETRIES,
        )
        prompts = [body["messages"][-1]["content"] for body in server.judge.bodies]
    finally:
        server.stop()
    assert "(openchat format)" in judged.stderr and "(fastchat_vicuna_answer format)" in judged.stderr
    assert all(prompt.count("[o") == 3 for prompt in prompts), "the question once, and once in each answer"
    run_stage("evaluation.summarize", "--input_path", results)
    (entry,) = json.loads((results / "summary.json").read_text())["models"]
    assert (entry["wins"], entry["ties"], entry["losses"]) == (2, 0, 1)
    assert entry["total_model"] == 9 + 5 + 7 and entry["total_baseline"] == 6 + 8 + 5
    assert entry["score_pct"] == pytest.approx(100 * 21 / 19)
    assert entry["judged"] == 3 and entry["failed"] == 0


def test_the_bundled_vicuna_set_loads(capsys):
    assert len(load_questions(VICUNA_DATA)) == 80
    assert "80 questions (vicuna_question format)" in capsys.readouterr().err
