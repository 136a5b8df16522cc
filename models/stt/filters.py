"""Keeps invented text out of transcripts: low-confidence segments and phantom phrases."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from models.stt.result import Segment

_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower-case, punctuation and symbols removed, spaces collapsed: for comparing phrases."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


class PhantomFilter:
    """Drops whole outputs that are one of Whisper's known inventions on non-speech."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = frozenset(normalise(p) for p in phrases) - {""}

    def is_phantom(self, text: str) -> bool:
        """True for a known phantom phrase, or for text with no letters or digits at all."""
        key = normalise(text)
        return not key or key in self.phrases

    def apply(self, segments: list[Segment]) -> list[Segment]:
        """``segments`` unless the output as a whole (or every segment) is a phantom."""
        if not segments:
            return segments
        if self.is_phantom(" ".join(s.text for s in segments)):
            return []
        if all(self.is_phantom(s.text) for s in segments):
            return []
        return segments


def confident(segment: Segment, no_speech_threshold: float, log_prob_threshold: float) -> bool:
    """False for a segment that is probably not speech or was decoded with low confidence."""
    return (
        segment.no_speech_prob <= no_speech_threshold
        and segment.avg_logprob >= log_prob_threshold
        and bool(segment.text.strip())
    )
