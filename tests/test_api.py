"""The speech API over HTTP: good requests, bad requests, and ten at once per endpoint."""

from __future__ import annotations

import asyncio
import io
import uuid
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from callserver.app import ENGINES
from tests.conftest import CLIPS, REDIS_URL, RunningServer

SHORT_CLIP = CLIPS[1]  # "he was not an ill disposed young man"


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(make_server_module: Callable[..., Any]) -> AsyncIterator[RunningServer]:
    async with make_server_module() as server:
        yield server


async def post_json(server: RunningServer, path: str, body: Any) -> tuple[int, Any]:
    async with server.session.post(server.url + path, json=body) as resp:
        return resp.status, await resp.json()


def error_code(body: Any) -> str:
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    code: str = body["error"]["code"]
    return code


async def test_stt_transcribes_raw_and_multipart_uploads(api: RunningServer) -> None:
    data = SHORT_CLIP.read_bytes()
    async with api.session.post(api.url + "/api/stt", data=data) as resp:
        assert resp.status == 200
        raw = await resp.json()
    assert "ill disposed young man" in raw["text"].lower().replace("-", " ")
    assert raw["language"] == "en"
    assert raw["duration"] == pytest.approx(3.0, abs=0.1)
    assert raw["segments"] and raw["timing_ms"]["recognize"] > 0
    form = aiohttp.FormData()
    form.add_field("file", data, filename="clip.wav", content_type="audio/wav")
    form.add_field("language", "en")
    async with api.session.post(api.url + "/api/stt", data=form) as resp:
        assert resp.status == 200
        assert (await resp.json())["text"] == raw["text"]


async def test_stt_bad_input(api: RunningServer, make_server: Callable[..., Any]) -> None:
    cases: list[tuple[bytes, str, int, str]] = [
        (b"", "", 400, "invalid_input"),
        (b"this is not audio at all" * 10, "", 400, "invalid_input"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4, "", 400, "invalid_input"),
        (SHORT_CLIP.read_bytes(), "?language=klingon", 422, "unsupported_language"),
    ]
    for body, query, status, code in cases:
        async with api.session.post(api.url + "/api/stt" + query, data=body) as resp:
            assert resp.status == status, (query, await resp.text())
            assert error_code(await resp.json()) == code
    async with (
        make_server(api_max_upload_bytes=4096) as small,
        small.session.post(small.url + "/api/stt", data=b"x" * 10_000) as resp,
    ):
        assert resp.status == 413
        assert error_code(await resp.json()) == "too_large"


async def test_translate_english_to_spanish_and_batches(api: RunningServer) -> None:
    status, body = await post_json(
        api, "/api/translate", {"text": "The house is big.", "source": "en", "target": "es"}
    )
    assert status == 200
    assert "casa" in body["translation"].lower() and "grande" in body["translation"].lower()
    assert body["engine"] == "apertium"
    status, body = await post_json(
        api,
        "/api/translate",
        {"texts": ["The dog is red.", "The house is big."], "source": "en", "target": "es"},
    )
    assert status == 200
    assert len(body["translations"]) == 2
    assert "perro" in body["translations"][0].lower()


async def test_translate_bad_input(api: RunningServer) -> None:
    cases: list[tuple[Any, int, str]] = [
        ({"text": "", "source": "en", "target": "es"}, 400, "invalid_input"),
        ({"text": "   ", "source": "en", "target": "es"}, 400, "invalid_input"),
        ({"text": 5, "source": "en", "target": "es"}, 400, "invalid_input"),
        ({"source": "en", "target": "es"}, 400, "invalid_input"),
        ({"text": "hi", "target": "es"}, 400, "invalid_input"),
        ({"texts": ["a"] * 1000, "source": "en", "target": "es"}, 400, "invalid_input"),
        ({"text": "x" * 100_000, "source": "en", "target": "es"}, 413, "too_large"),
        ({"text": "hello", "source": "en", "target": "tlh"}, 422, "unsupported_language"),
        ({"text": "hello", "source": "xx-nope", "target": "es"}, 422, "unsupported_language"),
        ([1, 2], 400, "invalid_input"),
    ]
    for body, status, code in cases:
        got_status, got = await post_json(api, "/api/translate", body)
        assert got_status == status, (body if len(str(body)) < 200 else "long", got)
        assert error_code(got) == code
    async with api.session.post(api.url + "/api/translate", data="{not json") as resp:
        assert resp.status == 400
        assert error_code(await resp.json()) == "invalid_input"


async def test_tts_returns_wav_and_mp3_and_caches(api: RunningServer) -> None:
    # The cache folder is shared by the whole session: a text no other request speaks makes the
    # first lookup a known miss.
    body = {
        "text": f"Good morning, everyone of room {uuid.uuid4().int % 10_000}.",
        "language": "en",
    }
    async with api.session.post(api.url + "/api/tts", json=body) as resp:
        assert resp.status == 200
        assert resp.content_type == "audio/wav"
        audio = await resp.read()
        assert resp.headers["X-Cache"] == "miss"
        engine = resp.headers["X-Engine"]
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48_000, 1, 2)
        assert w.getnframes() > 48_000 // 2
    async with api.session.post(api.url + "/api/tts", json=body) as resp:
        assert resp.headers["X-Cache"] == "hit"
        assert resp.headers["X-Engine"] == engine
        assert await resp.read() == audio
    async with api.session.post(
        api.url + "/api/tts", json={"text": "Hola a todos", "language": "es", "format": "mp3"}
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "audio/mpeg"
        mp3 = await resp.read()
    with av.open(io.BytesIO(mp3), mode="r") as container:
        assert sum(int(f.samples) for f in container.decode(audio=0)) > 10_000


async def test_tts_bad_input(api: RunningServer) -> None:
    cases: list[tuple[Any, int, str]] = [
        ({"text": "", "language": "en"}, 400, "invalid_input"),
        ({"text": "hi"}, 400, "invalid_input"),
        ({"text": "hi", "language": "en", "format": "ogg"}, 400, "invalid_input"),
        ({"text": "x" * 5000, "language": "en"}, 400, "invalid_input"),
        ({"text": "hi", "language": "tlh"}, 422, "unsupported_language"),
    ]
    for body, status, code in cases:
        got_status, got = await post_json(api, "/api/tts", body)
        assert got_status == status, (body if len(str(body)) < 200 else "long", got)
        assert error_code(got) == code


async def test_ten_concurrent_requests_to_each_endpoint(api: RunningServer) -> None:
    clip = SHORT_CLIP.read_bytes()

    async def stt() -> int:
        async with api.session.post(api.url + "/api/stt?language=en", data=clip) as resp:
            return resp.status if "young man" in (await resp.json())["text"] else 0

    async def translate(i: int) -> int:
        status, body = await post_json(
            api,
            "/api/translate",
            {"text": f"The house {i} is big.", "source": "en", "target": "es"},
        )
        return status if "casa" in body["translation"] else 0

    async def tts(i: int) -> int:
        body = {"text": f"Number {i} is ready.", "language": "en"}
        async with api.session.post(api.url + "/api/tts", json=body) as resp:
            return resp.status if len(await resp.read()) > 10_000 else 0

    async def get(path: str) -> int:
        async with api.session.get(api.url + path) as resp:
            await resp.json()
            return resp.status

    for batch in (
        [stt() for _ in range(10)],
        [translate(i) for i in range(10)],
        [tts(i) for i in range(10)],
        [get("/api/languages") for _ in range(10)],
        [get("/api/engines") for _ in range(10)],
    ):
        assert await asyncio.gather(*batch) == [200] * 10


async def test_catalogue_endpoints_and_stats(api: RunningServer) -> None:
    async with api.session.get(api.url + "/api/languages") as resp:
        languages = await resp.json()
    assert "vi" in languages["stt"]["faster-whisper"]
    assert ["en", "es"] in languages["translation"]["apertium"]["pairs"]
    assert "vi" in languages["tts"]["espeak"]
    async with api.session.get(api.url + "/api/engines") as resp:
        engines = await resp.json()
    assert engines["stt"]["loaded"] is True
    assert engines["stt"]["device"] == "cpu"
    # Each engine's model with its licence; NLLB's is flagged non-commercial.
    assert (engines["stt"]["licence"], engines["stt"]["non_commercial"]) == ("MIT", False)
    translation = {e["engine"]: e for e in engines["translation"]["engines"]}
    assert translation["apertium"]["licence"] == "GPL-2.0"
    if "nllb" in translation:  # pulled into this machine's models folder
        assert translation["nllb"]["non_commercial"] is True
    else:  # not installed: it claims no pair and says how to get it
        reason = engines["translation"]["unavailable"]["nllb"]
        assert "callserver models pull nllb-200-distilled-600M" in reason
        assert "nllb" not in languages["translation"]
    tts = {e["engine"]: e for e in engines["tts"]}
    assert tts["piper"]["licences"]["en_US-joe-medium"] == "CC0-1.0"
    assert tts["espeak"]["licence"] == "GPL-3.0-or-later"
    async with api.session.get(api.url + "/api/openapi.json") as resp:
        spec = await resp.json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/stt", "/api/translate", "/api/tts", "/api/languages"} <= set(spec["paths"])
    async with api.session.get(api.url + "/api/stats") as resp:
        stats = await resp.json()
    assert stats["endpoints"]["tts"]["requests"] >= 10
    assert stats["endpoints"]["tts"]["p95_ms"] >= stats["endpoints"]["tts"]["p50_ms"]
    assert stats["caches"]["tts"]["hits"] >= 1
    assert 0 < stats["caches"]["tts"]["hit_rate"] < 1


# --- documented options, each through a real server --------------------------------------------


def engine_runs(server: RunningServer, engine: str, operation: str) -> float:
    """How many times ``engine`` really ran ``operation`` (the cache did not answer)."""
    registry = server.app[ENGINES].metrics.registry
    value = registry.get_sample_value(
        "callserver_engine_requests_total",
        {"engine": engine, "operation": operation, "outcome": "ok"},
    )
    return value or 0.0


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_cache_disabled_runs_the_engines_every_time(
    make_server: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLSERVER_CACHE_ENABLED", "false")
    monkeypatch.setenv("CALLSERVER_CACHE_DIR", str(tmp_path / "cache"))
    tts_body = {"text": "Nothing of this is kept.", "language": "en"}
    mt_body = {"text": "The house is big.", "source": "en", "target": "es"}
    async with make_server() as server:
        for attempt in range(2):
            async with server.session.post(server.url + "/api/tts", json=tts_body) as resp:
                assert resp.status == 200
                assert resp.headers["X-Cache"] == "miss", attempt
                engine = resp.headers["X-Engine"]
            status, body = await post_json(server, "/api/translate", mt_body)
            assert status == 200 and "casa" in body["translation"].lower()
        assert engine_runs(server, engine, "synthesize") == 2
        assert engine_runs(server, "apertium", "translate") == 2
        async with server.session.get(server.url + "/api/stats") as resp:
            stats = await resp.json()
    assert stats["caches"]["tts"] == {"hits": 0, "misses": 2, "hit_rate": 0.0, "errors": 0}
    # With the cache off nothing is looked up, so the translation cache records no lookups.
    assert "mt" not in stats["caches"]
    assert files_under(tmp_path) == []


async def test_redis_url_shares_results_between_two_servers(
    make_server: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_prefix: str,
) -> None:
    monkeypatch.setenv("CALLSERVER_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("CALLSERVER_REDIS_KEY_PREFIX", redis_prefix)
    tts_body = {"text": "Shared between two nodes.", "language": "en"}
    mt_body = {"text": "The red dog is here.", "source": "en", "target": "es"}
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        monkeypatch.setenv("CALLSERVER_CACHE_DIR", str(tmp_path / "node-a"))
        async with make_server() as node_a:
            async with node_a.session.post(node_a.url + "/api/tts", json=tts_body) as resp:
                assert resp.status == 200 and resp.headers["X-Cache"] == "miss"
                audio = await resp.read()
            status, made = await post_json(node_a, "/api/translate", mt_body)
            assert status == 200
        stored = sorted([k.decode() async for k in client.scan_iter(match=f"{redis_prefix}*")])
        assert [k.removeprefix(redis_prefix).split("-")[0] for k in stored] == ["mt", "tts"]

        # A second node with an empty folder of its own: only Redis can answer it.
        monkeypatch.setenv("CALLSERVER_CACHE_DIR", str(tmp_path / "node-b"))
        async with make_server() as node_b:
            async with node_b.session.post(node_b.url + "/api/tts", json=tts_body) as resp:
                assert resp.status == 200 and resp.headers["X-Cache"] == "hit"
                assert await resp.read() == audio
                engine = resp.headers["X-Engine"]
            status, again = await post_json(node_b, "/api/translate", mt_body)
            assert status == 200 and again["translation"] == made["translation"]
            assert engine_runs(node_b, "apertium", "translate") == 0
            assert engine_runs(node_b, engine, "synthesize") == 0
            async with node_b.session.get(node_b.url + "/api/stats") as resp:
                caches = (await resp.json())["caches"]
        assert (caches["tts"]["hits"], caches["mt"]["hits"]) == (1, 1)
        # The Redis hits were copied into node B's own file layer.
        assert len(files_under(tmp_path / "node-b")) == 2
    finally:
        await client.aclose()


async def test_max_texts_at_the_limit_and_one_over(
    make_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLSERVER_API_MAX_TEXTS", "3")
    texts = ["The dog is red.", "The house is big.", "The cat is small.", "Where is the car?"]
    async with make_server() as server:
        status, body = await post_json(
            server, "/api/translate", {"texts": texts[:3], "source": "en", "target": "es"}
        )
        assert status == 200, body
        assert len(body["translations"]) == 3
        assert all(t.strip() for t in body["translations"])
        status, body = await post_json(
            server, "/api/translate", {"texts": texts, "source": "en", "target": "es"}
        )
        assert status == 400
        assert error_code(body) == "invalid_input"
        assert "between 1 and 3 texts" in body["error"]["message"]


async def test_stt_allowed_restricts_detection(api: RunningServer) -> None:
    clip = SHORT_CLIP.read_bytes()

    async def stt(query: str) -> tuple[int, Any]:
        async with api.session.post(api.url + "/api/stt" + query, data=clip) as resp:
            return resp.status, await resp.json()

    # English speech with English left out: detection must pick from the set it was given.
    status, forced = await stt("?allowed=es,fr")
    assert status == 200, forced
    # Measured: fr 0.83 and es 0.17 once renormalised over the two, a margin no kernel
    # difference closes; free detection says en (test_stt_transcribes_raw_and_multipart_uploads).
    assert forced["language"] == "fr", forced
    assert forced["language_probability"] > 0.5
    status, refused = await stt("?allowed=en,klingon")
    assert status == 422, refused
    assert error_code(refused) == "unsupported_language"
    assert "klingon" in refused["error"]["message"]


async def test_tts_named_voice_is_used_and_unknown_voice_refused(api: RunningServer) -> None:
    async with api.session.get(api.url + "/api/languages") as resp:
        espeak_voices = (await resp.json())["tts"]["espeak"]
    default = espeak_voices["en"][0]
    # Another English voice espeak-ng has, so the answer shows the request's voice won.
    other = next(
        voices[0]
        for tag, voices in espeak_voices.items()
        if tag.startswith("en-") and voices[0] != default
    )
    body = {"text": "Which voice is this?", "language": "en", "voice": other}
    async with api.session.post(api.url + "/api/tts", json=body) as resp:
        assert resp.status == 200, await resp.text()
        assert (resp.headers["X-Engine"], resp.headers["X-Voice"]) == ("espeak", other)
        named = await resp.read()
    body["voice"] = default
    async with api.session.post(api.url + "/api/tts", json=body) as resp:
        assert resp.status == 200
        assert resp.headers["X-Voice"] == default
        assert await resp.read() != named
    status, refused = await post_json(
        api, "/api/tts", {"text": "hi", "language": "en", "voice": "no-such-voice"}
    )
    assert status == 422, refused
    assert error_code(refused) == "unsupported_language"
    assert "no-such-voice" in refused["error"]["message"]
