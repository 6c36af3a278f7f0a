"""The evaluation chain as the tests run it: stages as subprocesses, question sets written on the spot, the scripted
judge's scenario, and the published benchmark copies when this machine has them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.scripted_judge import RunningServer
from tests.helpers.repo import REPO_ROOT

VICUNA_DATA = Path(REPO_ROOT) / "evaluation" / "vicuna"
MT_BENCH_SAMPLE = Path(REPO_ROOT) / "evaluation" / "mt_bench_sample"
BASELINE = "base"
MODEL = "mine"
FAST_RETRIES = ["--retry_base_delay", "0.01", "--max_retry_delay", "0.2", "--request_timeout", "1.0"]


def run_stage(module: str, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        pytest.fail(f"{module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_question_set(folder: Path, questions: list[tuple[str, str]]) -> Path:
    """A Vicuna-format data folder with our reviewer and prompt files and the given (category, text) questions."""
    folder.mkdir(parents=True)
    for name in ("reviewer.jsonl", "prompt.jsonl"):
        shutil.copy(VICUNA_DATA / name, folder / name)
    with open(folder / "question.jsonl", "w") as handle:
        for number, (category, text) in enumerate(questions, 1):
            handle.write(json.dumps({"question_id": number, "text": text, "category": category}) + "\n")
    return folder


# Seven tagged questions; each rule scripts the judge per order. Expected [model, baseline] per question:
# q1 8:7 win | q2 (8+6)/2 : (7+9)/2 = 7:8 loss, orders disagree | q3 6:6 tie after 429/500/timeout
# q4 5:9 loss | q5 model_first never parses (failed), baseline_first 10:4 win | q6 every review fails
# q7 first reply unparseable, retry gives 7:7, tie.
SCENARIO_QUESTIONS = [
    ("generic", "[q1] How do I plan a week?"),
    ("knowledge", "[q2] Why do tides happen?"),
    ("coding", "[q3] Reverse a list in Python."),
    ("math", "[q4] What is 6 times 7?"),
    ("writing", "[q5] Write a haiku about rain."),
    ("roleplay", "[q6] Be a pirate and greet me."),
    ("fermi", "[q7] How many cups of tea are drunk daily?"),
]
SCENARIO_SCRIPT = [
    {
        "match": "[q1]",
        "model_first": [{"reply": "Both are fine; the first is more specific.\n8 7"}],
        "baseline_first": [{"reply": "The second covers more ground.\nAssistant 1: 7\nAssistant 2: 8"}],
    },
    {
        "match": "[q2]",
        "model_first": [
            {"status": 429, "retry_after": 0.05},
            {"reply": "The first explains the Moon's pull.\n8/10 and 7/10"},
        ],
        "baseline_first": [{"reply": "Scores: 9 6\nThe first answer covers 3 points and the second 2."}],
    },
    {
        "match": "[q3]",
        "model_first": [{"status": 500}, {"reply": "Both use slicing correctly.\n[6, 6]"}],
        "baseline_first": [{"sleep": 2}, {"reply": "Equivalent solutions.\n6, 6"}],
    },
    {
        "match": "[q4]",
        "model_first": [{"reply": "Assistant 2 is right, Assistant 1 says 40.\n5 9"}],
        "baseline_first": [{"reply": "9 5\nThe first answer is correct."}],
    },
    {
        "match": "[q5]",
        "model_first": [{"reply": "I cannot decide between them."}],
        "baseline_first": [{"reply": "Assistant 1 receives a score of 4, while Assistant 2 receives 10."}],
    },
    {"match": "[q6]", "steps": [{"reply": "No scores from me today."}]},
    {
        "match": "[q7]",
        "model_first": [{"reply": "Hmm, hard to say."}, {"reply": "Similar estimates.\n7 7"}],
        "baseline_first": [{"reply": "Both reason the same way.\n7, 7"}],
    },
]


def answer_with_both(server: RunningServer, data_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Baseline answers via get_openai_answer, the model's via get_model_answer --api-base; both from the server."""
    baselines, results = tmp_path / "eval_baselines", tmp_path / "eval_results"
    run_stage(
        "evaluation.get_openai_answer",
        "--data_path",
        data_path,
        "--output_path",
        baselines,
        "--model_types",
        BASELINE,
        "--api-base",
        server.url,
        *FAST_RETRIES,
    )
    run_stage(
        "evaluation.get_model_answer",
        "--data_path",
        data_path,
        "--output_path",
        results,
        "--api-base",
        server.url,
        "--model",
        MODEL,
        *FAST_RETRIES,
    )
    bench = data_path.name
    return baselines / f"{bench}_{BASELINE}.jsonl", results


SHARED_BENCHMARKS = next(
    (
        folder / "shared" / "benchmarks"
        for folder in (Path(REPO_ROOT).parent, Path(REPO_ROOT).parent.parent)
        if (folder / "shared" / "benchmarks").is_dir()
    ),
    Path(REPO_ROOT).parent / "shared" / "benchmarks",
)
needs_shared = pytest.mark.skipif(
    not SHARED_BENCHMARKS.is_dir(), reason="published benchmark copies (../shared/benchmarks) are not on this machine"
)
