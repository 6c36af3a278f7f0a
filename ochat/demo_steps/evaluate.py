"""Step 5: answers from the trained and the base model, the LLM judge on them (the demo's own server unless
--judge_api_base names one), and the summary table, in `eval/`."""

from __future__ import annotations

import json
import os
import shutil

from ochat.demo_steps.run import REPO_ROOT, Demo, StepFailed
from ochat.demo_steps.serve import start_reference_server
from ochat.utils.files import write_text_atomic


def step_evaluate(demo: Demo) -> str:
    args = demo.args
    eval_dir, baseline_dir = demo.path("eval", "answers"), demo.path("eval", "baselines")
    data_path = question_subset(demo)
    bench = "vicuna"
    common = [
        "--data_path",
        data_path,
        "--bench",
        bench,
        "--max_tokens",
        str(args.answer_max_tokens),
        "--seed",
        "0",
    ]
    demo.run(
        demo.python(
            "evaluation.get_model_answer",
            "--api-base",
            demo.server_url + "/v1",
            "--model",
            demo.model_type,
            "--model_name",
            "trained",
            "--output_path",
            eval_dir,
            *common,
        ),
        "evaluate",
    )
    if args.base == "smollm2":  # the baseline is SmolLM2 as shipped, which also judges
        start_reference_server(demo)
        baseline_source = ["--api-base", demo.reference.api_base, "--model", "hf_chat", "--model_name", "smollm2"]
    else:
        baseline_source = ["--model_type", demo.model_type, "--models_path", demo.model_dir]
    demo.run(
        demo.python("evaluation.get_model_answer", *baseline_source, "--output_path", baseline_dir, *common),
        "evaluate",
    )
    baseline_files = [name for name in os.listdir(baseline_dir) if name.endswith(".jsonl")]
    if len(baseline_files) != 1:
        raise StepFailed(f"expected one baseline answer file in {baseline_dir}, found {baseline_files}")
    local_judge = not args.judge_api_base
    if local_judge and demo.reference is not None:
        judge_base, local_model = demo.reference.api_base, "hf_chat"
    else:
        judge_base, local_model = args.judge_api_base or demo.server_url + "/v1", demo.model_type
    judge = ["--api-base", judge_base]
    if args.judge_model or local_judge:
        judge += ["--model", args.judge_model or local_model]
    if args.judge_api_key:
        judge += ["--api-key", args.judge_api_key]
    if local_judge:  # a random tiny model: bounded JSON verdicts through response_format, asked once
        judge += [
            "--structured",
            "--max_explanation_chars",
            "120",
            "--parse_retries",
            "0",
            "--max_tokens",
            str(max(args.answer_max_tokens, 192)),
        ]
    else:
        judge += ["--max_tokens", str(args.answer_max_tokens)]
    env = {} if args.judge_api_key or os.environ.get("OPENAI_API_KEY") else {"OPENAI_API_KEY": "none"}
    reviews_dir = os.path.join(eval_dir, "reviews")
    try:
        demo.run(
            demo.python(
                "evaluation.openai_eval",
                "--data_path",
                data_path,
                "--bench",
                bench,
                "--baseline_path",
                os.path.join(baseline_dir, baseline_files[0]),
                "--input_path",
                eval_dir,
                "--continue",
                *judge,
            ),
            "evaluate",
            env=env,
        )
    except StepFailed:
        # The judge answered but no reply held a verdict (a tiny judge may do that): say so and go on.
        call_logs = (
            [name for name in os.listdir(reviews_dir) if name.endswith(".calls.jsonl")]
            if os.path.isdir(reviews_dir)
            else []
        )
        if not (local_judge and call_logs):
            raise
    try:
        demo.run(demo.python("evaluation.summarize", "--input_path", eval_dir), "evaluate")
    except StepFailed:
        if not (local_judge and os.path.exists(os.path.join(eval_dir, "summary.json"))):
            raise
    with open(os.path.join(eval_dir, "summary.json"), encoding="utf-8") as handle:
        judged = sum(model.get("judged", 0) for model in json.load(handle)["models"])
    if local_judge and demo.reference is not None:
        print(
            "   note: the judge is SmolLM2-135M as shipped, itself the baseline: a real model, but a weak and "
            "partial judge. See benchmarks/RESULTS.md for the full run with bootstrap intervals."
        )
    elif local_judge:
        print(
            "   note: the judge is the demo's own tiny model, so these numbers check the evaluation plumbing "
            "(answers -> structured judge calls -> summary), not the quality of any model. Pass "
            "--judge_api_base (and --judge_model, --judge_api_key) for a real judge, e.g. GPT-4."
        )
    if judged == 0:
        print("   note: no review could be read as scores; the summary counts every call as failed.")
    plumbing_only = local_judge and demo.reference is None
    demo.stop_server()
    return f"answers, reviews and summary.json in {eval_dir} (baseline: the base model, {baseline_dir})" + (
        "; a plumbing check, not a quality figure" if plumbing_only else ""
    )


def question_subset(demo: Demo) -> str:
    """The bundled question set, cut to --questions when asked (same files, fewer lines)."""
    source = os.path.join(REPO_ROOT, "evaluation", "vicuna")
    if not demo.args.questions:
        return source
    target = demo.path("eval", "vicuna")
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(source):
        shutil.copy(os.path.join(source, name), target)
    with open(os.path.join(source, "question.jsonl"), encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    by_category: dict[str, list[str]] = {}
    for line in lines:
        by_category.setdefault(json.loads(line)["category"], []).append(line)
    chosen = []
    while len(chosen) < min(demo.args.questions, len(lines)):  # round-robin over categories
        for category_lines in by_category.values():
            if category_lines and len(chosen) < demo.args.questions:
                chosen.append(category_lines.pop(0))
    write_text_atomic(os.path.join(target, "question.jsonl"), "".join(chosen))
    return target
