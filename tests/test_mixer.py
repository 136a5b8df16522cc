"""The per-listener mixer, the inbound processors and the paced outgoing track."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from callserver.media.frames import FRAME_SAMPLES, Pcm16, PcmFrame, silence
from callserver.media.mixer import CATCH_UP_WINDOW_PULLS, RoomMixer
from callserver.media.processors import DecodeToMono, Rechunk, feed
from callserver.media.tracks import PacedAudioTrack
from tests.media_helpers import av_frame, pcm, tone


def test_listener_hears_others_but_not_self() -> None:
    mixer = RoomMixer()
    for p in ("a", "b", "c"):
        mixer.add(p)
    mixer.push("a", pcm(100))
    mixer.push("b", pcm(20))
    assert mixer.pull("a")[0] == 20
    assert mixer.pull("b")[0] == 100
    assert mixer.pull("c")[0] == 120
    # Every listener got its own copy: nothing left for anyone now.
    assert not mixer.pull("c").any()


def test_mix_clips_instead_of_wrapping() -> None:
    mixer = RoomMixer()
    for p in ("a", "b", "c"):
        mixer.add(p)
    mixer.push("a", pcm(30000))
    mixer.push("b", pcm(30000))
    mixer.push("a", pcm(-30000))
    mixer.push("b", pcm(-30000))
    assert mixer.pull("c")[0] == 32767
    assert mixer.pull("c")[0] == -32768


def test_silence_when_nothing_and_unknown_listener() -> None:
    mixer = RoomMixer()
    mixer.add("a")
    assert np.array_equal(mixer.pull("a"), silence())
    assert np.array_equal(mixer.pull("nobody"), silence())


def test_removed_participant_is_neither_heard_nor_served() -> None:
    mixer = RoomMixer()
    for p in ("a", "b"):
        mixer.add(p)
    mixer.push("a", pcm(5))
    mixer.remove("a")
    assert not mixer.pull("b").any()
    assert mixer.participants == ["b"]


def test_underrun_counted_when_a_playing_speaker_runs_dry() -> None:
    seen: list[tuple[str, str]] = []
    mixer = RoomMixer(on_underrun=lambda listener, speaker: seen.append((listener, speaker)))
    mixer.add("a")
    mixer.add("b")
    mixer.push("a", pcm(1))
    mixer.pull("b")
    mixer.pull("b")  # a stopped sending while playing
    assert mixer.stats.underruns == 1
    assert seen == [("b", "a")]
    mixer.pull("b")  # not playing any more: no second count
    assert mixer.stats.underruns == 1


def test_prebuffer_holds_frames_before_playing() -> None:
    mixer = RoomMixer(prebuffer_frames=2)
    mixer.add("a")
    mixer.add("b")
    mixer.push("a", pcm(1))
    mixer.push("a", pcm(2))
    assert not mixer.pull("b").any()
    mixer.push("a", pcm(3))
    assert mixer.pull("b")[0] == 1


def test_queue_bound_drops_oldest() -> None:
    mixer = RoomMixer(max_queue_frames=3)
    mixer.add("a")
    mixer.add("b")
    for v in range(1, 6):
        mixer.push("a", pcm(v))
    assert mixer.stats.dropped_frames == 2
    assert mixer.pull("b")[0] == 3


def test_deep_queue_catches_up_so_latency_cannot_creep() -> None:
    mixer = RoomMixer(max_queue_frames=50)
    mixer.add("a")
    mixer.add("b")
    for _ in range(5):
        mixer.push("a", pcm(1))
    # Steady state: one frame in, one frame out, but 5 more queued: 100 ms of pure delay.
    for _ in range(CATCH_UP_WINDOW_PULLS + 1):
        mixer.push("a", pcm(1))
        mixer.pull("b")
    assert mixer.stats.dropped_frames == 5
    # Caught up: one queued frame at each pull from now on, nothing more dropped.
    for _ in range(CATCH_UP_WINDOW_PULLS * 3):
        mixer.push("a", pcm(1))
        mixer.pull("b")
    assert mixer.stats.dropped_frames == 5


def test_mixer_rejects_wrong_frame_size() -> None:
    mixer = RoomMixer()
    mixer.add("a")
    with pytest.raises(ValueError, match="960"):
        mixer.push("a", pcm(1, samples=100))


def test_decode_to_mono_handles_stereo_and_other_rates() -> None:
    stereo = np.repeat(tone(440), 2)  # interleaved L R
    out = feed(DecodeToMono(), [av_frame(stereo, 48_000, layout="stereo")])
    assert sum(f.samples.size for f in out) == FRAME_SAMPLES
    assert out[0].samples.dtype == np.int16
    low = feed(DecodeToMono(), [av_frame(tone(440, 1600, 16_000), 16_000) for _ in range(5)])
    total = sum(f.samples.size for f in low)
    assert abs(total - 5 * 4800) <= 200  # resampler delay


def test_decode_to_mono_downmixes_opus_output_as_ffmpeg_does() -> None:
    # aiortc's Opus decoder gives packed s16 stereo at 48 kHz: DecodeToMono mixes that down in
    # numpy; planar input still takes FFmpeg's resampler. Both must give the same samples.
    rng = np.random.default_rng(7)
    left_right = (rng.standard_normal((FRAME_SAMPLES, 2)) * 8000).astype(np.int16)
    left_right[:4] = [[32767, 32767], [-32768, -32768], [1, 0], [-1, 0]]  # extremes, halves
    packed = feed(DecodeToMono(), [av_frame(left_right.reshape(-1), 48_000, layout="stereo")])
    planar = feed(
        DecodeToMono(),
        [av_frame(left_right.T.copy().reshape(-1), 48_000, layout="stereo", fmt="s16p")],
    )
    assert [f.samples.size for f in packed] == [f.samples.size for f in planar] == [FRAME_SAMPLES]
    assert np.array_equal(packed[0].samples, planar[0].samples)
    mean = left_right.astype(np.float64).mean(axis=1)
    assert np.abs(packed[0].samples - mean).max() <= 0.5


def test_rechunk_cuts_exact_frames_and_keeps_the_rest() -> None:
    chunker = Rechunk()
    data = np.arange(2500, dtype=np.int16)
    out = feed(chunker, [PcmFrame(samples=data[:700]), PcmFrame(samples=data[700:])])
    assert [f.samples.size for f in out] == [960, 960]
    assert np.array_equal(np.concatenate([f.samples for f in out]), data[:1920])
    more = chunker.process(PcmFrame(samples=np.zeros(380, dtype=np.int16)))
    assert np.array_equal(more[0].samples[:580], data[1920:])


async def test_paced_track_sends_fixed_frames_on_the_clock() -> None:
    # The track's clock only moves when it sleeps (or when the test says work took time), so a
    # frame made before its 20 ms slot, or a loop that never waits, shows in the times below.
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    made_at: list[float] = []
    frames = [tone(440), tone(880)]

    def source() -> Pcm16:
        made_at.append(now[0])
        return frames.pop(0) if frames else silence()

    track = PacedAudioTrack(source, clock=lambda: now[0], sleep=sleep)
    got = []
    for i in range(10):
        got.append(await track.recv())
        if i == 3:
            now[0] += 0.005  # the sender spent 5 ms: the next wait is that much shorter
    assert [f.samples for f in got] == [FRAME_SAMPLES] * 10
    assert [f.pts for f in got] == [i * FRAME_SAMPLES for i in range(10)]
    assert got[0].sample_rate == 48_000
    assert not got[5].to_ndarray().any()  # silence when the source has nothing
    # Each frame is made on its slot of the clock, never early and without drift.
    assert made_at == pytest.approx([100.0 + i * 0.02 for i in range(10)])
    assert waits == pytest.approx([0.02] * 3 + [0.015] + [0.02] * 5)
    assert track.clock_resets == 0


async def test_paced_track_sleeps_on_the_event_loop_by_default() -> None:
    # A clock that stands still makes every wait a full 20 ms however loaded the machine is.
    track = PacedAudioTrack(silence, clock=lambda: 100.0)
    await track.recv()
    second = asyncio.ensure_future(track.recv())
    # The task runs before this one resumes; had it not awaited asyncio's timer, it would be
    # done by then.
    await asyncio.sleep(0)
    assert not second.done()
    frame = await second
    assert frame.pts == FRAME_SAMPLES
    track.stop()


async def test_stopped_track_ends_instead_of_spinning() -> None:
    track = PacedAudioTrack(silence)
    await track.recv()
    pending = asyncio.ensure_future(track.recv())
    track.stop()
    with pytest.raises(MediaStreamError):
        await pending
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_track_restarts_clock_after_a_stall_instead_of_bursting() -> None:
    now = [0.0]
    track = PacedAudioTrack(silence, clock=lambda: now[0])
    await track.recv()
    now[0] = 5.0  # the loop was blocked for five seconds
    await track.recv()
    assert track.clock_resets == 1
