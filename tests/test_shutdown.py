"""``callserver serve`` as a process: SIGTERM drains calls, then everything closes, exit 0."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from callserver.app import HUB, MEDIA
from callserver.probe import ProbeError, ScriptedCaller
from callserver.server import drain
from tests.conftest import wait_for
from tests.process_helpers import start_server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        return resp.status


async def test_sigterm_drains_then_exits_zero(session: aiohttp.ClientSession) -> None:
    server = await start_server(drain_timeout_s=30)
    await server.wait_ready()
    a = ScriptedCaller(server.url, session, name="A")
    b = ScriptedCaller(server.url, session, name="B")
    await a.join("drain-room")
    await b.join("drain-room")
    await a.start_media()
    assert await status(session, server.url + "/readyz") == 200

    server.proc.send_signal(signal.SIGTERM)
    notice = await a.expect("draining")
    assert notice["deadline_s"] == 30
    assert await status(session, server.url + "/readyz") == 503
    assert await status(session, server.url + "/healthz") == 200
    async with session.get(server.url + "/metrics") as resp:
        assert "\ncallserver_ready 0.0\n" in await resp.text()
    late = ScriptedCaller(server.url, session, name="Late")
    with pytest.raises(ProbeError) as err:
        await late.join("drain-room-2")
    assert isinstance(err.value.message, dict)
    assert err.value.message["code"] == "draining"
    # The call goes on while draining: B can still ping, and leaving ends the drain early.
    await b.send({"type": "ping"})
    await b.expect("pong")
    await late.close()
    await a.leave()
    await b.leave()
    assert await asyncio.wait_for(server.proc.wait(), 15) == 0
    for c in (a, b):
        await c.close()
    assert server.proc.stderr is not None
    assert b"Traceback" not in await server.proc.stderr.read()


async def test_drain_timeout_closes_remaining_calls(session: aiohttp.ClientSession) -> None:
    server = await start_server(drain_timeout_s=1)
    a = ScriptedCaller(server.url, session, name="A")
    await a.join("drain-stuck")
    await a.start_media()
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.proc.wait(), 15) == 0
    await wait_for(lambda: a.ws is not None and a.ws.closed)
    assert a.ws is not None
    assert a.ws.close_code == 1001
    # The server closed the media connection too: its DTLS goodbye closes ours. Had it just
    # exited, ours would only fail, when consent checks ran out half a minute later.
    assert a.pc is not None
    pc = a.pc
    await wait_for(lambda: pc.connectionState != "connected", timeout=20)
    assert pc.connectionState == "closed"
    await a.close()
    assert server.proc.stderr is not None
    assert b"Traceback" not in await server.proc.stderr.read()


async def test_json_log_format(session: aiohttp.ClientSession) -> None:
    server = await start_server(drain_timeout_s=5, CALLSERVER_LOG_FORMAT="json")
    a = ScriptedCaller(server.url, session, name="A")
    await a.join("json-log-room")
    await a.leave()
    await a.close()
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.proc.wait(), 15) == 0
    assert server.proc.stderr is not None
    lines = (await server.proc.stderr.read()).decode().splitlines()
    records = [json.loads(line) for line in lines]  # every line, not just most
    assert records and all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    joined = [r for r in records if r["msg"] == "joined"]
    assert len(joined) == 1, records
    assert joined[0]["logger"] == "signaling.hub" and joined[0]["level"] == "INFO"
    assert joined[0]["room"] == "json-log-room"
    assert joined[0]["participant"] == a.participant_id
    assert joined[0]["client"] == "127.0.0.1"
    assert any(r["msg"] == "stopped" and r["logger"] == "callserver.server" for r in records)


async def test_drain_waits_for_a_leave_in_progress(
    make_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_server() as server:
        media = server.app[MEDIA]
        original, release = media.remove, asyncio.Event()

        async def slow_remove(room_id: str, participant_id: str, reason: str) -> None:
            # Fault injection: a peer connection that takes its time to close.
            await release.wait()
            await original(room_id, participant_id, reason)

        monkeypatch.setattr(media, "remove", slow_remove)
        caller = server.caller(name="Last")
        await caller.join("drain-last-leave")
        drained = asyncio.create_task(drain(server.app, 30, asyncio.Event()))
        await caller.expect("draining")
        await caller.send({"type": "leave"})
        # Out of the room already, but its media and its `left` answer are still to come.
        try:
            await wait_for(lambda: server.app[HUB].participant_count == 0)
            await asyncio.sleep(0.3)
            assert not drained.done(), "the drain ended before the leave did"
        finally:
            release.set()
        await caller.expect("left")
        await asyncio.wait_for(drained, 5)
        await caller.close()
