"""Speech-to-text benchmark: real-time factor, and our engine's overhead over faster-whisper.

Each run times, on every clip, ``await WhisperEngine.transcribe`` (pool hop, checks, language
logic, filters, metrics) and a direct ``WhisperModel.transcribe`` on the very same loaded
model with the same decoding options, alternating which goes first so that noise from other
processes falls on both. The direct call runs on the engine's worker thread too: CTranslate2's
OpenMP threads belong to the calling thread, and two thread teams spinning against each other
on a small machine would distort both figures. The pool hop itself is timed separately.

Run: ``.venv/bin/python -m bench.stt [--runs 7] [--model base]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.stt import SttSettings, WhisperEngine, decode_audio
from models.stt.audio import Audio

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks_stt.md"


def p95(values: list[float]) -> float:
    """95th percentile (linear interpolation)."""
    return float(np.percentile(values, 95))


def direct(model: Any, audio: Audio, settings: SttSettings) -> str:
    """faster-whisper called directly, with the options the engine passes."""
    segments, _ = model.transcribe(
        audio,
        beam_size=settings.beam_size,
        no_speech_threshold=settings.no_speech_threshold,
        log_prob_threshold=settings.log_prob_threshold,
        vad_filter=settings.vad_filter,
        condition_on_previous_text=False,
    )
    return " ".join(s.text.strip() for s in segments)


async def measure(runs: int, model_name: str) -> dict[str, Any]:
    """Times both paths ``runs`` times on each clip; returns the raw seconds."""
    settings = SttSettings(model=model_name)
    engine = WhisperEngine(settings)
    await engine.load()
    model = engine.loaded_model()
    hops = []
    for _ in range(200):
        started = time.perf_counter()
        await engine.pool.run(int)
        hops.append(time.perf_counter() - started)
    clips = [(p.name, decode_audio(p)) for p in sorted(DATA.glob("*.wav"))]
    for _, audio in clips:  # warm-up: first calls allocate buffers in both
        await engine.transcribe(audio)
        await engine.pool.run(direct, model, audio, settings)
    ours: dict[str, list[float]] = {name: [] for name, _ in clips}
    base: dict[str, list[float]] = {name: [] for name, _ in clips}
    # Process CPU seconds (all threads): less disturbed by other jobs than wall time.
    cpu: dict[str, list[float]] = {"ours": [], "base": []}
    for run in range(runs):
        for name, audio in clips:
            order = ("ours", "base") if run % 2 == 0 else ("base", "ours")
            for which in order:
                started = time.perf_counter()
                cpu_started = time.process_time()
                if which == "ours":
                    await engine.transcribe(audio)
                    ours[name].append(time.perf_counter() - started)
                else:
                    await engine.pool.run(direct, model, audio, settings)
                    base[name].append(time.perf_counter() - started)
                cpu[which].append(time.process_time() - cpu_started)
    engine.close()
    return {
        "clips": {name: audio.size / 16_000 for name, audio in clips},
        "ours": ours,
        "base": base,
        "cpu": cpu,
        "info": engine.info(),
        "hop_ms": statistics.median(hops) * 1000,
    }


def report(result: dict[str, Any], runs: int, command: str) -> str:
    """The Markdown table written to docs/benchmarks_stt.md."""
    info = result["info"]
    lines = [
        "# Speech-to-text benchmark",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared with other jobs: expect noise); "
        f"model `{info['model']}` on {info['device']} ({info['compute_type']}), "
        f"beam {info['beam_size']}, {info['cpu_threads']} CPU threads, VAD on; "
        f"{runs} timed runs per clip after one warm-up.",
        "",
        "Baseline: `faster_whisper.WhisperModel.transcribe` called directly on the same loaded "
        "model, same clip and options, on the engine's worker thread, alternating order with "
        f"the engine call. Pool hop alone (empty job): median {result['hop_ms']:.3f} ms.",
        "",
        "| clip | audio s | baseline median s | baseline p95 s | engine median s "
        "| engine p95 s | engine RTF (median) | engine / baseline (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    all_ours: list[float] = []
    all_base: list[float] = []
    for name, seconds in result["clips"].items():
        ours, base = result["ours"][name], result["base"][name]
        all_ours += [t / seconds for t in ours]
        all_base += [t / seconds for t in base]
        lines.append(
            f"| {name.removeprefix('sense_and_sensibility_01_austen_64kb-')} | {seconds:.2f} "
            f"| {statistics.median(base):.3f} | {p95(base):.3f} "
            f"| {statistics.median(ours):.3f} | {p95(ours):.3f} "
            f"| {statistics.median(ours) / seconds:.3f} "
            f"| {statistics.median(ours) / statistics.median(base):.3f} |"
        )
    ratio = statistics.median(all_ours) / statistics.median(all_base)
    lines += [
        "",
        f"All clips, real-time factor (seconds of compute per second of audio): baseline median "
        f"{statistics.median(all_base):.3f} / p95 {p95(all_base):.3f}; engine median "
        f"{statistics.median(all_ours):.3f} / p95 {p95(all_ours):.3f}; "
        f"engine / baseline = **{ratio:.3f}** (goal: within 1.10).",
        "",
        "Process CPU seconds per call, all clips: baseline median "
        f"{statistics.median(result['cpu']['base']):.3f}, engine median "
        f"{statistics.median(result['cpu']['ours']):.3f}; engine / baseline = "
        f"{statistics.median(result['cpu']['ours']) / statistics.median(result['cpu']['base']):.3f}"
        " (CPU time is less disturbed by other jobs on the machine than wall time).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Entry point: ``python -m bench.stt``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--model", default="base")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    command = f".venv/bin/python -m bench.stt --runs {args.runs} --model {args.model}"
    result = asyncio.run(measure(args.runs, args.model))
    text = report(result, args.runs, command)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
