"""The transcript store of the distributed mode: each room's final captions in Redis.

Any node answers a room's transcript download, and the transcript outlives the node that held
the call. The keys (under ``prefix``), all with the same expiry:

- ``transcript:{room}``: a list of utterance ids in the order they arrived (the oldest is
  dropped past ``max_entries``);
- ``transcript:{room}:entries``: a hash, utterance id -> the entry as JSON;
- ``transcript:{room}:meta``: a hash with ``origin`` (the time exports count from) and
  ``dropped``.

An append is one Lua script, so two nodes writing one room cannot interleave a push and a trim.
A transcript is deleted when its room expires (the node whose sweep expired the room discards
it); its expiry, refreshed at every entry, only bounds how long one whose delete never came
(a node stopped between the two) stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callserver.pipeline.transcript import (
    DEFAULT_MAX_ENTRIES,
    TranscriptEntry,
    TranscriptSnapshot,
    TranscriptUnavailable,
)

log = logging.getLogger(__name__)

# KEYS: order, entries, meta. ARGV: utterance id, entry JSON, start, now, max_entries, ttl_ms.
# Returns {dropped now, dropped in all}. The origin is compared as a number but stored as the
# caller's text: Lua's tostring keeps 14 digits, which would round a time.time() value.
APPEND_SCRIPT = """
redis.call('HSETNX', KEYS[3], 'origin', ARGV[4])
if tonumber(ARGV[3]) < tonumber(redis.call('HGET', KEYS[3], 'origin')) then
  redis.call('HSET', KEYS[3], 'origin', ARGV[3])
end
if redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
local dropped = 0
while redis.call('LLEN', KEYS[1]) > tonumber(ARGV[5]) do
  redis.call('HDEL', KEYS[2], redis.call('LPOP', KEYS[1]))
  dropped = dropped + 1
end
local total = redis.call('HINCRBY', KEYS[3], 'dropped', dropped)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
return {dropped, total}
"""

#: Seconds ``aclose`` waits for entries still queued to be written.
CLOSE_TIMEOUT_S = 5.0

P = ParamSpec("P")
R = TypeVar("R")


def reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A Redis that does not answer becomes ``TranscriptUnavailable`` (never a traceback)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise TranscriptUnavailable(f"transcript store unreachable: {exc!r}") from exc

    return wrapper


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisTranscriptStore:
    """``TranscriptStore`` in Redis; every node sharing the Redis and ``prefix`` sees one state.

    ``record`` queues the entry for one writer task, so the pipeline never waits on Redis and
    entries reach it in the order the pipeline finished them. What cannot be written (Redis
    down, or ``max_pending`` entries already waiting) is logged and reported to ``on_lost``
    with the reason (``unreachable``, ``backlog``, ``error``); the call goes on.
    """

    def __init__(
        self,
        url: str,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = 86_400.0,
        prefix: str = "callserver:",
        max_pending: int = 1000,
        socket_timeout_s: float = 2.0,
        on_lost: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._on_lost = on_lost
        self._clock = clock
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        self._append = self._client.register_script(APPEND_SCRIPT)
        self._pending: asyncio.Queue[tuple[str, TranscriptEntry]] = asyncio.Queue(max_pending)
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def _keys(self, room_id: str) -> list[str]:
        order = f"{self.prefix}transcript:{room_id}"
        return [order, f"{order}:entries", f"{order}:meta"]

    def record(self, room_id: str, entry: TranscriptEntry) -> None:
        if self._closed:
            self._lose("closed", room_id, entry)
            return
        try:
            self._pending.put_nowait((room_id, entry))
        except asyncio.QueueFull:
            self._lose("backlog", room_id, entry)
            return
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    def _lose(self, reason: str, room_id: str, entry: TranscriptEntry, error: str = "") -> None:
        log.warning(
            "transcript entry lost",
            extra={
                "room": room_id,
                "utterance": entry.utterance_id,
                "reason": reason,
                "error": error,
            },
        )
        self._on_lost(reason)

    async def _write_queued(self) -> None:
        while True:
            room_id, entry = await self._pending.get()
            try:
                await self.append(room_id, entry)
            except TranscriptUnavailable as exc:
                self._lose("unreachable", room_id, entry, str(exc))
            except Exception as exc:  # a bug must not end the writer: the next entries still go
                log.exception("transcript write failed", extra={"room": room_id})
                self._lose("error", room_id, entry, repr(exc))
            finally:
                self._pending.task_done()

    @reachable
    async def append(self, room_id: str, entry: TranscriptEntry) -> None:
        dropped, total = await self._append(
            keys=self._keys(room_id),
            args=[
                entry.utterance_id,
                json.dumps(entry.to_record()),
                repr(entry.start),
                repr(self._clock()),
                self.max_entries,
                max(1, round(self.ttl_s * 1000)),
            ],
        )
        # Once per thousand drops, as the in-process transcript logs it.
        if int(dropped) and int(total) % 1000 == 1:
            log.info(
                "transcript full, dropping oldest entries",
                extra={"room": room_id, "dropped": int(total)},
            )

    @reachable
    async def read(self, room_id: str) -> TranscriptSnapshot | None:
        order, entries, meta = self._keys(room_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.lrange(order, 0, -1)
            pipe.hgetall(entries)
            pipe.hget(meta, "origin")
            ids, records, origin = await pipe.execute()
        if origin is None:
            return None
        by_id = {_text(k): v for k, v in records.items()}
        found = (by_id.get(_text(i)) for i in ids)
        kept = [TranscriptEntry.from_record(json.loads(r)) for r in found if r is not None]
        # Stable, so entries that start together keep their arrival order, as in memory.
        kept.sort(key=lambda e: (e.start, e.end))
        return TranscriptSnapshot(room_id, float(_text(origin)), tuple(kept))

    @reachable
    async def discard(self, room_id: str) -> None:
        if await self._client.delete(*self._keys(room_id)):
            log.info("transcript discarded", extra={"room": room_id})

    async def flush(self) -> None:
        await self._pending.join()

    async def aclose(self) -> None:
        self._closed = True
        if self._writer is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._pending.join()
            except TimeoutError:
                log.warning(
                    "transcript entries not written at close",
                    extra={"pending": self._pending.qsize()},
                )
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._client.aclose()
