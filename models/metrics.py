"""Engine and cache metrics. Engines take an ``EngineMetrics``; the app registers it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class EngineMetrics:
    """Latency per engine and operation, cache outcomes, queue depth, engine errors."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.latency = Histogram(
            "callserver_engine_seconds",
            "Engine call latency in seconds",
            ["engine", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "callserver_engine_requests",
            "Engine calls, by outcome (ok or an error code)",
            ["engine", "operation", "outcome"],
            registry=self.registry,
        )
        self.cache = Counter(
            "callserver_cache_events",
            "Cache lookups and failures, by cache, layer and event (hit, miss, error, corrupt)",
            ["cache", "layer", "event"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "callserver_engine_queue_depth",
            "Requests running or waiting, per engine pool",
            ["pool"],
            registry=self.registry,
        )
