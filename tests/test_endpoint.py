"""The front of the translation pipeline: 48→16 kHz, Silero VAD and endpointing, on real speech."""

from __future__ import annotations

import dataclasses
import itertools
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydantic
import pytest

from callserver.media.frames import PcmFrame
from callserver.media.processors import feed
from callserver.pipeline.endpoint import Endpointer, EndpointEvent, EndpointSettings
from callserver.pipeline.events import (
    SPEECH_FRAME_SAMPLES,
    SPEECH_RATE,
    Float32,
    SpeechFrame,
    SpeechPaused,
    SpeechStarted,
    SpeechUpdate,
    Utterance,
)
from callserver.pipeline.resample import Downsample
from callserver.pipeline.vad import SileroVad, load_silero_model

DATA = Path(__file__).parent / "data"
CLIP_A = DATA / "sense_and_sensibility_01_austen_64kb-0870.wav"  # 7.1 s
CLIP_B = DATA / "sense_and_sensibility_01_austen_64kb-0880.wav"  # 3.0 s
CLIP_C = DATA / "sense_and_sensibility_01_austen_64kb-0890.wav"  # 5.3 s
FRAME_S = SPEECH_FRAME_SAMPLES / SPEECH_RATE
# Loudness that separates the narrator's speech (about -25 dBFS per 20 ms) from the
# recordings' noise floor (about -47 dBFS).
SPEECH_DB = -35.0


def load_clip(path: Path) -> Float32:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SPEECH_RATE and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    clip: Float32 = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
    return clip


def room_noise(seconds: float, seed: int = 0) -> Float32:
    """A quiet noise floor (about -54 dBFS) like a real microphone's, instead of digital zeros."""
    rng = np.random.default_rng(seed)
    noise: Float32 = (0.002 * rng.standard_normal(int(seconds * SPEECH_RATE))).astype(np.float32)
    return noise


def speech_frames(audio: Float32, t0: float = 100.0) -> list[SpeechFrame]:
    """Cut 16 kHz audio into SpeechFrames; frame i is captured (complete) at t0 + (i+1)·20 ms."""
    padded = np.pad(audio, (0, (-len(audio)) % SPEECH_FRAME_SAMPLES)).astype(np.float32)
    blocks = padded.reshape(-1, SPEECH_FRAME_SAMPLES)
    return [SpeechFrame(block.copy(), t0 + (i + 1) * FRAME_S) for i, block in enumerate(blocks)]


def frame_index(captured_at: float, t0: float = 100.0) -> int:
    """Inverse of ``speech_frames``: index of the frame captured at ``captured_at``."""
    return round((captured_at - t0) / FRAME_S) - 1


def frame_db(audio: Float32) -> Float32:
    blocks = audio[: len(audio) // SPEECH_FRAME_SAMPLES * SPEECH_FRAME_SAMPLES]
    ms = np.mean(np.square(blocks.reshape(-1, SPEECH_FRAME_SAMPLES), dtype=np.float64), axis=1)
    db: Float32 = (10 * np.log10(ms + 1e-12)).astype(np.float32)
    return db


def speech_bounds(audio: Float32) -> tuple[int, int]:
    """First and one-past-last 20 ms frame louder than SPEECH_DB (the ground truth)."""
    loud = np.nonzero(frame_db(audio) > SPEECH_DB)[0]
    return int(loud[0]), int(loud[-1]) + 1


def counter_ids(prefix: str) -> Callable[[], str]:
    numbers: Iterator[int] = itertools.count()
    return lambda: f"{prefix}{next(numbers)}"


def utterances(events: list[EndpointEvent]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


# --- resampler -------------------------------------------------------------------------------


def pcm48(samples: np.ndarray, size: int = 960, t0: float = 5.0) -> list[PcmFrame]:
    pcm = np.asarray(samples, dtype=np.int16)
    return [
        PcmFrame(pcm[i : i + size], captured_at=t0 + i / 48_000) for i in range(0, len(pcm), size)
    ]


def tone48(freq: float, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * 48_000)) / 48_000
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_downsample_gives_20ms_float_frames_and_keeps_a_tone() -> None:
    frames = pcm48(tone48(440.0, 2.0))
    out = feed(Downsample(), frames)
    assert len(out) == len(frames) == 100
    assert all(f.samples.dtype == np.float32 and f.samples.shape == (320,) for f in out)
    assert [f.captured_at for f in out] == [f.captured_at for f in frames]
    audio = np.concatenate([f.samples for f in out])
    assert len(audio) / SPEECH_RATE == pytest.approx(2.0)
    steady = audio[1600:]  # past the filter's start-up
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    peak_hz = np.argmax(spectrum) * SPEECH_RATE / len(steady)
    assert peak_hz == pytest.approx(440.0, abs=2.0)
    rms = float(np.sqrt(np.mean(np.square(steady))))
    assert rms == pytest.approx(8000 / 32768 / np.sqrt(2), rel=0.01)


def test_downsample_filters_what_would_alias() -> None:
    # 10 kHz is above the new 8 kHz Nyquist: naive slicing would fold it to 6 kHz at full level.
    out = feed(Downsample(), pcm48(tone48(10_000.0, 1.0)))
    audio = np.concatenate([f.samples for f in out])[1600:]
    assert 20 * np.log10(np.sqrt(np.mean(np.square(audio))) / (8000 / 32768 / np.sqrt(2))) < -60


def test_downsample_output_does_not_depend_on_input_chunking() -> None:
    rng = np.random.default_rng(3)
    pcm = (3000 * rng.standard_normal(48_000)).astype(np.int16)
    whole = np.concatenate([f.samples for f in feed(Downsample(), pcm48(pcm))])
    odd = np.concatenate([f.samples for f in feed(Downsample(), pcm48(pcm, size=701))])
    # Blocks shorter than the filter's history (240 samples) move it in overlapping parts.
    tiny = np.concatenate([f.samples for f in feed(Downsample(), pcm48(pcm, size=100))])
    assert len(odd) == len(whole) == len(tiny) == 16_000
    np.testing.assert_allclose(odd, whole, atol=1e-6)
    np.testing.assert_allclose(tiny, whole, atol=1e-6)


# --- VAD -------------------------------------------------------------------------------------


def test_vad_model_is_shared_but_state_is_per_speaker() -> None:
    a, b = SileroVad(), SileroVad()
    assert a.model is b.model is load_silero_model()
    assert a.state is not b.state and a.state.h is not b.state.h
    clip = load_clip(CLIP_B)
    probs = a.push(clip[:16_000])
    assert len(probs) == 16_000 // 512
    assert max(probs) > 0.9  # speech in the first second
    assert max(b.push(room_noise(1.0))) < 0.2  # no speech in room noise
    assert not np.array_equal(a.state.h, b.state.h)


def test_vad_gives_the_same_probabilities_however_the_audio_is_chunked() -> None:
    clip = load_clip(CLIP_B)[:32_000]
    whole = SileroVad().push(clip)
    assert len(whole) == 32_000 // 512 and max(whole) > 0.9
    for size in (320, 700, 100):
        vad = SileroVad()
        chunked = [p for i in range(0, clip.size, size) for p in vad.push(clip[i : i + size])]
        assert chunked == whole
    again = SileroVad()
    again.push(room_noise(0.5))
    again.reset()  # forgets the noise: the clip reads as from a fresh start
    assert again.push(clip) == whole


# --- endpointer ------------------------------------------------------------------------------


@pytest.mark.parametrize("clip_path", [CLIP_A, CLIP_B])
def test_one_clip_gives_one_utterance_covering_the_speech(clip_path: Path) -> None:
    lead = 1.0
    clip = load_clip(clip_path)
    stream = np.concatenate([room_noise(lead), clip, room_noise(1.5, seed=1)])
    onset, offset = speech_bounds(stream)
    events = feed(Endpointer(), speech_frames(stream))

    (utt,) = utterances(events)
    assert isinstance(events[0], SpeechStarted) and events[0].utterance_id == utt.utterance_id
    assert utt.utterance_id.startswith("u_") and not utt.cut
    first = frame_index(utt.started_at)
    last = first + len(utt.audio) // SPEECH_FRAME_SAMPLES  # one past
    np.testing.assert_array_equal(
        utt.audio, stream[first * SPEECH_FRAME_SAMPLES : last * SPEECH_FRAME_SAMPLES]
    )
    # Covers the speech, with at most pre-roll/tail (plus detection slack) around it.
    assert first <= onset and last >= offset
    assert (onset - first) * FRAME_S <= 0.3 and (last - offset) * FRAME_S <= 0.4
    true_end = 100.0 + offset * FRAME_S
    assert abs(utt.speech_end_at - true_end) <= 0.15
    assert utt.endpoint_at - utt.speech_end_at == pytest.approx(0.5)


def test_two_clips_a_second_apart_give_two_utterances() -> None:
    stream = np.concatenate(
        [room_noise(0.5), load_clip(CLIP_B), room_noise(1.0, 1), load_clip(CLIP_C), room_noise(1.0)]
    )
    events = feed(Endpointer(), speech_frames(stream))
    first, second = utterances(events)
    assert first.utterance_id != second.utterance_id
    assert [type(e) for e in events if not isinstance(e, SpeechUpdate | SpeechPaused)] == [
        SpeechStarted,
        Utterance,
        SpeechStarted,
        Utterance,
    ]
    assert first.endpoint_at < second.started_at
    gap_start = 100.0 + 0.5 + len(load_clip(CLIP_B)) / SPEECH_RATE  # end of the first clip
    assert first.speech_end_at <= gap_start + 0.15
    assert second.started_at >= gap_start + 0.8  # the next clip's voice begins 1.28 s later


def click_burst(seed: int = 0) -> Float32:
    """0.1 s of loud, fast-decaying noise: a cough or a knock on the desk."""
    rng = np.random.default_rng(seed)
    t = np.arange(1600) / SPEECH_RATE
    burst: Float32 = (0.5 * rng.standard_normal(1600) * np.exp(-t / 0.03)).astype(np.float32)
    return burst


def speech_snippet() -> Float32:
    """0.1 s cut from the middle of a word: voice, but too short to be an utterance."""
    clip = load_clip(CLIP_A)
    onset, _ = speech_bounds(clip)
    start = (onset + 10) * SPEECH_FRAME_SAMPLES
    return clip[start : start + 1600]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.zeros(3 * SPEECH_RATE, dtype=np.float32), id="digital-silence"),
        pytest.param(lambda: room_noise(3.0), id="room-noise"),
        pytest.param(
            lambda: (0.1 * np.random.default_rng(2).standard_normal(3 * SPEECH_RATE)).astype(
                np.float32
            ),
            id="white-noise-20dB",
        ),
        pytest.param(
            lambda: np.concatenate([room_noise(1.0), click_burst(), room_noise(1.0, 1)]),
            id="click",
        ),
        pytest.param(
            lambda: np.concatenate([room_noise(1.0), speech_snippet(), room_noise(1.0, 1)]),
            id="0.1s-of-voice",
        ),
    ],
)
def test_non_speech_and_short_bursts_give_nothing(make: Callable[[], Float32]) -> None:
    endpointer = Endpointer()
    assert feed(endpointer, speech_frames(make())) == []
    assert endpointer.flush() == []


def test_min_speech_setting_is_what_rejects_the_short_burst() -> None:
    # The same 0.1 s of voice passes once the minimum is lowered: the rejection above is the
    # minimum-duration rule at work, not a deaf detector.
    settings = EndpointSettings(min_speech_ms=40)
    stream = np.concatenate([room_noise(1.0), speech_snippet(), room_noise(1.0, 1)])
    assert len(utterances(feed(Endpointer(settings), speech_frames(stream)))) == 1


def continuous_speech(min_seconds: float) -> Float32:
    """The clips trimmed to their speech and joined without gaps, repeated to length."""
    pieces = []
    for path in itertools.cycle([CLIP_A, CLIP_B, CLIP_C]):
        clip = load_clip(path)
        onset, offset = speech_bounds(clip)
        pieces.append(clip[onset * SPEECH_FRAME_SAMPLES : offset * SPEECH_FRAME_SAMPLES])
        if sum(map(len, pieces)) >= min_seconds * SPEECH_RATE:
            break
    return np.concatenate(pieces)


def local_db(stream: Float32, boundary: int) -> float:
    """Loudness of the 80 ms around a sample position."""
    part = stream[max(0, boundary - 640) : boundary + 640]
    return float(10 * np.log10(np.mean(np.square(part, dtype=np.float64)) + 1e-12))


def test_long_speech_is_cut_at_quiet_points_without_losing_audio() -> None:
    # Pauses kept whole: the pieces are compared with the stream sample for sample.
    settings = EndpointSettings(pause_kept_ms=0)
    speech = continuous_speech(30.0)
    stream = np.concatenate([room_noise(1.0), speech, room_noise(1.5, 1)])
    endpointer = Endpointer(settings)
    events: list[EndpointEvent] = []
    most = 0.0
    for frame in speech_frames(stream):
        events.extend(endpointer.process(frame))
        most = max(most, endpointer.buffered_s)
    assert most <= settings.max_utterance_s + settings.pre_roll_ms / 1000 + 1e-9

    pieces = utterances(events)
    assert len(pieces) >= 3
    assert all(p.cut for p in pieces[:-1]) and not pieces[-1].cut
    assert all(len(p.audio) <= settings.max_utterance_s * SPEECH_RATE for p in pieces)
    assert len({p.utterance_id for p in pieces}) == len(pieces)
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert [s.utterance_id for s in starts] == [p.utterance_id for p in pieces]

    # No audio lost or duplicated: the pieces tile one stretch of the stream exactly.
    first = frame_index(pieces[0].started_at) * SPEECH_FRAME_SAMPLES
    joined = np.concatenate([p.audio for p in pieces])
    np.testing.assert_array_equal(joined, stream[first : first + len(joined)])
    onset, offset = speech_bounds(stream)
    assert first <= onset * SPEECH_FRAME_SAMPLES
    assert first + len(joined) >= offset * SPEECH_FRAME_SAMPLES

    # Each cut sits in the quietest quarter of the 2 s it was chosen from.
    boundary = first
    for piece in pieces[:-1]:
        boundary += len(piece.audio)
        decided = (frame_index(piece.endpoint_at) + 1) * SPEECH_FRAME_SAMPLES
        span = range(decided - 2 * SPEECH_RATE, decided, SPEECH_FRAME_SAMPLES)
        candidates = [local_db(stream, b) for b in span]
        assert decided - boundary <= 2 * SPEECH_RATE
        assert local_db(stream, boundary) <= np.percentile(candidates, 25)


def test_interim_updates_arrive_at_the_interval_and_are_prefixes() -> None:
    for interim_ms in (1000, 400):
        settings = EndpointSettings(interim_ms=interim_ms)
        stream = np.concatenate([room_noise(0.5), load_clip(CLIP_A), room_noise(1.0)])
        events = feed(Endpointer(settings), speech_frames(stream))
        (utt,) = utterances(events)
        updates = [e for e in events if isinstance(e, SpeechUpdate)]
        assert all(u.utterance_id == utt.utterance_id for u in updates)
        assert all(u.started_at == utt.started_at for u in updates)
        for update in updates:
            if len(update.audio) <= len(utt.audio):
                np.testing.assert_array_equal(update.audio, utt.audio[: len(update.audio)])
        # In frames since the utterance's first (pre-roll) frame:
        interval = interim_ms // 20
        at_start = (settings.pre_roll_ms + settings.min_speech_ms) // 20
        at_end = frame_index(utt.endpoint_at) - frame_index(utt.started_at) + 1
        sizes = [len(u.audio) // SPEECH_FRAME_SAMPLES for u in updates]
        assert sizes[0] == at_start + interval
        # At the interval while the voice goes on; none in a pause, the next when it resumes.
        assert min(np.diff(sizes)) == interval
        pauses = [
            len(p.audio) // SPEECH_FRAME_SAMPLES for p in events if isinstance(p, SpeechPaused)
        ]
        for before, after in itertools.pairwise(sizes):
            assert after - before == interval or any(before < p < after for p in pauses)
        assert at_end - sizes[-1] > 0


def results(events: list[EndpointEvent]) -> list[tuple[object, ...]]:
    """Everything an event says, in a form ``==`` can compare."""
    out: list[tuple[object, ...]] = []
    for e in events:
        audio = getattr(e, "audio", None)
        fields = tuple(v for k, v in vars_of(e).items() if k != "audio")
        out.append((type(e).__name__, *fields, None if audio is None else audio.tobytes()))
    return out


def vars_of(event: EndpointEvent) -> dict[str, object]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}


def test_a_pause_announces_the_utterance_audio_before_the_endpoint() -> None:
    # Two sentences 350 ms apart, one utterance: each pause is announced, and the last one
    # (the real end) carries exactly the utterance's audio and speech end, 300 ms before the
    # endpoint. Pauses kept whole, so the audio's length counts the frames since the start.
    settings = EndpointSettings(pause_kept_ms=0)
    first, second = load_clip(CLIP_B), load_clip(CLIP_C)
    first = first[: speech_bounds(first)[1] * SPEECH_FRAME_SAMPLES]
    second = second[speech_bounds(second)[0] * SPEECH_FRAME_SAMPLES :]
    stream = np.concatenate(
        [room_noise(0.5), first, room_noise(0.35, 2), second, room_noise(1.5, 1)]
    )
    events = feed(Endpointer(settings), speech_frames(stream))
    (utt,) = utterances(events)
    pauses = [e for e in events if isinstance(e, SpeechPaused)]
    assert len(pauses) >= 2 and all(p.utterance_id == utt.utterance_id for p in pauses)
    last = pauses[-1]
    np.testing.assert_array_equal(last.audio, utt.audio)
    assert (last.speech_end_at, last.started_at) == (utt.speech_end_at, utt.started_at)
    order = [id(e) for e in events]
    assert order.index(id(last)) < order.index(id(utt))
    # Announced once the tail is complete: the audio's last frame is the tail's last.
    assert frame_index(utt.started_at) + len(last.audio) // SPEECH_FRAME_SAMPLES - 1 == (
        frame_index(utt.speech_end_at) + settings.tail_ms // 20
    )
    # Earlier pauses were followed by more speech: their speech end is earlier.
    assert all(p.speech_end_at < utt.speech_end_at for p in pauses[:-1])
    for pause in pauses:
        np.testing.assert_array_equal(pause.audio, utt.audio[: len(pause.audio)])
    # A tail as long as the silence leaves nothing to announce before the endpoint.
    same = EndpointSettings(tail_ms=500, silence_ms=500)
    assert not [
        e for e in feed(Endpointer(same), speech_frames(stream)) if isinstance(e, SpeechPaused)
    ]


def test_two_speakers_do_not_interfere() -> None:
    a_frames = speech_frames(
        np.concatenate([room_noise(0.3), load_clip(CLIP_A), room_noise(1.0, 1)])
    )
    b_frames = speech_frames(
        np.concatenate([room_noise(2.0, 2), load_clip(CLIP_B), room_noise(3.0, 3)])
    )
    alone_a = feed(Endpointer(new_id=counter_ids("a")), a_frames)
    alone_b = feed(Endpointer(new_id=counter_ids("b")), b_frames)
    assert utterances(alone_a) and utterances(alone_b)

    a, b = Endpointer(new_id=counter_ids("a")), Endpointer(new_id=counter_ids("b"))
    assert a.vad.model is b.vad.model  # one network, two states
    mixed_a: list[EndpointEvent] = []
    mixed_b: list[EndpointEvent] = []
    for fa, fb in itertools.zip_longest(a_frames, b_frames):
        if fa is not None:
            mixed_a.extend(a.process(fa))
        if fb is not None:
            mixed_b.extend(b.process(fb))
    assert results(mixed_a) == results(alone_a)
    assert results(mixed_b) == results(alone_b)


def test_flush_emits_the_utterance_in_progress() -> None:
    clip = load_clip(CLIP_B)
    endpointer = Endpointer()
    events = feed(endpointer, speech_frames(np.concatenate([room_noise(0.5), clip[:32_000]])))
    assert not utterances(events) and endpointer.speaking
    (utt,) = endpointer.flush()
    assert isinstance(utt, Utterance) and not endpointer.speaking
    assert len(utt.audio) >= 1.5 * SPEECH_RATE


def test_settings_validate_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pydantic.ValidationError):
        EndpointSettings(threshold=0.3, release_threshold=0.4)
    with pytest.raises(pydantic.ValidationError):
        EndpointSettings(max_utterance_s=3, cut_search_s=3)
    monkeypatch.setenv("CALLSERVER_VAD_SILENCE_MS", "700")
    assert EndpointSettings().silence_ms == 700


def test_wrong_frame_size_is_refused() -> None:
    with pytest.raises(ValueError, match="320"):
        Endpointer().process(SpeechFrame(np.zeros(160, dtype=np.float32), 1.0))
