"""TTS benchmark: time to first audio per engine, and cache hit time against raw reads.

Run: ``.venv/bin/python -m bench.tts [--runs N] [--redis-url URL]``. Each cache figure is paired
with a baseline measured in the same run on the same bytes: a raw redis-py GET for the Redis
layer, a plain open-and-read for the file layer.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

from models.cache import FileCache, RedisCache, cache_key, encode_pcm
from models.pool import InferencePool
from models.tts import EspeakEngine, PiperEngine, TtsService, installed_voices
from models.tts.speech import TtsEngine

SENTENCE = "Good morning, can you hear me clearly?"


def summary(samples: list[float]) -> tuple[float, float]:
    """Median and p95 in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


async def timed(fn: Callable[[], Awaitable[object]], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        await fn()
    out: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - started)
    return out


async def engine_rows(runs: int) -> list[str]:
    pool = InferencePool("bench-piper", workers=1, max_queue=4)
    engines: list[TtsEngine] = [PiperEngine(installed_voices(), pool), EspeakEngine()]
    rows = []
    for engine in engines:
        speech = await engine.synthesize(SENTENCE, "en")
        times = await timed(lambda e=engine: e.synthesize(SENTENCE, "en"), runs)  # type: ignore[misc]
        median, p95 = summary(times)
        rtf = statistics.median(times) / speech.duration_s
        rows.append(
            f"| {engine.name} ({speech.voice}) | {speech.duration_s:.2f} s | {median:.1f} ms "
            f"| {p95:.1f} ms | {rtf:.3f} |"
        )
    pool.close()
    return rows


async def cache_rows(runs: int, redis_url: str) -> list[str]:
    espeak = EspeakEngine()
    speech = await espeak.synthesize(SENTENCE, "en")
    meta = {"engine": speech.engine, "voice": speech.voice, "language": speech.language}
    value = encode_pcm(speech.samples, speech.sample_rate, meta)
    key = cache_key("tts", engine="espeak", model=speech.voice, languages=("en",), text=SENTENCE)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        files = FileCache(Path(root), name="tts", max_bytes=1 << 30)
        await files.put(key, value)
        path = files.path_for(key)
        raw_file = await timed(lambda: asyncio.to_thread(path.read_bytes), runs)
        layer_file = await timed(lambda: files.get(key), runs)
        service = TtsService([espeak], cache=files)
        via_service_file = await timed(lambda: service.synthesize(SENTENCE, "en"), runs)
        rows += _pair("file", len(value), raw_file, layer_file, via_service_file)

    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    layer = RedisCache(redis_url, name="tts", ttl_s=600, key_prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url)
    await layer.put(key, value)
    raw_name = prefix + "raw"
    await raw.set(raw_name, value, ex=600)
    raw_redis = await timed(lambda: raw.get(raw_name), runs)
    layer_redis = await timed(lambda: layer.get(key), runs)
    service = TtsService([espeak], cache=layer)
    via_service_redis = await timed(lambda: service.synthesize(SENTENCE, "en"), runs)
    rows += _pair("redis", len(value), raw_redis, layer_redis, via_service_redis)
    await raw.delete(raw_name, layer.redis_key(key))
    await raw.aclose()
    await layer.close()
    return rows


def _pair(
    layer: str, size: int, raw: list[float], cached: list[float], service: list[float]
) -> list[str]:
    base_m, base_p = summary(raw)
    rows = [
        f"| {layer} raw read (baseline) | {size} B | {base_m:.3f} ms | {base_p:.3f} ms | 1.00 |"
    ]
    for label, times in ((f"{layer} cache get", cached), (f"service hit via {layer}", service)):
        median, p95 = summary(times)
        rows.append(
            f"| {label} | {size} B | {median:.3f} ms | {p95:.3f} ms | {median / base_m:.2f} |"
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per engine")
    parser.add_argument("--cache-runs", type=int, default=300, help="timed runs per cache read")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    print(f"Sentence: {SENTENCE!r}\n")
    print("| engine (voice) | audio | median | p95 | real-time factor |")
    print("|---|---|---|---|---|")
    for row in await engine_rows(args.runs):
        print(row)
    print("\n| read | value | median | p95 | ratio to baseline |")
    print("|---|---|---|---|---|")
    for row in await cache_rows(args.cache_runs, args.redis_url):
        print(row)


if __name__ == "__main__":
    asyncio.run(main())
