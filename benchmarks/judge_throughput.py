"""Wall time to judge 80 answer pairs in both orders against a judge endpoint with fixed latency.

Compares `python -m evaluation.openai_eval --parallel N` (N = 1, 8, 32 by default) with a
sequential loop that asks the judge one call at a time through the official `openai`
client, as the original evaluation script did. The judge is the scripted
OpenAI-compatible server from evaluation/scripted_judge.py, run as its own process, holding
every reply for `--latency` seconds.

    python benchmarks/judge_throughput.py --latency 0.2 --parallel 1 8 32
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from evaluation.benchmark_data import load_questions, load_reviewers, reviewer_for
from evaluation.verdicts import parse_score_pair
from ochat.utils.cli import ArgumentParser
from ochat.utils.net import free_port
from ochat.utils.server_process import ServerProcess

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the judge holds each reply")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--data_path", default=str(REPO_ROOT / "evaluation" / "vicuna"))
    parser.add_argument("--work_dir", default=str(REPO_ROOT / "benchmarks" / "_work" / "judge_throughput"))
    args = parser.parse_args()

    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    results, baseline_file = write_answers(work, args.data_path)
    server = start_judge_server(work, "--latency", str(args.latency))
    api_base = server.api_base
    try:
        calls = 2 * len(load_questions(args.data_path))
        rows = [("sequential loop (openai client)", sequential_judge(api_base, args.data_path, results, baseline_file))]
        for parallel in args.parallel:
            rows.append(
                (
                    f"openai_eval --parallel {parallel}",
                    run_openai_eval(api_base, args.data_path, results, baseline_file, parallel),
                )
            )
    finally:
        server.stop()

    sequential = rows[0][1]
    print(f"judge calls: {calls} (80 pairs x 2 orders), judge latency {args.latency * 1000:.0f} ms")
    print(f"{'method':<34} {'wall s':>8} {'calls/s':>8} {'speed-up':>9}")
    for name, seconds in rows:
        print(f"{name:<34} {seconds:>8.2f} {calls / seconds:>8.1f} {sequential / seconds:>8.1f}x")


def write_answers(work: Path, data_path: str) -> tuple[Path, Path]:
    questions = load_questions(data_path)
    results, baselines = work / "results", work / "baselines"
    for folder, model in ((results, "model"), (baselines, "baseline")):
        folder.mkdir(parents=True)
        with open(folder / f"vicuna_{model}.jsonl", "w") as handle:
            for question in questions:
                handle.write(
                    json.dumps(
                        {
                            "question_id": question.question_id,
                            "model": model,
                            "text": f"Answer from {model}: {question.text}",
                        }
                    )
                    + "\n"
                )
    return results, baselines / "vicuna_baseline.jsonl"


def sequential_judge(api_base: str, data_path: str, results: Path, baseline_file: Path) -> float:
    """One blocking call after another, both orders, as the original review loop did."""
    from openai import OpenAI

    client = OpenAI(base_url=api_base, api_key="unused")
    reviewers = load_reviewers(data_path)
    model_answers = {
        json.loads(line)["question_id"]: json.loads(line)["text"] for line in open(results / "vicuna_model.jsonl")
    }
    baseline_answers = {json.loads(line)["question_id"]: json.loads(line)["text"] for line in open(baseline_file)}
    started = time.perf_counter()
    for question in load_questions(data_path):
        reviewer = reviewer_for(reviewers, question.category)
        pair = (model_answers[question.question_id], baseline_answers[question.question_id])
        for first, second in (pair, pair[::-1]):
            reply = client.chat.completions.create(
                model="judge", messages=reviewer.render(question.text, first, second), temperature=0.2, max_tokens=1024
            )
            parse_score_pair(reply.choices[0].message.content)
    return time.perf_counter() - started


def run_openai_eval(api_base: str, data_path: str, results: Path, baseline_file: Path, parallel: int) -> float:
    """Wall time of the whole stage as a user runs it, process start-up included."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation.openai_eval",
            "--data_path",
            data_path,
            "--baseline_path",
            str(baseline_file),
            "--input_path",
            str(results),
            "--api-base",
            api_base,
            "--model",
            "judge",
            "--parallel",
            str(parallel),
            "--overwrite",
        ],
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def start_judge_server(work: Path, *options: str) -> ServerProcess:
    """evaluation/scripted_judge.py as its own process on a free port, started and stopped like any served model."""
    port = free_port()
    log_path = work / "judge_server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "evaluation.scripted_judge", "--port", str(port), *options],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServerProcess(process, port, log_path).wait_healthy(30)


if __name__ == "__main__":
    main()
