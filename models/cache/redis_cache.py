"""The Redis layer: one cache shared by every node, with short timeouts and a circuit breaker.

A Redis that is down or slow must cost a request at most one short timeout: after a failure
the layer is bypassed for ``probe_interval_s`` and then tried again.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from models.cache.base import CorruptEntry, frame, unframe
from models.cache.keys import is_valid_key
from models.metrics import EngineMetrics

log = logging.getLogger(__name__)

LAYER = "redis"


class RedisCache:
    """The shared layer of a cache named ``name``; entries expire ``ttl_s`` after writing."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        ttl_s: int,
        socket_timeout_s: float = 0.25,
        key_prefix: str = "callserver-",
        probe_interval_s: float = 30.0,
        max_value_bytes: int = 16 * 1024 * 1024,
        metrics: EngineMetrics | None = None,
    ) -> None:
        if ttl_s < 1 or socket_timeout_s <= 0:
            raise ValueError("ttl_s must be >= 1 and socket_timeout_s > 0")
        self.name = name
        self.ttl_s = ttl_s
        self.key_prefix = key_prefix
        self.probe_interval_s = probe_interval_s
        self.max_value_bytes = max_value_bytes
        self._metrics = metrics
        self._down_until = 0.0
        # No retries inside redis-py: the breaker below decides when to try again.
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )

    def redis_key(self, key: str) -> str:
        """The Redis key an entry is stored under."""
        if not is_valid_key(key):
            raise ValueError(f"invalid cache key {key!r}")
        return self.key_prefix + key

    async def get(self, key: str) -> bytes | None:
        """The value under ``key`` or None (miss, Redis unavailable, corrupt entry)."""
        name = self.redis_key(key)
        if self._bypassed():
            return None
        try:
            data = await self._client.get(name)
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail("get", key, exc)
            return None
        if data is None:
            self._count("miss")
            return None
        try:
            if not isinstance(data, bytes):
                raise CorruptEntry(f"expected bytes, got {type(data).__name__}")
            payload = unframe(data)
        except CorruptEntry as exc:
            self._count("corrupt")
            log.warning(
                "corrupt cache entry removed",
                extra={"cache": self.name, "layer": LAYER, "key": key, "reason": str(exc)},
            )
            try:
                await self._client.delete(name)
            except (RedisError, OSError, TimeoutError) as del_exc:
                self._fail("delete", key, del_exc)
            return None
        self._count("hit")
        return payload

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` with the TTL; failures are logged and counted."""
        name = self.redis_key(key)
        if len(value) > self.max_value_bytes:
            self._count("too_large")
            return
        if self._bypassed():
            return
        try:
            await self._client.set(name, frame(value), ex=self.ttl_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail("set", key, exc)
            return
        self._count("write")

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def _bypassed(self) -> bool:
        if time.monotonic() < self._down_until:
            self._count("bypass")
            return True
        return False

    def _fail(self, operation: str, key: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.probe_interval_s
        self._count("error")
        log.warning(
            "redis cache %s failed; bypassing it for %.0f s",
            operation,
            self.probe_interval_s,
            extra={
                "cache": self.name,
                "layer": LAYER,
                "key": key,
                "error": f"{type(exc).__name__}: {exc}",
            },
        )

    def _count(self, event: str) -> None:
        if self._metrics is not None:
            self._metrics.cache.labels(cache=self.name, layer=LAYER, event=event).inc()
