"""Cache options, settable as ``CALLSERVER_<NAME>``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from models.env import EnvSettings


class CacheSettings(EnvSettings):
    """Where synthesized audio and translations are cached, and how much of it."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_", extra="ignore", frozen=True)

    cache_enabled: bool = Field(
        True,
        description="Cache synthesized speech and translations. Off: every request runs the "
        "engines (benchmarks, debugging).",
    )
    cache_dir: Path | None = Field(
        default_factory=lambda: Path.home() / ".cache" / "callserver" / "speech",
        description="Folder of the local file cache (sharded into 256 subfolders). "
        "None disables the file layer.",
    )
    cache_max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=64 * 1024,
        description="Size bound of the file cache; least recently used entries are evicted "
        "past it.",
    )
    cache_evict_to: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Eviction stops once the file cache is below this fraction of its bound, "
        "so a full cache does not evict on every write.",
    )
    cache_probe_interval_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between re-checks of a cache layer found unwritable or down.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL of the cache shared by all nodes, e.g. redis://cache:6379/0. "
        "None: file layer only.",
    )
    redis_ttl_s: int = Field(
        7 * 24 * 3600, ge=1, description="Seconds a Redis cache entry lives after it is written."
    )
    redis_socket_timeout_s: float = Field(
        0.25,
        gt=0,
        description="Connect and read timeout for Redis; short, because a slow cache must not "
        "delay speech.",
    )
    redis_key_prefix: str = Field(
        "callserver-",
        pattern=r"^[A-Za-z0-9_.-]{0,64}$",
        description="Prefix of every Redis key (lets several deployments share one Redis).",
    )
    cache_max_value_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest value stored in a cache."
    )
