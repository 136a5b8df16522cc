"""Silero voice-activity detection, streamed: one shared model, one state per speaker.

The ONNX session is loaded once per process (``load_silero_model``) and shared by every
speaker: ``InferenceSession.run`` is thread-safe and holds no per-call state. What must never
be shared is the recurrent state (LSTM ``h``/``c`` and the 64-sample context): the old system
shared it between speakers and one person's voice leaked into another's speech decisions.
So each speaker owns a ``SileroVad`` with its own ``VadState``.

Cost (``python -m bench.vad_cost``, one core of the 2-core machine): a 512-sample window
(32 ms of audio) takes 58 us, 1.06x a bare ONNX Runtime call; with the down-sampler, a
speaker's 20 ms frame costs 89 us, 0.45 % of a core per speaker. Detection runs in the
pipeline's detection thread (``speaker.py``), not inline: the hop there and back costs about
as much again (70-90 us), but 89 us a frame for every speaker would otherwise come out of the
event loop's 20 ms tick. The model's recurrent state has a batch of one, so windows of
different speakers cannot share a run; several windows of one speaker can (0.63-0.84x a window
each), which only a speaker's backlog would give.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime

from callserver.pipeline.events import SPEECH_RATE, Float32

logger = logging.getLogger(__name__)

WINDOW_SAMPLES = 512  # the only window Silero v5+ accepts at 16 kHz
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)


def default_model_path() -> Path:
    """The Silero VAD v6 ONNX file that ships inside faster-whisper."""
    from faster_whisper.vad import get_assets_path

    return Path(get_assets_path()) / "silero_vad_v6.onnx"


class SileroModel:
    """The loaded Silero network: stateless, safe to share between speakers and threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_model_path()
        opts = onnxruntime.SessionOptions()
        # One thread per call: many speakers run in parallel, and a 512-sample window is too
        # small to gain from intra-op threads.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(self.path), providers=["CPUExecutionProvider"], sess_options=opts
        )
        logger.info("loaded Silero VAD from %s", self.path)

    def run(self, window: Float32, state: VadState) -> float:
        """Speech probability of one 512-sample window; advances ``state`` in place."""
        if window.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"expected {WINDOW_SAMPLES} samples, got {window.shape}")
        # The state's own input row holds its context; the window goes after it in place.
        row = state.input
        row[0, CONTEXT_SAMPLES:] = window
        prob, h, c = self._session.run(None, {"input": row, "h": state.h, "c": state.c})
        state.h = np.asarray(h, dtype=np.float32)
        state.c = np.asarray(c, dtype=np.float32)
        row[0, :CONTEXT_SAMPLES] = window[-CONTEXT_SAMPLES:]
        return float(np.asarray(prob).reshape(-1)[0])


@functools.lru_cache(maxsize=1)
def load_silero_model() -> SileroModel:
    """The process-wide Silero model, loaded on first use."""
    return SileroModel()


def _zeros(shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    return np.zeros(shape, dtype=np.float32)


@dataclass
class VadState:
    """One speaker's recurrent Silero state; never share an instance between speakers."""

    h: Float32 = field(default_factory=lambda: _zeros(STATE_SHAPE))
    c: Float32 = field(default_factory=lambda: _zeros(STATE_SHAPE))
    #: The model's input row: the last 64 samples heard (the context), then room for the next
    #: window; reused for every window, so a window costs one copy and no allocation.
    input: Float32 = field(default_factory=lambda: _zeros((1, CONTEXT_SAMPLES + WINDOW_SAMPLES)))

    @property
    def context(self) -> Float32:
        """The last 64 samples of the previous window."""
        context: Float32 = self.input[0, :CONTEXT_SAMPLES]
        return context


class SileroVad:
    """Streaming speech probability for one speaker's 16 kHz audio.

    Accepts audio in any chunk size and returns one probability per completed 512-sample
    window; leftover samples wait for the next call.
    """

    sample_rate = SPEECH_RATE
    window_samples = WINDOW_SAMPLES

    def __init__(self, model: SileroModel | None = None) -> None:
        self.model = model or load_silero_model()
        self.state = VadState()
        # The window being filled, reused: 20 ms frames (320 samples) fill a 512-sample
        # window over two or three calls without concatenating anything.
        self._window: Float32 = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        self._filled = 0

    def push(self, samples: Float32) -> list[float]:
        """Add samples; return the probability of every window they complete."""
        probs = []
        at = 0
        while at < len(samples):
            take = min(WINDOW_SAMPLES - self._filled, len(samples) - at)
            self._window[self._filled : self._filled + take] = samples[at : at + take]
            self._filled += take
            at += take
            if self._filled == WINDOW_SAMPLES:
                probs.append(self.model.run(self._window, self.state))
                self._filled = 0
        return probs

    def reset(self) -> None:
        """Forget all history (e.g. after a long mute)."""
        self.state = VadState()
        self._filled = 0
