"""Inference jobs over Redis Streams, on a real Redis (a fake would miscount pending entries)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from models.remote.queue import ERROR, JobQueue
from tests.conftest import REDIS_URL

#: Claims happen after this much idleness: short, so the tests do not wait long.
IDLE_S = 0.3


@pytest.fixture
async def queue(redis_prefix: str) -> AsyncIterator[JobQueue]:
    made = JobQueue(REDIS_URL, prefix=redis_prefix, claim_idle_s=IDLE_S, max_deliveries=3)
    yield made
    await made.aclose()


async def next_results(
    queue: JobQueue, reply_to: str, want: int
) -> list[tuple[str, dict[str, bytes]]]:
    """Read ``reply_to``'s results from the start until ``want`` have come."""
    got: list[tuple[str, dict[str, bytes]]] = []
    after = "0-0"
    async with asyncio.timeout(10):
        while len(got) < want:
            after, batch = await queue.results(reply_to, after=after, block_ms=200)
            got += batch
    return got


async def test_a_result_is_published_before_its_job_is_acknowledged(queue: JobQueue) -> None:
    job_id = await queue.submit("stt", {"audio": b"\x01\x02"}, reply_to="node-a", budget_s=30)
    (job,) = await queue.take("stt", "worker-1")
    assert (job.job_id, job.reply_to, job.fields) == (job_id, "node-a", {"audio": b"\x01\x02"})
    assert job.deliveries == 1 and job.budget_ms == 30_000
    assert await queue.pending("stt") == 1
    await queue.finish(job, {"text": b"hello"})
    assert await queue.pending("stt") == 0
    assert await next_results(queue, "node-a", 1) == [(job_id, {"text": b"hello"})]
    # Another node's results are its own.
    _, others = await queue.results("node-b", after="0-0", block_ms=1)
    assert others == []


async def test_a_job_held_by_a_silent_worker_is_claimed_by_another(queue: JobQueue) -> None:
    job_id = await queue.submit("mt", {"text": b"hola"}, reply_to="node-a", budget_s=30)
    (held,) = await queue.take("mt", "worker-1")
    # Not idle long enough yet: nobody may take it from worker-1.
    assert await queue.reclaim("mt", "worker-2") == []
    await asyncio.sleep(IDLE_S + 0.1)
    (claimed,) = await queue.reclaim("mt", "worker-2")
    assert claimed.job_id == job_id and claimed.entry == held.entry
    assert claimed.deliveries == 2 and queue.stats.claimed == 1
    await queue.finish(claimed, {"text": b"hello"})
    assert await queue.pending("mt") == 0


async def test_the_reclaim_cursor_is_carried_from_call_to_call(queue: JobQueue) -> None:
    for i in range(5):
        await queue.submit("tts", {"n": str(i).encode()}, reply_to="node-a", budget_s=30)
    assert len(await queue.take("tts", "worker-1", count=5)) == 5
    await asyncio.sleep(IDLE_S + 0.1)
    seen: list[bytes] = []
    cursors: list[str] = []
    for _ in range(3):
        seen += [job.fields["n"] for job in await queue.reclaim("tts", "worker-2", count=2)]
        cursors.append(queue.cursor["tts"])
    # Each call went on from where the last stopped: all five, once each, in order.
    assert seen == [b"0", b"1", b"2", b"3", b"4"]
    assert cursors[0] != "0-0" and cursors[1] != cursors[0]
    assert cursors[-1] == "0-0"  # the scan reached the end and wraps next time


async def test_a_job_past_its_budget_is_answered_deadline_not_done(queue: JobQueue) -> None:
    job_id = await queue.submit("stt", {"audio": b""}, reply_to="node-a", budget_s=0.05)
    (job,) = await queue.take("stt", "worker-1")
    fresh_id = await queue.submit("stt", {"audio": b""}, reply_to="node-a", budget_s=30)
    (fresh,) = await queue.take("stt", "worker-1")
    await asyncio.sleep(0.1)
    assert await queue.expired(job) and not await queue.expired(fresh)
    await queue.drop_expired(job)
    await queue.finish(fresh, {"text": b"ok"})
    results = dict(await next_results(queue, "node-a", 2))
    assert results == {job_id: {ERROR: b"deadline"}, fresh_id: {"text": b"ok"}}
    assert queue.stats.expired == 1 and await queue.pending("stt") == 0


async def test_a_job_that_keeps_failing_goes_to_the_dead_letter_stream(queue: JobQueue) -> None:
    job_id = await queue.submit("mt", {"text": b"poison"}, reply_to="node-a", budget_s=30)
    deliveries = [job.deliveries for job in await queue.take("mt", "worker-1")]
    for attempt in range(3):
        await asyncio.sleep(IDLE_S + 0.1)
        # Each worker that took it died (or failed) without a result.
        deliveries += [job.deliveries for job in await queue.reclaim("mt", f"worker-{attempt}")]
    assert deliveries == [1, 2, 3]  # handed out max_deliveries times, then buried
    assert queue.stats.dead == 1 and await queue.pending("mt") == 0
    (dead,) = await queue.dead_letters("mt")
    assert dead["job_id"] == job_id.encode() and dead["text"] == b"poison"
    assert dead["deliveries"] == b"4"
    assert await next_results(queue, "node-a", 1) == [(job_id, {ERROR: b"dead"})]


HOLDER = """
import asyncio, sys
from models.remote.queue import JobQueue
async def main():
    queue = JobQueue(sys.argv[1], prefix=sys.argv[2])
    jobs = await queue.take("stt", "doomed-worker", block_ms=10_000)
    print(jobs[0].job_id, flush=True)
    await asyncio.sleep(3600)  # holds it until killed
asyncio.run(main())
"""


async def test_a_worker_killed_holding_a_job_loses_it_to_another(
    queue: JobQueue, redis_prefix: str
) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        REDIS_URL,
        redis_prefix,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        job_id = await queue.submit("stt", {"audio": b"\x00\x00"}, reply_to="node-a", budget_s=30)
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 30)
        assert line.decode().strip() == job_id
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        assert await queue.pending("stt") == 1  # still the dead worker's
        await asyncio.sleep(IDLE_S + 0.1)
        (job,) = await queue.reclaim("stt", "worker-2")
        await queue.finish(job, {"text": b"recovered"})
        assert await next_results(queue, "node-a", 1) == [(job_id, {"text": b"recovered"})]
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
