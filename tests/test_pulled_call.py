"""A Vietnamese and an English speaker, before and after an operator pulls NLLB into a running
server with the real ``callserver models pull`` (from a local mirror holding a test-built
NLLB-format model: model hubs are out of reach here)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bench.translated_call import espeak
from callserver.engines import EngineSet
from callserver.media.frames import Pcm16
from models.metrics import EngineMetrics
from models.mt.settings import MtSettings
from models.mt.synthetic import TINY
from tests.conftest import RunningServer, wait_for
from tests.model_hub import mirror_translation_model
from tests.pipeline_helpers import (
    TIMEOUT,
    TINY_NLLB_DECODING,
    VIETNAMESE_TEXT,
    callers,
    drain,
    finals,
    latencies,
    speech_then_silence,
)

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.needs("apertium", "espeak-ng"),
]

NLLB = "nllb-200-distilled-600M"
STAGES = ("endpoint", "recognize", "translate", "synthesize", "first_dub_frame", "mouth_to_ear")


@pytest.fixture(scope="module")
def model_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An empty models folder and a mirror hub holding a test-built NLLB, for the server and
    for the ``callserver models pull`` the test runs."""
    root = tmp_path_factory.mktemp("pull")
    hub = root / "hub"
    mirror_translation_model(hub, NLLB, TINY, root / "build")
    env = {"CALLSERVER_MODELS_DIR": str(root / "models"), "CALLSERVER_MODELS_HUB": str(hub)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="module")
def vietnamese(tmp_path_factory: pytest.TempPathFactory) -> Pcm16:
    return espeak(VIETNAMESE_TEXT, "vi", tmp_path_factory.mktemp("espeak"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    make_server_module: Callable[..., Any], model_env: dict[str, str]
) -> AsyncIterator[RunningServer]:
    engines = EngineSet(
        EngineMetrics(),
        mt_settings=MtSettings(engines=["apertium", "nllb"], recheck_s=0.2, **TINY_NLLB_DECODING),
    )
    async with make_server_module(translate_calls=True, engines=engines) as running:
        await (await engines.stt()).warm_up()
        yield running


async def vi_en(server: RunningServer) -> dict[str, Any]:
    async with server.session.get(server.url + "/api/config") as resp:
        pair: dict[str, Any] = (await resp.json())["pairs"]["vi"]["en"]
    return pair


async def test_a_model_pulled_while_the_server_runs_dubs_vietnamese_into_english(
    server: RunningServer, model_env: dict[str, str], vietnamese: Pcm16
) -> None:
    assert (await vi_en(server))["gives"] == "original"

    pulled = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "callserver", "models", "pull", NLLB],
        env={**os.environ, **model_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert "CC-BY-NC-4.0" in pulled.stdout + pulled.stderr
    assert (Path(model_env["CALLSERVER_MODELS_DIR"]) / NLLB / "model.bin").is_file()

    # No restart: the server starts the engine it could not start before, and says so.
    async with asyncio.timeout(TIMEOUT):
        while (pair := await vi_en(server))["gives"] != "voice":
            await asyncio.sleep(0.1)
    assert pair == {"gives": "voice", "translation": ["nllb"], "voice": pair["voice"]}, pair
    assert pair["voice"] in ("piper", "espeak")
    async with server.session.get(server.url + "/api/languages") as resp:
        # The late engine takes its configured place in the chain: after Apertium.
        assert (await resp.json())["pairs"]["en"]["es"]["translation"] == ["apertium", "nllb"]

    async with callers(
        server,
        "pulled-vi-en",
        {"name": "Lan", "spoken": "vi", "listen": "vi"},
        {"name": "Bob", "spoken": "en", "listen": "en"},
    ) as (lan, bob):
        lan.play(speech_then_silence(vietnamese))
        await drain(server, lan)
        await wait_for(lambda: bool(latencies(bob)), TIMEOUT)
        caption = next(c for c in finals(bob, lan) if c["translations"].get("en", "").strip())
        assert caption["language"] == "vi" and caption["text"].strip()
        latency = latencies(bob)[0]
        assert latency["utterance_id"] == caption["utterance_id"] and latency["language"] == "en"
        assert all(latency["stages_ms"][s] >= 0 for s in STAGES), latency
        assert not [e for e in bob.events if e.get("type") == "notice"], bob.events
