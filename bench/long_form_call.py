"""Long-form speech with pauses inside sentences, spoken in a real call: mouth to ear and words.

A speaks ``bench.long_form_speech``'s speech (English, ten sentences with pauses inside them)
in one go over a real aiortc connection; B listens in Spanish (Whisper base + Apertium +
espeak-ng, as ``bench.translated_call``'s configuration (a)). From B's events:

- per utterance, the server's mouth-to-ear (end of speech to the first dub frame mixed for B);
- per sentence, from the end of the sentence in A's *sent* audio to the arrival at B of the
  latency event of the utterance that ends it (the dub's first frame leaves with that event);
- per sentence, from its start in A's sent audio to the arrival at B of the first latency
  event of any of its utterances, streamed clauses included (start of speech to start of dub);
- the final captions' words against what was said, sentence by sentence (an utterance counts
  in the sentence it ends in) and over the whole speech (all final captions in order: words
  two sentences share in one utterance are not errors there); the longest utterance, and
  utterances that end inside a sentence;
- the final captions' Spanish against Apertium's translation of each whole sentence as said
  (word error rate): what recognition errors, splits and streamed pieces cost the listener's
  translation; and dubs B was told it will not hear (skipped by catch-up);
- the baseline, in the same run: faster-whisper's own transcription of the whole audio A sends
  in one piece (beam 5, full windows), and the whole-speech WER as a ratio to its WER.

A streamed utterance's end is heard where its rest's dub starts, or, when its pieces held every
word, where its last piece's does (``part: "pieces"``). That event leaves at the utterance's
end, after the dub it reports, so its sentence is timed to the arrival of its last piece's own
event (``part: "prefix"``, sent as the piece starts playing).

Run: ``.venv/bin/python -m bench.long_form_call [--settings silence sentences streaming]
[--speech pauses|long] [--gap S] [--snr DB] [--env CALLSERVER_...=VALUE ...] [--verbose]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

import aiohttp
import numpy as np

from bench.common import ServerProcess, metric, p50, p95
from bench.long_form import raw_transcript
from bench.long_form_speech import GAP_S, LONG_SENTENCES, SENTENCES, LongForm, build, to_16k
from callserver.media.frames import SAMPLE_RATE
from callserver.probe import ScriptedCaller
from models.mt.apertium import ApertiumTranslator
from models.mt.settings import MtSettings
from models.stt import SttSettings, WhisperEngine
from models.stt.score import wer

log = logging.getLogger(__name__)

#: Settings compared, by label: the server's environment.
SETTINGS: dict[str, dict[str, str]] = {
    "silence": {
        "CALLSERVER_PIPELINE_SENTENCE_ENDPOINTING": "false",
        "CALLSERVER_PIPELINE_STREAMING": "false",
    },
    "sentences": {
        "CALLSERVER_PIPELINE_SENTENCE_ENDPOINTING": "true",
        "CALLSERVER_PIPELINE_STREAMING": "false",
    },
    "streaming": {
        "CALLSERVER_PIPELINE_SENTENCE_ENDPOINTING": "true",
        "CALLSERVER_PIPELINE_STREAMING": "true",
    },
}
#: Sentences at least this long count as long for start-of-speech to start-of-dub.
LONG_S = 4.0
#: A caption's end of speech belongs to a sentence when it lies this close to the sentence's
#: end or inside it.
SLACK_S = 0.5


def monotonic(wall: float) -> float:
    """A Unix time (the captions' clock) on this process's monotonic clock."""
    return wall - (time.time() - time.monotonic())


async def one_call(speech: LongForm, env: dict[str, str]) -> dict[str, Any]:
    """A speaks the whole speech once; what B saw and heard."""
    server = await ServerProcess.start(
        CALLSERVER_PRELOAD_ENGINES="true",
        CALLSERVER_CACHE_ENABLED="false",
        CALLSERVER_MT_ENGINES="apertium",
        **env,
    )
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(8.0)  # the engines load before the first word
            a = ScriptedCaller(server.url, session, name="A", spoken="en", listen="en")
            b = ScriptedCaller(server.url, session, name="B", spoken="es", listen="es")
            await a.join("bench-long-form")
            await b.join("bench-long-form")
            await a.start_media()
            await b.start_media()
            await asyncio.sleep(1.0)
            tail = np.zeros(4 * SAMPLE_RATE, dtype=np.int16)
            a.play(np.concatenate((speech.audio, tail)))
            await asyncio.sleep(0.05)
            sent_at = a.play_started[-1]
            await asyncio.sleep(speech.audio.size / SAMPLE_RATE + 8.0)
            metrics = await (await session.get(server.url + "/metrics")).text()
            events = list(zip(b.events, b.event_times, strict=True))
            await a.close()
            await b.close()
    finally:
        await server.stop()
    return {"sent_at": sent_at, "events": events, "metrics": metrics}


def judge_call(speech: LongForm, run: dict[str, Any]) -> dict[str, Any]:
    """Mouth to ear per utterance and per sentence end, words, and splits, from B's events."""
    sent_at: float = run["sent_at"]
    finals: dict[str, tuple[str, float]] = {}
    lengths: list[float] = []  # seconds from each final caption's start of speech to its end
    translated: dict[str, str] = {}  # utterance -> its final caption's Spanish
    dropped = 0  # dubs B was told it will not hear (catch-up skipped them)
    latency: dict[str, tuple[float, float]] = {}
    first_dub: dict[str, float] = {}  # utterance -> arrival of its first latency event
    last_piece: dict[str, float] = {}  # utterance -> arrival of its latest piece's event
    stages: dict[str, list[float]] = {}
    for event, arrived in run["events"]:
        if event.get("type") == "latency":
            first_dub.setdefault(event["utterance_id"], arrived)
            if event.get("part") == "prefix":
                last_piece[event["utterance_id"]] = arrived
            log.debug(
                "utterance %s %s dub at %.2f s",
                event["utterance_id"],
                event.get("part", "final"),
                arrived - sent_at,
            )
        if event.get("type") == "caption-dropped":
            log.debug("utterance %s dropped: %s", event["utterance_id"], event.get("reason"))
            dropped += 1
        elif event.get("type") == "caption" and event.get("final") and event.get("text"):
            if event["utterance_id"] not in finals:
                lengths.append(event["ended_at"] - event["started_at"])
            finals[event["utterance_id"]] = (event["text"], monotonic(event["ended_at"]))
            translated[event["utterance_id"]] = event.get("translations", {}).get("es", "")
        elif (
            event.get("type") == "latency"
            and event.get("part") != "prefix"
            and event["utterance_id"] not in latency
        ):
            heard = arrived
            if event.get("part") == "pieces":
                heard = last_piece.get(event["utterance_id"], arrived)
            latency[event["utterance_id"]] = (event["stages_ms"]["mouth_to_ear"] / 1000, heard)
            log.debug("utterance %s stages %s", event["utterance_id"], event["stages_ms"])
            for stage, ms in event["stages_ms"].items():
                stages.setdefault(stage, []).append(ms / 1000)
    by_sentence: list[list[tuple[str, str, float]]] = [[] for _ in speech.sentences]
    split_inside = 0
    for utterance_id, (text, ended) in sorted(finals.items(), key=lambda item: item[1][1]):
        at = ended - sent_at  # seconds into the speech
        index = max(
            (i for i, s in enumerate(speech.sentences) if s.start_s - SLACK_S <= at), default=0
        )
        by_sentence[index].append((utterance_id, text, at))
        log.debug("utterance %s ends at %.2f s in sentence %d: %s", utterance_id, at, index, text)
        if at < speech.sentences[index].end_s - SLACK_S:
            split_inside += 1
    sentence_m2e, start_to_dub = [], []
    for sentence, heard in zip(speech.sentences, by_sentence, strict=True):
        if heard and heard[-1][0] in latency:
            sentence_m2e.append(latency[heard[-1][0]][1] - (sent_at + sentence.end_s))
        dubs = [first_dub[u] for u, _, _ in heard if u in first_dub]
        if dubs and sentence.end_s - sentence.start_s >= LONG_S:
            start_to_dub.append(min(dubs) - (sent_at + sentence.start_s))
    hypotheses = [" ".join(text for _, text, _ in heard) for heard in by_sentence]
    spanish = [" ".join(translated[u] for u, _, _ in heard) for heard in by_sentence]
    in_order = [text for text, _ in sorted(finals.values(), key=lambda final: final[1])]
    return {
        "wer": wer([s.text for s in speech.sentences], hypotheses),
        "whole_wer": wer([speech.text], [" ".join(in_order)]),
        "longest": max(lengths, default=0.0),
        "spanish": spanish,
        "utterances": len(finals),
        "dropped": dropped,
        "dubbed": len(latency),
        "split_inside": split_inside,
        "utterance_m2e": [m2e for m2e, _ in latency.values()],
        "sentence_m2e": sentence_m2e,
        "start_to_dub": start_to_dub,
        "stages": stages,
        "pieces": metric(run["metrics"], "callserver_streamed_pieces_total"),
        "verdicts": {
            v: metric(run["metrics"], f'callserver_sentence_verdicts_total{{verdict="{v}"}}')
            for v in ("complete", "unfinished", "unknown")
        },
    }


#: The speech A says, by name: sentences with pauses inside them, or long ones without.
SPEECH = {"pauses": SENTENCES, "long": LONG_SENTENCES}


async def main(
    labels: list[str],
    speech_name: str,
    gap_s: float,
    snr_db: float | None,
    extra: dict[str, str],
) -> None:
    engine = WhisperEngine(SttSettings())
    model = engine.loaded_model()
    speech = await build(model, SPEECH[speech_name], gap_s, snr_db)
    raw = wer([speech.text], [await asyncio.to_thread(raw_transcript, model, to_16k(speech.audio))])
    engine.close()
    noise = "" if snr_db is None else f", pink noise {snr_db:g} dB below the speech"
    print(
        f"## Long-form speech in a call: {len(speech.sentences)} sentences ({speech_name}), "
        f"{speech.audio.size / SAMPLE_RATE:.1f} s, {gap_s:g} s between sentences{noise}"
        + "".join(f", {name}={value}" for name, value in extra.items())
        + "\n"
    )
    print(f"raw faster-whisper on the whole audio A sends (baseline): WER {raw:.3f}\n")
    long = sum(s.end_s - s.start_s >= LONG_S for s in speech.sentences)
    print(
        "| setting | WER | WER, whole speech | / baseline "
        "| utterances (dubbed, skipped) | longest s | ended inside a sentence "
        "| mouth-to-ear per utterance p50 / p95 s | sentence end to dub p50 / p95 s "
        f"| start of speech to dub, {long} sentences >= {LONG_S:g} s, p50 / p95 s "
        "| verdicts complete / unfinished / unknown | clauses streamed "
        "| Spanish vs whole sentences' |"
    )
    print("|---" * 13 + "|")
    mt = ApertiumTranslator(MtSettings())
    whole = [await mt.translate(s.text, "en", "es") for s in speech.sentences]
    mt.close()
    results = {}
    for label in labels:
        result = results[label] = judge_call(
            speech, await one_call(speech, {**SETTINGS[label], **extra})
        )
        u, s, v = result["utterance_m2e"], result["sentence_m2e"], result["verdicts"]
        d = result["start_to_dub"]
        ratio = f"{result['whole_wer'] / raw:.2f}" if raw else "n/a (baseline 0)"
        print(
            f"| {label} | {result['wer']:.3f} | {result['whole_wer']:.3f} | {ratio} "
            f"| {result['utterances']} ({result['dubbed']}, {result['dropped']}) "
            f"| {result['longest']:.1f} "
            f"| {result['split_inside']} | {p50(u):.2f} / {p95(u):.2f} "
            f"| {p50(s):.2f} / {p95(s):.2f} | {p50(d):.2f} / {p95(d):.2f} "
            f"| {v['complete']:.0f} / {v['unfinished']:.0f} / {v['unknown']:.0f} "
            f"| {result['pieces']:.0f} | {wer(whole, result['spanish']):.3f} |"
        )
    names = sorted({name for result in results.values() for name in result["stages"]})
    print("\nStages, p50 / p95 s (the server's latency events):\n")
    print("| stage | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for name in names:
        cells = [r["stages"].get(name, []) for r in results.values()]
        row = " | ".join(f"{p50(c):.2f} / {p95(c):.2f}" if c else "-" for c in cells)
        print(f"| {name} | {row} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--speech", default="pauses", choices=list(SPEECH))
    parser.add_argument(
        "--gap", type=float, default=GAP_S, help="seconds of silence between sentences"
    )
    parser.add_argument(
        "--snr", type=float, default=None, help="pink noise this many dB below the speech"
    )
    parser.add_argument("--verbose", action="store_true", help="each utterance's text and stages")
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="NAME=VALUE", help="more server settings, for all"
    )
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(format="%(message)s")
        log.setLevel(logging.DEBUG)
    extra = dict(item.split("=", 1) for item in args.env)
    asyncio.run(main(args.settings, args.speech, args.gap, args.snr, extra))
