"""Rooms and their participants: the values, the limits and the store interface.

Room state lives in a ``RoomStore``: ``MemoryRoomStore`` (``signaling/memory_rooms.py``) in the
embedded default, ``RedisRoomStore`` (``signaling/redis_rooms.py``) when nodes share state.
Both return values, never live objects: a change goes through the store, which checks it and
answers with the new state, so two callers can never disagree about who is in a room.
``tests/test_room_store_contract.py`` runs one suite against every implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from signaling.errors import ErrorCode, SignalingError

#: Room ids; the page gets the same pattern through web/generated.js (signaling/webgen.py).
ROOM_ID_CHARS = "[A-Za-z0-9_-]{6,64}"
# \Z, not $: "$" also matches before a final newline, and callers use ``match``.
ROOM_ID_PATTERN = re.compile(rf"^{ROOM_ID_CHARS}\Z")


def new_room_id() -> str:
    """An unguessable room id: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def new_key() -> str:
    """A credential (a room's host key, a participant's rejoin key): 128 random bits,
    URL-safe. The store keeps only its hash."""
    return secrets.token_urlsafe(16)


def hash_key(key: str) -> str:
    """What the store keeps of a key: SHA-256, hex (the key itself is random, no salt)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


#: Keys longer than this are refused before hashing (minted ones are 22 characters).
MAX_KEY_LENGTH = 128


def new_participant_id() -> str:
    """A participant id: 72 random bits, so ids from different nodes do not collide."""
    return "p_" + secrets.token_urlsafe(9)


@dataclass(frozen=True)
class Participant:
    """Someone in a room: who they are and which languages they speak and want to hear."""

    id: str
    name: str
    spoken: str
    listen: str
    #: Wall-clock seconds (``time.time``), comparable across nodes.
    joined_at: float
    #: Whether this listener hears dubbed speech, and how loud the original voices stay.
    dub: bool = True
    original_volume: float = 1.0
    #: Joined with the room's host credential: may lock, remove, mute and end.
    host: bool = False
    #: The host muted this participant's microphone for the room.
    muted: bool = False
    #: Whether this participant takes the others' video (off saves their machine).
    video: bool = True
    #: ``hash_key`` of the rejoin key the participant holds: their seat in a locked room.
    seat: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The participant as it appears in protocol messages."""
        return {
            "id": self.id,
            "name": self.name,
            "spoken": self.spoken,
            "listen": self.listen,
            "host": self.host,
            "muted": self.muted,
            "video": self.video,
        }

    def to_record(self) -> dict[str, Any]:
        """Every field, as JSON-ready values (what a shared store keeps)."""
        return {
            **self.to_wire(),
            "seat": self.seat,
            "joined_at": self.joined_at,
            "dub": self.dub,
            "original_volume": self.original_volume,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Participant:
        """The inverse of ``to_record``."""
        return cls(
            id=str(record["id"]),
            name=str(record["name"]),
            spoken=str(record["spoken"]),
            listen=str(record["listen"]),
            joined_at=float(record["joined_at"]),
            dub=bool(record["dub"]),
            original_volume=float(record["original_volume"]),
            # Absent in records written before hosted rooms: a rolling upgrade reads them.
            host=bool(record.get("host", False)),
            muted=bool(record.get("muted", False)),
            video=bool(record.get("video", True)),
            seat=record.get("seat"),
        )


@dataclass(frozen=True)
class Room:
    """A call as the store saw it: an id, a capacity and the participants, oldest first."""

    id: str
    capacity: int
    created_at: float
    participants: Mapping[str, Participant] = field(default_factory=dict)
    #: When the last participant left (None while anyone is in); the room expires after
    #: ``RoomLimits.empty_ttl_s`` from then.
    empty_since: float | None = None
    #: The node that holds the room's calls, once one has claimed it.
    owner: str | None = None
    #: Shown to everyone who is invited; None for an untitled room.
    title: str | None = None
    #: A host locked the room: guests are refused, hosts still join.
    locked: bool = False
    #: A host ended the call: every join is refused until the room expires.
    ended: bool = False
    #: ``hash_key`` of the room's host credential; None for a room made by a join.
    host_key_hash: str | None = None

    @property
    def full(self) -> bool:
        return len(self.participants) >= self.capacity

    def host_key_matches(self, key: str) -> bool:
        """Whether ``key`` is this room's host credential (compared in constant time)."""
        if self.host_key_hash is None or len(key) > MAX_KEY_LENGTH:
            return False
        return hmac.compare_digest(self.host_key_hash, hash_key(key))

    def to_wire(self) -> dict[str, Any]:
        """The room as it appears in protocol messages."""
        return {
            "id": self.id,
            "capacity": self.capacity,
            "title": self.title,
            "locked": self.locked,
            "participants": [p.to_wire() for p in self.participants.values()],
        }


@dataclass(frozen=True)
class RoomLimits:
    """What the room store enforces (the server sets them from ``CALLSERVER_ROOM_*``)."""

    default_capacity: int = 2
    max_capacity: int = 8
    max_rooms: int = 1000
    #: A room nobody is in is forgotten this long after it became empty.
    empty_ttl_s: float = 300.0

    def __post_init__(self) -> None:
        if not 2 <= self.default_capacity <= self.max_capacity:
            raise ValueError("default_capacity must be between 2 and max_capacity")
        if self.max_rooms < 1:
            raise ValueError("max_rooms must be at least 1")
        if self.empty_ttl_s <= 0:
            raise ValueError("empty_ttl_s must be positive")

    def check_capacity(self, capacity: int | None) -> int:
        """``capacity`` (or the default) if allowed, else ``capacity_invalid``."""
        if capacity is None:
            return self.default_capacity
        if not 2 <= capacity <= self.max_capacity:
            raise SignalingError(
                ErrorCode.CAPACITY_INVALID, f"capacity must be between 2 and {self.max_capacity}"
            )
        return capacity


def check_room_id(room_id: str) -> str:
    """``room_id`` if it is well formed, else ``room_id_invalid``."""
    if not ROOM_ID_PATTERN.match(room_id):
        raise SignalingError(
            ErrorCode.ROOM_ID_INVALID, "room ids are 6-64 letters, digits, '-' or '_'"
        )
    return room_id


def room_full(capacity: int) -> SignalingError:
    return SignalingError(ErrorCode.ROOM_FULL, f"the room is full ({capacity} participants)")


def room_locked() -> SignalingError:
    return SignalingError(ErrorCode.ROOM_LOCKED, "the host has locked this room")


def room_ended() -> SignalingError:
    return SignalingError(ErrorCode.ROOM_ENDED, "the host has ended this call")


def room_not_found() -> SignalingError:
    return SignalingError(ErrorCode.ROOM_NOT_FOUND, "no such room")


def rooms_exhausted() -> SignalingError:
    return SignalingError(ErrorCode.ROOMS_EXHAUSTED, "the server holds its maximum of rooms")


def not_in_room() -> SignalingError:
    return SignalingError(ErrorCode.NOT_JOINED, "this participant is not in the room")


class RoomStore(Protocol):
    """Where rooms live. Every method is atomic: concurrent callers see one order of events."""

    limits: RoomLimits

    async def create(
        self,
        capacity: int | None = None,
        room_id: str | None = None,
        *,
        title: str | None = None,
        host_key_hash: str | None = None,
    ) -> Room:
        """An empty room (expires if nobody joins within the TTL); ``rooms_exhausted`` at the
        limit, ``capacity_invalid``, ``room_id_invalid``. An existing id is returned as it is."""
        ...

    async def get(self, room_id: str) -> Room | None:
        """The room now, or None."""
        ...

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
        """Add a participant, creating the room on first join; the capacity, the lock (which a
        host or a ``seat`` among the room's seats passes) and the end are checked in the same
        step as the add, so two joiners can never both take the last place. The ``seat`` is
        kept among the room's seats. ``room_full``, ``room_locked``, ``room_ended``."""
        ...

    async def leave(
        self, room_id: str, participant_id: str, *, revoke: bool = False
    ) -> Participant | None:
        """Remove a participant (None if not there); the last one out starts the empty TTL.
        ``revoke`` also takes their seat away (a host removed them)."""
        ...

    async def update(
        self,
        room_id: str,
        participant_id: str,
        *,
        name: str | None = None,
        spoken: str | None = None,
        listen: str | None = None,
    ) -> Participant:
        """Change who a participant is (None keeps a field); ``not_joined`` if not there."""
        ...

    async def set_prefs(
        self,
        room_id: str,
        participant_id: str,
        *,
        dub: bool | None = None,
        original_volume: float | None = None,
        video: bool | None = None,
    ) -> Participant:
        """Change a listener's dub and video controls (None keeps a field); ``not_joined`` if
        not there."""
        ...

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> Participant:
        """Mute or unmute a participant for the room; ``not_joined`` if not there."""
        ...

    async def set_locked(self, room_id: str, locked: bool) -> Room:
        """Lock or unlock the room; ``room_not_found`` for an unknown room."""
        ...

    async def end(self, room_id: str) -> Room:
        """End the call: everyone is out and joins are refused until the room expires. The
        room as it was just before (with the participants who were in); ``room_not_found``."""
        ...

    async def claim(self, room_id: str, node: str) -> str | None:
        """Make ``node`` the room's owner unless it has one; the owner after the call (None for
        an unknown room). Two nodes claiming at once get the same answer."""
        ...

    async def reassign(self, room_id: str, expected: str | None, node: str) -> str | None:
        """Give the room to ``node`` if its owner is still ``expected`` (a node found dead, or
        None); the participants the old owner held are dropped, since their calls died with
        it and they join again. The owner after the call; None for an unknown room."""
        ...

    async def counts(self) -> tuple[int, int]:
        """(rooms, participants) in the store."""
        ...

    async def sweep(self) -> list[str]:
        """Forget rooms empty for longer than the TTL; their ids, each reported once."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources (the in-process store forgets its rooms)."""
        ...
