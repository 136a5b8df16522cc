"""Backpressure: when recognition falls behind, waiting utterances are bounded and the oldest
waiting one is dropped, with a metric and a caption marker; the rest are still translated."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from callserver.engines import EngineSet
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.events import Utterance
from callserver.pipeline.hub import TranslationHub
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.settings import PipelineSettings
from models.errors import DeadlinePassed, EngineError, EngineUnavailable
from models.metrics import EngineMetrics
from models.stt.audio import decode_audio
from signaling.rooms import Participant
from tests.conftest import CLIPS, wait_for
from tests.hub_helpers import RecordingDelivery, make_hub


def utterance(n: int, audio: Any) -> Utterance:
    now = time.monotonic()
    return Utterance(f"u_{n}", audio, now - 3.0, now - 0.5 + n * 0.01, now + n * 0.01)


def bounded_hub(
    registry: CollectorRegistry, delivery: RecordingDelivery, people: list[Participant]
) -> tuple[TranslationHub, EngineSet]:
    """A hub over the real engines that lets one utterance wait for recognition."""
    settings = PipelineSettings(
        max_pending_utterances=1, recognition_slots=1, interim_captions=False
    )
    return make_hub(registry, delivery, people, settings)


def final_ids(delivery: RecordingDelivery, field: str) -> set[str]:
    """Utterances whose final caption has a non-empty ``field`` (text or translations)."""
    return {
        e["utterance_id"]
        for _, e in delivery.events
        if e["type"] == "caption" and e["final"] and e[field]
    }


async def test_oldest_waiting_utterance_is_dropped_past_the_bound() -> None:
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    speaker = Participant("p_a", "Ann", "en", "en", 0.0)
    listener = Participant("p_b", "Bea", "es", "es", 0.0)
    hub, engines = bounded_hub(registry, delivery, [speaker, listener])
    audio = decode_audio(str(CLIPS[1]))
    try:
        await (await engines.stt()).warm_up()
        hub.submit("room", "p_a", utterance(1, audio))
        await wait_for(lambda: hub.pending == 0, timeout=5)  # the first is being recognised
        for n in (2, 3, 4):
            hub.submit("room", "p_a", utterance(n, audio))
        assert hub.pending == 1
        await wait_for(lambda: final_ids(delivery, "translations") == {"u_1", "u_4"}, timeout=90)
        # The last dub is handed over after the caption that announced its translation.
        await wait_for(lambda: hub.idle, timeout=90)
    finally:
        await hub.close()
        await engines.close()
    dropped = [e for _, e in delivery.events if e["type"] == "caption-dropped"]
    assert {e["utterance_id"] for e in dropped} == {"u_2", "u_3"}
    assert {e["reason"] for e in dropped} == {"backlog"}
    # Both the speaker and the listener see the marker.
    assert {pid for pid, e in delivery.events if e["type"] == "caption-dropped"} == {"p_a", "p_b"}
    assert registry.get_sample_value(
        "callserver_utterances_total", {"outcome": "dropped_backlog"}
    ) == pytest.approx(2)
    assert [clip.utterance_id for _, clip in delivery.dubs] == ["u_1", "u_4"]


async def test_bound_holds_across_speakers_not_just_within_one() -> None:
    """Four speakers with one utterance each: the ones waiting for recognition are counted
    together, so the bound still drops the oldest waiting."""
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    people = [Participant(f"p_{n}", f"P{n}", "en", "es", 0.0) for n in range(4)]
    hub, engines = bounded_hub(registry, delivery, people)
    # Different sentences: the same words from another participant would be taken for echo.
    clips = [decode_audio(str(clip)) for clip in CLIPS]
    try:
        await (await engines.stt()).warm_up()
        hub.submit("room", "p_0", utterance(1, clips[1]))
        await wait_for(lambda: hub.pending == 0, timeout=5)
        for n in (2, 3, 4):
            hub.submit("room", f"p_{n - 1}", utterance(n, clips[(n + 1) % 3]))
        assert hub.pending == 1
        await wait_for(lambda: final_ids(delivery, "text") == {"u_1", "u_4"}, timeout=90)
        await wait_for(lambda: hub.idle, timeout=90)
    finally:
        await hub.close()
        await engines.close()
    dropped = {e["utterance_id"] for _, e in delivery.events if e["type"] == "caption-dropped"}
    assert dropped == {"u_2", "u_3"}


class FailingRecognizer:
    """Fault injection: a recogniser whose every job fails with ``error``."""

    pending = 0
    max_audio_s = 30.0

    def __init__(self, error: EngineError) -> None:
        self.error = error

    async def transcribe(self, audio: Any, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    async def warm_up(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {"engine": "late-workers"}

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "reason", "outcome"),
    [
        (
            DeadlinePassed("the job waited past its deadline on the workers"),
            "deadline",
            "dropped_deadline",
        ),
        (EngineUnavailable("the job queue is unreachable"), "unavailable", "failed"),
    ],
)
async def test_an_utterance_the_engines_cannot_take_is_dropped_with_a_marker(
    error: EngineError, reason: str, outcome: str
) -> None:
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    ann = Participant("p_a", "Ann", "en", "en", 0.0)
    bea = Participant("p_b", "Bea", "es", "es", 0.0)
    engines = EngineSet(EngineMetrics(registry), recognizer=FailingRecognizer(error))
    hub = TranslationHub(
        PipelineSettings(interim_captions=False),
        EndpointSettings(),
        engines,
        delivery,
        participants=lambda room_id: [ann, bea],
        metrics=PipelineMetrics(registry),
    )
    try:
        hub.submit("room", "p_a", utterance(0, np.zeros(16_000, np.float32)))
        await wait_for(lambda: hub.idle, timeout=30)
    finally:
        await hub.close()
        await engines.close()
    markers = [(pid, e) for pid, e in delivery.events if e["type"] == "caption-dropped"]
    assert sorted(pid for pid, _ in markers) == ["p_a", "p_b"]
    assert {e["reason"] for _, e in markers} == {reason}
    assert {e["utterance_id"] for _, e in markers} == {"u_0"}
    assert not delivery.dubs
    assert registry.get_sample_value("callserver_utterances_total", {"outcome": outcome}) == 1
