"""A redis-server of a test's own, which the test may stop and start again."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.conftest import free_port, missing_dependency


class SpareRedis:
    """A redis-server of the test's own on a free port, so it can be stopped and restarted
    (the shared one on 6379 never is)."""

    def __init__(self, workdir: Path, persistent: bool = False) -> None:
        #: ``persistent``: an append-only file keeps the data across a stop and start, as a
        #: production Redis for the cluster's rooms does.
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always",
            "--dir", str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = aioredis.Redis.from_url(self.url)
        try:
            async with asyncio.timeout(15):  # start-up takes milliseconds; CI can be slow
                while True:
                    try:
                        if await client.ping():
                            return
                    except (RedisError, OSError):
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            async with asyncio.timeout(15):  # redis exits in milliseconds on SIGTERM
                await self.process.wait()
            self.process = None


@pytest.fixture
async def spare_redis(tmp_path: Path) -> AsyncIterator[SpareRedis]:
    if shutil.which("redis-server") is None:
        missing_dependency("redis-server is not installed")
    server = SpareRedis(tmp_path)
    await server.start()
    yield server
    await server.stop()
