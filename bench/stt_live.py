"""Live utterances: the short encoder window against Whisper's full 30 s window.

Each utterance is transcribed twice on the same loaded model, in the engine's worker thread,
alternating which goes first: the baseline is faster-whisper's own ``transcribe`` with the
options the live profile used before the short window (declared language, greedy, no second
voice detection, no timestamps); ours is ``WhisperEngine.transcribe_sync(..., live=True)``,
which tries the short window and falls back to the full one when the decode looks doubtful.
Utterances: 30 call-like English sentences spoken by the Piper voice (median 2.3 s) and the
three narrated test clips. Word error rate is against the text that was spoken.

Run: ``.venv/bin/python -m bench.stt_live [--runs 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import CLIPS, p50, p95
from models.pool import InferencePool
from models.stt import SttSettings, WhisperEngine, decode_audio
from models.stt.audio import Audio
from models.stt.score import wer
from models.tts.audio import wav_bytes
from models.tts.piper_engine import PiperEngine, installed_voices

SENTENCES = [
    "Hello, can you hear me now?",
    "I think the meeting starts at nine tomorrow morning.",
    "Could you send me the report before lunch?",
    "The weather here is cold and rainy today.",
    "We should book the hotel near the station.",
    "My daughter starts school next week.",
    "I'm sorry, the connection dropped for a moment.",
    "Let's talk about the budget for the second quarter.",
    "The train was delayed by almost an hour.",
    "Do you want to meet for coffee on Friday?",
    "Please repeat the last number slowly.",
    "The doctor said I need to rest for a few days.",
    "We finished the project two days early.",
    "Can you share your screen so I can see the chart?",
    "I will call the supplier after this meeting.",
    "The new office has a beautiful view of the river.",
    "How much does the ticket cost?",
    "My flight lands at half past seven in the evening.",
    "We need more time to test the software.",
    "Thank you for joining the call so quickly.",
    "The restaurant on the corner serves excellent soup.",
    "Our team grew from five to twelve people this year.",
    "I forgot my password again.",
    "Where did you put the keys to the car?",
    "The price of electricity went up last month.",
    "She plays the piano every evening after dinner.",
    "Can we move the deadline to the end of the month?",
    "I agree with most of what you said.",
    "The children are playing in the garden.",
    "Let me check my calendar and get back to you.",
]


async def corpus() -> list[tuple[str, Audio]]:
    """(spoken text, 16 kHz audio): Piper's sentences, then the narrated clips."""
    piper = PiperEngine(installed_voices(), InferencePool("bench-piper", 1, 64))
    items: list[tuple[str, Audio]] = []
    for text in SENTENCES:
        speech = await piper.synthesize(text, "en")
        items.append((text, decode_audio(wav_bytes(speech))))
    await piper.close()
    for clip in CLIPS:
        items.append((Path(clip).with_suffix(".txt").read_text("utf-8"), decode_audio(clip)))
    return items


def baseline(model: Any, audio: Audio, beam_size: int) -> str:
    """faster-whisper's full-window decode with the live options (the path before)."""
    segments, _ = model.transcribe(
        audio,
        language="en",
        beam_size=beam_size,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    return " ".join(s.text.strip() for s in segments)


async def measure(runs: int) -> dict[str, Any]:
    """Times and texts of both paths on every utterance."""
    engine = WhisperEngine(SttSettings())
    await engine.load()
    model = engine.loaded_model()
    items = await corpus()
    beam = engine.settings.live_beam_size
    times: dict[str, list[float]] = {"baseline": [], "short": []}
    texts: dict[str, list[str]] = {"baseline": [], "short": []}
    fallbacks = 0
    for _, audio in items[:3]:  # warm-up
        await engine.pool.run(baseline, model, audio, beam)
        await engine.pool.run(engine.transcribe_sync, audio, "en", None, True)
    for run in range(runs):
        for n, (_, audio) in enumerate(items):
            order = ("baseline", "short") if (run + n) % 2 == 0 else ("short", "baseline")
            for which in order:
                started = time.perf_counter()
                if which == "baseline":
                    said = await engine.pool.run(baseline, model, audio, beam)
                else:
                    result = await engine.pool.run(engine.transcribe_sync, audio, "en", None, True)
                    said = result.text
                    fallbacks += run == 0 and result.window_s >= 30
                times[which].append(time.perf_counter() - started)
                if run == 0:
                    texts[which].append(said)
    info = engine.info()
    engine.close()
    return {
        "items": items,
        "times": times,
        "texts": texts,
        "fallbacks": fallbacks,
        "info": info,
        "seconds": [audio.size / 16_000 for _, audio in items],
    }


def report(result: dict[str, Any], runs: int) -> str:
    """Markdown for docs/benchmarks.md."""
    refs = [text for text, _ in result["items"]]
    times, texts, info = result["times"], result["texts"], result["info"]
    ratio = p50(times["short"]) / p50(times["baseline"])
    lines = [
        f"Command: `.venv/bin/python -m bench.stt_live --runs {runs}`; {os.cpu_count()} CPUs, "
        f"Whisper `{info['model']}` {info['compute_type']}, {info['cpu_threads']} thread(s), "
        f"beam {result['info']['beam_size']} (live: greedy); {len(refs)} utterances "
        f"(audio median {statistics.median(result['seconds']):.1f} s), {runs} runs each.",
        "",
        "| path | WER | median ms | p95 ms |",
        "|---|---|---|---|",
        f"| full 30 s window (faster-whisper, baseline) | {wer(refs, texts['baseline']):.3f} "
        f"| {p50(times['baseline']) * 1000:.0f} | {p95(times['baseline']) * 1000:.0f} |",
        f"| short window (ours) | {wer(refs, texts['short']):.3f} "
        f"| {p50(times['short']) * 1000:.0f} | {p95(times['short']) * 1000:.0f} |",
        "",
        f"Short / full, median time: **{ratio:.2f}**; decodes that fell back to the full window: "
        f"{result['fallbacks']} of {len(refs)}.",
        "",
        "Utterances where the two paths disagree:",
        "",
    ]
    for ref, full, short in zip(refs, texts["baseline"], texts["short"], strict=True):
        if full != short:
            lines.append(f"- said {ref!r}: full {full!r}, short {short!r}")
    return "\n".join(lines)


def main() -> None:
    """Entry point: ``python -m bench.stt_live``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(report(asyncio.run(measure(args.runs)), args.runs))


if __name__ == "__main__":
    main()
