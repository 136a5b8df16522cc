"""Encoding of the values the caches hold: PCM audio with its metadata, and text."""

from __future__ import annotations

import json
import struct

import numpy as np
import numpy.typing as npt

from models.cache.base import CorruptEntry

_META_LEN = struct.Struct(">I")


def encode_pcm(samples: npt.NDArray[np.int16], sample_rate: int, meta: dict[str, str]) -> bytes:
    """Mono int16 samples plus sample rate and string metadata, as one byte string."""
    header = json.dumps({"rate": sample_rate, "meta": meta}, separators=(",", ":")).encode()
    pcm = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    return _META_LEN.pack(len(header)) + header + pcm


def decode_pcm(data: bytes) -> tuple[npt.NDArray[np.int16], int, dict[str, str]]:
    """Inverse of :func:`encode_pcm`; raises CorruptEntry on malformed data."""
    try:
        (length,) = _META_LEN.unpack_from(data)
        header = json.loads(data[_META_LEN.size : _META_LEN.size + length])
        rate = int(header["rate"])
        meta = {str(k): str(v) for k, v in header["meta"].items()}
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptEntry(f"bad PCM value header: {exc}") from exc
    body = data[_META_LEN.size + length :]
    if len(body) % 2:
        raise CorruptEntry("odd number of PCM bytes")
    samples = np.frombuffer(body, dtype="<i2").astype(np.int16)
    return samples, rate, meta


def encode_text(text: str) -> bytes:
    """UTF-8 text."""
    return text.encode("utf-8")


def decode_text(data: bytes) -> str:
    """Inverse of :func:`encode_text`; raises CorruptEntry on invalid UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptEntry(f"bad UTF-8 text value: {exc}") from exc
