"""AlpacaEval-style pairwise preference of a model's outputs over reference outputs.

Inputs are AlpacaEval output files: a JSON list (or JSON lines) of

    {"instruction": "Give three tips for staying healthy.", "output": "1. ...", "generator": "my_model"}

matched by instruction. The judge compares each pair twice, once with the reference
first and once with the model first, and ends with [[a]], [[b]] or [[tie]]. Each order
gives a preference in AlpacaEval's convention (1 = reference better, 2 = model better,
1.5 = draw); an instruction's preference is the mean over the orders the judge answered
readably (null when neither). Written atomically to `OUTPUT/alpaca_eval_{model}_annotations.json`:

    [{"instruction": "...", "output_1": "reference", "generator_1": "gpt4_turbo",
      "output_2": "model", "generator_2": "my_model", "annotator": "gpt-4",
      "raw_completion": {"reference_first": "...[[b]]", "model_first": "...[[a]]"},
      "order_preference": {"reference_first": 2.0, "model_first": 2.0}, "preference": 2.0}]

Judge calls go through the judge core (`evaluation.judge`), with its call log
`OUTPUT/alpaca_eval_{model}_annotations.calls.jsonl` behind `--continue` and `--structured`;
the annotations file is rebuilt from the log at the end of each run.

Win rate (`python -m evaluation.summarize --mode alpaca_eval`) = mean(preference - 1) in %,
draws counting half, with a bootstrap confidence interval over instructions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from statistics import mean
from typing import Optional

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
from ochat.utils.files import write_json_atomic
from ochat.utils.openai_client import ChatClient

SYSTEM_PROMPT = "You are a fair judge who compares two responses to the same instruction."
PROMPT_TEMPLATE = (
    "Which of the two outputs below follows the instruction better? Weigh helpfulness, accuracy and clarity; "
    "do not let the order or the length of the outputs sway you.\n\n"
    "## Instruction\n{instruction}\n\n## Output (a)\n{output_a}\n\n## Output (b)\n{output_b}\n\n"
    "Explain your reasoning briefly, then end with exactly one verdict on its own line: [[a]] if output (a) is "
    "better, [[b]] if output (b) is better, or [[tie]] if they are equally good."
)
ORDERS = ("reference_first", "model_first")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.alpaca_eval",
        description="AlpacaEval-style judging: how often the judge prefers the model's "
        "output to the reference output, both orders.",
    )
    parser.add_argument("--model_outputs", required=True, help="JSON list / JSONL of {instruction, output, generator}")
    parser.add_argument("--reference_outputs", required=True, help="the reference outputs, same format")
    parser.add_argument("--output_path", required=True, help="folder for the annotations file")
    add_judge_model_argument(parser)
    parser.add_argument("--max_tokens", type=int, default=512, help="judge reply length (default %(default)s)")
    add_judge_arguments(parser)
    args = parser.parse_args(argv)
    check_judge_arguments(parser, args)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    model_outputs = load_outputs(args.model_outputs)
    reference_outputs = {record["instruction"]: record for record in load_outputs(args.reference_outputs)}
    missing = [record["instruction"][:60] for record in model_outputs if record["instruction"] not in reference_outputs]
    if missing:
        raise SystemExit(f"{len(missing)} instructions have no reference output, e.g. {missing[:3]}")
    model = model_outputs[0].get("generator", Path(args.model_outputs).stem)
    target = Path(args.output_path) / f"alpaca_eval_{model}_annotations.json"
    requests = [
        request
        for record in model_outputs
        for request in judge_requests(
            record, reference_outputs[record["instruction"]], args.judge_model, args.max_tokens
        )
    ]
    log = CallLog(target.with_suffix(".calls.jsonl"), resume=args.resume, overwrite=args.overwrite)
    try:
        asyncio.run(judge_all(args, requests, log))
    finally:
        log.close()
    annotations = [
        annotation(record, reference_outputs[record["instruction"]], log, args.judge_model) for record in model_outputs
    ]
    write_json_atomic(target, annotations)
    print(f"annotations: {target}", file=sys.stderr)
    report_outcome([log.get(request.key) for request in requests if log.get(request.key) is not None])
    print(f"next: python -m evaluation.summarize --input_path {args.output_path} --mode alpaca_eval", file=sys.stderr)


def load_outputs(path) -> list[dict]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        records = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as error:
        raise SystemExit(f"{path}: not JSON or JSON lines ({error})") from None
    if not records:
        raise SystemExit(f"{path}: no outputs")
    for record in records:
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("instruction"), str)
            or not isinstance(record.get("output"), str)
        ):
            raise SystemExit(f"{path}: every record needs text 'instruction' and 'output': {str(record)[:200]}")
    instructions = [record["instruction"] for record in records]
    if len(set(instructions)) != len(instructions):
        duplicate = next(text for text in instructions if instructions.count(text) > 1)
        raise SystemExit(f"{path}: the instruction {duplicate[:60]!r} appears more than once; each appears once")
    return records


def judge_requests(record: dict, reference: dict, judge_model: str, max_tokens: int) -> list[JudgeRequest]:
    requests = []
    for order in ORDERS:
        first, second = (reference, record) if order == "reference_first" else (record, reference)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": PROMPT_TEMPLATE.format(
                    instruction=record["instruction"], output_a=first["output"], output_b=second["output"]
                ),
            },
        ]
        requests.append(
            JudgeRequest(
                (record["instruction"], order),
                messages,
                "preference_ab",
                judge_model,
                temperature=0,
                max_tokens=max_tokens,
            )
        )
    return requests


def order_preference(order: str, verdict: Optional[str]) -> Optional[float]:
    """AlpacaEval's convention: 1 reference better, 2 model better, 1.5 draw."""
    if verdict is None:
        return None
    if verdict == "tie":
        return 1.5
    reference_won = (verdict == "a") == (order == "reference_first")
    return 1.0 if reference_won else 2.0


def annotation(record: dict, reference: dict, log: CallLog, judge_model: str) -> dict:
    texts, preferences = {}, {}
    for order in ORDERS:
        call = log.get((record["instruction"], order))
        if call is None:
            texts[order], preferences[order] = None, None
            continue
        texts[order] = call["text"] if call.get("error") is None else f"$ERROR$ {call['error']}"
        preferences[order] = order_preference(order, call["verdict"])
    valid = [p for p in preferences.values() if p is not None]
    return {
        "instruction": record["instruction"],
        "output_1": reference["output"],
        "generator_1": reference.get("generator", "reference"),
        "output_2": record["output"],
        "generator_2": record.get("generator", "model"),
        "annotator": judge_model,
        "raw_completion": texts,
        "order_preference": preferences,
        "preference": mean(valid) if valid else None,
    }


async def judge_all(args, requests: list[JudgeRequest], log: CallLog) -> None:
    async with ChatClient.from_args(args) as client:
        judge = judge_from_args(client, args)
        await run_judgements(requests, log, judge, "AlpacaEval judging")


if __name__ == "__main__":
    main()
