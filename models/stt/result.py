"""What a transcription returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """One decoded stretch of speech; times in seconds from the start of the input."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float


@dataclass(frozen=True)
class Transcript:
    """The text heard in one piece of audio. ``text`` is empty when no speech was found.

    ``language`` is the declared or detected code (e.g. ``en``); ``duration`` is the input's
    length in seconds; ``window_s`` the encoder window it was decoded in (Whisper's 30 s, or
    a live utterance's short window). ``end_probability``: for text ending in a full stop,
    question or exclamation mark, the probability the decoder gave that mark (low after a
    fragment such as "Ask not."); None when not known (the full window's decode).
    """

    text: str
    language: str
    language_probability: float
    segments: tuple[Segment, ...]
    duration: float
    window_s: float = 30.0
    end_probability: float | None = None

    @property
    def is_empty(self) -> bool:
        """True when nothing was recognised."""
        return not self.text
