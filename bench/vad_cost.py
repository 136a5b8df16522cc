"""What voice detection costs per speaker, and whether batching or running inline is cheaper.

Each speaker's 20 ms frames go through the 48 to 16 kHz down-sampler and Silero (one ONNX run
per 32 ms window, the speaker's own recurrent state). Measured on one thread:

* the baseline: raw ONNX Runtime, one ``session.run`` per window with fresh arrays;
* ours per window (``SileroVad.push``) and per 20 ms frame with the down-sampler;
* several consecutive windows of one speaker in one run (the model's ``seq_len`` axis, what a
  speaker's backlog could use): the recurrent state is batch 1 in this model, so windows of
  different speakers cannot share a run;
* the hop to the detection thread (``InferencePool.run``) against calling it inline.

Run: .venv/bin/python -m bench.vad_cost [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import speech
from callserver.media.frames import FRAME_SAMPLES, PcmFrame
from callserver.pipeline.resample import Downsample
from callserver.pipeline.vad import CONTEXT_SAMPLES, WINDOW_SAMPLES, SileroVad, load_silero_model
from models.pool import InferencePool

WINDOWS_PER_S = 16_000 / WINDOW_SAMPLES


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    fn()  # warm
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main(seconds: float) -> None:
    clip = speech()
    frames = [
        PcmFrame(samples=clip[i : i + FRAME_SAMPLES].copy())
        for i in range(
            0, int(min(seconds, clip.size / 48_000) * 48_000) - FRAME_SAMPLES, FRAME_SAMPLES
        )
    ]
    model = load_silero_model()
    session = model._session  # the baseline calls ONNX Runtime itself
    window = np.zeros(WINDOW_SAMPLES + CONTEXT_SAMPLES, dtype=np.float32)[np.newaxis, :]
    state = np.zeros((1, 1, 128), dtype=np.float32)

    raw = per_call_us(_runner(session, window, state), 2000)
    vad = SileroVad(model)
    samples16 = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    ours_window = per_call_us(lambda: vad.push(samples16), 2000)

    down, detector = Downsample(), SileroVad(model)
    start = time.perf_counter()
    for frame in frames:
        for speech_frame in down.process(frame):
            detector.push(speech_frame.samples)
    frame_us = (time.perf_counter() - start) / len(frames) * 1e6

    print(f"audio: {len(frames) * 0.02:.0f} s of speech in 20 ms frames\n")
    print("| what | per call | per speaker, % of a core |")
    print("|---|---|---|")
    row("raw ONNX Runtime, one 32 ms window (baseline)", raw, raw * WINDOWS_PER_S)
    row(
        f"SileroVad.push, one window ({ours_window / raw:.2f}x)",
        ours_window,
        ours_window * WINDOWS_PER_S,
    )
    row("down-sample + detect, one 20 ms frame", frame_us, frame_us * 50)
    for n in (2, 4, 8):
        batch = np.zeros((n, WINDOW_SAMPLES + CONTEXT_SAMPLES), dtype=np.float32)
        us = per_call_us(_runner(session, batch, state), 500)
        row(f"{n} windows of one speaker in one run ({us / n / raw:.2f}x a window)", us, None)
    hop, inline = asyncio.run(_hops())
    row("hop to the detection thread and back, empty job", hop, hop * 50)
    row("the same empty call inline", inline, None)


def row(what: str, us: float, us_per_s: float | None) -> None:
    share = "" if us_per_s is None else f"{us_per_s / 1e4:.2f}%"
    print(f"| {what} | {us:.1f} us | {share} |")


def _runner(session: Any, batch: np.ndarray, state: np.ndarray) -> Callable[[], object]:
    def run() -> object:
        return session.run(None, {"input": batch, "h": state, "c": state})

    return run


def _nothing() -> None:
    return None


async def _hops(calls: int = 2000) -> tuple[float, float]:
    pool = InferencePool("vad", workers=1, max_queue=10_000)
    start = time.perf_counter()
    for _ in range(calls):
        await pool.run(_nothing)
    hop = (time.perf_counter() - start) / calls * 1e6
    start = time.perf_counter()
    for _ in range(calls):
        _nothing()
    return hop, (time.perf_counter() - start) / calls * 1e6


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    main(parser.parse_args().seconds)
