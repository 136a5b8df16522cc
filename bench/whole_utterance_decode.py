"""The words of a whole utterance with a pause inside it, by decoding path: what a caption of
an utterance held through its pauses would gain from a slower decode.

Each sentence of ``bench.long_form_speech`` that has a pause inside it is said alone (clean,
and with pink noise ``--snr`` dB below it) and decoded as the pipeline's final recognition
decodes it (the engine's short window, greedy, with its doubt checks), with beam 5 in the short
window, and by faster-whisper's ``transcribe`` (full 30 s window, beam 5, timestamps). Words
are scored against what was said; times are the median of ``--runs`` decodes.

Run: ``.venv/bin/python -m bench.whole_utterance_decode [--snr DB] [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from bench.common import p50
from bench.long_form_speech import SENTENCES, build, to_16k
from callserver.media.frames import SAMPLE_RATE
from models.stt import SttSettings, WhisperEngine
from models.stt.audio import Audio
from models.stt.score import wer


def timed(decode: Callable[[Audio], str], audio: Audio, runs: int) -> tuple[str, float]:
    """``decode(audio)``'s text and its median time over ``runs`` (after one warm-up)."""
    text = decode(audio)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        decode(audio)
        times.append(time.perf_counter() - started)
    return text, p50(times)


async def main(snr_db: float, runs: int) -> None:
    greedy = WhisperEngine(SttSettings())
    beam = WhisperEngine(SttSettings(live_beam_size=5))
    model = greedy.loaded_model()

    def full(audio: Audio) -> str:
        segments, _ = model.transcribe(audio, language="en", beam_size=5)
        return " ".join(s.text.strip() for s in segments)

    paths: dict[str, Callable[[Audio], str]] = {
        "engine, short window, greedy (the pipeline's)": lambda a: (
            greedy.transcribe_sync(a, language="en", live=True).text
        ),
        "engine, short window, beam 5": lambda a: (
            beam.transcribe_sync(a, language="en", live=True).text
        ),
        "transcribe, full window, beam 5 (baseline)": full,
    }
    print(
        "| path | noise | WER | time p50 s | texts differing from what was said |\n"
        "|---|---|---|---|---|"
    )
    paused = tuple(spec for spec in SENTENCES if spec.pauses)
    for snr in (None, snr_db):
        speech = await build(model, paused, 0.3, snr)
        audios = [
            to_16k(speech.audio[int(s.start_s * SAMPLE_RATE) : int(s.end_s * SAMPLE_RATE)])
            for s in speech.sentences
        ]
        said = [s.text for s in speech.sentences]
        for label, decode in paths.items():
            results = [timed(decode, audio, runs) for audio in audios]
            texts = [text for text, _ in results]
            wrong = [t for t, s in zip(texts, said, strict=True) if wer([s], [t]) > 0]
            print(
                f"| {label} | {'clean' if snr is None else f'{snr:g} dB'} "
                f"| {wer(said, texts):.3f} | {p50([t for _, t in results]):.2f} "
                f"| {'; '.join(wrong) or '-'} |"
            )
    greedy.close()
    beam.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--snr", type=float, default=20.0, help="noise dB below the speech")
    parser.add_argument("--runs", type=int, default=3, help="timed decodes of each sentence")
    args = parser.parse_args()
    asyncio.run(main(args.snr, args.runs))
