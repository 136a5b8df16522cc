"""Shared benchmark helpers: statistics and a server run as its own process."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callserver.media.frames import Pcm16
from callserver.probe import load_wav_48k

ROOT = Path(__file__).resolve().parent.parent
CLIPS = sorted((ROOT / "tests" / "data").glob("*.wav"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def summary(values: list[float], scale: float = 1000.0, unit: str = "ms") -> str:
    """``p50 X ms, p95 Y ms (n=N)``."""
    low, high = p50(values) * scale, p95(values) * scale
    return f"p50 {low:.1f} {unit}, p95 {high:.1f} {unit} (n={len(values)})"


def speech() -> Pcm16:
    """The three test clips back to back, 48 kHz mono."""
    return np.concatenate([load_wav_48k(str(c)) for c in CLIPS])


#: The media plane alone: no translation pipeline, no engines loading in the background.
MEDIA_ONLY = {"CALLSERVER_TRANSLATE_CALLS": "false", "CALLSERVER_PRELOAD_ENGINES": "false"}


@dataclass
class ServerProcess:
    """``callserver serve`` in a child process, on a free loopback port."""

    proc: asyncio.subprocess.Process
    url: str

    @classmethod
    async def start(cls, command: str = "serve", **env: str) -> ServerProcess:
        """``callserver serve`` (or ``worker``, whose ``url`` is empty) with ``env``."""
        full_env = {
            **os.environ,
            "CALLSERVER_PORT": "0",
            "CALLSERVER_ICE_HOST_ADDRESSES": "127.0.0.1",
            "CALLSERVER_JOINS_PER_MINUTE": "100000",
            "CALLSERVER_LOG_LEVEL": "WARNING",
            **env,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callserver",
            command,
            stdout=asyncio.subprocess.PIPE,
            env=full_env,
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if command == "worker" and "is taking jobs" in line:
            return cls(proc, "")
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if match is None:
            raise RuntimeError(f"{command} did not start: {line!r}")
        return cls(proc, match.group(0))

    async def wait_ready(self, session: Any, timeout: float = 120.0) -> None:
        """Until /readyz answers 200 (the engines, or a worker's, are warm)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with session.get(self.url + "/readyz") as resp:
                if resp.status == 200:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.url} not ready after {timeout} s")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    async def stop(self) -> None:
        self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 30)


def metric(text: str, name: str) -> float:
    """One sample's value from Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
