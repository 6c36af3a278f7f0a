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

Win rate (`python -m evaluation.summarize --mode alpaca_eval`) = mean(preference - 1) in %,
draws counting half, with the standard error of that mean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from statistics import mean
from typing import Optional

from evaluation.api_client import ChatClient, add_client_args, gather_with_progress
from evaluation.benchmark_data import write_text_atomic
from evaluation.judge import ask_judge
from ochat.utils.cli import ArgumentParser

SYSTEM_PROMPT = "You are a fair judge who compares two responses to the same instruction."
PROMPT_TEMPLATE = (
    "Which of the two outputs below follows the instruction better? Weigh helpfulness, accuracy and clarity; "
    "do not let the order or the length of the outputs sway you.\n\n"
    "## Instruction\n{instruction}\n\n## Output (a)\n{output_a}\n\n## Output (b)\n{output_b}\n\n"
    "Explain your reasoning briefly, then end with exactly one verdict on its own line: [[a]] if output (a) is "
    "better, [[b]] if output (b) is better, or [[tie]] if they are equally good.")
_VERDICT = re.compile(r"\[\[\s*(a|b|tie)\s*\]\]", re.IGNORECASE)
ORDERS = ("reference_first", "model_first")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m evaluation.alpaca_eval",
                                     description="AlpacaEval-style judging: how often the judge prefers the model's "
                                                 "output to the reference output, both orders.")
    parser.add_argument("--model_outputs", required=True, help="JSON list / JSONL of {instruction, output, generator}")
    parser.add_argument("--reference_outputs", required=True, help="the reference outputs, same format")
    parser.add_argument("--output_path", required=True, help="folder for the annotations file")
    parser.add_argument("--judge_model", "--model", dest="judge_model", default="gpt-4",
                        help="judge model id at the endpoint (default %(default)s)")
    parser.add_argument("--max_tokens", type=int, default=512, help="judge reply length (default %(default)s)")
    parser.add_argument("--parse_retries", type=int, default=2,
                        help="times an unreadable verdict is asked again (default %(default)s)")
    add_client_args(parser, default_parallel=16)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    model_outputs = load_outputs(args.model_outputs)
    reference_outputs = {record["instruction"]: record for record in load_outputs(args.reference_outputs)}
    missing = [record["instruction"][:60] for record in model_outputs if record["instruction"] not in reference_outputs]
    if missing:
        raise SystemExit(f"{len(missing)} instructions have no reference output, e.g. {missing[:3]}")
    annotations = asyncio.run(annotate(args, model_outputs, reference_outputs))
    model = model_outputs[0].get("generator", Path(args.model_outputs).stem)
    target = Path(args.output_path) / f"alpaca_eval_{model}_annotations.json"
    write_text_atomic(target, json.dumps(annotations, indent=1, ensure_ascii=False) + "\n")
    print(f"annotations: {target}\nnext: python -m evaluation.summarize --input_path {args.output_path} "
          "--mode alpaca_eval", file=sys.stderr)


def load_outputs(path) -> list[dict]:
    text = Path(path).read_text(encoding="utf-8")
    records = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
    for record in records:
        if "instruction" not in record or "output" not in record:
            raise SystemExit(f"{path}: every record needs 'instruction' and 'output': {str(record)[:200]}")
    return records


def parse_verdict(reply: str) -> Optional[str]:
    matches = _VERDICT.findall(reply)
    return matches[-1].lower() if matches else None


def order_preference(order: str, verdict: Optional[str]) -> Optional[float]:
    """AlpacaEval's convention: 1 reference better, 2 model better, 1.5 draw."""
    if verdict is None:
        return None
    if verdict == "tie":
        return 1.5
    reference_won = (verdict == "a") == (order == "reference_first")
    return 1.0 if reference_won else 2.0


async def annotate(args, model_outputs: list[dict], reference_outputs: dict) -> list[dict]:
    client = ChatClient.from_args(args)

    async def one(record: dict) -> dict:
        reference = reference_outputs[record["instruction"]]
        texts, preferences = {}, {}
        for order in ORDERS:
            first, second = (reference, record) if order == "reference_first" else (record, reference)
            messages = [{"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": PROMPT_TEMPLATE.format(
                            instruction=record["instruction"], output_a=first["output"], output_b=second["output"])}]
            reply, verdict, error, _ = await ask_judge(client, args.judge_model, messages, parse_verdict,
                                                       args.parse_retries, temperature=0, max_tokens=args.max_tokens)
            texts[order] = reply if error is None else f"$ERROR$ {error}"
            preferences[order] = order_preference(order, verdict)
        valid = [p for p in preferences.values() if p is not None]
        return {"instruction": record["instruction"], "output_1": reference["output"],
                "generator_1": reference.get("generator", "reference"), "output_2": record["output"],
                "generator_2": record.get("generator", "model"), "annotator": args.judge_model,
                "raw_completion": texts, "order_preference": preferences,
                "preference": mean(valid) if valid else None}

    async with client:
        return await gather_with_progress([one(record) for record in model_outputs], "AlpacaEval judging")


if __name__ == "__main__":
    main()
