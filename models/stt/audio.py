"""Decodes any audio PyAV (FFmpeg) can read into 16 kHz mono float32 for the recogniser."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from models.errors import InvalidInput
from models.tts.audio import pcm_wav_bytes

log = logging.getLogger("callserver.models.stt.audio")

SAMPLE_RATE = 16_000

Audio = npt.NDArray[np.float32]


def check_audio(audio: object, max_audio_s: float) -> Audio:
    """``audio`` as 1-D float32 samples if a recogniser can take it, else InvalidInput."""
    if not isinstance(audio, np.ndarray):
        raise InvalidInput("audio must be a numpy array of 16 kHz mono samples")
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise InvalidInput(f"audio must be mono (1-D), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise InvalidInput(f"audio must be float samples in [-1, 1], got {audio.dtype}")
    if audio.size == 0:
        raise InvalidInput("audio is empty")
    seconds = audio.size / SAMPLE_RATE
    if seconds > max_audio_s:
        raise InvalidInput(
            f"audio is {seconds:.1f} s; the limit is {max_audio_s:g} s (CALLSERVER_STT_MAX_AUDIO_S)"
        )
    samples = audio.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise InvalidInput("audio contains NaN or infinite samples")
    return samples


def pcm_audio(samples: npt.NDArray[np.int16], sample_rate: int) -> Audio:
    """Mono 16-bit samples at ``sample_rate`` as recognition takes them (16 kHz float32)."""
    return decode_audio(pcm_wav_bytes(samples, sample_rate))


def decode_audio(source: bytes | str | Path, max_seconds: float | None = None) -> Audio:
    """Decode a file path or the bytes of a file (WAV, Ogg/Opus, MP3, WebM …) to 16 kHz mono.

    Raises InvalidInput for data FFmpeg cannot decode, input without an audio stream, and
    audio longer than ``max_seconds`` (decoding stops there, so huge inputs stay cheap).
    """
    if isinstance(source, bytes | bytearray) and not source:
        raise InvalidInput("audio is empty")
    target = io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source)
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    chunks: list[Audio] = []
    total = 0
    try:
        with av.open(target, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidInput("input has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append(chunk)
                    total += chunk.size
                if limit is not None and total > limit:
                    raise InvalidInput(f"audio is longer than the limit of {max_seconds:g} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except InvalidInput:
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise InvalidInput(f"audio cannot be decoded: {exc}") from exc
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if limit is not None and audio.size > limit:
        raise InvalidInput(f"audio is longer than the limit of {max_seconds:g} s")
    if audio.size == 0:
        raise InvalidInput("input holds no audio samples")
    return audio
