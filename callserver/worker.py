"""``callserver worker``: recognition, translation and synthesis for any media node.

A worker runs the in-process engines (``EngineSet``) on jobs from the Redis Streams queue
(``models/remote/queue.py``) and answers on the asking node's results stream. It publishes
what it can do (``capabilities``) so nodes can answer language questions without a job.
SIGTERM drains: it takes nothing new, finishes and acknowledges what it holds, then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from pathlib import Path

from prometheus_client import start_http_server
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from callserver.engines import EngineSet
from models.env import EnvSettings
from models.errors import EngineError
from models.interfaces import Recognizer, Synthesizer, Translator
from models.metrics import EngineMetrics
from models.remote.engines import error_fields
from models.remote.metrics import WorkerMetrics
from models.remote.queue import Job, JobQueue
from models.remote.runner import Answer, JobRunner

log = logging.getLogger(__name__)

KINDS = ("stt", "mt", "tts")
#: Kinds whose engines run several jobs as one batch (synthesis runs one voice at a time).
BATCHED = ("stt", "mt")
#: How often the pending and waiting gauges are read from Redis.
QUEUE_SAMPLE_S = 1.0


class WorkerSettings(EnvSettings):
    """Options of ``callserver worker`` (it also reads the engines' and the cluster's)."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_WORKER_", extra="ignore", frozen=True)

    consumer: str | None = Field(
        None, description="This worker's name in the consumer group. Default: host name, random."
    )
    slots: int = Field(2, ge=1, le=64, description="Jobs of each kind a worker runs at once.")
    claim_idle_s: float = Field(
        5.0,
        gt=0,
        description="A job held this long by a worker that went silent is claimed by another.",
    )
    max_deliveries: int = Field(
        3, ge=1, description="Deliveries after which a failing job goes to the dead-letter stream."
    )
    capabilities_every_s: float = Field(
        5.0, gt=0, description="How often the worker republishes what it can do."
    )
    batch_size: int = Field(
        4,
        ge=1,
        le=64,
        description="Recognition or translation jobs (of any rooms) run together as one batch "
        "by each slot. On a 2-core CPU a burst of utterances went 1.28x faster at 4 than one "
        "at a time, 1.37x at 8 with a longer median wait (docs/benchmarks.md); a GPU takes "
        "more.",
    )
    batch_window_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="How long a slot that took fewer jobs than a batch waits for more. 0: "
        "only what is already queued joins a batch, so a lone job never waits.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of the worker's /metrics (Prometheus: batch sizes, queue lag, "
        "pending jobs, claims, dead letters, engines). None: not served.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address /metrics listens on (0.0.0.0: every interface)."
    )
    health_path: Path | None = Field(
        None,
        description="File the worker rewrites every second, for `callserver healthcheck "
        "--worker` (a worker serves no health endpoint). None: not written.",
    )


class Worker:
    """Takes jobs of every kind and runs them on ``engines``, in batches of ``batch_size``."""

    def __init__(
        self,
        engines: EngineSet,
        queue: JobQueue,
        consumer: str,
        slots: int = 2,
        capabilities_every_s: float = 5.0,
        *,
        batch_size: int = 1,
        batch_window_s: float = 0.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.engines = engines
        self.queue = queue
        self.consumer = consumer
        self.slots = slots
        self.capabilities_every_s = capabilities_every_s
        self.batch_size = batch_size
        self.batch_window_s = batch_window_s
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.runner = JobRunner(self._engines)
        self._stopping = asyncio.Event()
        #: Jobs taken and not yet acknowledged or left for another worker.
        self.holding = 0
        #: time.monotonic() of the last capabilities publish that Redis took (health file).
        self.published_at: float | None = None

    def stop(self) -> None:
        """Take nothing new; what is held is finished (the drain)."""
        self._stopping.set()

    async def run(self) -> None:
        """Until ``stop``: warm the engines, publish capabilities, work every kind of job."""
        await self.engines.warm_up()
        await self.publish_capabilities()
        loops = [
            asyncio.create_task(self._loop(kind), name=f"worker-{kind}-{i}")
            for kind in KINDS
            for i in range(self.slots)
        ]
        background = [
            asyncio.create_task(self._republish(), name="worker-capabilities"),
            asyncio.create_task(self._sample(), name="worker-queue-gauges"),
        ]
        await self._stopping.wait()
        # Each loop ends after the batch it holds; none takes another.
        await asyncio.gather(*loops, return_exceptions=True)
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("worker drained", extra={"consumer": self.consumer})

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # Redis away: the loops report it
                await self.sample_queue()
            await asyncio.sleep(QUEUE_SAMPLE_S)

    async def _republish(self) -> None:
        while True:
            await asyncio.sleep(self.capabilities_every_s)
            with contextlib.suppress(Exception):
                await self.publish_capabilities()

    async def publish_capabilities(self) -> None:
        stt, mt, tts = await self._engines()
        caps = {
            "stt": stt.info(),
            "mt": {"languages": [s.to_dict() for s in mt.languages()], "info": mt.info()},
            "tts": {"voices": tts.voices(), "info": tts.info()},
        }
        await self.queue.publish_capabilities(
            {k: json.dumps(v) for k, v in caps.items()}, ttl_s=3 * self.capabilities_every_s
        )
        self.published_at = time.monotonic()

    async def _engines(self) -> tuple[Recognizer, Translator, Synthesizer]:
        return await self.engines.stt(), await self.engines.translation(), await self.engines.tts()

    async def _loop(self, kind: str) -> None:
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        size = self.batch_size if kind in BATCHED else 1
        while not self._stopping.is_set():
            try:
                jobs: list[Job] = []
                if loop.time() >= next_claim:
                    jobs = await self._reclaim(kind, size)
                    next_claim = loop.time() + self.queue.claim_idle_s / 2
                if not jobs:
                    jobs = await self.queue.take(kind, self.consumer, count=size, block_ms=500)
                if jobs and len(jobs) < size and self.batch_window_s > 0:
                    await asyncio.sleep(self.batch_window_s)
                    jobs += await self.queue.take(
                        kind, self.consumer, count=size - len(jobs), block_ms=None
                    )
                if jobs:
                    await self.handle_batch(kind, jobs)
            except Exception as exc:  # Redis unreachable: wait and try again
                log.warning("job loop failed; retrying", extra={"kind": kind, "error": repr(exc)})
                await asyncio.sleep(1.0)

    async def _reclaim(self, kind: str, count: int) -> list[Job]:
        dead = self.queue.stats.dead
        jobs = await self.queue.reclaim(kind, self.consumer, count=count)
        self.metrics.claims.labels(kind).inc(len(jobs))
        self.metrics.dead_letters.labels(kind).inc(self.queue.stats.dead - dead)
        return jobs

    async def handle_batch(self, kind: str, jobs: list[Job]) -> None:
        """Run jobs of one kind together; acknowledge each with its answer unless another
        worker should retry it. A job past its deadline is answered ``deadline``, not run."""
        self.holding += len(jobs)
        self.metrics.holding.set(self.holding)
        try:
            now_ms = await self.queue.now_ms()
            live = []
            for job in jobs:
                self.metrics.queue_lag.labels(kind).observe((now_ms - job.enqueued_ms) / 1000)
                if await self.queue.expired(job, now_ms):
                    await self.queue.drop_expired(job)
                    self.metrics.jobs.labels(kind, "deadline").inc()
                else:
                    live.append(job)
            if not live:
                return
            self.metrics.batch_size.labels(kind).observe(len(live))
            answers = await self.runner.answer(kind, live)
            for job, answer in zip(live, answers, strict=True):
                await self._settle(job, answer)
        except Exception:
            log.exception(
                "jobs failed; left for a retry",
                extra={"kind": kind, "jobs": [job.job_id for job in jobs]},
            )
        finally:
            self.holding -= len(jobs)
            self.metrics.holding.set(self.holding)

    async def _settle(self, job: Job, answer: Answer) -> None:
        fields = {"kind": job.kind, "job": job.job_id, "deliveries": job.deliveries}
        if isinstance(answer, EngineError):
            if answer.retryable:
                # Left pending: another worker (or this one) claims it after the idle bound.
                log.warning(
                    "job failed; left for a retry", extra={**fields, "error": answer.message}
                )
                self.metrics.jobs.labels(job.kind, "retry").inc()
                return
            self.metrics.jobs.labels(job.kind, "failed").inc()
            answer = error_fields(answer)
        else:
            self.metrics.jobs.labels(job.kind, "ok").inc()
        await self.queue.finish(job, answer)

    async def sample_queue(self) -> None:
        """Refresh the pending and waiting gauges from Redis."""
        for kind in KINDS:
            self.metrics.pending.labels(kind).set(await self.queue.pending(kind))
            self.metrics.waiting.labels(kind).set(await self.queue.waiting(kind))


#: How often the health file is rewritten, and the age past which it says the worker is stuck.
HEALTH_EVERY_S = 1.0
HEALTH_STALE_S = 10.0
HEALTH_READY = "ready"


async def keep_health_file(path: Path, worker: Worker, every_s: float = HEALTH_EVERY_S) -> None:
    """Rewrite ``path`` every ``every_s`` until cancelled, for ``callserver healthcheck --worker``.

    Its age says the worker's event loop still turns (liveness: a wedged or dead worker stops
    rewriting it); its text says whether the worker's capabilities reached Redis within the
    time nodes keep them (readiness: warmed up, and Redis answering, which is how nodes see a
    worker). Written aside and renamed, so a check never reads half a file.
    """
    spare = path.with_name(f".{path.name}.new")
    warned = False
    while True:
        published = worker.published_at
        fresh = (
            published is not None
            and time.monotonic() - published <= 3 * worker.capabilities_every_s
        )
        try:
            spare.write_text(HEALTH_READY if fresh else "not ready: no capabilities in Redis")
            os.replace(spare, path)
            warned = False
        except OSError as exc:
            if not warned:
                log.warning(
                    "health file not writable", extra={"path": str(path), "error": str(exc)}
                )
                warned = True
        await asyncio.sleep(every_s)


def health_problem(path: Path, *, ready: bool, stale_s: float = HEALTH_STALE_S) -> str | None:
    """What the health file at ``path`` says is wrong with its worker, or None when healthy."""
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        return f"{path}: {exc.strerror or exc} (is a worker running with this health file?)"
    if age > stale_s:
        return f"{path} was last rewritten {age:.0f} s ago: the worker is stuck or gone"
    if ready and text != HEALTH_READY:
        return f"{path}: {text}"
    return None


def default_consumer() -> str:
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


async def run_worker(redis_url: str, prefix: str, settings: WorkerSettings) -> int:
    """The ``callserver worker`` process: work until SIGTERM, then drain; the exit status."""
    queue = JobQueue(
        redis_url,
        prefix=prefix,
        claim_idle_s=settings.claim_idle_s,
        max_deliveries=settings.max_deliveries,
    )
    metrics = WorkerMetrics()
    engines = EngineSet(EngineMetrics(metrics.registry))
    worker = Worker(
        engines,
        queue,
        settings.consumer or default_consumer(),
        settings.slots,
        settings.capabilities_every_s,
        batch_size=settings.batch_size,
        batch_window_s=settings.batch_window_ms / 1000,
        metrics=metrics,
    )
    if settings.metrics_port is not None:
        # A thread of prometheus_client's own: a scrape never waits on the job loops.
        start_http_server(settings.metrics_port, settings.metrics_host, metrics.registry)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    print(f"callserver worker {worker.consumer} is taking jobs", flush=True)
    health = (
        asyncio.create_task(keep_health_file(settings.health_path, worker), name="worker-health")
        if settings.health_path
        else None
    )
    try:
        await worker.run()
    finally:
        if health is not None:
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health
        await engines.close()
        await queue.aclose()
    return 0
