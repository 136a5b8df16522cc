"""Layers looked up in order (local file, then shared Redis); a lower hit fills upper layers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from models.cache.base import ByteCache
from models.cache.file import FileCache
from models.cache.redis_cache import RedisCache
from models.cache.settings import CacheSettings
from models.metrics import EngineMetrics

log = logging.getLogger(__name__)


class LayeredCache:
    """Several ByteCache layers behaving as one.

    ``get`` asks each layer in order and copies a hit into the layers before it (a Redis hit
    lands in the node's file cache). A hit in the file layer is not copied to Redis: that would
    be a network write per hit, and the entry reached Redis when it was first made unless Redis
    was down then.
    """

    def __init__(self, layers: Sequence[ByteCache], *, name: str) -> None:
        if not layers:
            raise ValueError("a layered cache needs at least one layer")
        self.layers = list(layers)
        self.name = name

    async def get(self, key: str) -> bytes | None:
        """The first layer's hit, copied into the layers above it."""
        for index, layer in enumerate(self.layers):
            value = await layer.get(key)
            if value is not None:
                if index:
                    await asyncio.gather(*(upper.put(key, value) for upper in self.layers[:index]))
                return value
        return None

    async def put(self, key: str, value: bytes) -> None:
        """Write to every layer at once."""
        await asyncio.gather(*(layer.put(key, value) for layer in self.layers))

    async def close(self) -> None:
        """Close every layer."""
        await asyncio.gather(*(layer.close() for layer in self.layers))


def build_cache(
    settings: CacheSettings, *, name: str, metrics: EngineMetrics | None = None
) -> LayeredCache | None:
    """The cache ``name`` as configured: file and/or Redis layers, or None when both are off."""
    layers: list[ByteCache] = []
    if not settings.cache_enabled:
        return None
    if settings.cache_dir is not None:
        layers.append(
            FileCache(
                settings.cache_dir / name,
                name=name,
                max_bytes=settings.cache_max_bytes,
                evict_to=settings.cache_evict_to,
                probe_interval_s=settings.cache_probe_interval_s,
                max_value_bytes=settings.cache_max_value_bytes,
                metrics=metrics,
            )
        )
    if settings.redis_url:
        layers.append(
            RedisCache(
                settings.redis_url,
                name=name,
                ttl_s=settings.redis_ttl_s,
                socket_timeout_s=settings.redis_socket_timeout_s,
                key_prefix=settings.redis_key_prefix,
                probe_interval_s=settings.cache_probe_interval_s,
                max_value_bytes=settings.cache_max_value_bytes,
                metrics=metrics,
            )
        )
    if not layers:
        log.info("cache disabled", extra={"cache": name})
        return None
    return LayeredCache(layers, name=name)
