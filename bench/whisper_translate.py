"""Whisper's own translation into English (``to_english``) on Vietnamese speech, against
recognition of the same speech.

Vietnamese sentences are spoken by espeak-ng (the only offline Vietnamese voice), then given
to the engine twice: recognised in Vietnamese (the live path a call uses) and translated into
English by Whisper's translate task. Baseline in the same run: raw faster-whisper's
``transcribe`` on the same loaded model (declared language, greedy, full window). Reported:
each sentence's outputs, and the time of each path per run (p50/p95) with its ratio to the
baseline.

Run: ``.venv/bin/python -m bench.whisper_translate [--runs 3] [--model base]``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import p50, p95
from models.stt import SttSettings, WhisperEngine, decode_audio
from models.stt.audio import Audio

SENTENCES = (
    "Xin chào các bạn. Hôm nay trời đẹp lắm, chúng ta đi uống cà phê nhé.",
    "Tôi tên là Nam, tôi sống ở Hà Nội. Tôi làm việc ở một công ty phần mềm.",
    "Cuộc họp bắt đầu lúc chín giờ sáng mai. Xin vui lòng đến đúng giờ.",
)


def speech(folder: Path) -> list[Audio]:
    """Each sentence spoken by espeak-ng, 16 kHz mono float."""
    clips = []
    for i, text in enumerate(SENTENCES):
        path = folder / f"vi-{i}.wav"
        subprocess.run(["espeak-ng", "-v", "vi", "-w", str(path), text], check=True, timeout=30)
        clips.append(decode_audio(str(path)))
    return clips


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="base")
    args = parser.parse_args()
    engine = WhisperEngine(SttSettings(model=args.model, workers=1))
    model = engine.loaded_model()
    times: dict[str, list[float]] = {"raw": [], "recognise": [], "to_english": []}
    with tempfile.TemporaryDirectory() as tmp:
        clips = speech(Path(tmp))
    for run in range(args.runs):
        for i, clip in enumerate(clips):
            start = time.perf_counter()
            segments, _ = model.transcribe(clip, language="vi", beam_size=1)
            raw = " ".join(s.text.strip() for s in segments)
            times["raw"].append(time.perf_counter() - start)
            start = time.perf_counter()
            spoken = await engine.transcribe(clip, language="vi", live=True)
            times["recognise"].append(time.perf_counter() - start)
            start = time.perf_counter()
            english = await engine.transcribe(clip, language="vi", live=True, to_english=True)
            times["to_english"].append(time.perf_counter() - start)
            if run == 0:
                print(f"| {SENTENCES[i]} | {raw} | {spoken.text} | {english.text or '(nothing)'} |")
    base = p50(times["raw"])
    print("\n| path | p50 | p95 | p50 / raw faster-whisper |\n|---|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {p50(values):.2f} s | {p95(values):.2f} s | {p50(values) / base:.2f} |")
    engine.close()


if __name__ == "__main__":
    asyncio.run(main())
