"""Pairwise LLM judging of model answers against a baseline, with evidence and position calibration.

For every question the judge sees the question and two answers under the category's
reviewer prompt (general / coding / math, from `DATA/reviewer.jsonl` + `prompt.jsonl`)
and writes its explanation before the two scores (evidence calibration). Each pair is
judged in both orders (balanced position calibration), `--num_samples` times per order
at `--temperature`; scores are averaged within an order, then across the two orders.
A reply without a readable score pair is asked again (`--parse_retries`), then recorded
as failed and left out of every average: never counted as 0 : 0.

Files, under `--output_path` (default INPUT_PATH/reviews):

`{bench}_{model}_vs_{baseline}.calls.jsonl`: the judge core's call log (see `evaluation.judge`),
one line per finished judge call, keyed [question_id, order, sample]; `--continue` asks only
the calls it lacks. Verdicts are [score of assistant 1, score of assistant 2] as the judge saw them.

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
import sys
from pathlib import Path
from statistics import mean
from typing import Optional

from evaluation.benchmark_data import (
    Question,
    Reviewer,
    answer_files,
    benchmark_name,
    data_folder_kind,
    load_answers,
    load_questions,
    load_reviewers,
    reviewer_for,
    write_jsonl_atomic,
)
from evaluation.judge import (
    CallLog,
    JudgeRequest,
    add_judge_arguments,
    check_judge_arguments,
    judge_from_args,
    report_outcome,
    run_judgements,
)
from ochat.utils.cli import ArgumentParser
from ochat.utils.openai_client import ChatClient

ORDERS = ("model_first", "baseline_first")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.openai_eval",
        description="Judge every model's answers against a baseline's with an LLM, in both answer orders "
        "(balanced position calibration), explanation before scores (evidence calibration).",
    )
    parser.add_argument(
        "--data_path",
        required=True,
        help="question set folder with question.jsonl, reviewer.jsonl and prompt.jsonl "
        "(OpenChat's / Vicuna's published files work as they are)",
    )
    parser.add_argument(
        "--baseline_path",
        required=True,
        help="the baseline's answer file, e.g. eval_baselines/vicuna_gpt-3.5-turbo.jsonl",
    )
    parser.add_argument(
        "--input_path",
        required=True,
        help="folder of model answer files named {bench}_{model}.jsonl (ochat, OpenChat or FastChat "
        "answer format, detected per file)",
    )
    parser.add_argument("--output_path", default=None, help="where reviews go (default INPUT_PATH/reviews)")
    parser.add_argument("--models", nargs="*", default=None, help="judge only these models (default: all found)")
    parser.add_argument("--bench", default=None, help="benchmark name in file names (default: data folder name)")
    parser.add_argument("--model", default=None, help="judge model (default: the reviewer file's, e.g. gpt-4)")
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="judge sampling temperature (default: the reviewer file's, 0.2 in the original)",
    )
    parser.add_argument("--max_tokens", type=int, default=None, help="judge reply length (default: reviewer file's)")
    parser.add_argument(
        "--num_samples",
        type=int,
        default=1,
        help="reviews drawn per order and averaged (multiple-evidence calibration; default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sample k is requested with seed SEED+k (default 0)")
    add_judge_arguments(parser)
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error("--num_samples must be at least 1")
    check_judge_arguments(parser, args)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if data_folder_kind(args.data_path) == "mt_bench":
        raise SystemExit(
            f"{args.data_path} is an MT-bench folder (judge_prompts.jsonl); judge it with python -m evaluation.mt_bench"
        )
    questions = load_questions(args.data_path)
    reviewers = load_reviewers(args.data_path)
    bench = args.bench or benchmark_name(args.data_path)
    baseline_answers = load_answers(args.baseline_path)
    check_answers_cover(questions, baseline_answers, args.baseline_path)
    baseline = baseline_model_name(args.baseline_path, baseline_answers, bench)
    models = select_models(args.input_path, bench, baseline, args.models)
    output_path = Path(args.output_path or Path(args.input_path) / "reviews")

    jobs = []
    for model, path in models.items():
        model_answers = load_answers(path)
        check_answers_cover(questions, model_answers, path)
        jobs.append(
            PairJudging(
                bench,
                model,
                baseline,
                questions,
                model_answers,
                baseline_answers,
                output_path / f"{bench}_{model}_vs_{baseline}",
                args,
            )
        )

    asyncio.run(judge_all(jobs, reviewers, args))
    for job in jobs:
        job.write_reviews()
        print(f"reviews: {job.reviews_path}", file=sys.stderr)
    report_outcome([call for job in jobs for call in job.current_calls()])
    print(f"next: python -m evaluation.summarize --input_path {args.output_path or args.input_path}", file=sys.stderr)


def baseline_model_name(path, answers: dict, bench: str) -> str:
    stem = Path(path).stem
    return stem[len(bench) + 1 :] if stem.startswith(bench + "_") else next(iter(answers.values()))["model"]


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
    """Judge requests for one (model, baseline) pair, and the reviews file reduced from their calls."""

    def __init__(self, bench, model, baseline, questions, model_answers, baseline_answers, stem: Path, args):
        self.bench, self.model, self.baseline, self.questions = bench, model, baseline, questions
        self.model_answers, self.baseline_answers = model_answers, baseline_answers
        self.num_samples = args.num_samples
        self.reviews_path = stem.with_name(stem.name + ".jsonl")
        if args.overwrite:
            self.reviews_path.unlink(missing_ok=True)
        self.log = CallLog(stem.with_name(stem.name + ".calls.jsonl"), resume=args.resume, overwrite=args.overwrite)

    def requests(self, reviewers: dict[str, Reviewer], args) -> list[JudgeRequest]:
        requests = []
        for question in self.questions:
            reviewer = reviewer_for(reviewers, question.category)
            for order in ORDERS:
                for sample in range(self.num_samples):
                    requests.append(
                        JudgeRequest(
                            key=(question.question_id, order, sample),
                            messages=reviewer.render(question.text, *self.answers_in_order(question, order)),
                            kind="score_pair",
                            model=args.model or reviewer.kwargs.get("model", "gpt-4"),
                            temperature=args.temperature
                            if args.temperature is not None
                            else reviewer.kwargs.get("temperature", 0.2),
                            max_tokens=args.max_tokens or reviewer.kwargs.get("max_tokens", 1024),
                            seed=args.seed + sample,
                        )
                    )
        return requests

    def answers_in_order(self, question: Question, order: str) -> tuple[str, str]:
        model_text = self.model_answers[question.question_id]["turns"][0]
        baseline_text = self.baseline_answers[question.question_id]["turns"][0]
        return (model_text, baseline_text) if order == "model_first" else (baseline_text, model_text)

    def question_calls(self, question: Question) -> list[dict]:
        """This run's calls for one question, with scores mapped to [model, baseline] whatever the order."""
        calls = []
        for order in ORDERS:
            for sample in range(self.num_samples):
                call = self.log.get((question.question_id, order, sample))
                if call is None:
                    continue
                pair = call["verdict"]
                scores = None if pair is None else (list(pair) if order == "model_first" else [pair[1], pair[0]])
                calls.append(
                    {"order": order, "sample": sample, "text": call["text"], "scores": scores, "failed": call["failed"]}
                )
        return calls

    def current_calls(self) -> list[dict]:
        return [
            call
            for question in self.questions
            for order in ORDERS
            for sample in range(self.num_samples)
            if (call := self.log.get((question.question_id, order, sample))) is not None
        ]

    def write_reviews(self) -> None:
        self.log.close()
        records = []
        for question in self.questions:
            reviews = self.question_calls(question)
            records.append(
                {
                    "question_id": question.question_id,
                    "category": question.category,
                    "question": question.text,
                    "model": self.model,
                    "baseline": self.baseline,
                    "benchmark": self.bench,
                    "answer_model": self.model_answers[question.question_id]["turns"][0],
                    "answer_baseline": self.baseline_answers[question.question_id]["turns"][0],
                    "reviews": reviews,
                    **aggregate_reviews(reviews),
                }
            )
        write_jsonl_atomic(self.reviews_path, records)


def aggregate_reviews(reviews: list[dict]) -> dict:
    """Averages successful reviews within each order, then across orders; failed ones are left out."""
    order_means = {}
    for order in ORDERS:
        scores = [review["scores"] for review in reviews if review["order"] == order and not review["failed"]]
        if scores:
            order_means[order] = (mean(s[0] for s in scores), mean(s[1] for s in scores))
    if not order_means:
        return {"score_model": None, "score_baseline": None, "verdict": None, "conflict": False}
    score_model = mean(m for m, _ in order_means.values())
    score_baseline = mean(b for _, b in order_means.values())
    order_verdicts = {verdict_of(m, b) for m, b in order_means.values()}
    return {
        "score_model": score_model,
        "score_baseline": score_baseline,
        "verdict": verdict_of(score_model, score_baseline),
        "conflict": len(order_means) == 2 and len(order_verdicts) > 1,
    }


def verdict_of(score_model: float, score_baseline: float) -> str:
    if abs(score_model - score_baseline) < 1e-9:
        return "tie"
    return "win" if score_model > score_baseline else "loss"


async def judge_all(jobs: list[PairJudging], reviewers: dict[str, Reviewer], args) -> None:
    async with ChatClient.from_args(args) as client:
        judge = judge_from_args(client, args)
        for job in jobs:
            await run_judgements(job.requests(reviewers, args), job.log, judge, f"judging {job.model}")


if __name__ == "__main__":
    main()
