"""The envelope check the call tests rely on: it follows underruns and drops, and it can fail."""

from __future__ import annotations

import numpy as np

from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16, silence
from callserver.probe import load_wav_48k
from tests.caller_helpers import slipping_envelope_match
from tests.conftest import CLIPS


def _blocks(samples: Pcm16) -> list[Pcm16]:
    usable = samples[: samples.size - samples.size % FRAME_SAMPLES]
    return list(usable.reshape(-1, FRAME_SAMPLES))


def _heard(clip: Pcm16, underruns: dict[int, int], drops: dict[int, int]) -> Pcm16:
    """``clip`` after 10 blocks of silence, with silent blocks inserted and blocks dropped."""
    out = [silence() for _ in range(10)]
    for i, block in enumerate(_blocks(clip)):
        if drops.get(i, 0) > 0:
            drops[i + 1] = drops[i] - 1
            continue
        out.append(block)
        out += [silence() for _ in range(underruns.get(i, 0))]
    return np.concatenate(out)


def test_underruns_and_drops_in_a_clip_that_arrived_still_match(speech: Pcm16) -> None:
    clip = speech[: SAMPLE_RATE * 3]
    # What a loaded machine did to a call in CI: two silent blocks mid-clip (r was 0.86),
    # here with a dropped pair and a second underrun on top.
    heard = _heard(clip, underruns={90: 2, 120: 1}, drops={40: 2})
    match = slipping_envelope_match(clip, heard)
    assert match > 0.9
    assert slipping_envelope_match(clip[::-1].copy(), heard) < match - 0.2


def test_another_sentence_does_not_match(speech: Pcm16) -> None:
    clip = speech[: SAMPLE_RATE * 3]
    other = load_wav_48k(str(CLIPS[0]))[: SAMPLE_RATE * 3]
    assert slipping_envelope_match(clip, _heard(other, underruns={}, drops={})) < 0.7
