"""Transport limits, checked with raw sockets against the server as ``callserver serve`` starts it.

- a WebSocket frame, a fragmented message and a small compressed frame that inflates past
  ``CALLSERVER_WS_MAX_MESSAGE_BYTES`` are all closed with 1009;
- a client that sends its request headers a byte at a time is closed at
  ``CALLSERVER_HTTP_HEADER_TIMEOUT_S`` while others are answered as usual.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import tests.conftest as conftest
from callserver.app import HUB, build_app
from callserver.http_guard import start_http
from tests.process_helpers import start_server

#: The header deadline these tests run with; short, so that they wait little.
DEADLINE_S = 1.0
#: How late after the deadline a connection may still be closed (event loop and CI jitter).
MARGIN_S = 1.0


@dataclass
class Served:
    app: web.Application
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    app = build_app(conftest.test_settings(http_header_timeout_s=DEADLINE_S))
    runner = await start_http(app, "127.0.0.1", 0, DEADLINE_S)
    try:
        yield Served(app, "127.0.0.1", runner.addresses[0][1])
    finally:
        await runner.cleanup()


# --- a raw WebSocket client --------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame, as RFC 6455 has a client send it."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        header = bytes([first, 0x80 | n])
    elif n < 1 << 16:
        header = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    keystream = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")
    return header + mask + masked


def deflated(payload: bytes) -> bytes:
    """``payload`` compressed as one permessage-deflate message (RFC 7692)."""
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def ping(id_length: int) -> bytes:
    """A valid ``ping`` message of about ``id_length`` bytes."""
    return json.dumps({"v": 1, "type": "ping", "id": "x" * id_length}).encode()


class RawWebSocket:
    """A WebSocket client that sends exactly the frames it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.extensions = ""
        # The server keeps its compression context from message to message.
        self._inflate = zlib.decompressobj(wbits=-15)

    @classmethod
    async def connect(cls, served: Served, *, deflate: bool) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(served.host, served.port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /ws HTTP/1.1",
            f"Host: {served.host}:{served.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        assert head.startswith("HTTP/1.1 101"), head
        ws = cls(reader, writer)
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                ws.extensions = value.strip()
        return ws

    async def send(self, frame: bytes) -> None:
        self.writer.write(frame)
        await self.writer.drain()

    async def receive(self) -> tuple[int, bytes]:
        """The next frame from the server: its opcode and (inflated) payload."""
        first, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        payload = await self.reader.readexactly(n)
        if first & 0x40:
            payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
        return first & 0x0F, payload

    async def close_code(self, timeout: float = 5.0) -> int:
        """Read until the server's close frame; its status code."""
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await self.receive()
                if opcode == 0x8:
                    return int.from_bytes(payload[:2], "big")

    async def reply(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            opcode, payload = await self.receive()
        assert opcode == 0x1, (opcode, payload[:100])
        message = json.loads(payload)
        assert isinstance(message, dict)
        return message

    def close(self) -> None:
        self.writer.close()


async def back_to_baseline(served: Served) -> None:
    await conftest.wait_for(lambda: served.app[HUB].connection_count == 0)


# --- WebSocket message limits ------------------------------------------------------------------


async def test_a_frame_declaring_more_than_the_limit_closes_1009_before_its_payload(
    served: Served,
) -> None:
    limit = served.app[HUB].limits.ws_max_message_bytes
    ws = await RawWebSocket.connect(served, deflate=False)
    frame = client_frame(0x1, ping(limit))
    assert len(frame) > limit
    # Only the header and a little of the payload: the length alone is enough to refuse it,
    # and the server must not wait for (or buffer) the rest.
    await ws.send(frame[:64])
    assert await ws.close_code() == 1009
    ws.close()
    await back_to_baseline(served)


async def test_a_fragmented_message_over_the_limit_closes_1009(served: Served) -> None:
    limit = served.app[HUB].limits.ws_max_message_bytes
    ws = await RawWebSocket.connect(served, deflate=False)
    message = ping(limit + 1000)
    piece = limit // 4
    pieces = [message[i : i + piece] for i in range(0, len(message), piece)]
    assert all(len(p) < limit for p in pieces)
    for i, data in enumerate(pieces):
        await ws.send(client_frame(0x1 if i == 0 else 0x0, data, fin=i == len(pieces) - 1))
    assert await ws.close_code() == 1009
    ws.close()
    await back_to_baseline(served)


async def test_a_small_compressed_frame_that_inflates_past_the_limit_closes_1009(
    served: Served,
) -> None:
    limit = served.app[HUB].limits.ws_max_message_bytes
    ws = await RawWebSocket.connect(served, deflate=True)
    assert ws.extensions.startswith("permessage-deflate"), ws.extensions
    # Within the limit, a compressed message is read and answered: compression works.
    await ws.send(client_frame(0x1, deflated(ping(limit // 2)), rsv1=True))
    assert (await ws.reply())["type"] == "pong"
    # A hundred times the limit inflated, a few KB on the wire.
    bomb = deflated(ping(100 * limit))
    assert len(bomb) < 10 * 1024, len(bomb)
    started = time.monotonic()
    await ws.send(client_frame(0x1, bomb, rsv1=True))
    assert await ws.close_code() == 1009
    assert time.monotonic() - started < 2.0, "the server inflated far more than it needed to"
    ws.close()
    await back_to_baseline(served)


# --- the header deadline -----------------------------------------------------------------------


async def dribble(
    address: tuple[str, int], head: bytes, interval_s: float, *, then_stop: bool = False
) -> tuple[float, bytes]:
    """Send ``head`` a byte every ``interval_s`` (all of it, or a part and then nothing)
    until the server closes; the seconds that took and what the server sent back."""
    reader, writer = await asyncio.open_connection(*address)
    started = time.monotonic()

    async def send_slowly() -> None:
        for byte in head[: 8 if then_stop else len(head)]:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval_s)

    if not then_stop:
        assert len(head) * interval_s > 3 * (DEADLINE_S + MARGIN_S), "too short to outlast"
    sender = asyncio.create_task(send_slowly())
    try:
        async with asyncio.timeout(DEADLINE_S + MARGIN_S + 5):
            try:
                reply = await reader.read()
            except ConnectionResetError:
                # A byte sent just after the server closed is answered with a reset, which
                # can overtake what the server wrote before closing.
                reply = b""
        return time.monotonic() - started, reply
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()


SLOW_HEAD = (
    b"GET /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
    + b"X-Padding: "
    + b"a" * 60
    + b"\r\n\r\n"
)


def assert_closed_at_deadline(elapsed: float) -> None:
    assert DEADLINE_S * 0.95 <= elapsed <= DEADLINE_S + MARGIN_S, elapsed


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status = int(head.split(" ", 2)[1])
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def test_headers_sent_a_byte_at_a_time_are_cut_at_the_deadline(served: Served) -> None:
    # Four bytes a second against a one-second deadline: the slowloris pattern, scaled down.
    elapsed, reply = await dribble(served.address, SLOW_HEAD, 0.25)
    assert_closed_at_deadline(elapsed)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408 "), reply


async def test_part_of_the_headers_then_silence_is_answered_408(served: Served) -> None:
    elapsed, reply = await dribble(served.address, SLOW_HEAD, 0.01, then_stop=True)
    assert_closed_at_deadline(elapsed)
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), reply


async def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(served: Served) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    started = time.monotonic()
    async with asyncio.timeout(DEADLINE_S + MARGIN_S + 5):
        assert await reader.read() == b""
    assert_closed_at_deadline(time.monotonic() - started)
    writer.close()


async def test_twenty_slow_clients_do_not_slow_anyone_else(served: Served) -> None:
    slow = [asyncio.create_task(dribble(served.address, SLOW_HEAD, 0.25)) for _ in range(20)]
    await asyncio.sleep(0.1)
    latencies: list[float] = []
    # A new connection for every request, so that accepting connections is measured too.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        stop = time.monotonic() + DEADLINE_S * 0.8
        while time.monotonic() < stop:
            started = time.monotonic()
            async with http.get(f"{served.url}/api/config") as response:
                assert response.status == 200
                await response.json()
            latencies.append(time.monotonic() - started)
    assert not any(task.done() for task in slow), "a slow client was closed before its deadline"
    assert len(latencies) >= 5
    # A few milliseconds each on a quiet machine: half a second is generous, and still far
    # below the deadline for which the slow clients hold their connections.
    assert max(latencies) < 0.5, f"normal requests slowed down: {max(latencies):.3f} s"
    for elapsed, _ in await asyncio.gather(*slow):
        assert_closed_at_deadline(elapsed)


async def test_a_kept_alive_connection_is_timed_from_the_next_requests_first_byte(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writer.write(request)
    assert (await read_response(reader))[0] == 200
    # Idle between requests is not the client being slow with its headers.
    await asyncio.sleep(DEADLINE_S * 1.2)
    writer.write(request)
    assert (await read_response(reader))[0] == 200
    await asyncio.sleep(DEADLINE_S * 1.2)
    writer.write(b"GET /healthz HTTP/1.1\r\nHo")
    started = time.monotonic()
    async with asyncio.timeout(DEADLINE_S + MARGIN_S + 5):
        assert (await read_response(reader))[0] == 408
        assert await reader.read() == b""
    assert_closed_at_deadline(time.monotonic() - started)
    writer.close()


async def test_a_slow_request_body_and_a_websocket_outlast_the_deadline(served: Served) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{served.url}/ws") as ws:
        reader, writer = await asyncio.open_connection(served.host, served.port)
        body = b'{"capacity": 2}' + b" " * 15
        writer.write(
            b"POST /api/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        started = time.monotonic()
        for byte in body:
            writer.write(bytes([byte]))
            await asyncio.sleep(DEADLINE_S * 2 / len(body))
        status, answer = await read_response(reader)
        assert time.monotonic() - started > DEADLINE_S * 1.5
        assert status == 201, answer
        writer.close()
        await ws.send_json({"v": 1, "type": "ping", "id": 1})
        assert (await ws.receive_json(timeout=5))["type"] == "pong"


async def test_pages_and_files_are_served_through_the_guard(served: Served) -> None:
    # Files go out with sendfile, which takes the connection's transport for a while.
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/static/app.js", "/healthz"):
            async with http.get(f"{served.url}{path}") as response:
                assert response.status == 200, path
                assert len(await response.read()) > 0


async def test_callserver_serve_reads_the_deadline_from_its_setting() -> None:
    server = await start_server(
        CALLSERVER_HTTP_HEADER_TIMEOUT_S=str(DEADLINE_S),
        CALLSERVER_PRELOAD_ENGINES="false",
        CALLSERVER_TRANSLATE_CALLS="false",
    )
    try:
        host, port = server.url.removeprefix("http://").split(":")
        elapsed, reply = await dribble((host, int(port)), SLOW_HEAD, 0.25)
        assert_closed_at_deadline(elapsed)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 408 "), reply
    finally:
        code, log = await server.stop()
    assert code == 0, log
