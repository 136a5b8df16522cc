"""Long-form speech with pauses inside sentences: where utterances end, and the words.

The speech is ``bench.long_form_speech``'s (ten sentences, pauses of 0.7-1.0 s inserted inside
them). It goes through the pipeline's front end as a call would give it, 20 ms at a time: the
down-sampled audio through Silero and the endpointer, recognition at each pause (as early
recognition does) whose words are judged and handed back to the endpointer, and the utterances'
texts. Time is the audio's own (frames are not paced), and a verdict reaches the endpointer at
once; in a call it comes when recognition is done, which only moves the endpoint where
recognition takes longer than the short silence.

Baseline, same run: faster-whisper's own ``transcribe`` on the whole long-form audio in one
piece. Reported per setting: word error rate against what was said, pipeline over baseline;
utterances that end inside a sentence; sentences whose first word is missing; and the silence
each utterance waited for (the latency the endpoint costs).

Then the short utterances (under 2 s) that silence alone cut out, decoded three ways and
timed: greedy in the short window alone; the engine's live path; and the full 30 s window,
the second pass a doubtful short decode took before.

Run: ``.venv/bin/python -m bench.long_form``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from bench.common import p50, p95
from bench.long_form_speech import LongForm, build, to_16k
from callserver.pipeline.endpoint import Endpointer, EndpointSettings
from callserver.pipeline.events import SPEECH_FRAME_SAMPLES, SpeechFrame, SpeechPaused, Utterance
from callserver.pipeline.sentence_end import judge
from callserver.pipeline.settings import PipelineSettings
from models.stt import SttSettings, WhisperEngine
from models.stt.audio import Audio
from models.stt.score import wer, words

#: The front end's options for each setting compared: (label, sentence-aware).
SETTINGS = (("silence only (before)", False), ("sentence-aware", True))
#: The pipeline's defaults for judging the words at a pause.
PIPELINE = PipelineSettings()


@dataclass(frozen=True)
class Heard:
    """One utterance as the pipeline ended and recognised it (times: seconds into the audio)."""

    text: str
    started_at: float
    speech_end_at: float
    endpoint_at: float
    #: The utterance's audio (16 kHz), as recognition was given it.
    audio: Audio


def front_end(engine: WhisperEngine, audio: Audio, sentence_aware: bool) -> list[Heard]:
    """The pipeline's utterances of ``audio`` (16 kHz), recognised as a call would be."""
    endpointer = Endpointer(EndpointSettings(), awaits_verdicts=sentence_aware)
    early: dict[tuple[str, float], str] = {}
    heard: list[Heard] = []
    for start in range(0, audio.size - SPEECH_FRAME_SAMPLES + 1, SPEECH_FRAME_SAMPLES):
        frame = SpeechFrame(
            audio[start : start + SPEECH_FRAME_SAMPLES].copy(),
            (start + SPEECH_FRAME_SAMPLES) / 16_000,
        )
        events = endpointer.process(frame)
        while events:
            event = events.pop(0)
            if isinstance(event, SpeechPaused) and sentence_aware:
                transcript = engine.transcribe_sync(event.audio, language="en", live=True)
                early[(event.utterance_id, event.speech_end_at)] = transcript.text
                verdict = judge(
                    transcript.text,
                    "en",
                    PIPELINE.sentence_min_words,
                    transcript.end_probability,
                    PIPELINE.sentence_end_min_probability,
                )
                events += endpointer.judge(event.utterance_id, event.speech_end_at, verdict)
            elif isinstance(event, Utterance):
                text = early.get((event.utterance_id, event.speech_end_at))
                if text is None:
                    text = engine.transcribe_sync(event.audio, language="en", live=True).text
                heard.append(
                    Heard(
                        text, event.started_at, event.speech_end_at, event.endpoint_at, event.audio
                    )
                )
    return heard


def raw_transcript(model: Any, audio: Audio) -> str:
    """faster-whisper's own transcription of the whole audio in one piece (the baseline)."""
    segments, _ = model.transcribe(audio, language="en")
    return " ".join(s.text.strip() for s in segments)


@dataclass(frozen=True)
class Judged:
    """How the pipeline's utterances fit the sentences that were said."""

    wer: float
    utterances: int
    #: Utterances that end at a pause inside a sentence instead of at its end.
    split_inside: int
    #: Sentences whose first word is not the first word heard of them.
    first_words_lost: int
    #: Silence each utterance waited for before it was ended (seconds).
    endpoint_waits: list[float]


def judge_heard(speech: LongForm, heard: list[Heard]) -> Judged:
    """Scores ``heard`` against ``speech``: each utterance belongs to the sentence its speech
    ends in (or the last one that started before it ends)."""
    by_sentence: list[list[Heard]] = [[] for _ in speech.sentences]
    split_inside = 0
    for utterance in heard:
        index = max(
            (
                i
                for i, s in enumerate(speech.sentences)
                if s.start_s - 0.3 <= utterance.speech_end_at
            ),
            default=0,
        )
        by_sentence[index].append(utterance)
        if utterance.speech_end_at < speech.sentences[index].end_s - 0.5:
            split_inside += 1
    lost = 0
    for sentence, utterances in zip(speech.sentences, by_sentence, strict=True):
        said = " ".join(u.text for u in utterances)
        if not words(said) or words(said)[0] != words(sentence.text)[0]:
            lost += 1
    hypotheses = [" ".join(u.text for u in group) for group in by_sentence]
    return Judged(
        wer=wer([s.text for s in speech.sentences], hypotheses),
        utterances=len(heard),
        split_inside=split_inside,
        first_words_lost=lost,
        endpoint_waits=[u.endpoint_at - u.speech_end_at for u in heard],
    )


async def main() -> None:
    engine = WhisperEngine(SttSettings())
    model = engine.loaded_model()
    speech = await build(model)
    audio = to_16k(speech.audio)
    baseline = wer([speech.text], [raw_transcript(model, audio)])
    print(
        f"## Long-form speech: {len(speech.sentences)} sentences, "
        f"{speech.audio.size / 48_000:.1f} s\n"
    )
    print(f"raw faster-whisper on the whole audio (baseline): WER {baseline:.3f}\n")
    print(
        "| setting | WER | / baseline | utterances | ended inside a sentence "
        "| first words lost | endpoint wait p50 / p95 s |"
    )
    print("|---|---|---|---|---|---|---|")
    split: list[Heard] = []
    segmented: dict[str, list[Heard]] = {}
    for label, aware in SETTINGS:
        heard = segmented[label] = await asyncio.to_thread(front_end, engine, audio, aware)
        split = split or heard
        result = judge_heard(speech, heard)
        ratio = f"{result.wer / baseline:.2f}" if baseline else "n/a (baseline 0)"
        print(
            f"| {label} | {result.wer:.3f} | {ratio} | {result.utterances} "
            f"| {result.split_inside} | {result.first_words_lost} "
            f"| {p50(result.endpoint_waits):.2f} / {p95(result.endpoint_waits):.2f} |"
        )
    await asyncio.to_thread(context, model, speech, segmented)
    short = [u.audio for u in split if u.audio.size < SHORT_S * 16_000]
    await asyncio.to_thread(short_utterances, engine, short)
    engine.close()


def context(model: Any, speech: LongForm, segmented: dict[str, list[Heard]]) -> None:
    """Whether the previous utterance's text, given to Whisper as its prompt, helps: each
    setting's utterances decoded by faster-whisper's ``transcribe`` without and with it."""
    print("\nPrevious utterance as context (faster-whisper per utterance, beam 5):\n")
    print("| utterances of | WER, no context | WER, previous text as prompt | texts changed |")
    print("|---|---|---|---|")
    for label, heard in segmented.items():
        plain, prompted, previous = [], [], ""
        for utterance in heard:
            texts = []
            for prompt in (None, previous or None):
                segments, _ = model.transcribe(
                    utterance.audio, language="en", initial_prompt=prompt
                )
                texts.append(" ".join(s.text.strip() for s in segments))
            plain.append(replace(utterance, text=texts[0]))
            prompted.append(replace(utterance, text=texts[1]))
            previous = texts[1]
        changed = sum(words(a.text) != words(b.text) for a, b in zip(plain, prompted, strict=True))
        print(
            f"| {label} | {judge_heard(speech, plain).wer:.3f} "
            f"| {judge_heard(speech, prompted).wer:.3f} | {changed} of {len(heard)} |"
        )


#: Utterances shorter than this are the "short" ones (``CALLSERVER_STT_LIVE_FULL_WINDOW_MIN_S``).
SHORT_S = 2.0


def short_utterances(engine: WhisperEngine, clips: list[Audio], runs: int = 3) -> None:
    """The short utterances silence alone cut out: greedy in the short window alone (the
    engine with no wider beam to retry with), the engine's path (greedy, then beam search
    from the same encoder output where doubtful), and the full 30 s window (the second pass
    short utterances took before), each timed ``runs`` times; the engine's words compared
    with the full window's."""
    paths = {
        "short window, greedy only": WhisperEngine(SttSettings(beam_size=1)),
        "engine: greedy, then beam 5 where doubtful; no full window": engine,
        "full 30 s window (the old second pass)": WhisperEngine(SttSettings(live_window=False)),
    }
    times: dict[str, list[float]] = {label: [] for label in paths}
    texts: dict[str, list[str]] = {label: [] for label in paths}
    for clip in clips:
        for label, path in paths.items():
            for _ in range(runs):
                started = time.perf_counter()
                text = path.transcribe_sync(clip, language="en", live=True).text
                times[label].append(time.perf_counter() - started)
            texts[label].append(text)
    greedy, ours, full = texts.values()
    changed = sum(words(a) != words(b) for a, b in zip(greedy, ours, strict=True))
    same = sum(words(a) == words(b) for a, b in zip(ours, full, strict=True))
    print(
        f"\n### Short utterances: {len(clips)} under {SHORT_S:.0f} s, {runs} runs each\n\n"
        f"words the beam retry changed: {changed}; engine's words equal to the full "
        f"window's: {same} of {len(clips)}\n"
    )
    print("| path | p50 ms | p95 ms | / full window (p50) |\n|---|---|---|---|")
    reference = p50(list(times.values())[-1])
    for label, values in times.items():
        ratio = p50(values) / reference
        print(f"| {label} | {p50(values) * 1000:.0f} | {p95(values) * 1000:.0f} | {ratio:.2f} |")
    for path in paths.values():
        if path is not engine:
            path.close()


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    asyncio.run(main())
