"""The translation hub's end signal, and echo of a voice heard in another language, with the
real engines (Silero, Whisper, Apertium, espeak-ng) and no media plane in between."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame, silence
from callserver.pipeline.echo import words
from callserver.pipeline.events import Utterance
from callserver.pipeline.settings import PipelineSettings
from callserver.probe import load_wav_48k
from models.stt.audio import decode_audio
from signaling.rooms import Participant
from tests.conftest import CLIPS, wait_for
from tests.hub_helpers import RecordingDelivery, make_hub

pytestmark = pytest.mark.needs("apertium", "espeak-ng")

ANN = Participant("p_a", "Ann", "en", "en", 0.0)
BEA = Participant("p_b", "Bea", "es", "es", 0.0)


def outcome(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value("callserver_utterances_total", {"outcome": name})
    return value or 0.0


async def test_idle_only_once_speech_has_become_a_dub() -> None:
    """All of a sentence's frames arrive at once: the hub is busy through detection,
    recognition, translation and synthesis, and idle only when the dub is handed over."""
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    # A queue long enough for the whole stream: no frame may be dropped here.
    hub, engines = make_hub(registry, delivery, [ANN, BEA], PipelineSettings(frame_queue_max=1000))
    # Leading silence: detection is well under way before any speech is found.
    stream = np.concatenate(
        (silence(2 * SAMPLE_RATE), load_wav_48k(str(CLIPS[1])), silence(SAMPLE_RATE))
    )
    frames = stream[: stream.size - stream.size % FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    try:
        await (await engines.stt()).warm_up()
        assert hub.idle  # nothing received yet
        t0 = time.monotonic()
        for i, block in enumerate(frames):
            hub.on_frame("room", "p_a", PcmFrame(block, captured_at=t0 + (i + 1) * 0.02))
        assert hub.frames_received("p_a") == len(frames)
        assert not hub.idle
        await wait_for(lambda: hub.idle, timeout=90)
        # Idle came after everything, not in a gap between two stages.
        assert [listener for listener, _ in delivery.dubs] == ["p_b"]
        assert outcome(registry, "translated") == 1
    finally:
        await hub.close()
        await engines.close()


@pytest.fixture(scope="module")
def espeak(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bea's Spanish sentence, and the English words of its translation, by espeak-ng."""
    folder = tmp_path_factory.mktemp("espeak")
    texts = {
        "es": "Buenos días a todos. La casa es muy grande y bonita.",
        "en": "The house is very big and beautiful.",
    }
    paths = {}
    for language, text in texts.items():
        paths[language] = folder / f"{language}.wav"
        subprocess.run(
            ["espeak-ng", "-v", language, "-w", str(paths[language]), text], check=True, timeout=30
        )
    return paths


async def test_echo_in_another_language_waits_for_the_translation(
    espeak: dict[str, Path],
) -> None:
    """Bea speaks Spanish, and a moment later Ann's microphone gives English words of Bea's
    translation: what Whisper, told to hear English, made of Bea's voice from Ann's
    loudspeaker in a live call ("UNO and self, desados, the house is very big and
    beautiful."). Ann's shorter utterance is recognised first, before Bea's translation
    exists; it must wait for that translation, which shows it is an echo."""
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    hub, engines = make_hub(
        registry,
        delivery,
        [ANN, BEA],
        PipelineSettings(recognition_slots=2, early_recognition=False, interim_captions=False),
    )
    now = time.monotonic()
    spoken = Utterance("u_bea", decode_audio(str(espeak["es"])), now - 4.0, now - 0.5, now)
    echo = Utterance("u_ann", decode_audio(str(espeak["en"])), now - 2.4, now - 0.4, now)
    try:
        await (await engines.stt()).warm_up()
        hub.submit("room", "p_b", spoken)
        hub.submit("room", "p_a", echo)
        await wait_for(lambda: hub.idle, timeout=90)
    finally:
        await hub.close()
        await engines.close()
    finals = [(e["utterance_id"], e) for _, e in delivery.events if e["type"] == "caption"]
    bea = [e for u, e in finals if u == "u_bea" and e["final"] and e["translations"].get("en")]
    assert bea, finals
    assert {"house", "big", "beautiful"} <= set(words(bea[-1]["translations"]["en"])), bea
    ann = [e for u, e in finals if u == "u_ann" and e["final"]]
    assert ann and not any(e["text"] for e in ann), ann  # only the empty, retracting final
    assert outcome(registry, "echo") == 1 and outcome(registry, "translated") == 1
    # Only Bea's words were dubbed, to Ann; nothing went back to Bea.
    assert [(listener, clip.utterance_id) for listener, clip in delivery.dubs] == [("p_a", "u_bea")]
