"""What a listener's dub queue adds in a monologue, and what catching up costs in words.

The long-form speech's sentences (``bench.long_form_speech``) are translated to Spanish and
synthesized as in a call (Apertium + espeak-ng). Each sentence's dub is handed to one
listener's real ``DubPlayer`` ``--latency`` seconds after the sentence ends (recognition,
translation and synthesis without any queue), on a simulated 20 ms clock, under each policy:

- ``wait``: first in, first out at natural speed (catch-up off);
- ``catch-up from B s to R``: past B seconds of backlog the queue plays faster, up to R times,
  pitch kept (``callserver.media.tempo``).

Per policy: sentence end to the dub's first frame (p50 / p95), the queue's share of it (the
wait behind earlier dubs), and the word error rate of Whisper (base, Spanish) on what the
listener heard of each dub, against the Spanish text, as a ratio to the ``wait`` row's.

Run: ``.venv/bin/python -m bench.dub_pace``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.common import p50, p95
from bench.long_form_speech import build, to_16k
from callserver.media.dub import DubClip, DubPlayer, DubSettings
from callserver.media.frames import FRAME_MS, SAMPLE_RATE, Pcm16, silence
from models.mt.apertium import ApertiumTranslator
from models.mt.settings import MtSettings
from models.stt import SttSettings, WhisperEngine
from models.stt.score import wer
from models.tts.espeak import EspeakEngine

log = logging.getLogger(__name__)

#: Catch-up off: the backlog never reaches these.
NO_CATCH_UP = DubSettings(speedup_backlog_s=1e6, speedup_release_s=1e6, skip_backlog_s=1e6)


def catch_up(backlog_s: float, rate: float) -> DubSettings:
    """The player's catch-up from ``backlog_s`` (released at half of it) up to ``rate``."""
    return DubSettings(
        speedup_backlog_s=backlog_s,
        speedup_release_s=backlog_s / 2,
        max_speedup=rate,
        skip_backlog_s=1e6,
    )


@dataclass(frozen=True)
class Dub:
    """One sentence's dub: its Spanish text and audio, and when the sentence was said (s)."""

    text: str
    samples: Pcm16
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Heard:
    """What one policy did to the monologue."""

    starts: list[float]  # first frame of each dub, seconds into the speech
    rates: list[float]  # the player's rate on every frame a dub played
    audio: list[Pcm16]  # what the listener heard of each dub


def play(dubs: list[Dub], latency_s: float, dub: DubSettings) -> Heard:
    """The dubs through one listener's player on a simulated clock."""
    player = DubPlayer(dub)
    starts: dict[int, float] = {}
    rates: list[float] = []
    frames: list[Pcm16] = []
    marks: list[int] = []  # frame index where each dub started
    step = FRAME_MS / 1000
    ready = [d.end_s + latency_s for d in dubs]
    queued = 0
    tick = 0
    end = ready[-1] + sum(d.samples.size for d in dubs) / SAMPLE_RATE + 1.0
    while tick * step < end:
        now = tick * step
        while queued < len(dubs) and ready[queued] <= now:

            def first(clip: DubClip, at: float, index: int = queued) -> None:
                starts[index] = at
                marks.append(len(frames))

            player.enqueue(DubClip(str(queued), "a", dubs[queued].samples, first))
            queued += 1
        frame, _ = player.next_frame(now)
        if frame is not None:
            rates.append(player.rate)
        frames.append(silence() if frame is None else frame)
        tick += 1
    stream = np.concatenate(frames)
    size = frames[0].size
    bounds = [m * size for m in marks] + [stream.size]
    audio = [stream[bounds[i] : bounds[i + 1]] for i in range(len(dubs))]
    return Heard([starts[i] for i in range(len(dubs))], rates, audio)


async def dubs_of_speech(model: Any) -> list[Dub]:
    speech = await build(model)
    mt = ApertiumTranslator(MtSettings())
    tts = EspeakEngine()
    out = []
    for sentence in speech.sentences:
        text = await mt.translate(sentence.text, "en", "es")
        voiced = await tts.synthesize(text, "es")
        out.append(Dub(text, voiced.samples, sentence.start_s, sentence.end_s))
    mt.close()
    return out


def words_heard(model: Any, heard: Heard) -> list[str]:
    out = []
    for pcm in heard.audio:
        segments, _ = model.transcribe(to_16k(pcm), language="es", beam_size=5)
        out.append(" ".join(s.text for s in segments))
        log.debug("heard %r", out[-1])
    return out


async def main(latency_s: float, backlogs: list[float], rates: list[float]) -> None:
    engine = WhisperEngine(SttSettings())
    model = engine.loaded_model()
    dubs = await dubs_of_speech(model)
    refs = [d.text for d in dubs]
    ratio = [d.samples.size / SAMPLE_RATE / (d.end_s - d.start_s) for d in dubs]
    print(f"## Dub pacing: {len(dubs)} sentences, dubs ready {latency_s:.2f} s after each end\n")
    print(
        f"Dub length / sentence length: p50 {p50(ratio):.2f}, max {max(ratio):.2f}; "
        f"gap between sentences {dubs[1].start_s - dubs[0].end_s:.1f} s\n"
    )
    print(
        "| policy | sentence end to dub p50 / p95 s | queue wait p50 / p95 s "
        "| dub time played faster | WER of the dubs heard (Whisper base) | WER / wait's |"
    )
    print("|---|---|---|---|---|---|")
    policies: list[tuple[str, DubSettings]] = [("wait", NO_CATCH_UP)]
    policies += [
        (f"catch-up from {b:g} s to {r:g}x", catch_up(b, r)) for b in backlogs for r in rates
    ]
    baseline = None
    for label, dub in policies:
        heard = play(dubs, latency_s, dub)
        m2e = [start - d.end_s for start, d in zip(heard.starts, dubs, strict=True)]
        waits = [t - latency_s for t in m2e]
        error = wer(refs, await asyncio.to_thread(words_heard, model, heard))
        baseline = error if baseline is None else baseline
        print(
            f"| {label} | {p50(m2e):.2f} / {p95(m2e):.2f} | {p50(waits):.2f} / {p95(waits):.2f} "
            f"| {sum(r > 1 for r in heard.rates) / len(heard.rates):.0%} "
            f"| {error:.3f} | {error / baseline:.2f} |"
        )
    engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--latency", type=float, default=0.6, help="seconds from sentence end to dub ready"
    )
    parser.add_argument("--backlog", type=float, nargs="*", default=[4.0, 1.0, 0.5])
    parser.add_argument("--rate", type=float, nargs="*", default=[1.25, 1.5])
    args = parser.parse_args()
    asyncio.run(main(args.latency, args.backlog, args.rate))
