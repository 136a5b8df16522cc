"""The room store of the distributed mode: rooms in Redis, shared by every media node.

Every change is one Lua script (``signaling/redis_room_scripts.py``, which also lists the keys),
so it is atomic across nodes.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.errors import ErrorCode, SignalingError
from signaling.redis_room_scripts import (
    CHANGE_SCRIPT,
    CLAIM_SCRIPT,
    CREATE_SCRIPT,
    END_SCRIPT,
    HEAD_FIELDS,
    JOIN_SCRIPT,
    LEAVE_SCRIPT,
    LOCK_SCRIPT,
    REASSIGN_SCRIPT,
    SWEEP_SCRIPT,
)
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

P = ParamSpec("P")
R = TypeVar("R")


def reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A Redis that does not answer becomes a retryable ``internal`` error for the caller
    (never a traceback); the calls already connected do not need it and go on."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            log.warning("room store unreachable", extra={"error": repr(exc)})
            raise SignalingError(
                ErrorCode.INTERNAL, "room state is unreachable right now; try again shortly"
            ) from exc

    return wrapper


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisRoomStore:
    """``RoomStore`` in Redis; every node that shares the Redis and ``prefix`` sees one state."""

    def __init__(
        self,
        url: str,
        limits: RoomLimits,
        *,
        prefix: str = "callserver:",
        socket_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.prefix = prefix
        self._clock = clock
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        self._create = self._client.register_script(CREATE_SCRIPT)
        self._join = self._client.register_script(JOIN_SCRIPT)
        self._leave = self._client.register_script(LEAVE_SCRIPT)
        self._change_script = self._client.register_script(CHANGE_SCRIPT)
        self._claim = self._client.register_script(CLAIM_SCRIPT)
        self._lock = self._client.register_script(LOCK_SCRIPT)
        self._end = self._client.register_script(END_SCRIPT)
        self._reassign = self._client.register_script(REASSIGN_SCRIPT)
        self._sweep = self._client.register_script(SWEEP_SCRIPT)

    def _room_keys(self, room_id: str) -> list[str]:
        room = f"{self.prefix}room:{room_id}"
        return [
            f"{self.prefix}rooms",
            f"{self.prefix}empty",
            room,
            f"{room}:order",
            f"{room}:people",
            f"{room}:seats",
        ]

    def _room(self, room_id: str, flat: Sequence[Any]) -> Room | None:
        if not flat:
            return None
        texts = [_text(v) for v in flat]
        head = dict(zip(HEAD_FIELDS, texts, strict=False))
        people = (Participant.from_record(json.loads(r)) for r in texts[len(HEAD_FIELDS) :])
        return Room(
            id=room_id,
            capacity=int(head["capacity"]),
            created_at=float(head["created_at"]),
            participants={p.id: p for p in people},
            empty_since=float(head["empty_since"]) if head["empty_since"] else None,
            owner=head["owner"] or None,
            title=head["title"] or None,
            locked=head["locked"] == "1",
            ended=head["ended"] == "1",
            host_key_hash=head["host_key"] or None,
        )

    def _snapshot(self, room_id: str, flat: Sequence[Any]) -> Room:
        room = self._room(room_id, flat)
        if room is None:  # the script just wrote it: only a flushed Redis gets here
            raise RuntimeError(f"room {room_id} vanished while being written")
        return room

    @reachable
    async def create(
        self,
        capacity: int | None = None,
        room_id: str | None = None,
        *,
        title: str | None = None,
        host_key_hash: str | None = None,
    ) -> Room:
        capacity = self.limits.check_capacity(capacity)
        room_id = new_room_id() if room_id is None else check_room_id(room_id)
        result = await self._create(
            keys=self._room_keys(room_id),
            args=[
                room_id,
                capacity,
                self.limits.max_rooms,
                self._clock(),
                title or "",
                host_key_hash or "",
            ],
        )
        if _text(result[0]) == "exhausted":
            raise rooms_exhausted()
        if _text(result[0]) == "created":
            log.info("room created", extra={"room": room_id, "capacity": capacity})
        return self._snapshot(room_id, result[1])

    @reachable
    async def get(self, room_id: str) -> Room | None:
        _, _, room, order, people, _ = self._room_keys(room_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(room, *HEAD_FIELDS)
            pipe.zrange(order, 0, -1)
            pipe.hgetall(people)
            head, ids, records = await pipe.execute()
        if head[0] is None:
            return None
        by_id = {_text(k): v for k, v in records.items()}
        ordered = [by_id[_text(i)] for i in ids if _text(i) in by_id]
        return self._room(room_id, [*(h or b"" for h in head), *ordered])

    @reachable
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
        check_room_id(room_id)
        participant = Participant(
            id=new_participant_id(),
            name=name,
            spoken=spoken,
            listen=listen,
            joined_at=self._clock(),
            host=host,
            seat=seat,
        )
        result = await self._join(
            keys=self._room_keys(room_id),
            args=[
                room_id,
                self.limits.default_capacity,
                self.limits.max_rooms,
                participant.joined_at,
                participant.id,
                json.dumps(participant.to_record()),
                "1" if host else "0",
                seat or "",
            ],
        )
        status = _text(result[0])
        if status == "exhausted":
            raise rooms_exhausted()
        if status == "ended":
            raise room_ended()
        if status == "locked":
            raise room_locked()
        if status == "full":
            raise room_full(int(_text(result[1])))
        return self._snapshot(room_id, result[1]), participant

    @reachable
    async def leave(
        self, room_id: str, participant_id: str, *, revoke: bool = False
    ) -> Participant | None:
        _, empty, room, order, people, seats = self._room_keys(room_id)
        record = await self._leave(
            keys=[empty, room, order, people, seats],
            args=[room_id, participant_id, self._clock(), "1" if revoke else "0"],
        )
        return Participant.from_record(json.loads(record)) if record else None

    async def update(
        self,
        room_id: str,
        participant_id: str,
        *,
        name: str | None = None,
        spoken: str | None = None,
        listen: str | None = None,
    ) -> Participant:
        return await self._change(
            room_id, participant_id, {"name": name, "spoken": spoken, "listen": listen}
        )

    async def set_prefs(
        self,
        room_id: str,
        participant_id: str,
        *,
        dub: bool | None = None,
        original_volume: float | None = None,
        video: bool | None = None,
    ) -> Participant:
        return await self._change(
            room_id,
            participant_id,
            {"dub": dub, "original_volume": original_volume, "video": video},
        )

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> Participant:
        return await self._change(room_id, participant_id, {"muted": muted})

    @reachable
    async def set_locked(self, room_id: str, locked: bool) -> Room:
        _, _, room, order, people, _ = self._room_keys(room_id)
        flat = await self._lock(keys=[room, order, people], args=["1" if locked else "0"])
        result = self._room(room_id, flat)
        if result is None:
            raise room_not_found()
        return result

    @reachable
    async def end(self, room_id: str) -> Room:
        _, empty, room, order, people, seats = self._room_keys(room_id)
        flat = await self._end(
            keys=[empty, room, order, people, seats], args=[room_id, self._clock()]
        )
        result = self._room(room_id, flat)
        if result is None:
            raise room_not_found()
        log.info("room ended", extra={"room": room_id})
        return result

    @reachable
    async def _change(
        self, room_id: str, participant_id: str, fields: dict[str, Any]
    ) -> Participant:
        changes = {key: value for key, value in fields.items() if value is not None}
        record = await self._change_script(
            keys=[self._room_keys(room_id)[4]], args=[participant_id, json.dumps(changes)]
        )
        if not record:
            raise not_in_room()
        return Participant.from_record(json.loads(record))

    @reachable
    async def claim(self, room_id: str, node: str) -> str | None:
        owner = await self._claim(keys=[self._room_keys(room_id)[2]], args=[node])
        return _text(owner) if owner else None

    @reachable
    async def reassign(self, room_id: str, expected: str | None, node: str) -> str | None:
        _, empty, room, order, people, _ = self._room_keys(room_id)
        owner = await self._reassign(
            keys=[empty, room, order, people], args=[room_id, expected or "", node, self._clock()]
        )
        return (_text(owner) or None) if owner is not None else None

    @reachable
    async def counts(self) -> tuple[int, int]:
        ids = [_text(i) for i in await self._client.smembers(f"{self.prefix}rooms")]
        if not ids:
            return 0, 0
        async with self._client.pipeline(transaction=False) as pipe:
            for room_id in ids:
                pipe.zcard(self._room_keys(room_id)[3])
            sizes = await pipe.execute()
        return len(ids), sum(int(size) for size in sizes)

    @reachable
    async def sweep(self) -> list[str]:
        cutoff = self._clock() - self.limits.empty_ttl_s
        expired = [
            _text(room_id)
            for room_id in await self._sweep(
                keys=self._room_keys("")[:2], args=[cutoff, self.prefix]
            )
        ]
        for room_id in expired:
            log.info("room expired", extra={"room": room_id})
        return expired

    async def aclose(self) -> None:
        await self._client.aclose()
