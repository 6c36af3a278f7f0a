"""A process pool in which no single item can stall or sink the whole run.

`multiprocessing.Pool` cannot take back a task: a worker stuck in one input
(a regex gone quadratic, a C parser spinning) holds its slot forever, and a
worker that dies takes its tasks with it. Here every worker holds a few items
at a time; the parent knows which item each worker is on and since when. A
worker past the per-item deadline is killed and replaced, its item answered
with `timed_out`, the items it had not started handed to others; a worker that
dies is replaced the same way, its item answered with `crashed`. Results come
back in input order, so the output does not depend on the number of workers.

    for result in map_with_deadline(clean_one, paths, num_workers=2, timeout=60,
                                    timed_out=(None, "timeout"), crashed=(None, "worker_crashed")):
        ...

Workers are forked: they start in milliseconds with everything imported, and
the parent must hold no threads then (the caller's progress bar must not start
a monitor thread).
"""

from __future__ import annotations

import collections
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import wait
from typing import Any

# Items queued per worker: enough that a worker never waits for the parent between items.
ITEMS_IN_FLIGHT_PER_WORKER = 4
POOL_CONTEXT = "fork" if sys.platform == "linux" else "spawn"


class _Worker:
    """One worker process, the connection to it, and the items it holds (the first is in progress)."""

    def __init__(self, context, function, initializer, initargs):
        self.connection, child_connection = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child_connection, function, initializer, initargs), daemon=True
        )
        self.process.start()
        child_connection.close()
        self.held: collections.deque[int] = collections.deque()
        self.deadline = float("inf")

    def give(self, index: int, item: Any, timeout: float) -> None:
        if not self.held:
            self.deadline = time.monotonic() + timeout
        self.held.append(index)
        self.connection.send((index, item))

    def finished_one(self, timeout: float) -> int:
        index = self.held.popleft()
        self.deadline = time.monotonic() + timeout if self.held else float("inf")
        return index

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.connection.send(None)
            except OSError:
                self.process.kill()
        self.process.join(timeout=None if kill else 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def _serve(connection, function, initializer, initargs):
    """Worker loop: answer `(index, item)` with `(index, function(item))` until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            task = connection.recv()
        except EOFError:
            return
        if task is None:
            return
        index, item = task
        connection.send((index, function(item)))


def map_with_deadline(
    function: Callable[[Any], Any],
    items: Sequence[Any],
    num_workers: int,
    timeout: float,
    timed_out: Any,
    crashed: Any,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator[Any]:
    """Yield `function(item)` for every item, in order; `timed_out` / `crashed` stand in for items that failed so.

    `function` must be importable by reference under spawn (a module-level function).
    """
    items = list(items)
    if not items:
        return
    context = multiprocessing.get_context(POOL_CONTEXT)
    pending = collections.deque(range(len(items)))
    results: dict[int, Any] = {}
    next_to_yield = 0

    def new_worker() -> _Worker:
        return _Worker(context, function, initializer, initargs)

    def top_up(worker: _Worker) -> None:
        while pending and len(worker.held) < ITEMS_IN_FLIGHT_PER_WORKER:
            index = pending.popleft()
            worker.give(index, items[index], timeout)

    def replace(worker: _Worker, answer: Any) -> _Worker:
        """Kill `worker`, answer its current item, requeue the items it had not started."""
        worker.stop(kill=True)
        results[worker.held.popleft()] = answer
        pending.extendleft(reversed(worker.held))
        replacement = new_worker()
        top_up(replacement)
        return replacement

    workers = [new_worker() for _ in range(max(1, min(num_workers, len(items))))]
    try:
        for worker in workers:
            top_up(worker)
        while next_to_yield < len(items):
            busy = [worker for worker in workers if worker.held]
            wait_for = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
            ready = set(wait([worker.connection for worker in busy], timeout=wait_for))
            for position, worker in enumerate(workers):
                if not worker.held:
                    continue
                if worker.connection in ready:
                    try:
                        index, result = worker.connection.recv()
                    except (EOFError, OSError):  # the worker died (killed, out of memory, a crash in C)
                        workers[position] = replace(worker, crashed)
                        continue
                    worker.finished_one(timeout)
                    results[index] = result
                    top_up(worker)
                elif time.monotonic() >= worker.deadline:
                    workers[position] = replace(worker, timed_out)
            while next_to_yield in results:
                yield results.pop(next_to_yield)
                next_to_yield += 1
    finally:
        for worker in workers:
            worker.stop(kill=next_to_yield < len(items))
