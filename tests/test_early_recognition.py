"""Recognition starts when a speaker pauses, before the endpoint is sure, and its result is
used only for the utterance it heard: speech that resumes after the pause discards it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from callserver.engines import EngineSet
from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16, PcmFrame
from callserver.pipeline.echo import words
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.hub import TranslationHub
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.settings import PipelineSettings
from callserver.probe import load_wav_48k, trim_silence
from models.metrics import EngineMetrics
from models.pool import InferencePool
from models.stt.audio import Audio
from models.stt.result import Transcript
from models.stt.whisper import WhisperEngine
from signaling.rooms import Participant
from tests.conftest import DATA, wait_for
from tests.hub_helpers import RecordingDelivery

FIRST = DATA / "sense_and_sensibility_01_austen_64kb-0880.wav"  # he was not an ill-disposed...
SECOND = DATA / "sense_and_sensibility_01_austen_64kb-0890.wav"  # unless to be rather cold...
#: Pushing frames this much faster than real time keeps the test short; voice detection
#: still sees every frame in order, with the capture times of a real stream.
SPEED = 4.0


def trimmed(path: str) -> Pcm16:
    """The clip without its leading and trailing near-silence."""
    return trim_silence(load_wav_48k(path))


def noise(seconds: float, seed: int) -> Pcm16:
    rng = np.random.default_rng(seed)
    return (60 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.int16)


async def speak(hub: TranslationHub, stream: Pcm16, speed: float = SPEED) -> None:
    """Ann's microphone: 20 ms frames with real-time capture stamps, sent ``speed`` times
    faster than real time."""
    t0 = time.monotonic()
    for i in range(stream.size // FRAME_SAMPLES):
        block = stream[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
        hub.on_frame("room", "p_a", PcmFrame(block, captured_at=t0 + (i + 1) * 0.02))
        await asyncio.sleep(0.02 / speed)


def ann_to_bea(
    registry: CollectorRegistry, delivery: RecordingDelivery, engines: EngineSet, **settings: Any
) -> TranslationHub:
    """A hub in which Ann speaks English to Bea, who hears Spanish; no interim captions
    unless ``settings`` ask for them."""
    ann = Participant("p_a", "Ann", "en", "en", 0.0)
    bea = Participant("p_b", "Bea", "es", "es", 0.0)
    return TranslationHub(
        PipelineSettings(**{"interim_captions": False, **settings}),
        EndpointSettings(),
        engines,
        delivery,
        participants=lambda room_id: [ann, bea],
        metrics=PipelineMetrics(registry),
    )


def paused_sentences() -> Pcm16:
    """Two sentences 350 ms apart (under the 500 ms that ends an utterance), then silence."""
    return np.concatenate(
        [noise(0.5, 0), trimmed(str(FIRST)), noise(0.35, 1), trimmed(str(SECOND)), noise(1.5, 2)]
    )


@pytest.mark.parametrize("early", [True, False])
async def test_a_pause_inside_a_sentence_does_not_split_or_lose_it(early: bool) -> None:
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    engines = EngineSet(EngineMetrics(registry))
    hub = ann_to_bea(registry, delivery, engines, early_recognition=early)
    stream = paused_sentences()

    def finals() -> list[dict[str, object]]:
        return [e for pid, e in delivery.events if pid == "p_b" and e.get("final")]

    try:
        await (await engines.stt()).warm_up()
        await speak(hub, stream)
        # Every frame is in the hub already: idle means the sentence is done with, so a
        # second utterance split off it could not still be on its way.
        await wait_for(lambda: hub.idle, timeout=90)
    finally:
        await hub.close()
        await engines.close()

    (utterance,) = {e["utterance_id"] for e in finals()}
    said = set(words(str(finals()[-1]["text"])))
    assert {"young", "man"} <= said and {"selfish", "rather"} <= said, said
    # One utterance's dubs (with streaming, the clause before the pause may be one of them).
    assert {clip.utterance_id for _, clip in delivery.dubs} == {utterance}

    def early_count(outcome: str) -> float:
        value = registry.get_sample_value(
            "callserver_early_recognitions_total", {"outcome": outcome}
        )
        return value or 0.0

    if early:
        # The mid-sentence pause started a recognition that the second sentence made stale;
        # the final pause's recognition became the utterance's text.
        assert early_count("used") == 1
        assert early_count("discarded") >= 1
    else:
        assert early_count("used") == early_count("discarded") == 0


class SlowRecognizer:
    """Fault injection: the real recogniser, each decode held ``delay_s`` longer in its thread,
    counting how many decodes run at once (a cancelled caller does not stop its thread)."""

    def __init__(self, real: WhisperEngine, delay_s: float) -> None:
        self.real, self.delay_s = real, delay_s
        self.pool = InferencePool("slow-stt", workers=4, max_queue=16)
        self.running = self.most_running = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self.pool.depth

    @property
    def max_audio_s(self) -> float:
        return self.real.max_audio_s

    def _decode(self, audio: Audio, language: str | None, live: bool, draft: bool) -> Transcript:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(self.delay_s)
            return self.real.transcribe_sync(audio, language, None, live, draft)
        finally:
            with self._lock:
                self.running -= 1

    async def transcribe(
        self,
        audio: Audio,
        language: str | None = None,
        allowed: Sequence[str] | None = None,
        live: bool = False,
        draft: bool = False,
        to_english: bool = False,
    ) -> Transcript:
        return await self.pool.run(self._decode, audio, language, live, draft)

    async def warm_up(self) -> None:
        await self.real.warm_up()

    def info(self) -> dict[str, Any]:
        return {"engine": "slow-stt"}

    async def aclose(self) -> None:
        self.pool.close()
        await self.real.aclose()


async def test_a_discarded_early_recognition_keeps_its_slot_until_its_decode_ends() -> None:
    # One recognition slot. The mid-sentence pause starts an early decode; the second sentence
    # makes it stale while its thread is still decoding (each decode is held 2 s). Cancelling
    # it used to free the slot at once, and the final utterance's decode ran beside it.
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    stt = SlowRecognizer(WhisperEngine(), delay_s=2.0)
    engines = EngineSet(EngineMetrics(registry), recognizer=stt)
    hub = ann_to_bea(registry, delivery, engines, early_recognition=True, recognition_slots=1)
    try:
        await stt.warm_up()
        await speak(hub, paused_sentences())
        await wait_for(lambda: hub.idle, timeout=90)
        # Idle waited for the discarded decode too: nothing is left running.
        assert stt.pending == 0 and stt.running == 0
    finally:
        await hub.close()
        await engines.close()

    discarded = registry.get_sample_value(
        "callserver_early_recognitions_total", {"outcome": "discarded"}
    )
    assert discarded is not None and discarded >= 1
    assert stt.most_running == 1
    finals = [e for pid, e in delivery.events if pid == "p_b" and e.get("final")]
    said = set(words(str(finals[-1]["text"])))
    assert {"young", "man"} <= said and {"selfish", "rather"} <= said, said
