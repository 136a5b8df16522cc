"""One contract for every room store: the in-process one and the Redis one (a real Redis).

Each test runs against both; what differs between them (where the state lives) must not show.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from signaling.errors import ErrorCode, SignalingError
from signaling.memory_rooms import MemoryRoomStore
from signaling.redis_rooms import RedisRoomStore
from signaling.rooms import (
    ROOM_ID_PATTERN,
    Participant,
    RoomLimits,
    RoomStore,
    hash_key,
    new_room_id,
)
from tests.conftest import REDIS_URL


class Clock:
    """Wall-clock stand-in the tests move by hand (expiry is measured on it)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


StoreFactory = Callable[..., RoomStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(
    request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[StoreFactory]:
    """``make_store(clock, **limits)``; Redis stores made by one test share their keys."""
    made: list[RoomStore] = []

    def make(clock: Clock | None = None, **limits: Any) -> RoomStore:
        values: dict[str, Any] = {"default_capacity": 2, "max_capacity": 8, "max_rooms": 10}
        values |= {"empty_ttl_s": 60.0} | limits
        store: RoomStore
        if request.param == "memory":
            store = MemoryRoomStore(RoomLimits(**values), clock=clock or Clock())
        else:
            store = RedisRoomStore(
                REDIS_URL, RoomLimits(**values), prefix=redis_prefix, clock=clock or Clock()
            )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def codes(awaitable: Any) -> ErrorCode:
    with pytest.raises(SignalingError) as err:
        await awaitable
    return err.value.code


def test_room_ids_are_unguessable_and_valid() -> None:
    ids = {new_room_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(ROOM_ID_PATTERN.match(i) and len(i) >= 22 for i in ids)


def test_limits_are_checked_on_construction() -> None:
    for bad in (
        {"default_capacity": 1},
        {"default_capacity": 9},
        {"max_rooms": 0},
        {"empty_ttl_s": 0},
    ):
        with pytest.raises(ValueError, match="must be"):
            RoomLimits(**bad)


async def test_created_room_has_default_or_requested_capacity(make_store: StoreFactory) -> None:
    rooms = make_store()
    assert (await rooms.create()).capacity == 2
    room = await rooms.create(capacity=8)
    assert room.capacity == 8
    assert await rooms.get(room.id) == room
    for bad in (1, 9, 0, -3):
        assert await codes(rooms.create(capacity=bad)) == ErrorCode.CAPACITY_INVALID
    assert await rooms.counts() == (2, 0)


async def test_join_creates_room_on_first_join_and_enforces_capacity(
    make_store: StoreFactory,
) -> None:
    rooms = make_store()
    room, alice = await rooms.join("first-join", "Alice", "en", "es")
    assert room.id == "first-join" and room.capacity == 2
    assert list(room.participants) == [alice.id] and room.empty_since is None
    room, bob = await rooms.join("first-join", "Bob", "es", "en")
    assert alice.id != bob.id
    assert await codes(rooms.join("first-join", "Carol", "en", "en")) == ErrorCode.ROOM_FULL
    assert [p.name for p in room.participants.values()] == ["Alice", "Bob"]
    assert await rooms.get("first-join") == room
    assert await rooms.counts() == (1, 2)


async def test_participants_keep_every_field_in_join_order(make_store: StoreFactory) -> None:
    rooms = make_store()
    await rooms.create(capacity=8, room_id="ordered")
    joined = [(await rooms.join("ordered", f"P{i}", "vi", "en"))[1] for i in range(5)]
    room = await rooms.get("ordered")
    assert room is not None
    assert list(room.participants.values()) == joined
    assert room.to_wire()["participants"][0] == {
        "id": joined[0].id,
        "name": "P0",
        "spoken": "vi",
        "listen": "en",
        "host": False,
        "muted": False,
        "video": True,
    }
    assert joined[0].dub is True and joined[0].original_volume == 1.0


async def test_invalid_room_id_is_refused(make_store: StoreFactory) -> None:
    rooms = make_store()
    for bad in ("abc", "has space!", "x" * 65, "../etc/passwd"):
        assert await codes(rooms.join(bad, "A", "en", "en")) == ErrorCode.ROOM_ID_INVALID
        assert await codes(rooms.create(room_id=bad)) == ErrorCode.ROOM_ID_INVALID
    assert await rooms.counts() == (0, 0)


async def test_room_limit_is_retryable(make_store: StoreFactory) -> None:
    rooms = make_store(max_rooms=2)
    await rooms.create()
    await rooms.join("second-room", "A", "en", "en")
    with pytest.raises(SignalingError) as err:
        await rooms.create()
    assert err.value.code == ErrorCode.ROOMS_EXHAUSTED and err.value.retry
    assert await codes(rooms.join("third-room", "A", "en", "en")) == ErrorCode.ROOMS_EXHAUSTED
    # An existing room can still be joined at the limit.
    await rooms.join("second-room", "B", "en", "en")


async def test_empty_rooms_expire_after_ttl_and_occupied_rooms_stay(
    make_store: StoreFactory,
) -> None:
    clock = Clock()
    rooms = make_store(clock)
    never_joined = await rooms.create()
    room, alice = await rooms.join("occupied", "A", "en", "en")
    clock.now += 59
    assert await rooms.sweep() == []
    clock.now += 2
    assert await rooms.sweep() == [never_joined.id]
    assert await rooms.get(never_joined.id) is None
    assert await rooms.get("occupied") == room
    assert await rooms.leave("occupied", alice.id) == alice
    left = await rooms.get("occupied")
    assert left is not None and left.participants == {} and left.empty_since == clock.now
    clock.now += 30
    assert await rooms.sweep() == []
    clock.now += 31
    assert await rooms.sweep() == ["occupied"]
    assert await rooms.counts() == (0, 0)


async def test_rejoin_after_leave_cancels_expiry(make_store: StoreFactory) -> None:
    clock = Clock()
    rooms = make_store(clock)
    _, alice = await rooms.join("rejoin", "A", "en", "en")
    await rooms.leave("rejoin", alice.id)
    clock.now += 50
    await rooms.join("rejoin", "A", "en", "en")
    clock.now += 100
    assert await rooms.sweep() == []


async def test_leave_unknown_is_harmless(make_store: StoreFactory) -> None:
    rooms = make_store()
    assert await rooms.leave("nothing", "p_x") is None
    await rooms.join("someroom", "A", "en", "en")
    assert await rooms.leave("someroom", "p_unknown") is None
    assert await rooms.counts() == (1, 1)


async def test_update_and_prefs_change_only_what_is_given(make_store: StoreFactory) -> None:
    rooms = make_store()
    _, alice = await rooms.join("changes", "Alice", "en", "es")
    renamed = await rooms.update("changes", alice.id, name="Alicia", listen="fr")
    assert (renamed.id, renamed.name, renamed.spoken, renamed.listen) == (
        alice.id,
        "Alicia",
        "en",
        "fr",
    )
    quiet = await rooms.set_prefs("changes", alice.id, original_volume=0.25)
    assert (quiet.dub, quiet.original_volume, quiet.name) == (True, 0.25, "Alicia")
    off = await rooms.set_prefs("changes", alice.id, dub=False)
    assert (off.dub, off.original_volume) == (False, 0.25)
    room = await rooms.get("changes")
    assert room is not None and room.participants[alice.id] == off
    assert await codes(rooms.update("changes", "p_gone", name="X")) == ErrorCode.NOT_JOINED
    assert await codes(rooms.set_prefs("nowhere", alice.id, dub=True)) == ErrorCode.NOT_JOINED


async def test_a_hosted_room_keeps_its_title_and_only_the_hash_of_its_key(
    make_store: StoreFactory,
) -> None:
    rooms = make_store()
    digest = hash_key("the-host-key")
    made = await rooms.create(capacity=4, title="Lesson 3: Hà Nội", host_key_hash=digest)
    room = await rooms.get(made.id)
    assert room == made and room is not None
    assert (room.title, room.host_key_hash, room.locked, room.ended) == (
        "Lesson 3: Hà Nội",
        digest,
        False,
        False,
    )
    assert room.host_key_matches("the-host-key") and not room.host_key_matches("the-host-kez")
    assert "the-host-key" not in repr(room.to_wire())
    # A room made by a join has no title and no host credential.
    plain, _ = await rooms.join("plain-room", "A", "en", "en")
    assert plain.title is None and not plain.host_key_matches("")


async def test_a_lock_keeps_guests_out_but_not_hosts(make_store: StoreFactory) -> None:
    rooms = make_store()
    made = await rooms.create(capacity=3)
    _, host = await rooms.join(made.id, "Host", "en", "en", host=True)
    assert host.host
    locked = await rooms.set_locked(made.id, True)
    assert locked.locked and list(locked.participants) == [host.id]
    assert await codes(rooms.join(made.id, "Guest", "en", "en")) == ErrorCode.ROOM_LOCKED
    _, again = await rooms.join(made.id, "Host's phone", "en", "en", host=True)
    assert again.host
    assert not (await rooms.set_locked(made.id, False)).locked
    room, guest = await rooms.join(made.id, "Guest", "en", "en")
    assert not guest.host and room.full
    # The lock does not make room: a host still needs a free place.
    await rooms.set_locked(made.id, True)
    assert await codes(rooms.join(made.id, "Host", "en", "en", host=True)) == ErrorCode.ROOM_FULL
    assert await codes(rooms.set_locked("no-such-room", True)) == ErrorCode.ROOM_NOT_FOUND


async def test_a_lock_lets_back_the_admitted_but_not_the_removed(
    make_store: StoreFactory,
) -> None:
    rooms = make_store()
    made = await rooms.create(capacity=4)
    _, ann = await rooms.join(made.id, "Ann", "en", "en", seat=hash_key("ann-key"))
    _, bob = await rooms.join(made.id, "Bob", "en", "en", seat=hash_key("bob-key"))
    assert ann.seat == hash_key("ann-key")
    await rooms.set_locked(made.id, True)
    # Both connections drop; Bob is then removed by the host (his seat is taken away).
    assert await rooms.leave(made.id, ann.id) == ann
    assert await rooms.leave(made.id, bob.id, revoke=True) == bob
    _, back = await rooms.join(made.id, "Ann", "en", "en", seat=hash_key("ann-key"))
    assert back.seat == ann.seat and back.id != ann.id
    for seat in (hash_key("bob-key"), hash_key("a-guess"), None):
        joining = rooms.join(made.id, "Bob", "en", "en", seat=seat)
        assert await codes(joining) == ErrorCode.ROOM_LOCKED
    # Leaving without revoke keeps the seat; an ended room forgets every seat.
    await rooms.leave(made.id, back.id)
    await rooms.end(made.id)
    joining = rooms.join(made.id, "Ann", "en", "en", seat=hash_key("ann-key"))
    assert await codes(joining) == ErrorCode.ROOM_ENDED


async def test_an_ended_room_refuses_everyone_until_it_expires(make_store: StoreFactory) -> None:
    clock = Clock()
    rooms = make_store(clock)
    made = await rooms.create(capacity=4)
    _, host = await rooms.join(made.id, "Host", "en", "en", host=True)
    _, guest = await rooms.join(made.id, "Guest", "es", "en")
    clock.now += 5
    before = await rooms.end(made.id)
    assert list(before.participants) == [host.id, guest.id]
    after = await rooms.get(made.id)
    assert after is not None and after.ended and after.participants == {}
    assert after.empty_since == clock.now
    for as_host in (False, True):
        joining = rooms.join(made.id, "Again", "en", "en", host=as_host)
        assert await codes(joining) == ErrorCode.ROOM_ENDED
    assert await rooms.counts() == (1, 0)
    clock.now += 61
    assert await rooms.sweep() == [made.id]
    # Once forgotten, the id is a new, plain room.
    fresh, _ = await rooms.join(made.id, "Later", "en", "en")
    assert not fresh.ended and fresh.host_key_hash is None
    assert await codes(rooms.end("no-such-room")) == ErrorCode.ROOM_NOT_FOUND


async def test_mute_and_video_change_one_participant(make_store: StoreFactory) -> None:
    rooms = make_store()
    _, alice = await rooms.join("mute-room", "Alice", "en", "es")
    _, bob = await rooms.join("mute-room", "Bob", "es", "en")
    muted = await rooms.set_muted("mute-room", bob.id, True)
    assert muted.muted and (muted.name, muted.listen) == ("Bob", "en")
    no_video = await rooms.set_prefs("mute-room", alice.id, video=False)
    assert not no_video.video and no_video.dub
    room = await rooms.get("mute-room")
    assert room is not None
    assert room.participants == {alice.id: no_video, bob.id: muted}
    assert not (await rooms.set_muted("mute-room", bob.id, False)).muted
    assert await codes(rooms.set_muted("mute-room", "p_gone", True)) == ErrorCode.NOT_JOINED


def test_records_written_before_hosted_rooms_still_read() -> None:
    old = {"id": "p_1", "name": "A", "spoken": "en", "listen": "es", "joined_at": 1.0}
    participant = Participant.from_record({**old, "dub": True, "original_volume": 1.0})
    assert (participant.host, participant.muted, participant.video) == (False, False, True)


async def test_claim_gives_a_room_one_owner(make_store: StoreFactory) -> None:
    rooms = make_store()
    assert await rooms.claim("unknown-room", "node-a") is None
    await rooms.create(room_id="owned-room")
    assert await rooms.claim("owned-room", "node-a") == "node-a"
    assert await rooms.claim("owned-room", "node-b") == "node-a"
    room = await rooms.get("owned-room")
    assert room is not None and room.owner == "node-a"


async def test_reassign_moves_a_room_off_a_dead_owner_once(make_store: StoreFactory) -> None:
    clock = Clock()
    first = make_store(clock)
    second = first if isinstance(first, MemoryRoomStore) else make_store(clock)
    assert await first.reassign("unknown-room", None, "node-a") is None
    await first.create(room_id="moving-room")
    assert await first.reassign("moving-room", None, "node-a") == "node-a"
    await first.join("moving-room", "Ann", "en", "es")
    # Two nodes find node-a dead at once: one of them gets the room, both agree on which.
    owners = await asyncio.gather(
        first.reassign("moving-room", "node-a", "node-b"),
        second.reassign("moving-room", "node-a", "node-c"),
    )
    assert owners[0] == owners[1] and owners[0] in ("node-b", "node-c")
    # Ann's call died with node-a: her place is free for her to join again.
    room = await second.get("moving-room")
    assert room is not None and room.owner == owners[0]
    assert room.participants == {} and room.empty_since == clock.now
    # A stale view (expecting node-a still) changes nothing.
    assert await first.reassign("moving-room", "node-a", "node-d") == owners[0]


async def test_concurrent_joins_never_overfill_a_room(make_store: StoreFactory) -> None:
    # Two stores on one state stand for two nodes (for the in-process store, one loop's
    # interleaving): of 12 joiners racing for 3 places, exactly 3 get in.
    first = make_store()
    second = first if isinstance(first, MemoryRoomStore) else make_store()
    await first.create(capacity=3, room_id="race-room")
    results = await asyncio.gather(
        *((first if i % 2 else second).join("race-room", f"P{i}", "en", "en") for i in range(12)),
        return_exceptions=True,
    )
    joined = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, SignalingError)]
    assert len(joined) == 3 and len(refused) == 9
    assert {e.code for e in refused} == {ErrorCode.ROOM_FULL}
    room = await second.get("race-room")
    assert room is not None
    assert set(room.participants) == {participant.id for _, participant in joined}


async def test_concurrent_claims_agree(make_store: StoreFactory) -> None:
    first = make_store()
    second = first if isinstance(first, MemoryRoomStore) else make_store()
    await first.create(room_id="claimed-room")
    owners = await asyncio.gather(
        *((first, second)[i % 2].claim("claimed-room", f"node-{i}") for i in range(10))
    )
    assert len(set(owners)) == 1 and owners[0] is not None


async def test_a_swept_room_is_reported_once(make_store: StoreFactory) -> None:
    clock = Clock()
    first = make_store(clock)
    second = first if isinstance(first, MemoryRoomStore) else make_store(clock)
    ids = {(await first.create()).id for _ in range(5)}
    clock.now += 61
    swept = await asyncio.gather(first.sweep(), second.sweep(), first.sweep())
    reported = [room_id for batch in swept for room_id in batch]
    assert sorted(reported) == sorted(ids)
