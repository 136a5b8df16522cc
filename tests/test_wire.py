"""Wire forms of utterances, transcripts and speech: exact round trips, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.stt.result import Segment, Transcript
from models.tts.speech import Speech
from models.wire import (
    UTTERANCE_RATE,
    WireError,
    WireUtterance,
    float_to_pcm,
    pcm_to_float,
    recognition_from_fields,
    recognition_to_fields,
    speech_from_fields,
    speech_to_fields,
    transcript_from_fields,
    transcript_to_fields,
)


def test_utterance_round_trip_keeps_audio_within_one_quantum_and_times_as_durations() -> None:
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, UTTERANCE_RATE * 2).astype(np.float32)
    audio[:3] = [1.5, -1.5, 0.0]  # out of range: clipped, not wrapped
    sent = WireUtterance.of(
        "u1", "room-1", "p_a", "vi", audio, speech_end_at=100.0, endpoint_at=100.5, now=101.25
    )
    assert (sent.age_s, sent.endpoint_s) == (1.25, 0.5)
    fields = sent.to_fields()
    assert set(fields) == {"meta", "pcm"} and len(fields["pcm"]) == audio.size * 2
    got = WireUtterance.from_fields(fields)
    assert (got.utterance_id, got.room_id, got.participant_id, got.language) == (
        "u1",
        "room-1",
        "p_a",
        "vi",
    )
    assert got.duration_s == 2.0 and got.live
    assert got.audio.dtype == np.float32
    assert got.audio[0] == 1.0 and got.audio[1] == -1.0
    assert np.abs(got.audio[3:] - audio[3:]).max() <= 0.5 / 32767 + 1e-7
    # The receiver's clock, not the sender's: speech ended age_s before it read its clock.
    assert got.speech_end_on(5000.0) == 5000.0 - 1.25


def test_pcm_is_little_endian_int16_whatever_the_host() -> None:
    assert float_to_pcm(np.array([1.0, -1.0, 0.5], np.float32)) == bytes.fromhex("ff7f01800040")
    assert pcm_to_float(bytes.fromhex("ff7f")).tolist() == [1.0]


def test_transcript_round_trip() -> None:
    transcript = Transcript(
        text="xin chào",
        language="vi",
        language_probability=0.77,
        segments=(Segment(0.0, 1.2, "xin chào", -0.31, 0.02),),
        duration=1.5,
        window_s=4.0,
    )
    assert transcript_from_fields(transcript_to_fields(transcript)) == transcript


def test_recognition_request_round_trip_keeps_every_argument() -> None:
    audio = np.linspace(-0.5, 0.5, UTTERANCE_RATE, dtype=np.float32)
    for live, draft in ((False, False), (True, False), (True, True)):
        fields = recognition_to_fields(audio, "vi", ["vi", "en"], live, draft)
        got = recognition_from_fields(fields)
        assert (got.language, got.allowed, got.live, got.draft) == ("vi", ["vi", "en"], live, draft)
        assert np.abs(np.asarray(got.audio) - audio).max() <= 0.5 / 32767 + 1e-7
    detect = recognition_from_fields(recognition_to_fields(audio, None, None, True))
    assert (detect.language, detect.allowed, detect.draft) == (None, None, False)


def test_speech_round_trip_is_exact() -> None:
    samples = (np.arange(-2000, 2000, dtype=np.int16) * 8).astype(np.int16)
    speech = Speech(samples, 48_000, "piper", "en_US-lessac", "en", cached=True)
    got = speech_from_fields(speech_to_fields(speech))
    assert np.array_equal(got.samples, samples) and got.samples.dtype == np.int16
    assert (got.sample_rate, got.engine, got.voice, got.language, got.cached) == (
        48_000,
        "piper",
        "en_US-lessac",
        "en",
        True,
    )
    assert got.duration_s == pytest.approx(samples.size / 48_000)


def good_utterance() -> dict[str, bytes]:
    audio = np.zeros(160, np.float32)
    return WireUtterance("u", "r", "p", "en", audio, age_s=0.1).to_fields()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"meta": None}, "no 'meta'"),
        ({"pcm": None}, "no 'pcm'"),
        ({"meta": b"{not json"}, "not JSON"),
        ({"meta": b"[1, 2]"}, "not a JSON object"),
        ({"meta": json.dumps({"utterance_id": "u"}).encode()}, "lacks"),
        ({"pcm": b"\x00\x01\x02"}, "whole 16-bit samples"),
        ({"meta": b"\xff\xfe"}, "not JSON"),
    ],
)
def test_malformed_messages_are_refused_by_name(
    change: dict[str, bytes | None], complaint: str
) -> None:
    fields = good_utterance()
    for key, value in change.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    with pytest.raises(WireError, match=complaint):
        WireUtterance.from_fields(fields)


def test_wrong_types_and_rates_are_refused() -> None:
    fields = good_utterance()
    meta = json.loads(fields["meta"])
    with pytest.raises(WireError, match="wrong type"):
        WireUtterance.from_fields(
            {**fields, "meta": json.dumps({**meta, "age_s": "soon"}).encode()}
        )
    with pytest.raises(WireError, match="16000 Hz"):
        WireUtterance.from_fields({**fields, "meta": json.dumps({**meta, "rate": 8000}).encode()})
    speech = speech_to_fields(Speech(np.zeros(4, np.int16), 48_000, "e", "v", "en"))
    bad_rate = json.dumps({**json.loads(speech["meta"]), "rate": 0}).encode()
    with pytest.raises(WireError, match="positive"):
        speech_from_fields({**speech, "meta": bad_rate})
    with pytest.raises(WireError, match="wrong type"):
        transcript_from_fields(
            {
                "meta": json.dumps(
                    {"text": "a", "language": "en", "language_probability": "x", "duration": 1}
                ).encode()
            }
        )
