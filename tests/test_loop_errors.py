"""A data-channel send that fails because the peer's path closed is not logged as an error."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection

from callserver import loop_errors
from callserver.ice import use_host_addresses
from tests.conftest import wait_for


@pytest.fixture
async def quiet_loop(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """The running loop with ``loop_errors`` installed, as ``callserver serve`` has it."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop_errors.install(loop)
    caplog.set_level(logging.DEBUG)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection, RTCDataChannel]:
    """Two real aiortc connections over loopback and the offerer's open data channel."""
    use_host_addresses(["127.0.0.1"])
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    # Audio as on the server's connections: closing its transceiver is what lets queued
    # data-channel sends run between the DTLS transport closing and SCTP being stopped.
    offerer.addTransceiver("audio")
    channel = offerer.createDataChannel("events")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    async with asyncio.timeout(30):
        await opened.wait()
    return offerer, answerer, channel


async def test_send_after_the_peer_went_away_is_logged_at_debug_only(
    quiet_loop: None, caplog: pytest.LogCaptureFixture
) -> None:
    offerer, answerer, channel = await connected_pair()
    assert offerer.sctp is not None
    dtls = offerer.sctp.transport
    sent_on_dead_path: list[str] = []

    def send_as_the_path_dies() -> None:
        # The moment the peer's close reaches us our DTLS is closed while the SCTP association
        # still looks established: a send now fails inside aiortc's own flush task, as the
        # server's caption sends do when a browser goes away.
        if dtls.state == "closed" and not sent_on_dead_path:
            sent_on_dead_path.append(dtls.state)
            channel.send("caption for nobody")

    dtls.on("statechange", send_as_the_path_dies)
    # The peer's DTLS goes (as a crashed or cut-off browser's does) without SCTP's goodbye.
    assert answerer.sctp is not None
    await answerer.sctp.transport.stop()
    await wait_for(lambda: bool(sent_on_dead_path), timeout=30)

    def reported() -> bool:
        # asyncio reports an unretrieved task exception when the task is collected.
        gc.collect()
        return any(r.name == "callserver.loop_errors" for r in caplog.records)

    await wait_for(reported, timeout=30)
    await offerer.close()
    await answerer.close()
    quiet = [r for r in caplog.records if r.name == "callserver.loop_errors"]
    assert [r.levelno for r in quiet] == [logging.DEBUG]
    assert "not connected" in quiet[0].__dict__["error"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_other_unretrieved_failures_keep_the_error_report(
    quiet_loop: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def fails_elsewhere() -> None:
        raise ConnectionError("not a transport task")

    task = asyncio.ensure_future(fails_elsewhere())
    await asyncio.wait([task])
    context = {
        "message": "Task exception was never retrieved",
        "exception": task.exception(),
        "future": task,
    }
    assert not loop_errors.is_closed_transport(context)
    asyncio.get_running_loop().call_exception_handler(context)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().splitlines()[0] for r in errors] == [context["message"]]
