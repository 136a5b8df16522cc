"""What the pipeline tells callers when it cannot keep up, and broken audio in a live call,
over real aiortc callers and the real engines (Silero, Whisper, Apertium, espeak-ng).

One server for the module, with tight bounds: one recognition at a time, one utterance
waiting for it, and a listener's dub queue that tolerates one second of backlog.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiortc.mediastreams import MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

from callserver.app import ENGINES
from callserver.media.frames import SAMPLE_RATE, Pcm16, silence
from callserver.pipeline.echo import words
from callserver.pipeline.settings import PipelineSettings
from callserver.probe import ScriptedCaller, load_wav_48k, trim_silence
from tests.conftest import CLIPS, RunningServer, wait_for
from tests.pipeline_helpers import (
    BETO,
    TIMEOUT,
    callers,
    delta,
    drain,
    dropped,
    finals,
    latencies,
    outcomes,
    received_between,
    rms,
    scrape,
    speech_then_silence,
    utterances_of,
)

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.needs("apertium", "espeak-ng"),
]

#: Sentences that share no words with the recorded clips or with each other, so the echo
#: guard (which compares a speaker's words with what they were sent) lets them all through.
SENTENCES = (
    "The train leaves the station at nine in the morning.",
    "My sister grows tomatoes and green beans in her garden.",
)


@pytest.fixture(scope="module")
def english(tmp_path_factory: pytest.TempPathFactory) -> list[Pcm16]:
    """``SENTENCES`` spoken by espeak-ng, 48 kHz mono s16."""
    folder = tmp_path_factory.mktemp("espeak-en")
    spoken = []
    for n, text in enumerate(SENTENCES):
        path = folder / f"{n}.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(path), text], check=True, timeout=30)
        spoken.append(trim_silence(load_wav_48k(str(path))))
    return spoken


def tight(make_server_module: Callable[..., Any], streaming: bool) -> Any:
    """A server with one recognition slot, one waiting place and a 1 s dub queue."""
    return make_server_module(
        translate_calls=True,
        dub_speedup_backlog_s=1.0,
        dub_skip_backlog_s=1.0,
        # No speed-up: the first dub keeps its length, so later ones queue behind it.
        dub_max_speedup=1.0,
        pipeline=PipelineSettings(
            max_pending_utterances=1,
            recognition_slots=1,
            interim_captions=False,
            streaming=streaming,
        ),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tight_server(make_server_module: Callable[..., Any]) -> AsyncIterator[RunningServer]:
    async with tight(make_server_module, streaming=True) as server:
        await (await server.app[ENGINES].stt()).warm_up()
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def whole_dubs_server(
    make_server_module: Callable[..., Any],
) -> AsyncIterator[RunningServer]:
    """``tight_server`` dubbing whole utterances: a streamed piece of Ann's speech is dubbed
    while she still speaks, so Al and Amy would speak over her and her dub would not be long
    when theirs queue (tests/test_streaming.py covers pieces)."""
    async with tight(make_server_module, streaming=False) as server:
        await (await server.app[ENGINES].stt()).warm_up()
        yield server


def clip(n: int) -> Pcm16:
    return trim_silence(load_wav_48k(str(CLIPS[n])))


def ending_together(clips: list[Pcm16]) -> list[Pcm16]:
    """Each clip led by silence so that all of them end at the same moment."""
    longest = max(c.size for c in clips)
    return [np.concatenate((silence(longest - c.size), c)) for c in clips]


async def room_for(server: RunningServer, capacity: int) -> str:
    async with server.session.post(server.url + "/api/rooms", json={"capacity": capacity}) as r:
        assert r.status == 201
        room: str = (await r.json())["id"]
        return room


def english_speaker(name: str) -> dict[str, str]:
    return {"name": name, "spoken": "en", "listen": "en"}


def server_errors(callers: list[ScriptedCaller]) -> list[dict[str, Any]]:
    """Protocol ``error`` messages the callers got (this empties their inboxes)."""
    found = []
    for caller in callers:
        while not caller.inbox.empty():
            message = caller.inbox.get_nowait()
            if message.get("type") == "error":
                found.append(message)
    return found


# --- tests ------------------------------------------------------------------------------------


async def test_three_speakers_at_once_overflow_the_recognition_backlog(
    tight_server: RunningServer, english: list[Pcm16]
) -> None:
    """Four people finish a sentence at the same moment; one is recognised, one may wait,
    the oldest waiting ones are dropped, and everyone is told which."""
    server = tight_server
    before = await scrape(server)
    names = ("Ann", "Al", "Amy", "Dan")
    speech = ending_together([clip(0), clip(1), clip(2), english[0]])
    room = await room_for(server, 4)
    async with callers(server, room, *(english_speaker(n) for n in names)) as people:
        for person, samples in zip(people, speech, strict=True):
            person.play(speech_then_silence(samples))
        await drain(server, *people)
        ended = await outcomes(server, before)
        assert ended["dropped_backlog"] >= 1, ended

        ids = {p.participant_id: p.name for p in people}
        markers = [dropped(p, "backlog") for p in people]
        lost = {e["utterance_id"] for e in markers[0]}
        assert len(lost) == ended["dropped_backlog"], (markers[0], ended)
        # Speakers and listeners alike see the same markers.
        for seen in markers:
            assert {e["utterance_id"] for e in seen} == lost
            for event in seen:
                assert ids[event["speaker"]] == event["speaker_name"]
        # A dropped utterance never gets text; the others still do.
        captioned = {e["utterance_id"] for p in people for e in finals(p)}
        assert not lost & captioned
        assert ended["translated"] >= 1, ended
        assert len({e["speaker"] for e in finals(people[0])}) >= 1
        assert not dropped(people[0], "catch_up")


async def test_dubs_queued_too_long_for_a_listener_are_skipped(
    whole_dubs_server: RunningServer, english: list[Pcm16]
) -> None:
    """While Ann's long speech is dubbed to Beto, Al and Amy each say something: their dubs
    queue behind hers, past the one second Beto's queue may hold, so the oldest waiting
    ones are skipped and Beto is told."""
    server = whole_dubs_server
    before = await scrape(server)
    long = np.concatenate((clip(0), silence(SAMPLE_RATE * 3 // 10), clip(1)))
    room = await room_for(server, 4)
    people = (english_speaker("Ann"), english_speaker("Al"), english_speaker("Amy"), BETO)
    async with callers(server, room, *people) as (ann, al, amy, beto):
        ann.play(speech_then_silence(long))
        await wait_for(lambda: bool(latencies(beto, utterances_of(beto, ann))), TIMEOUT)
        # Ann's dub is playing to Beto now, for several seconds.
        al_speech, amy_speech = ending_together(english)
        al.play(speech_then_silence(al_speech))
        amy.play(speech_then_silence(amy_speech))
        await wait_for(lambda: bool(dropped(beto, "catch_up")), TIMEOUT)
        await drain(server, ann, al, amy, beto)
        # Every dub is in Beto's queue now; each is either heard or skipped, in the end.
        ended = await outcomes(server, before)
        dubbed = ended["translated"]
        await wait_for(
            lambda: len(latencies(beto)) + len(dropped(beto, "catch_up")) >= dubbed, TIMEOUT
        )

        skipped = dropped(beto, "catch_up")
        names = {p.participant_id: p.name for p in (ann, al, amy)}
        captioned = {e["utterance_id"] for e in finals(beto) if e["translations"].get("es")}
        for skip in skipped:
            assert names.get(skip["speaker"]) == skip["speaker_name"], skip
            assert skip["utterance_id"] in captioned, skip
        played = {e["utterance_id"] for e in latencies(beto)}
        assert not played & {e["utterance_id"] for e in skipped}
        assert len(played) + len(skipped) == dubbed == len(captioned), (ended, skipped)
        assert ended["dub_skipped"] == len(skipped), ended
        # Only the listener whose queue overflowed is told.
        for other in (ann, al, amy):
            assert not dropped(other, "catch_up")
        # Recognition (one slot, one waiting place here) may fall behind on a loaded machine
        # too: such a drop is told with the other marker, and is never dubbed or skipped.
        backlog = {e["utterance_id"] for e in dropped(beto, "backlog")}
        assert ended["dropped_backlog"] == len(backlog), ended
        assert not backlog & (played | {e["utterance_id"] for e in skipped})


class FaultyAudioTrack(MediaStreamTrack):
    """Fault injection: the caller's track, with queued junk payloads sent in place of its
    next frames (aiortc sends a ``Packet`` as it is, unencoded)."""

    kind = "audio"

    def __init__(self, inner: MediaStreamTrack) -> None:
        super().__init__()
        self.inner = inner
        self.junk: list[bytes] = []

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self.inner.recv()  # keeps the inner track's pacing and timestamps
        if not self.junk:
            return frame
        packet = Packet(self.junk.pop(0))
        packet.pts = frame.pts
        packet.time_base = frame.time_base or Fraction(1, SAMPLE_RATE)
        return packet


def junk_opus(count: int, seed: int) -> list[bytes]:
    """Payloads no Opus encoder makes: empty, undecodable, and random bytes."""
    rng = np.random.default_rng(seed)
    payloads = [b"", bytes([0x03, 0x00]), bytes([0xFF] * 3)]  # code 3 with no frames; bad pad
    payloads += [rng.bytes(int(rng.integers(1, 400))) for _ in range(count)]
    return payloads


def rtp(first_byte: int, payload_type: int, ssrc: int, rest: bytes) -> bytes:
    """An RTP header (version in ``first_byte``, sequence 7, timestamp 0) and ``rest``."""
    return bytes([first_byte, payload_type, 0, 7, 0, 0, 0, 0]) + ssrc.to_bytes(4, "big") + rest


def bad_rtp(seed: int) -> list[bytes]:
    """RTP packets a sane sender never sends. Each has an SSRC of its own: the sender's
    SRTP context refuses to protect a sequence number of a stream twice."""
    rng = np.random.default_rng(seed)
    ssrcs = [int(rng.integers(1, 2**32)) for _ in range(4)]
    return [
        rtp(0x80, 99, ssrcs[0], rng.bytes(40)),  # a payload type nobody negotiated
        rtp(0x80, 111, ssrcs[1], rng.bytes(60)),  # Opus-typed, from a stream nobody announced
        rtp(0xA0, 111, ssrcs[2], b"\x01\x02\xff"),  # more padding than packet
        rtp(0x80, 111, ssrcs[3], b""),  # nothing at all
    ]


async def test_broken_audio_inside_a_live_call_does_not_end_it(
    tight_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Ann's connection carries junk Opus payloads and malformed RTP; then she speaks, and
    Beto still hears her and gets her words translated, with nothing failing on the server."""
    server = tight_server
    caplog.set_level(logging.WARNING)
    before = await scrape(server)
    async with callers(server, "broken-audio", english_speaker("Ann"), BETO) as (ann, beto):
        assert ann.pc is not None
        (sender,) = ann.pc.getSenders()
        assert sender.track is not None
        faulty = FaultyAudioTrack(sender.track)
        sender.replaceTrack(faulty)
        faulty.junk = junk_opus(60, seed=os.getpid() % 1000)
        await wait_for(lambda: not faulty.junk, TIMEOUT)
        transport = sender.transport
        for packet in bad_rtp(seed=1):
            await transport._send_rtp(packet)  # protected, so it passes SRTP like real media
        speech = clip(1)
        ann.play(speech_then_silence(speech))
        await wait_for(lambda: bool(latencies(beto, utterances_of(beto, ann))), TIMEOUT)
        await drain(server, ann, beto)

        start = ann.play_started[-1]
        assert rms(received_between(beto, start, start + speech.size / SAMPLE_RATE + 0.5)) > 300
        said = finals(beto, ann)
        assert any({"young", "man"} <= set(words(e["text"])) for e in said), said
        assert not server_errors([ann, beto])
    assert await delta(server, before, "callserver_errors_total", code="internal") == 0
    ended = await outcomes(server, before)
    assert ended["translated"] >= 1 and ended["failed"] == 0, ended
    # The junk reached the server's decoder (which said so), and nothing else went wrong.
    decode_failures = [r for r in caplog.records if "failed to decode" in r.getMessage()]
    assert decode_failures
    trouble = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info is not None]
    assert not trouble, [r.getMessage() for r in trouble]
