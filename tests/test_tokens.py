"""Join tokens: HS256 JWTs bound to a room, expiring, with a small leeway; refused otherwise
with a token_* code, both by ``verify_token`` and by a running server's join."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from signaling.errors import ErrorCode, SignalingError
from signaling.tokens import (
    DEFAULT_LEEWAY_S,
    MAX_TOKEN_LENGTH,
    Grants,
    TokenOptions,
    mint_token,
    verify_token,
)
from tests.test_bad_input import expect_error

# 64 bytes: RFC 7518's minimum for the HS512 case (32 for HS256); PyJWT warns below that.
SECRET = b"join-secret-for-the-token-tests-" + b"0123456789abcdef" * 2
ROOM = "room-one"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed(claims: dict[str, Any], key: bytes = SECRET, algorithm: str = "HS256") -> str:
    """A token as an operator's backend makes it: PyJWT directly, not our mint_token."""
    return jwt.encode(claims, key, algorithm=algorithm)


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for ROOM, an hour from now; ``None`` values drop a claim."""
    now = int(time.time())
    base: dict[str, Any] = {"room": ROOM, "iat": now, "exp": now + 3600}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def unsigned(body: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(body).encode())}."


def tampered_signature() -> str:
    header, payload, signature = signed(claims()).split(".")
    # The first character: the last one partly encodes padding bits a decoder may ignore.
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    return f"{header}.{payload}.{flipped}"


def tampered_payload() -> str:
    header, _, signature = signed(claims()).split(".")
    other = b64(json.dumps(claims(exp=int(time.time()) + 10**8)).encode())
    return f"{header}.{other}.{signature}"


def rs256() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(), key, algorithm="RS256")


def old_format() -> str:
    """The format before JWTs: base64url(JSON {v, room, exp}) "." base64url(HMAC-SHA256)."""
    payload = b64(json.dumps({"v": 1, "room": ROOM, "exp": int(time.time()) + 3600}).encode())
    signature = b64(hmac.new(SECRET, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


LEEWAY = int(DEFAULT_LEEWAY_S)
assert LEEWAY >= 4, "the within-leeway cases need a few seconds of margin"

#: (case, token maker, the code it is refused with)
REFUSED: list[tuple[str, Callable[[], str], ErrorCode]] = [
    ("alg none", lambda: unsigned(claims()), ErrorCode.TOKEN_INVALID),
    (
        "alg none with the secret's signature",
        lambda: unsigned(claims()) + "x",
        ErrorCode.TOKEN_INVALID,
    ),
    ("HS512", lambda: signed(claims(), algorithm="HS512"), ErrorCode.TOKEN_INVALID),
    ("RS256", rs256, ErrorCode.TOKEN_INVALID),
    ("no exp", lambda: signed(claims(exp=None)), ErrorCode.TOKEN_INVALID),
    ("expired", lambda: signed(claims(exp=int(time.time()) - 60)), ErrorCode.TOKEN_EXPIRED),
    (
        "expired just past the leeway",
        lambda: signed(claims(exp=int(time.time()) - LEEWAY - 2)),
        ErrorCode.TOKEN_EXPIRED,
    ),
    ("not yet valid", lambda: signed(claims(nbf=int(time.time()) + 60)), ErrorCode.TOKEN_INVALID),
    (
        "issued in the future",
        lambda: signed(claims(iat=int(time.time()) + 60)),
        ErrorCode.TOKEN_INVALID,
    ),
    ("wrong room", lambda: signed(claims(room="room-two")), ErrorCode.TOKEN_WRONG_ROOM),
    ("no room", lambda: signed(claims(room=None)), ErrorCode.TOKEN_INVALID),
    ("tampered signature", tampered_signature, ErrorCode.TOKEN_INVALID),
    ("tampered payload", tampered_payload, ErrorCode.TOKEN_INVALID),
    (
        "another secret",
        lambda: signed(claims(), key=b"x" * 32 + b"another"),
        ErrorCode.TOKEN_INVALID,
    ),
    ("old format", old_format, ErrorCode.TOKEN_INVALID),
    ("an aud this server is not", lambda: signed(claims(aud="elsewhere")), ErrorCode.TOKEN_INVALID),
    ("exp not a number", lambda: signed(claims(exp="soon")), ErrorCode.TOKEN_INVALID),
    ("sub not text", lambda: signed(claims(sub=42)), ErrorCode.TOKEN_INVALID),
    ("name not text", lambda: signed(claims(name=["Ann"])), ErrorCode.TOKEN_INVALID),
    ("grants not an object", lambda: signed(claims(grants=True)), ErrorCode.TOKEN_INVALID),
    ("grant misspelt", lambda: signed(claims(grants={"speek": False})), ErrorCode.TOKEN_INVALID),
    ("grant not a bool", lambda: signed(claims(grants={"speak": "no"})), ErrorCode.TOKEN_INVALID),
    ("garbage", lambda: "not a token", ErrorCode.TOKEN_INVALID),
    ("three empty parts", lambda: "..", ErrorCode.TOKEN_INVALID),
    ("non-ASCII", lambda: "é.é.é", ErrorCode.TOKEN_INVALID),
    ("over the length limit", lambda: "a." * MAX_TOKEN_LENGTH + "a", ErrorCode.TOKEN_INVALID),
]

#: (case, token maker): accepted.
ACCEPTED: list[tuple[str, Callable[[], str]]] = [
    ("minimal: room and exp", lambda: signed({"room": ROOM, "exp": int(time.time()) + 60})),
    ("expired within the leeway", lambda: signed(claims(exp=int(time.time()) - LEEWAY + 3))),
    ("nbf within the leeway", lambda: signed(claims(nbf=int(time.time()) + LEEWAY - 3))),
    ("iat within the leeway", lambda: signed(claims(iat=int(time.time()) + LEEWAY - 3))),
    ("minted here", lambda: mint_token(SECRET, ROOM, 60)),
]


def code_of(token: str, options: TokenOptions | None = None) -> ErrorCode:
    with pytest.raises(SignalingError) as err:
        verify_token(SECRET, token, ROOM, options)
    # Written for people: never PyJWT's own text.
    assert "Signature" not in err.value.message and "alg value" not in err.value.message
    return err.value.code


@pytest.mark.parametrize(
    ("make", "code"), [(m, c) for _, m, c in REFUSED], ids=[n for n, *_ in REFUSED]
)
def test_refused(make: Callable[[], str], code: ErrorCode) -> None:
    assert code_of(make()) == code


@pytest.mark.parametrize("make", [m for _, m in ACCEPTED], ids=[n for n, _ in ACCEPTED])
def test_accepted(make: Callable[[], str]) -> None:
    assert verify_token(SECRET, make(), ROOM).room == ROOM


def test_the_leeway_is_what_accepts_a_just_expired_token() -> None:
    token = signed(claims(exp=int(time.time()) - 2))
    verify_token(SECRET, token, ROOM, TokenOptions(leeway_s=5))
    assert code_of(token, TokenOptions(leeway_s=0)) == ErrorCode.TOKEN_EXPIRED


def test_an_old_format_token_is_named_as_such() -> None:
    """Refused (no dual format), but an operator reading the log sees why."""
    with pytest.raises(SignalingError) as err:
        verify_token(SECRET, old_format(), ROOM)
    assert "old format" in err.value.message


def test_claims_carry_identity_and_grants() -> None:
    token = signed(
        claims(sub="user-7", name="Ann", grants={"speak": False, "host": True}, exp=2 * 10**9)
    )
    got = verify_token(SECRET, token, ROOM)
    assert (got.subject, got.name, got.expires_at) == ("user-7", "Ann", 2 * 10**9)
    assert got.grants == Grants(speak=False, listen=True, host=True)
    assert verify_token(SECRET, signed(claims()), ROOM).grants == Grants()


def test_minted_claims_round_trip() -> None:
    grants = Grants(speak=False)
    token = mint_token(SECRET, ROOM, 60, subject="u1", name="Bo", grants=grants)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    got = verify_token(SECRET, token, ROOM)
    assert (got.subject, got.name, got.grants) == ("u1", "Bo", grants)


def test_issuer_and_audience_are_checked_only_when_configured() -> None:
    options = TokenOptions(issuer="https://backend.example", audience="callserver")
    minted = mint_token(SECRET, ROOM, 60, options=options)
    verify_token(SECRET, minted, ROOM, options)
    # Unconfigured: any iss passes, but an aud names a recipient, so it must be this one.
    verify_token(SECRET, signed(claims(iss="anyone")), ROOM)
    assert code_of(minted) == ErrorCode.TOKEN_INVALID
    for token in (
        signed(claims(iss="https://backend.example")),  # no aud
        signed(claims(aud="callserver")),  # no iss
        signed(claims(iss="https://other.example", aud="callserver")),
        signed(claims(iss="https://backend.example", aud="other")),
    ):
        assert code_of(token, options) == ErrorCode.TOKEN_INVALID


async def test_the_running_server_applies_the_matrix(make_server: Callable[..., Any]) -> None:
    """Every case through a real join; a backend's own PyJWT token gets ``welcome``."""
    # Every refusal counts as a protocol error: let the one connection see them all.
    async with make_server(join_secret=SECRET.decode(), max_protocol_errors=1000) as server:
        join = {"type": "join", "room": ROOM, "name": "Ann", "spoken": "en", "listen": "es"}
        c = server.caller()
        await c.connect()
        for name, make, code in REFUSED:
            await c.send({**join, "token": make()})
            error = await expect_error(c, code.value)
            assert name and error["code"] == code.value
        for _, make in ACCEPTED:
            await c.send({**join, "token": make()})
            await c.expect("welcome")
            await c.send({"type": "leave"})
            await c.expect("left")
        backend = jwt.encode(
            {
                "room": ROOM,
                "sub": "user-42",
                "name": "Ann",
                "grants": {"speak": True, "listen": True},
                "nbf": int(time.time()),
                "exp": int(time.time()) + 300,
            },
            SECRET,
            algorithm="HS256",
        )
        await c.send({**join, "token": backend})
        await c.expect("welcome")
        await c.close()


async def test_post_rooms_hands_out_a_jwt_the_server_accepts(
    make_server: Callable[..., Any],
) -> None:
    secret = SECRET.decode()
    async with make_server(join_secret=secret, join_token_issuer="callserver-tests") as server:
        async with server.session.post(
            server.url + "/api/rooms", headers={"Authorization": f"Bearer {secret}"}
        ) as resp:
            assert resp.status == 201
            body = await resp.json()
        payload = jwt.decode(body["token"], SECRET, algorithms=["HS256"], issuer="callserver-tests")
        assert payload["room"] == body["id"] and payload["exp"] > time.time()
        assert body["join_url"].endswith(f"&token={body['token']}")
        c = server.caller()
        await c.connect()
        await c.send(
            {"type": "join", "room": body["id"], "name": "Ann", "spoken": "en", "listen": "es"}
            | {"token": body["token"]}
        )
        await c.expect("welcome")
        await c.close()


def test_cli_mints_a_jwt_the_server_accepts() -> None:
    env = {"CALLSERVER_JOIN_SECRET": SECRET.decode(), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-m", "callserver", "token", ROOM, "--ttl", "120"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    token = out.stdout.strip()
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert payload["room"] == ROOM and 110 <= payload["exp"] - time.time() <= 120
    verify_token(SECRET, token, ROOM)


def test_cli_without_secret_says_what_to_set() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "callserver", "token", ROOM],
        capture_output=True,
        text=True,
        env={"PATH": ""},
    )
    assert out.returncode == 2
    assert "CALLSERVER_JOIN_SECRET" in out.stderr
    assert "Traceback" not in out.stderr
