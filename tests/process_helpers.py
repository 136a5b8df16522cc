"""A real ``callserver serve`` process for tests of what only a process shows (signals, logs)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp


async def terminate(proc: asyncio.subprocess.Process, timeout: float = 10) -> None:
    """SIGTERM ``proc`` and wait; SIGKILL it if it is still running after ``timeout``."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@dataclass
class ServerProcess:
    """A running server process and the URL it listens on."""

    proc: asyncio.subprocess.Process
    url: str

    async def wait_ready(self, timeout: float = 60) -> None:
        """Poll /readyz until 200: the engines' warm-up (the Whisper load) has finished."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(self.url + "/readyz") as resp:
                    if resp.status == 200:
                        return
                assert loop.time() < deadline, f"not ready after {timeout} s"
                await asyncio.sleep(0.1)

    async def stop(self) -> tuple[int, str]:
        """SIGTERM, wait, and return the exit status and everything it logged."""
        if self.proc.returncode is None:
            self.proc.terminate()
        code = await asyncio.wait_for(self.proc.wait(), 15)
        assert self.proc.stderr is not None
        return code, (await self.proc.stderr.read()).decode()


async def start_server(
    drain_timeout_s: float = 5, *, wrap: Sequence[str] = (), **extra_env: str
) -> ServerProcess:
    """``callserver serve`` on a free loopback port, run through ``wrap`` (e.g. setpriv)."""
    env = {
        **os.environ,
        "CALLSERVER_PORT": "0",
        "CALLSERVER_ICE_HOST_ADDRESSES": "127.0.0.1",
        "CALLSERVER_DRAIN_TIMEOUT_S": str(drain_timeout_s),
        **extra_env,
    }
    proc = await asyncio.create_subprocess_exec(
        *wrap,
        sys.executable,
        "-m",
        "callserver",
        "serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        proc.kill()
        assert proc.stderr is not None
        raise AssertionError(line + (await proc.stderr.read()).decode())
    return ServerProcess(proc, match.group(0))
