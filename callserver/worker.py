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
import secrets
import signal
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from callserver.engines import EngineSet
from models.env import EnvSettings
from models.errors import EngineError
from models.interfaces import Recognizer, Synthesizer, Translator
from models.metrics import EngineMetrics
from models.remote.engines import error_fields
from models.remote.queue import Job, JobQueue
from models.wire import (
    WireError,
    json_from_fields,
    json_to_fields,
    recognition_from_fields,
    speech_to_fields,
    transcript_to_fields,
)

log = logging.getLogger(__name__)

KINDS = ("stt", "mt", "tts")


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


class Worker:
    """Takes jobs of every kind and runs them on ``engines``."""

    def __init__(
        self,
        engines: EngineSet,
        queue: JobQueue,
        consumer: str,
        slots: int = 2,
        capabilities_every_s: float = 5.0,
    ) -> None:
        self.engines = engines
        self.queue = queue
        self.consumer = consumer
        self.slots = slots
        self.capabilities_every_s = capabilities_every_s
        self._stopping = asyncio.Event()
        #: Jobs taken and not yet acknowledged or left for another worker.
        self.holding = 0

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
        loops.append(asyncio.create_task(self._republish(), name="worker-capabilities"))
        await self._stopping.wait()
        # Each loop ends after the job it holds; none takes another.
        await asyncio.gather(*loops[:-1], return_exceptions=True)
        loops[-1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loops[-1]
        log.info("worker drained", extra={"consumer": self.consumer})

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

    async def _engines(self) -> tuple[Recognizer, Translator, Synthesizer]:
        return await self.engines.stt(), await self.engines.translation(), await self.engines.tts()

    async def _loop(self, kind: str) -> None:
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                jobs = []
                if loop.time() >= next_claim:
                    jobs = await self.queue.reclaim(kind, self.consumer, count=1)
                    next_claim = loop.time() + self.queue.claim_idle_s / 2
                if not jobs:
                    jobs = await self.queue.take(kind, self.consumer, count=1, block_ms=500)
                for job in jobs:
                    await self.handle(job)
            except Exception as exc:  # Redis unreachable: wait and try again
                log.warning("job loop failed; retrying", extra={"kind": kind, "error": repr(exc)})
                await asyncio.sleep(1.0)

    async def handle(self, job: Job) -> None:
        """Run one job; acknowledge it with its answer unless another worker should retry it."""
        self.holding += 1
        fields = {"kind": job.kind, "job": job.job_id, "deliveries": job.deliveries}
        try:
            if await self.queue.expired(job):
                await self.queue.drop_expired(job)
                return
            try:
                answer = await self._run(job)
            except (EngineError, WireError) as exc:
                error = exc if isinstance(exc, EngineError) else EngineError(str(exc))
                if error.retryable:
                    # Left pending: another worker (or this one) claims it after the idle bound.
                    log.warning(
                        "job failed; left for a retry", extra={**fields, "error": error.message}
                    )
                    return
                answer = error_fields(error)
            await self.queue.finish(job, answer)
        except Exception:
            log.exception("job failed; left for a retry", extra=fields)
        finally:
            self.holding -= 1

    async def _run(self, job: Job) -> dict[str, bytes]:
        if job.kind == "stt":
            audio, language, allowed, live = recognition_from_fields(job.fields)
            stt = await self.engines.stt()
            return transcript_to_fields(await stt.transcribe(audio, language, allowed, live))
        request = json_from_fields(job.fields)
        if job.kind == "mt":
            mt = await self.engines.translation()
            texts = request.get("texts")
            if not isinstance(texts, list):
                raise WireError("'texts' must be a list")
            done = await mt.translate_many(
                [str(t) for t in texts], str(request["source"]), str(request["target"])
            )
            return json_to_fields({"translations": done})
        if job.kind == "tts":
            tts = await self.engines.tts()
            voice = request.get("voice")
            speech = await tts.synthesize(
                str(request["text"]), str(request["language"]), str(voice) if voice else None
            )
            return speech_to_fields(speech)
        raise WireError(f"unknown kind of job {job.kind!r}")


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
    engines = EngineSet(EngineMetrics())
    worker = Worker(
        engines,
        queue,
        settings.consumer or default_consumer(),
        settings.slots,
        settings.capabilities_every_s,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    print(f"callserver worker {worker.consumer} is taking jobs", flush=True)
    try:
        await worker.run()
    finally:
        await engines.close()
        await queue.aclose()
    return 0
