"""Offers aiortc would choke on are refused before a peer connection exists, in words."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from callserver.app import HUB, MEDIA, METRICS
from callserver.media.offer_check import OfferLimits, check_offer
from callserver.probe import ProbeError, ScriptedCaller
from signaling.errors import ErrorCode, SignalingError
from tests.conftest import DATA, RunningServer, wait_for

CHROMIUM_OFFER = (DATA / "chromium-offer.sdp").read_text().replace("\n", "\r\n")
# What Python's own exceptions read like: none of it may reach a person.
RAW_EXCEPTION = re.compile(
    r"NoneType|StopIteration|Traceback|Error\b|object has no attribute|invalid literal|unpack"
)


def without(pattern: str, sdp: str = CHROMIUM_OFFER) -> str:
    """``sdp`` less every line matching ``pattern``."""
    return "".join(
        f"{line}\r\n" for line in sdp.split("\r\n") if line and not re.match(pattern, line)
    )


def refusal(sdp: str, limits: OfferLimits | None = None) -> str:
    with pytest.raises(SignalingError) as refused:
        check_offer(sdp, limits)
    assert refused.value.code == ErrorCode.SDP_INVALID
    message = refused.value.message
    assert not RAW_EXCEPTION.search(message), message
    assert message[0].isupper() and message.endswith("."), message
    return message


def test_a_recorded_chromium_offer_passes() -> None:
    check_offer(CHROMIUM_OFFER)
    check_offer(CHROMIUM_OFFER.replace("\r\n", "\n"))


async def test_aiortc_offers_pass() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio")
    pc.addTransceiver("video")
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    check_offer(pc.localDescription.sdp)
    await pc.close()


@pytest.mark.parametrize(
    ("mutant", "expected"),
    [
        (without(r"a=fingerprint"), "no DTLS fingerprint, so a secure connection cannot be set up"),
        (CHROMIUM_OFFER.replace("sha-256", "md5"), "no DTLS fingerprint this server can check"),
        (
            CHROMIUM_OFFER.replace("sha-256 BB:70", "sha-256 BB"),
            "no DTLS fingerprint this server can check",
        ),
        (CHROMIUM_OFFER.replace("sha-256 BB", "sha-256BB"), "malformed DTLS fingerprint"),
        (without(r"a=setup"), "no DTLS setup role"),
        (CHROMIUM_OFFER.replace("setup:actpass", "setup:passive"), "must use 'actpass'"),
        (CHROMIUM_OFFER.replace("setup:actpass", "setup:bogus"), "unknown DTLS setup role"),
        (without(r"a=ice-ufrag"), "no ICE credentials"),
        (without(r"a=ice-pwd"), "no ICE credentials"),
        (CHROMIUM_OFFER.replace("ice-pwd:nOeQ", "ice-pwd:"), "ICE credentials of the offer"),
        (CHROMIUM_OFFER.replace("ice-ufrag:OZy7", "ice-ufrag:O y"), "ICE credentials of the"),
        (without(r"m=audio|a=rtpmap|a=fmtp|a=rtcp-fb|a=ssrc"), "no audio section"),
        (CHROMIUM_OFFER.replace("m=audio 41834", "m=audio 0"), "rejected (port 0)"),
        (CHROMIUM_OFFER.replace("a=sendrecv", "a=inactive"), "audio is inactive"),
        (
            re.sub(r"a=rtpmap:(\d+) \w+", r"a=rtpmap:\1 speex", CHROMIUM_OFFER),
            "no audio codec this server speaks (g722, opus, pcma, pcmu)",
        ),
        (CHROMIUM_OFFER.replace("BUNDLE 0 1", "BUNDLE 7 1"), "names the media id '7'"),
        (CHROMIUM_OFFER.replace("BUNDLE 0 1", "BUNDLE 0 0"), "names a media section twice"),
        (CHROMIUM_OFFER.replace("a=mid:1", "a=mid:0"), "the same media id"),
        (without(r"a=mid"), "exactly one media id"),
        (without(r"a=rtcp-mux"), "does not multiplex RTCP"),
        (without(r"a=sctp-port"), "no SCTP port"),
        (CHROMIUM_OFFER.replace("a=fmtp:111 ", "a=fmtp:99 "), "payload type 99, which has no"),
        (CHROMIUM_OFFER.replace("a=ssrc:3830605140 cname", "a=ssrc:x cname"), "'a=ssrc'"),
        (CHROMIUM_OFFER.replace("a=extmap:1 urn", "a=extmap:x urn"), "'a=extmap'"),
        (CHROMIUM_OFFER.replace("network-cost 999", "network-cost"), "malformed ICE candidate"),
        (CHROMIUM_OFFER.replace("192.0.2.2 41834", "evil.example 41834"), "mDNS name"),
        (CHROMIUM_OFFER.replace("SAVPF 111", "SAVPF 1111"), "invalid RTP payload type"),
        (CHROMIUM_OFFER.replace("SAVPF 111", "SAVPF ²"), "invalid RTP payload type"),
        (CHROMIUM_OFFER.replace("m=application", "m=text"), "'text' media section"),
        (CHROMIUM_OFFER.replace("c=IN IP4 192.0.2.2", "c=IN"), "malformed connection address"),
        (CHROMIUM_OFFER.replace("s=-", "s=-\r\nnot a line"), "Line 4 of the offer is not"),
        (CHROMIUM_OFFER.replace("v=0", "v=1"), "must start with 'v=0'"),
        ("hello", "must start with 'v=0'"),
        (CHROMIUM_OFFER.replace("s=-", "s=\ud800"), "Line 3 of the offer is not"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no media section"),
    ],
)
def test_each_flaw_is_refused_in_words(mutant: str, expected: str) -> None:
    assert expected in refusal(mutant)


def test_sizes_are_limited() -> None:
    sections = CHROMIUM_OFFER.count("m=")
    assert "more than 1 media sections" in refusal(
        CHROMIUM_OFFER, OfferLimits(max_media_sections=sections - 1)
    )
    candidates = CHROMIUM_OFFER.count("a=candidate")
    message = refusal(CHROMIUM_OFFER, OfferLimits(max_candidates=candidates - 1))
    assert f"lists {candidates} ICE candidates" in message
    check_offer(CHROMIUM_OFFER, OfferLimits(max_media_sections=sections, max_candidates=candidates))


def test_what_only_aiortc_notices_is_still_said_in_words() -> None:
    # An fmtp integer parameter aiortc converts with int(): no check here knows it.
    mutant = CHROMIUM_OFFER.replace("a=fmtp:63 111/111", "a=fmtp:63 apt=x")
    assert "could not be read as a session description" in refusal(mutant)


# --- over the real signaling WebSocket --------------------------------------------------------


async def refused_over_the_wire(caller: ScriptedCaller, sdp: str) -> dict[str, Any]:
    await caller.send({"type": "offer", "sdp": sdp})
    with pytest.raises(ProbeError) as refused:
        await caller.expect("answer")
    message = refused.value.message
    assert isinstance(message, dict) and message["code"] == "sdp_invalid", message
    assert message["retry"] is False and message["in_reply_to"] == "offer"
    assert not RAW_EXCEPTION.search(message["message"]), message
    return message


def assert_quiet_log(caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()  # asyncio reports an unretrieved task exception when the task is collected
    loud = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info or "never retrieved" in r.getMessage()
    ]
    assert loud == [], [r.getMessage() for r in loud]


async def test_an_offer_that_cannot_connect_is_refused_and_leaves_nothing(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    media, metrics = server.app[MEDIA], server.app[METRICS]
    alice = server.caller(name="Alice")
    await alice.join("offer-check-room")
    error = await refused_over_the_wire(alice, without(r"a=fingerprint"))
    assert "no DTLS fingerprint, so a secure connection cannot be set up" in error["message"]
    assert media.peer_count == 0 and media.room_count == 0
    # Leaving after the refusal closes nothing noisily, and the server still answers.
    await alice.leave()
    await alice.join("offer-check-room")
    await alice.start_media()
    assert media.peer_count == 1
    peer = media.peer("offer-check-room", alice.participant_id or "")
    assert peer is not None and peer.connected
    # A lone surrogate (JSON may carry one) is refused in words, not failed inside.
    await refused_over_the_wire(alice, CHROMIUM_OFFER.replace("s=-", "s=\ud800"))
    # A bad renegotiation is refused too, and the call it would have replaced goes on.
    await refused_over_the_wire(alice, CHROMIUM_OFFER.replace("BUNDLE 0 1", "BUNDLE 7 1"))
    assert media.peer("offer-check-room", alice.participant_id or "") is peer and peer.connected
    await alice.close()
    await wait_for(lambda: media.peer_count == 0 and server.app[HUB].connection_count == 0)
    await asyncio.sleep(0.2)
    assert metrics.errors.labels("sdp_invalid")._value.get() == 3
    assert metrics.errors.labels("internal")._value.get() == 0
    assert_quiet_log(caplog)


async def test_an_offer_aiortc_still_refuses_is_answered_in_words(
    server: RunningServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)

    async def chokes(self: RTCPeerConnection, description: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'split'")

    monkeypatch.setattr(RTCPeerConnection, "setRemoteDescription", chokes)
    bob = server.caller(name="Bob")
    await bob.join("offer-check-room")
    error = await refused_over_the_wire(bob, CHROMIUM_OFFER)
    assert "could not apply the offer" in error["message"]
    assert server.app[MEDIA].peer_count == 0
    await bob.close()
    await wait_for(lambda: server.app[HUB].connection_count == 0)
    notes = [r for r in caplog.records if r.getMessage() == "offer refused by aiortc"]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING
    assert notes[0].__dict__["error_type"] == "AttributeError"
    assert notes[0].__dict__["participant"] == bob.participant_id
    assert_quiet_log(caplog)


async def test_a_relayed_description_with_a_lone_surrogate_is_not_an_internal_error(
    server: RunningServer,
) -> None:
    alice, bob = server.caller(name="Alice"), server.caller(name="Bob")
    await alice.join("offer-check-room")
    await bob.join("offer-check-room")
    await alice.send({"type": "p2p-offer", "to": bob.participant_id, "sdp": "v=0\r\ns=\ud800\r\n"})
    relayed = await bob.expect("p2p-offer")
    assert relayed["sdp"] == "v=0\r\ns=\ud800\r\n"
    assert server.app[METRICS].errors.labels("internal")._value.get() == 0
    await alice.close()
    await bob.close()
