"""The wire forms of what travels between a media node and an inference worker.

An utterance (audio to recognise), a transcript and synthesized speech, each as flat fields
of bytes (what a Redis Stream entry holds): ``meta`` is JSON, ``pcm`` raw little-endian int16
mono samples. Times travel as durations, never as a host's monotonic clock readings, which
mean nothing on another machine: an utterance says how long ago its speech ended
(``age_s``, at the moment it was encoded), and the receiver places it on its own clock.
Every decoder refuses malformed input with ``WireError`` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.interfaces import RecognitionRequest
from models.stt.result import Segment, Transcript
from models.tts.speech import Speech

#: The sample rate of utterance audio (what recognition takes).
UTTERANCE_RATE = 16_000
Fields = Mapping[str, bytes]


class WireError(ValueError):
    """A message that cannot be decoded; sending it again will not help."""


def float_to_pcm(audio: npt.NDArray[np.float32]) -> bytes:
    """Float samples in [-1, 1] as little-endian int16 bytes (out-of-range values clipped)."""
    scaled = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0
    return np.round(scaled).astype("<i2").tobytes()


def pcm_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """The inverse of ``float_to_pcm``."""
    return (_samples(pcm).astype(np.float32) / 32767.0).astype(np.float32)


def _samples(pcm: bytes) -> npt.NDArray[np.int16]:
    if len(pcm) % 2:
        raise WireError(f"pcm holds {len(pcm)} bytes, not whole 16-bit samples")
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


def _encode(meta: dict[str, Any], pcm: bytes | None = None) -> dict[str, bytes]:
    fields = {"meta": json.dumps(meta, separators=(",", ":")).encode("utf-8")}
    if pcm is not None:
        fields["pcm"] = pcm
    return fields


def _meta(fields: Fields, *required: str) -> dict[str, Any]:
    raw = fields.get("meta")
    if raw is None:
        raise WireError("the message has no 'meta' field")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"'meta' is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise WireError("'meta' is not a JSON object")
    missing = [name for name in required if name not in meta]
    if missing:
        raise WireError(f"'meta' lacks {', '.join(missing)}")
    return meta


def _pcm(fields: Fields) -> bytes:
    pcm = fields.get("pcm")
    if pcm is None:
        raise WireError("the message has no 'pcm' field")
    return bytes(pcm)


@dataclass(frozen=True)
class WireUtterance:
    """One utterance to recognise, as a worker receives it."""

    utterance_id: str
    room_id: str
    participant_id: str
    #: The language the speaker declared (recognition is told it).
    language: str
    audio: npt.NDArray[np.float32]
    #: Seconds between the end of speech and the moment the message was encoded.
    age_s: float
    #: Seconds the endpointer waited after the speech ended before it let the utterance go.
    endpoint_s: float = 0.0
    live: bool = True

    @property
    def duration_s(self) -> float:
        return self.audio.size / UTTERANCE_RATE

    def speech_end_on(self, clock: float) -> float:
        """When the speech ended on a clock that reads ``clock`` now (the receiver's)."""
        return clock - self.age_s

    def to_fields(self) -> dict[str, bytes]:
        meta = {
            "utterance_id": self.utterance_id,
            "room_id": self.room_id,
            "participant_id": self.participant_id,
            "language": self.language,
            "age_s": self.age_s,
            "endpoint_s": self.endpoint_s,
            "live": self.live,
            "rate": UTTERANCE_RATE,
        }
        return _encode(meta, float_to_pcm(self.audio))

    @classmethod
    def from_fields(cls, fields: Fields) -> WireUtterance:
        meta = _meta(fields, "utterance_id", "room_id", "participant_id", "language", "age_s")
        if meta.get("rate", UTTERANCE_RATE) != UTTERANCE_RATE:
            raise WireError(f"utterance audio must be {UTTERANCE_RATE} Hz, not {meta['rate']}")
        audio = pcm_to_float(_pcm(fields))
        try:
            return cls(
                utterance_id=str(meta["utterance_id"]),
                room_id=str(meta["room_id"]),
                participant_id=str(meta["participant_id"]),
                language=str(meta["language"]),
                audio=audio,
                age_s=float(meta["age_s"]),
                endpoint_s=float(meta.get("endpoint_s", 0.0)),
                live=bool(meta.get("live", True)),
            )
        except (TypeError, ValueError) as exc:
            raise WireError(f"a field of the utterance has the wrong type: {exc}") from exc

    @classmethod
    def of(
        cls,
        utterance_id: str,
        room_id: str,
        participant_id: str,
        language: str,
        audio: npt.NDArray[np.float32],
        speech_end_at: float,
        endpoint_at: float,
        now: float | None = None,
    ) -> WireUtterance:
        """From the pipeline's monotonic readings (``now`` defaults to ``time.monotonic()``)."""
        now = time.monotonic() if now is None else now
        return cls(
            utterance_id,
            room_id,
            participant_id,
            language,
            audio,
            age_s=max(0.0, now - speech_end_at),
            endpoint_s=max(0.0, endpoint_at - speech_end_at),
        )


def transcript_to_fields(transcript: Transcript) -> dict[str, bytes]:
    """A transcript as message fields (JSON only: no audio)."""
    return _encode(
        {
            "text": transcript.text,
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "duration": transcript.duration,
            "window_s": transcript.window_s,
            "end_probability": transcript.end_probability,
            "segments": [
                [s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob]
                for s in transcript.segments
            ],
        }
    )


def transcript_from_fields(fields: Fields) -> Transcript:
    meta = _meta(fields, "text", "language", "language_probability", "duration")
    try:
        return Transcript(
            text=str(meta["text"]),
            language=str(meta["language"]),
            language_probability=float(meta["language_probability"]),
            segments=tuple(
                Segment(float(a), float(b), str(text), float(lp), float(ns))
                for a, b, text, lp, ns in meta.get("segments", [])
            ),
            duration=float(meta["duration"]),
            window_s=float(meta.get("window_s", 30.0)),
            end_probability=_optional_float(meta.get("end_probability")),
        )
    except (TypeError, ValueError) as exc:
        raise WireError(f"a field of the transcript has the wrong type: {exc}") from exc


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def speech_to_fields(speech: Speech) -> dict[str, bytes]:
    """Synthesized speech as message fields: int16 samples and what spoke them."""
    meta = {
        "rate": speech.sample_rate,
        "engine": speech.engine,
        "voice": speech.voice,
        "language": speech.language,
        "cached": speech.cached,
    }
    return _encode(meta, np.asarray(speech.samples, dtype="<i2").tobytes())


def speech_from_fields(fields: Fields) -> Speech:
    meta = _meta(fields, "rate", "engine", "voice", "language")
    try:
        rate = int(meta["rate"])
    except (TypeError, ValueError) as exc:
        raise WireError(f"'rate' is not a number: {exc}") from exc
    if rate <= 0:
        raise WireError(f"'rate' must be positive, not {rate}")
    return Speech(
        samples=_samples(_pcm(fields)),
        sample_rate=rate,
        engine=str(meta["engine"]),
        voice=str(meta["voice"]),
        language=str(meta["language"]),
        cached=bool(meta.get("cached", False)),
    )


def recognition_to_fields(
    audio: npt.NDArray[np.float32],
    language: str | None,
    allowed: Sequence[str] | None,
    live: bool,
    draft: bool = False,
    to_english: bool = False,
) -> dict[str, bytes]:
    """A ``Recognizer.transcribe`` call as message fields."""
    meta = {
        "language": language,
        "allowed": list(allowed) if allowed else None,
        "live": live,
        "draft": draft,
        "to_english": to_english,
    }
    return _encode({**meta, "rate": UTTERANCE_RATE}, float_to_pcm(audio))


def recognition_from_fields(fields: Fields) -> RecognitionRequest:
    """The ``Recognizer.transcribe`` arguments of a recognition request."""
    meta = _meta(fields)
    if meta.get("rate", UTTERANCE_RATE) != UTTERANCE_RATE:
        raise WireError(f"recognition audio must be {UTTERANCE_RATE} Hz, not {meta['rate']}")
    language, allowed = meta.get("language"), meta.get("allowed")
    if language is not None and not isinstance(language, str):
        raise WireError("'language' must be a string or null")
    if allowed is not None and not (
        isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)
    ):
        raise WireError("'allowed' must be a list of strings or null")
    return RecognitionRequest(
        pcm_to_float(_pcm(fields)),
        language,
        allowed,
        live=bool(meta.get("live", False)),
        draft=bool(meta.get("draft", False)),
        to_english=bool(meta.get("to_english", False)),
    )


def json_to_fields(value: dict[str, Any]) -> dict[str, bytes]:
    """Any JSON value as the ``meta`` field (translation requests and results)."""
    return {"meta": json.dumps(value, separators=(",", ":")).encode("utf-8")}


def json_from_fields(fields: Fields) -> dict[str, Any]:
    """The inverse of ``json_to_fields`` for a JSON object."""
    return _meta(fields)
