"""Baseline answers (e.g. gpt-3.5-turbo) from any OpenAI-compatible endpoint.

One file per model: `OUTPUT/{bench}_{model}.jsonl`, in the same format as
`evaluation.get_model_answer` writes (see there; answers are kept as they arrive and
`--continue` resumes), e.g.

    {"question_id": 1, "model": "gpt-3.5-turbo", "text": "...", "answer_id": "1-3f2a...", "metadata": {...}}
"""

from __future__ import annotations

import argparse
import asyncio

from evaluation.benchmark_data import answer_path, benchmark_name, load_questions
from evaluation.get_model_answer import DEFAULT_DATA_PATH, add_answer_file_args, answer_to_file, needs_answers
from ochat.utils.cli import ArgumentParser
from ochat.utils.openai_client import ChatClient, add_client_args


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.get_openai_answer",
        description="Answer every question with one or more models of an OpenAI-compatible endpoint (baselines).",
    )
    parser.add_argument("--data_path", default=DEFAULT_DATA_PATH, help="question set folder (default: %(default)s)")
    parser.add_argument("--output_path", default="eval_baselines", help="where answer files go (default %(default)s)")
    parser.add_argument(
        "--model_types",
        nargs="+",
        default=["gpt-3.5-turbo"],
        help="model ids to ask, one answer file each (default %(default)s)",
    )
    parser.add_argument("--bench", default=None, help="benchmark name in file names (default: data folder name)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default %(default)s)")
    parser.add_argument("--max_tokens", type=int, default=1024, help="answer length limit (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="base seed; question i uses SEED+i (default %(default)s)")
    add_answer_file_args(parser)
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
            if needs_answers(target, args):
                await answer_to_file(client, model, model, questions, target, args)


if __name__ == "__main__":
    main()
