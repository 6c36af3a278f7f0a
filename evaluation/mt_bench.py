"""MT-bench judging in FastChat's formats: single-answer 1-10 grading or pairwise against a baseline.

Reads FastChat's MT-bench folder (`--data_path`): `question.jsonl` (two `turns`, `category`,
optionally a `reference`), `judge_prompts.jsonl` (single-v1, single-math-v1, pair-v2,
pair-math-v1 and their `-multi-turn` forms) and `reference_answer/gpt-4.jsonl` (or the one
file in `reference_answer/`). Math, reasoning and coding questions are judged with the
reference answer. `evaluation/mt_bench_sample/` is a small folder in these formats. Model
answers come from `--answer_path`: `mt_bench_{model}.jsonl` files or FastChat's
`model_answer/{model}.jsonl`, in any answer format `evaluation.benchmark_data` reads.

Judge calls go through the judge core (`evaluation.judge`): concurrency, retries, `--structured`,
and the call log `OUTPUT/{judge}_single.calls.jsonl` / `{judge}_pair.calls.jsonl` behind
`--continue`. The result files are rebuilt from the log, atomically, at the end of each run.

Single mode (`--mode single`) writes `OUTPUT/{judge}_single.jsonl`, one line per (model, question, turn):

    {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "user_prompt": "...",
     "judgment": "... Rating: [[8]]", "score": 8, "turn": 1, "tstamp": 1700000000.0, "category": "writing"}

A reply without a readable rating is asked again (`--parse_retries`) and then stored with
score -1, which summaries leave out.

Pairwise mode (`--mode pairwise-baseline`) writes `OUTPUT/{judge}_pair.jsonl`; each game is
judged twice, the second time with the answers swapped (g2), and both winners are given in
the first game's terms ("model_1", "model_2", "tie", or "error" when unreadable):

    {"question_id": 81, "model_1": "m", "model_2": "gpt-3.5-turbo", "g1_winner": "model_1",
     "g2_winner": "tie", "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "...", "g1_judgment": "...",
     "g2_user_prompt": "...", "g2_judgment": "...", "turn": 1, "tstamp": 1700000000.0, "category": "writing"}

Scores: `python -m evaluation.summarize --input_path OUTPUT --mode mt_bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Optional

from evaluation.benchmark_data import (
    Question,
    answer_files,
    benchmark_name,
    load_answers,
    load_judge_prompts,
    load_questions,
    write_jsonl_atomic,
)
from evaluation.judge import (
    CallLog,
    JudgeRequest,
    add_judge_arguments,
    add_judge_model_argument,
    check_judge_arguments,
    judge_from_args,
    report_outcome,
    run_judgements,
)
from ochat.utils.cli import ArgumentParser
from ochat.utils.openai_client import ChatClient

NEED_REFERENCE = {"math", "reasoning", "coding"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.mt_bench",
        description="Judge MT-bench answers: single 1-10 grading or pairwise "
        "against a baseline (both orders), in FastChat's formats.",
    )
    parser.add_argument(
        "--data_path",
        required=True,
        help="MT-bench folder with question.jsonl, judge_prompts.jsonl, reference_answer/ "
        "(FastChat's llm_judge/data/mt_bench, or evaluation/mt_bench_sample)",
    )
    parser.add_argument(
        "--answer_path",
        required=True,
        help="folder of answers: mt_bench_{model}.jsonl, or FastChat's model_answer/{model}.jsonl",
    )
    parser.add_argument("--output_path", required=True, help="folder for the judgment files")
    parser.add_argument("--mode", choices=["single", "pairwise-baseline"], default="single")
    parser.add_argument(
        "--baseline", default="gpt-3.5-turbo", help="pairwise: the baseline model (default %(default)s)"
    )
    parser.add_argument("--models", nargs="*", default=None, help="judge only these models (default: all found)")
    add_judge_model_argument(parser)
    parser.add_argument(
        "--reference_path",
        default=None,
        help="reference answers (default DATA_PATH/reference_answer/gpt-4.jsonl or the one file "
        "there, else the questions' own 'reference' field)",
    )
    parser.add_argument("--max_tokens", type=int, default=2048, help="judge reply length (default %(default)s)")
    add_judge_arguments(parser)
    args = parser.parse_args(argv)
    check_judge_arguments(parser, args)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    data_path = Path(args.data_path)
    questions = load_questions(data_path)
    prompts = load_judge_prompts(data_path / "judge_prompts.jsonl")
    references = load_references(args.reference_path or default_reference_path(data_path), questions)
    answers = load_model_answers(args.answer_path, benchmark_name(data_path))
    models = [model for model in (args.models or sorted(answers)) if model != args.baseline]
    unknown = [model for model in models if model not in answers]
    if unknown or not models:
        raise SystemExit(f"no answers for {unknown or 'any model'} in {args.answer_path} (found: {sorted(answers)})")
    if args.mode == "pairwise-baseline" and args.baseline not in answers:
        raise SystemExit(f"no answers for the baseline {args.baseline} in {args.answer_path}")
    for model in models + ([args.baseline] if args.mode == "pairwise-baseline" else []):
        missing = [q.question_id for q in questions if q.question_id not in answers[model]]
        if missing:
            raise SystemExit(f"model {model} has no answers for question ids {missing[:20]}")
    unreferenced = [
        q.question_id for q in questions if q.category in NEED_REFERENCE and not references.get(q.question_id)
    ]
    if unreferenced:
        raise SystemExit(f"questions {unreferenced[:20]} need a reference answer; pass --reference_path")

    games = SingleGrading(args, models) if args.mode == "single" else PairwiseGames(args, models)
    requests = games.requests(questions, prompts, references, answers)
    log = CallLog(games.output_file.with_suffix(".calls.jsonl"), resume=args.resume, overwrite=args.overwrite)
    try:
        asyncio.run(judge_all(args, requests, log))
    finally:
        log.close()
    rows = games.rows(questions, log)
    write_jsonl_atomic(games.output_file, rows)
    print(f"judgments: {games.output_file}", file=sys.stderr)
    report_outcome([log.get(request.key) for request in requests if log.get(request.key) is not None])
    print(f"next: python -m evaluation.summarize --input_path {args.output_path} --mode mt_bench", file=sys.stderr)


def default_reference_path(data_path: Path) -> Path:
    folder = data_path / "reference_answer"
    candidates = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    return folder / "gpt-4.jsonl" if (folder / "gpt-4.jsonl").is_file() or len(candidates) != 1 else candidates[0]


def load_references(path, questions: list[Question]) -> dict:
    """Reference turns by question id, from a FastChat answer file or the questions' own field."""
    references = {q.question_id: q.reference for q in questions if q.reference}
    if Path(path).is_file():
        references.update({qid: answer["turns"] for qid, answer in load_answers(path).items()})
    return references


def load_model_answers(answer_path, bench: str) -> dict[str, dict]:
    files = answer_files(answer_path, bench) or {path.stem: path for path in sorted(Path(answer_path).glob("*.jsonl"))}
    if not files:
        raise SystemExit(f"no answer files in {answer_path}")
    return {model: load_answers(path) for model, path in files.items()}


def prompt_name(kind: str, question: Question, turn: int) -> str:
    base = {
        ("single", False): "single-v1",
        ("single", True): "single-math-v1",
        ("pair", False): "pair-v2",
        ("pair", True): "pair-math-v1",
    }[kind, question.category in NEED_REFERENCE]
    return base + ("-multi-turn" if turn == 2 else "")


def render(
    prompt: dict,
    question: Question,
    reference: Optional[list[str]],
    answer: Optional[list[str]] = None,
    answer_a: Optional[list[str]] = None,
    answer_b: Optional[list[str]] = None,
) -> list[dict]:
    """FastChat's judge messages for one turn (the multi-turn prompts show the whole conversation)."""
    fields = {
        "question": question.turns[0],
        "question_1": question.turns[0],
        "question_2": question.turns[1] if len(question.turns) > 1 else "",
    }
    for name, turns in (("answer", answer), ("answer_a", answer_a), ("answer_b", answer_b), ("ref_answer", reference)):
        if turns:
            fields[name] = turns[0]
            fields[f"{name}_1"] = turns[0]
            fields[f"{name}_2"] = turns[1] if len(turns) > 1 else ""
    try:
        user = prompt["prompt_template"].format(**fields)
    except KeyError as error:
        raise SystemExit(f"judge prompt {prompt['name']} uses the unknown placeholder {error}") from None
    return [{"role": "system", "content": prompt["system_prompt"]}, {"role": "user", "content": user}]


def named_prompt(prompts: dict, name: str) -> dict:
    if name not in prompts:
        raise SystemExit(f"judge_prompts.jsonl has no prompt named {name!r} (has: {sorted(prompts)})")
    return prompts[name]


class SingleGrading:
    """One request per (model, question, turn) for a 1-10 rating; rows in FastChat's single format."""

    def __init__(self, args, models: list[str]):
        self.args, self.models = args, models
        self.output_file = Path(args.output_path) / f"{args.judge_model}_single.jsonl"
        self.prompts_used: dict[tuple, tuple[str, str]] = {}

    def requests(self, questions, prompts, references, answers) -> list[JudgeRequest]:
        requests = []
        for model in self.models:
            for question in questions:
                for turn in range(1, len(question.turns) + 1):
                    name = prompt_name("single", question, turn)
                    messages = render(
                        named_prompt(prompts, name),
                        question,
                        references.get(question.question_id),
                        answer=answers[model][question.question_id]["turns"],
                    )
                    key = (model, question.question_id, turn)
                    self.prompts_used[key] = (name, messages[1]["content"])
                    requests.append(
                        JudgeRequest(
                            key,
                            messages,
                            "rating",
                            self.args.judge_model,
                            temperature=0,
                            max_tokens=self.args.max_tokens,
                        )
                    )
        return requests

    def rows(self, questions, log: CallLog) -> list[dict]:
        rows = []
        for model in self.models:
            for question in questions:
                for turn in range(1, len(question.turns) + 1):
                    call = log.get((model, question.question_id, turn))
                    if call is None:
                        continue
                    name, user_prompt = self.prompts_used[(model, question.question_id, turn)]
                    rows.append(
                        {
                            "question_id": question.question_id,
                            "model": model,
                            "judge": [self.args.judge_model, name],
                            "user_prompt": user_prompt,
                            "judgment": judgment_text(call),
                            "score": call["verdict"] if call["verdict"] is not None else -1,
                            "turn": turn,
                            "tstamp": call.get("tstamp", 0.0),
                            "category": question.category,
                        }
                    )
        return rows


class PairwiseGames:
    """Two requests per (model, question, turn): game 1 with the model as A, game 2 swapped."""

    def __init__(self, args, models: list[str]):
        self.args, self.models, self.baseline = args, models, args.baseline
        self.output_file = Path(args.output_path) / f"{args.judge_model}_pair.jsonl"
        self.prompts_used: dict[tuple, tuple[str, str]] = {}

    def requests(self, questions, prompts, references, answers) -> list[JudgeRequest]:
        requests = []
        for model in self.models:
            for question in questions:
                mine, theirs = (answers[m][question.question_id]["turns"] for m in (model, self.baseline))
                for turn in range(1, len(question.turns) + 1):
                    name = prompt_name("pair", question, turn)
                    prompt, reference = named_prompt(prompts, name), references.get(question.question_id)
                    for game, (a, b) in ((1, (mine, theirs)), (2, (theirs, mine))):
                        messages = render(prompt, question, reference, answer_a=a, answer_b=b)
                        key = (model, self.baseline, question.question_id, turn, game)
                        self.prompts_used[key] = (name, messages[1]["content"])
                        requests.append(
                            JudgeRequest(
                                key,
                                messages,
                                "verdict_abc",
                                self.args.judge_model,
                                temperature=0,
                                max_tokens=self.args.max_tokens,
                            )
                        )
        return requests

    def rows(self, questions, log: CallLog) -> list[dict]:
        winners = {1: {"A": "model_1", "B": "model_2", "C": "tie"}, 2: {"A": "model_2", "B": "model_1", "C": "tie"}}
        rows = []
        for model in self.models:
            for question in questions:
                for turn in range(1, len(question.turns) + 1):
                    keys = [(model, self.baseline, question.question_id, turn, game) for game in (1, 2)]
                    calls = [log.get(key) for key in keys]
                    if None in calls:
                        continue
                    name = self.prompts_used[keys[0]][0]
                    row = {"question_id": question.question_id, "model_1": model, "model_2": self.baseline}
                    for game, call in zip((1, 2), calls):
                        row[f"g{game}_winner"] = winners[game].get(call["verdict"], "error")
                    row.update({"judge": [self.args.judge_model, name]})
                    for game, (key, call) in enumerate(zip(keys, calls), 1):
                        row[f"g{game}_user_prompt"] = self.prompts_used[key][1]
                        row[f"g{game}_judgment"] = judgment_text(call)
                    row.update({"turn": turn, "tstamp": calls[0].get("tstamp", 0.0), "category": question.category})
                    rows.append(row)
        return rows


def judgment_text(call: dict) -> str:
    return call["text"] if call.get("error") is None else f"$ERROR$ {call['error']}"


async def judge_all(args, requests: list[JudgeRequest], log: CallLog) -> None:
    async with ChatClient.from_args(args) as client:
        judge = judge_from_args(client, args)
        await run_judgements(requests, log, judge, f"MT-bench {args.mode}")


if __name__ == "__main__":
    main()
