"""Run `clean_sharegpt`'s per-item work as Ray tasks on a cluster (`--ray_address auto|HOST:PORT|local`).

Items go out in chunks (one task per chunk, so task overhead stays small beside the
work) and results come back in input order, so the output equals the local pool's.
The per-page deadline holds here too: a chunk not back within `timeout x its length`
is cancelled (its worker killed) and its items are run again one task each, with
`timeout` each; an item over it is answered `timed_out`, an item whose task died
`crashed`. Every node needs `ochat` installed (or the repository on `PYTHONPATH`).

`local` starts a private local cluster for this run (what the tests use);
`auto` joins the cluster `ray start` made on this machine; `HOST:PORT` a remote head.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHUNK_SIZE = 32
CHUNKS_IN_FLIGHT = 64  # bounds what is queued on the cluster (and held here) at any time

_remote_function = None
_warned = False


def warn_once(error):
    """Say once per run why tasks fail (the report can only say `worker_crashed`)."""
    global _warned
    if not _warned:
        _warned = True
        lines = [line for line in str(error).splitlines() if line.strip()]
        print(f"warning: a Ray task failed: {lines[-1] if lines else type(error).__name__}", file=sys.stderr)


def connect(address, num_cpus=None):
    """Join (or, for `local`, start with `num_cpus`) a Ray cluster once per process; a running one is reused."""
    import ray

    if ray.is_initialized():
        return
    package_root = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    options = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": python_path}})
    if address == "local":
        ray.init(num_cpus=num_cpus, **options)
    else:
        ray.init(address=address, **options)


def run_chunk(function, items, initializer, initargs):
    if initializer is not None:
        initializer(*initargs)
    return [function(item) for item in items]


def map_with_ray(function, items, timeout, timed_out, crashed, initializer=None, initargs=()):
    """Yield `function(item)` for every item in order, computed in Ray tasks; see the module docstring."""
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    global _remote_function
    if _remote_function is None:
        _remote_function = ray.remote(run_chunk)
    items = list(items)
    chunks = [items[start : start + CHUNK_SIZE] for start in range(0, len(items), CHUNK_SIZE)]
    submitted = []

    def submit(chunk):
        return _remote_function.options(max_retries=0).remote(function, chunk, initializer, initargs)

    for position, chunk in enumerate(chunks):
        while len(submitted) < min(len(chunks), position + CHUNKS_IN_FLIGHT):
            submitted.append(submit(chunks[len(submitted)]))
        future, submitted[position] = submitted[position], None
        try:
            results = ray.get(future, timeout=timeout * len(chunk))
        except GetTimeoutError:
            ray.cancel(future, force=True)
            results = None
        except RayError as error:
            warn_once(error)
            results = None
        if results is not None:
            yield from results
            continue
        for item in chunk:  # the chunk failed as a whole: find the item(s) at fault one by one
            single = submit([item])
            try:
                yield ray.get(single, timeout=timeout)[0]
            except GetTimeoutError:
                ray.cancel(single, force=True)
                yield timed_out
            except RayError as error:
                warn_once(error)
                yield crashed
