"""Fine-tune a registry model on tokenized conversations with DeepSpeed (ZeRO-2).

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
weights as an uninterrupted one. Settings that would change the schedule or the
order (batch size, ranks, grouping, seed, ...) are refused on resume.
`--max_steps` ends the run early; the cosine schedule then ends there too.

Outputs in --save_path:

    config.json, model.safetensors, generation_config.json,
    tokenizer files (tokenizer.model, chat template)   the fine-tuned model, Hugging Face format
    metrics.jsonl      one line per optimizer step and per evaluation, e.g.
                       {"step": 3, "epoch": 0, "loss": 6.91, "lr": 1.9e-05, "grad_norm": 1.2,
                        "tokens_per_s": 5123.0, "supervised_tokens_per_s": 2311.4, "padding_ratio": 0.04}
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
from dataclasses import dataclass

from ochat.training_deepspeed.data import (
    LOSS_REDUCTIONS,
    DataError,
    load_samples,
    plan_epoch,
    plan_step,
    resolve_data_files,
    steps_per_epoch,
    supervised_target_count,
)
from ochat.utils.cli import ArgumentParser

DEFAULT_DEEPSPEED_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepspeed_config.json")
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"


class TrainingSetupError(ValueError):
    """Bad arguments or inputs, found before any process group exists."""


def parse_args(argv=None) -> argparse.Namespace:
    import deepspeed

    parser = ArgumentParser(
        prog="deepspeed --module ochat.training_deepspeed.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model_type", required=True, help="registry model type, e.g. openchat, openchat_8192, opencoder")
    parser.add_argument("--model_path", required=True, help="base model folder with the <|end_of_turn|> token added")
    parser.add_argument("--data_path", required=True, help="folder holding MODEL_TYPE.train.json (and .eval.json), or that file")
    parser.add_argument("--save_path", required=True, help="folder for the fine-tuned model, metrics and checkpoints")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training set (default 5)")
    batching = parser.add_mutually_exclusive_group()
    batching.add_argument("--length_grouping", action="store_true", help="micro-batches of similar-length samples")
    batching.add_argument("--packing", action="store_true", help="padding-free rows of several samples each")
    parser.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default 2e-5)")
    parser.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    parser.add_argument("--warmup_ratio", type=float, default=0.03, help="share of steps spent warming up (default 0.03)")
    parser.add_argument("--loss_reduction", choices=LOSS_REDUCTIONS, default="token",
                        help="token: mean over all supervised tokens of the global batch (default); "
                             "per_sample: mean of each sample's mean")
    parser.add_argument("--train_batch_size", type=int, default=None, help="global batch in samples (overrides the config)")
    parser.add_argument("--micro_batch_size", type=int, default=None, help="samples per rank per micro-batch (overrides the config)")
    parser.add_argument("--max_steps", type=int, default=None, help="stop after this many optimizer steps (the schedule ends there too)")
    parser.add_argument("--save_every", type=int, default=0, help="write a DeepSpeed checkpoint every N optimizer steps (0: never)")
    parser.add_argument("--keep_checkpoints", type=int, default=2, help="DeepSpeed checkpoints kept on disk (default 2)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in SAVE_PATH/checkpoints")
    parser.add_argument("--seed", type=int, default=42, help="seed of the data order (default 42)")
    parser.add_argument("--no_gradient_checkpointing", action="store_true", help="keep activations instead of recomputing them")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)), help="set by the launcher")
    parser = deepspeed.add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.deepspeed_config is None:
        args.deepspeed_config = DEFAULT_DEEPSPEED_CONFIG
    for name in ("epochs", "train_batch_size", "micro_batch_size", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
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


def resolve_deepspeed_config(path: str, args, world_size: int, on_cuda: bool) -> dict:
    """Read the DeepSpeed config and fill in batch sizes and precision for this world size and device."""
    try:
        with open(path, encoding="utf-8") as handle:
            ds_config = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise TrainingSetupError(f"cannot read the DeepSpeed config {path!r}: {error}") from None
    for key in ("optimizer", "scheduler"):
        if key in ds_config:
            raise TrainingSetupError(f"{path}: remove the {key!r} section; AdamW and the cosine schedule are set by flags (--lr ...)")
    if int(ds_config.get("zero_optimization", {}).get("stage", 0)) > 2:
        raise TrainingSetupError(f"{path}: ZeRO stage 3 is not supported; evaluation and the final save read full "
                                 "parameters on each rank (use stage 2)")
    if args.train_batch_size is not None:
        ds_config["train_batch_size"] = args.train_batch_size
    if args.micro_batch_size is not None:
        ds_config["train_micro_batch_size_per_gpu"] = args.micro_batch_size
    global_batch = ds_config.get("train_batch_size", "auto")
    micro = ds_config.get("train_micro_batch_size_per_gpu", "auto")
    accumulation = ds_config.get("gradient_accumulation_steps", "auto")
    micro = 1 if micro == "auto" else int(micro)
    if global_batch == "auto":
        accumulation = 1 if accumulation == "auto" else int(accumulation)
        global_batch = micro * accumulation * world_size
    global_batch = int(global_batch)
    if accumulation == "auto":
        if global_batch % (micro * world_size):
            raise TrainingSetupError(
                f"global batch {global_batch} is not a multiple of micro-batch {micro} x {world_size} ranks; "
                "change train_batch_size or train_micro_batch_size_per_gpu (or --train_batch_size / --micro_batch_size)"
            )
        accumulation = global_batch // (micro * world_size)
    accumulation = int(accumulation)
    if micro * accumulation * world_size != global_batch:
        raise TrainingSetupError(
            f"train_batch_size {global_batch} != micro-batch {micro} x accumulation {accumulation} x {world_size} ranks"
        )
    ds_config.update(train_batch_size=global_batch, train_micro_batch_size_per_gpu=micro,
                     gradient_accumulation_steps=accumulation)
    bf16 = dict(ds_config.get("bf16", {}))
    if bf16.get("enabled", "auto") == "auto":
        bf16["enabled"] = on_cuda
    ds_config["bf16"] = bf16
    if ds_config.get("fp16", {}).get("enabled") == "auto":
        ds_config["fp16"]["enabled"] = False
    if ds_config.get("gradient_clipping") == "auto":
        ds_config["gradient_clipping"] = 1.0
    return ds_config


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
    try:
        hf_config = load_model_config(config, args.model_path)
        tokenizer = load_tokenizer(config, args.model_path)
        tokenizer.eot_token_id  # raises with the add_eot_token command when the token is missing
    except (FileNotFoundError, ValueError, OSError) as error:
        raise TrainingSetupError(str(error)) from None
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
    return Setup(config, tokenizer, train_samples, eval_samples, train_file, eval_file, ds_config,
                 world_size, on_cuda, per_epoch, total_steps)


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

    backend = "nccl" if setup.on_cuda else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    torch.manual_seed(args.seed)
    rank, world_size = dist.get_rank(), dist.get_world_size()
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
    log(f"train {setup.train_file}: {len(setup.train_samples)} samples; "
        f"eval {setup.eval_file or '(none)'}: {len(setup.eval_samples)} samples")
    log(f"global batch {ds_config['train_batch_size']} = micro-batch {ds_config['train_micro_batch_size_per_gpu']} x "
        f"accumulation {ds_config['gradient_accumulation_steps']} x {world_size} ranks; "
        f"{setup.steps_per_epoch} steps per epoch, {setup.total_steps} steps in all; loss reduction {args.loss_reduction}")

    engine, lr_scheduler = build_engine(args, setup, bf16, device, log)
    trainer = Trainer(args, setup, engine, lr_scheduler, device, rank, world_size, log)
    trainer.restore()
    trainer.train()
    if rank == 0:
        save_hf_checkpoint(engine.module, setup.config, setup.tokenizer, args.model_path, args.save_path)
        log(f"fine-tuned model written to {args.save_path}")
    dist.barrier()
    trainer.close()


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
    model = load_model(setup.config, args.model_path, dtype=torch.bfloat16 if bf16 else torch.float32,
                       attn_implementation=attn_implementation)
    model.config.use_cache = False
    if not args.no_gradient_checkpointing:
        enable_activation_checkpointing(model)
    log(f"model {args.model_path} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), "
        f"attention {attn_implementation}, gradient checkpointing {'off' if args.no_gradient_checkpointing else 'on'}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                  fused=setup.on_cuda or None)
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
        """What must not change between a run and its resume for the schedule and data order to be the same."""
        return {"train_samples": len(self.setup.train_samples), "train_batch_size": self.global_batch,
                "world_size": self.world_size, "gradient_accumulation_steps": self.accumulation,
                "grouping": self.grouping, "seed": self.args.seed, "total_steps": self.setup.total_steps,
                "loss_reduction": self.args.loss_reduction}

    def restore(self) -> None:
        if not self.args.resume:
            return
        if not os.path.isfile(os.path.join(self.checkpoint_dir, "latest")):
            self.log(f"--resume: no checkpoint in {self.checkpoint_dir} yet, starting from the beginning")
            return
        path, client_state = self.engine.load_checkpoint(self.checkpoint_dir)
        if path is None:
            raise RuntimeError(f"could not load the latest checkpoint from {self.checkpoint_dir}")
        saved = client_state.get("run_signature", {})
        changed = {key: (saved.get(key), value) for key, value in self.run_signature().items() if saved.get(key) != value}
        if changed:
            details = ", ".join(f"{key}: checkpoint {old!r}, now {new!r}" for key, (old, new) in changed.items())
            raise RuntimeError(f"cannot resume {path} with different settings ({details})")
        self.global_step = client_state["global_step"]
        self.log(f"resumed from {path} at optimizer step {self.global_step}")

    def train(self) -> None:
        from tqdm import tqdm

        setup = self.setup
        progress = tqdm(total=setup.total_steps, initial=self.global_step, desc="train",
                        disable=self.rank != 0, dynamic_ncols=True)
        while self.global_step < setup.total_steps:
            epoch, step_in_epoch = divmod(self.global_step, setup.steps_per_epoch)
            plan = plan_epoch(self.lengths, self.supervised, epoch, self.args.seed, self.global_batch,
                              self.grouping, self.world_size, self.accumulation, self.micro_batch_size)
            for step_plan in plan[step_in_epoch:]:
                record = self.optimizer_step(step_plan, epoch)
                progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                                     tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
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

        from ochat.training_deepspeed.data import collate
        from ochat.training_deepspeed.modeling import weighted_loss

        engine = self.engine
        engine.train()
        lr = self.lr_scheduler.get_last_lr()[0]
        started = time.perf_counter()
        step_loss = torch.zeros((), device=self.device, dtype=torch.float32)
        # DeepSpeed divides each micro-batch loss by the accumulation steps and averages gradients over
        # ranks; the weights already normalise over the whole global batch, so undo both.
        undo_averaging = self.accumulation * self.world_size
        for indices in step_plan.micro_batches[self.rank]:
            batch = collate(self.setup.train_samples, indices, step_plan, self.pad_token_id,
                            packing=self.grouping == "packing", loss_reduction=self.args.loss_reduction)
            loss_share = weighted_loss(engine, batch, self.device)
            engine.backward(loss_share * undo_averaging)
            engine.step()
            step_loss += loss_share.detach()
        dist.all_reduce(step_loss)
        elapsed = time.perf_counter() - started
        self.global_step += 1
        grad_norm = engine.get_global_grad_norm()
        record = {
            "step": self.global_step, "epoch": epoch, "loss": step_loss.item(), "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "samples": sum(len(m) for rank_batches in step_plan.micro_batches for m in rank_batches),
            "tokens": step_plan.tokens, "supervised_tokens": step_plan.supervised_tokens,
            "tokens_per_s": step_plan.tokens / elapsed,
            "supervised_tokens_per_s": step_plan.supervised_tokens / elapsed,
            "padding_ratio": 1 - step_plan.tokens / step_plan.padded_tokens,
            "step_seconds": elapsed,
        }
        self.write_metrics(record)
        return record

    def evaluate(self, epoch: int) -> None:
        """Eval loss over the whole eval set, with the training loss reduction, summed across ranks."""
        import torch
        import torch.distributed as dist

        from ochat.training_deepspeed.data import collate
        from ochat.training_deepspeed.modeling import weighted_loss

        samples = self.setup.eval_samples
        if not samples or not any(supervised_target_count(mask) for _, mask in samples):
            return
        lengths = [len(ids) for ids, _ in samples]
        supervised = [supervised_target_count(mask) for _, mask in samples]
        slots = -(-len(samples) // (self.micro_batch_size * self.world_size))
        grouping = "packing" if self.grouping == "packing" else "length"
        plan = plan_step(list(range(len(samples))), lengths, supervised, grouping,
                         self.world_size, slots, self.micro_batch_size)
        model = self.engine.module
        model.eval()
        total = torch.zeros((), device=self.device, dtype=torch.float32)
        with torch.no_grad():
            for indices in plan.micro_batches[self.rank]:
                if indices:
                    batch = collate(samples, indices, plan, self.pad_token_id, packing=grouping == "packing",
                                    loss_reduction=self.args.loss_reduction)
                    total += weighted_loss(model, batch, self.device)
        dist.all_reduce(total)
        model.train()
        self.write_metrics({"step": self.global_step, "epoch": epoch, "eval_loss": total.item(),
                            "eval_samples": len(samples)})
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
        self.engine.save_checkpoint(self.checkpoint_dir, tag=tag, client_state={
            "global_step": self.global_step, "run_signature": self.run_signature()})
        dist.barrier()
        if self.rank == 0:
            steps = sorted(int(name[len("step_"):]) for name in os.listdir(self.checkpoint_dir)
                           if name.startswith("step_") and name[len("step_"):].isdigit())
            for old in steps[:-self.args.keep_checkpoints] if self.args.keep_checkpoints > 0 else []:
                shutil.rmtree(os.path.join(self.checkpoint_dir, f"step_{old}"), ignore_errors=True)
        self.log(f"checkpoint {tag} written to {self.checkpoint_dir}")

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


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
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_ids,
                                               pad_token_id=hf_tokenizer.pad_token_id)
    model.save_pretrained(save_path)
    hf_tokenizer.chat_template = hf_tokenizer.chat_template or chat_template_jinja(config)
    hf_tokenizer.save_pretrained(save_path)
    sp_model = os.path.join(model_path, "tokenizer.model")  # the slow reference our tokenizer loader uses
    if os.path.isfile(sp_model):
        shutil.copy(sp_model, os.path.join(save_path, "tokenizer.model"))

if __name__ == "__main__":
    main()
