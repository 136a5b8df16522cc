"""The signaling protocol's client messages: parsing and structural validation.

Every client message is a JSON object with ``v`` (the protocol version) and ``type``. Parsing
turns raw text into one of the typed messages below or raises ``SignalingError`` with the code a
client can act on. Limits that are settings (name length, SDP size) are checked by the handler,
which knows the settings.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter, ValidationError

from signaling.errors import ErrorCode, SignalingError

PROTOCOL_VERSION = 1


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int


class Join(_Message):
    """Enter a room. ``token`` is needed when the server has a join secret; ``host_key`` (the
    room's host credential from ``POST /api/rooms``) joins as its host."""

    type: Literal["join"]
    room: str
    name: str
    spoken: str
    listen: str
    token: str | None = None
    host_key: str | None = None
    #: The key from an earlier ``welcome`` in this room: a lock does not keep its holder out.
    rejoin_key: str | None = Field(None, max_length=128)


class Offer(_Message):
    """SDP offer for the participant's connection with the server (audio up and down, data)."""

    type: Literal["offer"]
    sdp: str


class IceCandidate(BaseModel):
    """An ICE candidate as the browser's RTCIceCandidate.toJSON() gives it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    candidate: str
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None


class PeerOffer(_Message):
    """Relay an SDP offer to another participant for the direct video connection."""

    type: Literal["p2p-offer"]
    to: str
    sdp: str


class PeerAnswer(_Message):
    """Relay an SDP answer to another participant for the direct video connection."""

    type: Literal["p2p-answer"]
    to: str
    sdp: str


class PeerIce(_Message):
    """Relay an ICE candidate (null: end of candidates) to another participant."""

    type: Literal["p2p-ice"]
    to: str
    candidate: IceCandidate | None


class Update(_Message):
    """Change one's display name or languages while in a room."""

    type: Literal["update"]
    name: str | None = None
    spoken: str | None = None
    listen: str | None = None


class Prefs(_Message):
    """The listener's own mix (dubbed speech on or off, the original voices' volume) and
    whether they take the others' video."""

    type: Literal["prefs"]
    dub: StrictBool | None = None
    original_volume: float | None = Field(None, ge=0.0, le=1.0)
    video: StrictBool | None = None


class Lock(_Message):
    """Host: refuse (or again admit) new guests."""

    type: Literal["lock"]
    locked: StrictBool


class Remove(_Message):
    """Host: put a participant out of the room."""

    type: Literal["remove"]
    participant: str


class Mute(_Message):
    """Host: mute or unmute a participant's microphone for the room."""

    type: Literal["mute"]
    participant: str
    muted: StrictBool


class End(_Message):
    """Host: end the call for everyone."""

    type: Literal["end"]


class Leave(_Message):
    """Leave the room; the connection stays open and may join again."""

    type: Literal["leave"]


class Ping(_Message):
    """Keep-alive and round-trip probe; answered with ``pong``."""

    type: Literal["ping"]
    id: int | str | None = None


ClientMessage = Annotated[
    Join
    | Offer
    | PeerOffer
    | PeerAnswer
    | PeerIce
    | Update
    | Prefs
    | Lock
    | Remove
    | Mute
    | End
    | Leave
    | Ping,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
MESSAGE_TYPES = frozenset(
    {
        "join",
        "offer",
        "p2p-offer",
        "p2p-answer",
        "p2p-ice",
        "update",
        "prefs",
        "lock",
        "remove",
        "mute",
        "end",
        "leave",
        "ping",
    }
)
#: Messages only a room's host may send; a guest gets ``not_host``.
HOST_MESSAGE_TYPES = frozenset({"lock", "remove", "mute", "end"})


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    # The discriminator tag is the first element of loc; the field path follows it.
    loc = ".".join(str(part) for part in first["loc"][1:]) or "message"
    return f"field {loc!r}: {first['msg']}"


def parse_message(text: str) -> ClientMessage:
    """Parse one client message or raise ``SignalingError`` naming what is wrong."""
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SignalingError(ErrorCode.BAD_JSON, "message is not valid JSON") from exc
    if not isinstance(data, dict):
        raise SignalingError(ErrorCode.BAD_MESSAGE, "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise SignalingError(ErrorCode.BAD_MESSAGE, "message needs a string 'type'")
    if kind not in MESSAGE_TYPES:
        raise SignalingError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")
    version = data.get("v")
    if version != PROTOCOL_VERSION:
        raise SignalingError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {version!r} is not supported; this server speaks "
            f"v={PROTOCOL_VERSION}",
        )
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise SignalingError(ErrorCode.BAD_MESSAGE, _describe(exc)) from exc


def server_message(kind: str, **fields: Any) -> dict[str, Any]:
    """A server-to-client message with the protocol version and type set."""
    return {"v": PROTOCOL_VERSION, "type": kind, **fields}
