"""The bad-input battery: every case gets its documented error or close code, and the server
returns to its baseline (no rooms, peers, sockets or tasks left behind)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from callserver.app import HUB, MEDIA, METRICS, STATE
from callserver.probe import ProbeError, ScriptedCaller
from signaling.tokens import mint_token
from tests.conftest import RunningServer, stored_rooms, wait_for

JOIN = {"type": "join", "room": "battery-room", "name": "Ann", "spoken": "en", "listen": "es"}


async def expect_error(caller: ScriptedCaller, code: str, timeout: float = 10.0) -> dict[str, Any]:
    with pytest.raises(ProbeError) as err:
        await caller.expect("never-sent", timeout=timeout)
    message = err.value.message
    assert isinstance(message, dict)
    assert message["code"] == code, message
    assert isinstance(message["message"], str) and "Traceback" not in message["message"]
    return message


async def assert_baseline(server: RunningServer) -> None:
    app = server.app
    await wait_for(
        lambda: (
            app[HUB].connection_count == 0
            and app[MEDIA].peer_count == 0
            and app[HUB].participant_count == 0
        )
    )
    internal = app[METRICS].errors.labels("internal")._value.get()
    assert internal == 0, "a request failed inside the server"


@pytest.fixture
async def battery(server: RunningServer) -> AsyncIterator[RunningServer]:
    yield server
    await assert_baseline(server)


@pytest.fixture
def caller(battery: RunningServer) -> Callable[..., ScriptedCaller]:
    return battery.caller


async def test_malformed_json_and_unknown_types_keep_the_connection(
    caller: Callable[..., ScriptedCaller],
) -> None:
    c = caller()
    await c.connect()
    assert c.ws is not None
    for text, code in [
        ("{not json", "bad_json"),
        ("[]", "bad_message"),
        ('{"v":1,"type":"teleport"}', "unknown_type"),
        ('{"v":9,"type":"ping"}', "unsupported_version"),
        ('{"v":1,"type":"join","room":"battery-room"}', "bad_message"),
    ]:
        await c.ws.send_str(text)
        error = await expect_error(c, code)
        assert error["retry"] is False
    await c.ws.send_bytes(b"\x00\x01")
    await expect_error(c, "bad_message")
    await c.send({"type": "ping", "id": 3})
    assert (await c.expect("pong"))["id"] == 3
    await c.close()


async def test_messages_out_of_order(caller: Callable[..., ScriptedCaller]) -> None:
    c = caller()
    await c.connect()
    for message in (
        {"type": "offer", "sdp": "v=0"},
        {"type": "leave"},
        {"type": "update", "name": "B"},
        {"type": "p2p-offer", "to": "p_x", "sdp": "v=0"},
        {"type": "prefs", "dub": False},
    ):
        await c.send(message)
        error = await expect_error(c, "not_joined")
        assert error["in_reply_to"] == message["type"]
    await c.send(JOIN)
    await c.expect("welcome")
    await c.send(JOIN)
    await expect_error(c, "already_joined")
    await c.close()


async def test_bad_and_huge_sdp_then_a_good_offer_still_works(
    battery: RunningServer, caller: Callable[..., ScriptedCaller]
) -> None:
    c = caller()
    await c.join("battery-room")
    cases = [
        ("hello", "sdp_invalid"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 FOO 0\r\n", "sdp_invalid"),
        ("v=0\r\n" + "a=x\r\n" * 9000, "sdp_too_large"),
    ]
    for sdp, code in cases:
        await c.send({"type": "offer", "sdp": sdp})
        await expect_error(c, code)
        assert battery.app[MEDIA].peer_count == 0
    await c.start_media()
    assert battery.app[MEDIA].peer_count == 1
    await c.close()


async def test_offer_without_audio_is_refused(caller: Callable[..., ScriptedCaller]) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection

    c = caller()
    await c.join("battery-room")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    await c.send({"type": "offer", "sdp": pc.localDescription.sdp})
    error = await expect_error(c, "sdp_invalid")
    assert "audio" in error["message"]
    await pc.close()
    await c.close()


async def test_oversized_message_closes_with_1009(
    battery: RunningServer, caller: Callable[..., ScriptedCaller]
) -> None:
    c = caller()
    await c.join("battery-room")
    assert c.ws is not None
    limit = battery.app[HUB].limits.ws_max_message_bytes
    await c.ws.send_str(json.dumps({"v": 1, "type": "ping", "id": "x" * (limit + 10)}))
    await wait_for(lambda: c.ws is not None and c.ws.closed)
    assert c.ws.close_code == 1009
    await c.close()


async def test_third_person_in_a_two_person_call(caller: Callable[..., ScriptedCaller]) -> None:
    a, b, c = caller(name="A"), caller(name="B"), caller(name="C")
    await a.join("battery-room")
    await b.join("battery-room")
    with pytest.raises(ProbeError) as err:
        await c.join("battery-room")
    assert isinstance(err.value.message, dict)
    assert err.value.message["code"] == "room_full"
    # The two inside are unaffected and C may try another room on the same socket.
    await a.send({"type": "ping"})
    await a.expect("pong")
    welcome = await c.join("battery-other")
    assert welcome["room"]["id"] == "battery-other"
    for x in (a, b, c):
        await x.close()


async def test_bad_names_and_languages(caller: Callable[..., ScriptedCaller]) -> None:
    c = caller()
    await c.connect()
    for change, code in [
        ({"name": "   "}, "name_invalid"),
        ({"name": "x" * 65}, "name_invalid"),
        ({"name": "bad\u0000name"}, "name_invalid"),
        ({"spoken": "klingon"}, "language_invalid"),
        ({"listen": "xx"}, "language_invalid"),
        ({"room": "no"}, "room_id_invalid"),
    ]:
        await c.send({**JOIN, **change})
        await expect_error(c, code)
    await c.send(JOIN)
    await c.expect("welcome")
    await c.send({"type": "update", "name": "Ok", "listen": "zz"})
    await expect_error(c, "language_invalid")
    await c.send({"type": "prefs", "original_volume": 1.5})
    await expect_error(c, "bad_message")
    await c.send({"type": "prefs", "dub": "yes"})
    await expect_error(c, "bad_message")
    await c.send({"type": "prefs", "original_volume": 0.25})
    prefs = await c.expect("prefs")
    assert (prefs["dub"], prefs["original_volume"]) == (True, 0.25)
    await c.send({"type": "update", "listen": "pt-br"})
    updated = await c.expect("participant-updated")
    assert updated["participant"]["listen"] == "pt-BR"
    assert updated["participant"]["name"] == "Ann"  # the refused update changed nothing
    await c.close()


async def test_relay_to_unknown_or_foreign_participant(
    caller: Callable[..., ScriptedCaller],
) -> None:
    a, b = caller(), caller()
    await a.join("battery-room")
    await b.join("battery-else")
    assert b.participant_id is not None
    await a.send({"type": "p2p-offer", "to": b.participant_id, "sdp": "v=0\r\n"})
    await expect_error(a, "peer_not_found")
    await a.send({"type": "p2p-ice", "to": "p_nobody", "candidate": None})
    await expect_error(a, "peer_not_found")
    await a.send({"type": "p2p-ice", "to": "p_nobody", "candidate": {"candidate": "c" * 5000}})
    await expect_error(a, "bad_message")
    await a.close()
    await b.close()


async def test_too_many_errors_closes_4000(make_server: Callable[..., Any]) -> None:
    async with make_server(max_protocol_errors=3) as server:
        c = server.caller()
        await c.connect()
        assert c.ws is not None
        for _ in range(3):
            await c.ws.send_str("nope")
        await wait_for(lambda: c.ws is not None and c.ws.closed)
        assert c.ws.close_code == 4000
        await c.close()
        await assert_baseline(server)


async def test_message_flood_closes_4029(make_server: Callable[..., Any]) -> None:
    async with make_server(messages_per_second=5) as server:
        c = server.caller()
        await c.join("battery-room")
        assert c.ws is not None
        for _ in range(40):
            if c.ws.closed:
                break
            await c.ws.send_str('{"v":1,"type":"ping"}')
        await wait_for(lambda: c.ws is not None and c.ws.closed)
        assert c.ws.close_code == 4029
        # The reader queues messages in arrival order, so the last one came before the close.
        received = [c.inbox.get_nowait() for _ in range(c.inbox.qsize())]
        assert received and received[-1]["type"] == "error", received[-3:]
        assert received[-1]["code"] == "rate_limited"
        assert received[-1]["retry"] is True
        await c.close()
        await assert_baseline(server)


async def test_join_rate_limit_per_address(make_server: Callable[..., Any]) -> None:
    async with make_server(joins_per_minute=3) as server:
        c = server.caller()
        await c.connect()
        for _ in range(3):
            await c.send({**JOIN, "name": ""})  # refused joins count as attempts too
            await expect_error(c, "name_invalid")
        await c.send(JOIN)
        error = await expect_error(c, "rate_limited")
        assert error["retry"] is True
        await c.close()
        await assert_baseline(server)


async def test_tokens_when_a_secret_is_configured(make_server: Callable[..., Any]) -> None:
    secret = "battery-secret"
    async with make_server(join_secret=secret) as server:
        c = server.caller()
        await c.connect()
        key = secret.encode()
        for token, code in [
            (None, "token_required"),
            ("garbage", "token_invalid"),
            (mint_token(b"wrong", "battery-room", 60), "token_invalid"),
            (mint_token(key, "battery-room", 60, now=0), "token_expired"),
            (mint_token(key, "other-room", 60), "token_wrong_room"),
        ]:
            await c.send({**JOIN, "token": token})
            await expect_error(c, code)
        await c.send({**JOIN, "token": mint_token(key, "battery-room", 60)})
        await c.expect("welcome")
        await c.close()
        # Rooms are created by the operator only.
        async with server.session.post(server.url + "/api/rooms") as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "token_required"
        for wrong in (f"Bearer {secret}x", "Bearer wrong-secret", secret, f"bearer {secret}"):
            async with server.session.post(
                server.url + "/api/rooms", headers={"Authorization": wrong}
            ) as resp:
                assert resp.status == 401, wrong
                assert (await resp.json())["error"]["code"] == "token_invalid", wrong
        assert await stored_rooms(server.app) == 1  # only the room joined above
        headers = {"Authorization": f"Bearer {secret}"}
        async with server.session.post(server.url + "/api/rooms", headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 201 and "token=" in body["join_url"]
        await assert_baseline(server)


async def test_joins_refused_while_draining(battery: RunningServer) -> None:
    battery.app[STATE].draining = True
    c = battery.caller()
    with pytest.raises(ProbeError) as err:
        await c.join("battery-room")
    assert isinstance(err.value.message, dict)
    assert err.value.message["code"] == "draining"
    assert err.value.message["retry"] is False
    async with battery.session.get(battery.url + "/readyz") as resp:
        assert resp.status == 503
    battery.app[STATE].draining = False
    await c.close()


async def test_http_api_bad_requests(battery: RunningServer) -> None:
    s, url = battery.session, battery.url
    cases: list[tuple[str, str, Any, int, str | None]] = [
        ("POST", "/api/rooms", "{nope", 400, "bad_json"),
        ("POST", "/api/rooms", "[1]", 400, "bad_message"),
        ("POST", "/api/rooms", '{"capacity": 99}', 400, "capacity_invalid"),
        ("POST", "/api/rooms", '{"capacity": "two"}', 400, "capacity_invalid"),
        ("POST", "/api/rooms", '{"capacity": true}', 400, "capacity_invalid"),
        ("GET", "/api/rooms/bad!id", None, 400, "room_id_invalid"),
        ("GET", "/api/rooms/nosuchroom", None, 404, "room_not_found"),
        ("POST", "/api/rooms", "x" * 200_000, 413, None),
    ]
    for method, path, body, status, code in cases:
        async with s.request(method, url + path, data=body) as resp:
            assert resp.status == status, (path, body)
            text = await resp.text()
            assert "Traceback" not in text
            if code is not None:
                assert (await resp.json())["error"]["code"] == code
    async with s.post(url + "/api/rooms", json={"capacity": 4}) as resp:
        room = await resp.json()
        assert resp.status == 201 and room["capacity"] == 4
        assert room["join_url"].endswith(f"/?room={room['id']}")
    async with s.get(url + f"/api/rooms/{room['id']}") as resp:
        assert await resp.json() == {
            "id": room["id"],
            "capacity": 4,
            "occupancy": 0,
            "title": None,
            "locked": False,
            "ended": False,
            "participants": [],
        }


async def test_websocket_closed_mid_offer_leaks_nothing(
    battery: RunningServer, caller: Callable[..., ScriptedCaller]
) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection

    closed: list[tuple[str, str]] = []

    async def record(room_id: str, participant_id: str) -> None:
        closed.append((room_id, participant_id))

    battery.app[MEDIA].closed_hooks.append(record)
    c = caller()
    await c.join("battery-room")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    await c.send({"type": "offer", "sdp": pc.localDescription.sdp})
    assert c.ws is not None
    await c.ws.close()  # gone before the answer arrives
    await pc.close()
    await c.close()
    # The offer made a server-side connection, and the vanished socket closed it again.
    await wait_for(lambda: closed == [("battery-room", c.participant_id)])
    assert battery.app[MEDIA].peer_count == 0


async def test_unreadable_websocket_upgrade(battery: RunningServer) -> None:
    async with battery.session.get(battery.url + "/ws") as resp:
        assert resp.status in (400, 426)
        assert "Traceback" not in await resp.text()
    hub = battery.app[HUB]
    async with aiohttp.ClientSession() as other:
        ws = await other.ws_connect(battery.url.replace("http", "ws") + "/ws")
        await wait_for(lambda: hub.connection_count == 1)
        await ws.close()
        # A socket that closes without a word is a normal close, and the server forgets it.
        assert ws.close_code == 1000
        await wait_for(lambda: hub.connection_count == 0)
