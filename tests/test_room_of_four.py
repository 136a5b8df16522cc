"""A room of four with three listening languages, over real aiortc callers (issue 14).

Ann speaks and listens in English, Beto in Spanish, Chi in Vietnamese; Dan speaks English but
listens in Spanish. Ann and Dan say recorded English sentences (the only recorded speech in
tests/data), then Beto says a Spanish one (espeak-ng: no Spanish recording is offline), one
after another. Each listener whose language differs from the speaker's must get the caption
translated into their language and hear it dubbed in their own audio track; a listener who
listens in the speaker's language (Ann for Dan, Dan for Beto) gets neither a dub nor a
translation into it; everyone, the speaker included, gets each final caption naming the speaker.

Engines as in tests/test_translated_call.py: real Silero endpointing, Whisper base, Apertium for
English<->Spanish (a real translation, checked word by word), a tiny random-weight NLLB model
for the pairs with Vietnamese (its output is meaningless but non-empty: only that it is there
and voiced can be checked), Piper's installed English voice and espeak-ng for the others.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from callserver.media.frames import Pcm16
from callserver.pairs import primary
from callserver.pipeline.echo import words
from callserver.probe import ScriptedCaller, load_wav_48k
from models.mt.synthetic import TINY, SyntheticModel, cached_model
from tests.conftest import CLIPS, RunningServer, wait_for
from tests.pipeline_helpers import (
    ANN,
    BETO,
    TIMEOUT,
    callers,
    drain,
    dropped,
    finals,
    latencies,
    outcomes,
    rms,
    scrape,
    translating_server,
    utterances_of,
)

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.needs("apertium", "espeak-ng"),
]

CHI = {"name": "Chi", "spoken": "vi", "listen": "vi"}
#: Speaks English, listens in Spanish: what he hears follows ``listen``, not ``spoken``.
DAN = {"name": "Dan", "spoken": "en", "listen": "es"}

SPANISH_TEXT = "Buenos días a todos. La casa es muy grande y bonita."

#: Block RMS (int16) above which received audio counts as speech, and under which as quiet.
LOUD_RMS = 300.0
QUIET_RMS = 150.0
#: 20 ms blocks of loud audio that prove a dub is playing (not a click).
DUB_BLOCKS = 10
#: The dub's audio may reach the caller a little before its ``latency`` event.
EVENT_SLACK_S = 0.2


@dataclass(frozen=True)
class Turn:
    """What one speaker says and the words a right recognition and translation contain."""

    speaker: ScriptedCaller
    speech: Pcm16
    said: frozenset[str]
    #: Listening language -> words its translation must contain (Apertium's pairs only).
    translated: dict[str, frozenset[str]]


@dataclass
class Heard:
    """One turn as the room got it."""

    utterance_id: str
    #: The listeners who must hear a dub, and those who must not.
    dubbed: list[ScriptedCaller]
    undubbed: list[ScriptedCaller]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_nllb(tmp_path_factory: pytest.TempPathFactory) -> SyntheticModel:
    return cached_model(TINY, tmp_path_factory.mktemp("mt-model"))


@pytest.fixture(scope="module")
def spanish(tmp_path_factory: pytest.TempPathFactory) -> Pcm16:
    """``SPANISH_TEXT`` spoken by espeak-ng, 48 kHz mono s16."""
    path = tmp_path_factory.mktemp("espeak") / "es.wav"
    subprocess.run(["espeak-ng", "-v", "es", "-w", str(path), SPANISH_TEXT], check=True, timeout=30)
    return load_wav_48k(str(path))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def room_server(
    make_server_module: Callable[..., Any], tiny_nllb: SyntheticModel
) -> AsyncIterator[RunningServer]:
    async with translating_server(make_server_module, tiny_nllb) as server:
        yield server


# --- helpers ----------------------------------------------------------------------------------


async def new_room(server: RunningServer, capacity: int) -> str:
    async with server.session.post(server.url + "/api/rooms", json={"capacity": capacity}) as r:
        assert r.status == 201, await r.text()
        body = await r.json()
    assert body["capacity"] == capacity
    room: str = body["id"]
    return room


def dub_started(listener: ScriptedCaller, utterance_id: str) -> float | None:
    """When ``listener`` was told the first frame of the utterance's dub was in its mix."""
    for event, at in zip(listener.events, listener.event_times, strict=True):
        if event.get("type") == "latency" and event["utterance_id"] == utterance_id:
            return at
    return None


def blocks_between(caller: ScriptedCaller, start: float, end: float) -> list[Pcm16]:
    rec = caller.recording
    return [b for t, b in zip(rec.arrivals, rec.blocks, strict=True) if start <= t < end and b.size]


def hears_dub(listener: ScriptedCaller, utterance_id: str) -> bool:
    """The dub's first frame was mixed for ``listener`` and loud audio arrived from then on.

    Nobody speaks then (the speaker stopped before the endpoint, the next one has not
    started), so the loud audio is the dub.
    """
    started = dub_started(listener, utterance_id)
    if started is None:
        return False
    loud = blocks_between(listener, started - EVENT_SLACK_S, float("inf"))
    return sum(rms(b) > LOUD_RMS for b in loud) >= DUB_BLOCKS


def last_final(caller: ScriptedCaller, speaker: ScriptedCaller) -> dict[str, Any]:
    """The last final caption from ``speaker``: each translation resends it with one more."""
    shown = finals(caller, speaker)
    assert shown, (caller.name, speaker.name, caller.events)
    return shown[-1]


async def take_turn(turn: Turn, people: list[ScriptedCaller]) -> Heard:
    """``turn.speaker`` speaks; wait until every listener who should hears the dub."""
    speaker = turn.speaker
    others = [p for p in people if p is not speaker]
    dubbed = [p for p in others if primary(p.listen) != primary(speaker.spoken)]
    undubbed = [p for p in others if p not in dubbed]
    speaker.play(turn.speech)

    def everyone_heard() -> bool:
        said = utterances_of(speaker, speaker)
        if not said or not all(finals(p, speaker) for p in people):
            return False
        return all(hears_dub(p, utterance_id) for utterance_id in said for p in dubbed)

    try:
        await wait_for(everyone_heard, TIMEOUT)
    except TimeoutError:
        pytest.fail(
            f"{speaker.name}'s speech was not heard by all of "
            f"{[p.name for p in dubbed]} within {TIMEOUT} s: "
            + "; ".join(f"{p.name}: {p.events}" for p in people)
        )
    now = time.monotonic()
    ids = {p.name: utterances_of(p, speaker) for p in people}
    # One sentence, one utterance, and everyone got the same one.
    assert len(ids[speaker.name]) == 1, ids
    (utterance_id,) = ids[speaker.name]
    assert all(seen == {utterance_id} for seen in ids.values()), ids
    # While the others heard the dub, those who listen in the speaker's language heard quiet:
    # the speaker's voice had ended (the endpoint waits for 0.5 s of it) and nobody else spoke.
    first_dub = min(dub_started(p, utterance_id) or now for p in dubbed)
    for listener in undubbed:
        window = blocks_between(listener, first_dub - EVENT_SLACK_S, now)
        assert window, listener.name
        loudest = max(rms(b) for b in window)
        assert loudest < QUIET_RMS, (listener.name, speaker.name, loudest)
    return Heard(utterance_id, dubbed, undubbed)


# --- the test ---------------------------------------------------------------------------------


async def test_room_of_four_hears_each_speaker_in_their_own_language(
    room_server: RunningServer, spanish: Pcm16
) -> None:
    server = room_server
    room = await new_room(server, 4)
    before = await scrape(server)
    async with callers(server, room, ANN, BETO, CHI, DAN) as people:
        ann, beto, _, dan = people
        turns = [
            Turn(
                ann,
                load_wav_48k(str(CLIPS[1])),  # "he was not an ill disposed young man"
                frozenset({"he", "was", "not", "young", "man"}),
                # Apertium: "No fue un enfermo-hombre joven colocado."
                {"es": frozenset({"hombre", "joven"})},
            ),
            Turn(
                dan,
                # "unless to be rather cold hearted and rather selfish is to be ill disposed"
                load_wav_48k(str(CLIPS[2])),
                frozenset({"rather", "selfish"}),
                {"es": frozenset({"egoista"})},
            ),
            Turn(
                beto,
                spanish,
                frozenset({"casa", "grande"}),
                {"en": frozenset({"house", "big"})},
            ),
        ]
        heard = {turn.speaker.name: await take_turn(turn, people) for turn in turns}
        await drain(server, *people)

        for turn in turns:
            speaker = turn.speaker
            got = heard[speaker.name]
            # Only the others' languages, and only those that differ from the speaker's.
            languages = {p.listen for p in got.dubbed}
            for caller in people:  # the speaker's own page too
                caption = last_final(caller, speaker)
                who = (caller.name, speaker.name, caption)
                assert caption["utterance_id"] == got.utterance_id, who
                assert caption["speaker"] == speaker.participant_id, who
                assert caption["speaker_name"] == speaker.name, who
                assert caption["language"] == speaker.spoken, who
                assert turn.said <= set(words(caption["text"])), who
                assert set(caption["translations"]) == languages, who
                for language, text in caption["translations"].items():
                    assert text.strip() and text.strip() != caption["text"].strip(), who
                    assert turn.translated.get(language, frozenset()) <= set(words(text)), who
                    if language in turn.translated:
                        assert not set(words(text)) & turn.said, who
            assert not latencies(speaker, [got.utterance_id])
            for listener in got.dubbed:
                (latency,) = latencies(listener, [got.utterance_id])
                assert latency["language"] == listener.listen, latency
                assert latency["stages_ms"]["mouth_to_ear"] > 0, latency
            for listener in got.undubbed:
                assert not latencies(listener, [got.utterance_id]), listener.name

        assert not any(e.get("type") == "caption-dropped" for p in people for e in p.events), [
            dropped(p, "catch_up") + dropped(p, "backlog") for p in people
        ]
    ended = await outcomes(server, before)
    assert ended["translated"] == len(turns) and ended["failed"] == 0, ended
