"""The byte-cache interface every layer implements, and the framing that detects corruption."""

from __future__ import annotations

import struct
import zlib
from typing import Protocol

# magic, format version, payload length, CRC-32 of the payload. CRC-32 catches truncation and
# bit rot (the failures seen) at ~2.5 GB/s; a cryptographic hash would cost a hit 5x more and
# guards against nothing here, since whoever can write the cache can also rewrite the header.
_MAGIC = b"CSC"
_VERSION = 1
_HEADER = struct.Struct(">3sBQI")
HEADER_SIZE = _HEADER.size


class CorruptEntry(Exception):
    """A stored entry's header or checksum does not match its payload."""


class ByteCache(Protocol):
    """Bytes in, bytes out. Implementations never raise on backend failure: they count it."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None on a miss, a failure or a corrupt entry."""
        ...

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value``; a failure is logged and counted, not raised."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _digest(payload: bytes) -> int:
    return zlib.crc32(payload)


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with a header carrying its length and checksum."""
    return _HEADER.pack(_MAGIC, _VERSION, len(payload), _digest(payload)) + payload


def unframe(data: bytes) -> bytes:
    """The payload of a framed entry; raises CorruptEntry if truncated or altered."""
    if len(data) < HEADER_SIZE:
        raise CorruptEntry(f"entry of {len(data)} bytes is shorter than its header")
    magic, version, length, digest = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise CorruptEntry("bad magic or version")
    payload = data[HEADER_SIZE:]
    if len(payload) != length:
        raise CorruptEntry(f"payload is {len(payload)} bytes, header says {length}")
    if _digest(payload) != digest:
        raise CorruptEntry("checksum mismatch")
    return payload
