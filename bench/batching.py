"""Recognition throughput of one inference worker at batch 1, 2, 4, 8 against one at a time.

A burst of live utterances (bench.stt_live's 30 Piper sentences and the three narrated clips,
English) is queued at once on a real Redis, as many rooms' speakers would queue them; one
worker (``callserver.worker.Worker`` with the in-process engines, its default two slots) takes
them ``--batch`` at a time and answers each. Measured per configuration: utterances per second
until the last answer, and each utterance's time from queueing to answer (p50/p95).

Baselines in the same run: the same engine one utterance at a time with no queue (its own
``transcribe_sync``, live), and raw faster-whisper on the same loaded model (its ``transcribe``,
declared language, greedy, no timestamps: Whisper's full window). Configurations alternate
between runs so drift in the machine's speed spreads over all of them.

Run: ``.venv/bin/python -m bench.batching [--runs 2] [--batch 1 2 4 8] [--step 1 5]
[--device auto]``. Needs Redis on 127.0.0.1:6379 (``scripts/ensure-redis.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry

from bench.common import p50, p95
from bench.stt_live import baseline, corpus
from callserver.engines import EngineSet
from callserver.worker import Worker
from models.metrics import EngineMetrics
from models.remote.queue import JobQueue
from models.stt import SttSettings, WhisperEngine
from models.stt.audio import Audio
from models.wire import recognition_to_fields, transcript_from_fields

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


async def warm_engines(audios: list[Audio], step_s: float, device: str) -> EngineSet:
    """The worker's engines for one window step, loaded and past their first-call costs."""
    os.environ["CALLSERVER_STT_LIVE_WINDOW_STEP_S"] = str(step_s)
    os.environ["CALLSERVER_STT_DEVICE"] = device
    engines = EngineSet(EngineMetrics(CollectorRegistry()))
    await engines.warm_up()
    stt = await engines.stt()
    await stt.transcribe(audios[0], "en", None, True)
    return engines


async def burst(
    engines: EngineSet, audios: list[Audio], batch: int
) -> tuple[float, list[float], list[str]]:
    """(seconds until every answer, per-utterance queue-to-answer seconds, texts)."""
    prefix = f"bench-batching-{secrets.token_hex(4)}:"
    worker_queue = JobQueue(REDIS_URL, prefix=prefix)
    node_queue = JobQueue(REDIS_URL, prefix=prefix)
    worker = Worker(engines, worker_queue, "bench-worker", batch_size=batch)
    submitted: dict[str, float] = {}
    started = time.perf_counter()
    for audio in audios:
        job = await node_queue.submit(
            "stt", recognition_to_fields(audio, "en", None, True), "bench", 600
        )
        submitted[job] = time.perf_counter()
    working = asyncio.create_task(worker.run())
    answered: dict[str, float] = {}
    texts: dict[str, str] = {}
    after = "0-0"
    while len(answered) < len(audios):
        after, found = await node_queue.results("bench", after=after, block_ms=100)
        for job, fields in found:
            answered.setdefault(job, time.perf_counter())
            texts[job] = transcript_from_fields(fields).text
    elapsed = time.perf_counter() - started
    worker.stop()
    await working
    for queue in (worker_queue, node_queue):
        client: Any = queue._client  # the bench removes its own keys
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await queue.aclose()
    return elapsed, [answered[j] - submitted[j] for j in submitted], [texts[j] for j in submitted]


async def one_at_a_time(audios: list[Audio], step_s: float, device: str) -> tuple[float, float]:
    """(seconds for the engine alone, seconds for raw faster-whisper), same loaded model."""
    engine = WhisperEngine(SttSettings(live_window_step_s=step_s, device=device))
    await engine.load()
    model = engine.loaded_model()
    await engine.pool.run(engine.transcribe_sync, audios[0], "en", None, True)
    started = time.perf_counter()
    for audio in audios:
        await engine.pool.run(engine.transcribe_sync, audio, "en", None, True)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    for audio in audios:
        await engine.pool.run(baseline, model, audio, engine.settings.live_beam_size)
    raw = time.perf_counter() - started
    engine.close()
    return ours, raw


async def measure(runs: int, batches: list[int], steps: list[float], device: str) -> dict[str, Any]:
    items = await corpus()
    audios = [audio for _, audio in items]
    rows: dict[str, dict[str, list[float]]] = {}
    texts: dict[str, list[str]] = {}
    for run in range(runs):
        for step in steps:
            ours, raw = await one_at_a_time(audios, step, device)
            for name, seconds in (("engine alone", ours), ("faster-whisper", raw)):
                row = rows.setdefault(f"{name}, step {step:g} s", {"rate": [], "lat": []})
                row["rate"].append(len(audios) / seconds)
            engines = await warm_engines(audios, step, device)
            for batch in batches if run % 2 == 0 else batches[::-1]:
                elapsed, latencies, said = await burst(engines, audios, batch)
                name = f"worker, batch {batch}, step {step:g} s"
                row = rows.setdefault(name, {"rate": [], "lat": []})
                row["rate"].append(len(audios) / elapsed)
                row["lat"].extend(latencies)
                texts.setdefault(f"{batch}/{step}", said)
                # Progress, so a run cut short by a time limit still says what it measured.
                print(f"{name}: {len(audios) / elapsed:.2f} utterances/s", file=sys.stderr)
            await engines.close()
    return {
        "rows": rows,
        "texts": texts,
        "utterances": len(audios),
        "audio_s": sum(a.size for a in audios) / 16_000,
    }


def report(result: dict[str, Any], command: str) -> str:
    """Markdown for docs/benchmarks.md."""
    rows = result["rows"]
    base_name = next(name for name in rows if name.startswith("engine alone"))
    base = p50(rows[base_name]["rate"])
    lines = [
        f"Command: `{command}`. Machine: {platform.machine()}, {os.cpu_count()} CPUs. "
        f"A burst of {result['utterances']} live utterances ({result['audio_s']:.0f} s of "
        "speech) queued at once; throughput is the median over runs.",
        "",
        "| configuration | utterances/s | vs engine alone | vs worker at batch 1 "
        "| queue to answer p50 / p95 (s) |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        rate = p50(row["rate"])
        lat = row["lat"]
        latency = f"{p50(lat):.2f} / {p95(lat):.2f}" if lat else "-"
        one = rows.get(re.sub(r"batch \d+", "batch 1", name)) if lat else None
        versus = f"{rate / p50(one['rate']):.2f}" if one else "-"
        lines.append(f"| {name} | {rate:.2f} | {rate / base:.2f} | {versus} | {latency} |")
    variants = {tuple(t) for t in result["texts"].values()}
    lines += ["", f"Distinct transcript sets across worker configurations: {len(variants)}."]
    return "\n".join(lines)


def main() -> None:
    """Entry point: ``python -m bench.batching``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--step", type=float, nargs="+", default=[1.0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    command = (
        f"python -m bench.batching --runs {args.runs} --batch {' '.join(map(str, args.batch))} "
        f"--step {' '.join(f'{s:g}' for s in args.step)} --device {args.device}"
    )
    result = asyncio.run(measure(args.runs, args.batch, args.step, args.device))
    print(report(result, command))


if __name__ == "__main__":
    main()
