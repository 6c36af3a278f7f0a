"""Prometheus metrics (`GET /metrics`): each replica's engine figures and the front's own, labelled by replica.

Engine figures come from `EngineWorker.metrics()`, fetched when /metrics is
scraped; the front counts replica restarts and times requests itself. No
per-request labels, so the number of series stays fixed. Example lines:

    ochat_kv_cache_tokens{replica="0"} 412.0
    ochat_replica_restarts_total{replica="0"} 1.0
    ochat_time_to_first_token_seconds_bucket{le="0.1",replica="0"} 17.0
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

ENGINE_GAUGES = {
    "kv_cache_tokens": "KV-cache token slots in use, counting what the cache layout really holds",
    "kv_cache_capacity_tokens": "KV-cache budget in tokens",
    "requests_running": "sequences in the running batch",
    "requests_waiting": "sequences waiting for room in the batch or the KV budget",
}
ENGINE_COUNTERS = {
    "preemptions_total": "sequences preempted (their cache freed, recomputed later) to stay within the KV budget",
    "prompt_tokens_total": "prompt tokens prefilled (recomputation after preemption included)",
    "generation_tokens_total": "tokens generated",
    "sequence_failures_total": "sequences ended alone by their own failure (grammar, invalid logits, sampling)",
}
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _EngineCollector(Collector):
    """Exposes the last engine snapshot of each live replica."""

    def __init__(self, snapshots: dict[int, dict]):
        self.snapshots = snapshots

    def collect(self):
        families = [
            GaugeMetricFamily(f"ochat_{name}", help_text, labels=["replica"])
            for name, help_text in ENGINE_GAUGES.items()
        ]
        families += [
            CounterMetricFamily(f"ochat_{name}", help_text, labels=["replica"])
            for name, help_text in ENGINE_COUNTERS.items()
        ]
        for replica, snapshot in sorted(self.snapshots.items()):
            for family, name in zip(families, [*ENGINE_GAUGES, *ENGINE_COUNTERS]):
                if name in snapshot:
                    family.add_metric([str(replica)], snapshot[name])
        return families


class ServerMetrics:
    def __init__(self, num_replicas: int):
        self.registry = CollectorRegistry()
        self.engine_snapshots: dict[int, dict] = {}
        self.registry.register(_EngineCollector(self.engine_snapshots))
        self.replica_restarts = Counter(
            "ochat_replica_restarts", "replicas restarted after their process died", ["replica"], registry=self.registry
        )
        self.time_to_first_token = Histogram(
            "ochat_time_to_first_token_seconds",
            "from a parsed request to its first generated text",
            ["replica"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "ochat_request_latency_seconds",
            "from a parsed request to its last token, for completed requests",
            ["replica"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for replica in range(num_replicas):  # every series exists from the start, at zero
            label = str(replica)
            self.replica_restarts.labels(label)
            self.time_to_first_token.labels(label)
            self.request_latency.labels(label)

    def render(self) -> bytes:
        return generate_latest(self.registry)
