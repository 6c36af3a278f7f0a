"""Model replicas as Ray actors: start-up, least-loaded routing, engine events back to their requests, healing.

Each replica is one `EngineWorker` actor (`ochat.serving.replica_worker`) holding the
model and a continuous-batching engine; the worker module, and with it torch, is
imported only when the replicas start. One poller task per replica asks its
actor for every event since the last poll, so one Ray round trip serves all
sequences of a decode step.

Healing: Ray restarts an actor whose process died (killed, out of memory, a
CUDA error) up to `max_restarts` times. While it is down its requests in flight
end with a "replica_unavailable" `EngineError` (the HTTP side answers 503), it takes no new ones, and
its poller waits until the restarted actor answers `ready()`; then it serves
again. When no replica is left and none can come back, `on_lost_all` is called
(the server then exits non-zero, so a supervisor can restart it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Optional

# A local cluster talks over loopback only (Ray otherwise binds the machine's network address, to be reachable by
# other nodes): the front and the replicas share this machine. Ray reads this when it is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray  # noqa: E402
from ray.exceptions import ActorDiedError, RayActorError  # noqa: E402

from ochat.serving.engine_types import EngineError, FinishReason, NoReplica, ReplicaLimits, TokenEvent  # noqa: E402
from ochat.serving.metrics import ServerMetrics  # noqa: E402

logger = logging.getLogger("ochat.serving")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPLICA_LOST = "the model replica stopped; it is being restarted"
METRICS_TIMEOUT = 2.0  # seconds a scrape waits for a replica's engine figures


def start_ray(ray_address: Optional[str], num_cpus: Optional[int], num_replicas: int) -> None:
    """Join a running cluster, or start a local one that talks over loopback only."""
    pythonpath = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath}}
    if ray_address:
        ray.init(address=ray_address, runtime_env=runtime_env, log_to_driver=True)
        return
    # Ray starts workers at niceness 15; the replica is the server's main work, so it runs at normal priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        num_cpus=num_cpus or max(os.cpu_count() or 1, num_replicas),
        include_dashboard=False,
        runtime_env=runtime_env,
        object_store_memory=128 << 20,
    )


def start_replicas(
    model_type: str,
    model_path: str,
    num_replicas: int,
    replica_cpus: float,
    device: str,
    max_restarts: int,
    worker_options: dict,
) -> tuple[list, list[ReplicaLimits]]:
    """One engine actor per replica; waits until all loaded the model. Returns the actors and their `ready()`."""
    from ochat.serving.replica_worker import engine_actor_class

    use_gpu = device == "cuda" or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    actor_class = engine_actor_class(num_cpus=replica_cpus, num_gpus=1 if use_gpu else 0)
    actors = [
        actor_class.options(max_restarts=max_restarts, max_task_retries=0).remote(
            model_type, os.path.abspath(model_path), device="cuda" if use_gpu else "cpu", **worker_options
        )
        for _ in range(num_replicas)
    ]
    return actors, ray.get([actor.ready.remote() for actor in actors])


class ReplicaPool:
    """Routes sequences to replicas and engine events back to the requests that wait for them."""

    def __init__(
        self,
        actors: list,
        limits: list[ReplicaLimits],
        capacity_per_replica: int,
        metrics: ServerMetrics,
        max_restarts: int = 0,
        on_lost_all: Callable[[], None] = lambda: None,
    ):
        self.actors = actors
        self.limits = limits  # each replica's `ready()`: device, KV budget, context, batch size
        self.capacity_per_replica = capacity_per_replica
        self.metrics = metrics
        self.max_restarts = max_restarts
        self.on_lost_all = on_lost_all
        self.lost_all = False
        self.load = [0] * len(actors)
        self.alive = [True] * len(actors)
        self.restarts = [0] * len(actors)
        self.routes: dict[str, asyncio.Queue] = {}
        self.route_replica: dict[str, int] = {}
        self.pollers: list[asyncio.Task] = []

    def start(self) -> None:
        self.pollers = [asyncio.create_task(self.serve_replica(index)) for index in range(len(self.actors))]

    async def stop(self) -> None:
        for task in self.pollers:
            task.cancel()
        await asyncio.gather(*self.pollers, return_exceptions=True)
        for actor in self.actors:
            ray.kill(actor)

    def reserve(self, sequences: int) -> Optional[int]:
        """The least-loaded live replica with room for `sequences` more, or None when all are full; `NoReplica`
        when none is alive."""
        candidates = [i for i in range(len(self.actors)) if self.alive[i]]
        if not candidates:
            raise NoReplica()
        replica = min(candidates, key=lambda i: self.load[i])
        if self.load[replica] + sequences > self.capacity_per_replica:
            return None
        self.load[replica] += sequences
        return replica

    def release(self, replica: int, sequences: int) -> None:
        self.load[replica] -= sequences

    def submit(self, replica: int, requests: list[tuple], queue: asyncio.Queue) -> None:
        for seq_id, _prompt, _params in requests:
            self.routes[seq_id] = queue
            self.route_replica[seq_id] = replica
        self.actors[replica].submit_many.remote(requests)

    def forget(self, seq_ids: list[str], abort: bool) -> None:
        replicas = {self.route_replica.pop(seq_id, None) for seq_id in seq_ids}
        for seq_id in seq_ids:
            self.routes.pop(seq_id, None)
        if abort:
            for replica in replicas - {None}:
                if self.alive[replica]:
                    self.actors[replica].abort.remote(seq_ids)

    async def refresh_metrics(self) -> None:
        """Fetch every live replica's engine figures for a scrape; a replica that does not answer is left out."""
        live = [i for i in range(len(self.actors)) if self.alive[i]]
        answers = await asyncio.gather(
            *(asyncio.wait_for(self.actors[i].metrics.remote(), METRICS_TIMEOUT) for i in live), return_exceptions=True
        )
        self.metrics.engine_snapshots.clear()
        for replica, answer in zip(live, answers):
            if isinstance(answer, dict):
                self.metrics.engine_snapshots[replica] = answer

    async def serve_replica(self, replica: int) -> None:
        """Poll one replica for events; when its actor dies, fail its requests and wait for Ray's restart."""
        while True:
            await self.poll_until_failure(replica)
            self.alive[replica] = False
            for seq_id, owner in list(self.route_replica.items()):
                if owner == replica and seq_id in self.routes:
                    lost = EngineError(REPLICA_LOST, "replica_unavailable")
                    self.routes[seq_id].put_nowait(TokenEvent(seq_id, None, FinishReason.ERROR, error=lost))
            if not await self.wait_restarted(replica):
                logger.error(
                    "replica %d is gone for good (restarts used: %d of %d)",
                    replica,
                    self.restarts[replica],
                    self.max_restarts,
                )
                if not any(self.alive) and not self.lost_all:
                    self.lost_all = True
                    self.on_lost_all()
                return
            self.restarts[replica] += 1
            self.metrics.replica_restarts.labels(str(replica)).inc()
            self.alive[replica] = True
            logger.info(
                "replica %d serves again (restart %d of %d)", replica, self.restarts[replica], self.max_restarts
            )

    async def poll_until_failure(self, replica: int) -> None:
        actor = self.actors[replica]
        while True:
            try:
                events = await actor.poll.remote()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.error("replica %d failed: %s", replica, error)
                return
            for event in events:
                queue = self.routes.get(event.seq_id)
                if queue is not None:
                    queue.put_nowait(event)

    async def wait_restarted(self, replica: int, timeout: float = 600, dead_for: float = 5) -> bool:
        """True once Ray's restarted actor answers `ready()` (it reloads the model); False when Ray reports it dead
        for `dead_for` seconds running (no restarts left) or it does not come back within `timeout`."""
        if self.max_restarts == 0:
            return False
        deadline, dead_since = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                self.limits[replica] = await asyncio.wait_for(self.actors[replica].ready.remote(), timeout)
                return True
            except ActorDiedError:
                dead_since = dead_since or time.monotonic()
                if time.monotonic() - dead_since > dead_for:
                    return False
            except RayActorError:  # unavailable: Ray is restarting it
                dead_since = None
            except asyncio.TimeoutError:
                return False
            await asyncio.sleep(0.5)
        return False


def describe_replica(index: int, limits: ReplicaLimits) -> str:
    """One start-up line per replica: device, weights, and the KV-cache budget."""
    return (
        f"replica {index} ready on {limits.device} ({limits.dtype}, batch {limits.max_batch_size}): "
        f"weights {limits.weights_gib:.3f} GiB, KV cache budget {limits.kv_cache_capacity_tokens} tokens "
        f"({limits.kv_cache_gib:.3f} GiB)"
    )
