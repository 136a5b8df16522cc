"""Typed frames passed between media processors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960

Pcm16 = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class PcmFrame:
    """Mono signed 16-bit PCM at ``sample_rate``; ``captured_at`` is the server clock (seconds)."""

    samples: Pcm16
    sample_rate: int = SAMPLE_RATE
    captured_at: float = 0.0

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def silence(samples: int = FRAME_SAMPLES) -> Pcm16:
    """A block of digital silence (a new, writable array)."""
    return np.zeros(samples, dtype=np.int16)


def _read_only_silence() -> Pcm16:
    block = silence()
    block.flags.writeable = False
    return block


#: One 20 ms frame of silence shared by every silent tick: read-only, so nothing can write
#: into what every other user reads, and the silent path allocates nothing.
SILENT_FRAME: Pcm16 = _read_only_silence()
