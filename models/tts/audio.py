"""PCM conversions for synthesized speech: resampling to 48 kHz, decoding, WAV and MP3 bytes."""

from __future__ import annotations

import io
import wave
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from models.errors import InvalidInput
from models.tts.speech import OUTPUT_RATE, Pcm16, Speech

_MP3_BITRATE = 64_000


def float_to_pcm16(samples: npt.NDArray[np.floating[Any]]) -> Pcm16:
    """Floats in [-1, 1] to int16, clipped."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32) * 32767.0, -32767.0, 32767.0)
    out: Pcm16 = scaled.astype(np.int16)
    return out


def resample_to_48k(samples: Pcm16, sample_rate: int) -> Pcm16:
    """Mono int16 at ``sample_rate`` to 48 kHz with libswresample (band-limited, not linear)."""
    if sample_rate <= 0:
        raise InvalidInput(f"invalid sample rate {sample_rate}")
    samples = np.ascontiguousarray(samples, dtype=np.int16)
    if sample_rate == OUTPUT_RATE or samples.size == 0:
        return samples
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
    blocks = [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    blocks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    if not blocks:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(blocks).astype(np.int16)


def decode_to_48k(data: bytes) -> Pcm16:
    """Decode an audio file's bytes (MP3, WAV, ...) to 48 kHz mono int16."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
    blocks: list[npt.NDArray[np.generic]] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise InvalidInput("no audio stream in the data")
            for frame in container.decode(audio=0):
                frame.pts = None
                blocks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        blocks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except av.FFmpegError as exc:
        raise InvalidInput(f"undecodable audio: {exc}") from exc
    if not blocks:
        raise InvalidInput("audio data decoded to no samples")
    return np.concatenate(blocks).astype(np.int16)


def wav_bytes(speech: Speech) -> bytes:
    """A 16-bit mono WAV file of ``speech``."""
    return pcm_wav_bytes(speech.samples, speech.sample_rate)


def pcm_wav_bytes(samples: Pcm16, sample_rate: int) -> bytes:
    """A 16-bit mono WAV file of ``samples`` at ``sample_rate``."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return out.getvalue()


def mp3_bytes(speech: Speech, bitrate: int = _MP3_BITRATE) -> bytes:
    """An MP3 file of ``speech`` (LAME through av)."""
    return encode_mp3(speech.samples, speech.sample_rate, bitrate)


def encode_mp3(samples: Pcm16, sample_rate: int, bitrate: int = _MP3_BITRATE) -> bytes:
    """MP3 bytes of mono int16 ``samples``."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sample_rate, layout="mono")
        stream.bit_rate = bitrate
        step = 1152 * 8
        pts = 0
        for start in range(0, max(len(samples), 1), step):
            block = np.ascontiguousarray(samples[start : start + step], dtype=np.int16)
            if block.size == 0:
                break
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = pts
            pts += block.size
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()
