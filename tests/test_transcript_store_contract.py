"""One contract for every transcript store: the in-process one and the Redis one (a real Redis).

Each test of the first part runs against both; what differs between them (where the
transcripts live) must not show. The second part is what only a shared store has: another
node's view, expiry, and a Redis that stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from callserver.pipeline.memory_transcript import MemoryTranscriptStore
from callserver.pipeline.redis_transcript import RedisTranscriptStore
from callserver.pipeline.transcript import (
    TranscriptEntry,
    TranscriptStore,
    TranscriptUnavailable,
)
from tests.conftest import REDIS_URL, wait_for_async
from tests.redis_helpers import SpareRedis

T0 = 1_764_230_000.123456  # a wall-clock time with all the digits time.time() gives
ROOM, OTHER = "room-transcripts-1", "room-transcripts-2"

StoreFactory = Callable[..., TranscriptStore]


def entry(uid: str, start: float, text: str = "Hello.", **translations: str) -> TranscriptEntry:
    return TranscriptEntry(
        utterance_id=uid,
        speaker_id="p_ann",
        speaker_name="Ann",
        language="en",
        text=text,
        translations=translations,
        start=T0 + start,
        end=T0 + start + 0.75,
        stages_ms={"recognize": 412.5},
    )


@pytest.fixture(params=["memory", "redis"])
async def make_store(
    request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[StoreFactory]:
    """``make_store(max_entries=...)``; Redis stores made by one test share their keys."""
    made: list[TranscriptStore] = []

    def make(max_entries: int = 100) -> TranscriptStore:
        store: TranscriptStore
        if request.param == "memory":
            store = MemoryTranscriptStore(max_entries)
        else:
            store = RedisTranscriptStore(REDIS_URL, max_entries=max_entries, prefix=redis_prefix)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def uids(store: TranscriptStore, room_id: str = ROOM) -> list[str]:
    found = await store.read(room_id)
    assert found is not None
    return [e.utterance_id for e in found.entries]


# --- the contract -----------------------------------------------------------------------------


async def test_recorded_entries_are_read_back_exactly_in_start_order(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    assert await store.read(ROOM) is None
    # What the pipeline hands over: a later utterance can finish first.
    late = entry("u2", 4.0, 'Ça va? <b> & "quotes"', es="¿Qué tal?", vi="Khỏe không?")
    store.record(ROOM, late)
    store.record(ROOM, entry("u1", 1.0))
    await store.append(OTHER, entry("v1", 0.5, "Not here."))
    await store.flush()
    found = await store.read(ROOM)
    assert found is not None
    assert found.room_id == ROOM
    assert [e.utterance_id for e in found.entries] == ["u1", "u2"]
    assert len(found) == 2
    # Every field comes back as it went in, to the last digit of its times.
    assert found.entries[1] == late
    assert dict(found.entries[1].translations) == {"es": "¿Qué tal?", "vi": "Khỏe không?"}
    assert found.entries[1].stages_ms == {"recognize": 412.5}
    # Exports count from the earliest start seen.
    assert found.origin == T0 + 1.0
    assert await uids(store, OTHER) == ["v1"]


async def test_the_same_utterance_replaces_its_entry(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append(ROOM, entry("u1", 1.0, "first try"))
    await store.append(ROOM, entry("u2", 2.0))
    await store.append(ROOM, entry("u1", 1.0, "Final text.", de="Endgültiger Text."))
    found = await store.read(ROOM)
    assert found is not None
    assert [(e.utterance_id, e.text) for e in found.entries] == [
        ("u1", "Final text."),
        ("u2", "Hello."),
    ]
    assert dict(found.entries[0].translations) == {"de": "Endgültiger Text."}


async def test_past_max_entries_the_oldest_go_and_the_origin_stays(
    make_store: StoreFactory,
) -> None:
    store = make_store(max_entries=3)
    for i in range(5):
        await store.append(ROOM, entry(f"u{i}", 10.0 * i))
    assert await uids(store) == ["u2", "u3", "u4"]
    found = await store.read(ROOM)
    assert found is not None
    # Times stay relative to the first utterance ever, not to the oldest one still kept.
    assert found.origin == T0
    # The oldest by arrival goes, even when a newer one started earlier.
    await store.append(ROOM, entry("early", -5.0))
    assert await uids(store) == ["early", "u3", "u4"]
    found = await store.read(ROOM)
    assert found is not None and found.origin == T0 - 5.0


async def test_a_read_is_a_snapshot(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append(ROOM, entry("u1", 1.0))
    before = await store.read(ROOM)
    await store.append(ROOM, entry("u2", 2.0))
    assert before is not None and len(before) == 1
    assert await uids(store) == ["u1", "u2"]


async def test_discard_forgets_one_room(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append(ROOM, entry("u1", 1.0))
    await store.append(OTHER, entry("v1", 1.0))
    await store.discard(ROOM)
    assert await store.read(ROOM) is None
    assert await uids(store, OTHER) == ["v1"]
    await store.discard("room-never-seen")  # nothing to forget: no error
    # A room that speaks again after its transcript went starts a new one.
    await store.append(ROOM, entry("u9", 9.0))
    assert await uids(store) == ["u9"]


# --- what only the shared store shows -----------------------------------------------------


async def test_another_node_reads_what_one_wrote_even_after_it_closed(redis_prefix: str) -> None:
    node_a = RedisTranscriptStore(REDIS_URL, prefix=redis_prefix)
    node_b = RedisTranscriptStore(REDIS_URL, prefix=redis_prefix)
    try:
        for i in range(20):
            node_a.record(ROOM, entry(f"u{i:02d}", float(i)))
        # Closing writes what it still held: nothing recorded before a stop is lost.
        await node_a.aclose()
        assert await uids(node_b) == [f"u{i:02d}" for i in range(20)]
        # Both nodes write one room: one transcript, one bound.
        node_c = RedisTranscriptStore(REDIS_URL, prefix=redis_prefix, max_entries=21)
        await node_c.append(ROOM, entry("u20", 20.0))
        await node_b.append(ROOM, entry("u21", 21.0))
        await node_c.append(ROOM, entry("u22", 22.0))
        assert len(await uids(node_b)) == 21
        await node_c.aclose()
    finally:
        await node_b.aclose()


async def test_a_transcript_expires_after_its_last_entry(redis_prefix: str) -> None:
    store = RedisTranscriptStore(REDIS_URL, prefix=redis_prefix, ttl_s=0.5)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await store.append(ROOM, entry("u1", 1.0))
        keys = await client.keys(f"{redis_prefix}*")
        assert len(keys) == 3
        for key in keys:
            assert 0 < await client.pttl(key) <= 500, key

        async def gone() -> bool:
            return await client.exists(*keys) == 0

        await wait_for_async(gone, timeout=5)
        assert await store.read(ROOM) is None
    finally:
        await client.aclose()
        await store.aclose()


async def test_a_redis_that_stops_loses_entries_but_never_raises_from_record(
    tmp_path: Path,
) -> None:
    redis = SpareRedis(tmp_path, persistent=True)
    await redis.start()
    lost: list[str] = []
    store = RedisTranscriptStore(redis.url, on_lost=lost.append, socket_timeout_s=1.0)
    try:
        await store.append(ROOM, entry("u1", 1.0))
        await redis.stop()
        store.record(ROOM, entry("u2", 2.0))  # the pipeline's call: returns at once
        await store.flush()
        assert lost == ["unreachable"]
        calls: list[Any] = [
            store.append(ROOM, entry("u3", 3.0)),
            store.read(ROOM),
            store.discard(ROOM),
        ]
        for call in calls:
            with pytest.raises(TranscriptUnavailable, match="unreachable"):
                await call
        await redis.start()
        # The writer lived through the outage: the next entry is written.
        store.record(ROOM, entry("u4", 4.0))
        await store.flush()
        assert await uids(store) == ["u1", "u4"]
        assert lost == ["unreachable"]
    finally:
        await store.aclose()
        await redis.stop()


async def test_entries_beyond_the_backlog_are_dropped_and_counted(redis_prefix: str) -> None:
    lost: list[str] = []
    store = RedisTranscriptStore(REDIS_URL, prefix=redis_prefix, max_pending=2, on_lost=lost.append)
    try:
        for i in range(4):  # without awaiting, the writer cannot take any of them yet
            store.record(ROOM, entry(f"u{i}", float(i)))
        await store.flush()
        assert lost == ["backlog", "backlog"]
        assert await uids(store) == ["u0", "u1"]
    finally:
        await store.aclose()
    store.record(ROOM, entry("late", 9.0))
    assert lost[-1] == "closed"


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        RedisTranscriptStore(REDIS_URL, max_entries=0)
    with pytest.raises(ValueError, match="ttl_s"):
        RedisTranscriptStore(REDIS_URL, ttl_s=0)
