"""One contract for every implementation of the engine interfaces (``models/interfaces.py``):
the in-process engines, and the same engines on an inference worker reached over Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from callserver.cluster import ClusterSettings, remote_engines
from callserver.engines import EngineSet
from callserver.worker import Worker
from models.errors import EngineUnavailable, InvalidInput, UnsupportedLanguage
from models.metrics import EngineMetrics
from models.remote.queue import JobQueue
from models.stt.audio import decode_audio
from tests.conftest import CLIPS, REDIS_URL


@contextlib.asynccontextmanager
async def in_process(prefix: str) -> AsyncIterator[EngineSet]:
    engines = EngineSet(EngineMetrics(CollectorRegistry()))
    try:
        yield engines
    finally:
        await engines.close()


@contextlib.asynccontextmanager
async def on_a_worker(prefix: str) -> AsyncIterator[EngineSet]:
    """The node's remote engines, served by a worker (its loop in this process) over Redis."""
    worker_engines = EngineSet(EngineMetrics(CollectorRegistry()))
    queue = JobQueue(REDIS_URL, prefix=prefix)
    worker = Worker(worker_engines, queue, "contract-worker", slots=1)
    working = asyncio.create_task(worker.run())
    settings = ClusterSettings(key_prefix=prefix, job_budget_s=60)
    node = remote_engines(REDIS_URL, "contract-node", settings, EngineMetrics(CollectorRegistry()))
    try:
        yield node
    finally:
        await node.close()
        worker.stop()
        await working
        await worker_engines.close()
        await queue.aclose()


#: Each implementation of the engine interfaces, as the engine set a server would hold.
IMPLEMENTATIONS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[EngineSet]]] = {
    "in-process": in_process,
    "on-a-worker": on_a_worker,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def engines(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[EngineSet]:
    async with IMPLEMENTATIONS[request.param](redis_prefix) as made:
        yield made


async def pending_while_running(pending: Callable[[], int], work: Awaitable[object]) -> int:
    """The most ``pending`` said while ``work`` ran; it must be back to 0 after."""
    task = asyncio.ensure_future(work)
    most = 0
    while not task.done():
        await asyncio.sleep(0)  # one step of the work at a time, so no moment of it is missed
        most = max(most, pending())
    await task
    assert pending() == 0
    return most


async def test_recognizer(engines: EngineSet) -> None:
    stt = await engines.stt()
    await stt.warm_up()
    audio = decode_audio(CLIPS[1].read_bytes(), stt.max_audio_s)
    expected = set(CLIPS[1].with_suffix(".txt").read_text().lower().split()[:3])
    assert await pending_while_running(lambda: stt.pending, stt.transcribe(audio, "en")) >= 1
    transcript = await stt.transcribe(audio, language="en", live=True)
    assert expected <= set(transcript.text.lower().replace(",", "").split())
    assert transcript.language == "en" and transcript.duration == pytest.approx(audio.size / 16000)
    for bad in (np.zeros(0, np.float32), np.zeros(16000, np.int16)):
        with pytest.raises(InvalidInput):
            await stt.transcribe(bad)  # type: ignore[arg-type]
    too_long = np.zeros(int((stt.max_audio_s + 1) * 16000), np.float32)
    with pytest.raises(InvalidInput):
        await stt.transcribe(too_long)
    assert stt.info()["loaded"] is True
    await stt.aclose()
    with pytest.raises(EngineUnavailable) as err:
        await stt.transcribe(audio)
    assert not err.value.retryable


@pytest.mark.needs("apertium")
async def test_translator(engines: EngineSet) -> None:
    mt = await engines.translation()
    await mt.warm_up()
    assert mt.engine_names("en", "es")
    fresh = f"good morning {uuid.uuid4().hex[:6]}"  # not in any cache: really translated
    most = await pending_while_running(lambda: mt.pending, mt.translate(fresh, "en", "es"))
    assert most >= 1
    assert await mt.translate("good morning", "en", "es") == "buenos días"
    many = await mt.translate_many(["good morning", "thank you", "good morning"], "en", "es")
    assert len(many) == 3 and many[0] == many[2] == "buenos días" and many[1] != many[0]
    assert mt.engine_names("en", "tlh") == []
    with pytest.raises(UnsupportedLanguage):
        await mt.translate("hello", "en", "tlh")
    assert any(support.pairs for support in mt.languages())
    await mt.aclose()


async def test_synthesizer(engines: EngineSet) -> None:
    tts = await engines.tts()
    await tts.warm_up()
    assert "en" in {lang.split("-")[0] for voices in tts.voices().values() for lang in voices}
    fresh = f"Hello there, {uuid.uuid4().hex[:6]}."
    most = await pending_while_running(lambda: tts.pending, tts.synthesize(fresh, "en"))
    assert most >= 1
    speech = await tts.synthesize("Hello there.", "en")
    assert speech.sample_rate == 48000 and speech.samples.dtype == np.int16
    assert 0.3 < speech.duration_s < 5 and np.abs(speech.samples).max() > 1000
    with pytest.raises(UnsupportedLanguage):
        await tts.synthesize("hello", "tlh")
    with pytest.raises(InvalidInput):
        await tts.synthesize("   ", "en")
    assert tts.info()
    await tts.aclose()
