"""HMAC-signed join tokens: ``<payload>.<signature>``, both base64url, payload JSON."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from signaling.errors import ErrorCode, SignalingError

TOKEN_VERSION = 1
#: Tokens longer than this are refused before any decoding work.
MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token grants: joining ``room`` until ``expires_at`` (Unix seconds)."""

    room: str
    expires_at: int


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64encode(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def mint_token(secret: bytes, room: str, ttl_s: int, now: float | None = None) -> str:
    """Return a token that lets its holder join ``room`` for ``ttl_s`` seconds."""
    issued = time.time() if now is None else now
    body = {"v": TOKEN_VERSION, "room": room, "exp": int(issued + ttl_s)}
    payload = _b64encode(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_sign(secret, payload)}"


def verify_token(secret: bytes, token: str, room: str, now: float | None = None) -> TokenClaims:
    """Check ``token`` for ``room``; raise ``SignalingError`` with a token_* code otherwise."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1 or not token.isascii():
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token is malformed")
    payload, signature = token.split(".")
    if not hmac.compare_digest(_sign(secret, payload), signature):
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token signature does not match")
    try:
        body = json.loads(_b64decode(payload))
        claims = TokenClaims(room=str(body["room"]), expires_at=int(body["exp"]))
        version = body.get("v")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token payload is unreadable") from exc
    if version != TOKEN_VERSION:
        raise SignalingError(ErrorCode.TOKEN_INVALID, f"join token version {version!r} unknown")
    if claims.room != room:
        raise SignalingError(ErrorCode.TOKEN_WRONG_ROOM, "join token is for another room")
    if claims.expires_at <= (time.time() if now is None else now):
        raise SignalingError(ErrorCode.TOKEN_EXPIRED, "join token has expired")
    return claims
