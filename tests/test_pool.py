"""The inference pool counts work until its thread is done with it, whoever stopped waiting."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import pytest

from models.errors import EngineUnavailable
from models.pool import InferencePool
from tests.conftest import wait_for


def blocker() -> tuple[threading.Event, threading.Event, Callable[[], str]]:
    """(started, release, fn): ``fn`` signals ``started`` and then waits for ``release``."""
    started, release = threading.Event(), threading.Event()

    def fn() -> str:
        started.set()
        release.wait(10)
        return "done"

    return started, release, fn


async def test_a_cancelled_caller_leaves_its_running_work_counted() -> None:
    pool = InferencePool("test", workers=1, max_queue=0)
    started, release, fn = blocker()
    try:
        task = asyncio.create_task(pool.run(fn))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The thread is still in fn: the worker is busy, and the pool says so.
        assert pool.depth == 1
        with pytest.raises(EngineUnavailable):
            await pool.run(int)
        release.set()
        await wait_for(lambda: pool.depth == 0)
        assert await pool.run(int) == 0
    finally:
        release.set()
        pool.close()


async def test_a_caller_cancelled_while_queued_frees_its_place() -> None:
    pool = InferencePool("test", workers=1, max_queue=1)
    started, release, fn = blocker()
    try:
        running = asyncio.create_task(pool.run(fn))
        await asyncio.to_thread(started.wait, 10)
        queued = asyncio.create_task(pool.run(int))
        await wait_for(lambda: pool.depth == 2)
        queued.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queued
        # Never started, so nothing of it runs: its place is free again.
        await wait_for(lambda: pool.depth == 1)
        release.set()
        assert await running == "done"
        await wait_for(lambda: pool.depth == 0)
    finally:
        release.set()
        pool.close()


async def test_a_closed_pool_refuses_without_retry() -> None:
    pool = InferencePool("test", workers=1, max_queue=1)
    pool.close()
    with pytest.raises(EngineUnavailable) as err:
        await pool.run(int)
    assert not err.value.retryable and "closed" in err.value.message
    assert pool.depth == 0
