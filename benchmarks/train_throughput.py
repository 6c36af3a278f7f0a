"""Training throughput of the three batching modes, measured through the real DeepSpeed launcher.

    python benchmarks/train_throughput.py                 # tiny model, bundled corpus, 2 CPU ranks
    python benchmarks/train_throughput.py --num_gpus 1 --llama_1b --train_batch_size 64 \\
        --micro_batch_size 8 --peak_tflops 989          # on a GPU: random ~1B LLaMA, with MFU

Each mode (length grouping, no grouping, packing) runs `--steps` optimizer steps
of `deepspeed --module ochat.training_deepspeed.train`; the table reads the
per-step records of its metrics.jsonl, leaving out the first (warm-up) step.
All modes train on the same samples in each step, so `--repeats` interleaved
runs are compared step by step and each step keeps its fastest time:

    supervised tok/s   supervised target tokens per second of step time, all ranks together
    tok/s              all real tokens per second
    padding            share of computed positions that are padding
    MFU                model FLOPs (6 x parameters x tokens + causal attention) / time / peak,
                       only with --peak_tflops

Without --model_path / --data_path the tiny openchat model and the bundled
corpus are built under benchmarks/_work/train_throughput (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from ochat.models.tiny_chat_model import prepare_tiny_chat_model
from ochat.training_deepspeed.launch import deepspeed_command
from ochat.utils.cli import ArgumentParser

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK_DIR = os.path.join(REPO_ROOT, "benchmarks", "_work", "train_throughput")
MODES = {"length grouping": ["--length_grouping"], "no grouping": [], "packing": ["--packing"]}


def run_module(module: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)


def build_tiny_inputs(model_type: str) -> tuple[str, str]:
    """The tiny model with EOT and the bundled corpus tokenized for it (cached in the work folder)."""
    _, model = prepare_tiny_chat_model(model_type, os.path.join(WORK_DIR, "tiny"))
    data = os.path.join(WORK_DIR, "data")
    if not os.path.exists(os.path.join(data, f"{model_type}.train.json")):
        env = {
            **os.environ,
            "PYTHON": sys.executable,
            "MODEL_TYPES": model_type,
            "MODEL_PATHS": model,
            "GENERATE_ARGS": "--eval_ratio 0.1",
        }
        subprocess.run(
            [
                "bash",
                os.path.join(REPO_ROOT, "run_data_pipeline.sh"),
                os.path.join(REPO_ROOT, "data_pipeline", "examples"),
                data,
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return model, data


def build_llama_1b(tiny_model_dir: str) -> str:
    """A randomly initialised ~1B-parameter LLaMA body behind the tiny tokenizer (for GPU measurements)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = os.path.join(WORK_DIR, "llama_1b")
    if os.path.exists(os.path.join(out, "config.json")):
        return out
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=2048,
        intermediate_size=5504,
        num_hidden_layers=20,
        num_attention_heads=16,
        num_key_value_heads=16,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
    for name in os.listdir(tiny_model_dir):
        if name.startswith("tokenizer") or name in ("chat_template.jinja", "special_tokens_map.json"):
            shutil.copy(os.path.join(tiny_model_dir, name), out)
    return out


def model_shape(model_path: str) -> tuple[int, int, int]:
    """(parameters, layers, hidden size) from config.json, without loading weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    import torch

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters()), config.num_hidden_layers, config.hidden_size


def measure(mode_flags: list[str], args, model_path: str, data_path: str, save_path: str) -> list[dict]:
    shutil.rmtree(save_path, ignore_errors=True)
    command = deepspeed_command(
        args.num_gpus,
        args.model_type,
        model_path,
        data_path,
        save_path,
        [
            *mode_flags,
            "--max_steps",
            str(args.steps),
            "--train_batch_size",
            str(args.train_batch_size),
            "--micro_batch_size",
            str(args.micro_batch_size),
        ],
        epochs=1,
    )
    if args.no_gradient_checkpointing:
        command.append("--no_gradient_checkpointing")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    log_path = save_path + ".log"
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as log:
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"training failed, see {log_path}")
    with open(os.path.join(save_path, "metrics.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    return [record for record in records if "eval_loss" not in record]


def summarise(records: list[dict], shape, peak_tflops) -> dict:
    """Medians over the measured steps, so one step slowed by a busy machine does not decide the figure."""
    measured = records[1:] if len(records) > 1 else records
    tokens = sum(r["tokens"] for r in measured)
    padded = sum(r["tokens"] / (1 - r["padding_ratio"]) for r in measured)
    row = {
        "supervised_tokens_per_s": statistics.median(r["supervised_tokens_per_s"] for r in measured),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in measured),
        "padding_ratio": 1 - tokens / padded,
        "median_step_s": statistics.median(r["step_seconds"] for r in measured),
        "steps": len(measured),
    }
    if peak_tflops and shape:
        parameters, layers, hidden = shape
        # attention: causal QK^T and AV, forward + backward, counted per token at the batch's mean length
        mean_length = tokens / sum(r["samples"] for r in measured)
        flops_per_token = 6 * parameters + 6 * layers * hidden * mean_length
        row["mfu"] = flops_per_token * row["tokens_per_s"] / (peak_tflops * 1e12)
    return row


def loss_weight_spread(data_path: str, model_type: str, train_batch_size: int, world_size: int, micro: int) -> dict:
    """How much a supervised token weighs against the global-batch token mean when each micro-batch is averaged
    on its own and DeepSpeed then averages the micro-batch losses (the original normalisation)."""
    from ochat.training_deepspeed.batch_plan import plan_epoch
    from ochat.training_deepspeed.data import supervised_target_count

    with open(os.path.join(data_path, f"{model_type}.train.json")) as handle:
        samples = json.load(handle)
    lengths = [len(ids) for ids, _ in samples]
    supervised = [supervised_target_count(mask) for _, mask in samples]
    accumulation = train_batch_size // (micro * world_size)
    spread = {}
    for grouping in ("length", "none"):
        ratios = []
        for step in plan_epoch(lengths, supervised, 0, 42, train_batch_size, grouping, world_size, accumulation, micro):
            micro_batches = [m for rank in step.micro_batches for m in rank]
            for micro_batch in micro_batches:
                count = sum(supervised[i] for i in micro_batch)
                if count:
                    ratios.append(step.supervised_tokens / (count * len(micro_batches)))
        spread[grouping] = (min(ratios), max(ratios))
    return spread


def cpu_time_comparison(model_type: str, model_path: str, data_path: str, train_batch_size: int, micro: int) -> list:
    """Collation, forward and backward of the same two global batches in this process, one thread, timed in
    CPU seconds (immune to other jobs on a shared machine); includes transformers' own dense packed mask."""
    import time

    import torch

    from ochat.config import get_model_config
    from ochat.models import load_model
    from ochat.training_deepspeed.batch_plan import plan_epoch
    from ochat.training_deepspeed.data import load_samples, supervised_target_count
    from ochat.training_deepspeed.model_setup import enable_activation_checkpointing
    from ochat.training_deepspeed.modeling import choose_attn_implementation
    from ochat.training_deepspeed.steps import micro_batch_losses

    torch.set_num_threads(1)
    config = get_model_config(model_type)
    samples = load_samples(os.path.join(data_path, f"{model_type}.train.json"), 1 << 30, 1 << 30)
    lengths = [len(sample.token_ids) for sample in samples]
    supervised = [supervised_target_count(sample.supervise_mask) for sample in samples]
    variants = [
        ("length grouping", "length", "sdpa"),
        ("packing", "packing", choose_attn_implementation(packing=True, on_cuda=False)),
        ("packing, dense mask", "packing", "sdpa"),
        ("no grouping", "none", "sdpa"),
    ]
    rows = []
    for label, grouping, attn in variants:
        model = load_model(config, model_path, dtype=torch.float32, attn_implementation=attn)
        enable_activation_checkpointing(model)
        model.train()
        plan = plan_epoch(
            lengths, supervised, 0, 42, train_batch_size, grouping, 2, train_batch_size // (2 * micro), micro
        )
        seconds, tokens = 0.0, 0
        for step in plan[:2]:
            for rank in range(len(step.micro_batches)):
                started = time.process_time()
                for loss in micro_batch_losses(model, samples, step, rank, "cpu", 0, packing=grouping == "packing"):
                    loss.backward()
                seconds += time.process_time() - started
            tokens += step.tokens
        rows.append((label, attn, tokens / seconds))
    return rows


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_gpus", type=int, default=2, help="ranks (CPU ranks without a GPU; default 2)")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per mode; the first is not counted")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per mode; each step keeps its fastest")
    parser.add_argument("--train_batch_size", type=int, default=32, help="global batch in samples (default 32)")
    parser.add_argument("--micro_batch_size", type=int, default=4, help="samples per rank per micro-batch (default 4)")
    parser.add_argument("--model_type", default="openchat_tiny", help="registry model type of the data")
    parser.add_argument("--model_path", default=None, help="model folder (default: the tiny model, built here)")
    parser.add_argument("--data_path", default=None, help="tokenized data folder (default: the bundled corpus)")
    parser.add_argument("--llama_1b", action="store_true", help="random ~1B LLaMA with the tiny tokenizer (for a GPU)")
    parser.add_argument(
        "--peak_tflops", type=float, default=None, help="device peak (e.g. 989 for H100 bf16) to report MFU"
    )
    parser.add_argument("--no_gradient_checkpointing", action="store_true", help="passed on to training")
    parser.add_argument(
        "--cpu_time_check",
        action="store_true",
        help="also time the modes in-process in CPU seconds, with transformers' dense packed mask",
    )
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES), help="which modes to run")
    args = parser.parse_args(argv)

    model_path, data_path = args.model_path, args.data_path
    if model_path is None or data_path is None:
        tiny_model, tiny_data = build_tiny_inputs(args.model_type)
        model_path, data_path = model_path or tiny_model, data_path or tiny_data
    if args.llama_1b:
        model_path = build_llama_1b(model_path)
    shape = model_shape(model_path) if args.peak_tflops else None

    # every mode trains on the same samples per step, so runs compare step by step; repeats are interleaved
    # and each step keeps its fastest run, which filters out other jobs on a shared machine
    runs = {mode: [] for mode in args.modes}
    for _ in range(args.repeats):
        for mode in args.modes:
            save_path = os.path.join(WORK_DIR, "runs", mode.replace(" ", "_"))
            runs[mode].append(measure(MODES[mode], args, model_path, data_path, save_path))
    rows = {
        mode: summarise(
            [min(same_step, key=lambda r: r["step_seconds"]) for same_step in zip(*repeats)], shape, args.peak_tflops
        )
        for mode, repeats in runs.items()
    }

    print(
        f"model {model_path}, data {data_path}, {args.num_gpus} rank(s), global batch {args.train_batch_size}, "
        f"micro-batch {args.micro_batch_size}, {args.steps} steps per mode (first not counted), "
        f"fastest of {args.repeats} runs per step"
    )
    header = f"| {'mode':<16} | {'supervised tok/s':>16} | {'tok/s':>9} | {'padding':>7} | {'median step s':>13} |"
    if args.peak_tflops:
        header += f" {'MFU':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(cell) + 0) for cell in header.split("|")[1:-1]) + "|")
    for mode, row in rows.items():
        line = (
            f"| {mode:<16} | {row['supervised_tokens_per_s']:>16.0f} | {row['tokens_per_s']:>9.0f} | "
            f"{row['padding_ratio']:>7.1%} | {row['median_step_s']:>13.2f} |"
        )
        if args.peak_tflops:
            line += f" {row['mfu']:>6.1%} |"
        print(line)

    spread = loss_weight_spread(data_path, args.model_type, args.train_batch_size, args.num_gpus, args.micro_batch_size)
    print("\nweight of one supervised token relative to the global token mean (ours: 1.00 for every token)")
    print("under the original per-micro-batch mean, by micro-batch: lightest .. heaviest")
    for grouping, (low, high) in spread.items():
        print(f"  {'length grouping' if grouping == 'length' else 'no grouping':<16} {low:.2f} .. {high:.2f}")

    if args.cpu_time_check:
        print("\nin-process, 1 thread, forward + backward of 2 global batches, tokens per CPU second")
        for label, attn, rate in cpu_time_comparison(
            args.model_type, model_path, data_path, args.train_batch_size, args.micro_batch_size
        ):
            print(f"  {label:<20} {attn:<18} {rate:>7.0f}")


if __name__ == "__main__":
    main()
