"""MT-bench judging in FastChat's formats: single-answer 1-10 grading or pairwise against a baseline.

Reads FastChat's MT-bench folder (`--data_path`): `question.jsonl` (two `turns`, `category`),
`judge_prompts.jsonl` (single-v1, single-math-v1, pair-v2, pair-math-v1 and their
`-multi-turn` forms) and `reference_answer/gpt-4.jsonl`. Math, reasoning and coding
questions are judged with the reference answer. Model answers come from
`--answer_path`: our `mt_bench_{model}.jsonl` files (with "turns") or FastChat's
`model_answer/{model}.jsonl`.

Single mode (`--mode single`) writes `OUTPUT/{judge}_single.jsonl`, one line per (model, question, turn):

    {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "user_prompt": "...",
     "judgment": "... Rating: [[8]]", "score": 8, "turn": 1, "tstamp": 1700000000.0, "category": "writing"}

A reply without a readable "[[rating]]" is asked again (`--parse_retries`) and then stored with
score -1, which summaries leave out.

Pairwise mode (`--mode pairwise-baseline`) writes `OUTPUT/{judge}_pair.jsonl`; each game is
judged twice, the second time with the answers swapped (g2), and both winners are given in
the first game's terms ("model_1", "model_2", "tie", or "error" when unreadable):

    {"question_id": 81, "model_1": "m", "model_2": "gpt-3.5-turbo", "g1_winner": "model_1",
     "g2_winner": "tie", "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "...", "g1_judgment": "...",
     "g2_user_prompt": "...", "g2_judgment": "...", "turn": 1, "tstamp": 1700000000.0, "category": "writing"}

Judgments already in the output file are kept (the run resumes) unless `--overwrite`.
Scores: `python -m evaluation.summarize --input_path OUTPUT --mode mt_bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Optional

from evaluation.api_client import ChatClient, add_client_args, gather_with_progress
from evaluation.benchmark_data import Question, answer_files, benchmark_name, load_answers, load_questions, read_jsonl
from evaluation.judge import ask_judge, parse_pairwise_verdict, parse_rating
from ochat.utils.cli import ArgumentParser

NEED_REFERENCE = {"math", "reasoning", "coding"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m evaluation.mt_bench",
                                     description="Judge MT-bench answers: single 1-10 grading or pairwise "
                                                 "against a baseline (both orders), in FastChat's formats.")
    parser.add_argument("--data_path", required=True,
                        help="FastChat MT-bench folder with question.jsonl, judge_prompts.jsonl, reference_answer/")
    parser.add_argument("--answer_path", required=True,
                        help="folder of answers: mt_bench_{model}.jsonl, or FastChat's model_answer/{model}.jsonl")
    parser.add_argument("--output_path", required=True, help="folder for the judgment files")
    parser.add_argument("--mode", choices=["single", "pairwise-baseline"], default="single")
    parser.add_argument("--baseline", default="gpt-3.5-turbo", help="pairwise: the baseline model (default %(default)s)")
    parser.add_argument("--models", nargs="*", default=None, help="judge only these models (default: all found)")
    parser.add_argument("--judge_model", "--model", dest="judge_model", default="gpt-4",
                        help="judge model id at the endpoint (default %(default)s)")
    parser.add_argument("--reference_path", default=None,
                        help="reference answers (default DATA_PATH/reference_answer/gpt-4.jsonl, else the "
                             "questions' own 'reference' field)")
    parser.add_argument("--max_tokens", type=int, default=2048, help="judge reply length (default %(default)s)")
    parser.add_argument("--parse_retries", type=int, default=2,
                        help="times an unreadable judgment is asked again (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="judge again instead of keeping earlier judgments")
    add_client_args(parser, default_parallel=16)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    data_path = Path(args.data_path)
    questions = load_questions(data_path)
    prompts = {record["name"]: record for record in read_jsonl(data_path / "judge_prompts.jsonl")}
    references = load_references(args.reference_path or data_path / "reference_answer" / "gpt-4.jsonl", questions)
    answers = load_model_answers(args.answer_path, benchmark_name(data_path))
    models = [model for model in (args.models or sorted(answers)) if model != args.baseline]
    unknown = [model for model in models if model not in answers]
    if unknown or not models:
        raise SystemExit(f"no answers for {unknown or 'any model'} in {args.answer_path} (found: {sorted(answers)})")
    if args.mode == "pairwise-baseline" and args.baseline not in answers:
        raise SystemExit(f"no answers for the baseline {args.baseline} in {args.answer_path}")

    suffix = "single" if args.mode == "single" else "pair"
    output_file = Path(args.output_path) / f"{args.judge_model}_{suffix}.jsonl"
    if args.overwrite:
        output_file.unlink(missing_ok=True)
    done = {(row["question_id"], row.get("model", row.get("model_1")), row["turn"])
            for row in (read_jsonl(output_file) if output_file.exists() else [])}
    output_file.parent.mkdir(parents=True, exist_ok=True)
    with open(output_file, "a", encoding="utf-8") as sink:
        asyncio.run(judge_all(args, questions, prompts, references, answers, models, done, sink))
    print(f"judgments: {output_file}\nnext: python -m evaluation.summarize --input_path {args.output_path} "
          "--mode mt_bench", file=sys.stderr)


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
    base = {("single", False): "single-v1", ("single", True): "single-math-v1",
            ("pair", False): "pair-v2", ("pair", True): "pair-math-v1"}[kind, question.category in NEED_REFERENCE]
    return base + ("-multi-turn" if turn == 2 else "")


def render(prompt: dict, question: Question, turn: int, reference: Optional[list[str]],
           answer: Optional[list[str]] = None, answer_a: Optional[list[str]] = None,
           answer_b: Optional[list[str]] = None) -> list[dict]:
    """FastChat's judge messages for one turn (turn 2 shows the whole conversation)."""
    fields = {"question": question.turns[0], "question_1": question.turns[0],
              "question_2": question.turns[1] if len(question.turns) > 1 else ""}
    for name, turns in (("answer", answer), ("answer_a", answer_a), ("answer_b", answer_b),
                        ("ref_answer", reference)):
        if turns:
            fields[name] = turns[0]
            fields[f"{name}_1"] = turns[0]
            fields[f"{name}_2"] = turns[1] if len(turns) > 1 else ""
    user = prompt["prompt_template"].format(**fields)
    return [{"role": "system", "content": prompt["system_prompt"]}, {"role": "user", "content": user}]


async def judge_all(args, questions, prompts, references, answers, models, done, sink) -> None:
    client = ChatClient.from_args(args)

    def write(row: dict) -> None:
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        sink.flush()

    async def single(model: str, question: Question, turn: int) -> None:
        name = prompt_name("single", question, turn)
        messages = render(prompts[name], question, turn, references.get(question.question_id),
                          answer=answers[model][question.question_id]["turns"])
        reply, rating, error, _ = await ask_judge(client, args.judge_model, messages, parse_rating,
                                                  args.parse_retries, temperature=0, max_tokens=args.max_tokens)
        write({"question_id": question.question_id, "model": model, "judge": [args.judge_model, name],
               "user_prompt": messages[1]["content"], "judgment": reply if error is None else f"$ERROR$ {error}",
               "score": rating if rating is not None else -1, "turn": turn, "tstamp": time.time(),
               "category": question.category})

    async def pairwise(model: str, question: Question, turn: int) -> None:
        name = prompt_name("pair", question, turn)
        mine, theirs = (answers[m][question.question_id]["turns"] for m in (model, args.baseline))
        reference = references.get(question.question_id)
        game_1 = render(prompts[name], question, turn, reference, answer_a=mine, answer_b=theirs)
        game_2 = render(prompts[name], question, turn, reference, answer_a=theirs, answer_b=mine)
        (reply_1, verdict_1, _, _), (reply_2, verdict_2, _, _) = await asyncio.gather(*(
            ask_judge(client, args.judge_model, game, parse_pairwise_verdict, args.parse_retries,
                      temperature=0, max_tokens=args.max_tokens) for game in (game_1, game_2)))
        write({"question_id": question.question_id, "model_1": model, "model_2": args.baseline,
               "g1_winner": {"A": "model_1", "B": "model_2", "C": "tie"}.get(verdict_1, "error"),
               "g2_winner": {"A": "model_2", "B": "model_1", "C": "tie"}.get(verdict_2, "error"),
               "judge": [args.judge_model, name], "g1_user_prompt": game_1[1]["content"], "g1_judgment": reply_1,
               "g2_user_prompt": game_2[1]["content"], "g2_judgment": reply_2, "turn": turn,
               "tstamp": time.time(), "category": question.category})

    judge_one = single if args.mode == "single" else pairwise
    jobs = []
    for model in models + ([args.baseline] if args.mode == "pairwise-baseline" else []):
        missing = [q.question_id for q in questions if q.question_id not in answers[model]]
        if missing:
            raise SystemExit(f"model {model} has no answers for question ids {missing[:20]}")
    unreferenced = [q.question_id for q in questions if q.category in NEED_REFERENCE and not references.get(q.question_id)]
    if unreferenced:
        raise SystemExit(f"questions {unreferenced[:20]} need a reference answer; pass --reference_path")
    for model in models:
        for question in questions:
            for turn in range(1, len(question.turns) + 1):
                if (question.question_id, model, turn) not in done:
                    jobs.append(judge_one(model, question, turn))
    async with client:
        await gather_with_progress(jobs, f"MT-bench {args.mode}")


if __name__ == "__main__":
    main()
