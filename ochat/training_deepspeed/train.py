"""Fine-tune a registry model on tokenized conversations with DeepSpeed (ZeRO-2 or 3), fully or with LoRA.

One node, N GPUs (on a machine without a GPU the same command runs N CPU ranks):

    deepspeed --num_gpus=N --module ochat.training_deepspeed.train \\
        --model_type openchat --model_path llama-13b-eot --save_path out \\
        --length_grouping --epochs 5 --data_path data \\
        --deepspeed --deepspeed_config ochat/training_deepspeed/deepspeed_config.json

Run it from the repository root (the ranks import `ochat` from there).
Several nodes use DeepSpeed's own launcher with a hostfile, one line per node
(`worker-1 slots=8`); it starts the ranks over passwordless ssh, so the repo,
the virtualenv, the model and the data must sit at the same paths everywhere:

    deepspeed --hostfile hostfile --num_nodes 2 --num_gpus 8 \\
        --master_addr worker-1 --master_port 29500 \\
        --module ochat.training_deepspeed.train ...same arguments...

Configuration. `deepspeed_config.json` holds the global batch (128 samples),
the micro-batch per rank, ZeRO stage 2 and gradient clipping 1.0;
"auto" values are filled in here: gradient accumulation = global batch /
(micro-batch x ranks), bf16 on when a GPU is present. Without a GPU training
runs in fp32 over the gloo backend, and the log says so. AdamW (lr 2e-5,
weight decay 0) and a cosine schedule with 3% warm-up come from the flags.

Loss. The default (`--loss_reduction token`) is the mean cross entropy over
all supervised tokens of the global batch - every micro-batch, accumulation
step and rank together - so a token weighs the same whether it sits in a short
answer or a long one, and the result does not depend on how samples are
grouped into micro-batches. Each rank knows the whole step from the shared,
seeded batch plan, so the normaliser needs no communication; DeepSpeed's own
division by accumulation steps and ranks is undone. `--loss_reduction
per_sample` averages each sample's mean instead (short answers weigh as much
as long ones). The eval loss uses the same reduction over the whole eval set.

Batching (see `ochat.training_deepspeed.data`): `--length_grouping` puts
samples of similar length into the same micro-batch; `--packing` concatenates
them into padding-free rows with position ids restarting per sample.

Resume. `--save_every N` writes a DeepSpeed checkpoint (weights, optimizer,
schedule, step) every N optimizer steps to SAVE_PATH/checkpoints, keeping the
newest `--keep_checkpoints`. The same command with `--resume` loads the latest
and skips the steps already done; the data order is a function of seed and
epoch, so a run killed mid-epoch ends with the same steps, learning rates and
weights as an uninterrupted one. Settings that would change the schedule, the
order or what the checkpoint holds (batch size, ranks, grouping, seed, model
type and path, ZeRO stage, LoRA rank, alpha, dropout and targets, ...) are
refused on resume, at start-up: each checkpoint keeps them in
`run_signature.json`. A new run (no `--resume`) into a folder that already holds
a run's metrics, checkpoints or model is refused, so two runs never mix.
`--max_steps` ends the run early; the cosine schedule then ends there too.
On resume, metrics.jsonl keeps only the records up to the checkpoint's step
(the killed run may have logged a few steps after it).

LoRA (`--lora_rank R`, see `ochat.training_deepspeed.lora`): peft adapters on
every linear layer of attention and MLP (`--lora_target_modules`), the base
frozen except the <|end_of_turn|> rows of the embedding and output layer.
`--load_in_4bit` loads the frozen base in 4 bits (QLoRA, bitsandbytes, CUDA
only). Same launcher, batching, loss and resume as full fine-tuning.

Memory. `--zero_stage 3` partitions the parameters too (the final save
gathers them); `--offload_optimizer cpu` keeps Adam state in host memory
(ZeRO-2 or 3), `--offload_params cpu` the parameters as well (ZeRO-3). Before
loading the model the run prints the memory plan of
`ochat.training_deepspeed.plan` for its setup and warns when it will not fit.

Failures. Every collective waits at most `--collective_timeout` minutes; a
rank that stops answering (stopped, swapped out, hung node) for half of it ends
the whole run with a non-zero exit and a message naming it, instead of a hang.

Outputs in --save_path:

    config.json, model.safetensors, generation_config.json,
    tokenizer files (tokenizer.model, chat template)   the fine-tuned model, Hugging Face format
                       (LoRA: the adapter merged into the base)
    adapter/           LoRA runs: the peft adapter alone (adapter_config.json, adapter_model.safetensors)
    metrics.jsonl      one line per optimizer step and per evaluation, e.g.
                       {"step": 3, "epoch": 0, "loss": 6.91, "lr": 1.9e-05, "grad_norm": 1.2,
                        "tokens_per_s": 5123.0, "supervised_tokens_per_s": 2311.4, "padding_ratio": 0.04,
                        "peak_memory_gb": 31.2, "runtime_memory_gb": 0.9}
                       (peak: rank 0's CUDA memory allocated, or its resident memory on a CPU;
                        runtime: what was resident before the model loaded)
                       {"step": 10, "epoch": 0, "eval_loss": 6.52, "eval_samples": 20}
    checkpoints/       DeepSpeed checkpoints every --save_every steps, for --resume
    tensorboard/       the same scalars, when tensorboard is installed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta

from ochat.training_deepspeed.data import (
    LOSS_REDUCTIONS,
    DataError,
    load_samples,
    plan_epoch,
    resolve_data_files,
    steps_per_epoch,
    supervised_target_count,
)
from ochat.training_deepspeed.deepspeed_settings import (
    OFFLOAD_CHOICES,
    TrainingSetupError,
    check_save_path,
    resolve_deepspeed_config,
)
from ochat.training_deepspeed.lora import ADAPTER_DIR, DEFAULT_TARGET_MODULES, LoraSettings
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import resolve_source_path

DEFAULT_DEEPSPEED_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepspeed_config.json")
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
RUN_SIGNATURE_FILE = "run_signature.json"  # in each checkpoint's folder, read before anything loads
LORA_ONLY_FLAGS = ("lora_alpha", "lora_dropout", "lora_target_modules")
# What a finished or started run leaves in --save_path; a new run there would mix with it.
RUN_OUTPUTS = (METRICS_FILE, CHECKPOINT_DIR, ADAPTER_DIR, "model.safetensors", "config.json")


def parse_args(argv=None) -> argparse.Namespace:
    import deepspeed

    parser = ArgumentParser(
        prog="deepspeed --module ochat.training_deepspeed.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model_type", required=True, help="registry model type, e.g. openchat, openchat_8192, opencoder"
    )
    parser.add_argument("--model_path", required=True, help="base model folder with the <|end_of_turn|> token added")
    parser.add_argument(
        "--data_path", required=True, help="folder holding MODEL_TYPE.train.json (and .eval.json), or that file"
    )
    parser.add_argument("--save_path", required=True, help="folder for the fine-tuned model, metrics and checkpoints")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training set (default 5)")
    batching = parser.add_mutually_exclusive_group()
    batching.add_argument("--length_grouping", action="store_true", help="micro-batches of similar-length samples")
    batching.add_argument("--packing", action="store_true", help="padding-free rows of several samples each")
    parser.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default 2e-5)")
    parser.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    parser.add_argument(
        "--warmup_ratio", type=float, default=0.03, help="share of steps spent warming up (default 0.03)"
    )
    parser.add_argument(
        "--loss_reduction",
        choices=LOSS_REDUCTIONS,
        default="token",
        help="token: mean over all supervised tokens of the global batch (default); "
        "per_sample: mean of each sample's mean",
    )
    parser.add_argument(
        "--train_batch_size", type=int, default=None, help="global batch in samples (overrides the config)"
    )
    parser.add_argument(
        "--micro_batch_size", type=int, default=None, help="samples per rank per micro-batch (overrides the config)"
    )
    parser.add_argument(
        "--max_steps", type=int, default=None, help="stop after this many optimizer steps (the schedule ends there too)"
    )
    parser.add_argument(
        "--save_every", type=int, default=0, help="write a DeepSpeed checkpoint every N optimizer steps (0: never)"
    )
    parser.add_argument(
        "--keep_checkpoints", type=int, default=2, help="DeepSpeed checkpoints kept on disk (default 2)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in SAVE_PATH/checkpoints"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the data order (default 42)")
    parser.add_argument(
        "--no_gradient_checkpointing", action="store_true", help="keep activations instead of recomputing them"
    )
    parser.add_argument(
        "--collective_timeout",
        type=float,
        default=10.0,
        help="minutes a rank waits for the others before the run stops with an error naming "
        "the rank that does not answer (default 10; raise it when saving a checkpoint of a "
        "very large model to a slow disk takes longer)",
    )
    memory = parser.add_argument_group("ZeRO and offload")
    memory.add_argument(
        "--zero_stage",
        type=int,
        choices=(0, 1, 2, 3),
        default=None,
        help="ZeRO stage (overrides the config's, which is 2): 3 also partitions the parameters",
    )
    memory.add_argument(
        "--offload_optimizer",
        choices=OFFLOAD_CHOICES,
        default="none",
        help="cpu: keep optimizer state (and its step) in host memory (ZeRO-Offload)",
    )
    memory.add_argument(
        "--offload_params",
        choices=OFFLOAD_CHOICES,
        default="none",
        help="cpu: keep parameters in host memory between uses (ZeRO-3 only)",
    )
    lora = parser.add_argument_group("LoRA (peft)")
    lora.add_argument("--lora_rank", type=int, default=0, help="train LoRA adapters of this rank (0: full fine-tuning)")
    lora.add_argument("--lora_alpha", type=float, default=None, help="LoRA scaling numerator (default 2 x rank)")
    lora.add_argument("--lora_dropout", type=float, default=None, help="dropout on the LoRA input (default 0.05)")
    lora.add_argument(
        "--lora_target_modules",
        default=None,
        help="comma-separated module names to adapt, e.g. q_proj,v_proj "
        "(default all-linear: every linear layer of attention and MLP)",
    )
    lora.add_argument(
        "--load_in_4bit",
        action="store_true",
        help="QLoRA: load the frozen base in 4-bit NF4 (bitsandbytes, CUDA only; needs --lora_rank)",
    )
    parser.add_argument(
        "--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)), help="set by the launcher"
    )
    parser = deepspeed.add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.deepspeed_config is None:
        args.deepspeed_config = DEFAULT_DEEPSPEED_CONFIG
    args.deepspeed_config = resolve_source_path(args.deepspeed_config)
    for name in ("epochs", "train_batch_size", "micro_batch_size", "max_steps", "keep_checkpoints"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    if args.save_every < 0:
        parser.error("--save_every must be 0 (never) or a positive number of optimizer steps")
    if args.collective_timeout <= 0:
        parser.error("--collective_timeout must be a positive number of minutes")
    if args.lora_rank < 0:
        parser.error("--lora_rank must be 0 (full fine-tuning) or positive")
    lora_flags = [name for name in LORA_ONLY_FLAGS if getattr(args, name) is not None]
    if lora_flags and not args.lora_rank:
        parser.error(
            f"--{lora_flags[0]} configures LoRA adapters, but --lora_rank is 0 (full fine-tuning): "
            "add --lora_rank (e.g. 64) or drop the LoRA flags"
        )
    args.lora_dropout = 0.05 if args.lora_dropout is None else args.lora_dropout
    args.lora_target_modules = args.lora_target_modules or DEFAULT_TARGET_MODULES
    if not 0 <= args.lora_dropout < 1:
        parser.error("--lora_dropout must be in [0, 1)")
    if args.load_in_4bit and not args.lora_rank:
        parser.error("--load_in_4bit trains LoRA adapters on a 4-bit base: add --lora_rank (e.g. 64)")
    if args.lora_alpha is None:
        args.lora_alpha = 2.0 * args.lora_rank
    if not 0 <= args.warmup_ratio < 1:
        parser.error("--warmup_ratio must be in [0, 1)")
    return args


@dataclass
class Setup:
    """Everything checked before the process group starts."""

    config: object  # ochat ModelConfig
    tokenizer: object  # ochat ChatTokenizer
    train_samples: list
    eval_samples: list
    train_file: str
    eval_file: str | None
    deepspeed_config: dict
    world_size: int
    on_cuda: bool
    steps_per_epoch: int
    total_steps: int
    run_signature: dict = field(default_factory=dict)


def prepare(args) -> Setup:
    """Check every input the same way on every rank, before `deepspeed.init_distributed` can hang on a failure."""
    import torch

    from ochat.config import get_model_config, load_tokenizer
    from ochat.models import load_model_config
    from ochat.models.loading import context_length

    try:
        config = get_model_config(args.model_type)
    except ValueError as error:
        raise TrainingSetupError(str(error)) from None
    check_save_path(args.save_path)
    check_outputs_can_be_written(args.save_path, args.resume, bool(args.lora_rank))
    if args.load_in_4bit:
        check_4bit_available()
    try:
        hf_config = load_model_config(config, args.model_path)
        tokenizer = load_tokenizer(config, args.model_path)
        _ = tokenizer.eot_token_id  # raises with the add_eot_token command when the token is missing
    except (FileNotFoundError, ValueError, OSError) as error:
        raise TrainingSetupError(str(error)) from None
    if args.lora_rank:
        check_lora_targets(hf_config, lora_settings(args))
    vocab_size = min(hf_config.vocab_size, len(tokenizer))
    max_context = min(config.max_context, context_length(hf_config))

    train_file, eval_file = resolve_data_files(args.data_path, args.model_type)
    train_samples = load_samples(train_file, vocab_size, max_context)
    if not train_samples:
        raise DataError(f"{train_file} holds no samples; nothing to train on")
    if not any(supervised_target_count(mask) for _, mask in train_samples):
        raise DataError(f"{train_file}: no sample has a supervised token; nothing to train on")
    eval_samples = load_samples(eval_file, vocab_size, max_context) if eval_file else []

    world_size = int(os.environ.get("WORLD_SIZE", 1))
    on_cuda = torch.cuda.is_available()
    ds_config = resolve_deepspeed_config(args.deepspeed_config, args, world_size, on_cuda)
    per_epoch = steps_per_epoch(len(train_samples), ds_config["train_batch_size"])
    total_steps = per_epoch * args.epochs
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    signature = run_signature(args, ds_config, world_size, len(train_samples), total_steps)
    if args.resume:
        check_resume_signature(os.path.join(args.save_path, CHECKPOINT_DIR), signature)
    return Setup(
        config,
        tokenizer,
        train_samples,
        eval_samples,
        train_file,
        eval_file,
        ds_config,
        world_size,
        on_cuda,
        per_epoch,
        total_steps,
        signature,
    )


def run_signature(args, ds_config: dict, world_size: int, train_samples: int, total_steps: int) -> dict:
    """What must not change between a run and its resume: the schedule, the data order, and what the
    checkpoint's weights and optimizer state fit (model, ranks, ZeRO partitioning, LoRA layout)."""
    return {
        "train_samples": train_samples,
        "train_batch_size": ds_config["train_batch_size"],
        "world_size": world_size,
        "gradient_accumulation_steps": ds_config["gradient_accumulation_steps"],
        "grouping": "packing" if args.packing else "length" if args.length_grouping else "none",
        "seed": args.seed,
        "total_steps": total_steps,
        "loss_reduction": args.loss_reduction,
        "model_type": args.model_type,
        "model_path": os.path.realpath(args.model_path),
        "zero_stage": int(ds_config.get("zero_optimization", {}).get("stage", 0)),
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha if args.lora_rank else None,
        "lora_dropout": args.lora_dropout if args.lora_rank else None,
        "lora_target_modules": args.lora_target_modules if args.lora_rank else None,
        "load_in_4bit": args.load_in_4bit,
    }


def signature_differences(saved: dict, current: dict) -> str:
    """`key: checkpoint X, now Y` for every setting of `saved` that `current` changes ('' when none)."""
    saved = {"lora_rank": 0, **saved}  # checkpoints from before LoRA existed
    return ", ".join(
        f"{key}: checkpoint {saved[key]!r}, now {current.get(key)!r}"
        for key in saved
        if key in current and saved[key] != current[key]
    )


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The folder of the newest checkpoint DeepSpeed names in `latest`, or None when there is none yet."""
    try:
        with open(os.path.join(checkpoint_dir, "latest"), encoding="utf-8") as handle:
            tag = handle.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise TrainingSetupError(f"cannot read {checkpoint_dir}/latest: {error.strerror or error}") from None
    return os.path.join(checkpoint_dir, tag)


def check_resume_signature(checkpoint_dir: str, signature: dict) -> None:
    """Refuse, before any process group starts, a resume whose settings differ from its checkpoint's."""
    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        return
    try:
        with open(os.path.join(path, RUN_SIGNATURE_FILE), encoding="utf-8") as handle:
            saved = json.load(handle)
    except FileNotFoundError:  # written by an older version: the checkpoint's own copy is checked on load
        return
    except (OSError, ValueError) as error:
        raise TrainingSetupError(f"cannot read {path}/{RUN_SIGNATURE_FILE}: {error}") from None
    differences = signature_differences(saved, signature) if isinstance(saved, dict) else "unreadable signature"
    if differences:
        raise TrainingSetupError(
            f"cannot resume {path} with different settings ({differences}); resume with the checkpoint's settings, "
            "or start a new run in another --save_path"
        )


def check_outputs_can_be_written(save_path: str, resume: bool, lora: bool) -> None:
    """Find, before training, what would stop the run writing its outputs, and an earlier run a new one would mix with."""
    folders = [CHECKPOINT_DIR] + ([ADAPTER_DIR] if lora else [])
    for name in folders + [METRICS_FILE]:
        path = os.path.join(save_path, name)
        if not os.path.lexists(path):
            continue
        if name in folders and not os.path.isdir(path):
            raise TrainingSetupError(f"{path} is a file in the way of the run's {name}/ folder; move it away")
        if name == METRICS_FILE and not os.path.isfile(path):
            raise TrainingSetupError(
                f"{path} is not a regular file, and the run appends its metrics there; move it away"
            )
    if not resume:
        found = [name for name in RUN_OUTPUTS if os.path.lexists(os.path.join(save_path, name))]
        if found:
            raise TrainingSetupError(
                f"--save_path {save_path} holds an earlier run ({', '.join(found)}); pass --resume to continue it, "
                "or choose an empty folder (a new run there would mix its metrics and checkpoints with the old ones)"
            )


def check_lora_targets(hf_config, settings: LoraSettings) -> None:
    """Every --lora_target_modules name is a module of the model, checked on an empty (meta) copy of it."""
    targets = settings.target_module_list()
    if targets == DEFAULT_TARGET_MODULES:
        return
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    names = [name for name, _ in model.named_modules()]
    missing = [target for target in targets if not any(name == target or name.endswith("." + target) for name in names)]
    if missing or not targets:
        short_names = sorted(
            {name.rsplit(".", 1)[-1] for name in names if name and not name.rsplit(".", 1)[-1].isdigit()}
        )
        raise TrainingSetupError(
            f"--lora_target_modules: {', '.join(missing) or '(none given)'} is not a module of this "
            f"{hf_config.model_type} model; its modules: {', '.join(short_names)}"
        )


def main(argv=None):
    args = parse_args(argv)
    try:
        setup = prepare(args)
    except (TrainingSetupError, DataError) as error:
        print(f"ochat.training_deepspeed.train: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)

    import deepspeed
    import torch
    import torch.distributed as dist

    from ochat.training_deepspeed.watchdog import RankWatchdog

    backend = "nccl" if setup.on_cuda else "gloo"
    deepspeed.init_distributed(dist_backend=backend, timeout=timedelta(minutes=args.collective_timeout))
    torch.manual_seed(args.seed)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    release_cpu_allreduce_buffer(rank, world_size)
    # half the collective timeout, so a stopped rank is named before a collective times out without a name
    watchdog = RankWatchdog(rank, world_size, timeout_s=args.collective_timeout * 30)
    watchdog.start()
    log = _rank_zero_logger(rank)
    device = torch.device("cuda", args.local_rank) if setup.on_cuda else torch.device("cpu")
    if setup.on_cuda:
        torch.cuda.set_device(device)
    ds_config = setup.deepspeed_config
    bf16 = ds_config["bf16"]["enabled"]
    if setup.on_cuda:
        log(f"{world_size} GPU rank(s), backend nccl, {'bf16' if bf16 else 'fp32'}")
    else:
        log(f"no GPU found: training on CPU with {world_size} rank(s), backend gloo, {'bf16' if bf16 else 'fp32'}")
    log(
        f"train {setup.train_file}: {len(setup.train_samples)} samples; "
        f"eval {setup.eval_file or '(none)'}: {len(setup.eval_samples)} samples"
    )
    log(
        f"global batch {ds_config['train_batch_size']} = micro-batch {ds_config['train_micro_batch_size_per_gpu']} x "
        f"accumulation {ds_config['gradient_accumulation_steps']} x {world_size} ranks; "
        f"{setup.steps_per_epoch} steps per epoch, {setup.total_steps} steps in all; loss reduction {args.loss_reduction}"
    )
    if rank == 0:
        warn_if_it_will_not_fit(args, setup, bf16, world_size, log)

    runtime_memory = peak_memory_bytes(setup.on_cuda)  # before the model: interpreter, libraries, data
    engine, lr_scheduler = build_engine(args, setup, bf16, device, log)
    trainer = Trainer(args, setup, engine, lr_scheduler, device, rank, world_size, log)
    trainer.runtime_memory = runtime_memory
    trainer.restore()
    trainer.train()
    final_model = gather_final_model(engine, args, setup, bf16, rank)
    watchdog.stop()  # the last collective is behind us; rank 0 saves alone while the others exit
    if rank == 0:
        if args.lora_rank:
            adapter_path = os.path.join(args.save_path, ADAPTER_DIR)
            final_model.save_pretrained(adapter_path)
            log(f"LoRA adapter written to {adapter_path}")
            final_model = final_model.merge_and_unload()
        save_hf_checkpoint(final_model, setup.config, setup.tokenizer, args.model_path, args.save_path)
        log(
            f"fine-tuned model written to {args.save_path}"
            + (" (adapter merged into the base)" if args.lora_rank else "")
        )
    trainer.close()


def release_cpu_allreduce_buffer(rank: int, world_size: int) -> None:
    """Unlink this rank's DeepSpeed shared-memory all-reduce buffer once every rank has mapped it.

    CPU ranks on one machine all-reduce through a /dev/shm file per rank (66 MiB each) that DeepSpeed
    never removes, so every run, finished or killed, would leave them filling RAM-backed /dev/shm.
    Each rank maps all the buffers inside `init_distributed`; after a barrier the names can go, and the
    mappings stay valid until the ranks exit.
    """
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:  # a single process, no launcher
        return
    import torch.distributed as dist

    dist.barrier()
    name = f"deepspeed_allreduce_buffer_{os.getuid()}_{os.environ['MASTER_ADDR']}_{os.environ['MASTER_PORT']}_{rank}"
    try:
        os.unlink(os.path.join("/dev/shm", name))
    except FileNotFoundError:  # not a CPU run, or DeepSpeed used no shared-memory all-reduce
        pass


def check_4bit_available() -> None:
    """QLoRA needs CUDA and bitsandbytes; say so before anything loads."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise TrainingSetupError(
            "--load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels do not run on "
            "this machine's CPU; drop --load_in_4bit to train LoRA on the full-precision base"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingSetupError(
            "--load_in_4bit needs bitsandbytes: pip install bitsandbytes (or the project's gpu extra)"
        )


def warn_if_it_will_not_fit(args, setup: Setup, bf16: bool, world_size: int, log) -> None:
    """Print the memory plan of this very setup and warn when it exceeds the device's memory."""
    from ochat.models import load_model_config
    from ochat.training_deepspeed import plan

    try:
        shape = plan.model_shape(load_model_config(setup.config, args.model_path))
    except Exception as error:  # noqa: BLE001 - a plan is advice; never stop a run for it
        log(f"memory plan skipped: {error}")
        return
    zero = setup.deepspeed_config.get("zero_optimization", {})
    longest = max(len(sample[0]) for sample in setup.train_samples)
    micro = setup.deepspeed_config["train_micro_batch_size_per_gpu"]
    estimate = plan.estimate(
        shape,
        "this run",
        num_gpus=world_size,
        micro_batch_size=micro,
        context=longest,
        lora_rank=args.lora_rank,
        zero_stage=int(zero.get("stage", 0)),
        quantized=args.load_in_4bit,
        offload_optimizer=zero.get("offload_optimizer", {}).get("device", "none") not in (None, "none"),
        offload_params=zero.get("offload_param", {}).get("device", "none") not in (None, "none"),
        dtype_bytes=2 if bf16 else 4,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        reduce_bucket_elements=float(zero.get("reduce_bucket_size", plan.REDUCE_BUCKET_ELEMENTS)),
    )
    available, where = device_memory_bytes(setup.on_cuda, world_size)
    log(
        f"memory plan per rank: weights {estimate.weights / plan.GB:.2f} GB, gradients {estimate.gradients / plan.GB:.2f}, "
        f"optimizer {estimate.optimizer / plan.GB:.2f}, activations {estimate.activations / plan.GB:.2f}, "
        f"buffers {estimate.buffers / plan.GB:.2f}: total {estimate.total / plan.GB:.2f} GB of {available / plan.GB:.1f} GB {where}"
    )
    if estimate.total > plan.HEADROOM * available:
        log(
            f"WARNING: this setup needs about {estimate.total / plan.GB:.1f} GB per rank but {where} has "
            f"{available / plan.GB:.1f} GB; it will probably run out of memory. See the options that fit with "
            f"python -m ochat.training_deepspeed.plan --model_path {args.model_path} --num_gpus {world_size} "
            f"--gpu_memory_gb {available / plan.GB:.0f} (LoRA, ZeRO-3, offload)"
        )


def device_memory_bytes(on_cuda: bool, world_size: int) -> tuple[float, str]:
    import torch

    if on_cuda:
        return float(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory), "each GPU"
    import psutil

    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    return psutil.virtual_memory().total / max(1, ranks_here), "each CPU rank's share of host memory"


def gather_final_model(engine, args, setup: Setup, bf16: bool, rank: int):
    """The trained model, whole, on rank 0 (None elsewhere): under ZeRO-3, and for LoRA, rebuilt on the CPU.

    ZeRO-3 holds only a shard of each parameter per rank, so its full state is gathered layer by layer to
    rank 0 (every rank takes part). A LoRA model is rebuilt on a full-precision (never 4-bit) base in host
    memory with the trained adapter and token rows loaded in, so the merge writes plain weights.
    """
    import torch

    from ochat.models import load_model

    zero3 = engine.zero_optimization_partition_weights()
    if not zero3 and not args.lora_rank:
        return engine.module if rank == 0 else None
    trainable_names = {name for name, parameter in engine.module.named_parameters() if parameter.requires_grad}
    if zero3:
        state = engine._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=bool(args.lora_rank))
    else:
        state = engine.module.state_dict() if rank == 0 else None
    if rank != 0:
        return None
    model = load_model(setup.config, args.model_path, dtype=torch.bfloat16 if bf16 else torch.float32)
    if args.lora_rank:
        from ochat.training_deepspeed.lora import apply_lora

        model = apply_lora(model, lora_settings(args), [setup.tokenizer.eot_token_id])
        state = {name: tensor for name, tensor in state.items() if name in trainable_names}
        missing = trainable_names - set(state)
        if missing:
            raise RuntimeError(f"trained adapter weights missing from the gathered state: {sorted(missing)[:5]}")
        unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    else:
        unexpected = model.load_state_dict(state, strict=True).unexpected_keys
    if unexpected:
        raise RuntimeError(f"gathered state does not fit the rebuilt model: {unexpected[:5]}")
    return model


def lora_settings(args) -> LoraSettings:
    return LoraSettings(
        rank=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=args.lora_target_modules
    )


def _rank_zero_logger(rank: int):
    def log(message: str) -> None:
        if rank == 0:
            from tqdm import tqdm

            tqdm.write(f"[train] {message}", file=sys.stderr)

    return log


def build_engine(args, setup: Setup, bf16: bool, device, log):
    """Model (context extended by the registry), AdamW, warm-up + cosine schedule, wrapped by DeepSpeed."""
    import deepspeed
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from ochat.models import load_model
    from ochat.training_deepspeed.modeling import choose_attn_implementation

    attn_implementation = choose_attn_implementation(args.packing, setup.on_cuda)
    quantization = None
    if args.load_in_4bit:
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
        )
    model = load_model(
        setup.config,
        args.model_path,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        attn_implementation=attn_implementation,
        quantization_config=quantization,
        device=str(device) if quantization is not None else None,
    )
    model.config.use_cache = False
    if not args.no_gradient_checkpointing:
        enable_activation_checkpointing(model)
    log(
        f"model {args.model_path} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), "
        f"attention {attn_implementation}, gradient checkpointing {'off' if args.no_gradient_checkpointing else 'on'}"
    )
    if args.lora_rank:
        from ochat.training_deepspeed.lora import apply_lora, trainable_parameter_count

        try:
            model = apply_lora(
                model,
                lora_settings(args),
                [setup.tokenizer.eot_token_id],
                quantized=args.load_in_4bit,
                gradient_checkpointing=not args.no_gradient_checkpointing,
            )
        except ValueError as error:
            raise TrainingSetupError(str(error)) from None
        trainable, total = trainable_parameter_count(model)
        log(
            f"LoRA rank {args.lora_rank}, alpha {args.lora_alpha:g}, dropout {args.lora_dropout:g}, targets "
            f"{args.lora_target_modules}{', 4-bit base' if args.load_in_4bit else ''}: {trainable:,} of {total:,} "
            f"parameters trainable (with the <|end_of_turn|> embedding and output rows)"
        )
    trainable_parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    zero = setup.deepspeed_config.get("zero_optimization", {})
    if setup.on_cuda and zero.get("offload_optimizer", {}).get("device", "none") not in (None, "none"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # the optimizer step runs on the host, vectorised

        optimizer = DeepSpeedCPUAdam(trainable_parameters, lr=args.lr, weight_decay=args.weight_decay, adamw_mode=True)
    else:
        optimizer = torch.optim.AdamW(
            trainable_parameters, lr=args.lr, weight_decay=args.weight_decay, fused=setup.on_cuda or None
        )
    log(
        f"ZeRO stage {zero.get('stage', 0)}, optimizer offload {zero.get('offload_optimizer', {}).get('device', 'none')}, "
        f"parameter offload {zero.get('offload_param', {}).get('device', 'none')}"
    )
    warmup_steps = math.ceil(setup.total_steps * args.warmup_ratio)
    engine, _, _, lr_scheduler = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=lambda opt: get_cosine_schedule_with_warmup(opt, warmup_steps, setup.total_steps),
        config=dict(setup.deepspeed_config),
    )
    return engine, lr_scheduler


class Trainer:
    """The optimizer-step loop: batch plan, weighted loss, logging, evaluation and checkpoints."""

    def __init__(self, args, setup: Setup, engine, lr_scheduler, device, rank: int, world_size: int, log):
        self.args, self.setup, self.engine, self.lr_scheduler = args, setup, engine, lr_scheduler
        self.device, self.rank, self.world_size, self.log = device, rank, world_size, log
        self.accumulation = setup.deepspeed_config["gradient_accumulation_steps"]
        self.micro_batch_size = setup.deepspeed_config["train_micro_batch_size_per_gpu"]
        self.global_batch = setup.deepspeed_config["train_batch_size"]
        self.grouping = "packing" if args.packing else "length" if args.length_grouping else "none"
        self.lengths = [len(ids) for ids, _ in setup.train_samples]
        self.supervised = [supervised_target_count(mask) for _, mask in setup.train_samples]
        self.pad_token_id = setup.tokenizer.hf_tokenizer.pad_token_id or 0
        self.global_step = 0
        self.runtime_memory = 0.0  # resident before the model loaded; peak_memory_gb minus this is the run's own
        self.checkpoint_dir = os.path.join(args.save_path, CHECKPOINT_DIR)
        self.metrics = None
        self.tensorboard = None
        if rank == 0:
            os.makedirs(args.save_path, exist_ok=True)
            self.metrics = open(os.path.join(args.save_path, METRICS_FILE), "a", encoding="utf-8")
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(os.path.join(args.save_path, "tensorboard"))
            except ImportError:
                log("tensorboard is not installed: metrics go to metrics.jsonl only")

    def run_signature(self) -> dict:
        return self.setup.run_signature

    def restore(self) -> None:
        self.restore_checkpoint()
        if self.args.resume and self.rank == 0:
            self.drop_metrics_after(self.global_step)

    def drop_metrics_after(self, step: int) -> None:
        """A killed run may have logged steps after its last checkpoint; the resumed run logs them again."""
        from ochat.utils.files import read_jsonl, write_jsonl_atomic

        path = os.path.join(self.args.save_path, METRICS_FILE)
        self.metrics.close()
        records = read_jsonl(path)
        kept = [record for record in records if record.get("step", 0) <= step]
        if len(kept) != len(records):
            write_jsonl_atomic(path, kept)
            self.log(f"metrics.jsonl: dropped {len(records) - len(kept)} record(s) logged after step {step}")
        self.metrics = open(path, "a", encoding="utf-8")

    def restore_checkpoint(self) -> None:
        if not self.args.resume:
            return
        if not os.path.isfile(os.path.join(self.checkpoint_dir, "latest")):
            self.log(f"--resume: no checkpoint in {self.checkpoint_dir} yet, starting from the beginning")
            return
        # LoRA checkpoints hold only the trainable weights; the frozen base comes from --model_path
        path, client_state = self.engine.load_checkpoint(
            self.checkpoint_dir, load_module_strict=not self.args.lora_rank
        )
        if path is None:
            raise RuntimeError(f"could not load the latest checkpoint from {self.checkpoint_dir}")
        details = signature_differences(client_state.get("run_signature", {}), self.run_signature())
        if details:
            raise RuntimeError(f"cannot resume {path} with different settings ({details})")
        self.global_step = client_state["global_step"]
        self.log(f"resumed from {path} at optimizer step {self.global_step}")

    def train(self) -> None:
        from tqdm import tqdm

        setup = self.setup
        progress = tqdm(
            total=setup.total_steps, initial=self.global_step, desc="train", disable=self.rank != 0, dynamic_ncols=True
        )
        while self.global_step < setup.total_steps:
            epoch, step_in_epoch = divmod(self.global_step, setup.steps_per_epoch)
            plan = plan_epoch(
                self.lengths,
                self.supervised,
                epoch,
                self.args.seed,
                self.global_batch,
                self.grouping,
                self.world_size,
                self.accumulation,
                self.micro_batch_size,
            )
            for step_plan in plan[step_in_epoch:]:
                record = self.optimizer_step(step_plan, epoch)
                progress.set_postfix(
                    loss=f"{record['loss']:.4f}",
                    lr=f"{record['lr']:.2e}",
                    tok_s=f"{record['tokens_per_s']:.0f}",
                    refresh=False,
                )
                progress.update(1)
                if self.args.save_every and self.global_step % self.args.save_every == 0:
                    self.save_checkpoint()
                if self.global_step >= setup.total_steps:
                    break
            self.evaluate(epoch)
        progress.close()

    def optimizer_step(self, step_plan, epoch: int) -> dict:
        import torch
        import torch.distributed as dist

        from ochat.training_deepspeed.steps import micro_batch_losses

        engine = self.engine
        engine.train()
        lr = self.lr_scheduler.get_last_lr()[0]
        started = time.perf_counter()
        step_loss = torch.zeros((), device=self.device, dtype=torch.float32)
        # DeepSpeed divides each micro-batch loss by the accumulation steps and averages gradients over
        # ranks; the weights already normalise over the whole global batch, so undo both.
        undo_averaging = self.accumulation * self.world_size
        for loss_share in micro_batch_losses(
            engine,
            self.setup.train_samples,
            step_plan,
            self.rank,
            self.device,
            self.pad_token_id,
            self.grouping == "packing",
            self.args.loss_reduction,
        ):
            engine.backward(loss_share * undo_averaging)
            engine.step()
            step_loss += loss_share.detach()
        dist.all_reduce(step_loss)
        elapsed = time.perf_counter() - started
        self.global_step += 1
        grad_norm = engine.get_global_grad_norm()
        record = {
            "step": self.global_step,
            "epoch": epoch,
            "loss": step_loss.item(),
            "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "samples": sum(len(m) for rank_batches in step_plan.micro_batches for m in rank_batches),
            "tokens": step_plan.tokens,
            "supervised_tokens": step_plan.supervised_tokens,
            "tokens_per_s": step_plan.tokens / elapsed,
            "supervised_tokens_per_s": step_plan.supervised_tokens / elapsed,
            "padding_ratio": 1 - step_plan.tokens / step_plan.padded_tokens,
            "step_seconds": elapsed,
            "peak_memory_gb": peak_memory_bytes(self.setup.on_cuda) / 1e9,
            "runtime_memory_gb": self.runtime_memory / 1e9,
        }
        self.write_metrics(record)
        return record

    def evaluate(self, epoch: int) -> None:
        """Eval loss over the whole eval set, with the training loss reduction, summed across ranks."""
        import torch.distributed as dist

        from ochat.training_deepspeed.steps import dataset_loss

        samples = self.setup.eval_samples
        if not samples or not any(supervised_target_count(sample[1]) for sample in samples):
            return
        model = self.engine.module
        model.eval()
        total = dataset_loss(
            model,
            samples,
            self.device,
            self.pad_token_id,
            packing=self.grouping == "packing",
            loss_reduction=self.args.loss_reduction,
            rank=self.rank,
            world_size=self.world_size,
            micro_batch_size=self.micro_batch_size,
        )
        dist.all_reduce(total)
        model.train()
        self.write_metrics(
            {"step": self.global_step, "epoch": epoch, "eval_loss": total.item(), "eval_samples": len(samples)}
        )
        self.log(f"epoch {epoch} step {self.global_step}: eval loss {total.item():.4f} ({len(samples)} samples)")

    def write_metrics(self, record: dict) -> None:
        if self.metrics is None:
            return
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        if self.tensorboard is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, record["step"])

    def save_checkpoint(self) -> None:
        import torch.distributed as dist

        tag = f"step_{self.global_step}"
        self.engine.save_checkpoint(
            self.checkpoint_dir,
            tag=tag,
            client_state={"global_step": self.global_step, "run_signature": self.run_signature()},
            exclude_frozen_parameters=bool(self.args.lora_rank),
        )
        if self.rank == 0:  # read by the next --resume before anything loads
            from ochat.utils.files import write_json_atomic

            write_json_atomic(os.path.join(self.checkpoint_dir, tag, RUN_SIGNATURE_FILE), self.run_signature())
        dist.barrier()
        if self.rank == 0:
            steps = sorted(
                int(name[len("step_") :])
                for name in os.listdir(self.checkpoint_dir)
                if name.startswith("step_") and name[len("step_") :].isdigit()
            )
            for old in steps[: -self.args.keep_checkpoints] if self.args.keep_checkpoints > 0 else []:
                shutil.rmtree(os.path.join(self.checkpoint_dir, f"step_{old}"), ignore_errors=True)
        self.log(f"checkpoint {tag} written to {self.checkpoint_dir}")

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def peak_memory_bytes(on_cuda: bool) -> float:
    """This rank's peak so far: CUDA memory allocated by torch, or the process's peak resident set on a CPU."""
    import torch

    if on_cuda:
        return float(torch.cuda.max_memory_allocated())
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def enable_activation_checkpointing(model) -> None:
    """Recompute layer activations in the backward pass (transformers renamed the API in 5.x)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def save_hf_checkpoint(model, config, tokenizer, model_path: str, save_path: str) -> None:
    """The fine-tuned model as a plain Hugging Face folder that stops generating on <|end_of_turn|>."""
    from transformers import GenerationConfig

    from ochat.config.conversation_template import chat_template_jinja

    os.makedirs(save_path, exist_ok=True)
    stop_ids = tokenizer.stop_token_ids
    hf_tokenizer = tokenizer.hf_tokenizer
    model.config.use_cache = True
    model.config.eos_token_id = stop_ids[0]
    model.config._attn_implementation = "sdpa"
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_ids, pad_token_id=hf_tokenizer.pad_token_id
    )
    model.save_pretrained(save_path)
    hf_tokenizer.chat_template = hf_tokenizer.chat_template or chat_template_jinja(config)
    hf_tokenizer.save_pretrained(save_path)
    sp_model = os.path.join(model_path, "tokenizer.model")  # the slow reference our tokenizer loader uses
    if os.path.isfile(sp_model):
        shutil.copy(sp_model, os.path.join(save_path, "tokenizer.model"))


if __name__ == "__main__":
    main()
