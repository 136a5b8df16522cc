"""Streaming: clauses two recognitions agree on are dubbed while the speaker goes on, and the
utterance's end dubs only the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from bench.long_form_speech import SentenceSpec, build
from callserver.engines import EngineSet
from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.pipeline.echo import words
from callserver.pipeline.events import SpeechPaused, Utterance
from callserver.pipeline.sentence_end import TRAILING_WORDS, Verdict
from callserver.pipeline.settings import PipelineSettings
from callserver.pipeline.speaker_state import SpeakerState
from callserver.pipeline.streaming import StablePrefix, Streamed
from models.errors import EngineError
from models.metrics import EngineMetrics
from models.mt.settings import MtSettings
from models.stt import SttSettings, WhisperEngine
from models.stt.result import Transcript
from tests.conftest import wait_for
from tests.hub_helpers import RecordingDelivery
from tests.pipeline_helpers import ANN, BETO, callers, drain, finals, speech_then_silence
from tests.test_early_recognition import FIRST, SECOND, ann_to_bea, noise, speak, trimmed

# --- which words are stable, and what is left at the end -------------------------------------


def test_a_clause_is_committed_once_two_passes_agree_on_it() -> None:
    stable = StablePrefix(min_words=3)
    assert stable.offer("And so, my fellow") is None  # one pass: nothing to agree with
    assert stable.offer("And so, my fellow Americans, ask") is None  # "so," has 2 words
    assert stable.offer("And so, my fellow Americans, ask not what") == (
        "And so, my fellow Americans,"
    )
    # Already committed words are not committed again.
    assert stable.offer("And so, my fellow Americans, ask not what your") is None
    assert stable.committed == ["And", "so,", "my", "fellow", "Americans,"]


def test_words_the_passes_disagree_on_are_not_committed() -> None:
    stable = StablePrefix(min_words=2)
    stable.offer("He was not an ill disposed young man,")
    # The second pass heard "a" for "an": agreement stops before the comma.
    assert stable.offer("He was not a ill disposed young man, unless") is None
    # Case does not count as disagreement; the text committed is the latest pass's.
    assert stable.offer("he was NOT a ill disposed young man, unless to") == (
        "he was NOT a ill disposed young man,"
    )


def test_a_mark_on_the_last_word_heard_counts_only_if_both_passes_wrote_it() -> None:
    stable = StablePrefix(min_words=1)
    stable.offer("what your country can do for you")
    # The audio so far ends after "you": Whisper's full stop there is a guess.
    assert stable.offer("What your country can do for you.") is None
    assert stable.offer("What your country can do for you.") == (
        "What your country can do for you."
    )
    # Before later words the latest pass's mark is enough: it heard what follows.
    stable = StablePrefix(min_words=1)
    stable.offer("I think the meeting starts")
    assert stable.offer("I think the meeting, starts at") == "I think the meeting,"


def test_a_pause_ends_a_piece_without_a_second_pass_or_a_mark() -> None:
    stable = StablePrefix(min_words=4, held_words=TRAILING_WORDS["en"])
    # Recognition at the pause heard every word whole: no agreement needed, no comma.
    assert stable.offer("had then leisure to consider", at_pause=True) == (
        "had then leisure to consider"
    )
    # Words a clause does not end on wait for the next piece, with the words after them.
    assert stable.offer(
        "had then leisure to consider how much there might be prudently in his power and",
        at_pause=True,
    ) == ("how much there might be prudently in his power")
    assert stable.remainder(
        "had then leisure to consider how much there might be prudently in his power and "
        "to do for them."
    ) == ("and to do for them.")


def test_a_pause_after_too_few_words_or_a_different_past_ends_no_piece() -> None:
    stable = StablePrefix(min_words=4, held_words=TRAILING_WORDS["en"])
    # "Ask not" alone would be dubbed as a command of its own.
    assert stable.offer("Ask not.", at_pause=True) is None
    # Fewer than four once "the" is held back.
    assert stable.offer("Ask not what the", at_pause=True) is None
    assert stable.offer("Ask not what your country can do for you,", at_pause=True) == (
        "Ask not what your country can do for you,"
    )
    # A pass that does not end the committed words as they ended ("you" only later) commits
    # nothing on top of them, but its words still count as the previous pass for the
    # agreement rule.
    assert (
        stable.offer("Ask not what your country can do for us, ask what you can do", True) is None
    )
    assert stable.offer("Ask not what your country can do for you, ask what you can do") is None
    assert stable.committed == ["Ask", "not", "what", "your", "country", "can", "do", "for", "you,"]


def test_words_after_the_pieces_too_few_for_one_are_told_apart_from_none_or_enough() -> None:
    stable = StablePrefix(min_words=3, held_words=TRAILING_WORDS["en"])
    assert not stable.too_few_new("And so, my fellow Americans,")  # nothing committed yet
    assert stable.offer("And so, my fellow Americans,", at_pause=True)
    assert stable.too_few_new("And so, my fellow Americans, ask not.")
    assert not stable.too_few_new("And so, my fellow Americans,")  # no new word
    assert not stable.too_few_new("And so, my fellow Americans, ask not what")
    assert not stable.too_few_new("So, my dear friends, ask not.")  # heard differently


def test_a_pause_piece_goes_on_from_the_committed_words_as_the_new_pass_heard_them() -> None:
    stable = StablePrefix(min_words=3, held_words=TRAILING_WORDS["en"])
    assert not stable.holds("Mr John Dashwood")
    assert stable.offer("Mr John Dashwood", at_pause=True) == "Mr John Dashwood"
    assert stable.holds("Mr. John Dashwood.")
    # The next pass hears a first word the first one missed: the piece still starts after
    # "Dashwood", and nothing is dubbed twice.
    assert stable.offer("And Mr. John Dashwood had then leisure to consider", at_pause=True) == (
        "had then leisure to consider"
    )
    assert stable.holds("And Mr John Dashwood had then leisure to consider")
    assert stable.holds("And Mr John Dashwood had then leisure to consider and")  # held back
    assert not stable.holds("And Mr John Dashwood had then leisure to consider how much")
    # A pass that does not end the committed words where they ended commits nothing.
    assert (
        stable.offer("And Mr John Dashwood had then leisure to ponder how much there", True) is None
    )
    assert not stable.holds("And Mr John Dashwood had then leisure to ponder")


def test_the_rest_is_what_the_final_text_says_after_the_committed_words() -> None:
    stable = StablePrefix(min_words=1)
    stable.offer("Ask not what your country can do for you, ask")
    stable.offer("Ask not what your country can do for you, ask what")
    assert stable.remainder("Ask not what your country can do for you, ask what you can do.") == (
        "ask what you can do."
    )
    # The final pass words the committed part differently: aligned, not counted.
    assert stable.remainder("Ask not, what our country could do for you? Ask what you can.") == (
        "Ask what you can."
    )
    assert stable.remainder("Something else entirely") == ""
    assert StablePrefix(min_words=1).remainder(" All of it. ") == "All of it."


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_words"):
        StablePrefix(min_words=0)


# --- in the pipeline: a long utterance's first clause is dubbed before it ends ------------------


def long_utterance() -> Pcm16:
    """About 8 s that end as one utterance: "He was not an ill disposed young man, unless to
    be rather cold hearted and rather selfish is to be ill disposed. He was not an ill
    disposed young man." The gaps (350 ms after a clause, 50 ms after a sentence) are
    shorter than the silence that ends either (with the clips' own quiet edges, a 200 ms gap
    after the sentence ended it once recognition was quick enough to judge it complete), so
    the first clause settles seconds before the end."""
    return np.concatenate(
        [
            trimmed(str(FIRST)),
            noise(0.35, 1),
            trimmed(str(SECOND)),
            noise(0.05, 4),
            trimmed(str(FIRST)),
        ]
    )


@pytest.mark.parametrize("streaming", [True, False])
async def test_a_long_utterance_is_dubbed_before_it_ends(streaming: bool) -> None:
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    engines = EngineSet(EngineMetrics(registry))
    hub = ann_to_bea(registry, delivery, engines, streaming=streaming, interim_captions=True)
    spoken = np.concatenate([noise(0.5, 0), long_utterance()])
    try:
        await (await engines.stt()).warm_up()
        await speak(hub, spoken, speed=1.0)
        dubbed_while_speaking = len(delivery.dubs)
        await speak(hub, noise(1.5, 2), speed=1.0)
        await wait_for(lambda: hub.idle, timeout=90)
        finals = [e for pid, e in delivery.events if pid == "p_b" and e.get("final")]
        # The whole utterance translated in one piece, to compare the pieces with.
        whole = await (await engines.translation()).translate(str(finals[-1]["text"]), "en", "es")
    finally:
        await hub.close()
        await engines.close()
    (utterance,) = {e["utterance_id"] for e in finals}
    said = words(str(finals[-1]["text"]))
    assert {"young", "man", "selfish", "rather"} <= set(said), said
    pieces = registry.get_sample_value("callserver_streamed_pieces_total") or 0
    if not streaming:
        assert dubbed_while_speaking == 0 and pieces == 0
        assert len(delivery.dubs) == 1
        return
    assert dubbed_while_speaking >= 1 and pieces >= 1
    # The pieces, then the rest (none when the pass at the final pause settled the end).
    assert pieces <= len(delivery.dubs) <= pieces + 1
    assert {clip.utterance_id for _, clip in delivery.dubs} == {utterance}
    # Nothing dubbed twice, nothing lost: the joined translation is as long as the whole
    # utterance's translated in one piece (give or take words a clause changes).
    joined = str(finals[-1]["translations"]["es"])
    assert abs(len(joined.split()) - len(whole.split())) <= 0.15 * len(whole.split()), (
        joined,
        whole,
    )


async def paused_sentence(
    spec: SentenceSpec, pause_ends_s: float, **settings: Any
) -> tuple[CollectorRegistry, RecordingDelivery, list[Any], list[dict[str, Any]]]:
    """Ann says one sentence with a pause inside it (ending ``pause_ends_s`` into it) to the
    hub, streaming on (and pipeline ``settings``), real Whisper, Apertium and espeak; the dubs
    sent and the events Beto got during the pause."""
    model = WhisperEngine(SttSettings()).loaded_model()
    paused = await build(model, (spec,))
    pause_end = paused.sentences[0].start_s + pause_ends_s
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    engines = EngineSet(EngineMetrics(registry))
    hub = ann_to_bea(
        registry, delivery, engines, **{"streaming": True, "interim_captions": True, **settings}
    )
    try:
        await (await engines.stt()).warm_up()
        await speak(hub, paused.audio[: int(pause_end * SAMPLE_RATE)], speed=1.0)
        during_pause = [clip for _, clip in delivery.dubs]
        events = [e for pid, e in delivery.events if pid == "p_b"]
        await speak(hub, paused.audio[int(pause_end * SAMPLE_RATE) :], speed=1.0)
        await wait_for(lambda: hub.idle, timeout=90)
    finally:
        await hub.close()
        await engines.close()
    return registry, delivery, during_pause, events


def ends_in_two_dubs(
    registry: CollectorRegistry, delivery: RecordingDelivery, caption: dict[str, Any]
) -> None:
    """A sentence with one pause inside it was dubbed in two, both of its one utterance: the
    piece at the pause, then the rest. The rest is a piece as well when recognition at the
    pause after the sentence heard it (its words are dubbed there and the utterance waits
    for more); otherwise the utterance's end dubs it."""
    assert registry.get_sample_value("callserver_streamed_pieces_total") in {1, 2}
    assert [clip.utterance_id for _, clip in delivery.dubs] == [caption["utterance_id"]] * 2


async def test_a_pause_inside_a_sentence_ends_a_piece_dubbed_while_the_speaker_pauses() -> None:
    """ "unless to be rather cold hearted and [0.9 s] rather selfish is to be ill disposed":
    the words before the pause are dubbed during it, less the "and" a clause does not end on,
    and the utterance's end dubs the rest; one caption holds the whole sentence."""
    spec = SentenceSpec("clip:0890", (("and", 0.9),))
    registry, delivery, during_pause, _ = await paused_sentence(spec, 3.0)
    finals = [e for pid, e in delivery.events if pid == "p_b" and e.get("final")]
    (caption,) = {e["utterance_id"]: e for e in finals}.values()
    assert {"unless", "hearted", "selfish", "disposed"} <= set(words(caption["text"]))
    assert len(during_pause) == 1, during_pause
    # The piece, then the rest: two dubs of the one utterance. The rest is a piece too when
    # recognition at the sentence's end heard it (``ends_in_two_dubs``).
    ends_in_two_dubs(registry, delivery, caption)
    spanish = str(caption["translations"]["es"])
    assert {"ser", "bastante", "egoista"} <= set(words(spanish)), spanish


async def test_a_dubbed_piece_keeps_its_sentence_whole_through_a_pause_with_no_mark() -> None:
    """ "...had then leisure to consider [0.9 s] how much there might be...": recognition at
    the pause writes no full stop (verdict unknown: a plain pause would end the utterance
    after 0.5 s). Those words are dubbed during the pause, so the utterance waits the longer
    streamed silence, and the sentence is recognised and captioned as one. While it waits,
    the caption in progress shows the piece's translation."""
    spec = SentenceSpec("clip:0870", (("consider", 0.9),))
    registry, delivery, during_pause, in_pause = await paused_sentence(spec, 4.4)
    finals = [e for pid, e in delivery.events if pid == "p_b" and e.get("final")]
    (caption,) = {e["utterance_id"]: e for e in finals}.values()
    assert {"dashwood", "leisure", "consider", "prudently", "power"} <= set(
        words(caption["text"])
    ), caption
    assert len(during_pause) == 1, during_pause
    ends_in_two_dubs(registry, delivery, caption)
    drafts = [e for e in in_pause if e["type"] == "caption" and e["translations"].get("es")]
    assert drafts and not drafts[-1]["final"], in_pause
    assert drafts[-1]["utterance_id"] == caption["utterance_id"]
    assert {"dashwood", "ocio", "considerar"} <= set(words(drafts[-1]["translations"]["es"]))
    # Once the final caption is out, no caption in progress replaces it.
    mine = [
        e
        for pid, e in delivery.events
        if pid == "p_b" and e["type"] == "caption" and e["utterance_id"] == caption["utterance_id"]
    ]
    first_final = next(i for i, e in enumerate(mine) if e["final"])
    assert all(e["final"] for e in mine[first_final:])


@pytest.mark.parametrize("wait_when_complete", [True, False])
async def test_a_fragment_whisper_ends_with_a_full_stop_is_dubbed_and_its_sentence_kept_whole(
    wait_when_complete: bool,
) -> None:
    """ "I think the meeting starts [0.7 s] at nine tomorrow morning.": at the pause, Whisper
    writes "I think the meeting start(s)." with a full stop it is sure of, so the words sound
    complete. They are dubbed as a piece all the same, and the utterance waits the streamed
    silence: one caption holds the whole sentence, and its rest is dubbed after the piece.
    With the wait after complete words off, the utterance ends at the pause and the sentence
    is captioned in two."""
    spec = SentenceSpec("I think the meeting starts at nine tomorrow morning.", (("starts", 0.7),))
    registry, delivery, _, _ = await paused_sentence(
        spec, 1.85, streamed_wait_when_complete_max_s=8.0 if wait_when_complete else 0.0
    )
    verdicts = "callserver_sentence_verdicts_total"
    assert (registry.get_sample_value(verdicts, {"verdict": "complete"}) or 0) >= 1
    finals = {e["utterance_id"]: e for pid, e in delivery.events if pid == "p_b" and e.get("final")}
    heard = " ".join(str(e["text"]) for e in finals.values())
    assert {"meeting", "tomorrow", "morning"} <= set(words(heard)), heard
    if not wait_when_complete:
        assert len(finals) == 2, finals
        return
    (caption,) = finals.values()
    assert {"think", "meeting", "tomorrow", "morning"} <= set(words(caption["text"])), caption
    ends_in_two_dubs(registry, delivery, caption)


async def test_an_utterance_its_pieces_held_whole_is_heard_at_its_last_piece() -> None:
    """The pass at the last pause committed every word, then the speaker stopped: nothing is
    left to dub, and the utterance's mouth to ear is where its last piece started playing."""
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    engines = EngineSet(EngineMetrics(registry))
    hub = ann_to_bea(registry, delivery, engines, streaming=True)
    ann, bea = hub.participants("room")
    streamed = Streamed(StablePrefix(min_words=4))
    piece = streamed.prefix.offer("I think the meeting starts at nine", at_pause=True)
    assert piece is not None
    queued = asyncio.get_running_loop().create_future()
    queued.set_result(None)  # the piece's dub was queued (what the streamer's task does)
    streamed.add(piece, asyncio.ensure_future(queued))
    streamed.translations[0]["es"] = "Creo que la reunión empieza a las nueve"
    t0 = time.monotonic()
    utterance = Utterance("u_1", np.zeros(32000, np.float32), t0, t0 + 2.0, t0 + 2.5)
    heard = Transcript("I think the meeting starts at nine.", "en", 1.0, (), 2.0)
    try:
        await hub.translator.translate(
            "room", ann, utterance, [ann, bea], transcript=heard, streamed=streamed
        )
        assert delivery.dubs == []  # nothing left to dub
        assert not [e for _, e in delivery.events if e["type"] == "latency"]
        streamed.heard(0, bea.id).set_result(t0 + 2.3)  # the mixer played the piece's first frame
        await asyncio.sleep(0)
    finally:
        await hub.close()
        await engines.close()
    (latency,) = [e for pid, e in delivery.events if pid == bea.id and e["type"] == "latency"]
    assert latency["part"] == "pieces"
    assert latency["stages_ms"]["mouth_to_ear"] == pytest.approx(300, abs=1)
    assert registry.get_sample_value("callserver_mouth_to_ear_seconds_count") == 1
    final = [e for pid, e in delivery.events if pid == bea.id and e.get("final")][-1]
    assert final["translations"]["es"] == "Creo que la reunión empieza a las nueve"


#: A pause for ``pieces_at_pauses``: the utterance's id, the words heard, seconds of speech
#: before the pause, the verdict on them and, optionally, the probability of their final mark.
Pause = tuple[str, str, float, Verdict] | tuple[str, str, float, Verdict, float | None]


async def pieces_at_pauses(pauses: list[Pause], echo: str = "") -> tuple[list[bool], list[str]]:
    """Ann pauses at each of ``pauses`` and the streamer decides whether a piece ends there.
    Returns whether each pause lets the utterance wait as after a piece, and the utterances
    of the dubs Bea got, in the order they came. ``echo``: a text Ann was sent."""
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    engines = EngineSet(EngineMetrics(registry))
    hub = ann_to_bea(registry, delivery, engines, streaming=True)
    ann, _ = hub.participants("room")
    state = SpeakerState("room", ann.id)
    hub.echo_guard(ann.id).sent(echo)
    audio = np.zeros(SAMPLE_RATE, np.float32)
    pieces = "callserver_streamed_pieces_total"
    held = []
    try:
        for utterance_id, heard, spoken_s, verdict, *end in pauses:
            now = time.monotonic()
            paused = SpeechPaused(utterance_id, audio, now - spoken_s, now)
            held.append(hub._streamer.at_pause(state, ann, paused, heard, verdict, *end))
        await wait_for(
            lambda: 0 < (registry.get_sample_value(pieces) or 0) <= len(delivery.dubs), timeout=30
        )
        await asyncio.sleep(0.5)  # time for any other dub to come
    finally:
        await hub.close()
        await engines.close()
    assert registry.get_sample_value(pieces) == len(delivery.dubs)
    return held, [clip.utterance_id for _, clip in delivery.dubs]


async def test_words_at_a_pause_that_are_a_dub_coming_back_are_not_dubbed() -> None:
    """Ann's microphone hears the dub she was sent: the words at her pause are that dub's, so
    no piece of them goes to Bea (the final text is dropped as echo too). Other words at a
    pause are dubbed as a piece."""
    sent = "I think the meeting starts at nine tomorrow morning."
    held, dubbed = await pieces_at_pauses(
        [
            ("u_echo", sent, 3.0, Verdict.UNKNOWN),
            ("u_own", "Could you send me the report", 2.0, Verdict.UNKNOWN),
        ],
        echo=sent,
    )
    assert held == [False, True]
    assert dubbed == ["u_own"]


async def test_complete_words_are_a_piece_held_open_only_in_an_utterance_not_yet_long() -> None:
    """Words judged complete 3 s into an utterance are dubbed as a piece and the utterance may
    wait for the sentence to go on; 9 s in (past `streamed_wait_when_complete_max_s`, 8 s),
    they are left to the utterance's end, which comes after the short complete silence."""
    assert PipelineSettings().streamed_wait_when_complete_max_s == 8.0
    held, dubbed = await pieces_at_pauses(
        [
            ("u_short", "I think the meeting starts.", 3.0, Verdict.COMPLETE),
            ("u_long", "Could you send me the report before lunch?", 9.0, Verdict.COMPLETE),
        ]
    )
    assert held == [True, False]
    assert dubbed == ["u_short"]


async def test_a_few_words_after_a_piece_wait_unless_whisper_is_sure_they_end_it() -> None:
    """ "And so, my fellow Americans, [piece] ask not." Two words after the piece, too few
    for one, with a full stop Whisper doubts (0.68): the utterance waits as after a piece, so
    "what your country can do for you" joins them. The same with a sure full stop ("...before
    lunch?", 0.91) ends the utterance after the short silence. Neither tail is dubbed alone."""
    assert PipelineSettings().streamed_tail_min_end_probability == 0.8
    first, asked = "And so, my fellow Americans,", "Could you send me the report?"
    whole = "Could you send me the report before lunch?"
    held, dubbed = await pieces_at_pauses(
        [
            ("u_1", first, 3.0, Verdict.UNFINISHED),
            ("u_1", f"{first} ask not.", 3.0, Verdict.COMPLETE, 0.68),
            ("u_1", f"{first} ask not.", 3.0, Verdict.COMPLETE, 0.91),
            ("u_1", f"{first} ask not", 3.0, Verdict.UNKNOWN, None),
            ("u_2", asked, 3.0, Verdict.COMPLETE, 0.96),
            ("u_2", whole, 3.0, Verdict.COMPLETE, 0.91),
            # A mark of unknown probability (a full-window decode) is taken at its word.
            ("u_2", whole, 3.0, Verdict.COMPLETE, None),
        ]
    )
    assert held == [True, True, False, True, True, False, False]
    # One piece each (the first words of each), dubbed at once: in whichever order their
    # translations were ready.
    assert sorted(dubbed) == ["u_1", "u_2"]


async def test_a_dramatic_pause_after_two_words_does_not_end_the_sentence() -> None:
    """The issue's speech: "And so, my fellow Americans, [0.9 s] ask not [1.0 s] what your
    country can do for you, [0.8 s] ask what you can do for your country." At the pause after
    "ask not" Whisper writes a full stop (0.68); the utterance waits as after a piece, and the
    sentence is one caption, "ask not what your country" in it as said."""
    spec = SentenceSpec(
        "And so, my fellow Americans, ask not what your country can do for you, "
        "ask what you can do for your country.",
        (("americans", 0.9), ("not", 1.0), ("you", 0.8)),
    )
    _, delivery, _, _ = await paused_sentence(spec, 4.0)
    finals = {e["utterance_id"]: e for pid, e in delivery.events if pid == "p_b" and e.get("final")}
    (caption,) = finals.values()
    assert "ask not what your country" in " ".join(words(str(caption["text"]))), caption


# --- in a real call ---------------------------------------------------------------------------


@pytest.mark.needs("apertium", "espeak-ng")
async def test_in_a_call_the_listener_hears_the_first_clause_before_the_sentence_ends(
    make_server: Callable[..., Any],
) -> None:
    """Ann says an 8 s utterance over aiortc; Beto, listening in Spanish, is sent the dub of
    its first clause while she is still speaking, then the rest, with one caption for all."""
    engines = EngineSet(EngineMetrics(), mt_settings=MtSettings(engines=["apertium"]))
    pipeline = PipelineSettings(streaming=True)
    sentence = long_utterance()
    async with make_server(translate_calls=True, engines=engines, pipeline=pipeline) as server:
        await (await engines.stt()).warm_up()
        async with callers(server, "streaming", ANN, BETO) as (ann, beto):
            ann.play(speech_then_silence(sentence))
            await wait_for(lambda: ann.play_started != [], 10)
            speech_ends = ann.play_started[-1] + sentence.size / SAMPLE_RATE
            await drain(server, ann)
            await wait_for(lambda: bool(finals(beto, ann)), 30)
            received = list(zip(beto.events, beto.event_times, strict=True))
    early = [
        at
        for event, at in received
        if event.get("type") == "latency" and event.get("part") == "prefix"
    ]
    assert early, [event for event, _ in received if event.get("type") == "latency"]
    # The clause's dub reached Beto's mix before Ann stopped speaking.
    assert early[0] < speech_ends, (early[0], speech_ends)
    prefix = next(e for e, _ in received if e.get("part") == "prefix")
    assert 0 < prefix["start_to_dub_ms"] < sentence.size / SAMPLE_RATE * 1000
    (caption,) = {e["utterance_id"]: e for e in finals(beto, ann)}.values()
    assert {"young", "man", "selfish"} <= set(words(caption["text"])), caption["text"]
    spanish = set(words(caption["translations"]["es"]))
    assert {"hombre", "joven", "egoista"} <= spanish, caption["translations"]


async def test_a_piece_that_fails_to_translate_loses_no_words() -> None:
    """Fault injection: the first clause's translation raises. No later clause plays ahead
    of it; the utterance's end dubs everything from that clause on."""
    registry = CollectorRegistry()
    delivery = RecordingDelivery()
    engines = EngineSet(EngineMetrics(registry))
    hub = ann_to_bea(registry, delivery, engines, streaming=True, interim_captions=True)
    service = await engines.translation()
    real = service.translate
    calls: list[str] = []

    async def first_fails(text: str, source: str, target: str) -> str:
        calls.append(text)
        if len(calls) == 1:
            raise EngineError("fault injection: the translator is away")
        return await real(text, source, target)

    service.translate = first_fails  # type: ignore[method-assign]
    try:
        await (await engines.stt()).warm_up()
        await speak(hub, np.concatenate([noise(0.5, 0), long_utterance(), noise(1.5, 2)]), 1.0)
        await wait_for(lambda: hub.idle, timeout=90)
        finals = [e for pid, e in delivery.events if pid == "p_b" and e.get("final")]
        whole = await real(str(finals[-1]["text"]), "en", "es")
    finally:
        await hub.close()
        await engines.close()
    assert len(calls) >= 2  # the failed clause, then the end (and any clause after the first)
    # Only the end's dub played: every clause after the failed one waited for it and stopped.
    assert len(delivery.dubs) == 1
    joined = str(finals[-1]["translations"]["es"])
    assert abs(len(joined.split()) - len(whole.split())) <= 0.15 * len(whole.split()), (
        joined,
        whole,
    )
