"""The room store of the distributed mode: rooms in Redis, shared by every media node.

Each change is one Lua script, so it is atomic across nodes: a join checks the capacity and
adds the participant in the same step, a claim sets the owner only if there is none, a sweep
hands each expired room to exactly one node. The keys (under ``prefix``):

- ``rooms``: a set of room ids (its size is checked against ``max_rooms``);
- ``empty``: a sorted set, room id -> when it became empty (what ``sweep`` reads);
- ``room:{id}``: a hash with ``capacity``, ``created_at``, ``empty_since`` ('' while anyone is
  in), ``owner`` and ``seq`` (the join counter that orders participants);
- ``room:{id}:order``: a sorted set, participant id -> join sequence;
- ``room:{id}:people``: a hash, participant id -> the participant as JSON.

The scripts touch keys of several rooms' sets, so this is for a single Redis (or a primary with
replicas), not Redis Cluster.
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
from signaling.rooms import (
    Participant,
    Room,
    RoomLimits,
    check_room_id,
    new_participant_id,
    new_room_id,
    not_in_room,
    room_full,
    rooms_exhausted,
)

log = logging.getLogger(__name__)

# Returns the room as a flat list: capacity, created_at, empty_since, owner, then the
# participants' JSON in join order; an empty list for an unknown room.
_SNAPSHOT = """
local function snapshot(room, order, people)
  local head = redis.call('HMGET', room, 'capacity', 'created_at', 'empty_since', 'owner')
  if not head[1] then return {} end
  local out = {head[1], head[2], head[3] or '', head[4] or ''}
  local ids = redis.call('ZRANGE', order, 0, -1)
  if #ids > 0 then
    local records = redis.call('HMGET', people, unpack(ids))
    for i = 1, #records do out[#out + 1] = records[i] end
  end
  return out
end
"""

# KEYS: rooms, empty, room, order, people. ARGV: id, capacity, max_rooms, now.
# Creates the room unless it exists; 'exhausted' at the limit.
_CREATE = """
local function create(keys, id, capacity, max_rooms, now)
  if redis.call('EXISTS', keys[3]) == 1 then return 'exists' end
  if redis.call('SCARD', keys[1]) >= tonumber(max_rooms) then return 'exhausted' end
  redis.call('HSET', keys[3], 'capacity', capacity, 'created_at', now, 'empty_since', now,
             'seq', 0)
  redis.call('SADD', keys[1], id)
  redis.call('ZADD', keys[2], now, id)
  return 'created'
end
"""

CREATE_SCRIPT = (
    _SNAPSHOT
    + _CREATE
    + """
local made = create(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if made == 'exhausted' then return {'exhausted'} end
return {made, snapshot(KEYS[3], KEYS[4], KEYS[5])}
"""
)

# ARGV: id, default capacity, max_rooms, now, participant id, participant JSON.
JOIN_SCRIPT = (
    _SNAPSHOT
    + _CREATE
    + """
if create(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4]) == 'exhausted' then return {'exhausted'} end
local capacity = tonumber(redis.call('HGET', KEYS[3], 'capacity'))
if redis.call('ZCARD', KEYS[4]) >= capacity then return {'full', tostring(capacity)} end
local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
redis.call('ZADD', KEYS[4], seq, ARGV[5])
redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[3], 'empty_since', '')
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok', snapshot(KEYS[3], KEYS[4], KEYS[5])}
"""
)

# KEYS: empty, room, order, people. ARGV: id, participant id, now.
LEAVE_SCRIPT = """
local record = redis.call('HGET', KEYS[4], ARGV[2])
if not record then return false end
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('HSET', KEYS[2], 'empty_since', ARGV[3])
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return record
"""

# KEYS: people. ARGV: participant id, JSON object of the fields to change.
CHANGE_SCRIPT = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return false end
local participant = cjson.decode(record)
for key, value in pairs(cjson.decode(ARGV[2])) do participant[key] = value end
record = cjson.encode(participant)
redis.call('HSET', KEYS[1], ARGV[1], record)
return record
"""

# KEYS: room. ARGV: node.
CLAIM_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], 'owner', ARGV[1])
return redis.call('HGET', KEYS[1], 'owner')
"""

# KEYS: empty, room, order, people. ARGV: id, expected owner ('' for none), node, now.
REASSIGN_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local owner = redis.call('HGET', KEYS[2], 'owner') or ''
if owner ~= ARGV[2] then return owner end
redis.call('HSET', KEYS[2], 'owner', ARGV[3])
if owner ~= '' and redis.call('ZCARD', KEYS[3]) > 0 then
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[2], 'empty_since', ARGV[4])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
end
return ARGV[3]
"""

# KEYS: rooms, empty. ARGV: cutoff, prefix.
SWEEP_SCRIPT = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  local room = ARGV[2] .. 'room:' .. id
  redis.call('DEL', room, room .. ':order', room .. ':people')
  redis.call('SREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return expired
"""


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
        ]

    def _room(self, room_id: str, flat: Sequence[Any]) -> Room | None:
        if not flat:
            return None
        capacity, created_at, empty_since, owner, *records = (_text(v) for v in flat)
        people = (Participant.from_record(json.loads(r)) for r in records)
        return Room(
            id=room_id,
            capacity=int(capacity),
            created_at=float(created_at),
            participants={p.id: p for p in people},
            empty_since=float(empty_since) if empty_since else None,
            owner=owner or None,
        )

    def _snapshot(self, room_id: str, flat: Sequence[Any]) -> Room:
        room = self._room(room_id, flat)
        if room is None:  # the script just wrote it: only a flushed Redis gets here
            raise RuntimeError(f"room {room_id} vanished while being written")
        return room

    @reachable
    async def create(self, capacity: int | None = None, room_id: str | None = None) -> Room:
        capacity = self.limits.check_capacity(capacity)
        room_id = new_room_id() if room_id is None else check_room_id(room_id)
        result = await self._create(
            keys=self._room_keys(room_id),
            args=[room_id, capacity, self.limits.max_rooms, self._clock()],
        )
        if _text(result[0]) == "exhausted":
            raise rooms_exhausted()
        if _text(result[0]) == "created":
            log.info("room created", extra={"room": room_id, "capacity": capacity})
        return self._snapshot(room_id, result[1])

    @reachable
    async def get(self, room_id: str) -> Room | None:
        _, _, room, order, people = self._room_keys(room_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(room, "capacity", "created_at", "empty_since", "owner")
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
        self, room_id: str, name: str, spoken: str, listen: str
    ) -> tuple[Room, Participant]:
        check_room_id(room_id)
        participant = Participant(
            id=new_participant_id(),
            name=name,
            spoken=spoken,
            listen=listen,
            joined_at=self._clock(),
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
            ],
        )
        status = _text(result[0])
        if status == "exhausted":
            raise rooms_exhausted()
        if status == "full":
            raise room_full(int(_text(result[1])))
        return self._snapshot(room_id, result[1]), participant

    @reachable
    async def leave(self, room_id: str, participant_id: str) -> Participant | None:
        _, empty, room, order, people = self._room_keys(room_id)
        record = await self._leave(
            keys=[empty, room, order, people], args=[room_id, participant_id, self._clock()]
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
    ) -> Participant:
        return await self._change(
            room_id, participant_id, {"dub": dub, "original_volume": original_volume}
        )

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
        _, empty, room, order, people = self._room_keys(room_id)
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
