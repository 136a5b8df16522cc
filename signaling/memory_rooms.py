"""The in-process room store of the embedded default: rooms in a dict, one event loop."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from signaling.rooms import (
    Participant,
    Room,
    RoomLimits,
    check_room_id,
    new_participant_id,
    new_room_id,
    not_in_room,
    room_ended,
    room_full,
    room_locked,
    room_not_found,
    rooms_exhausted,
)

log = logging.getLogger(__name__)


class MemoryRoomStore:
    """``RoomStore`` in memory. Its methods never await, so each is atomic on the event loop."""

    def __init__(self, limits: RoomLimits, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self._clock = clock
        self._rooms: dict[str, Room] = {}
        # room id -> the seats (rejoin key hashes) of everyone admitted and not removed: a
        # lock does not keep them out, so a dropped connection can come back.
        self._seats: dict[str, set[str]] = {}

    async def create(
        self,
        capacity: int | None = None,
        room_id: str | None = None,
        *,
        title: str | None = None,
        host_key_hash: str | None = None,
    ) -> Room:
        return self._create(capacity, room_id, title, host_key_hash)

    def _create(
        self,
        capacity: int | None,
        room_id: str | None,
        title: str | None = None,
        host_key_hash: str | None = None,
    ) -> Room:
        capacity = self.limits.check_capacity(capacity)
        room_id = new_room_id() if room_id is None else check_room_id(room_id)
        existing = self._rooms.get(room_id)
        if existing is not None:
            return existing
        if len(self._rooms) >= self.limits.max_rooms:
            raise rooms_exhausted()
        now = self._clock()
        room = Room(
            id=room_id,
            capacity=capacity,
            created_at=now,
            empty_since=now,
            title=title,
            host_key_hash=host_key_hash,
        )
        self._rooms[room_id] = room
        log.info("room created", extra={"room": room_id, "capacity": capacity})
        return room

    async def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    async def join(
        self,
        room_id: str,
        name: str,
        spoken: str,
        listen: str,
        *,
        host: bool = False,
        seat: str | None = None,
    ) -> tuple[Room, Participant]:
        room = self._rooms.get(room_id) or self._create(None, room_id)
        if room.ended:
            raise room_ended()
        seats = self._seats.setdefault(room_id, set())
        if room.locked and not host and seat not in seats:
            raise room_locked()
        if room.full:
            raise room_full(room.capacity)
        participant = Participant(
            id=new_participant_id(),
            name=name,
            spoken=spoken,
            listen=listen,
            joined_at=self._clock(),
            host=host,
            seat=seat,
        )
        if seat is not None:
            seats.add(seat)
        room = self._put(room, {**room.participants, participant.id: participant}, None)
        return room, participant

    async def leave(
        self, room_id: str, participant_id: str, *, revoke: bool = False
    ) -> Participant | None:
        room = self._rooms.get(room_id)
        if room is None or participant_id not in room.participants:
            return None
        gone = room.participants[participant_id]
        if revoke and gone.seat is not None:
            self._seats.get(room_id, set()).discard(gone.seat)
        rest = {pid: p for pid, p in room.participants.items() if pid != participant_id}
        self._put(room, rest, None if rest else self._clock())
        return gone

    async def update(
        self,
        room_id: str,
        participant_id: str,
        *,
        name: str | None = None,
        spoken: str | None = None,
        listen: str | None = None,
    ) -> Participant:
        return self._change(room_id, participant_id, name=name, spoken=spoken, listen=listen)

    async def set_prefs(
        self,
        room_id: str,
        participant_id: str,
        *,
        dub: bool | None = None,
        original_volume: float | None = None,
        video: bool | None = None,
    ) -> Participant:
        return self._change(
            room_id, participant_id, dub=dub, original_volume=original_volume, video=video
        )

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> Participant:
        return self._change(room_id, participant_id, muted=muted)

    async def set_locked(self, room_id: str, locked: bool) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            raise room_not_found()
        room = dataclasses.replace(room, locked=locked)
        self._rooms[room_id] = room
        return room

    async def end(self, room_id: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            raise room_not_found()
        empty_since = room.empty_since if room.empty_since is not None else self._clock()
        self._rooms[room_id] = dataclasses.replace(
            room, participants={}, ended=True, empty_since=empty_since
        )
        self._seats.pop(room_id, None)
        log.info("room ended", extra={"room": room_id})
        return room

    def _change(self, room_id: str, participant_id: str, **fields: Any) -> Participant:
        room = self._rooms.get(room_id)
        current = room.participants.get(participant_id) if room is not None else None
        if room is None or current is None:
            raise not_in_room()
        changed = dataclasses.replace(
            current, **{key: value for key, value in fields.items() if value is not None}
        )
        self._put(room, {**room.participants, participant_id: changed}, room.empty_since)
        return changed

    def _put(
        self, room: Room, participants: dict[str, Participant], empty_since: float | None
    ) -> Room:
        updated = dataclasses.replace(room, participants=participants, empty_since=empty_since)
        self._rooms[room.id] = updated
        return updated

    async def claim(self, room_id: str, node: str) -> str | None:
        room = self._rooms.get(room_id)
        if room is None:
            return None
        if room.owner is None:
            room = dataclasses.replace(room, owner=node)
            self._rooms[room_id] = room
        return room.owner

    async def reassign(self, room_id: str, expected: str | None, node: str) -> str | None:
        room = self._rooms.get(room_id)
        if room is None:
            return None
        if room.owner == expected:
            stale = expected is not None and bool(room.participants)
            room = dataclasses.replace(
                room,
                owner=node,
                participants={} if stale else room.participants,
                empty_since=self._clock() if stale else room.empty_since,
            )
            self._rooms[room_id] = room
        return room.owner

    async def counts(self) -> tuple[int, int]:
        return len(self._rooms), sum(len(r.participants) for r in self._rooms.values())

    async def sweep(self) -> list[str]:
        cutoff = self._clock() - self.limits.empty_ttl_s
        expired = [
            room.id
            for room in self._rooms.values()
            if room.empty_since is not None and room.empty_since <= cutoff
        ]
        for room_id in expired:
            del self._rooms[room_id]
            self._seats.pop(room_id, None)
            log.info("room expired", extra={"room": room_id})
        return expired

    async def aclose(self) -> None:
        self._rooms.clear()
        self._seats.clear()
