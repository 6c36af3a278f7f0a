"""Baseline answers (e.g. gpt-3.5-turbo) from any OpenAI-compatible endpoint.

One file per model: `OUTPUT/{bench}_{model}.jsonl`, in the same format as
`evaluation.get_model_answer` writes (see there), e.g.

    {"question_id": 1, "model": "gpt-3.5-turbo", "text": "...", "answer_id": "1-3f2a...", "metadata": {...}}
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from evaluation.api_client import ChatClient, add_client_args
from evaluation.benchmark_data import answer_path, benchmark_name, load_questions, write_jsonl_atomic
from evaluation.get_model_answer import DEFAULT_DATA_PATH, answer_questions
from ochat.utils.cli import ArgumentParser


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.get_openai_answer",
        description="Answer every question with one or more models of an OpenAI-compatible endpoint (baselines).")
    parser.add_argument("--data_path", default=DEFAULT_DATA_PATH, help="question set folder (default: %(default)s)")
    parser.add_argument("--output_path", default="eval_baselines", help="where answer files go (default %(default)s)")
    parser.add_argument("--model_types", nargs="+", default=["gpt-3.5-turbo"],
                        help="model ids to ask, one answer file each (default %(default)s)")
    parser.add_argument("--bench", default=None, help="benchmark name in file names (default: data folder name)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default %(default)s)")
    parser.add_argument("--max_tokens", type=int, default=1024, help="answer length limit (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="base seed; question i uses SEED+i (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="answer again even where an answer file exists")
    add_client_args(parser, default_parallel=16)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    questions = load_questions(args.data_path)
    bench = args.bench or benchmark_name(args.data_path)
    asyncio.run(answer_all(args, questions, bench))


async def answer_all(args, questions, bench: str) -> None:
    client = ChatClient.from_args(args)
    async with client:
        for model in args.model_types:
            target = answer_path(args.output_path, bench, model)
            if target.exists() and not args.overwrite:
                print(f"{target} exists; skipping {model} (use --overwrite to answer again)", file=sys.stderr)
                continue
            records = await answer_questions(client, model, model, questions, args.temperature,
                                             args.max_tokens, args.seed)
            write_jsonl_atomic(target, records)
            print(f"answers: {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
