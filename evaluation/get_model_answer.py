"""Answer a question set with every checkpoint in a folder, batched through the ochat server.

For each checkpoint (a folder holding config.json; `--models_path` may be one checkpoint
or a folder of them) an ochat OpenAI-compatible server is started as a subprocess on a
free loopback port, all questions are sent to it at once (the engine batches them), and
the server is stopped with SIGTERM. With `--api-base` the answers come from a server that
is already running instead. Multi-turn questions are answered turn by turn, each turn
seeing the model's own earlier answers. Requests carry seed SEED + question index.

Output, one file per model: `OUTPUT/{bench}_{model}.jsonl`, one line per question:

    {"question_id": 1, "model": "checkpoint_a", "text": "Plan the day ...", "answer_id": "1-0c1d...",
     "metadata": {"api_model": "openchat", "temperature": 0.7, "max_tokens": 1024, "seed": 42}}

With `--condition C` a conditioned (C-RLFT) model answers under condition C
(sent as the request's `condition` field, to a started server or through
`--api_base`); the answer file is then named `{bench}_{model}_{C}.jsonl`, so the
judge can compare conditions side by side, and the metadata records it.

Sets with multi-turn questions (MT-bench) store "turns": ["first answer", "second answer"]
instead of "text". Existing answer files are kept unless `--overwrite`. Server logs go to
`OUTPUT/logs/server_{model}.log`.

Answers are appended to `OUTPUT/{bench}_{model}.jsonl.partial` as they arrive (same records,
arrival order). When every question is answered the answer file is written whole, in question
order, and the partial file removed. A question that fails for good (retries exhausted) does not
stop the others; the run then exits non-zero and `--continue` asks only the unanswered questions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

from evaluation.benchmark_data import (
    Question,
    answer_path,
    benchmark_name,
    load_questions,
    write_jsonl_atomic,
)
from ochat.utils.append_log import read_append_log
from ochat.utils.cli import ArgumentParser
from ochat.utils.openai_client import ChatClient, ChatRequestError, add_client_args, gather_with_progress
from ochat.utils.server_process import ServerProcess, ServerStartError

DEFAULT_DATA_PATH = str(Path(__file__).parent / "vicuna")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.get_model_answer",
        description="Answer every question with every checkpoint, through the ochat serving engine "
        "(one server per checkpoint) or through a running OpenAI-compatible server (--api-base).",
    )
    parser.add_argument(
        "--model_type",
        default=None,
        help="ochat model type of the checkpoints (e.g. openchat); needed to start the server",
    )
    parser.add_argument(
        "--models_path", default=None, help="a checkpoint folder (with config.json) or a folder of checkpoint folders"
    )
    parser.add_argument("--data_path", default=DEFAULT_DATA_PATH, help="question set folder (default: %(default)s)")
    parser.add_argument("--output_path", default="eval_results", help="where answer files go (default %(default)s)")
    parser.add_argument("--bench", default=None, help="benchmark name in file names (default: data folder name)")
    parser.add_argument(
        "--model", default=None, help="with --api-base: model id to request (default: the first one GET /models lists)"
    )
    parser.add_argument(
        "--model_name", default=None, help="with --api-base: name in the output file (default: the requested model id)"
    )
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default %(default)s)")
    parser.add_argument("--max_tokens", type=int, default=1024, help="answer length limit (default %(default)s)")
    parser.add_argument(
        "--condition",
        default=None,
        help="C-RLFT condition to answer under, e.g. GPT4 or GPT3 (conditioned model types such as "
        "openchat_v3.2 only); default: the server's",
    )
    parser.add_argument("--seed", type=int, default=42, help="base seed; question i uses SEED+i (default %(default)s)")
    add_answer_file_args(parser)
    parser.add_argument("--num_replicas", type=int, default=None, help="engine replicas of each server")
    parser.add_argument(
        "--server_start_timeout",
        type=float,
        default=900.0,
        help="seconds to wait for a started server's /health (default %(default)s)",
    )
    add_client_args(parser, default_parallel=64)
    args = parser.parse_args(argv)
    if args.api_base is None and (args.model_type is None or args.models_path is None):
        parser.error("give --model_type and --models_path to serve checkpoints, or --api-base for a running server")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    questions = load_questions(args.data_path)
    bench = args.bench or benchmark_name(args.data_path)
    output_path = Path(args.output_path)

    if args.api_base is not None:
        asyncio.run(answer_through_endpoint(args, args.api_base, questions, bench, args.model, args.model_name))
        return
    for checkpoint in find_checkpoints(args.models_path):
        if not needs_answers(answer_path(output_path, bench, checkpoint.name), args):
            continue
        log_path = output_path / "logs" / f"server_{checkpoint.name}.log"
        with serving_checkpoint(
            args.model_type, checkpoint, log_path, args.num_replicas, args.server_start_timeout
        ) as api_base:
            asyncio.run(answer_through_endpoint(args, api_base, questions, bench, None, checkpoint.name))


def find_checkpoints(models_path) -> list[Path]:
    """The folder itself when it is a checkpoint, else its sub-folders that hold a config.json."""
    models_path = Path(models_path)
    if not models_path.is_dir():
        raise SystemExit(f"--models_path {models_path} is not a folder")
    if (models_path / "config.json").is_file():
        return [models_path]
    checkpoints = sorted(path for path in models_path.iterdir() if (path / "config.json").is_file())
    if not checkpoints:
        raise SystemExit(f"no checkpoint (a folder with config.json) in {models_path}")
    return checkpoints


def add_answer_file_args(parser) -> None:
    parser.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="resume an interrupted run: keep the answers already written, ask only the missing ones",
    )
    parser.add_argument("--overwrite", action="store_true", help="answer again even where an answer file exists")


def needs_answers(target: Path, args) -> bool:
    """False (with a note) when a finished answer file is kept; refuses a partial file without --continue."""
    partial = partial_path(target)
    if args.resume and args.overwrite:
        raise SystemExit("--continue and --overwrite exclude each other")
    if args.overwrite:
        target.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        return True
    if target.exists():
        print(f"{target} exists; skipping (use --overwrite to answer again)", file=sys.stderr)
        return False
    if partial.exists() and partial.stat().st_size and not args.resume:
        raise SystemExit(
            f"{partial} holds answers from an interrupted run; pass --continue to resume or --overwrite to answer again"
        )
    return True


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


async def answer_through_endpoint(
    args, api_base: str, questions: list[Question], bench: str, model: Optional[str], model_name: Optional[str]
) -> None:
    client = ChatClient.from_args(args, api_base=api_base)
    async with client:
        if model is None:
            served = await client.list_models()
            if not served:
                raise SystemExit(f"{api_base}/models lists no model; pass --model")
            model = served[0]
        model_name = model_name or model
        if args.condition is not None and args.model_name is None:
            model_name = f"{model_name}_{args.condition.replace(' ', '_')}"
        target = answer_path(args.output_path, bench, model_name)
        if needs_answers(target, args):
            await answer_to_file(client, model, model_name, questions, target, args)


async def answer_to_file(
    client: ChatClient, model: str, model_name: str, questions: list[Question], target: Path, args
) -> None:
    """Answers the questions the partial file lacks, appending each as it arrives; then writes the answer file."""
    partial = partial_path(target)
    earlier = {record["question_id"]: record for record in read_append_log(partial)} if partial.exists() else {}
    if earlier:
        print(f"{partial}: {len(earlier)} answers kept from the interrupted run", file=sys.stderr)
    pending = [(index, question) for index, question in enumerate(questions) if question.question_id not in earlier]
    partial.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    with open(partial, "a", encoding="utf-8") as sink:

        async def answer_and_append(index: int, question: Question) -> None:
            try:
                record = await answer_question(
                    client,
                    model,
                    model_name,
                    question,
                    index,
                    args.temperature,
                    args.max_tokens,
                    args.seed,
                    any(len(q.turns) > 1 for q in questions),
                    getattr(args, "condition", None),
                )  # baselines take no condition
            except ChatRequestError as error:
                failures.append(question.question_id)
                print(f"question {question.question_id} failed: {str(error)[:300]}", file=sys.stderr)
                return
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            earlier[question.question_id] = record

        await gather_with_progress([answer_and_append(i, q) for i, q in pending], f"answering ({model_name})")
        os.fsync(sink.fileno())
    if failures:
        raise SystemExit(
            f"{len(failures)} of {len(questions)} questions got no answer (ids {failures[:20]}); "
            f"the others are kept in {partial}; run again with --continue"
        )
    write_jsonl_atomic(target, [earlier[question.question_id] for question in questions])
    partial.unlink()
    print(f"answers: {target}", file=sys.stderr)


async def answer_question(
    client: ChatClient,
    model: str,
    model_name: str,
    question: Question,
    index: int,
    temperature: float,
    max_tokens: int,
    seed: int,
    multi_turn: bool,
    condition: Optional[str] = None,
) -> dict:
    """One question's turns in sequence, each seeing the model's own earlier answers."""
    messages, replies = [], []
    for turn in question.turns:
        messages.append({"role": "user", "content": turn})
        reply = await client.chat(
            model, messages, temperature=temperature, max_tokens=max_tokens, seed=seed + index, condition=condition
        )
        messages.append({"role": "assistant", "content": reply})
        replies.append(reply)
    digest = hashlib.sha1("\x00".join(replies).encode("utf-8")).hexdigest()[:12]
    record = {"question_id": question.question_id, "model": model_name}
    record.update({"turns": replies} if multi_turn else {"text": replies[0]})
    record.update(
        {
            "answer_id": f"{question.question_id}-{digest}",
            "metadata": {
                "api_model": model,
                "temperature": temperature,
                "max_tokens": max_tokens,
                "seed": seed + index,
            },
        }
    )
    if condition is not None:
        record["metadata"]["condition"] = condition
    return record


@contextlib.contextmanager
def serving_checkpoint(
    model_type: str, checkpoint: Path, log_path: Path, num_replicas: Optional[int], start_timeout: float
):
    """Runs `ochat.serving.openai_api_server` for one checkpoint; yields its /v1 base URL; SIGTERM at the end."""
    extra = ["--num_replicas", str(num_replicas)] if num_replicas is not None else []
    print(f"starting server for {checkpoint} (log: {log_path})", file=sys.stderr)
    try:
        server = ServerProcess.start(model_type, str(checkpoint), *extra, log_path=log_path, timeout=start_timeout)
    except ServerStartError as error:
        raise SystemExit(str(error)) from None
    with server:
        yield server.api_base


if __name__ == "__main__":
    main()
