"""Down-sampling of a speaker's 48 kHz call audio to the 16 kHz the speech models expect."""

from __future__ import annotations

import functools
import logging

import numpy as np

from callserver.media.frames import PcmFrame
from callserver.pipeline.events import SPEECH_FRAME_SAMPLES, SPEECH_RATE, Float32, SpeechFrame

logger = logging.getLogger(__name__)

# 241 taps at 48 kHz: passband to 7 kHz, stopband from 8 kHz (the new Nyquist) at about
# -80 dB, so nothing above 8 kHz folds back into the speech band. The group delay is
# 120 input samples (2.5 ms), small next to a 20 ms frame, so capture times are kept as is.
_TAPS_PER_FACTOR = 80
_KAISER_BETA = 8.0
_CUTOFF_HZ = 7_500.0


@functools.lru_cache(maxsize=8)
def lowpass(factor: int) -> Float32:
    """Kaiser-windowed sinc low-pass for decimating by ``factor`` (time-reversed, ready to dot)."""
    rate = SPEECH_RATE * factor
    taps = _TAPS_PER_FACTOR * factor + 1
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = _CUTOFF_HZ / rate  # cycles per input sample
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, _KAISER_BETA)
    h /= h.sum()  # unity gain at DC
    reversed_taps: Float32 = h[::-1].astype(np.float32)
    return reversed_taps


class Downsample:
    """``PcmFrame`` (16-bit, any multiple of 16 kHz) → 20 ms float32 ``SpeechFrame`` at 16 kHz.

    A streaming anti-aliased FIR decimator: filter history and decimation phase carry over
    from frame to frame, so the output is the same however the input is chunked. Output is
    re-cut into frames of exactly 320 samples; each takes the ``captured_at`` of the input
    frame that completed it (a 960-sample input frame gives exactly one output frame).
    One instance per speaker.
    """

    def __init__(self) -> None:
        self._factor = 0
        self._taps: Float32 = np.zeros(0, dtype=np.float32)
        self._history_len = 0
        # Filter history then the newest input, in one buffer reused frame after frame: the
        # history is moved to the front after each frame, so nothing is allocated per frame.
        self._buffer: Float32 = np.zeros(0, dtype=np.float32)
        self._phase = 0  # index into the next input block of the next sample to keep
        # Output short of a whole 320-sample frame (only when input frames are not 960 long).
        self._pending: Float32 = np.zeros(0, dtype=np.float32)

    def _configure(self, rate: int) -> None:
        if rate % SPEECH_RATE or rate <= 0:
            raise ValueError(f"cannot down-sample {rate} Hz to {SPEECH_RATE} Hz by an integer")
        factor = rate // SPEECH_RATE
        if factor == self._factor:
            return
        if self._factor:
            logger.info("input rate changed to %d Hz; resetting resampler", rate)
        self._factor = factor
        self._taps = lowpass(factor)
        self._history_len = len(self._taps) - 1
        self._buffer = np.zeros(self._history_len + 960, dtype=np.float32)
        self._phase = 0
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, frame: PcmFrame) -> list[SpeechFrame]:
        self._configure(frame.sample_rate)
        factor, n = self._factor, frame.samples.size
        if factor == 1:
            decimated = frame.samples.astype(np.float32) / 32768.0
        else:
            history = self._history_len
            if self._buffer.size < history + n:
                grown = np.zeros(history + n, dtype=np.float32)
                grown[:history] = self._buffer[:history]
                self._buffer = grown
            data = self._buffer[: history + n]
            np.multiply(frame.samples, np.float32(1 / 32768), out=data[history:])
            windows = np.lib.stride_tricks.sliding_window_view(data, len(self._taps))
            # windows[j] ends at the new block's sample j; keep every factor-th from the phase.
            decimated = windows[self._phase :: factor] @ self._taps
            kept = len(range(self._phase, n, factor))
            self._phase = self._phase + kept * factor - n
            data[:history] = data[n:]  # numpy copies overlapping slices correctly
        if not self._pending.size and decimated.size == SPEECH_FRAME_SAMPLES:
            # A 20 ms input frame gives exactly one output frame: it is the frame, no copy.
            return [SpeechFrame(samples=decimated, captured_at=frame.captured_at)]
        pending = np.concatenate((self._pending, decimated))
        whole = len(pending) // SPEECH_FRAME_SAMPLES
        out = [
            SpeechFrame(
                samples=pending[i * SPEECH_FRAME_SAMPLES : (i + 1) * SPEECH_FRAME_SAMPLES].copy(),
                captured_at=frame.captured_at,
            )
            for i in range(whole)
        ]
        self._pending = pending[whole * SPEECH_FRAME_SAMPLES :].copy()
        return out
