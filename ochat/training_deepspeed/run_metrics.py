"""Run metrics: one JSON line per optimizer step and per evaluation in SAVE_PATH/metrics.jsonl, the same
scalars in TensorBoard when it is installed (rank 0 writes; other ranks hold a closed book).

    {"step": 3, "epoch": 0, "loss": 6.91, "lr": 1.9e-05, "grad_norm": 1.2, "tokens_per_s": 5123.0, ...}
    {"step": 10, "epoch": 0, "eval_loss": 6.52, "eval_samples": 20}
"""

from __future__ import annotations

import json
import os

METRICS_FILE = "metrics.jsonl"


class RunMetrics:
    """Rank 0's metrics.jsonl (appended to, so a resumed run continues it) and TensorBoard writer."""

    def __init__(self, save_path: str, rank: int, log):
        self.path = os.path.join(save_path, METRICS_FILE)
        self.log = log
        self.metrics = None
        self.tensorboard = None
        if rank == 0:
            os.makedirs(save_path, exist_ok=True)
            self.metrics = open(self.path, "a", encoding="utf-8")
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(os.path.join(save_path, "tensorboard"))
            except ImportError:
                log("tensorboard is not installed: metrics go to metrics.jsonl only")

    def drop_after(self, step: int) -> None:
        """A killed run may have logged steps after its last checkpoint; the resumed run logs them again."""
        from ochat.utils.files import read_jsonl, write_jsonl_atomic

        self.metrics.close()
        records = read_jsonl(self.path)
        kept = [record for record in records if record.get("step", 0) <= step]
        if len(kept) != len(records):
            write_jsonl_atomic(self.path, kept)
            self.log(f"metrics.jsonl: dropped {len(records) - len(kept)} record(s) logged after step {step}")
        self.metrics = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        if self.metrics is None:
            return
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        if self.tensorboard is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def step_record(
    step: int,
    epoch: int,
    loss: float,
    lr: float,
    grad_norm,
    step_plan,
    elapsed: float,
    on_cuda: bool,
    runtime_memory: float,
) -> dict:
    """One optimizer step's line: loss and schedule, throughput from the step plan's token counts, memory."""
    return {
        "step": step,
        "epoch": epoch,
        "loss": loss,
        "lr": lr,
        "grad_norm": float(grad_norm) if grad_norm is not None else None,
        "samples": sum(len(m) for rank_batches in step_plan.micro_batches for m in rank_batches),
        "tokens": step_plan.tokens,
        "supervised_tokens": step_plan.supervised_tokens,
        "tokens_per_s": step_plan.tokens / elapsed,
        "supervised_tokens_per_s": step_plan.supervised_tokens / elapsed,
        "padding_ratio": 1 - step_plan.tokens / step_plan.padded_tokens,
        "step_seconds": elapsed,
        "peak_memory_gb": peak_memory_bytes(on_cuda) / 1e9,
        "runtime_memory_gb": runtime_memory / 1e9,
    }


def peak_memory_bytes(on_cuda: bool) -> float:
    """This rank's peak so far: CUDA memory allocated by torch, or the process's peak resident set on a CPU."""
    import torch

    if on_cuda:
        return float(torch.cuda.max_memory_allocated())
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
