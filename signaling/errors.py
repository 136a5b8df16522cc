"""Protocol error codes and WebSocket close codes, as documented in docs/protocol.md.

The page compares the same codes from web/generated.js, which signaling/webgen.py writes.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """Codes carried by ``error`` messages. Each one is documented in docs/protocol.md."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    ROOM_ID_INVALID = "room_id_invalid"
    ROOM_NOT_FOUND = "room_not_found"
    ROOM_FULL = "room_full"
    ROOMS_EXHAUSTED = "rooms_exhausted"
    CAPACITY_INVALID = "capacity_invalid"
    TOKEN_REQUIRED = "token_required"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_WRONG_ROOM = "token_wrong_room"
    RATE_LIMITED = "rate_limited"
    NAME_INVALID = "name_invalid"
    LANGUAGE_INVALID = "language_invalid"
    SDP_INVALID = "sdp_invalid"
    SDP_TOO_LARGE = "sdp_too_large"
    PEER_NOT_FOUND = "peer_not_found"
    NOT_HOST = "not_host"
    HOST_KEY_INVALID = "host_key_invalid"
    ROOM_LOCKED = "room_locked"
    ROOM_ENDED = "room_ended"
    TITLE_INVALID = "title_invalid"
    DRAINING = "draining"
    NODES_FULL = "nodes_full"
    MEDIA_FAILED = "media_failed"
    INTERNAL = "internal"


#: Codes after which the same request may succeed later without changes.
RETRYABLE = frozenset(
    {
        ErrorCode.RATE_LIMITED,
        ErrorCode.ROOMS_EXHAUSTED,
        ErrorCode.NODES_FULL,
        ErrorCode.MEDIA_FAILED,
        ErrorCode.INTERNAL,
    }
)


class CloseCode(IntEnum):
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down
    MESSAGE_TOO_BIG = 1009
    TOO_MANY_ERRORS = 4000
    RATE_LIMITED = 4029


class SignalingError(Exception):
    """A request the server refuses; becomes an ``error`` message, never a traceback."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retry(self) -> bool:
        """Whether sending the same request again later may succeed."""
        return self.code in RETRYABLE
