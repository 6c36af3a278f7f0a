"""Rank heartbeats: a rank that stops answering ends the run with its name, instead of a hang.

Every rank runs a thread that bumps a counter in the launcher's rendezvous
store (the TCPStore at MASTER_ADDR:MASTER_PORT) every few seconds, and checks
the others' counters. A rank whose counter has not moved for the timeout is
stopped (SIGSTOP, swapped out, a dead node); a rank that cannot reach the
store at all has lost rank 0, which hosts it. Either way the watching rank
prints which rank is stuck and exits non-zero; the DeepSpeed launcher then
ends the others. A stuck rank on the watcher's own machine is killed first:
a stopped process cannot act on the launcher's SIGTERM, which would otherwise
wait out its 30 s grace period before the run ends. A rank that is merely slow keeps beating, because the thread
runs beside the training loop. The collective timeout passed to
`init_distributed` covers the other case, a live rank stuck in a collective.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from datetime import timedelta

EXIT_CODE = 3
KEY_PREFIX = "ochat_heartbeat/"
PROCESS_KEY_PREFIX = "ochat_rank_process/"


class RankWatchdog:
    def __init__(self, rank: int, world_size: int, timeout_s: float, interval_s: float | None = None):
        self.rank, self.world_size, self.timeout_s = rank, world_size, timeout_s
        self.interval_s = interval_s or max(0.5, min(5.0, timeout_s / 6))
        self._stop = threading.Event()
        self._thread = None
        self._store = None

    def start(self) -> None:
        if self.world_size < 2 or "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            return
        self._thread = threading.Thread(target=self._run, name="ochat-rank-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _connect(self):
        import torch.distributed as dist

        return dist.TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            is_master=False,
            timeout=timedelta(seconds=max(self.interval_s * 2, 5)),
        )

    def _run(self) -> None:
        try:
            store = self._connect()
        except Exception:  # noqa: BLE001 - no store, no watchdog; the collective timeout still applies
            return
        try:
            store.set(f"{PROCESS_KEY_PREFIX}{self.rank}", f"{socket.gethostname()} {os.getpid()}")
        except Exception:  # noqa: BLE001 - without it a stuck rank is left to the launcher
            pass
        self._store = store
        beats = 0
        last_seen = {}  # rank -> (counter, monotonic time it last changed)
        unreachable_since = None
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            try:
                beats += 1
                store.set(f"{KEY_PREFIX}{self.rank}", str(beats))
                counters = {}
                for other in range(self.world_size):
                    if other != self.rank:
                        key = f"{KEY_PREFIX}{other}"
                        counters[other] = store.get(key).decode() if store.check([key]) else None
                unreachable_since = None
            except Exception:  # noqa: BLE001 - the store lives in rank 0: a timeout there means rank 0 is gone
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.timeout_s:
                    self._fail([0], "its rendezvous store does not answer", kill_local=False)
                continue
            for other, counter in counters.items():
                previous = last_seen.get(other)
                if previous is None or previous[0] != counter:
                    last_seen[other] = (counter, now)
            stuck = sorted(other for other, (_, since) in last_seen.items() if now - since > self.timeout_s)
            if stuck:
                self._fail(stuck, f"no heartbeat for {self.timeout_s:.0f} s")

    def _fail(self, ranks: list[int], why: str, kill_local: bool = True) -> None:
        names = ", ".join(str(rank) for rank in ranks)
        for rank in ranks if kill_local else ():
            self._kill_if_local(rank)
        print(
            f"ochat.training_deepspeed.train: error: rank {names} stopped answering ({why}); "
            f"rank {self.rank} ends the run (the launcher stops the others). "
            "Check that process or node (stopped, out of memory, swapping); --collective_timeout sets the wait",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_CODE)

    def _kill_if_local(self, rank: int) -> None:
        """SIGKILL a stuck rank that runs on this machine (its host and pid are in the store)."""
        try:
            key = f"{PROCESS_KEY_PREFIX}{rank}"
            host, pid = self._store.get(key).decode().split() if self._store.check([key]) else ("", "0")
            if host == socket.gethostname() and int(pid) > 0:
                os.kill(int(pid), signal.SIGKILL)
        except Exception:  # noqa: BLE001 - store gone or process already ended: the launcher cleans up
            pass
