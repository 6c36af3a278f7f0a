"""Pairwise LLM judging of model answers against a baseline, with evidence and position calibration.

For every question the judge sees the question and two answers under the category's
reviewer prompt (general / coding / math, from `DATA/reviewer.jsonl` + `prompt.jsonl`)
and writes its explanation before the two scores (evidence calibration). Each pair is
judged in both orders (balanced position calibration), `--num_samples` times per order
at `--temperature`; scores are averaged within an order, then across the two orders.
A reply without a readable score pair is asked again (`--parse_retries`), then recorded
as failed and left out of every average: never counted as 0 : 0.

Files, under `--output_path` (default INPUT_PATH/reviews):

`{bench}_{model}_vs_{baseline}.calls.jsonl`: the durable log, one line per finished judge
call, appended and flushed to the OS as each call returns (fsynced every half second);
`--continue` reads it and asks only the (question, order, sample) calls it lacks (calls
that failed on transport errors are asked again):

    {"question_id": 1, "order": "baseline_first", "sample": 0, "text": "...\\n[7, 8]",
     "scores": [8.0, 7.0], "failed": false, "error": null, "judge": "gpt-4"}

`{bench}_{model}_vs_{baseline}.jsonl`: one line per question, rebuilt from the log and
written atomically (temporary file + rename) at the end of a run:

    {"question_id": 1, "category": "generic", "question": "...", "model": "m", "baseline": "b", "benchmark": "vicuna",
     "answer_model": "...", "answer_baseline": "...",
     "reviews": [{"order": "model_first", "sample": 0, "text": "...", "scores": [8.0, 7.0], "failed": false}, ...],
     "score_model": 8.0, "score_baseline": 7.0, "verdict": "win", "conflict": false}

Scores are always [model, baseline] whatever order the judge saw. `verdict` is null when
every review failed; `conflict` is true when the two orders' verdicts disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Optional

from evaluation.api_client import ChatClient, add_client_args, gather_with_progress
from evaluation.benchmark_data import (Question, Reviewer, answer_files, benchmark_name, load_answers,
                                       load_questions, load_reviewers, reviewer_for,
                                       write_jsonl_atomic)
from evaluation.judge import ask_judge, parse_score_pair
from ochat.utils.cli import ArgumentParser

ORDERS = ("model_first", "baseline_first")
FSYNC_INTERVAL = 0.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.openai_eval",
        description="Judge every model's answers against a baseline's with an LLM, in both answer orders "
                    "(balanced position calibration), explanation before scores (evidence calibration).")
    parser.add_argument("--data_path", required=True,
                        help="question set folder with question.jsonl, reviewer.jsonl and prompt.jsonl")
    parser.add_argument("--baseline_path", required=True,
                        help="the baseline's answer file, e.g. eval_baselines/vicuna_gpt-3.5-turbo.jsonl")
    parser.add_argument("--input_path", required=True,
                        help="folder of model answer files named {bench}_{model}.jsonl")
    parser.add_argument("--output_path", default=None, help="where reviews go (default INPUT_PATH/reviews)")
    parser.add_argument("--models", nargs="*", default=None, help="judge only these models (default: all found)")
    parser.add_argument("--bench", default=None, help="benchmark name in file names (default: data folder name)")
    parser.add_argument("--model", default=None, help="judge model (default: the reviewer file's, e.g. gpt-4)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="judge sampling temperature (default: the reviewer file's, 0.2 in the original)")
    parser.add_argument("--max_tokens", type=int, default=None, help="judge reply length (default: reviewer file's)")
    parser.add_argument("--num_samples", type=int, default=1,
                        help="reviews drawn per order and averaged (multiple-evidence calibration; default 1)")
    parser.add_argument("--parse_retries", type=int, default=2,
                        help="times an unparseable review is asked again before it counts as failed (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="sample k is requested with seed SEED+k (default 0)")
    parser.add_argument("--continue", dest="resume", action="store_true",
                        help="resume an interrupted run: keep judged calls, ask only the missing ones")
    parser.add_argument("--overwrite", action="store_true", help="discard earlier reviews and judge again")
    add_client_args(parser, default_parallel=16)
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error("--num_samples must be at least 1")
    if args.resume and args.overwrite:
        parser.error("--continue and --overwrite exclude each other")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    questions = load_questions(args.data_path)
    reviewers = load_reviewers(args.data_path)
    bench = args.bench or benchmark_name(args.data_path)
    baseline_answers = load_answers(args.baseline_path)
    baseline = baseline_model_name(args.baseline_path, baseline_answers, bench)
    models = select_models(args.input_path, bench, baseline, args.models)
    output_path = Path(args.output_path or Path(args.input_path) / "reviews")

    jobs = []
    for model, path in models.items():
        model_answers = load_answers(path)
        check_answers_cover(questions, model_answers, path)
        check_answers_cover(questions, baseline_answers, args.baseline_path)
        jobs.append(PairJudging(bench, model, baseline, questions, model_answers, baseline_answers,
                                output_path / f"{bench}_{model}_vs_{baseline}", args))

    asyncio.run(judge_all(jobs, reviewers, args))
    for job in jobs:
        job.write_reviews()
        print(f"reviews: {job.reviews_path}", file=sys.stderr)
    unreachable = sum(bool(call.get("error")) for job in jobs for call in job.calls.values())
    if unreachable:
        print(f"{unreachable} judge calls failed on transport errors and count as failed; "
              "run again with --continue to ask them again", file=sys.stderr)
    print(f"next: python -m evaluation.summarize --input_path {args.output_path or args.input_path}", file=sys.stderr)


def baseline_model_name(path, answers: dict, bench: str) -> str:
    stem = Path(path).stem
    return stem[len(bench) + 1:] if stem.startswith(bench + "_") else next(iter(answers.values()))["model"]


def select_models(input_path, bench: str, baseline: str, wanted: Optional[list[str]]) -> dict[str, Path]:
    found = answer_files(input_path, bench)
    found.pop(baseline, None)
    if wanted:
        missing = [model for model in wanted if model not in found]
        if missing:
            raise SystemExit(f"no answer file for {missing} in {input_path} (found: {sorted(found)})")
        found = {model: found[model] for model in wanted}
    if not found:
        raise SystemExit(f"no {bench}_MODEL.jsonl answer files in {input_path}")
    return found


def check_answers_cover(questions: list[Question], answers: dict, path) -> None:
    missing = [question.question_id for question in questions if question.question_id not in answers]
    if missing:
        raise SystemExit(f"{path} has no answer for question ids {missing[:20]}{' ...' if len(missing) > 20 else ''}")


class PairJudging:
    """Judge calls for one (model, baseline) pair, with their append-only log."""

    def __init__(self, bench, model, baseline, questions, model_answers, baseline_answers, stem: Path, args):
        self.bench, self.model, self.baseline, self.questions = bench, model, baseline, questions
        self.model_answers, self.baseline_answers = model_answers, baseline_answers
        self.num_samples = args.num_samples
        self.calls_path = stem.with_name(stem.name + ".calls.jsonl")
        self.reviews_path = stem.with_name(stem.name + ".jsonl")
        self.calls: dict[tuple, dict] = {}
        if args.overwrite:
            for path in (self.calls_path, self.reviews_path):
                path.unlink(missing_ok=True)
        elif self.calls_path.exists() and self.calls_path.stat().st_size and not args.resume:
            raise SystemExit(f"{self.calls_path} already holds judged calls; pass --continue to resume "
                             "or --overwrite to judge again")
        if self.calls_path.exists():
            self.calls = {call_key(call): call for call in read_call_log(self.calls_path)}
        self.calls_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.calls_path, "a", encoding="utf-8")
        self._last_fsync = time.monotonic()

    def pending(self):
        """(question, order, sample) calls the log lacks, or holds only as transport failures."""
        for question in self.questions:
            for order in ORDERS:
                for sample in range(self.num_samples):
                    earlier = self.calls.get((question.question_id, order, sample))
                    if earlier is None or earlier.get("error"):
                        yield question, order, sample

    def answers_in_order(self, question: Question, order: str) -> tuple[str, str]:
        model_text = self.model_answers[question.question_id]["turns"][0]
        baseline_text = self.baseline_answers[question.question_id]["turns"][0]
        return (model_text, baseline_text) if order == "model_first" else (baseline_text, model_text)

    def record(self, call: dict) -> None:
        """Appends one finished call and hands it to the OS at once, so a killed process loses only
        calls in flight; fsyncs at most every FSYNC_INTERVAL seconds (and at the end) against power loss,
        since an fsync per call would stall the event loop for milliseconds each time."""
        self._log.write(json.dumps(call, ensure_ascii=False) + "\n")
        self._log.flush()
        if time.monotonic() - self._last_fsync >= FSYNC_INTERVAL:
            os.fsync(self._log.fileno())
            self._last_fsync = time.monotonic()
        self.calls[call_key(call)] = call

    def write_reviews(self) -> None:
        os.fsync(self._log.fileno())
        self._log.close()
        records = []
        for question in self.questions:
            calls = [self.calls[(question.question_id, order, sample)] for order in ORDERS
                     for sample in range(self.num_samples) if (question.question_id, order, sample) in self.calls]
            records.append({
                "question_id": question.question_id, "category": question.category, "question": question.text,
                "model": self.model, "baseline": self.baseline, "benchmark": self.bench,
                "answer_model": self.model_answers[question.question_id]["turns"][0],
                "answer_baseline": self.baseline_answers[question.question_id]["turns"][0],
                "reviews": [{key: call[key] for key in ("order", "sample", "text", "scores", "failed")}
                            for call in calls],
                **aggregate_reviews(calls)})
        write_jsonl_atomic(self.reviews_path, records)


def call_key(call: dict) -> tuple:
    return call["question_id"], call["order"], call["sample"]


def read_call_log(path: Path) -> list[dict]:
    """Reads the call log; a last line cut short by a kill is dropped from the file, so appends stay clean."""
    data = path.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        print(f"{path}: dropping a partly written last line", file=sys.stderr)
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    calls = []
    for number, line in enumerate(complete.decode("utf-8").splitlines(), 1):
        try:
            calls.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{number}: corrupt line in the call log") from None
    return calls


def aggregate_reviews(calls: list[dict]) -> dict:
    """Averages successful reviews within each order, then across orders; failed ones are left out."""
    order_means = {}
    for order in ORDERS:
        scores = [call["scores"] for call in calls if call["order"] == order and not call["failed"]]
        if scores:
            order_means[order] = (mean(s[0] for s in scores), mean(s[1] for s in scores))
    if not order_means:
        return {"score_model": None, "score_baseline": None, "verdict": None, "conflict": False}
    score_model = mean(m for m, _ in order_means.values())
    score_baseline = mean(b for _, b in order_means.values())
    order_verdicts = {verdict_of(m, b) for m, b in order_means.values()}
    return {"score_model": score_model, "score_baseline": score_baseline,
            "verdict": verdict_of(score_model, score_baseline),
            "conflict": len(order_means) == 2 and len(order_verdicts) > 1}


def verdict_of(score_model: float, score_baseline: float) -> str:
    if abs(score_model - score_baseline) < 1e-9:
        return "tie"
    return "win" if score_model > score_baseline else "loss"


async def judge_all(jobs: list[PairJudging], reviewers: dict[str, Reviewer], args) -> None:
    client = ChatClient.from_args(args)
    async with client:
        coroutines = [judge_call(client, job, reviewer_for(reviewers, question.category), question, order, sample, args)
                      for job in jobs for question, order, sample in job.pending()]
        if not coroutines:
            print("every judge call is already recorded; rebuilding reviews only", file=sys.stderr)
            return
        await gather_with_progress(coroutines, "judging")


async def judge_call(client: ChatClient, job: PairJudging, reviewer: Reviewer, question: Question,
                     order: str, sample: int, args) -> None:
    """One (question, order, sample) review: ask, parse, re-ask when unparseable, record."""
    answer_1, answer_2 = job.answers_in_order(question, order)
    messages = reviewer.render(question.text, answer_1, answer_2)
    judge_model = args.model or reviewer.kwargs.get("model", "gpt-4")
    temperature = args.temperature if args.temperature is not None else reviewer.kwargs.get("temperature", 0.2)
    max_tokens = args.max_tokens or reviewer.kwargs.get("max_tokens", 1024)
    reply, pair, error, attempts = await ask_judge(
        client, judge_model, messages, parse_score_pair, args.parse_retries,
        temperature=temperature, max_tokens=max_tokens, seed=args.seed + sample)
    scores = None
    if pair is not None:
        scores = list(pair) if order == "model_first" else [pair[1], pair[0]]
    if error:
        print(f"judge call failed for question {question.question_id} ({order}, sample {sample}): {error}",
              file=sys.stderr)
    call = {"question_id": question.question_id, "order": order, "sample": sample, "text": reply,
            "scores": scores, "failed": scores is None, "error": error, "judge": judge_model, "attempts": attempts}
    job.record(call)


if __name__ == "__main__":
    main()
