"""Typed frames and events passed along a speaker's translation pipeline.

Times are ``time.monotonic()`` seconds on the server (``captured_at`` of the 48 kHz frame
that carried the audio), so every stage of one utterance can be measured on one clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SPEECH_RATE = 16_000
SPEECH_FRAME_SAMPLES = 320  # 20 ms at 16 kHz

Float32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SpeechFrame:
    """20 ms of one speaker's voice: 16 kHz mono float32 in [-1, 1]."""

    samples: Float32
    captured_at: float


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Voice activity began (after the minimum speech duration was reached)."""

    utterance_id: str
    started_at: float


@dataclass(frozen=True, slots=True)
class SpeechUpdate:
    """The utterance so far, emitted every interim interval while speech goes on."""

    utterance_id: str
    audio: Float32
    started_at: float


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The speaker has been silent for the utterance's tail: ``audio`` is exactly what the
    utterance will hold if the silence lasts until the endpoint, so recognition can start now
    (``speech_end_at`` tells whether it did: speech that resumes moves it)."""

    utterance_id: str
    audio: Float32
    started_at: float
    speech_end_at: float


@dataclass(frozen=True, slots=True)
class Utterance:
    """One finished stretch of speech, ready for recognition.

    ``audio``: what recognition hears, with pauses inside the utterance shortened
    (``callserver.pipeline.pauses``); the times are those of the speech as said.
    ``speech_end_at``: capture time of the end of the last voiced frame (the mouth stopped).
    ``endpoint_at``: when the endpointer decided the utterance was over (after the trailing
    silence, or at a cut). ``cut``: ended by the maximum length rather than by silence.
    """

    utterance_id: str
    audio: Float32
    started_at: float
    speech_end_at: float
    endpoint_at: float
    cut: bool = False


@dataclass(frozen=True, slots=True)
class SpeechDiscarded:
    """The utterance in progress was dropped unfinished (the speaker was muted): it is never
    recognised, and any interim caption of it must be retracted. ``ended_at``: capture time
    of the last frame it had."""

    utterance_id: str
    started_at: float
    ended_at: float


@dataclass
class StageTimes:
    """When each stage of one utterance finished (monotonic seconds; None until it does)."""

    speech_end: float
    endpoint: float | None = None
    recognized: float | None = None
    translated: dict[str, float] = field(default_factory=dict)
    first_audio: dict[str, float] = field(default_factory=dict)
    first_dub_frame: dict[str, float] = field(default_factory=dict)
