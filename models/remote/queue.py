"""Inference jobs over Redis Streams: nodes submit, workers take, nothing is lost to a crash.

One stream per kind of job (``jobs:stt``, ``jobs:mt``, ``jobs:tts``) read by one consumer group,
``workers``; each node reads its results from a stream of its own (``results:{node}``).

- A job is acknowledged only after its result is published, so a worker that dies holding one
  leaves it pending, and another worker claims it once it has been idle ``claim_idle_s``
  (XAUTOCLAIM, its cursor carried from call to call so every pending entry is reached, not
  the first ones again and again). A result can therefore come twice; the node keeps the first.
- A job has a budget: it is dropped (its result says ``deadline``) rather than done once its
  age passes it. Age is measured on Redis's clock alone (the entry id's milliseconds against
  ``TIME``), so hosts' clocks never need to agree.
- A job delivered ``max_deliveries`` times without a result goes to ``dead:{kind}``, counted.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

GROUP = "workers"
#: Result field carrying why a job has no result (``deadline``, ``failed``, ``dead``).
ERROR = "error"


def new_job_id() -> str:
    return secrets.token_hex(8)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Job:
    """One job as a worker holds it."""

    entry: str  # the stream entry id (``<ms>-<seq>``): acknowledged by it
    kind: str
    job_id: str
    reply_to: str
    budget_ms: int
    fields: dict[str, bytes]
    deliveries: int = 1

    @property
    def enqueued_ms(self) -> int:
        """When Redis took the job, on Redis's clock."""
        return int(self.entry.split("-")[0])


@dataclass
class QueueStats:
    """What the worker's metrics report."""

    taken: int = 0
    claimed: int = 0
    expired: int = 0
    dead: int = 0
    finished: int = 0


class JobQueue:
    """Both ends of the job streams; nodes use ``submit``/``results``, workers the rest."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "callserver:",
        claim_idle_s: float = 5.0,
        max_deliveries: int = 3,
        max_len: int = 10_000,
        socket_timeout_s: float | None = None,
    ) -> None:
        if max_deliveries < 1 or claim_idle_s <= 0:
            raise ValueError("max_deliveries must be >= 1 and claim_idle_s > 0")
        self.prefix = prefix
        self.claim_idle_s = claim_idle_s
        self.max_deliveries = max_deliveries
        self.max_len = max_len
        self.stats = QueueStats()
        self._client = aioredis.Redis.from_url(url, socket_timeout=socket_timeout_s)
        self._cursors: dict[str, str] = {}
        self._groups: set[str] = set()

    def jobs_key(self, kind: str) -> str:
        return f"{self.prefix}jobs:{kind}"

    def results_key(self, reply_to: str) -> str:
        return f"{self.prefix}results:{reply_to}"

    def dead_key(self, kind: str) -> str:
        return f"{self.prefix}dead:{kind}"

    # --- node side ------------------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        fields: Mapping[str, bytes],
        reply_to: str,
        budget_s: float,
        job_id: str | None = None,
    ) -> str:
        """Queue a job; its id (``job_id`` or a new one), which its result carries."""
        job_id = job_id or new_job_id()
        entry: dict[str, bytes | str] = {
            "job_id": job_id,
            "reply_to": reply_to,
            "budget_ms": str(max(1, int(budget_s * 1000))),
            **fields,
        }
        await self._client.xadd(
            self.jobs_key(kind),
            entry,  # type: ignore[arg-type]
            maxlen=self.max_len,
            approximate=True,
        )
        return job_id

    async def results(
        self, reply_to: str, after: str = "$", block_ms: int = 1000, count: int = 100
    ) -> tuple[str, list[tuple[str, dict[str, bytes]]]]:
        """Results for ``reply_to`` after entry ``after``: (last entry id, [(job id, fields)])."""
        found: Any = await self._client.xread(
            {self.results_key(reply_to): after}, count=count, block=block_ms
        )
        out: list[tuple[str, dict[str, bytes]]] = []
        last = after
        for _, entries in found:
            for entry_id, raw in entries:
                last = _text(entry_id)
                fields = {_text(k): bytes(v) for k, v in raw.items()}
                out.append((_text(fields.pop("job_id", b"")), fields))
        return last, out

    # --- worker side ----------------------------------------------------------------------------

    async def _ensure_group(self, kind: str) -> None:
        if kind in self._groups:
            return
        try:
            await self._client.xgroup_create(self.jobs_key(kind), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(kind)

    def _job(self, kind: str, entry_id: Any, raw: Mapping[Any, Any], deliveries: int) -> Job:
        fields = {_text(k): bytes(v) for k, v in raw.items()}
        return Job(
            entry=_text(entry_id),
            kind=kind,
            job_id=_text(fields.pop("job_id", b"")),
            reply_to=_text(fields.pop("reply_to", b"")),
            budget_ms=int(_text(fields.pop("budget_ms", b"0")) or 0),
            fields=fields,
            deliveries=deliveries,
        )

    async def take(
        self, kind: str, consumer: str, count: int = 1, block_ms: int | None = 1000
    ) -> list[Job]:
        """New jobs for ``consumer``, at most ``count``, waiting up to ``block_ms`` for one
        (``None``: only those already waiting)."""
        await self._ensure_group(kind)
        found: Any = await self._client.xreadgroup(
            GROUP, consumer, {self.jobs_key(kind): ">"}, count=count, block=block_ms
        )
        jobs = [
            self._job(kind, entry_id, raw, 1)
            for _, entries in found or []
            for entry_id, raw in entries
            if raw  # an entry trimmed away while pending comes back empty
        ]
        self.stats.taken += len(jobs)
        return jobs

    async def reclaim(self, kind: str, consumer: str, count: int = 10) -> list[Job]:
        """Jobs idle past ``claim_idle_s`` in another consumer's hands, now ``consumer``'s.

        The scan resumes where the previous call stopped (XAUTOCLAIM's cursor), wrapping to
        the start only when it reaches the end. Jobs delivered ``max_deliveries`` times go to
        the dead-letter stream instead of being handed out again.
        """
        await self._ensure_group(kind)
        start = self._cursors.get(kind, "0-0")
        reply: Any = await self._client.xautoclaim(
            self.jobs_key(kind),
            GROUP,
            consumer,
            min_idle_time=int(self.claim_idle_s * 1000),
            start_id=start,
            count=count,
        )
        cursor, entries = _text(reply[0]), reply[1]
        self._cursors[kind] = cursor
        jobs: list[Job] = []
        for entry_id, raw in entries:
            if not raw:
                continue
            deliveries = await self._deliveries(kind, _text(entry_id))
            job = self._job(kind, entry_id, raw, deliveries)
            if deliveries > self.max_deliveries:
                await self._bury(job)
                continue
            jobs.append(job)
        self.stats.claimed += len(jobs)
        return jobs

    @property
    def cursor(self) -> dict[str, str]:
        """Where each kind's reclaim scan resumes."""
        return dict(self._cursors)

    async def _deliveries(self, kind: str, entry_id: str) -> int:
        pending = await self._client.xpending_range(
            self.jobs_key(kind), GROUP, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def now_ms(self) -> int:
        """Redis's clock, in milliseconds: the clock job ages are measured on."""
        seconds, micros = await self._client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def expired(self, job: Job, now_ms: int | None = None) -> bool:
        """Whether the job's age, on Redis's clock (``now_ms`` if already read), is past its
        budget."""
        now = now_ms if now_ms is not None else await self.now_ms()
        return now - job.enqueued_ms > job.budget_ms

    async def finish(self, job: Job, result: Mapping[str, bytes]) -> None:
        """Publish the result, then acknowledge: a crash in between repeats the job, never
        loses it."""
        await self._publish(job, result)
        await self._client.xack(self.jobs_key(job.kind), GROUP, job.entry)
        self.stats.finished += 1

    async def drop_expired(self, job: Job) -> None:
        """Answer ``deadline`` instead of doing the job late (the node shows its marker)."""
        await self.finish(job, {ERROR: b"deadline"})
        self.stats.finished -= 1
        self.stats.expired += 1
        log.info("job past its deadline dropped", extra={"kind": job.kind, "job": job.job_id})

    async def _bury(self, job: Job) -> None:
        entry: dict[str, bytes | str] = {
            "job_id": job.job_id,
            "reply_to": job.reply_to,
            "deliveries": str(job.deliveries),
            **job.fields,
        }
        await self._client.xadd(self.dead_key(job.kind), entry, maxlen=self.max_len)  # type: ignore[arg-type]
        await self._publish(job, {ERROR: b"dead"})
        await self._client.xack(self.jobs_key(job.kind), GROUP, job.entry)
        self.stats.dead += 1
        log.warning(
            "job moved to the dead-letter stream",
            extra={"kind": job.kind, "job": job.job_id, "deliveries": job.deliveries},
        )

    async def _publish(self, job: Job, result: Mapping[str, bytes]) -> None:
        entry: dict[str, bytes | str] = {"job_id": job.job_id, **result}
        await self._client.xadd(
            self.results_key(job.reply_to),
            entry,  # type: ignore[arg-type]
            maxlen=self.max_len,
            approximate=True,
        )

    async def publish_capabilities(self, caps: Mapping[str, str], ttl_s: float = 30.0) -> None:
        """What a worker can do, by kind of job (JSON), for nodes to read; it lapses with the
        workers (a worker republishes well within ``ttl_s``)."""
        key = f"{self.prefix}capabilities"
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=dict(caps))  # type: ignore[arg-type]
            pipe.expire(key, max(1, int(ttl_s)))
            await pipe.execute()

    async def dead_letters(self, kind: str) -> list[dict[str, bytes]]:
        """What the dead-letter stream of ``kind`` holds, oldest first."""
        entries: Any = await self._client.xrange(self.dead_key(kind))
        return [{_text(k): bytes(v) for k, v in raw.items()} for _, raw in entries]

    async def holders(self, kind: str) -> dict[str, int]:
        """Consumers holding jobs of ``kind`` unacknowledged, with how many each."""
        await self._ensure_group(kind)
        summary: Any = await self._client.xpending(self.jobs_key(kind), GROUP)
        return {_text(c["name"]): int(c["pending"]) for c in summary.get("consumers") or []}

    async def pending(self, kind: str) -> int:
        """Jobs delivered and not acknowledged."""
        await self._ensure_group(kind)
        summary = await self._client.xpending(self.jobs_key(kind), GROUP)
        return int(summary["pending"])

    async def waiting(self, kind: str) -> int:
        """Jobs queued and not yet delivered to any worker (the group's lag)."""
        await self._ensure_group(kind)
        groups: Any = await self._client.xinfo_groups(self.jobs_key(kind))
        for group in groups:
            if _text(group.get("name", b"")) == GROUP:
                lag = group.get("lag")
                return int(lag) if lag is not None else 0
        return 0

    async def aclose(self) -> None:
        await self._client.aclose()
