"""Room registry: capacity, creation on first join, leave, expiry."""

from __future__ import annotations

import pytest

from signaling.errors import ErrorCode, SignalingError
from signaling.rooms import ROOM_ID_PATTERN, RoomRegistry, new_room_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registry(clock: Clock | None = None, **kw: int | float) -> RoomRegistry:
    args: dict[str, int | float] = {
        "default_capacity": 2,
        "max_capacity": 8,
        "max_rooms": 10,
        "empty_ttl_s": 60.0,
    }
    args.update(kw)
    return RoomRegistry(clock=clock or Clock(), **args)  # type: ignore[arg-type]


def test_room_ids_are_unguessable_and_valid() -> None:
    ids = {new_room_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(ROOM_ID_PATTERN.match(i) and len(i) >= 22 for i in ids)


def test_created_room_has_default_or_requested_capacity() -> None:
    rooms = registry()
    assert rooms.create().capacity == 2
    assert rooms.create(capacity=8).capacity == 8
    for bad in (1, 9, 0, -3):
        with pytest.raises(SignalingError) as err:
            rooms.create(capacity=bad)
        assert err.value.code == ErrorCode.CAPACITY_INVALID


def test_join_creates_room_on_first_join_and_enforces_capacity() -> None:
    rooms = registry()
    room, alice = rooms.join("first-join", "Alice", "en", "es")
    assert room.id == "first-join" and room.capacity == 2
    _, bob = rooms.join("first-join", "Bob", "es", "en")
    assert alice.id != bob.id
    with pytest.raises(SignalingError) as err:
        rooms.join("first-join", "Carol", "en", "en")
    assert err.value.code == ErrorCode.ROOM_FULL
    assert [p.name for p in room.participants.values()] == ["Alice", "Bob"]
    assert rooms.participant_count == 2


def test_languages_are_stored_on_participants() -> None:
    rooms = registry()
    room, p = rooms.join("langroom", "Vy", "vi", "en")
    assert room.to_wire()["participants"] == [
        {"id": p.id, "name": "Vy", "spoken": "vi", "listen": "en"}
    ]


def test_invalid_room_id_is_refused() -> None:
    rooms = registry()
    for bad in ("abc", "has space!", "x" * 65, "../etc/passwd"):
        with pytest.raises(SignalingError) as err:
            rooms.join(bad, "A", "en", "en")
        assert err.value.code == ErrorCode.ROOM_ID_INVALID
    assert len(rooms) == 0


def test_room_limit() -> None:
    rooms = registry(max_rooms=2)
    rooms.create()
    rooms.create()
    with pytest.raises(SignalingError) as err:
        rooms.create()
    assert err.value.code == ErrorCode.ROOMS_EXHAUSTED
    assert err.value.retry


def test_empty_rooms_expire_after_ttl_and_occupied_rooms_stay() -> None:
    clock = Clock()
    rooms = registry(clock)
    never_joined = rooms.create()
    room, alice = rooms.join("occupied", "A", "en", "en")
    clock.now += 59
    assert rooms.sweep() == []
    clock.now += 2
    assert rooms.sweep() == [never_joined.id]
    assert rooms.get("occupied") is room
    rooms.leave("occupied", alice.id)
    clock.now += 30
    assert rooms.sweep() == []
    clock.now += 31
    assert rooms.sweep() == ["occupied"]
    assert len(rooms) == 0


def test_rejoin_after_leave_cancels_expiry() -> None:
    clock = Clock()
    rooms = registry(clock)
    _, alice = rooms.join("rejoin", "A", "en", "en")
    rooms.leave("rejoin", alice.id)
    clock.now += 50
    rooms.join("rejoin", "A", "en", "en")
    clock.now += 100
    assert rooms.sweep() == []


def test_leave_unknown_is_harmless() -> None:
    rooms = registry()
    assert rooms.leave("nothing", "p_x") is None
    rooms.join("someroom", "A", "en", "en")
    assert rooms.leave("someroom", "p_unknown") is None
