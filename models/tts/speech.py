"""What every speech synthesizer returns, the interface it implements, and language tags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

OUTPUT_RATE = 48_000

Pcm16 = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class Speech:
    """Mono signed 16-bit PCM at ``sample_rate`` (always 48 kHz from the service)."""

    samples: Pcm16
    sample_rate: int
    engine: str
    voice: str
    language: str
    cached: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


class TtsEngine(Protocol):
    """A speech synthesizer. Blocking work runs in a pool or a subprocess, never on the loop."""

    name: str

    def supports(self, language: str) -> bool:
        """Whether a voice exists for ``language`` (a BCP-47 tag such as ``en-US`` or ``vi``)."""
        ...

    def voice_for(self, language: str, voice: str | None = None) -> str:
        """The voice that would speak ``language``; UnsupportedLanguage if none or unknown."""
        ...

    def voices(self) -> dict[str, list[str]]:
        """Voices by language tag."""
        ...

    def info(self) -> dict[str, Any]:
        """Name, availability and configuration, for the status endpoint."""
        ...

    async def synthesize(self, text: str, language: str, voice: str | None = None) -> Speech:
        """Speech for ``text`` at 48 kHz mono s16."""
        ...

    async def close(self) -> None:
        """Release sessions and workers."""
        ...


def normalize_language(tag: str) -> str:
    """``en_US`` / ``EN-us`` → ``en-us``: lowercase, ``-`` separated, stripped."""
    return tag.strip().replace("_", "-").lower()


def primary_subtag(tag: str) -> str:
    """``en-us`` → ``en``."""
    return normalize_language(tag).split("-", 1)[0]
