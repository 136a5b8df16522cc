"""Pauses inside an utterance shortened in the audio recognition hears: words by kept length.

27 sentences with pauses of 0.7-1.0 s inside them (``bench.long_form_speech``'s seven, and
twenty more said by Piper with pauses after clauses, conjunctions and before last words), clean
and with pink noise under them, each go through the endpointer (real Silero; silence long
enough that a pause does not end the utterance) with ``CALLSERVER_VAD_PAUSE_KEPT_MS`` set to
each length given, and the utterance's audio is decoded as the pipeline decodes it (the
engine's short window). Words are scored against what was said. The baseline, in the same run:
faster-whisper's own ``transcribe`` (beam 5, full window) on each sentence's audio as said.

``--context``: instead, whether the speaker's previous sentence as Whisper's prompt helps.
``--marks``: instead, what early recognition hears at each pause of each sentence (clean), and
the probability of the sentence-ending mark it writes (``streamed_tail_min_end_probability``).

Run: ``.venv/bin/python -m bench.pause_shortening [--kept MS ...] [--snr DB ...]
[--context | --marks]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from bench.common import p50
from bench.long_form_speech import (
    SENTENCES,
    LongForm,
    SentenceSpec,
    build,
    to_16k,
    with_noise,
)
from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.media.processors import feed
from callserver.pipeline.endpoint import Endpointer, EndpointEvent, EndpointSettings
from callserver.pipeline.events import (
    SPEECH_FRAME_SAMPLES,
    SPEECH_RATE,
    SpeechFrame,
    SpeechPaused,
    Utterance,
)
from models.stt import SttSettings, WhisperEngine
from models.stt.audio import Audio
from models.stt.score import wer

#: More sentences with pauses inside them (word a pause follows, its length in seconds).
MORE = (
    SentenceSpec(
        "I was going to call you yesterday, but the train was late and my phone died.",
        (("yesterday", 0.8), ("and", 0.9)),
    ),
    SentenceSpec(
        "The report is almost finished, I just need to add the numbers for March.",
        (("finished", 0.8), ("add", 0.7)),
    ),
    SentenceSpec(
        "If we move the launch to Friday, the support team will have more time to prepare.",
        (("friday", 0.9),),
    ),
    SentenceSpec(
        "My sister lives in a small town near the coast with her two dogs.",
        (("town", 0.8), ("with", 0.8)),
    ),
    SentenceSpec(
        "We should probably book the tickets before the prices go up again.", (("tickets", 0.9),)
    ),
    SentenceSpec(
        "The doctor said that I need to rest for a week and drink more water.",
        (("that", 0.8), ("week", 0.8)),
    ),
    SentenceSpec("Can you tell me where the nearest pharmacy is?", (("me", 0.8),)),
    SentenceSpec(
        "Honestly, I think the second option is cheaper and easier to maintain.",
        (("honestly", 0.8), ("cheaper", 0.9)),
    ),
    SentenceSpec(
        "The meeting with the client went well, and they want a proposal by Monday.",
        (("well", 0.8), ("proposal", 0.7)),
    ),
    SentenceSpec(
        "When I was a child, we spent every summer at my grandmother's farm.",
        (("child", 0.9), ("summer", 0.7)),
    ),
    SentenceSpec(
        "Please send the invoice to the accounting department, not to me.",
        (("invoice", 0.8), ("department", 0.9)),
    ),
    SentenceSpec(
        "The weather tomorrow will be cold in the morning and sunny in the afternoon.",
        (("cold", 0.8), ("and", 0.9)),
    ),
    SentenceSpec(
        "I have read the contract twice, and I still do not understand the last page.",
        (("twice", 0.8), ("understand", 0.8)),
    ),
    SentenceSpec(
        "Our flight leaves at seven, so we need to be at the airport by five.",
        (("seven", 0.9), ("airport", 0.7)),
    ),
    SentenceSpec(
        "The new kitchen looks great, but the oven is too small for a family.",
        (("great", 0.8), ("small", 0.8)),
    ),
    SentenceSpec(
        "He told me the password, but I forgot it the moment he left.", (("password", 0.9),)
    ),
    SentenceSpec(
        "We will need three more chairs, a projector, and a long cable.",
        (("chairs", 0.8), ("projector", 0.8)),
    ),
    SentenceSpec(
        "After the storm, the whole street was without power for two days.",
        (("storm", 0.9), ("power", 0.7)),
    ),
    SentenceSpec("I would like a coffee with milk and a glass of water, please.", (("milk", 0.8),)),
    SentenceSpec(
        "The children painted the fence blue because they did not like the old color.",
        (("blue", 0.8), ("because", 0.9)),
    ),
)
#: The long-form speech's sentences with pauses inside them.
PAUSED = tuple(spec for spec in SENTENCES if spec.pauses)
#: Silence after each sentence, so the endpointer ends its utterance.
AFTER_S = 2.0


def endpoint_events(audio: Audio, kept_ms: int) -> list[EndpointEvent]:
    """What the endpointer makes of one sentence's ``audio`` (then silence)."""
    settings = EndpointSettings(
        silence_ms=1500, unfinished_silence_ms=1500, streamed_silence_ms=1500, pause_kept_ms=kept_ms
    )
    padded = np.concatenate([audio, np.zeros(int(AFTER_S * SPEECH_RATE), np.float32)])
    frames = [
        SpeechFrame(padded[i : i + SPEECH_FRAME_SAMPLES], (i + SPEECH_FRAME_SAMPLES) / SPEECH_RATE)
        for i in range(0, padded.size - SPEECH_FRAME_SAMPLES + 1, SPEECH_FRAME_SAMPLES)
    ]
    return feed(Endpointer(settings), frames)


def said_alone(speech: LongForm, audio: Pcm16) -> list[Audio]:
    """Each sentence of ``speech`` cut out of ``audio`` (the speech, or it with noise), as
    recognition takes audio."""
    return [
        to_16k(audio[int(s.start_s * SAMPLE_RATE) : int(s.end_s * SAMPLE_RATE)])
        for s in speech.sentences
    ]


def noise_label(snr: float | None) -> str:
    return "clean" if snr is None else f"{snr:g} dB"


def recognition_audio(audio: Audio, kept_ms: int) -> list[Audio]:
    """The audio of each utterance the endpointer cuts ``audio`` into (one, normally)."""
    return [e.audio for e in endpoint_events(audio, kept_ms) if isinstance(e, Utterance)]


async def context(kept_ms: int, snrs: list[float | None]) -> None:
    """Whether the speaker's previous sentence, as heard, helps as Whisper's ``initial_prompt``:
    each utterance (pauses cut to ``kept_ms``) decoded in the full window, greedy, without and
    with the text heard for the sentence before it, on the long-form speech in its order and on
    the 27 sentences."""
    engine = WhisperEngine(SttSettings())
    model = engine.loaded_model()
    print(
        "| speech | noise | WER, no prompt | WER, previous sentence as prompt |\n|---|---|---|---|"
    )
    for name, specs in (("long-form, in order", SENTENCES), ("27 with pauses", PAUSED + MORE)):
        clean = await build(model, specs, 0.3)
        said = [s.text for s in clean.sentences]
        for snr in snrs:
            audio = clean.audio if snr is None else with_noise(clean.audio, snr)
            heard: dict[bool, list[str]] = {False: [], True: []}
            for sentence in said_alone(clean, audio):
                for prompted, texts in heard.items():
                    prompt = texts[-1] if prompted and texts else None
                    parts = []
                    for utterance in recognition_audio(sentence, kept_ms):
                        segments, _ = model.transcribe(
                            utterance,
                            language="en",
                            beam_size=1,
                            without_timestamps=True,
                            condition_on_previous_text=False,
                            initial_prompt=prompt,
                        )
                        parts += [segment.text.strip() for segment in segments]
                    texts.append(" ".join(parts))
            errors = " | ".join(f"{wer(said, heard[p]):.3f}" for p in (False, True))
            print(f"| {name} | {noise_label(snr)} | {errors} |")
    engine.close()


async def marks(kept_ms: int) -> None:
    """What early recognition hears at each pause of each sentence (clean), and the probability
    of the sentence-ending mark it writes: the data for ``streamed_tail_min_end_probability``."""
    engine = WhisperEngine(SttSettings())
    clean = await build(engine.loaded_model(), PAUSED + MORE, 0.3)
    print("| sentence | pause | mark probability | heard up to the pause |\n|---|---|---|---|")
    for number, audio in enumerate(said_alone(clean, clean.audio), 1):
        # The last announcement of each pause holds the audio recognition is given there.
        paused = {
            e.speech_end_at: e
            for e in endpoint_events(audio, kept_ms)
            if isinstance(e, SpeechPaused)
        }
        for pause, event in enumerate(sorted(paused.values(), key=lambda e: e.speech_end_at), 1):
            heard = engine.transcribe_sync(event.audio, language="en", live=True)
            end = "-" if heard.end_probability is None else f"{heard.end_probability:.2f}"
            print(f"| {number} | {pause} | {end} | {heard.text} |")
    engine.close()


async def main(kept: list[int], snrs: list[float | None]) -> None:
    engine = WhisperEngine(SttSettings())
    model = engine.loaded_model()
    clean = await build(model, PAUSED + MORE, 0.3)
    said = [s.text for s in clean.sentences]
    print(
        f"{len(said)} sentences, {sum(len(s.split()) for s in said)} words\n\n"
        "| noise | audio recognition hears | WER | / baseline | / pauses whole "
        "| sentences wrong | decode p50 s |\n|---|---|---|---|---|---|---|"
    )
    for snr in snrs:
        audio = clean.audio if snr is None else with_noise(clean.audio, snr)
        audios = said_alone(clean, audio)
        rows: list[tuple[str, list[str], list[float]]] = []
        texts, times = [], []
        for one in audios:
            started = time.perf_counter()
            segments, _ = model.transcribe(one, language="en", beam_size=5)
            texts.append(" ".join(s.text.strip() for s in segments))
            times.append(time.perf_counter() - started)
        rows.append(("baseline: `transcribe`, beam 5, full window, as said", texts, times))
        for ms in kept:
            texts, times = [], []
            for one in audios:
                started = time.perf_counter()
                heard = [
                    engine.transcribe_sync(u, language="en", live=True).text
                    for u in recognition_audio(one, ms)
                ]
                times.append(time.perf_counter() - started)
                texts.append(" ".join(heard))
            rows.append(
                (f"engine, pauses cut to {ms} ms" if ms else "engine, pauses whole", texts, times)
            )
        errors = [wer(said, texts) for _, texts, _ in rows]
        whole = errors[1 + kept.index(0)] if 0 in kept else 0.0  # row 0 is the baseline
        for error, (label, texts, times) in zip(errors, rows, strict=True):
            ratios = " | ".join(f"{error / b:.2f}" if b else "n/a" for b in (errors[0], whole))
            wrong = sum(wer([s], [t]) > 0 for s, t in zip(said, texts, strict=True))
            print(
                f"| {noise_label(snr)} | {label} | {error:.3f} | {ratios} "
                f"| {wrong} | {p50(times):.2f} |"
            )
    engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--kept",
        type=int,
        nargs="+",
        help="lengths pauses are cut to, ms (default 0 100 150 200 250; for --context and "
        "--marks the first, default the pipeline's)",
    )
    parser.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0])
    parser.add_argument(
        "--context",
        action="store_true",
        help="instead: the previous sentence as Whisper's prompt, without and with (pauses cut "
        "to the first --kept)",
    )
    parser.add_argument(
        "--marks",
        action="store_true",
        help="instead: each pause's words and their final mark's probability (clean speech, "
        "pauses cut to the first --kept)",
    )
    args = parser.parse_args()
    first = args.kept[0] if args.kept else EndpointSettings().pause_kept_ms
    if args.marks:
        asyncio.run(marks(first))
    elif args.context:
        asyncio.run(context(first, [None, *args.snr]))
    else:
        asyncio.run(main(args.kept or [0, 100, 150, 200, 250], [None, *args.snr]))
