"""The inference worker's container healthcheck: `callserver healthcheck --worker`.

A worker has no HTTP port, so the deployment files check the file it rewrites every second
(CALLSERVER_WORKER_HEALTH_PATH): its age says the event loop turns (liveness), its text that
the worker's capabilities reached Redis (readiness, as nodes see workers). These tests show the
check passes on a working worker and fails on a missing, stale, not-ready or frozen one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import cast

import pytest

from callserver.cli import main
from callserver.engines import EngineSet
from callserver.worker import HEALTH_STALE_S, Worker, health_problem, keep_health_file
from models.remote.queue import JobQueue
from tests.conftest import REDIS_URL
from tests.process_helpers import terminate


def idle_worker() -> Worker:
    """A worker whose engines and queue are never touched: only its health state is used."""
    return Worker(cast(EngineSet, None), cast(JobQueue, None), "health-test")


def healthcheck(monkeypatch: pytest.MonkeyPatch, path: Path | None, *args: str) -> int:
    if path is None:
        monkeypatch.delenv("CALLSERVER_WORKER_HEALTH_PATH", raising=False)
    else:
        monkeypatch.setenv("CALLSERVER_WORKER_HEALTH_PATH", str(path))
    return main(["healthcheck", "--worker", *args])


async def test_the_file_tells_live_then_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "worker.health"
    worker = idle_worker()
    keeper = asyncio.create_task(keep_health_file(path, worker, every_s=0.05))
    try:
        await asyncio.sleep(0.2)
        # Warming up (nothing published yet): alive, not ready.
        assert healthcheck(monkeypatch, path) == 0
        assert healthcheck(monkeypatch, path, "--ready") == 1
        assert "not ready" in (health_problem(path, ready=True) or "")
        worker.published_at = time.monotonic()
        await asyncio.sleep(0.2)
        assert healthcheck(monkeypatch, path, "--ready") == 0
        # Capabilities older than nodes keep them: Redis stopped taking them.
        worker.published_at = time.monotonic() - 3 * worker.capabilities_every_s - 1
        await asyncio.sleep(0.2)
        assert healthcheck(monkeypatch, path, "--ready") == 1
        assert healthcheck(monkeypatch, path) == 0
    finally:
        keeper.cancel()
    # Nobody rewrites it any more: past the bound it says so.
    old = time.time() - HEALTH_STALE_S - 1
    os.utime(path, (old, old))
    assert healthcheck(monkeypatch, path) == 1
    assert "stuck or gone" in (health_problem(path, ready=False) or "")


def test_no_file_or_no_setting_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert healthcheck(monkeypatch, tmp_path / "absent") == 1
    assert healthcheck(monkeypatch, None) == 1


async def test_a_real_worker_turns_ready_and_a_frozen_one_fails(
    tmp_path: Path, redis_prefix: str
) -> None:
    path = tmp_path / "worker.health"
    env = {
        **os.environ,
        "CALLSERVER_REDIS_URL": REDIS_URL,
        "CALLSERVER_CLUSTER_KEY_PREFIX": redis_prefix,
        "CALLSERVER_WORKER_HEALTH_PATH": str(path),
        "CALLSERVER_WORKER_SLOTS": "1",
    }

    async def check(*args: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callserver", "healthcheck", "--worker", *args,
            env=env, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return await asyncio.wait_for(proc.wait(), 30)

    log = (tmp_path / "worker.log").open("wb")
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callserver", "worker", stdout=log, stderr=log, env=env
    )
    try:
        deadline = time.monotonic() + 120
        while await check("--ready") != 0:
            assert worker.returncode is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            await asyncio.sleep(0.5)
        # A process that no longer runs (here: stopped) fails the liveness check once the
        # file is older than the bound, as a wedged event loop would.
        worker.send_signal(signal.SIGSTOP)
        await asyncio.sleep(HEALTH_STALE_S + 1.5)
        assert await check() == 1
        worker.send_signal(signal.SIGCONT)
        await asyncio.sleep(2)
        assert await check() == 0
    finally:
        worker.send_signal(signal.SIGCONT)
        await terminate(worker)
        log.close()
