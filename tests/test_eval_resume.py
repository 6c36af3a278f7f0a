"""Every judging mode, and answering, survive kill -9: `--continue` finishes with the results of an uninterrupted run.

(Vicuna pairwise judging has the same test in test_evaluation.py.) Each run is a real
subprocess killed with SIGKILL once its append-only log holds a few lines; the judge is the
scripted OpenAI-protocol server with a small latency so the kill lands mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from evaluation.scripted_judge import RunningServer, ScriptedJudge
from tests.helpers.evaluation import BASELINE, FAST_RETRIES, MODEL, MT_BENCH_SAMPLE, read_jsonl, run_stage
from tests.helpers.repo import REPO_ROOT

# One rule per question and turn (second-turn prompts show the first turn too, so they come first).
TURN_TWO = ["same word", "fresh fish", "2 dollars", "fewer than two", "grows taller", "red at sunset"]
TURN_ONE = ["lighthouse", "harbour town", "3 for 45", "second largest", "Tom is taller", "sky looks blue"]


def single_script() -> list[dict]:
    return [
        {"match": text, "steps": [{"reply": f"Judged.\nRating: [[{1 + (number * 3 + turn) % 10}]]"}]}
        for turn, texts in ((2, TURN_TWO), (1, TURN_ONE))
        for number, text in enumerate(texts, 1)
    ]


def pair_script() -> list[dict]:
    verdicts = ["A", "B", "C"]
    return [
        {
            "match": text,
            "model_first": [{"reply": f"[[{verdicts[(number + turn) % 3]}]]"}],
            "baseline_first": [{"reply": f"[[{verdicts[(number * turn) % 3]}]]"}],
        }
        for turn, texts in ((2, TURN_TWO), (1, TURN_ONE))
        for number, text in enumerate(texts, 1)
    ]


def kill_when(command: list[str], log: Path, lines: int, timeout: float = 60) -> int:
    """Starts the stage, SIGKILLs it once `log` holds `lines` complete lines; returns the lines logged."""
    victim = subprocess.Popen(
        [sys.executable, "-m", *map(str, command)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and victim.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    return log.read_bytes().count(b"\n") if log.exists() else 0


def without_timestamps(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "tstamp"} for row in rows]


def mt_bench_resume(tmp_path, mode: str, script: list[dict], calls: int, output_name: str):
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE, latency=0.05))
    try:
        for model in (MODEL, BASELINE):
            run_stage(
                "evaluation.get_model_answer",
                "--data_path",
                MT_BENCH_SAMPLE,
                "--output_path",
                tmp_path / "answers",
                "--api-base",
                server.url,
                "--model",
                model,
            )
        common = [
            "evaluation.mt_bench",
            "--data_path",
            MT_BENCH_SAMPLE,
            "--answer_path",
            tmp_path / "answers",
            "--judge_model",
            "judge",
            "--mode",
            mode,
            "--baseline",
            BASELINE,
            "--models",
            MODEL,
            "--api-base",
            server.url,
            "--parallel",
            "1",
            *FAST_RETRIES,
        ]
        run_stage(*common, "--output_path", tmp_path / "whole")
        asked = len(server.judge.judge_requests())
        log = tmp_path / "killed" / output_name.replace(".jsonl", ".calls.jsonl")
        logged = kill_when([*common, "--output_path", tmp_path / "killed"], log, 3)
        assert 3 <= logged < calls, "the kill should land mid-run"
        assert not (tmp_path / "killed" / output_name).exists()
        run_stage(*common, "--output_path", tmp_path / "killed", "--continue")
        asked_again = len(server.judge.judge_requests()) - asked
    finally:
        server.stop()
    whole = read_jsonl(tmp_path / "whole" / output_name)
    assert len(whole) == calls // (2 if mode != "single" else 1)
    assert without_timestamps(read_jsonl(tmp_path / "killed" / output_name)) == without_timestamps(whole)
    assert asked_again <= calls + 1, "recorded calls were asked again (at most the one in flight may repeat)"


def test_mt_bench_single_grading_resumes_after_kill_9(tmp_path):
    mt_bench_resume(tmp_path, "single", single_script(), 12, "judge_single.jsonl")


def test_mt_bench_pairwise_games_resume_after_kill_9(tmp_path):
    mt_bench_resume(tmp_path, "pairwise-baseline", pair_script(), 24, "judge_pair.jsonl")


def test_alpaca_eval_resumes_after_kill_9(tmp_path):
    instructions = [f"[i{number}] Name thing number {number}." for number in range(1, 13)]
    for generator, path in ((MODEL, tmp_path / "model.json"), (BASELINE, tmp_path / "reference.json")):
        path.write_text(
            json.dumps(
                [
                    {"instruction": text, "output": f"Answer from {generator}: {text}", "generator": generator}
                    for text in instructions
                ]
            )
        )
    verdicts = ["a", "b", "tie"]
    script = [
        {
            "match": f"[i{number}]",
            "model_first": [{"reply": f"[[{verdicts[number % 3]}]]"}],
            "baseline_first": [{"reply": f"[[{verdicts[(number // 2) % 3]}]]"}],
        }
        for number in range(12, 0, -1)
    ]
    server = RunningServer(ScriptedJudge(script=script, baseline=BASELINE, latency=0.05))
    common = [
        "evaluation.alpaca_eval",
        "--model_outputs",
        tmp_path / "model.json",
        "--reference_outputs",
        tmp_path / "reference.json",
        "--judge_model",
        "judge",
        "--api-base",
        server.url,
        "--parallel",
        "1",
        *FAST_RETRIES,
    ]
    name = f"alpaca_eval_{MODEL}_annotations.json"
    try:
        run_stage(*common, "--output_path", tmp_path / "whole")
        asked = len(server.judge.judge_requests())
        logged = kill_when(
            [*common, "--output_path", tmp_path / "killed"],
            tmp_path / "killed" / name.replace(".json", ".calls.jsonl"),
            3,
        )
        assert 3 <= logged < 24 and not (tmp_path / "killed" / name).exists()
        run_stage(*common, "--output_path", tmp_path / "killed", "--continue")
        asked_again = len(server.judge.judge_requests()) - asked
    finally:
        server.stop()
    whole = json.loads((tmp_path / "whole" / name).read_text())
    assert json.loads((tmp_path / "killed" / name).read_text()) == whole
    assert {1.0, 1.5, 2.0} <= {annotation["preference"] for annotation in whole}  # varied, so a bad resume shows
    assert asked_again <= 24 + 1


def test_get_model_answer_resumes_after_kill_9(tmp_path):
    data_path = tmp_path / "bench"
    data_path.mkdir()
    (data_path / "question.jsonl").write_text(
        "".join(
            json.dumps({"question_id": number, "text": f"Question {number}?", "category": "generic"}) + "\n"
            for number in range(1, 13)
        )
    )
    server = RunningServer(ScriptedJudge(latency=0.05))
    common = [
        "evaluation.get_model_answer",
        "--data_path",
        data_path,
        "--api-base",
        server.url,
        "--model",
        MODEL,
        "--parallel",
        "1",
        *FAST_RETRIES,
    ]
    try:
        run_stage(*common, "--output_path", tmp_path / "whole")
        asked = len(server.judge.requests)
        logged = kill_when(
            [*common, "--output_path", tmp_path / "killed"], tmp_path / "killed" / f"bench_{MODEL}.jsonl.partial", 3
        )
        assert 3 <= logged < 12 and not (tmp_path / "killed" / f"bench_{MODEL}.jsonl").exists()
        run_stage(*common, "--output_path", tmp_path / "killed", "--continue")
        asked_again = len(server.judge.requests) - asked
    finally:
        server.stop()
    name = f"bench_{MODEL}.jsonl"
    assert read_jsonl(tmp_path / "killed" / name) == read_jsonl(tmp_path / "whole" / name)
    assert asked_again <= 12 + 1
    shutil.rmtree(tmp_path / "whole")
