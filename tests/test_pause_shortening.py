"""Pauses inside an utterance are shortened in the audio recognition hears, and only there."""

from __future__ import annotations

import numpy as np
import pytest

from bench.long_form_speech import SentenceSpec
from callserver.media.processors import feed
from callserver.pipeline.endpoint import Endpointer, EndpointSettings
from callserver.pipeline.events import SPEECH_FRAME_SAMPLES, Float32, SpeechPaused
from callserver.pipeline.pauses import shorten_pauses
from models.stt.score import words
from tests.test_endpoint import (
    CLIP_B,
    CLIP_C,
    load_clip,
    room_noise,
    speech_bounds,
    speech_frames,
    utterances,
)
from tests.test_streaming import paused_sentence


def numbered(count: int) -> list[Float32]:
    """``count`` frames, each filled with its own index, so what is kept can be read back."""
    return [np.full(4, i, dtype=np.float32) for i in range(count)]


def kept_frames(audio: Float32) -> list[int]:
    return [int(v) for v in audio[::4]]


def test_a_long_pause_between_voiced_frames_is_cut_to_the_frames_kept_split_around_it() -> None:
    #          0  1  2  3  4  5  6  7  8  9 10 11 12 13 14
    voiced = [0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0]
    frames = numbered(len(voiced))
    out = shorten_pauses(frames, np.array(voiced, bool), 3)
    # The pause 3..8 keeps one frame after the speech and two before it; the short one
    # (10, 11) and the silence before the first and after the last voiced frame stay whole.
    assert kept_frames(out) == [0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14]
    assert kept_frames(shorten_pauses(frames, np.array(voiced, bool), 0)) == list(range(15))
    assert kept_frames(shorten_pauses(frames, np.array(voiced, bool), 6)) == list(range(15))
    assert shorten_pauses([], np.zeros(0, bool), 3).size == 0
    with pytest.raises(ValueError, match="one voiced flag per frame"):
        shorten_pauses(frames, np.array(voiced[:-1], bool), 3)


def test_an_utterance_with_a_pause_is_heard_with_the_pause_cut_and_its_times_whole() -> None:
    first, second = load_clip(CLIP_B), load_clip(CLIP_C)
    first = first[: speech_bounds(first)[1] * SPEECH_FRAME_SAMPLES]
    second = second[speech_bounds(second)[0] * SPEECH_FRAME_SAMPLES :]
    stream = np.concatenate([room_noise(0.5), first, room_noise(0.9, 2), second, room_noise(2, 1)])
    # Silence long enough that the 0.9 s pause does not end the utterance.
    whole, cut = (
        feed(Endpointer(EndpointSettings(silence_ms=1500, pause_kept_ms=kept)), speech_frames(s))
        for kept, s in ((0, stream), (150, stream))
    )
    (kept_all,) = utterances(whole)
    (shortened,) = utterances(cut)
    # The same utterance, at the same times: only the audio recognition hears is shorter.
    assert (shortened.started_at, shortened.speech_end_at, shortened.endpoint_at) == (
        kept_all.started_at,
        kept_all.speech_end_at,
        kept_all.endpoint_at,
    )
    removed = kept_all.audio.size - shortened.audio.size
    assert 0.6 * 16_000 <= removed <= 0.9 * 16_000
    # What is left is the same audio with one stretch of the pause taken out.
    at = int(np.flatnonzero(kept_all.audio[: shortened.audio.size] != shortened.audio)[0])
    np.testing.assert_array_equal(shortened.audio[:at], kept_all.audio[:at])
    np.testing.assert_array_equal(shortened.audio[at:], kept_all.audio[at + removed :])
    assert len(first) < at < len(first) + 0.9 * 16_000 + 0.5 * 16_000
    # The pause announced at the end holds the very audio the utterance ends with, so the
    # words recognised there are taken for the utterance's (``EarlyRecognition.matches``).
    last = [e for e in cut if isinstance(e, SpeechPaused)][-1]
    np.testing.assert_array_equal(last.audio, shortened.audio)


async def test_a_word_before_a_long_pause_is_heard_as_the_sentence_goes_on() -> None:
    """ "Let me check my calendar and [0.9 s] get back to you.": with the pause whole in its
    audio, Whisper hears "calendar end. Get back to you." (checked with
    ``CALLSERVER_VAD_PAUSE_KEPT_MS=0``); with it cut to 150 ms, the sentence as said."""
    spec = SentenceSpec("Let me check my calendar and get back to you.", (("and", 0.9),))
    _, delivery, _, _ = await paused_sentence(spec, 1.9)
    finals = {e["utterance_id"]: e for pid, e in delivery.events if pid == "p_b" and e.get("final")}
    (caption,) = finals.values()
    assert " ".join(words(str(caption["text"]))) == "let me check my calendar and get back to you"
