"""Helpers that feed frames to media processors in tests."""

from __future__ import annotations

import fractions

import av
import numpy as np

from callserver.media.frames import FRAME_SAMPLES, Pcm16, PcmFrame


def tone(freq: float, samples: int = FRAME_SAMPLES, rate: int = 48_000, amp: int = 8000) -> Pcm16:
    t = np.arange(samples) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def pcm(value: int, samples: int = FRAME_SAMPLES) -> PcmFrame:
    """A frame whose samples all equal ``value``: easy to trace through the mixer."""
    return PcmFrame(samples=np.full(samples, value, dtype=np.int16))


def av_frame(
    samples: np.ndarray, rate: int, layout: str = "mono", fmt: str = "s16"
) -> av.AudioFrame:
    """An av.AudioFrame like aiortc's decoder produces (packed: channels interleaved)."""
    channels = 2 if layout == "stereo" else 1
    data = samples.reshape(1, -1) if fmt == "s16" else samples.reshape(channels, -1)
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
    frame.sample_rate = rate
    frame.time_base = fractions.Fraction(1, rate)
    frame.pts = 0
    return frame
