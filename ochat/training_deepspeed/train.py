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

Batching (see `ochat.training_deepspeed.batch_plan`): `--length_grouping` puts
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

import sys
import time

from ochat.training_deepspeed.arguments import parse_args
from ochat.training_deepspeed.batch_plan import plan_epoch
from ochat.training_deepspeed.checkpoint import load_latest_checkpoint, save_checkpoint
from ochat.training_deepspeed.data import DataError, supervised_target_count
from ochat.training_deepspeed.deepspeed_settings import TrainingSetupError
from ochat.training_deepspeed.distributed import Ranks, start_ranks
from ochat.training_deepspeed.final_model import gather_final_model, save_final_model
from ochat.training_deepspeed.loss import deepspeed_averaging_undone
from ochat.training_deepspeed.model_setup import build_engine, build_model
from ochat.training_deepspeed.plan import warn_if_it_will_not_fit
from ochat.training_deepspeed.preflight import Setup, prepare
from ochat.training_deepspeed.run_metrics import RunMetrics, peak_memory_bytes, step_record


def main(argv=None):
    args = parse_args(argv, description=__doc__)
    try:
        setup = prepare(args)
    except (TrainingSetupError, DataError) as error:
        print(f"ochat.training_deepspeed.train: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)

    ranks = start_ranks(setup.on_cuda, args.collective_timeout, args.seed, args.local_rank)
    bf16 = setup.deepspeed_config["bf16"]["enabled"]
    log_run_settings(args, setup, bf16, ranks)

    runtime_memory = peak_memory_bytes(setup.on_cuda)  # before the model: interpreter, libraries, data
    model = build_model(args, setup, bf16, ranks.device, ranks.log)
    engine, lr_scheduler = build_engine(args, setup, model, ranks.log)
    trainer = Trainer(args, setup, engine, lr_scheduler, ranks, runtime_memory)
    trainer.restore()
    trainer.train()
    final_model = gather_final_model(engine, args, setup, bf16, ranks.rank)
    ranks.watchdog.stop()  # the last collective is behind us; rank 0 saves alone while the others exit
    if ranks.rank == 0:
        save_final_model(final_model, args, setup, ranks.log)
    trainer.close()


def log_run_settings(args, setup: Setup, bf16: bool, ranks: Ranks) -> None:
    """Devices, data, batch arithmetic and (rank 0) the memory plan, before the model loads."""
    log, world_size, ds_config = ranks.log, ranks.world_size, setup.deepspeed_config
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
    if ranks.rank == 0:
        warn_if_it_will_not_fit(args, setup, bf16, world_size, log)


class Trainer:
    """The optimizer-step loop: batch plan, weighted loss, logging, evaluation and checkpoints."""

    def __init__(self, args, setup: Setup, engine, lr_scheduler, ranks: Ranks, runtime_memory: float):
        self.args, self.setup, self.engine, self.lr_scheduler = args, setup, engine, lr_scheduler
        self.device, self.rank, self.world_size, self.log = ranks.device, ranks.rank, ranks.world_size, ranks.log
        self.accumulation = setup.deepspeed_config["gradient_accumulation_steps"]
        self.micro_batch_size = setup.deepspeed_config["train_micro_batch_size_per_gpu"]
        self.global_batch = setup.deepspeed_config["train_batch_size"]
        self.grouping = "packing" if args.packing else "length" if args.length_grouping else "none"
        self.lengths = [len(sample.token_ids) for sample in setup.train_samples]
        self.supervised = [supervised_target_count(sample.supervise_mask) for sample in setup.train_samples]
        self.pad_token_id = setup.tokenizer.hf_tokenizer.pad_token_id or 0
        self.global_step = 0
        # resident before the model loaded; peak_memory_gb minus this is the run's own
        self.runtime_memory = runtime_memory
        self.metrics = RunMetrics(args.save_path, self.rank, self.log)

    def restore(self) -> None:
        """On --resume: the latest checkpoint's weights, optimizer and step, and the metrics up to that step."""
        if not self.args.resume:
            return
        self.global_step = load_latest_checkpoint(self.engine, self.args, self.setup.run_signature, self.log)
        if self.rank == 0:
            self.metrics.drop_after(self.global_step)

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
                    save_checkpoint(self.engine, self.args, self.global_step, setup.run_signature, self.rank, self.log)
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
        undo_averaging = deepspeed_averaging_undone(self.accumulation, self.world_size)
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
        record = step_record(
            self.global_step,
            epoch,
            step_loss.item(),
            lr,
            grad_norm,
            step_plan,
            elapsed,
            self.setup.on_cuda,
            self.runtime_memory,
        )
        self.metrics.write(record)
        return record

    def evaluate(self, epoch: int) -> None:
        """Eval loss over the whole eval set, with the training loss reduction, summed across ranks."""
        import torch.distributed as dist

        from ochat.training_deepspeed.steps import dataset_loss

        samples = self.setup.eval_samples
        if not samples or not any(supervised_target_count(sample.supervise_mask) for sample in samples):
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
        self.metrics.write(
            {"step": self.global_step, "epoch": epoch, "eval_loss": total.item(), "eval_samples": len(samples)}
        )
        self.log(f"epoch {epoch} step {self.global_step}: eval loss {total.item():.4f} ({len(samples)} samples)")

    def close(self) -> None:
        self.metrics.close()


if __name__ == "__main__":
    main()
