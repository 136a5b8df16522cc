"""Two scripted aiortc callers hear each other through the server's mixer."""

from __future__ import annotations

import asyncio

import numpy as np

from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.probe import ScriptedCaller
from tests.conftest import RunningServer, envelope_match, wait_for


async def _speak_and_check(speaker: ScriptedCaller, listener: ScriptedCaller, clip: Pcm16) -> None:
    mark = len(listener.recording.blocks)
    speaker.play(clip)
    await wait_for(lambda: not speaker.sending, timeout=30)
    await asyncio.sleep(0.5)  # the tail crosses two legs
    heard = np.concatenate(listener.recording.blocks[mark:])
    match, lag = envelope_match(clip, heard)
    assert match > 0.9, f"received audio does not match the sent clip (r={match:.2f})"
    # The same measure on the clip played backwards stays low: the check can fail.
    control, _ = envelope_match(clip[::-1].copy(), heard)
    assert control < match - 0.2
    onset = listener.recording.onset_after(speaker.play_started[-1])
    assert onset is not None
    assert onset - speaker.play_started[-1] < 1.0
    assert lag < 2.0


async def test_two_callers_hear_each_other_and_rejoin(server: RunningServer, speech: Pcm16) -> None:
    alice = server.caller(name="Alice")
    bob = server.caller(name="Bob", spoken="vi", listen="en")
    welcome = await alice.join("room-audio-1")
    assert welcome["room"]["capacity"] == 2
    await bob.join("room-audio-1")
    joined = await alice.expect("participant-joined")
    assert joined["participant"]["name"] == "Bob"
    assert joined["participant"]["spoken"] == "vi"
    await asyncio.gather(alice.start_media(), bob.start_media())
    assert {"type": "media-ready"} in alice.events
    clip = speech[: SAMPLE_RATE * 3]

    await _speak_and_check(alice, bob, clip)
    await _speak_and_check(bob, alice, clip)

    await bob.leave()
    left = await alice.expect("participant-left")
    assert left["participant_id"] == bob.participant_id
    await bob.join("room-audio-1")
    await bob.start_media()
    await _speak_and_check(alice, bob, clip)

    await alice.close()
    await bob.close()
