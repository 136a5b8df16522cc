"""The room clock: one tick serves a room's listeners, placed just after their speakers' frames."""

from __future__ import annotations

import asyncio
import statistics

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from callserver.media.mixer import RoomMixer
from callserver.media.room_clock import (
    MAX_LAG_S,
    TICK_S,
    ArrivalPhase,
    ListenerFeed,
    RoomClock,
    TickSettings,
)
from callserver.media.tracks import FeedAudioTrack
from tests.media_helpers import pcm


class FakeTime:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _room(*people: str, time: FakeTime) -> tuple[RoomMixer, RoomClock]:
    mixer = RoomMixer()
    for person in people:
        mixer.add(person)
    return mixer, RoomClock(mixer, clock=time)


def _drain(feed: ListenerFeed) -> list[np.ndarray]:
    out = []
    while feed._frames:
        out.append(feed._frames.popleft())
    return out


def test_two_listeners_get_the_same_speaker_frame_in_the_same_tick() -> None:
    time = FakeTime()
    _, clock = _room("a", "b", "c", time=time)
    feeds = {p: clock.attach(p, start=False) for p in ("b", "c")}
    clock.push("a", pcm(1234))
    assert clock.due() == time.now
    assert sorted(clock.run_due(time.now)) == ["b", "c"]
    heard = {p: _drain(feed) for p, feed in feeds.items()}
    assert [len(frames) for frames in heard.values()] == [1, 1]
    assert heard["b"][0][0] == heard["c"][0][0] == 1234


def _simulate(
    clock: RoomClock, time: FakeTime, phase_s: float, seconds: float, jitter_s: float = 0.0005
) -> list[float]:
    """Speaker ``a`` sends a frame every 20 ms at ``phase_s`` into the period (with jitter);
    return, for each frame, how long it waited before a tick mixed it for ``b``."""
    rng = np.random.default_rng(3)
    feed = clock._listeners["b"].feed
    start = time.now
    arrivals = [
        start + k * TICK_S + phase_s + float(rng.uniform(-jitter_s, jitter_s))
        for k in range(int(seconds / TICK_S))
    ]
    pushed: dict[int, float] = {}
    waits: list[float] = []
    k = 0
    while k < len(arrivals):
        due = clock.due()
        assert due is not None
        if arrivals[k] <= due:
            time.now = arrivals[k]
            clock.push("a", pcm(k + 1))
            pushed[k + 1] = time.now
            k += 1
            continue
        time.now = due
        clock.run_due(time.now)
        for frame in _drain(feed):
            if frame[0] in pushed:
                waits.append(time.now - pushed.pop(int(frame[0])))
    return waits


@pytest.mark.parametrize("phase_s", [0.003, 0.007, 0.013, 0.019])
def test_a_speaker_out_of_phase_is_mixed_at_the_next_tick_not_a_frame_later(
    phase_s: float,
) -> None:
    time = FakeTime(start=100.0)  # b's ticks start at phase 0 of the period
    _, clock = _room("a", "b", time=time)
    clock.attach("b", start=False)
    waits = _simulate(clock, time, phase_s=phase_s, seconds=3.0)
    assert len(waits) >= 140  # every frame was mixed (a few are still queued at the end)
    first, settled = waits[:10], waits[75:]
    # Before the clock has moved, a frame waits for b's tick at phase 0.
    assert statistics.median(first) > TICK_S - phase_s - 0.001
    # Within 1.5 s the tick falls just after the speaker: the margin plus the jitter's edge.
    # (Moving the tick later past the arrivals leaves a frame standing in the queue until the
    # queue's catch-up drops it, at most a window later.)
    assert statistics.median(settled) < TickSettings().arrival_margin_s + 0.0015
    assert max(settled) < TICK_S / 2


def test_a_listener_of_two_speakers_waits_least_in_total() -> None:
    phase = ArrivalPhase()
    for k in range(50):
        phase.note(100 + k * TICK_S + 0.019 + (0.002 if k % 2 else 0.0))
    edge = phase.late_edge(0.9)
    # Arrivals at 19 and 21 (= 1) ms of the period: the edge is at 1 ms, across the wrap.
    assert edge is not None and abs(edge - 0.001) < 0.0005


def test_a_stall_restarts_the_ticks_instead_of_bursting() -> None:
    time = FakeTime()
    _, clock = _room("a", "b", time=time)
    feed = clock.attach("b", start=False)
    clock.run_due(time.now)
    time.now += MAX_LAG_S + 0.1  # the loop was blocked
    assert clock.run_due(time.now) == ["b"]
    assert clock.clock_resets == 1
    assert len(_drain(feed)) == 2  # one frame for the stall, not 15
    assert clock.due() == pytest.approx(time.now + TICK_S)


async def test_a_stopped_track_ends_its_feed_only() -> None:
    time = FakeTime()
    _, clock = _room("a", "b", time=time)
    old_feed = clock.attach("b", start=False)
    old = FeedAudioTrack(old_feed, on_stop=lambda: clock.detach("b", old_feed))
    # b reconnected: the new connection's feed replaces the old one, which ends.
    new_feed = clock.attach("b", start=False)
    assert await old_feed.get() is None
    with pytest.raises(MediaStreamError):
        await old.recv()
    old.stop()  # late: must not end the new connection's feed
    assert clock.listeners == ["b"]
    new = FeedAudioTrack(new_feed, on_stop=lambda: clock.detach("b", new_feed))
    clock.run_due(time.now)
    frame = await new.recv()
    assert frame.samples == 960 and frame.pts == 0
    new.stop()
    assert clock.listeners == []
    with pytest.raises(MediaStreamError):
        await new.recv()


async def test_the_clock_paces_listeners_on_the_loop_and_stops_when_none_is_left() -> None:
    mixer = RoomMixer()
    for p in ("a", "b"):
        mixer.add(p)
    clock = RoomClock(mixer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    tracks = [FeedAudioTrack(clock.attach(p)) for p in ("a", "b")]
    frames = await asyncio.wait_for(
        asyncio.gather(*(_take(track, 10) for track in tracks)), timeout=2
    )
    assert frames == [[960 * k for k in range(10)]] * 2
    assert loop.time() - started >= 9 * TICK_S - 0.005  # paced, not as fast as it can
    for p in ("a", "b"):
        clock.detach(p)
    task = clock._task
    assert task is not None
    await asyncio.wait_for(task, timeout=TICK_S * 3)  # ends by itself: nothing left to tick
    await clock.close()


async def _take(track: FeedAudioTrack, n: int) -> list[int]:
    return [int((await track.recv()).pts or 0) for _ in range(n)]


async def test_a_late_sender_loses_its_oldest_frames_and_the_queues_build_no_backlog() -> None:
    time = FakeTime()
    mixer, clock = _room("a", "b", time=time)
    feed = clock.attach("b", start=False)
    for k in range(5):  # aiortc has not started sending: old mixes go, uncounted
        clock.push("a", pcm(k + 1))
        clock.run_due(time.now)
        time.now += TICK_S
    assert mixer.stats.unsent_frames == 0
    assert [int(f[0]) for f in _drain(feed)] == [4, 5]
    # The sender takes a frame, then stalls for four ticks while a speaks on: the feed keeps
    # the newest two, and a's queue for b is drained on time (no voice waits behind the stall).
    clock.push("a", pcm(6))
    clock.run_due(time.now)
    assert await feed.get() is not None
    for k in range(7, 11):
        clock.push("a", pcm(k))
        time.now += TICK_S
        clock.run_due(time.now)
    assert mixer.stats.unsent_frames == 2
    assert [int(f[0]) for f in _drain(feed)] == [9, 10]
    clock.push("a", pcm(11))
    time.now += TICK_S
    clock.run_due(time.now)
    assert [int(f[0]) for f in _drain(feed)] == [11]  # right after its arrival, no backlog


@pytest.mark.parametrize(
    "bad",
    [
        {"arrival_margin_s": 0.02},
        {"arrival_quantile": 0.0},
        {"max_shift_per_tick_s": 0.0},
        {"listener_buffer_frames": 0},
    ],
)
def test_settings_out_of_range_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TickSettings(**bad)  # type: ignore[arg-type]
