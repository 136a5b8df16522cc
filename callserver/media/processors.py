"""Small synchronous frame processors and the helper that chains them.

Each processor does one job: it takes one input frame and returns zero or more output frames.
They hold only their own state, so one instance serves exactly one stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

import av
import numpy as np

from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out")
T = TypeVar("T")
U = TypeVar("U")


class Processor(Protocol[In, Out]):
    """Turns one frame into zero or more frames."""

    def process(self, frame: In) -> list[Out]: ...


def feed(processor: Processor[T, U], frames: Iterable[T]) -> list[U]:
    """Run ``frames`` through ``processor`` and collect everything it emits (tests, tools)."""
    out: list[U] = []
    for frame in frames:
        out.extend(processor.process(frame))
    return out


class DecodeToMono:
    """Converts decoded ``av.AudioFrame`` of any layout, format or rate to mono s16 PCM."""

    def __init__(
        self, sample_rate: int = SAMPLE_RATE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sample_rate = sample_rate
        self._clock = clock
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)

    def process(self, frame: av.AudioFrame) -> list[PcmFrame]:
        out = []
        now = self._clock()
        for converted in self._resampler.resample(frame):
            samples = converted.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            if samples.size:
                out.append(PcmFrame(samples=samples, sample_rate=self.sample_rate, captured_at=now))
        return out


class Rechunk:
    """Re-cuts PCM of any frame length into frames of exactly ``size`` samples."""

    def __init__(self, size: int = FRAME_SAMPLES) -> None:
        self.size = size
        self._pending = np.zeros(0, dtype=np.int16)
        self._rate = SAMPLE_RATE

    def process(self, frame: PcmFrame) -> list[PcmFrame]:
        self._rate = frame.sample_rate
        if self._pending.size == 0 and frame.samples.size == self.size:
            return [frame]
        data = np.concatenate((self._pending, frame.samples))
        whole = data.size // self.size
        out = [
            PcmFrame(
                samples=data[i * self.size : (i + 1) * self.size].copy(),
                sample_rate=frame.sample_rate,
                captured_at=frame.captured_at,
            )
            for i in range(whole)
        ]
        self._pending = data[whole * self.size :].copy()
        return out
