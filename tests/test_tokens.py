"""Join tokens: HMAC-signed, bound to a room, expiring."""

from __future__ import annotations

import subprocess
import sys

import pytest

from signaling.errors import ErrorCode, SignalingError
from signaling.tokens import mint_token, verify_token

SECRET = b"s3cret-for-tests"


def code_of(token: str, room: str = "room-one", now: float = 1000.0) -> ErrorCode:
    with pytest.raises(SignalingError) as err:
        verify_token(SECRET, token, room, now=now)
    return err.value.code


def test_valid_token_verifies() -> None:
    token = mint_token(SECRET, "room-one", ttl_s=60, now=1000.0)
    claims = verify_token(SECRET, token, "room-one", now=1059.0)
    assert claims.room == "room-one" and claims.expires_at == 1060


def test_expired_token() -> None:
    token = mint_token(SECRET, "room-one", ttl_s=60, now=1000.0)
    assert code_of(token, now=1060.0) == ErrorCode.TOKEN_EXPIRED


def test_token_for_another_room() -> None:
    token = mint_token(SECRET, "room-two", ttl_s=60, now=1000.0)
    assert code_of(token) == ErrorCode.TOKEN_WRONG_ROOM


def test_token_signed_with_another_secret() -> None:
    token = mint_token(b"other", "room-one", ttl_s=60, now=1000.0)
    assert code_of(token) == ErrorCode.TOKEN_INVALID


def test_tampered_payload_fails_signature() -> None:
    token = mint_token(SECRET, "room-one", ttl_s=60, now=1000.0)
    payload, sig = token.split(".")
    forged = mint_token(SECRET, "room-one", ttl_s=10**9, now=1000.0).split(".")[0]
    assert code_of(f"{forged}.{sig}") == ErrorCode.TOKEN_INVALID
    assert payload != forged


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "..", "x" * 5000, "é.é"])
def test_garbage_tokens_are_invalid(garbage: str) -> None:
    assert code_of(garbage) == ErrorCode.TOKEN_INVALID


def test_cli_mints_a_token_the_server_accepts() -> None:
    env = {"CALLSERVER_JOIN_SECRET": SECRET.decode(), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-m", "callserver", "token", "room-one", "--ttl", "120"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    verify_token(SECRET, out.stdout.strip(), "room-one")


def test_cli_without_secret_says_what_to_set() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "callserver", "token", "room-one"],
        capture_output=True,
        text=True,
        env={"PATH": ""},
    )
    assert out.returncode == 2
    assert "CALLSERVER_JOIN_SECRET" in out.stderr
    assert "Traceback" not in out.stderr
