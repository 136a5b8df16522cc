"""Two scripted aiortc callers hear each other through the server's mixer."""

from __future__ import annotations

import asyncio

from callserver.media.frames import SAMPLE_RATE, Pcm16
from tests.caller_helpers import speak_and_check
from tests.conftest import RunningServer


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

    await speak_and_check(alice, bob, clip)
    await speak_and_check(bob, alice, clip)

    await bob.leave()
    left = await alice.expect("participant-left")
    assert left["participant_id"] == bob.participant_id
    await bob.join("room-audio-1")
    await bob.start_media()
    await speak_and_check(alice, bob, clip)

    await alice.close()
    await bob.close()
