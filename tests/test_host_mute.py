"""A host's mute, enforced by the media plane, and the active-speaker events, over real aiortc
callers and the real engines (Silero, Whisper). Everyone speaks and listens in English, so
captions are the original text and no translation engine is involved.

The mute is applied with the host's ``mute`` message, or with ``MediaPlane.set_muted`` (what
the signaling hub calls for it) where the moment of the mute must be exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from callserver.app import ENGINES, MEDIA, TRANSLATION
from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16, PcmFrame, silence
from callserver.media.plane import MediaLimits, MediaPlane
from callserver.pipeline.echo import words
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.events import SpeechDiscarded, SpeechStarted, Utterance
from callserver.pipeline.speaker import SpeakerPipeline, SpeechEvent
from callserver.probe import ScriptedCaller, load_wav_48k
from models.pool import InferencePool
from tests.conftest import CLIPS, DATA, RunningServer, wait_for
from tests.pipeline_helpers import (
    callers,
    captions,
    finals,
    received_between,
    rms,
    speech_then_silence,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM_OFFER = (DATA / "chromium-offer.sdp").read_text().replace("\n", "\r\n")
ANN = {"name": "Ann", "spoken": "en", "listen": "en"}
BOB = {"name": "Bob", "spoken": "en", "listen": "en"}
#: Generous for a loaded machine; the tests take seconds when nothing is wrong.
TIMEOUT = 30.0
#: Received audio louder than this (RMS of s16) is a voice: the clips sent are at 1400-2000.
HEARD = 300.0
#: Quieter than this is silence: what a muted speaker leaves (with the gate open, 550+).
QUIET = 100.0
#: Frames already in the listener's jitter buffer and on the wire when the mute comes.
SETTLE_S = 0.5


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mute_server(make_server_module: Callable[..., Any]) -> AsyncIterator[RunningServer]:
    async with make_server_module(translate_calls=True) as server:
        await (await server.app[ENGINES].stt()).warm_up()
        yield server


def clip(n: int) -> Pcm16:
    """A recorded sentence: 0 is 7 s long, 1 is 3 s ("he was not an ill disposed young man")."""
    return load_wav_48k(str(CLIPS[n]))


def speaking(caller: ScriptedCaller, speaker: ScriptedCaller) -> list[bool]:
    """The ``speaking`` states ``caller`` was told of ``speaker``, in order."""
    return [
        e["speaking"]
        for e in caller.events
        if e.get("type") == "speaking" and e.get("speaker") == speaker.participant_id
    ]


def speaking_times(caller: ScriptedCaller, speaker: ScriptedCaller) -> list[float]:
    """When each of ``speaking(caller, speaker)`` arrived (monotonic)."""
    return [
        t
        for e, t in zip(caller.events, caller.event_times, strict=True)
        if e.get("type") == "speaking" and e.get("speaker") == speaker.participant_id
    ]


def interims(caller: ScriptedCaller, speaker: ScriptedCaller) -> list[dict[str, Any]]:
    return [e for e in captions(caller, speaker) if not e["final"] and e["text"]]


async def played(caller: ScriptedCaller, samples: Pcm16) -> tuple[float, float]:
    """Play ``samples`` to the end; (when the first block left, when the last one had)."""
    caller.play(samples)
    await wait_for(lambda: not caller.sending, TIMEOUT)
    return caller.play_started[-1], time.monotonic()


async def test_the_plane_keeps_a_mute_from_before_the_peer_until_the_participant_goes() -> None:
    """The mute state lives per room and participant: a peer made later starts muted, a
    failed connection's replacement too, and ``remove`` forgets it. Hooks hear each change
    once; a mute for someone already gone is no error."""
    plane = MediaPlane(MediaLimits())
    changes: list[tuple[str, str, bool]] = []
    plane.mute_hooks.append(lambda room, pid, muted: changes.append((room, pid, muted)))
    try:
        plane.set_muted("room-m", "p_a", True)
        plane.set_muted("room-m", "p_a", True)  # no change: not announced again
        await plane.answer("room-m", "p_a", CHROMIUM_OFFER)
        await plane.answer("room-m", "p_b", CHROMIUM_OFFER)
        first = plane.peer("room-m", "p_a")
        assert first is not None and first.muted
        other = plane.peer("room-m", "p_b")
        assert other is not None and not other.muted
        plane.set_muted("room-m", "p_a", False)
        assert not first.muted
        plane.set_muted("room-m", "p_a", True)
        assert first.muted
        # The connection fails; the participant is still in the room and offers again.
        await first.close("failed")
        await plane.answer("room-m", "p_a", CHROMIUM_OFFER)
        again = plane.peer("room-m", "p_a")
        assert again is not None and again is not first and again.muted
        # Leaving forgets the mute: the same id (a new peer) would start unmuted.
        await plane.remove("room-m", "p_a")
        await plane.answer("room-m", "p_a", CHROMIUM_OFFER)
        fresh = plane.peer("room-m", "p_a")
        assert fresh is not None and not fresh.muted
        plane.set_muted("room-m", "p_gone", False)  # never muted: nothing to do
        plane.set_muted("room-gone", "p_gone", True)
        await plane.remove("room-gone", "p_gone")
        assert changes == [
            ("room-m", "p_a", True),
            ("room-m", "p_a", False),
            ("room-m", "p_a", True),
            ("room-gone", "p_gone", True),
        ]
    finally:
        await plane.close()


async def test_a_mute_cuts_the_speaker_off_mid_sentence_until_unmuted(
    mute_server: RunningServer,
) -> None:
    """Ann is muted while she speaks, once her words show as an interim caption: Bob hears
    nothing more of her, nothing more of hers reaches recognition, the half sentence is
    retracted rather than captioned, and she stops being the active speaker. Unmuted, she
    is heard and captioned again."""
    server = mute_server
    media, hub = server.app[MEDIA], server.app[TRANSLATION]
    room = "mute-mid-sentence"
    async with callers(server, room, ANN, BOB) as (ann, bob):
        ann_id = str(ann.participant_id)
        ann.play(speech_then_silence(clip(0)))
        await wait_for(lambda: bool(interims(bob, ann)), TIMEOUT)
        cut = interims(bob, ann)[0]["utterance_id"]
        muted_at = time.monotonic()
        media.set_muted(room, ann_id, True)
        frames_at_mute = hub.frames_received(ann_id)
        started = ann.play_started[-1]
        spoken_after_mute = started + clip(0).size / SAMPLE_RATE - muted_at
        assert spoken_after_mute > 3, "the clip was nearly over at the mute: nothing to cut off"
        await wait_for(lambda: not ann.sending, TIMEOUT)
        ended = time.monotonic()

        # Heard until the mute (the control: the same measure can see her voice), then not.
        assert rms(received_between(bob, started, muted_at)) > HEARD
        assert rms(received_between(bob, muted_at + SETTLE_S, ended)) < QUIET
        # Not one frame of hers reached voice detection while she was muted.
        assert hub.frames_received(ann_id) == frames_at_mute
        # The half sentence is retracted (an empty final caption), never captioned as whole.
        await wait_for(
            lambda: any(e["final"] and e["utterance_id"] == cut for e in captions(bob, ann)),
            TIMEOUT,
        )
        assert not finals(bob, ann), finals(bob, ann)
        assert speaking(bob, ann) == [True, False]
        assert speaking_times(bob, ann)[-1] > muted_at

        media.set_muted(room, ann_id, False)
        started, _ = await played(ann, speech_then_silence(clip(1)))
        await wait_for(lambda: bool(finals(bob, ann)), TIMEOUT)
        assert rms(received_between(bob, started, started + 2.5)) > HEARD
        (said,) = finals(bob, ann)
        assert said["utterance_id"] != cut
        assert {"young", "man"} <= set(words(said["text"])), said
        assert speaking(bob, ann) == [True, False, True, False]
        # Nothing revived the half sentence after its retraction.
        last = [e for e in captions(bob, ann) if e["utterance_id"] == cut][-1]
        assert last["final"] and not last["text"], last


async def test_a_mute_before_the_first_offer_holds_once_media_connects(
    mute_server: RunningServer,
) -> None:
    """Bob, the host, mutes Ann with the protocol's ``mute`` before her media connects: from
    her first frame on she is neither heard nor detected; unmuted, Bob hears her."""
    server = mute_server
    media, hub = server.app[MEDIA], server.app[TRANSLATION]
    async with server.session.post(server.url + "/api/rooms", json={"capacity": 2}) as made:
        hosted = await made.json()
    room = hosted["id"]
    ann, bob = server.caller(**ANN), server.caller(**BOB)
    try:
        await bob.join(room, host_key=hosted["host_key"])
        await ann.join(room)
        ann_id = str(ann.participant_id)
        await bob.send({"type": "mute", "participant": ann_id, "muted": True})
        assert (await ann.expect("participant-updated"))["participant"]["muted"] is True
        await asyncio.gather(ann.start_media(), bob.start_media())
        peer = media.peer(room, ann_id)
        assert peer is not None and peer.muted

        started, ended = await played(ann, speech_then_silence(clip(1), 1.0))
        await asyncio.sleep(SETTLE_S)
        assert rms(received_between(bob, started, ended + SETTLE_S)) < QUIET
        assert hub.frames_received(ann_id) == 0
        assert not captions(bob, ann) and not speaking(bob, ann)

        await bob.send({"type": "mute", "participant": ann_id, "muted": False})
        assert (await ann.expect("participant-updated"))["participant"]["muted"] is False
        started, _ = await played(ann, clip(1))
        await wait_for(lambda: bool(received_between(bob, started + 2.5).size), TIMEOUT)
        assert rms(received_between(bob, started, started + 2.5)) > HEARD
        assert hub.frames_received(ann_id) > 0
    finally:
        await ann.close()
        await bob.close()


async def test_speaking_events_follow_the_voice_detection(mute_server: RunningServer) -> None:
    """Ann says a sentence: everyone in the room, Ann included, is told once that she
    started and once that she stopped, before her caption. She starts another and leaves
    in the middle of it: Bob is told she stopped."""
    server = mute_server
    async with callers(server, "speaking-events", ANN, BOB) as (ann, bob):
        started, _ = await played(ann, speech_then_silence(clip(1)))
        await wait_for(lambda: bool(finals(bob, ann)) and bool(finals(ann, ann)), TIMEOUT)
        for caller in (bob, ann):
            assert speaking(caller, ann) == [True, False], caller.name
        on, off = speaking_times(bob, ann)
        # "started" comes while she speaks (not at the end), "stopped" before the caption.
        assert started < on < started + clip(1).size / SAMPLE_RATE
        final_at = next(
            t
            for e, t in zip(bob.events, bob.event_times, strict=True)
            if e.get("type") == "caption" and e["final"] and e["text"]
        )
        assert off < final_at
        assert not speaking(bob, bob)  # Bob sent only silence

        ann.play(clip(0))
        await wait_for(lambda: speaking(bob, ann) == [True, False, True], TIMEOUT)
        await ann.leave()
        await wait_for(lambda: speaking(bob, ann) == [True, False, True, False], TIMEOUT)


def push(front: SpeakerPipeline, samples: Pcm16, t0: float) -> float:
    """Feed ``samples`` as 20 ms frames captured from ``t0``; return the time after them."""
    blocks = np.concatenate((samples, silence((-samples.size) % FRAME_SAMPLES)))
    for block in blocks.reshape(-1, FRAME_SAMPLES):
        t0 += FRAME_SAMPLES / SAMPLE_RATE
        front.push(PcmFrame(block, captured_at=t0))
    return t0


async def test_speaking_changes_once_across_a_cut_and_ends_at_a_cut_off() -> None:
    """Detection alone: a long sentence cut into utterances at the maximum length is one
    stretch of speaking, not a flicker at each cut; ``cut_off`` (a mute) ends speech in
    progress with a discard, not an utterance."""
    pool = InferencePool("vad", workers=1, max_queue=10_000)
    events: list[SpeechEvent] = []
    changes: list[bool] = []
    settings = EndpointSettings(max_utterance_s=2.0, cut_search_s=1.0)
    front = SpeakerPipeline("p_a", settings, pool, events.append, 10_000, changes.append)
    try:
        t = push(front, np.concatenate((clip(0), silence(SAMPLE_RATE))), time.monotonic())
        await wait_for(lambda: front.idle, TIMEOUT)
        cut_and_going_on = [
            i
            for i, e in enumerate(events[:-1])
            if isinstance(e, Utterance) and e.cut and isinstance(events[i + 1], SpeechStarted)
        ]
        assert cut_and_going_on, "no cut inside speech: the case under test did not happen"
        assert changes == [True, False]
        assert not front.speaking

        before = len(events)
        push(front, clip(1)[: 3 * SAMPLE_RATE // 2], t)
        await wait_for(lambda: changes == [True, False, True], TIMEOUT)
        front.cut_off()
        await wait_for(lambda: front.idle, TIMEOUT)
        assert changes == [True, False, True, False]
        later = events[before:]
        assert any(isinstance(e, SpeechDiscarded) for e in later), later
        assert not any(isinstance(e, Utterance) for e in later), later
    finally:
        await front.close()
        pool.close()
