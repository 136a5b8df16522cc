"""Rooms and their participants, held in memory by the embedded server.

The registry is the single owner of room state; the signaling handler and the HTTP API call it,
and nothing else mutates rooms. A Redis-backed registry for the distributed mode implements
the same methods.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signaling.errors import ErrorCode, SignalingError

log = logging.getLogger(__name__)

ROOM_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def new_room_id() -> str:
    """An unguessable room id: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def new_participant_id() -> str:
    """A participant id, unique within the server's lifetime."""
    return "p_" + secrets.token_urlsafe(9)


@dataclass
class Participant:
    """Someone in a room: who they are and which languages they speak and want to hear."""

    id: str
    name: str
    spoken: str
    listen: str
    joined_at: float
    #: Whether this listener hears dubbed speech, and how loud the original voices stay.
    dub: bool = True
    original_volume: float = 1.0

    def to_wire(self) -> dict[str, Any]:
        """The participant as it appears in protocol messages."""
        return {"id": self.id, "name": self.name, "spoken": self.spoken, "listen": self.listen}


@dataclass
class Room:
    """A call: an id, a capacity and the participants in it."""

    id: str
    capacity: int
    created_at: float
    participants: dict[str, Participant] = field(default_factory=dict)
    empty_since: float | None = None

    @property
    def full(self) -> bool:
        return len(self.participants) >= self.capacity

    def to_wire(self) -> dict[str, Any]:
        """The room as it appears in protocol messages."""
        return {
            "id": self.id,
            "capacity": self.capacity,
            "participants": [p.to_wire() for p in self.participants.values()],
        }


class RoomRegistry:
    """Creates, joins, leaves and expires rooms within the configured limits."""

    def __init__(
        self,
        *,
        default_capacity: int,
        max_capacity: int,
        max_rooms: int,
        empty_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_capacity = default_capacity
        self.max_capacity = max_capacity
        self.max_rooms = max_rooms
        self.empty_ttl_s = empty_ttl_s
        self._clock = clock
        self._rooms: dict[str, Room] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    @property
    def participant_count(self) -> int:
        return sum(len(room.participants) for room in self._rooms.values())

    def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def participants_of(self, room_id: str) -> list[Participant]:
        """The room's participants, oldest first; empty for an unknown room."""
        room = self._rooms.get(room_id)
        return list(room.participants.values()) if room else []

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def create(self, capacity: int | None = None, room_id: str | None = None) -> Room:
        """Create an empty room; it expires if nobody joins within the empty TTL."""
        if capacity is None:
            capacity = self.default_capacity
        if not 2 <= capacity <= self.max_capacity:
            raise SignalingError(
                ErrorCode.CAPACITY_INVALID,
                f"capacity must be between 2 and {self.max_capacity}",
            )
        if room_id is None:
            room_id = new_room_id()
        elif not ROOM_ID_PATTERN.match(room_id):
            raise SignalingError(
                ErrorCode.ROOM_ID_INVALID, "room ids are 6-64 letters, digits, '-' or '_'"
            )
        if len(self._rooms) >= self.max_rooms:
            raise SignalingError(ErrorCode.ROOMS_EXHAUSTED, "the server holds its maximum of rooms")
        now = self._clock()
        room = Room(id=room_id, capacity=capacity, created_at=now, empty_since=now)
        self._rooms[room_id] = room
        log.info("room created", extra={"room": room_id, "capacity": capacity})
        return room

    def join(self, room_id: str, name: str, spoken: str, listen: str) -> tuple[Room, Participant]:
        """Add a participant, creating the room on first join if it does not exist."""
        room = self._rooms.get(room_id)
        if room is None:
            room = self.create(room_id=room_id)
        if room.full:
            raise SignalingError(
                ErrorCode.ROOM_FULL, f"the room is full ({room.capacity} participants)"
            )
        participant = Participant(
            id=new_participant_id(),
            name=name,
            spoken=spoken,
            listen=listen,
            joined_at=self._clock(),
        )
        room.participants[participant.id] = participant
        room.empty_since = None
        return room, participant

    def leave(self, room_id: str, participant_id: str) -> Participant | None:
        """Remove a participant; the room starts its empty TTL when the last one leaves."""
        room = self._rooms.get(room_id)
        if room is None:
            return None
        participant = room.participants.pop(participant_id, None)
        if not room.participants and room.empty_since is None:
            room.empty_since = self._clock()
        return participant

    def sweep(self) -> list[str]:
        """Delete rooms that have been empty longer than the TTL; return their ids."""
        cutoff = self._clock() - self.empty_ttl_s
        expired = [
            room.id
            for room in self._rooms.values()
            if room.empty_since is not None and room.empty_since <= cutoff
        ]
        for room_id in expired:
            del self._rooms[room_id]
            log.info("room expired", extra={"room": room_id})
        return expired

    def clear(self) -> None:
        """Forget every room (shutdown)."""
        self._rooms.clear()
