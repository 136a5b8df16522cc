"""1,000 join/leave cycles leave no peer connections, tasks, rooms or memory behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection

from callserver.app import HUB, MEDIA
from tests.conftest import store_empty, wait_for, wait_for_async

CYCLES = 1000
#: Every this many cycles the caller connects media for real (ICE, DTLS, audio both ways).
FULL_CALL_EVERY = 25
#: Resident memory may grow this much over the cycles: allocator slack, not per-cycle state
#: (a leaked peer connection costs about 100 kB, so 1,000 of them would be far above it).
RSS_BOUND_BYTES = 40 * 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _describe(task: asyncio.Task[Any]) -> str:
    return f"{task.get_name()} {task.get_coro()!r}"


async def test_thousand_join_leave_cycles(make_server: Callable[..., Any]) -> None:
    async with make_server(room_empty_ttl_s=0.2) as server:
        app = server.app
        offer_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        offer_pc.addTransceiver("audio")
        offer_pc.createDataChannel("events")
        await offer_pc.setLocalDescription(await offer_pc.createOffer())
        offer_sdp = offer_pc.localDescription.sdp
        await offer_pc.close()

        caller = server.caller()
        await caller.connect()

        async def cycle(i: int) -> None:
            await caller.join(f"cycle-room-{i % 40:03d}")
            if i % FULL_CALL_EVERY == 0:
                await caller.start_media()
                await caller.leave()
            else:
                # A server-side peer connection is created and answered, then left unconnected.
                await caller.send({"type": "offer", "sdp": offer_sdp})
                await caller.expect("answer")
                await caller.send({"type": "leave"})
                await caller.expect("left")

        for i in range(50):  # warm-up: imports, codec tables, allocator pools
            await cycle(i)
        await wait_for(lambda: app[MEDIA].peer_count == 0 and app[MEDIA].room_count == 0)
        gc.collect()
        # The same task objects must be all that is left at the end: a warm-up task still
        # closing now has ended by then, and any task the cycles leave behind is new.
        tasks_before = asyncio.all_tasks()
        rss_before = rss_bytes()

        for i in range(CYCLES):
            await cycle(i)

        await wait_for(lambda: app[MEDIA].peer_count == 0 and app[MEDIA].room_count == 0)
        await wait_for_async(lambda: store_empty(app), timeout=30)
        # Closing finishes in tasks of its own: wait for them to end, not for a set time.
        with contextlib.suppress(TimeoutError):  # reported with the tasks' names below
            await wait_for(lambda: asyncio.all_tasks() <= tasks_before, timeout=30)
        left = asyncio.all_tasks() - tasks_before
        assert not left, sorted(_describe(t) for t in left)
        gc.collect()
        leaked_pcs = [o for o in gc.get_objects() if isinstance(o, RTCPeerConnection)]
        assert [pc.connectionState for pc in leaked_pcs] == ["closed"] * len(leaked_pcs)
        assert len(leaked_pcs) <= 2  # the caller's last one, still referenced by the test
        growth = rss_bytes() - rss_before
        assert growth < RSS_BOUND_BYTES, f"memory grew {growth / 1e6:.1f} MB"
        assert app[HUB].connection_count == 1
        await caller.close()
        await wait_for(lambda: app[HUB].connection_count == 0)
