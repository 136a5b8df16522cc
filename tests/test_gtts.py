"""gTTS against a local HTTP server standing in for Google's batchexecute endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import numpy as np
import pytest
from aiohttp import web

from models.errors import EngineUnavailable
from models.metrics import EngineMetrics
from models.tts import EspeakEngine, GttsEngine, TtsService, TtsSettings
from models.tts.audio import encode_mp3
from models.tts.service import build_engines

TONE_S = 0.5


def tone_mp3() -> bytes:
    """A real MP3 (LAME via av) of a half-second 440 Hz tone at 24 kHz, as Google sends."""
    t = np.arange(int(24_000 * TONE_S)) / 24_000
    return encode_mp3((np.sin(2 * np.pi * 440 * t) * 12_000).astype(np.int16), 24_000)


def batchexecute_body(mp3: bytes) -> str:
    compact = (",", ":")  # Google's own spacing, which gTTS's parser relies on
    inner = json.dumps([base64.b64encode(mp3).decode()], separators=compact)
    outer = json.dumps(
        [["wrb.fr", "jQ1olc", inner, None, None, None, "generic"]], separators=compact
    )
    return ")]}'\n\n" + str(len(outer)) + "\n" + outer + "\n"


@dataclass
class FakeGoogle:
    """Answers each POST with the next scripted reply: 200, an error status, or 'hang'."""

    script: list[int | str]
    mp3: bytes = field(default_factory=tone_mp3)
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    url: str = ""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    #: Retry-After sent with each error status.
    retry_after: str = "0"

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(parse_qs(await request.text()))
        reply = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if reply == "hang":
            await self.released.wait()
            reply = 200
        if reply == "noaudio":
            return web.Response(text=")]}'\n\n[]")
        assert isinstance(reply, int)
        if reply != 200:
            return web.Response(status=reply, headers={"Retry-After": self.retry_after})
        return web.Response(text=batchexecute_body(self.mp3))


@pytest.fixture
async def google() -> AsyncIterator[FakeGoogle]:
    fake = FakeGoogle([200])
    app = web.Application()
    app.router.add_post("/_/TranslateWebserverUi/data/batchexecute", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}/_/TranslateWebserverUi/data/batchexecute"
    yield fake
    fake.released.set()
    await runner.cleanup()


def engine(fake: FakeGoogle, metrics: EngineMetrics | None = None, **options: float) -> GttsEngine:
    values: dict[str, float] = {"timeout_s": 1.0, "max_tries": 3, "backoff_s": 0.01}
    values.update(options)
    return GttsEngine(url=fake.url, metrics=metrics, **values)  # type: ignore[arg-type]


def http_outcomes(metrics: EngineMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "callserver_engine_requests_total",
        {"engine": "gtts", "operation": "http", "outcome": outcome},
    )
    return value or 0.0


async def test_success_decodes_google_mp3(google: FakeGoogle) -> None:
    tts = engine(google)
    speech = await tts.synthesize("Xin chào các bạn", "vi-VN")
    await tts.close()
    assert speech.sample_rate == 48_000 and speech.engine == "gtts" and speech.voice == "vi"
    assert abs(speech.duration_s - TONE_S) < 0.1
    assert np.abs(speech.samples).max() > 5000
    (request,) = google.requests
    rpc = json.loads(request["f.req"][0])
    assert rpc[0][0][0] == "jQ1olc"
    assert json.loads(rpc[0][0][1])[:2] == ["Xin chào các bạn", "vi"]


async def test_long_text_is_sent_in_parts(google: FakeGoogle) -> None:
    tts = engine(google)
    text = "This sentence is long enough. " * 8
    speech = await tts.synthesize(text, "en")
    await tts.close()
    assert len(google.requests) >= 3
    assert speech.duration_s > (len(google.requests) - 0.5) * TONE_S


async def test_429_then_success(google: FakeGoogle) -> None:
    google.script = [429, 200]
    metrics = EngineMetrics()
    tts = engine(google, metrics)
    speech = await tts.synthesize("hello", "en")
    await tts.close()
    assert speech.samples.size > 0
    assert len(google.requests) == 2
    assert http_outcomes(metrics, "429") == 1 and http_outcomes(metrics, "ok") == 1


async def test_persistent_5xx_gives_up_after_max_tries(google: FakeGoogle) -> None:
    google.script = [503]
    tts = engine(google, max_tries=4)
    with pytest.raises(EngineUnavailable, match="HTTP 503") as caught:
        await tts.synthesize("hello", "en")
    await tts.close()
    assert caught.value.retryable
    assert len(google.requests) == 4


async def test_client_error_is_not_retried(google: FakeGoogle) -> None:
    google.script = [400]
    tts = engine(google)
    with pytest.raises(EngineUnavailable, match="400"):
        await tts.synthesize("hello", "en")
    await tts.close()
    assert len(google.requests) == 1


async def test_timeout(google: FakeGoogle) -> None:
    google.script = ["hang"]
    metrics = EngineMetrics()
    tts = engine(google, metrics, timeout_s=0.2, max_tries=2)
    with pytest.raises(EngineUnavailable, match="timed out"):
        await tts.synthesize("hello", "en")
    await tts.close()
    assert http_outcomes(metrics, "timeout") == 2


async def test_response_without_audio(google: FakeGoogle) -> None:
    google.script = ["noaudio"]
    tts = engine(google)
    with pytest.raises(EngineUnavailable, match="no audio"):
        await tts.synthesize("hello", "en")
    await tts.close()


async def test_falls_back_to_espeak_when_google_fails(google: FakeGoogle) -> None:
    google.script = [503]
    tts = engine(google, max_tries=2)
    service = TtsService([tts, EspeakEngine()])
    speech = await service.synthesize("Xin chào", "vi")
    await service.aclose()
    assert speech.engine == "espeak" and speech.samples.size > 0
    assert len(google.requests) == 2


async def test_unreachable_endpoint_falls_back() -> None:
    tts = GttsEngine(url="http://127.0.0.1:9/unused", timeout_s=0.5, max_tries=2, backoff_s=0.01)
    service = TtsService([tts, EspeakEngine()])
    speech = await service.synthesize("hello", "en")
    await service.aclose()
    assert speech.engine == "espeak"


@pytest.mark.parametrize(
    ("retry_after", "waits"),
    [
        # An hour asked for: a dub must not wait that long, so the configured cap is waited.
        ("3600", [0.2, 0.2]),
        # Within the cap and above the back-off (0.01 s, 0.02 s): the server's wish is kept.
        ("0.1", [0.1, 0.1]),
    ],
)
async def test_retry_after_is_capped_by_backoff_max(
    google: FakeGoogle,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    retry_after: str,
    waits: list[float],
) -> None:
    google.script = [429, 429, 200]
    google.retry_after = retry_after
    monkeypatch.setenv("CALLSERVER_TTS_ENGINES", "gtts,espeak")
    monkeypatch.setenv("CALLSERVER_GTTS_URL", google.url)
    monkeypatch.setenv("CALLSERVER_GTTS_BACKOFF_S", "0.01")
    monkeypatch.setenv("CALLSERVER_GTTS_BACKOFF_MAX_S", "0.2")
    engines = build_engines(TtsSettings())
    try:
        (tts,) = [e for e in engines if isinstance(e, GttsEngine)]
        # Two capped waits take 0.4 s; an uncapped hour must fail the test, not hang it.
        async with asyncio.timeout(30):
            with caplog.at_level(logging.INFO, logger="models.tts.gtts_engine"):
                speech = await tts.synthesize("hello", "en")
    finally:
        for each in engines:
            await each.close()
    assert speech.engine == "gtts" and len(google.requests) == 3
    # The wait the engine chose, as it records it before sleeping (not wall time).
    chosen = [r.__dict__["delay_s"] for r in caplog.records if "delay_s" in r.__dict__]
    assert chosen == pytest.approx(waits)
