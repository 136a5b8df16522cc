"""Docker engine helpers for `make test-deploy`: commands in a thread, bounded waits, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")
_T0 = time.monotonic()


class ScenarioError(Exception):
    """A step of the scenario failed; the message says which and what was seen."""


def step(message: str) -> None:
    print(f"[test-deploy {time.monotonic() - _T0:6.1f}s] {message}", flush=True)


# --- docker -------------------------------------------------------------------------------------


def _run(argv: list[str], stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


async def docker(
    *args: str, check: bool = True, stdin: str | None = None, timeout: float = 120.0
) -> str:
    """Run ``docker ARGS`` in a thread (a call in progress keeps its event loop); its stdout."""
    proc = await asyncio.to_thread(_run, ["docker", *args], stdin, timeout)
    if check and proc.returncode != 0:
        raise ScenarioError(
            f"docker {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout.strip()


async def wait_until(
    what: str, probe: Callable[[], Awaitable[T | None]], timeout: float, interval: float = 1.0
) -> T:
    """Poll ``probe`` until it returns a value other than None, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise ScenarioError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


class Cleanup:
    """Undo actions, run last-registered first, each one bounded, failures reported not raised."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], Awaitable[object]]]] = []

    def add(self, what: str, action: Callable[[], Awaitable[object]]) -> None:
        self._actions.append((what, action))

    async def run(self) -> bool:
        clean = True
        while self._actions:
            what, action = self._actions.pop()
            try:
                await asyncio.wait_for(action(), 180)
                step(f"cleanup: {what}")
            except (ScenarioError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                clean = False
                step(f"cleanup FAILED: {what}: {exc}")
        return clean


# --- helpers ------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # the stack binds every address (host networking)
        except OSError:
            return False
    return True


async def http_status(session: aiohttp.ClientSession, url: str) -> int | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                lines.append(value)
    return lines


async def container_logs(container: str) -> str:
    proc = await asyncio.to_thread(_run, ["docker", "logs", container], None, 60)
    return proc.stdout + proc.stderr


async def inspect(obj: str) -> dict[str, Any]:
    data = json.loads(await docker("inspect", obj))
    assert isinstance(data, list) and data
    result: dict[str, Any] = data[0]
    return result


async def prometheus_up(session: aiohttp.ClientSession) -> str | None:
    """ "1" once Prometheus on 127.0.0.1:9090 has scraped callserver, else None."""
    url = "http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22callserver%22%7D"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
            result = (await resp.json())["data"]["result"]
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
        return None
    return str(result[0]["value"][1]) if result and result[0]["value"][1] == "1" else None
