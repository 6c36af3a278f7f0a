"""Model replicas as Ray actors: start-up, least-loaded routing, and engine events back to their requests.

Each replica is one `EngineWorker` actor (`ochat.serving.engine`) holding the
model and a continuous-batching engine. One poller task per replica asks its
actor for every event since the last poll, so one Ray round trip serves all
sequences of a decode step.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Optional

# A local cluster talks over loopback only (Ray otherwise binds the machine's network address, to be reachable by
# other nodes): the front and the replicas share this machine. Ray reads this when it is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray  # noqa: E402

from ochat.serving.engine import engine_actor_class  # noqa: E402
from ochat.serving.protocol import OpenAIError  # noqa: E402

logger = logging.getLogger("ochat.serving")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_ray(ray_address: Optional[str], num_cpus: Optional[int], num_replicas: int) -> None:
    """Join a running cluster, or start a local one that talks over loopback only."""
    pythonpath = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath}}
    if ray_address:
        ray.init(address=ray_address, runtime_env=runtime_env, log_to_driver=True)
        return
    # Ray starts workers at niceness 15; the replica is the server's main work, so it runs at normal priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=num_cpus or max(os.cpu_count() or 1, num_replicas), include_dashboard=False,
             runtime_env=runtime_env, object_store_memory=128 << 20)


def start_replicas(model_type: str, model_path: str, num_replicas: int, replica_cpus: float, device: str,
                   worker_options: dict) -> tuple[list, list[dict]]:
    """One engine actor per replica; waits until all loaded the model. Returns the actors and their `ready()`."""
    use_gpu = device == "cuda" or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    actor_class = engine_actor_class(num_cpus=replica_cpus, num_gpus=1 if use_gpu else 0)
    actors = [actor_class.remote(model_type, os.path.abspath(model_path), device="cuda" if use_gpu else "cpu",
                                 **worker_options)
              for _ in range(num_replicas)]
    return actors, ray.get([actor.ready.remote() for actor in actors])


class ReplicaPool:
    """Routes sequences to replicas and engine events back to the requests that wait for them."""

    def __init__(self, actors: list, limits: list[dict], capacity_per_replica: int):
        self.actors = actors
        self.limits = limits  # each replica's `ready()`: device, KV budget, context, batch size
        self.capacity_per_replica = capacity_per_replica
        self.load = [0] * len(actors)
        self.alive = [True] * len(actors)
        self.routes: dict[str, asyncio.Queue] = {}
        self.route_replica: dict[str, int] = {}
        self.pollers: list[asyncio.Task] = []

    def start(self) -> None:
        self.pollers = [asyncio.create_task(self.poll_replica(index)) for index in range(len(self.actors))]

    async def stop(self) -> None:
        for task in self.pollers:
            task.cancel()
        await asyncio.gather(*self.pollers, return_exceptions=True)
        for actor in self.actors:
            ray.kill(actor)

    def reserve(self, sequences: int) -> Optional[int]:
        """The least-loaded live replica with room for `sequences` more, or None when all are full."""
        candidates = [i for i in range(len(self.actors)) if self.alive[i]]
        if not candidates:
            raise OpenAIError(503, "no model replica is running", error_type="server_error", code="replica_unavailable")
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

    async def poll_replica(self, replica: int) -> None:
        actor = self.actors[replica]
        while True:
            try:
                events = await actor.poll.remote()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the actor died: fail its requests instead of leaving them hanging
                logger.error("replica %d failed: %s", replica, error)
                self.alive[replica] = False
                for seq_id, owner in list(self.route_replica.items()):
                    if owner == replica and seq_id in self.routes:
                        self.routes[seq_id].put_nowait((seq_id, None, "error: the model replica stopped"))
                return
            for event in events:
                queue = self.routes.get(event[0])
                if queue is not None:
                    queue.put_nowait(event)
