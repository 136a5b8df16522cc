"""The RTP audio level the server sends: aiortc's number, computed without a Python loop."""

from __future__ import annotations

import numpy as np
from aiortc import rtp

from callserver.media import peer  # noqa: F401 - importing the peer module installs it
from callserver.media.audio_level import AIORTC_AUDIO_LEVEL, audio_level_dbov
from callserver.media.frames import FRAME_SAMPLES
from tests.media_helpers import av_frame


def test_the_level_is_aiortcs_to_the_decibel() -> None:
    rng = np.random.default_rng(11)
    blocks = [
        np.zeros(FRAME_SAMPLES, dtype=np.int16),
        np.full(FRAME_SAMPLES, 32767, dtype=np.int16),
        np.full(FRAME_SAMPLES, -32768, dtype=np.int16),
        np.ones(FRAME_SAMPLES, dtype=np.int16),  # below -127 dBov's floor? clamped either way
    ]
    for scale in (1, 10, 100, 1000, 10000, 30000):
        blocks.append(
            (rng.standard_normal(FRAME_SAMPLES) * scale).clip(-32768, 32767).astype(np.int16)
        )
    levels = []
    for samples in blocks:
        frame = av_frame(samples, 48_000)
        levels.append(audio_level_dbov(frame))
        assert levels[-1] == AIORTC_AUDIO_LEVEL(frame)
    assert levels[0] == -127 and levels[1] == 0
    assert len(set(levels)) >= 6  # the blocks span the scale: the comparison is not all -127


def test_aiortcs_senders_use_it() -> None:
    assert rtp.compute_audio_level_dbov is audio_level_dbov
