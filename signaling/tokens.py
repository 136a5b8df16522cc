"""Join tokens: JSON Web Tokens signed with HS256 and the server's join secret.

A standard format, so an operator's own backend can mint them with any JWT library; the claim
set is in docs/protocol.md ("Join tokens").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import jwt

from signaling.errors import ErrorCode, SignalingError

#: The only algorithm accepted, whatever a token's header says: pinning it is what stops
#: ``alg: none`` and algorithm-confusion tokens.
ALGORITHM = "HS256"
#: Tokens longer than this are refused before any decoding work (room ids, names and grants
#: fit in a fraction of it).
MAX_TOKEN_LENGTH = 4096
#: Seconds of clock difference allowed on ``exp``, ``nbf`` and ``iat`` by default.
DEFAULT_LEEWAY_S = 5.0


@dataclass(frozen=True)
class TokenOptions:
    """How tokens are checked beyond the secret (the server fills it from its settings).

    ``issuer`` and ``audience``, when set, are required in every token and put in every
    token the server mints; unset, ``iss`` is not checked and a token with an ``aud`` is
    refused (RFC 7519: a recipient not named in ``aud`` must reject the token).
    """

    leeway_s: float = DEFAULT_LEEWAY_S
    issuer: str | None = None
    audience: str | None = None


@dataclass(frozen=True)
class Grants:
    """What the holder may do in the room; a token without ``grants`` gets these defaults."""

    speak: bool = True
    listen: bool = True
    host: bool = False


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token grants: joining ``room`` until ``expires_at`` (Unix seconds)."""

    room: str
    expires_at: int
    subject: str | None = None
    name: str | None = None
    grants: Grants = field(default_factory=Grants)


_GRANT_NAMES = frozenset(Grants.__dataclass_fields__)


def mint_token(
    secret: bytes,
    room: str,
    ttl_s: int,
    now: float | None = None,
    *,
    subject: str | None = None,
    name: str | None = None,
    grants: Grants | None = None,
    options: TokenOptions | None = None,
) -> str:
    """Return a token that lets its holder join ``room`` for ``ttl_s`` seconds."""
    options = options or TokenOptions()
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"room": room, "iat": issued, "exp": issued + ttl_s}
    optional = {
        "sub": subject,
        "name": name,
        "grants": asdict(grants) if grants else None,
        "iss": options.issuer,
        "aud": options.audience,
    }
    claims.update({key: value for key, value in optional.items() if value is not None})
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# Fixed messages per failure, for logs and clients: PyJWT's own texts are not written for
# the people who read them. Subclasses come before their bases.
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], ErrorCode, str], ...] = (
    (jwt.ExpiredSignatureError, ErrorCode.TOKEN_EXPIRED, "join token has expired"),
    (jwt.ImmatureSignatureError, ErrorCode.TOKEN_INVALID, "join token is not valid yet"),
    (
        jwt.InvalidAlgorithmError,
        ErrorCode.TOKEN_INVALID,
        f"join token is not signed with {ALGORITHM}",
    ),
    (
        jwt.InvalidSignatureError,
        ErrorCode.TOKEN_INVALID,
        "join token signature does not match",
    ),
    (jwt.InvalidIssuerError, ErrorCode.TOKEN_INVALID, "join token is from another issuer"),
    (jwt.InvalidAudienceError, ErrorCode.TOKEN_INVALID, "join token is for another audience"),
    (jwt.DecodeError, ErrorCode.TOKEN_INVALID, "join token is malformed"),
    (jwt.PyJWTError, ErrorCode.TOKEN_INVALID, "join token has a claim of the wrong type"),
)


def _refusal(exc: jwt.PyJWTError) -> SignalingError:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        # The claim is one this server requires (exp, or the configured iss/aud), never token text.
        return SignalingError(ErrorCode.TOKEN_INVALID, f"join token has no '{exc.claim}' claim")
    for kind, code, message in _REFUSALS:
        if isinstance(exc, kind):
            return SignalingError(code, message)
    raise AssertionError("jwt.PyJWTError is the last entry")  # pragma: no cover


def verify_token(
    secret: bytes, token: str, room: str, options: TokenOptions | None = None
) -> TokenClaims:
    """Check ``token`` for ``room``; raise ``SignalingError`` with a token_* code otherwise."""
    options = options or TokenOptions()
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token is malformed")
    if token.count(".") == 1:
        # The format before JWTs (payload.signature): tokens live an hour by default, so it is
        # not accepted any more; the message tells an operator what happened.
        raise SignalingError(
            ErrorCode.TOKEN_INVALID, "join token is in the old format; mint a new one"
        )
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp"]},
            leeway=options.leeway_s,
            issuer=options.issuer,
            audience=options.audience,
        )
    except jwt.PyJWTError as exc:
        raise _refusal(exc) from exc
    claimed_room = payload.get("room")
    if not isinstance(claimed_room, str):
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token names no room")
    if claimed_room != room:
        raise SignalingError(ErrorCode.TOKEN_WRONG_ROOM, "join token is for another room")
    name = payload.get("name")
    if name is not None and not isinstance(name, str):
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token's name is not text")
    return TokenClaims(
        room=claimed_room,
        expires_at=int(payload["exp"]),
        subject=payload.get("sub"),
        name=name,
        grants=_grants(payload.get("grants")),
    )


def _grants(value: object) -> Grants:
    if value is None:
        return Grants()
    # Strict, like the protocol's unknown fields: a misspelt grant ("speek": false) must not
    # silently leave the default in place.
    if not isinstance(value, dict):
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token's grants are not an object")
    unknown = sorted(set(value) - _GRANT_NAMES)
    if unknown:
        raise SignalingError(
            ErrorCode.TOKEN_INVALID, f"join token has unknown grants: {', '.join(unknown)}"
        )
    if not all(isinstance(flag, bool) for flag in value.values()):
        raise SignalingError(ErrorCode.TOKEN_INVALID, "join token's grants must be true or false")
    return Grants(**value)
