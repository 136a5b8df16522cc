"""Dubs in the per-listener mix: exact playback, ducking, order, catch-up and controls."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from callserver.media.dub import DubClip, DubPlayer, DubSettings
from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16
from callserver.media.mixer import RoomMixer
from tests.media_helpers import pcm

DUCK = 10 ** (-15 / 20)
RAMP = SAMPLE_RATE * 50 // 1000  # 2400 samples


def clip(value: int, samples: int, speaker: str = "a", uid: str = "u") -> DubClip:
    return DubClip(uid, speaker, np.full(samples, value, dtype=np.int16))


def pair() -> RoomMixer:
    mixer = RoomMixer()
    mixer.add("a")
    mixer.add("b")
    return mixer


def run(mixer: RoomMixer, ticks: int, original: int | None = None) -> Pcm16:
    """Pull ``ticks`` frames for b, with a speaking a constant ``original`` on every tick."""
    out = []
    for _ in range(ticks):
        if original is not None:
            mixer.push("a", pcm(original))
        out.append(mixer.pull("b", now=0.0))
    return np.concatenate(out)


def test_dub_plays_exactly_its_samples_then_silence() -> None:
    mixer = pair()
    samples = np.random.default_rng(1).integers(-20000, 20000, 2400).astype(np.int16)
    assert mixer.enqueue_dub("b", DubClip("u1", "a", samples))
    out = run(mixer, 4)
    assert np.array_equal(out[:2400], samples)
    assert not out[2400:].any()
    assert mixer.stats.dub_frames == 3
    assert not mixer.pull("a").any()  # only b's mix got it


def test_originals_ducked_15_db_with_smooth_ramps_and_back_after() -> None:
    mixer = pair()
    before = run(mixer, 10, original=10000)
    assert (before == 10000).all()
    mixer.enqueue_dub("b", clip(0, SAMPLE_RATE))  # 1 s of silent dub: output = originals*gain
    out = run(mixer, 100, original=10000).astype(np.float64)
    down = out[: RAMP + 1]
    assert (np.diff(down) <= 0).all()
    assert out[RAMP] == pytest.approx(10000 * DUCK, abs=2)
    assert out[RAMP - 200] > 10000 * DUCK + 100  # the ramp really takes ~50 ms
    middle = out[RAMP:SAMPLE_RATE]
    assert 20 * np.log10(middle / 10000) == pytest.approx(-15, abs=0.05)
    # Ramp up: after the dub and its hold, monotonic, ~50 ms, no jumps.
    up_start = int(np.argmax(out[SAMPLE_RATE:] > 10000 * DUCK + 2)) + SAMPLE_RATE
    assert up_start - SAMPLE_RATE >= 0.2 * SAMPLE_RATE  # held across a short gap
    full = int(np.argmax(out[up_start:] == 10000)) + up_start
    assert 0.9 * RAMP <= full - up_start <= 1.1 * RAMP
    assert (np.diff(out[up_start - 1 : full + 1]) >= 0).all()
    assert (out[full:] == 10000).all()
    assert np.abs(np.diff(out)).max() < 10
    assert mixer.stats.ducked_frames >= 50 + 12


def test_duck_holds_across_a_short_gap_between_clips() -> None:
    mixer = pair()
    mixer.enqueue_dub("b", clip(0, 5 * FRAME_SAMPLES))
    run(mixer, 10, original=10000)
    mixer.enqueue_dub("b", clip(0, 5 * FRAME_SAMPLES))  # 100 ms later: no pumping
    out = run(mixer, 5, original=10000)
    assert np.abs(out - 10000 * DUCK).max() <= 1


def test_same_speaker_clips_play_back_to_back_in_order() -> None:
    mixer = pair()
    starts: list[tuple[str, float]] = []
    for uid, value, n in (("u1", 100, 700), ("u2", 200, 1500)):
        c = clip(value, n, uid=uid)
        c.on_first_frame = lambda c, t: starts.append((c.utterance_id, t))
        mixer.enqueue_dub("b", c)
    out = run(mixer, 4)
    expected = np.concatenate([np.full(700, 100), np.full(1500, 200)])
    assert np.array_equal(out[:2200], expected)
    assert not out[2200:].any()
    assert [s[0] for s in starts] == ["u1", "u2"]


def test_two_speakers_take_turns_in_arrival_order_never_overlapping() -> None:
    mixer = RoomMixer()
    for p in ("a", "b", "c"):
        mixer.add(p)
    mixer.enqueue_dub("c", clip(300, 1000, speaker="b"))
    mixer.enqueue_dub("c", clip(50, 1000, speaker="a"))
    mixer.enqueue_dub("c", clip(7, 1000, speaker="b"))
    out = np.concatenate([mixer.pull("c", now=0.0) for _ in range(4)])
    expected = np.concatenate([np.full(1000, v) for v in (300, 50, 7)])
    assert np.array_equal(out[:3000], expected)
    assert not out[3000:].any()


def peak_hz(samples: Pcm16) -> float:
    """The strongest frequency in ``samples`` (Hann-windowed spectrum)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.argmax(spectrum)) * SAMPLE_RATE / samples.size


#: Catch-up past 4 s of backlog, back to natural speed under 2 s, at most 1.25x.
CATCH_UP = DubSettings(speedup_backlog_s=4.0, speedup_release_s=2.0, max_speedup=1.25)


def test_backlog_over_bound_speeds_up_then_returns_to_natural_speed() -> None:
    player = DubPlayer(CATCH_UP)
    for i in range(3):
        player.enqueue(clip(1000, 2 * SAMPLE_RATE, uid=str(i)))  # 6 s > 4 s bound
    rates, frames = [], 0
    while player.queued_clips:
        dub, _ = player.next_frame(0.0)
        frames += dub is not None
        rates.append(player.rate)
    assert player.clips_skipped == 0
    assert max(rates) == pytest.approx(1.25)
    assert 6 / 1.25 / 0.02 <= frames < 6 / 0.02 * 0.95  # faster than real time, within 1.25x
    assert rates[-1] == 1.0  # back to natural speed once under the release bound
    assert np.all(np.abs(np.diff(rates)) <= 0.02 + 1e-9)  # glides, no jumps


def test_catch_up_keeps_the_pitch_and_returns_to_sample_exact_playback() -> None:
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE  # 440 whole cycles: clips join in phase
    a220 = np.rint(8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    player = DubPlayer(CATCH_UP)
    for i in range(3):
        player.enqueue(DubClip(str(i), "a", a220.copy()))
    frames, rates = [], []
    while player.queued_clips:
        dub, _ = player.next_frame(0.0)
        assert dub is not None
        frames.append(dub)
        rates.append(player.rate)
    fast = np.concatenate([f for f, r in zip(frames, rates, strict=True) if r == 1.25])
    # Resampling at 1.25x would put the tone at 275 Hz.
    assert peak_hz(fast) == pytest.approx(220, abs=2)
    stream = np.concatenate(frames)
    assert np.abs(np.diff(stream.astype(int))).max() <= 1.2 * 8000 * 2 * np.pi * 220 / SAMPLE_RATE
    # Once back at natural speed the rest of the queue plays exactly as synthesized (the
    # last frame is filled up with silence).
    assert rates[-1] == 1.0
    end = np.flatnonzero(stream)[-1] + 1
    assert np.array_equal(stream[end - SAMPLE_RATE : end], a220[-SAMPLE_RATE:])


def test_a_stretcher_that_cannot_start_leaves_the_dubs_at_natural_speed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(tempo: float) -> None:  # fault injection: an ffmpeg build without atempo
        raise ValueError("No such filter: 'atempo'")

    monkeypatch.setattr("callserver.media.dub.Stretcher", broken)
    player = DubPlayer(CATCH_UP)
    clips = [clip(1000 + i, 2 * SAMPLE_RATE, uid=str(i)) for i in range(3)]
    for c in clips:
        player.enqueue(c)
    out = []
    while player.queued_clips:
        dub, _ = player.next_frame(0.0)
        assert dub is not None
        out.append(dub)
    assert np.array_equal(np.concatenate(out), np.concatenate([c.samples for c in clips]))
    assert player.rate == 1.0


def test_lone_long_clip_plays_at_natural_speed() -> None:
    player = DubPlayer()
    samples = np.random.default_rng(2).integers(-9000, 9000, 6 * SAMPLE_RATE).astype(np.int16)
    player.enqueue(DubClip("u", "a", samples))
    out = []
    while player.queued_clips:
        dub, _ = player.next_frame(0.0)
        assert dub is not None
        out.append(dub)
    assert np.array_equal(np.concatenate(out), samples)


def test_lone_long_clip_speeds_up_while_its_speaker_goes_on() -> None:
    """A monologue: the speaker's next sentence starts while a long dub plays. Waiting for
    its dub to queue would leave it behind the rest of this one; from its first word the
    playing dub catches up, through the pitch-keeping stretcher, and nothing is lost."""
    mixer = pair()
    t = np.arange(6 * SAMPLE_RATE) / SAMPLE_RATE
    tone = np.rint(8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    mixer.enqueue_dub("b", DubClip("u", "a", tone))
    player = mixer.dub_player("b")
    assert player is not None
    frames, rates = [], []
    for tick in range(400):
        if tick == 50:
            mixer.set_speaking("a", True)  # a says the next sentence from 1 s on
        frames.append(mixer.pull("b", now=tick * 0.02))
        rates.append(player.rate)
        if not player.queued_clips:
            break
    assert rates[49] == 1.0  # nobody speaking: natural speed
    assert max(rates) == pytest.approx(1.5)
    # 1 s at natural speed, then the remaining 5 s at up to 1.5x.
    assert len(frames) * 0.02 <= 1 + 5 / 1.5 + 0.6
    heard = np.concatenate(frames)
    # Pitch kept (resampling would have raised it to 330 Hz).
    fast = heard[(50 + 40) * FRAME_SAMPLES : (50 + 140) * FRAME_SAMPLES]
    assert peak_hz(fast) == pytest.approx(220, abs=2)


def test_a_speaker_the_listener_hears_plain_does_not_hurry_the_dubs() -> None:
    mixer = pair()
    mixer.add("c")
    mixer.enqueue_dub("b", clip(1000, 6 * SAMPLE_RATE))
    player = mixer.dub_player("b")
    assert player is not None
    mixer.set_plain_speakers("b", frozenset({"c"}))  # c speaks b's language: no dub coming
    mixer.set_speaking("c", True)
    mixer.set_speaking("b", True)  # b's own speech brings b no dub either
    for _ in range(100):
        mixer.pull("b", now=0.0)
    assert player.rate == 1.0
    mixer.set_speaking("a", True)
    mixer.set_speaking("a", False)  # a stopped: the utterance's dub is queued or coming
    mixer.set_speaking("a", True)
    mixer.remove("a")  # a left mid-sentence: nothing more is coming from a
    for _ in range(100):
        mixer.pull("b", now=0.0)
    assert player.rate == 1.0


Stream = tuple[DubPlayer, dict[str, float], list[str], float]


def simulate_stream(clip_s: float, every_s: float, total_s: float) -> Stream:
    """Clips of ``clip_s`` every ``every_s``: (player, waits by clip, skipped, max backlog)."""
    player = DubPlayer()
    arrived: dict[str, float] = {}
    waits: dict[str, float] = {}
    skipped: list[str] = []
    max_backlog, next_arrival, n = 0.0, 0.0, 0
    for tick in range(round(total_s / 0.02)):
        now = tick * 0.02
        while next_arrival <= now:
            c = clip(500, round(clip_s * SAMPLE_RATE), uid=str(n))
            c.on_first_frame = lambda c, t: waits.__setitem__(
                c.utterance_id, t - arrived[c.utterance_id]
            )
            c.on_skipped = lambda c: skipped.append(c.utterance_id)
            arrived[c.utterance_id] = now
            player.enqueue(c)
            n, next_arrival = n + 1, next_arrival + every_s
            max_backlog = max(max_backlog, player.backlog_s)
        player.next_frame(now)
    assert len(set(waits)) + len(set(skipped)) + player.queued_clips >= n - 1
    assert not set(waits) & set(skipped)
    return player, waits, skipped, max_backlog


def test_stream_twice_real_time_skips_oldest_and_stays_bounded() -> None:
    player, waits, skipped, max_backlog = simulate_stream(2.0, 1.0, 90.0)
    assert skipped and player.clips_skipped == len(skipped)
    assert max_backlog <= 8.0 + 2.0
    late = [waits[u] for u in sorted(waits, key=int)[-10:]]
    assert max(late) <= 8.0 + 0.1  # latency does not creep however long the stream runs
    assert len(waits) >= 90 / 2  # still plays more than real time would allow


def test_stream_slightly_faster_than_real_time_caught_up_by_speed_up_alone() -> None:
    _, waits, skipped, max_backlog = simulate_stream(2.4, 2.0, 120.0)  # 1.2x
    assert skipped == []
    # Catch-up starts past 1 s of backlog, so no clip waits much longer than that.
    assert max_backlog <= 1.0 + 2.4 + 0.1
    assert max(waits.values()) <= 1.0 + 0.1


def test_on_first_frame_fires_once_with_the_tick_time() -> None:
    now = [100.0]
    mixer = RoomMixer(clock=lambda: now[0])
    mixer.add("a")
    mixer.add("b")
    seen: list[tuple[DubClip, float]] = []
    c = clip(1, 3 * FRAME_SAMPLES)
    c.on_first_frame = lambda c, t: seen.append((c, t))
    mixer.enqueue_dub("b", c)
    assert seen == []
    mixer.pull("b")
    now[0] = 100.02
    mixer.pull("b")
    mixer.pull("b", now=555.0)
    assert seen == [(c, 100.0)]


def test_dubs_disabled_drops_clips_and_leaves_originals_alone() -> None:
    mixer = pair()
    skipped: list[DubClip] = []
    mixer.set_listener_prefs("b", dub_enabled=False)
    c = clip(5000, SAMPLE_RATE)
    c.on_skipped = skipped.append
    assert not mixer.enqueue_dub("b", c)
    assert skipped == [c]
    assert (run(mixer, 20, original=1000) == 1000).all()
    assert mixer.stats.dub_frames == mixer.stats.ducked_frames == 0


def test_disabling_mid_dub_fades_it_out_and_restores_originals() -> None:
    mixer = pair()
    skipped: list[DubClip] = []
    playing, waiting = clip(5000, SAMPLE_RATE), clip(5000, SAMPLE_RATE)
    playing.on_skipped = waiting.on_skipped = skipped.append
    mixer.enqueue_dub("b", playing)
    mixer.enqueue_dub("b", waiting)
    run(mixer, 10)
    mixer.set_listener_prefs("b", dub_enabled=False)
    assert skipped == [waiting]  # never heard; the playing one was heard in part
    fade = run(mixer, 1).astype(np.int64)
    assert (np.diff(fade) <= 0).all() and fade[-1] < 10
    assert not run(mixer, 5).any()
    after = run(mixer, 10, original=1000)
    assert (after[-FRAME_SAMPLES:] == 1000).all()
    player = mixer.dub_player("b")
    assert player is not None and player.queued_clips == 0


def test_original_volume_scales_originals_on_top_of_ducking() -> None:
    mixer = pair()
    mixer.set_listener_prefs("b", original_volume=0.5)
    run(mixer, 1, original=10000)  # the change glides over one frame
    assert (run(mixer, 5, original=10000) == 5000).all()
    mixer.enqueue_dub("b", clip(0, SAMPLE_RATE))
    out = run(mixer, 25, original=10000)
    assert out[-1] == pytest.approx(10000 * DUCK * 0.5, abs=1)
    mixer.set_listener_prefs("b", original_volume=0.0)
    run(mixer, 1, original=10000)
    assert not run(mixer, 5, original=10000).any()
    with pytest.raises(ValueError, match="original_volume"):
        mixer.set_listener_prefs("b", original_volume=1.5)


def test_dub_gain_and_sum_clipped_to_int16() -> None:
    mixer = RoomMixer(dub_settings=DubSettings(dub_gain=0.5))
    mixer.add("a")
    mixer.add("b")
    mixer.enqueue_dub("b", clip(30000, 10 * FRAME_SAMPLES))
    assert (run(mixer, 1) == 15000).all()
    loud = RoomMixer(dub_settings=DubSettings(dub_gain=2.0))
    loud.add("a")
    loud.add("b")
    loud.enqueue_dub("b", clip(-30000, 10 * FRAME_SAMPLES))
    loud.push("a", pcm(-30000))
    assert (loud.pull("b", now=0.0) == -32768).all()


def test_listener_alone_still_hears_a_queued_dub() -> None:
    mixer = RoomMixer()
    mixer.add("b")
    mixer.enqueue_dub("b", clip(42, FRAME_SAMPLES))
    assert (mixer.pull("b", now=0.0) == 42).all()


def test_listener_removed_mid_dub_leaves_nothing_behind() -> None:
    mixer = pair()
    skipped: list[str] = []
    playing = clip(9, SAMPLE_RATE, uid="playing")
    waiting = clip(9, SAMPLE_RATE, uid="waiting")
    playing.on_skipped = waiting.on_skipped = lambda c: skipped.append(c.utterance_id)
    mixer.enqueue_dub("b", playing)
    mixer.enqueue_dub("b", waiting)
    run(mixer, 3)
    gone = weakref.ref(playing)
    del playing, waiting
    mixer.remove("b")
    assert skipped == ["waiting"]
    assert mixer.dub_player("b") is None
    late = clip(9, 100, uid="late")
    late.on_skipped = lambda c: skipped.append(c.utterance_id)
    assert not mixer.enqueue_dub("b", late)
    assert skipped == ["waiting", "late"]
    assert not mixer.pull("b").any()
    gc.collect()
    assert gone() is None


def test_bad_settings_and_clips_are_refused() -> None:
    with pytest.raises(ValueError, match="speedup"):
        DubSettings(speedup_backlog_s=10.0, skip_backlog_s=8.0)
    with pytest.raises(ValueError, match="duck_db"):
        DubSettings(duck_db=3.0)
    with pytest.raises(ValueError, match="int16"):
        DubClip("u", "a", np.zeros(10, dtype=np.float32))
