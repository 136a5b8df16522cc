"""Documented signaling behaviour, each shown on a real server with real aiortc connections:
media failures, dropped and vanished sockets, limits, renegotiation, proxies and join links."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import struct
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from aioice import stun
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

from callserver.app import HUB, MEDIA
from callserver.probe import ScriptedCaller
from tests.conftest import store_empty, stored_rooms, wait_for, wait_for_async
from tests.test_bad_input import assert_baseline, expect_error

JOIN = {"type": "join", "room": "guarantee-room", "name": "Ann", "spoken": "en", "listen": "es"}


class HeaderCaller(ScriptedCaller):
    """A caller whose WebSocket upgrade carries extra headers (a proxy's X-Forwarded-For)."""

    def __init__(self, *args: Any, headers: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers = headers

    async def connect(self) -> None:
        url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.session.ws_connect(url, headers=self.headers)
        self._tasks.append(asyncio.create_task(self._read_ws()))


class SilentCaller(ScriptedCaller):
    """A caller whose client never answers the server's pings (a frozen or cut-off page)."""

    async def connect(self) -> None:
        url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.session.ws_connect(url, autoping=False)
        self._tasks.append(asyncio.create_task(self._read_ws()))


async def offer_from(pc: RTCPeerConnection) -> str:
    """``pc``'s offer with audio up and the ``events`` channel, ICE gathered."""
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    return sdp


async def next_error(caller: ScriptedCaller, timeout: float = 30.0) -> dict[str, Any]:
    """The next ``error`` message, skipping anything else."""
    async with asyncio.timeout(timeout):
        while True:
            message = await caller.inbox.get()
            if message.get("type") == "error":
                return message


# --- media_failed -------------------------------------------------------------------------------


class RefusingIcePeer(asyncio.DatagramProtocol):
    """Fault injection: the ICE end of a peer that refuses every connectivity check.

    It answers each STUN binding request with a signed 400 error, which aioice takes as the
    pair failing, so the server's ICE fails at once (a silent port would take a minute).
    """

    def __init__(self, password: str) -> None:
        self.key = password.encode()
        self.refused = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_class != stun.Class.REQUEST or self.transport is None:
            return
        response = stun.Message(
            message_method=request.message_method,
            message_class=stun.Class.ERROR,
            transaction_id=request.transaction_id,
        )
        response.attributes["ERROR-CODE"] = (400, "Bad Request")
        response.add_message_integrity(self.key)
        response.add_fingerprint()
        self.transport.sendto(bytes(response), addr)
        self.refused += 1


async def test_ice_failure_reports_media_failed_and_a_new_offer_works(
    make_server: Callable[..., Any],
) -> None:
    async with make_server() as server:
        c = server.caller()
        await c.join("guarantee-room")
        broken = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sdp = await offer_from(broken)
        password = next(line for line in sdp.splitlines() if line.startswith("a=ice-pwd:"))[10:]
        loop = asyncio.get_running_loop()
        transport, refusing = await loop.create_datagram_endpoint(
            lambda: RefusingIcePeer(password), local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        # The offer's only candidate is the refusing peer's port.
        lines = [line for line in sdp.splitlines() if not line.startswith("a=candidate:")]
        at = lines.index("a=end-of-candidates")
        lines.insert(at, f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host")
        await c.send({"type": "offer", "sdp": "\r\n".join(lines) + "\r\n"})
        await c.expect("answer")
        error = await next_error(c)
        assert error["code"] == "media_failed", error
        assert error["retry"] is True and error["in_reply_to"] is None
        assert "(failed)" in error["message"]
        assert refusing.refused >= 1
        await wait_for(lambda: server.app[MEDIA].peer_count == 0)
        transport.close()
        await broken.close()
        await c.start_media()
        peer = server.app[MEDIA].peer("guarantee-room", c.participant_id or "")
        assert peer is not None and peer.connected
        await c.close()
        await assert_baseline(server)


async def test_connect_timeout_reports_media_failed_and_a_new_offer_works(
    make_server: Callable[..., Any],
) -> None:
    async with make_server(pc_connect_timeout_s=1.0) as server:
        c = server.caller()
        await c.join("guarantee-room")
        stalled = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await c.send({"type": "offer", "sdp": await offer_from(stalled)})
        await c.expect("answer")
        # The answer is never applied, so the client never nominates a pair: the server's ICE
        # stays checking and only the connect deadline ends it.
        error = await next_error(c)
        assert error["code"] == "media_failed", error
        assert error["retry"] is True
        assert "(connect_timeout)" in error["message"]
        assert server.app[MEDIA].peer_count == 0
        await stalled.close()
        # A slow machine must not trip the short deadline on the retry, which should connect.
        media = server.app[MEDIA]
        media.limits = dataclasses.replace(media.limits, connect_timeout_s=60.0)
        await c.start_media()
        assert server.app[MEDIA].peer_count == 1
        await c.close()
        await assert_baseline(server)


# --- dropped and vanished sockets -----------------------------------------------------------------


async def test_heartbeat_drops_a_silent_client(make_server: Callable[..., Any]) -> None:
    async with make_server(ws_heartbeat_s=1.0) as server:
        stays = server.caller(name="Stays")
        await stays.join("guarantee-room")
        silent = SilentCaller(server.url, server.session, name="Silent")
        await silent.join("guarantee-room")
        await silent.start_media()
        assert server.app[MEDIA].peer_count == 1
        left = await stays.expect("participant-left", timeout=30)
        assert left == {
            "v": 1,
            "type": "participant-left",
            "participant_id": silent.participant_id,
            "reason": "disconnected",
        }
        await wait_for(lambda: server.app[MEDIA].peer_count == 0)
        assert server.app[HUB].connection_count == 1
        await silent.close()
        await stays.close()
        await assert_baseline(server)


async def raw_join(url: str, join: dict[str, Any]) -> asyncio.StreamWriter:
    """Join over a hand-made WebSocket; returns the stream, to be cut without a close frame."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        payload = json.dumps({"v": 1, **join}).encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        first, size = await reader.readexactly(2)
        assert first == 0x81  # one unfragmented text frame
        size &= 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
        message = json.loads(await reader.readexactly(size))
    assert message["type"] == "welcome", message
    return writer


async def test_abruptly_closed_socket_leaves_as_disconnected(
    make_server: Callable[..., Any],
) -> None:
    async with make_server() as server:
        stays = server.caller(name="Stays")
        await stays.join("guarantee-room")
        writer = await raw_join(server.url, {**JOIN, "name": "Gone"})
        joined = await stays.expect("participant-joined")
        writer.transport.abort()  # a reset, no close frame: the network or the process died
        left = await stays.expect("participant-left", timeout=30)
        assert left["participant_id"] == joined["participant"]["id"]
        assert left["reason"] == "disconnected"
        await wait_for(lambda: server.app[HUB].connection_count == 1)
        await stays.close()
        await assert_baseline(server)


# --- limits ---------------------------------------------------------------------------------------


async def test_rooms_exhausted_is_refused_with_retry(make_server: Callable[..., Any]) -> None:
    async with make_server(max_rooms=1, room_empty_ttl_s=0.3) as server:
        a, b = server.caller(name="A"), server.caller(name="B")
        await a.join("guarantee-one")
        await b.connect()
        await b.send({**JOIN, "room": "guarantee-two"})
        error = await expect_error(b, "rooms_exhausted")
        assert error["retry"] is True and error["in_reply_to"] == "join"
        assert await stored_rooms(server.app) == 1
        # Retry is honest: once the only room is gone, the same join succeeds.
        await a.leave()
        await wait_for_async(lambda: store_empty(server.app))
        await b.send({**JOIN, "room": "guarantee-two"})
        welcome = await b.expect("welcome")
        assert welcome["room"]["id"] == "guarantee-two"
        for c in (a, b):
            await c.close()
        await assert_baseline(server)


@pytest.mark.parametrize("trusted", [False, True])
async def test_join_rate_limit_address_follows_trust_forwarded_for(
    make_server: Callable[..., Any], trusted: bool
) -> None:
    async with make_server(joins_per_minute=2, trust_forwarded_for=trusted) as server:

        def via(address: str) -> HeaderCaller:
            return HeaderCaller(
                server.url, server.session, headers={"X-Forwarded-For": f"{address}, 10.9.9.9"}
            )

        first = via("203.0.113.1")
        await first.connect()
        for _ in range(2):
            await first.send({**JOIN, "name": " "})  # refused joins spend the budget too
            await expect_error(first, "name_invalid")
        other = via("203.0.113.2")
        await other.connect()
        await other.send(JOIN)
        if trusted:
            # Its own address, its own budget; the first address stays limited.
            await other.expect("welcome")
            again = via("203.0.113.1")
            await again.connect()
            await again.send(JOIN)
            await expect_error(again, "rate_limited")
            await again.close()
        else:
            # The header is anyone's to write: everyone here is 127.0.0.1.
            await expect_error(other, "rate_limited")
        for c in (first, other):
            await c.close()
        await assert_baseline(server)


# --- offers ---------------------------------------------------------------------------------------


async def test_video_is_answered_inactive_and_a_second_offer_renegotiates(
    make_server: Callable[..., Any],
) -> None:
    async with make_server() as server:
        a, b = server.caller(name="A"), server.caller(name="B")
        await a.join("guarantee-room")
        await b.join("guarantee-room")
        await b.start_media()
        await a.start_media()
        assert a.pc is not None
        peer = server.app[MEDIA].peer("guarantee-room", a.participant_id or "")
        assert peer is not None
        await wait_for(lambda: len(a.recording.blocks) > 10 and len(b.recording.blocks) > 10)

        # The second offer adds a camera on the same connection.
        a.pc.addTransceiver("video", direction="sendrecv")
        await a.pc.setLocalDescription(await a.pc.createOffer())
        await a.send({"type": "offer", "sdp": a.pc.localDescription.sdp})
        answer = await a.expect("answer")
        await a.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        directions = {m.kind: m.direction for m in SessionDescription.parse(answer["sdp"]).media}
        assert directions == {"audio": "sendrecv", "video": "inactive", "application": None}

        # Same connection, still carrying audio both ways and the data channel.
        assert server.app[MEDIA].peer("guarantee-room", a.participant_id or "") is peer
        assert server.app[MEDIA].peer_count == 2 and peer.connected
        heard_by_a, heard_by_b = len(a.recording.blocks), len(b.recording.blocks)
        await wait_for(
            lambda: (
                len(a.recording.blocks) > heard_by_a + 25
                and len(b.recording.blocks) > heard_by_b + 25
            )
        )
        assert peer.send_event({"type": "probe-event"})
        await wait_for(lambda: {"type": "probe-event"} in a.events)
        for c in (a, b):
            await c.close()
        await assert_baseline(server)


# --- HTTP ---------------------------------------------------------------------------------------


async def test_join_links_use_the_public_url(make_server: Callable[..., Any]) -> None:
    async with make_server(public_url="https://calls.example.org/") as server:
        async with server.session.post(server.url + "/api/rooms") as resp:
            assert resp.status == 201
            room = await resp.json()
        assert room["join_url"] == f"https://calls.example.org/?room={room['id']}"


@pytest.mark.parametrize("trusted", [False, True])
async def test_join_links_default_to_the_request_host(
    make_server: Callable[..., Any], trusted: bool
) -> None:
    # A client's own X-Forwarded-Proto counts only behind a trusted proxy.
    headers = {"Host": "calls.internal:8443", "X-Forwarded-Proto": "https"}
    async with make_server(trust_forwarded_for=trusted) as server:
        url = server.url + "/api/rooms"
        async with server.session.post(url, headers=headers) as resp:
            room = await resp.json()
    scheme = "https" if trusted else "http"
    assert room["join_url"] == f"{scheme}://calls.internal:8443/?room={room['id']}"


async def test_a_new_connection_after_the_client_closed_its_own(
    make_server: Callable[..., Any],
) -> None:
    async with make_server() as server:
        c = server.caller()
        await c.join("guarantee-room")
        await c.start_media()
        await c.stop_media()
        # The client's DTLS goodbye closes the server's end; the participant stays in the room.
        await wait_for(lambda: server.app[MEDIA].peer_count == 0)
        await c.start_media()
        peer = server.app[MEDIA].peer("guarantee-room", c.participant_id or "")
        assert peer is not None and peer.connected
        await c.close()
        await assert_baseline(server)
