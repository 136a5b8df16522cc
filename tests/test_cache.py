"""Caches against a real directory and the real Redis, with each failure the old system hit."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from models.cache import (
    ByteCache,
    CacheSettings,
    FileCache,
    LayeredCache,
    RedisCache,
    build_cache,
    cache_key,
    decode_pcm,
    decode_text,
    encode_pcm,
    encode_text,
    normalize_text,
)
from models.cache.base import CorruptEntry, frame, unframe
from models.cache.keys import is_valid_key
from models.metrics import EngineMetrics
from models.tts import EspeakEngine, TtsService
from tests.conftest import REDIS_URL, free_port, missing_dependency
from tests.redis_helpers import SpareRedis


def events(metrics: EngineMetrics, layer: str, event: str, cache: str = "tts") -> float:
    value = metrics.registry.get_sample_value(
        "callserver_cache_events_total", {"cache": cache, "layer": layer, "event": event}
    )
    return value or 0.0


def key(text: str, engine: str = "espeak") -> str:
    return cache_key("tts", engine=engine, model="en-us", languages=("en",), text=text)


def file_cache(root: Path, metrics: EngineMetrics, max_bytes: int = 1 << 20) -> FileCache:
    return FileCache(root, name="tts", max_bytes=max_bytes, metrics=metrics, probe_interval_s=60)


def disk_usage(root: Path) -> int:
    """Bytes of the cache entries under ``root``."""
    return sum(os.stat(p).st_size for p in glob.glob(f"{root}/*/tts-*"))


def mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        missing_dependency(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system (tmpfs), so writes past it fail with ENOSPC."""
    mount = tmp_path / "full"
    mount_tmpfs(mount, "size=64k")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder writes fail in. As root chmod 0o500 stops nothing, so a read-only tmpfs is
    mounted; as another user chmod is the real thing."""
    path = tmp_path / "ro"
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o500)
        yield path
        path.chmod(0o700)
        return
    mount_tmpfs(path, "ro,size=64k")
    yield path
    subprocess.run(["umount", str(path)], check=False)


# --- keys and values ---------------------------------------------------------------------------
async def test_keys_are_file_names_and_redis_keys(tmp_path: Path, redis_prefix: str) -> None:
    made = key("Hello  world")
    assert made.startswith("tts-") and len(made) == 4 + 64 and is_valid_key(made)
    assert ":" not in made and "/" not in made
    (tmp_path / made).write_bytes(b"x")  # a legal file name
    client = aioredis.Redis.from_url(REDIS_URL)
    await client.set(redis_prefix + made, b"x", ex=10)
    assert await client.get(redis_prefix + made) == b"x"
    await client.aclose()


def test_keys_normalize_text_and_separate_parts() -> None:
    decomposed = "Cafe\u0301  au\n lait "
    assert normalize_text(decomposed) == "Café au lait"
    assert key(decomposed) == key("Café au lait")
    assert key("hello") != key("hello", engine="piper")
    assert key("hello") != cache_key(
        "tts", engine="espeak", model="en-us", languages=("vi",), text="hello"
    )
    assert cache_key("mt", engine="nllb", model="m", languages=("en", "vi"), text="a") != cache_key(
        "mt", engine="nllb", model="m", languages=("vi", "en"), text="a"
    )
    with pytest.raises(ValueError, match="kind"):
        cache_key("tts:", engine="e", model="m", languages=(), text="t")


def test_frame_detects_truncation_and_alteration() -> None:
    framed = frame(b"payload bytes")
    assert unframe(framed) == b"payload bytes"
    for broken in (framed[:-1], framed[:10], framed[:-1] + b"X", b"junk" + framed[4:]):
        with pytest.raises(CorruptEntry):
            unframe(broken)


def test_value_helpers_round_trip() -> None:
    import numpy as np

    samples = np.arange(-500, 500, dtype=np.int16)
    got, rate, meta = decode_pcm(encode_pcm(samples, 48_000, {"voice": "vi"}))
    assert rate == 48_000 and meta == {"voice": "vi"} and np.array_equal(got, samples)
    assert decode_text(encode_text("xin chào")) == "xin chào"
    with pytest.raises(CorruptEntry):
        decode_pcm(b"\x00\x00\x00\x09{not json")
    with pytest.raises(CorruptEntry):
        decode_text(b"\xff\xfe")


# --- file cache ------------------------------------------------------------------------------
async def test_file_cache_round_trip_and_sharding(tmp_path: Path) -> None:
    metrics = EngineMetrics()
    cache = file_cache(tmp_path, metrics)
    k = key("round trip")
    assert await cache.get(k) is None
    await cache.put(k, b"value" * 100)
    assert await cache.get(k) == b"value" * 100
    path = cache.path_for(k)
    assert path.parent.name == k[4:6] and path.parent.parent == tmp_path
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    assert (events(metrics, "file", "miss"), events(metrics, "file", "hit")) == (1, 1)


async def test_corrupt_entry_is_counted_removed_and_regenerated(tmp_path: Path) -> None:
    metrics = EngineMetrics()
    cache = file_cache(tmp_path, metrics)
    service = TtsService([EspeakEngine()], cache=cache, metrics=metrics)
    first = await service.synthesize("corrupt me", "en")
    assert not first.cached
    entry = cache_key(
        "tts", engine="espeak", model=first.voice, languages=("en",), text="corrupt me"
    )
    path = cache.path_for(entry)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    again = await service.synthesize("corrupt me", "en")
    assert not again.cached and events(metrics, "file", "corrupt") == 1
    assert (again.samples == first.samples).all()
    # regenerated entry is whole again
    third = await service.synthesize("corrupt me", "en")
    assert third.cached
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a crash mid-copy
    assert await cache.get(entry) is None
    assert events(metrics, "file", "corrupt") == 2 and not path.exists()


async def test_lru_eviction_keeps_the_bound(tmp_path: Path) -> None:
    metrics = EngineMetrics()
    bound = 20_000
    cache = FileCache(tmp_path, name="tts", max_bytes=bound, evict_to=0.8, metrics=metrics)
    keys = [key(f"entry {i}") for i in range(10)]
    for age, k in enumerate(keys[:8]):
        await cache.put(k, os.urandom(2000))
        os.utime(cache.path_for(k), (1_000_000 + age, 1_000_000 + age))
    assert await cache.get(keys[0]) is not None  # now the most recently used
    for k in keys[8:]:
        await cache.put(k, os.urandom(2000))
    on_disk = disk_usage(tmp_path)
    assert on_disk <= bound and cache.size_bytes == on_disk
    assert events(metrics, "file", "evict") >= 1
    assert cache.path_for(keys[0]).exists(), "recently read entry was evicted"
    assert not cache.path_for(keys[1]).exists(), "least recently used entry survived"
    assert cache.path_for(keys[9]).exists()


async def test_read_only_directory_degrades_to_engine(read_only_dir: Path) -> None:
    metrics = EngineMetrics()
    cache = file_cache(read_only_dir / "tts", metrics)
    assert not cache.probe()
    service = TtsService([EspeakEngine()], cache=cache, metrics=metrics)
    for _ in range(2):
        speech = await service.synthesize("read only", "en")
        assert speech.engine == "espeak" and not speech.cached
    assert events(metrics, "file", "error") >= 1


async def test_cache_path_that_is_a_file_degrades_to_engine(tmp_path: Path) -> None:
    # The unwritable-volume case without root: the cache folder's path is a regular file.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    metrics = EngineMetrics()
    cache = file_cache(blocker, metrics)
    service = TtsService([EspeakEngine()], cache=cache, metrics=metrics)
    speech = await service.synthesize("blocked", "en")
    assert speech.samples.size > 0 and not speech.cached
    assert events(metrics, "file", "error") >= 1
    # further writes skip the broken folder until the probe interval passes
    await cache.put(key("other"), b"data")
    assert events(metrics, "file", "skipped") == 1


async def test_full_disk_degrades_and_leaves_no_partial_files(full_disk: Path) -> None:
    metrics = EngineMetrics()
    cache = file_cache(full_disk, metrics, max_bytes=10 << 20)
    k = key("too big for the disk")
    await cache.put(k, os.urandom(200_000))
    assert events(metrics, "file", "error") == 1
    assert await cache.get(k) is None
    left = [name for _, _, names in os.walk(full_disk) for name in names]
    assert not left, f"partial files left behind: {left}"
    service = TtsService([EspeakEngine()], cache=cache, metrics=metrics)
    speech = await service.synthesize("the disk is full", "en")
    assert speech.samples.size > 0


# --- redis and layers --------------------------------------------------------------------------
async def test_redis_round_trip_ttl_and_corruption(redis_prefix: str) -> None:
    metrics = EngineMetrics()
    cache = RedisCache(REDIS_URL, name="tts", ttl_s=60, key_prefix=redis_prefix, metrics=metrics)
    k = key("redis")
    assert await cache.get(k) is None
    await cache.put(k, b"shared value")
    assert await cache.get(k) == b"shared value"
    client = aioredis.Redis.from_url(REDIS_URL)
    assert 0 < await client.ttl(redis_prefix + k) <= 60
    await client.set(redis_prefix + k, b"garbage")
    assert await cache.get(k) is None
    assert events(metrics, "redis", "corrupt") == 1
    assert await client.exists(redis_prefix + k) == 0
    await client.aclose()
    await cache.close()


async def test_redis_down_degrades_to_engine(tmp_path: Path) -> None:
    metrics = EngineMetrics()
    url = f"redis://127.0.0.1:{free_port()}/0"
    redis_layer = RedisCache(url, name="tts", ttl_s=60, socket_timeout_s=0.2, metrics=metrics)
    k = key("nobody home")
    assert await redis_layer.get(k) is None
    await redis_layer.put(k, b"x")
    assert events(metrics, "redis", "error") == 1
    assert events(metrics, "redis", "bypass") == 1  # the breaker stops paying the timeout
    layered = LayeredCache([file_cache(tmp_path, metrics), redis_layer], name="tts")
    service = TtsService([EspeakEngine()], cache=layered, metrics=metrics)
    assert not (await service.synthesize("redis is down", "en")).cached
    assert (await service.synthesize("redis is down", "en")).cached  # from the file layer
    await layered.close()


async def test_redis_hit_fills_file_layer(tmp_path: Path, redis_prefix: str) -> None:
    metrics = EngineMetrics()
    redis_layer = RedisCache(
        REDIS_URL, name="tts", ttl_s=60, key_prefix=redis_prefix, metrics=metrics
    )
    files = file_cache(tmp_path, metrics)
    layered = LayeredCache([files, redis_layer], name="tts")
    k = key("made on another node")
    await redis_layer.put(k, b"from elsewhere")
    assert await layered.get(k) == b"from elsewhere"
    assert files.path_for(k).exists()
    assert await files.get(k) == b"from elsewhere"
    # a service on a second node with its own folder reuses the first node's speech
    node_a = TtsService(
        [EspeakEngine()],
        cache=LayeredCache([file_cache(tmp_path / "a", metrics), redis_layer], name="tts"),
    )
    node_b = TtsService(
        [EspeakEngine()],
        cache=LayeredCache([file_cache(tmp_path / "b", metrics), redis_layer], name="tts"),
    )
    made = await node_a.synthesize("shared between nodes", "en")
    reused = await node_b.synthesize("shared between nodes", "en")
    assert reused.cached and (reused.samples == made.samples).all()
    await redis_layer.close()


# --- a layer coming back after CALLSERVER_CACHE_PROBE_INTERVAL_S ---------------------------------

# Long enough that the write right after a failure (microseconds later, well under a second on
# a loaded 2-core CI machine) falls inside it; short enough that waiting it out is cheap.
PROBE_S = 2.0
# Waiting for recovery: the interval plus generous slack, yet under the 30 s default, so a
# layer that ignored the configured interval would not come back in time.
RECOVERY_TIMEOUT_S = PROBE_S + 15


async def put_until_stored(cache: ByteCache, k: str, value: bytes) -> None:
    """Write ``value`` until the cache hands it back (a skipped or bypassed layer does not)."""
    async with asyncio.timeout(RECOVERY_TIMEOUT_S):
        while await cache.get(k) != value:
            await cache.put(k, value)
            await asyncio.sleep(0.05)  # polling interval, not synchronisation


async def test_file_layer_comes_back_after_probe_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLSERVER_CACHE_PROBE_INTERVAL_S", str(PROBE_S))
    monkeypatch.setenv("CALLSERVER_CACHE_DIR", str(tmp_path / "cache"))
    metrics = EngineMetrics()
    cache = build_cache(CacheSettings(), name="tts", metrics=metrics)
    assert cache is not None
    (files,) = cache.layers
    assert isinstance(files, FileCache) and files.probe_interval_s == PROBE_S
    # Fault injection: a file where the cache's folder should be.
    (tmp_path / "cache").mkdir()
    blocker = tmp_path / "cache" / "tts"
    blocker.write_text("x")
    k = key("back after the probe interval")
    await cache.put(k, b"first")
    assert events(metrics, "file", "error") == 1
    blocker.unlink()  # the volume is writable again...
    await cache.put(k, b"first")
    assert events(metrics, "file", "skipped") == 1  # ...but not tried before the interval
    assert not files.path_for(k).exists()
    await put_until_stored(cache, k, b"first")
    assert events(metrics, "file", "error") == 1
    assert events(metrics, "file", "write") == 1
    assert files.path_for(k).exists()


async def test_a_folder_that_stays_unwritable_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = EngineMetrics()
    files = FileCache(
        tmp_path / "tts", name="tts", max_bytes=1 << 20, probe_interval_s=0.05, metrics=metrics
    )
    blocker = tmp_path / "tts"
    blocker.write_text("x")  # fault injection: a file where the folder should be
    with caplog.at_level(logging.DEBUG, logger="models.cache.file"):
        for attempt in range(3):  # each after the probe interval: really tried again
            await files.put(key(f"attempt {attempt}"), b"v")
            await asyncio.sleep(0.06)
        blocker.unlink()
        await files.put(key("writable again"), b"v")
    assert events(metrics, "file", "error") == 3  # the alert still sees every failure
    failures = [r for r in caplog.records if r.getMessage() == "file cache write failed"]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "file cache writable again"
    ]


async def test_redis_layer_comes_back_after_probe_interval(
    spare_redis: SpareRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLSERVER_CACHE_PROBE_INTERVAL_S", str(PROBE_S))
    monkeypatch.setenv("CALLSERVER_REDIS_URL", spare_redis.url)
    metrics = EngineMetrics()
    cache = build_cache(CacheSettings(cache_dir=None), name="tts", metrics=metrics)
    assert cache is not None
    (shared,) = cache.layers
    assert isinstance(shared, RedisCache) and shared.probe_interval_s == PROBE_S
    try:
        k = key("redis comes back")
        await cache.put(k, b"before")
        assert await cache.get(k) == b"before"
        await spare_redis.stop()
        assert await cache.get(k) is None
        assert events(metrics, "redis", "error") == 1
        assert await cache.get(k) is None
        assert events(metrics, "redis", "bypass") == 1  # no second timeout paid
        await spare_redis.start()  # empty: it kept nothing on disk
        await put_until_stored(cache, k, b"after")
        assert events(metrics, "redis", "error") == 1
        assert events(metrics, "redis", "write") == 2
    finally:
        await cache.close()
