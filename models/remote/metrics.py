"""What an inference worker reports to Prometheus: batches, queue lag, pending jobs, claims."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from models.metrics import LATENCY_BUCKETS

#: Jobs per batch: the sizes a worker's CALLSERVER_WORKER_BATCH_SIZE can give.
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class WorkerMetrics:
    """The worker's own metrics, beside the engines' (``EngineMetrics``) in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.batch_size = Histogram(
            "callserver_worker_batch_size",
            "Jobs run together as one batch, by kind of job",
            ["kind"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_lag = Histogram(
            "callserver_worker_queue_lag_seconds",
            "Time from a job's queueing to a worker taking it (Redis's clock)",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.jobs = Counter(
            "callserver_worker_jobs",
            "Jobs settled, by kind and outcome (ok, failed, retry, deadline)",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.claims = Counter(
            "callserver_worker_claims",
            "Jobs claimed from a worker that went silent",
            ["kind"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "callserver_worker_dead_letters",
            "Jobs moved to the dead-letter stream after repeated failures",
            ["kind"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "callserver_worker_pending_jobs",
            "Jobs delivered to some worker and not acknowledged (the whole group)",
            ["kind"],
            registry=self.registry,
        )
        self.waiting = Gauge(
            "callserver_worker_waiting_jobs",
            "Jobs queued and not yet delivered to any worker",
            ["kind"],
            registry=self.registry,
        )
        self.holding = Gauge(
            "callserver_worker_holding_jobs",
            "Jobs this worker holds (taken, not yet settled)",
            registry=self.registry,
        )
