"""Starting a run's ranks: the process group with its collective timeout, the heartbeats that name a rank that
stops answering (`watchdog`), each rank's device, and a log that only rank 0 prints.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta


@dataclass
class Ranks:
    """This process's place in the run."""

    rank: int
    world_size: int
    device: object  # torch.device
    watchdog: object  # RankWatchdog
    log: Callable[[str], None]


def start_ranks(on_cuda: bool, collective_timeout: float, seed: int, local_rank: int) -> Ranks:
    """Join the process group (nccl on GPUs, gloo on CPU ranks) and start this rank's heartbeat."""
    import deepspeed
    import torch
    import torch.distributed as dist

    from ochat.training_deepspeed.watchdog import RankWatchdog

    backend = "nccl" if on_cuda else "gloo"
    deepspeed.init_distributed(dist_backend=backend, timeout=timedelta(minutes=collective_timeout))
    torch.manual_seed(seed)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    release_cpu_allreduce_buffer(rank, world_size)
    # half the collective timeout, so a stopped rank is named before a collective times out without a name
    watchdog = RankWatchdog(rank, world_size, timeout_s=collective_timeout * 30)
    watchdog.start()
    log = rank_zero_logger(rank)
    device = torch.device("cuda", local_rank) if on_cuda else torch.device("cpu")
    if on_cuda:
        torch.cuda.set_device(device)
    return Ranks(rank, world_size, device, watchdog, log)


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


def rank_zero_logger(rank: int):
    def log(message: str) -> None:
        if rank == 0:
            from tqdm import tqdm

            tqdm.write(f"[train] {message}", file=sys.stderr)

    return log
