"""Media nodes in the distributed mode: who is alive, where browsers reach them, how loaded.

Every ``callserver serve`` with ``CALLSERVER_CLUSTER=true`` writes its entry on a heartbeat;
an entry not refreshed within ``expiry_s`` is out, which is how a node that died (``kill -9``,
a lost machine) leaves without saying so. Keys, under ``prefix``: ``nodes`` (a sorted set, node
id -> last heartbeat, wall-clock seconds) and ``node:{id}`` (a hash of the entry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True)
class NodeInfo:
    """One media node's entry."""

    id: str
    #: Where browsers reach this node (its own route or host address).
    url: str
    participants: int = 0
    #: Share of one core this process used since its last heartbeat.
    cpu: float = 0.0
    draining: bool = False
    seen_at: float = 0.0

    def to_fields(self) -> dict[str, str]:
        return {
            "url": self.url,
            "participants": str(self.participants),
            "cpu": f"{self.cpu:.3f}",
            "draining": "1" if self.draining else "0",
            "seen_at": repr(self.seen_at),
        }

    @classmethod
    def from_fields(cls, node_id: str, fields: dict[bytes, bytes]) -> NodeInfo:
        text = {k.decode(): v.decode() for k, v in fields.items()}
        return cls(
            id=node_id,
            url=text["url"],
            participants=int(text.get("participants", "0")),
            cpu=float(text.get("cpu", "0")),
            draining=text.get("draining") == "1",
            seen_at=float(text.get("seen_at", "0")),
        )


class RedisNodeRegistry:
    """The live media nodes, kept in Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "callserver:",
        expiry_s: float = 6.0,
        socket_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.expiry_s = expiry_s
        self._clock = clock
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )

    def _key(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    async def heartbeat(self, node: NodeInfo) -> NodeInfo:
        """Write ``node``'s entry as seen now; returns it with ``seen_at`` set."""
        now = self._clock()
        entry = NodeInfo(node.id, node.url, node.participants, node.cpu, node.draining, now)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(node.id), mapping=entry.to_fields())  # type: ignore[arg-type]
            # The hash outlives its expiry a little, so a late reader still finds what it names.
            pipe.expire(self._key(node.id), max(1, int(self.expiry_s * 3)))
            pipe.zadd(f"{self.prefix}nodes", {node.id: now})
            await pipe.execute()
        return entry

    async def live(self) -> list[NodeInfo]:
        """Nodes whose last heartbeat is within ``expiry_s``, oldest id first."""
        cutoff = self._clock() - self.expiry_s
        found = await self._client.zrangebyscore(f"{self.prefix}nodes", cutoff, "+inf")
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in found]
        if not ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self._key(node_id))
            entries = await pipe.execute()
        return sorted(
            (NodeInfo.from_fields(i, e) for i, e in zip(ids, entries, strict=True) if e),
            key=lambda n: n.id,
        )

    async def remove(self, node_id: str) -> None:
        """Leave the registry (a node that drained and stops)."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(f"{self.prefix}nodes", node_id)
            pipe.delete(self._key(node_id))
            await pipe.execute()

    async def aclose(self) -> None:
        await self._client.aclose()
