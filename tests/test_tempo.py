"""The time-stretcher the dub player catches up with: faster, same pitch, same words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.media.tempo import Stretcher
from callserver.probe import load_wav_48k
from models.stt.audio import pcm_audio
from models.stt.score import wer
from tests.conftest import CLIPS


def tone(hz: float, seconds: float, amplitude: float = 8000.0) -> Pcm16:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.rint(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def dominant_hz(samples: Pcm16) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.argmax(spectrum)) * SAMPLE_RATE / samples.size


def stretched(samples: Pcm16, tempo: float, piece: int = 700) -> Pcm16:
    """``samples`` through a stretcher, fed in pieces that are not whole frames."""
    stretcher = Stretcher(tempo)
    out = []
    for at in range(0, samples.size, piece):
        stretcher.feed(samples[at : at + piece])
        out.append(stretcher.take(333))
    stretcher.finish()
    out.append(stretcher.take(10**9))
    assert stretcher.available == 0
    return np.concatenate(out)


@pytest.mark.parametrize("tempo", [1.1, 1.25, 1.5, 2.0])
def test_faster_by_the_tempo_at_the_same_pitch_from_first_sample_to_last(tempo: float) -> None:
    source = tone(220, 3.0)
    out = stretched(source, tempo)
    assert out.size == pytest.approx(source.size / tempo, rel=0.01)
    assert dominant_hz(out) == pytest.approx(220, abs=2)  # resampling would give 220 * tempo
    # It starts and ends where the source does, so a stream can go on sample-exact after it.
    assert np.abs(out[:8].astype(int) - source[:8]).max() <= 3
    assert np.abs(out[-8:].astype(int) - source[-8:]).max() <= 3
    # No clicks: no step between samples much steeper than the tone's own steepest (measured:
    # 232 against 230 at every tempo).
    slope = 8000 * 2 * np.pi * 220 / SAMPLE_RATE
    assert np.abs(np.diff(out.astype(int))).max() <= 1.2 * slope


def test_tempo_changes_mid_stream() -> None:
    stretcher = Stretcher(1.25)
    first, second = tone(220, 2.0), tone(220, 2.0)
    stretcher.feed(first)
    stretcher.set_tempo(1.5)
    stretcher.feed(second)
    stretcher.finish()
    expected = first.size / 1.25 + second.size / 1.5
    assert stretcher.available == pytest.approx(expected, rel=0.02)


def test_bad_tempos_and_feeding_a_finished_stream_are_refused() -> None:
    with pytest.raises(ValueError, match="tempo"):
        Stretcher(2.5)
    stretcher = Stretcher(1.2)
    with pytest.raises(ValueError, match="tempo"):
        stretcher.set_tempo(0.1)
    stretcher.finish()
    with pytest.raises(RuntimeError):
        stretcher.feed(tone(220, 0.1))
    assert stretcher.take(960).size == 0


def test_recorded_speech_keeps_its_words_at_the_fastest_catch_up(whisper: Any) -> None:
    """A listener catching up at 1.5x hears the same words (Whisper tiny.en as the ear)."""
    said = [clip.with_suffix(".txt").read_text("utf-8").strip() for clip in CLIPS]
    speech = [load_wav_48k(str(clip)) for clip in CLIPS]

    def heard(pcm: Pcm16) -> str:
        audio = pcm_audio(pcm, SAMPLE_RATE)
        segments, _ = whisper.transcribe(audio, language="en", beam_size=1)
        return " ".join(segment.text for segment in segments)

    natural = wer(said, [heard(pcm) for pcm in speech])
    fast = wer(said, [heard(stretched(pcm, 1.5)) for pcm in speech])
    # Measured per clip: natural 0.00 / 0.25 / 0.29, 1.5x 0.00 / 0.25 / 0.00 (2x: 0.14 /
    # 0.25 / 0.29).
    assert fast <= natural + 0.05, (natural, fast)
