"""Parsing client messages: every malformed shape gets its specific error code."""

from __future__ import annotations

import json

import pytest

from signaling.errors import ErrorCode, SignalingError
from signaling.languages import normalize_language
from signaling.protocol import Join, Offer, PeerIce, Ping, parse_message


def code_of(text: str) -> ErrorCode:
    with pytest.raises(SignalingError) as err:
        parse_message(text)
    return err.value.code


def test_join_parses() -> None:
    msg = parse_message(
        json.dumps(
            {"v": 1, "type": "join", "room": "abcdef", "name": "A", "spoken": "en", "listen": "vi"}
        )
    )
    assert isinstance(msg, Join)
    assert msg.token is None and msg.listen == "vi"


def test_offer_ice_ping_parse() -> None:
    assert isinstance(parse_message('{"v":1,"type":"offer","sdp":"v=0"}'), Offer)
    ice = parse_message('{"v":1,"type":"p2p-ice","to":"p_1","candidate":null}')
    assert isinstance(ice, PeerIce) and ice.candidate is None
    ice = parse_message(
        '{"v":1,"type":"p2p-ice","to":"p_1","candidate":{"candidate":"c","sdpMid":"0",'
        '"sdpMLineIndex":0,"usernameFragment":"u"}}'
    )
    assert isinstance(ice, PeerIce) and ice.candidate is not None
    assert isinstance(parse_message('{"v":1,"type":"ping","id":7}'), Ping)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.BAD_JSON),
        ("{", ErrorCode.BAD_JSON),
        ("[" * 100000 + "]" * 100000, ErrorCode.BAD_JSON),
        ("[1,2]", ErrorCode.BAD_MESSAGE),
        ('"join"', ErrorCode.BAD_MESSAGE),
        ('{"v":1}', ErrorCode.BAD_MESSAGE),
        ('{"v":1,"type":5}', ErrorCode.BAD_MESSAGE),
        ('{"v":1,"type":"dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v":2,"type":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v":"1","type":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v":1,"type":"join","room":"abcdef"}', ErrorCode.BAD_MESSAGE),
        ('{"v":1,"type":"offer","sdp":42}', ErrorCode.BAD_MESSAGE),
        ('{"v":1,"type":"offer","sdp":"v=0","extra":1}', ErrorCode.BAD_MESSAGE),
        ('{"v":1,"type":"p2p-ice","to":"p_1"}', ErrorCode.BAD_MESSAGE),
    ],
)
def test_malformed_messages(text: str, code: ErrorCode) -> None:
    assert code_of(text) == code


def test_bad_message_names_the_field() -> None:
    with pytest.raises(SignalingError) as err:
        parse_message('{"v":1,"type":"join","room":"abcdef","name":"A","spoken":"en"}')
    assert "listen" in err.value.message


@pytest.mark.parametrize(
    ("tag", "canon"),
    [("en", "en"), ("pt-br", "pt-BR"), ("PT-BR", "pt-BR"), ("zh-hant", "zh-Hant"), ("vi", "vi")],
)
def test_language_tags_are_normalized(tag: str, canon: str) -> None:
    assert normalize_language(tag) == canon


@pytest.mark.parametrize("tag", ["", "english", "x", "en_US", "qq", "en-" + "a" * 40, "1a"])
def test_bad_or_unknown_languages(tag: str) -> None:
    with pytest.raises(SignalingError) as err:
        normalize_language(tag)
    assert err.value.code == ErrorCode.LANGUAGE_INVALID
