"""One contract for every implementation of the engine interfaces (``models/interfaces.py``).

Today the implementations are the in-process engines an ``EngineSet`` builds; an engine set
that runs them elsewhere is held to the same tests by adding it to ``IMPLEMENTATIONS``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from callserver.engines import EngineSet
from models.errors import EngineUnavailable, InvalidInput, UnsupportedLanguage
from models.metrics import EngineMetrics
from models.stt.audio import decode_audio
from tests.conftest import CLIPS

#: Each makes an engine set; "in-process" is the embedded default.
IMPLEMENTATIONS: dict[str, Callable[[], EngineSet]] = {
    "in-process": lambda: EngineSet(EngineMetrics(CollectorRegistry())),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def engines(request: pytest.FixtureRequest) -> AsyncIterator[EngineSet]:
    made = IMPLEMENTATIONS[request.param]()
    yield made
    await made.close()


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
