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
import numpy.typing as npt

from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16, PcmFrame

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
    """Converts decoded ``av.AudioFrame`` of any layout, format or rate to mono s16 PCM.

    What aiortc's Opus decoder gives (packed s16, stereo, 48 kHz) is down-mixed in numpy, the
    mean of the two channels rounded half up as FFmpeg's resampler does; anything else goes
    through that resampler, made on first need (it costs 0.6 ms and memory to set up).
    """

    def __init__(
        self, sample_rate: int = SAMPLE_RATE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sample_rate = sample_rate
        self._clock = clock
        self._resampler: av.AudioResampler | None = None

    def process(self, frame: av.AudioFrame) -> list[PcmFrame]:
        now = self._clock()
        if (
            frame.format.name == "s16"
            and frame.sample_rate == self.sample_rate
            and frame.layout.name in ("mono", "stereo")
        ):
            data = frame.to_ndarray().astype(np.int16, copy=False)
            samples = _packed_s16_to_mono(data, len(frame.layout.channels))
            if not samples.size:
                return []
            return [PcmFrame(samples=samples, sample_rate=self.sample_rate, captured_at=now)]
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.sample_rate)
        out = []
        for converted in self._resampler.resample(frame):
            samples = converted.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            if samples.size:
                out.append(PcmFrame(samples=samples, sample_rate=self.sample_rate, captured_at=now))
        return out


def _packed_s16_to_mono(data: npt.NDArray[np.int16], channels: int) -> Pcm16:
    flat = data.reshape(-1)
    if channels == 1:
        return flat
    pairs = flat.reshape(-1, 2).astype(np.int32)
    mono: Pcm16 = ((pairs[:, 0] + pairs[:, 1] + 1) >> 1).astype(np.int16)
    return mono


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
