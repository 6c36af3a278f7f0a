"""Parse-failure rate of judge verdicts: free text vs `--structured` (response_format json_schema).

Two judges, each asked for the 80 bundled Vicuna questions in both orders (160 calls) by
`python -m evaluation.openai_eval` with `--parse_retries 0`, so every unreadable reply counts:

1. the scripted OpenAI-protocol judge (evaluation/scripted_judge.py). Its free-text replies cycle
   through eight wordings judges really use (scores last, scores first, "Assistant 1: 8", "8/10",
   a sentence naming both scores, and three with no readable pair); asked with response_format it
   answers the schema's JSON. This measures the parser on that pool, not a real judge.
2. the ochat server with the tiny model built on the spot (random weights, so free text is
   noise). With `--structured` its grammar-constrained decoding must produce the schema's JSON;
   a server without response_format support answers 400 and the run falls back to free text,
   which the table then says.
3. the same tiny model through the serving engine alone (`GenerationEngine`, no HTTP), asked the
   structured judge prompts of the first `--engine_questions` questions (both orders) with the schema
   as `response_format`, greedy: the grammar-constrained decoding the server uses, measured even
   while its HTTP layer refuses response_format. The explanation is bounded (`maxLength`), as the
   demo asks, so a model that rambles still reaches its scores within `--max_tokens`.

    python benchmarks/judge_structured.py              # both judges
    python benchmarks/judge_structured.py --skip_ochat # the scripted judge only
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from judge_throughput import REPO_ROOT, start_judge_server, write_answers

from evaluation.benchmark_data import load_questions, read_jsonl
from ochat.utils.cli import ArgumentParser
from ochat.utils.server_process import ServerProcess

FREE_TEXT_POOL = [
    "Both answers are relevant; the first is more detailed.\n8 7",
    "The first answer covers more ground.\nAssistant 1: 8\nAssistant 2: 7",
    "8 7\nThe first answer is more complete, the second misses a step.",
    "The first answer is clearer.\n[8, 7]",
    "Assistant 1 deserves an 8 for its detail, while Assistant 2 earns a 7.",
    "Both answers are good, but the first is better overall.",
    "Assistant 1: 8/10 - thorough. Assistant 2: 7/10 - shorter, misses step 3.",
    "I would rate the first answer highly and the second slightly lower.",
]
STRUCTURED_REPLY = {"explanation": "The first answer is more detailed.", "score_1": 8, "score_2": 7}


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_path", default=str(REPO_ROOT / "evaluation" / "vicuna"))
    parser.add_argument("--work_dir", default=str(REPO_ROOT / "benchmarks" / "_work" / "judge_structured"))
    parser.add_argument(
        "--model_path", default=None, help="ochat checkpoint to judge with (default: build the tiny one)"
    )
    parser.add_argument("--model_type", default="openchat_tiny")
    parser.add_argument("--max_tokens", type=int, default=192, help="judge reply length for the tiny model")
    parser.add_argument("--skip_ochat", action="store_true", help="measure the scripted judge only")
    parser.add_argument(
        "--max_explanation_chars",
        type=int,
        default=120,
        help="structured runs on the tiny model: maxLength of the explanation (default %(default)s)",
    )
    parser.add_argument(
        "--engine_questions",
        type=int,
        default=20,
        help="questions (x2 orders) for the engine-only run, slow on a CPU (default %(default)s)",
    )
    args = parser.parse_args()

    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    results, baseline_file = write_answers(work, args.data_path)
    rows = []

    questions = load_questions(args.data_path)
    script = [
        {
            "match": question.text,
            "steps": [{"reply": FREE_TEXT_POOL[number % len(FREE_TEXT_POOL)], "json": STRUCTURED_REPLY}],
        }
        for number, question in enumerate(questions)
    ]
    (work / "script.json").write_text(json.dumps(script))
    server = start_judge_server(work, "--script", str(work / "script.json"))
    try:
        for structured in (False, True):
            rows.append(
                ("scripted judge", *judge_once(server.api_base, "judge", args, results, baseline_file, structured))
            )
    finally:
        server.stop()

    if not args.skip_ochat:
        model_path = args.model_path or build_tiny_model(work)
        with ServerProcess.start(args.model_type, model_path, log_path=work / "ochat_server.log") as ochat:
            for structured in (False, True):
                rows.append(
                    (
                        f"ochat server, {args.model_type}",
                        *judge_once(
                            ochat.api_base,
                            args.model_type,
                            args,
                            results,
                            baseline_file,
                            structured,
                            max_tokens=args.max_tokens,
                        ),
                    )
                )

        rows.append(
            (
                "ochat engine (no HTTP), " + args.model_type,
                *engine_structured(
                    args.model_type,
                    model_path,
                    args.data_path,
                    results,
                    baseline_file,
                    args.max_tokens,
                    args.max_explanation_chars,
                    args.engine_questions,
                ),
            )
        )

    print(f"{'judge':<30} {'asked as':<48} {'calls':>6} {'unreadable':>11} {'rate':>7}")
    for judge, asked_as, calls, unreadable in rows:
        print(f"{judge:<30} {asked_as:<48} {calls:>6} {unreadable:>11} {100 * unreadable / calls:>6.1f}%")


def judge_once(
    api_base: str, model: str, args, results: Path, baseline_file: Path, structured: bool, max_tokens: int = 256
) -> tuple[str, int, int]:
    """One openai_eval run without parse retries; (how it was asked, calls, unreadable calls) from its call log."""
    command = [
        sys.executable,
        "-m",
        "evaluation.openai_eval",
        "--data_path",
        args.data_path,
        "--baseline_path",
        str(baseline_file),
        "--input_path",
        str(results),
        "--api-base",
        api_base,
        "--model",
        model,
        "--parse_retries",
        "0",
        "--max_tokens",
        str(max_tokens),
        "--temperature",
        "0",
        "--overwrite",
        "--parallel",
        "16",
        *(["--structured", "--max_explanation_chars", str(args.max_explanation_chars)] if structured else []),
    ]
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    calls = read_jsonl(results / "reviews" / "vicuna_model_vs_baseline.calls.jsonl")
    fell_back = "falling back to free-text" in run.stderr
    asked_as = (
        "--structured (refused: fell back to free text)"
        if fell_back
        else "--structured (response_format)"
        if structured
        else "free text"
    )
    transport = [call for call in calls if call.get("error")]
    if transport:
        raise SystemExit(f"{len(transport)} calls never got a reply: {transport[0]['error']}")
    return asked_as, len(calls), sum(call["failed"] for call in calls)


def engine_structured(
    model_type: str,
    model_path: str,
    data_path: str,
    results: Path,
    baseline_file: Path,
    max_tokens: int,
    max_explanation_chars: int,
    questions: int,
) -> tuple[str, int, int]:
    """The openai_eval judge prompts (both orders), structured, decoded greedily by the serving engine alone."""
    from evaluation.benchmark_data import load_answers, load_reviewers, reviewer_for
    from evaluation.judge import with_instruction
    from evaluation.verdicts import VERDICT_KINDS
    from ochat.config import get_model_config, load_tokenizer, render_conversation
    from ochat.models import load_model
    from ochat.serving.engine import GenerationEngine
    from ochat.serving.engine_types import SamplingParams
    from ochat.serving.protocol import ROLE_TO_TEMPLATE

    config = get_model_config(model_type)
    tokenizer = load_tokenizer(config, model_path)
    model = load_model(config, model_path, device="cpu").eval()
    engine = GenerationEngine(
        model,
        tokenizer.stop_token_ids,
        config.max_context,
        max_batch_size=2 * questions,
        tokenizer=tokenizer.hf_tokenizer,
    )
    kind = VERDICT_KINDS["score_pair"]
    reviewers = load_reviewers(data_path)
    model_answers = load_answers(results / "vicuna_model.jsonl")
    baseline_answers = load_answers(baseline_file)
    outputs: dict[str, list[int]] = {}
    for question in load_questions(data_path)[:questions]:
        pair = (model_answers[question.question_id]["turns"][0], baseline_answers[question.question_id]["turns"][0])
        for order, (first, second) in enumerate((pair, pair[::-1])):
            messages = with_instruction(
                reviewer_for(reviewers, question.category).render(question.text, first, second), kind.instruction
            )
            conversation = [{"from": ROLE_TO_TEMPLATE[m["role"]], "value": m["content"]} for m in messages]
            prompt_ids = render_conversation(config, tokenizer, conversation, add_generation_prompt=True).token_ids
            seq_id = f"{question.question_id}-{order}"
            outputs[seq_id] = []
            engine.add(
                seq_id,
                prompt_ids,
                SamplingParams(
                    max_tokens=max_tokens,
                    temperature=0.0,
                    seed=0,
                    response_format=kind.response_format(max_explanation_chars),
                ),
            )
    finished: dict[str, str] = {}
    while len(finished) < len(outputs):
        for event in engine.step():
            if event.token_id is not None:
                outputs[event.seq_id].append(event.token_id)
            if event.finish_reason is not None:
                finished[event.seq_id] = event.finish_reason
    replies = {
        seq_id: tokenizer.hf_tokenizer.decode([t for t in ids if t not in tokenizer.stop_token_ids])
        for seq_id, ids in outputs.items()
    }
    unreadable = [seq_id for seq_id, reply in replies.items() if kind.parse(reply, structured=True) is None]
    cut = sum(reason == "length" for reason in finished.values())
    return (f"--structured, maxLength {max_explanation_chars}, greedy ({cut} cut)", len(replies), len(unreadable))


def build_tiny_model(work: Path) -> str:
    base, model = work / "tiny_base", work / "tiny_eot"
    for module, module_args in (
        ("ochat.models.build_tiny", ["--model_type", "openchat_tiny", "--out", str(base)]),
        ("ochat.models.add_eot_token", ["--model_type", "openchat_tiny", "--in", str(base), "--out", str(model)]),
    ):
        subprocess.run([sys.executable, "-m", module, *module_args], cwd=REPO_ROOT, check=True, capture_output=True)
    return str(model)


if __name__ == "__main__":
    main()
