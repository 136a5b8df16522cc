"""Mouth-to-ear latency of translated speech in a call, with the per-stage breakdown.

A speaks real English (the test clips, one utterance each, with silence after); B listens in
Spanish. Mouth-to-ear is measured from the end of speech in A's *sent* audio to the first dub
sample in B's *received* audio, both on this process's clock. The dub cannot start before the
endpointer's trailing silence has passed, so the first loud block at B later than the original
voice's tail is the dub. Stage times come from the server's `latency` events.

Configurations: (a) Whisper base + Apertium + espeak-ng; (b) Whisper base + a random-weight
model with NLLB-200-distilled-600M's exact dimensions (decoding length fixed) + espeak-ng.
Then 1, 2, 4 and 8 concurrent calls with both parties talking (configuration a): p95 latency
and mixer underruns.

Run: .venv/bin/python -m bench.translated_call [--utterances 21] [--configs a a-no-interim b]
[--calls 1 2 4 8] (an empty --configs or --calls skips that part)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from bench.common import CLIPS, ServerProcess, metric, p50, p95
from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.probe import ScriptedCaller, load_wav_48k

#: Block level above which received audio counts as sound (the test clips peak near 10,000).
LOUD = 400.0
#: The original voice's tail reaches B within this after A's speech ends (two network legs).
ORIGINAL_TAIL_S = 0.35
#: Single-call configurations: (a), (a) with interim captions off, (b).
CONFIGS = ("a", "a-no-interim", "b")
SPANISH = [
    "Buenos días a todos, gracias por venir hoy.",
    "El informe estará listo mañana por la tarde.",
    "Podemos hablar del presupuesto la próxima semana.",
]


def speech_end_offset(clip: Pcm16) -> float:
    """Seconds from the clip's start to its last loud 20 ms block."""
    blocks = clip[: clip.size - clip.size % 960].astype(np.float64).reshape(-1, 960)
    loud = np.flatnonzero(np.sqrt(np.mean(blocks**2, axis=1)) > LOUD)
    return (int(loud[-1]) + 1) * 0.02 if loud.size else 0.0


def espeak(text: str, voice: str, folder: Path) -> Pcm16:
    path = folder / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return load_wav_48k(str(path))


class Talk:
    """One utterance sent by ``speaker`` and its arrival, as dub, at ``listener``."""

    def __init__(self, speaker: ScriptedCaller, listener: ScriptedCaller, clip: Pcm16) -> None:
        self.speaker, self.listener, self.clip = speaker, listener, clip
        self.events_before = len(listener.events)

    async def run(self, timeout: float = 60.0) -> tuple[float | None, dict[str, float]]:
        self.speaker.play(self.clip)
        await asyncio.sleep(0.05)
        sent_end = self.speaker.play_started[-1] + speech_end_offset(self.clip)
        deadline = time.monotonic() + timeout
        found: int | None = None
        while time.monotonic() < deadline and found is None:
            await asyncio.sleep(0.1)
            events = self.listener.events
            found = next(
                (
                    i
                    for i in range(self.events_before, len(events))
                    if events[i].get("type") == "latency" and events[i].get("part") != "prefix"
                ),
                None,
            )
        if found is None:
            return None, {}
        latency = self.listener.events[found]
        await asyncio.sleep(0.5)  # the dub's first packets travel to B
        # The latency event leaves the server with the dub's first frame; under load the
        # original voice may still be arriving long after it ended, so look for the dub's onset
        # only from shortly before that event arrived.
        start = max(sent_end + ORIGINAL_TAIL_S, self.listener.event_times[found] - 0.25)
        onset = self.listener.recording.onset_after(start, LOUD)
        stages = {k: float(v) for k, v in latency["stages_ms"].items()}
        return (onset - sent_end if onset is not None else None), stages


async def wait_quiet(caller: ScriptedCaller, quiet_s: float = 0.6, timeout: float = 20.0) -> None:
    """Until what ``caller`` receives has stayed below LOUD for ``quiet_s`` (the dub ended)."""
    deadline = time.monotonic() + timeout
    blocks = round(quiet_s / 0.02)
    while time.monotonic() < deadline:
        recent = caller.recording.blocks[-blocks:]
        if len(recent) == blocks and all(
            float(np.sqrt(np.mean(b.astype(np.float64) ** 2))) < LOUD for b in recent
        ):
            return
        await asyncio.sleep(0.1)


async def pair(
    server: ServerProcess,
    session: aiohttp.ClientSession,
    room: str,
    b_server: ServerProcess | None = None,
) -> tuple[ScriptedCaller, ScriptedCaller]:
    """A (English) and B (Spanish) in ``room``; B through ``b_server`` when given (a cluster's
    other node: a redirect then brings B to the room's node)."""
    a = ScriptedCaller(server.url, session, name="A", spoken="en", listen="en")
    b = ScriptedCaller((b_server or server).url, session, name="B", spoken="es", listen="es")
    await a.join(room)
    await b.join(room)
    await a.start_media()
    await b.start_media()
    return a, b


async def one_call(env: dict[str, str], utterances: int, label: str) -> None:
    server = await ServerProcess.start(
        CALLSERVER_PRELOAD_ENGINES="true", CALLSERVER_CACHE_ENABLED="false", **env
    )
    clips = [load_wav_48k(str(c)) for c in CLIPS]
    silence = np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.int16)
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(8.0)  # engines warm up (models load) before the first utterance
            a, b = await pair(server, session, "bench-translated")
            await asyncio.sleep(1.0)
            m2e: list[float] = []
            stages: dict[str, list[float]] = {}
            for i in range(utterances):
                clip = np.concatenate((clips[i % len(clips)], silence))
                latency, figures = await Talk(a, b, clip).run()
                if latency is not None:
                    m2e.append(latency)
                for name, value in figures.items():
                    stages.setdefault(name, []).append(value / 1000)
                # One turn at a time: B hears the whole dub before A goes on, so each figure
                # is the pipeline's latency, not a queue behind the previous dub.
                await wait_quiet(b)
                await asyncio.sleep(0.5)
            metrics = await (await session.get(server.url + "/metrics")).text()
            await a.close()
            await b.close()
    finally:
        await server.stop()
    print(f"\n## {label}: {len(m2e)} of {utterances} utterances dubbed")
    early = {
        outcome: metric(metrics, f'callserver_early_recognitions_total{{outcome="{outcome}"}}')
        for outcome in ("used", "discarded", "failed")
    }
    print("early recognitions: " + ", ".join(f"{k} {v:.0f}" for k, v in early.items()))
    if m2e:
        print(f"mouth-to-ear (B's received audio): p50 {p50(m2e):.2f} s, p95 {p95(m2e):.2f} s")
    print("| stage | p50 ms | p95 ms |\n|---|---|---|")
    for name in (
        "endpoint",
        "recognize",
        "translate",
        "synthesize",
        "first_dub_frame",
        "mouth_to_ear",
    ):
        values = stages.get(name, [])
        if values:
            print(f"| {name} | {p50(values) * 1000:.0f} | {p95(values) * 1000:.0f} |")


async def both_talking(
    pairs: list[tuple[ScriptedCaller, ScriptedCaller]], spanish: list[Pcm16], seconds: float
) -> list[float]:
    """Every pair talks in turns for ``seconds``, A in English and B in Spanish; the
    mouth-to-ear latency of every dub heard."""
    english = [load_wav_48k(str(c)) for c in CLIPS]
    silence = np.zeros(int(2.0 * SAMPLE_RATE), dtype=np.int16)
    latencies: list[float] = []

    async def talk(
        speaker: ScriptedCaller, listener: ScriptedCaller, clips: list[Pcm16], offset: float
    ) -> None:
        await asyncio.sleep(offset)
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            clip = np.concatenate((clips[i % len(clips)], silence))
            latency, _ = await Talk(speaker, listener, clip).run(timeout=30)
            if latency is not None:
                latencies.append(latency)
            # Turn-taking, as people do: the listener hears the dub out first.
            await wait_quiet(listener)
            i += 1

    await asyncio.gather(
        *(talk(a, b, english, n * 0.7) for n, (a, b) in enumerate(pairs)),
        *(talk(b, a, spanish, n * 0.7 + 3.0) for n, (a, b) in enumerate(pairs)),
    )
    return latencies


async def concurrent(
    calls: int, env: dict[str, str], spanish: list[Pcm16], seconds: float
) -> dict[str, float]:
    server = await ServerProcess.start(
        CALLSERVER_PRELOAD_ENGINES="true", CALLSERVER_CACHE_ENABLED="false", **env
    )
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(8.0)
            pairs = [await pair(server, session, f"bench-conc-{i:02d}") for i in range(calls)]
            before = await (await session.get(server.url + "/metrics")).text()
            latencies = await both_talking(pairs, spanish, seconds)
            after = await (await session.get(server.url + "/metrics")).text()
            for a, b in pairs:
                await a.close()
                await b.close()
    finally:
        await server.stop()

    def delta(name: str) -> float:
        return metric(after, name) - metric(before, name)

    return {
        "calls": calls,
        "dubbed": len(latencies),
        "p50": p50(latencies) if latencies else float("nan"),
        "p95": p95(latencies) if latencies else float("nan"),
        "underruns": delta("callserver_mixer_underruns_total"),
        "mixed": delta("callserver_mixed_frames_total"),
        "dropped": delta('callserver_utterances_total{outcome="dropped_backlog"}'),
        "skipped": delta("callserver_dub_clips_skipped_total"),
    }


async def main(utterances: int, levels: list[int], seconds: float, configs: list[str]) -> None:
    from models.mt.synthetic import NLLB_600M, cached_model

    apertium = {"CALLSERVER_MT_ENGINES": "apertium"}
    model = await asyncio.to_thread(cached_model, NLLB_600M)
    nllb = {
        "CALLSERVER_MT_ENGINES": "nllb",
        "CALLSERVER_MT_MODEL_PATH": str(model.model_dir),
        "CALLSERVER_MT_TOKENIZER_PATH": str(model.tokenizer_path),
        "CALLSERVER_MT_MIN_DECODING_LENGTH": "24",
        "CALLSERVER_MT_MAX_DECODING_LENGTH": "24",
    }
    if "a" in configs:
        await one_call(apertium, utterances, "(a) Whisper base + Apertium + espeak-ng")
    if "a-no-interim" in configs:
        await one_call(
            {**apertium, "CALLSERVER_PIPELINE_INTERIM_CAPTIONS": "false"},
            utterances,
            "(a') as (a), interim captions off",
        )
    if "b" in configs:
        await one_call(nllb, utterances, "(b) Whisper base + NLLB-600M-shaped model + espeak-ng")
    if not levels:
        return
    with tempfile.TemporaryDirectory() as tmp:
        spanish = [espeak(text, "es", Path(tmp)) for text in SPANISH]
    print("\n## concurrent calls, both parties talking (configuration a)")
    print(
        "| calls | utterances dubbed | p50 s | p95 s | underruns | underrun share "
        "| dropped (backlog) | dubs skipped |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for calls in levels:
        r = await concurrent(calls, apertium, spanish, seconds)
        share = r["underruns"] / r["mixed"] * 100 if r["mixed"] else 0.0
        print(
            f"| {calls} | {r['dubbed']:.0f} | {r['p50']:.2f} | {r['p95']:.2f} "
            f"| {r['underruns']:.0f} | {share:.2f}% | {r['dropped']:.0f} | {r['skipped']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=21)
    parser.add_argument(
        "--configs",
        nargs="*",
        choices=CONFIGS,
        default=list(CONFIGS),
        help="single-call configurations to run (none: only the concurrent calls)",
    )
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    asyncio.run(main(args.utterances, args.calls, args.seconds, args.configs))
