"""The distributed mode with real processes: two ``callserver serve`` media nodes, one Redis.

A room belongs to one node; a caller who reaches the other node is redirected to it; a node
killed with SIGKILL loses its rooms to the live node at their next join, and the calls on the
other node go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.probe import ProbeError, ScriptedCaller
from signaling.redis_rooms import RedisRoomStore
from signaling.rooms import RoomLimits
from tests.caller_helpers import speak_and_check
from tests.cluster_helpers import live, start_node
from tests.conftest import REDIS_URL, wait_for_async
from tests.process_helpers import ServerProcess, terminate
from tests.redis_helpers import SpareRedis


@dataclass
class Cluster:
    nodes: dict[str, ServerProcess]
    prefix: str
    session: aiohttp.ClientSession

    def caller(self, node: str, name: str) -> ScriptedCaller:
        return ScriptedCaller(self.nodes[node].url, self.session, name=name)

    async def live_nodes(self) -> list[str]:
        return [node.id for node in await live(self.prefix)]

    async def owner_of(self, room: str) -> str | None:
        store = RedisRoomStore(REDIS_URL, RoomLimits(), prefix=self.prefix)
        try:
            found = await store.get(room)
            return found.owner if found is not None else None
        finally:
            await store.aclose()


@pytest.fixture
async def cluster(redis_prefix: str) -> AsyncIterator[Cluster]:
    nodes = dict(
        zip(
            ("node-a", "node-b"),
            await asyncio.gather(
                start_node("node-a", redis_prefix), start_node("node-b", redis_prefix)
            ),
            strict=True,
        )
    )
    async with aiohttp.ClientSession() as session:
        running = Cluster(nodes, redis_prefix, session)
        try:
            await wait_for_async(lambda: _both_live(running))
            yield running
        finally:
            for node in nodes.values():
                await terminate(node.proc)


async def _participants_are(cluster: Cluster, count: int) -> bool:
    return sum(node.participants for node in await live(cluster.prefix)) == count


async def _both_live(cluster: Cluster) -> bool:
    return await cluster.live_nodes() == ["node-a", "node-b"]


async def test_callers_through_different_nodes_meet_on_the_rooms_node(
    cluster: Cluster, speech: Pcm16
) -> None:
    rooms = [f"cluster-room-{i}" for i in range(6)]
    callers: list[ScriptedCaller] = []
    try:
        for room in rooms:
            # The first caller of each room comes through A, the second through B.
            first, second = cluster.caller("node-a", "Ann"), cluster.caller("node-b", "Ben")
            callers += [first, second]
            await first.join(room)
            await second.join(room)
            owner = await cluster.owner_of(room)
            assert owner in ("node-a", "node-b")
            owner_url = cluster.nodes[owner].url
            # Whoever reached the other node was redirected there, once; both are on the owner.
            assert first.base_url == second.base_url == owner_url
            assert len(first.redirects) + len(second.redirects) == 1
            joined = await first.expect("participant-joined")
            assert joined["participant"]["id"] == second.participant_id
            # The next room is placed knowing these two (the nodes' heartbeats carry them).
            count = len(callers)
            await wait_for_async(lambda: _participants_are(cluster, count))  # noqa: B023
        # Placement spreads rooms: the second room went to the node the first left empty.
        owners = {await cluster.owner_of(room) for room in rooms}
        assert owners == {"node-a", "node-b"}

        # One call carries audio both ways on its node.
        ann, ben = callers[0], callers[1]
        await asyncio.gather(ann.start_media(), ben.start_media())
        clip = speech[: SAMPLE_RATE * 3]
        await speak_and_check(ann, ben, clip)
        await speak_and_check(ben, ann, clip)

        # A hosted room made on one node is run from whichever node holds its calls.
        async with cluster.session.post(
            cluster.nodes["node-b"].url + "/api/rooms", json={"capacity": 3, "title": "Spread"}
        ) as made:
            hosted = await made.json()
        host, guest = cluster.caller("node-b", "Hana"), cluster.caller("node-a", "Gil")
        late = cluster.caller("node-a", "Late")
        callers += [host, guest, late]
        assert (await host.join(hosted["id"], host_key=hosted["host_key"]))["participant"]["host"]
        assert (await guest.join(hosted["id"]))["room"]["title"] == "Spread"
        await host.send({"type": "lock", "locked": True})
        assert (await guest.expect("room-updated"))["room"]["locked"] is True
        with pytest.raises(ProbeError) as refused:
            await late.join(hosted["id"])
        assert isinstance(refused.value.message, dict)
        assert refused.value.message["code"] == "room_locked"
        await host.send({"type": "end"})
        assert (await guest.expect("ended"))["by"] == "Hana"
    finally:
        await asyncio.gather(*(c.close() for c in callers), return_exceptions=True)


async def test_a_killed_node_loses_its_rooms_to_the_live_one_and_other_calls_go_on(
    cluster: Cluster, speech: Pcm16
) -> None:
    # One room on each node (rooms go to the node a caller reaches when it is the less loaded
    # of the two: keep trying names until each node holds one).
    on: dict[str, tuple[str, ScriptedCaller, ScriptedCaller]] = {}
    spare: list[ScriptedCaller] = []
    i = 0
    try:
        while len(on) < 2:
            room = f"kill-room-{i}"
            i += 1
            a, b = cluster.caller("node-a", "Ann"), cluster.caller("node-b", "Ben")
            await a.join(room)
            await b.join(room)
            owner = await cluster.owner_of(room)
            assert owner is not None
            if owner in on:
                spare += [a, b]
                continue
            on[owner] = (room, a, b)
        for _, a, b in on.values():
            await asyncio.gather(a.start_media(), b.start_media())

        # SIGKILL node A: no drain, no goodbye to the registry.
        cluster.nodes["node-a"].proc.send_signal(signal.SIGKILL)
        await cluster.nodes["node-a"].proc.wait()
        await wait_for_async(lambda: _only_b(cluster), timeout=10)

        # B's call is untouched: audio still crosses it.
        _, b1, b2 = on["node-b"]
        clip = speech[: SAMPLE_RATE * 3]
        await speak_and_check(b1, b2, clip)

        # A's callers come back through B (their page would reconnect by itself): the room
        # is placed again, on B, and both of them are in it: their old places were freed.
        room_a, old_1, old_2 = on["node-a"]
        for caller in (old_1, old_2):
            with contextlib.suppress(Exception):
                await caller.close()
        back_1, back_2 = cluster.caller("node-b", "Ann"), cluster.caller("node-b", "Ben")
        spare += [back_1, back_2]
        welcome = await back_1.join(room_a)
        assert [p["name"] for p in welcome["room"]["participants"]] == ["Ann"]
        await back_2.join(room_a)
        assert await cluster.owner_of(room_a) == "node-b"
        assert back_1.redirects == back_2.redirects == []
        await asyncio.gather(back_1.start_media(), back_2.start_media())
        await speak_and_check(back_1, back_2, clip)
    finally:
        callers = [c for _, a, b in on.values() for c in (a, b)] + spare
        await asyncio.gather(*(c.close() for c in callers), return_exceptions=True)


async def _only_b(cluster: Cluster) -> bool:
    return await cluster.live_nodes() == ["node-b"]


async def test_a_full_cluster_refuses_new_rooms_with_a_retryable_error(
    redis_prefix: str,
) -> None:
    node = await start_node("node-solo", redis_prefix, CALLSERVER_CLUSTER_NODE_MAX_PARTICIPANTS="1")
    callers: list[ScriptedCaller] = []
    try:
        async with aiohttp.ClientSession() as session:
            callers = [ScriptedCaller(node.url, session, name=n) for n in ("One", "Two", "New")]
            await callers[0].join("first-room")

            async def full() -> bool:
                return [n.participants for n in await live(redis_prefix)] == [1]

            await wait_for_async(full)
            # A new room has nowhere to go...
            with pytest.raises(ProbeError) as err:
                await callers[2].join("second-room")
            refusal = err.value.message
            assert isinstance(refusal, dict)
            assert refusal["code"] == "nodes_full" and refusal["retry"] is True
            # ...but the room the node holds takes its second caller (its capacity is 2).
            await callers[1].join("first-room")
            await asyncio.gather(*(c.close() for c in callers))
    finally:
        await terminate(node.proc)


async def test_redis_stopping_mid_call_fails_readiness_keeps_the_call_and_recovers(
    tmp_path: Path, speech: Pcm16
) -> None:
    redis = SpareRedis(tmp_path, persistent=True)
    await redis.start()
    node = await start_node("node-r", "outage:", CALLSERVER_REDIS_URL=redis.url)
    clip = speech[: SAMPLE_RATE * 3]
    try:
        async with aiohttp.ClientSession() as session:
            ann, ben, cai = (ScriptedCaller(node.url, session, name=n) for n in ("A", "B", "C"))
            await ann.join("outage-room")
            await ben.join("outage-room")
            await asyncio.gather(ann.start_media(), ben.start_media())
            await speak_and_check(ann, ben, clip)

            await redis.stop()

            async def status(path: str) -> tuple[int, str]:
                async with session.get(node.url + path) as resp:
                    return resp.status, (await resp.json()).get("status", "")

            async def detached() -> bool:
                return await status("/readyz") == (503, "detached")

            await wait_for_async(detached, timeout=10)
            assert (await status("/healthz"))[0] == 200
            # The call in progress needs no Redis: it goes on.
            await speak_and_check(ben, ann, clip)
            # A new join cannot be placed: refused, retryable, in words.
            with pytest.raises(ProbeError) as err:
                await cai.join("outage-room-2")
            refusal = err.value.message
            assert isinstance(refusal, dict)
            assert refusal["code"] == "internal" and refusal["retry"] is True

            await redis.start()  # with what it held: its append-only file

            async def ready() -> bool:
                return await status("/readyz") == (200, "ready")

            await wait_for_async(ready, timeout=10)
            # The same connection joins now, and the room held through the outage is whole.
            await cai.join("outage-room-2")
            store = RedisRoomStore(redis.url, RoomLimits(), prefix="outage:")
            try:
                held = await store.get("outage-room")
            finally:
                await store.aclose()
            assert held is not None and held.owner == "node-r"
            assert [p.name for p in held.participants.values()] == ["A", "B"]
            await speak_and_check(ann, ben, clip)
            await asyncio.gather(ann.close(), ben.close(), cai.close())
        code, log = await node.stop()
        assert code == 0
        assert "Traceback" not in log and "room store unreachable" in log
    finally:
        await terminate(node.proc)
        await redis.stop()


async def test_a_draining_node_keeps_its_calls_takes_no_new_rooms_then_leaves(
    redis_prefix: str, speech: Pcm16
) -> None:
    a, b = await asyncio.gather(
        start_node("node-a", redis_prefix, CALLSERVER_DRAIN_TIMEOUT_S="60"),
        start_node("node-b", redis_prefix),
    )
    callers: list[ScriptedCaller] = []
    try:
        async with aiohttp.ClientSession() as session:
            cluster = Cluster({"node-a": a, "node-b": b}, redis_prefix, session)
            await wait_for_async(lambda: _both_live(cluster))
            # A call on node A (callers come to A until A is the one picked).
            i = 0
            while True:
                room = f"drain-room-{i}"
                i += 1
                ann, ben = cluster.caller("node-a", "Ann"), cluster.caller("node-a", "Ben")
                callers += [ann, ben]
                await ann.join(room)
                await ben.join(room)
                if await cluster.owner_of(room) == "node-a":
                    break
            await asyncio.gather(ann.start_media(), ben.start_media())

            a.proc.send_signal(signal.SIGTERM)
            await ann.expect("draining")

            async def a_draining() -> bool:
                return any(n.id == "node-a" and n.draining for n in await live(redis_prefix))

            await wait_for_async(a_draining)
            # New rooms go to B, whichever node their callers reach: A redirects them.
            for j in range(4):
                newcomer = cluster.caller("node-a" if j % 2 else "node-b", "New")
                callers.append(newcomer)
                await newcomer.join(f"after-drain-{j}")
                assert await cluster.owner_of(f"after-drain-{j}") == "node-b"
                assert newcomer.base_url == b.url
            # Nobody new joins the call A holds, even through B: it is refused, retryable
            # later (once A has gone the room is placed again).
            late = cluster.caller("node-b", "Late")
            callers.append(late)
            with pytest.raises(ProbeError) as err:
                await late.join(room)
            refusal = err.value.message
            assert isinstance(refusal, dict) and refusal["code"] == "draining"
            # The call on A goes on through the drain.
            clip = speech[: SAMPLE_RATE * 3]
            await speak_and_check(ann, ben, clip)
            # Its callers leave: A ends and takes itself out of the registry at once, without
            # waiting for its entry to expire.
            await ann.leave()
            await ben.leave()
            code, log = await a.stop()
            assert code == 0, log
            assert [n.id for n in await live(redis_prefix)] == ["node-b"]
            assert "node left the registry" in log
    finally:
        await asyncio.gather(*(c.close() for c in callers), return_exceptions=True)
        await terminate(a.proc)
        await terminate(b.proc)
