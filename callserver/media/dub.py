"""Translated speech ("dubs") played into one listener's mix, with the original voices ducked.

Policy for several speakers' dubs to one listener: **one FIFO per listener, ordered by arrival,
never overlapping.** Two synthetic voices at once are unintelligible, and a listener in a call
follows one conversation, so dubs take turns in the order their translations became ready
(which is close to the order the sentences were spoken). One speaker's dubs therefore also play
in order, back to back, sample-exact when no catch-up is running. The price is that a dub may
wait behind another speaker's; catch-up (below) bounds that wait.

Ducking: while a dub plays, the listener's originals are attenuated (default -15 dB). The gain
ramps linearly per sample over ``duck_ramp_ms`` starting with the dub's first sample (no extra
latency is spent ramping "before" the dub), and ramps back up only after ``duck_hold_ms`` with
no dub, so a next sentence arriving shortly after does not make the originals pump.

Catch-up, so latency cannot creep when translations arrive faster than they can be spoken:

* **Speed-up.** When the backlog (queued dub audio not yet played, in source seconds) passes
  ``speedup_backlog_s`` while another dub is coming (a clip waits behind the playing one, or
  ``expecting``: someone this listener gets dubs of is speaking), playback speeds up gradually
  (``speed_slew_per_s``) to ``max_speedup`` and stays there until the backlog falls under
  ``speedup_release_s``. The voice keeps its pitch: while the rate is above 1 the queue plays
  through a time-stretcher (``callserver.media.tempo``, about 0.1 ms a frame), which takes
  the rest of the playing clip and the waiting ones as one stream; at natural speed clips play
  sample-exact. A lone long clip plays at natural speed while nobody speaks: in a monologue the
  speaker's next sentence is known to be coming from its first word, seconds before its dub
  can wait behind the playing one, so the playing one speeds up then. While stretching,
  ``on_first_frame`` fires when a clip's first sample enters the stretcher, up to ~40 ms
  before it is heard.
* **Skipping.** If clips arrive faster than even the sped-up playback drains them, and the
  backlog passes ``skip_backlog_s``, the oldest *waiting* clips are dropped (never the one
  playing, never the newest) and their ``on_skipped`` is called. The backlog then stays under
  ``skip_backlog_s`` plus one clip, which bounds every later clip's wait.

``on_skipped`` is in fact called exactly once for every clip that will never be heard: skipped
by catch-up, dropped because the listener turned dubs off, or queued when the listener left.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from callserver.media.frames import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, Pcm16
from callserver.media.tempo import MAX_TEMPO, Stretcher

log = logging.getLogger(__name__)

#: Gain for the originals: a scalar while steady, a per-sample array while ramping.
Gain: TypeAlias = float | npt.NDArray[np.float32]

_FRAME_S = FRAME_MS / 1000


@dataclass(frozen=True)
class DubSettings:
    """Dub playback options (one set per mixer)."""

    #: Linear gain applied to dub audio before it is summed with the originals.
    dub_gain: float = 1.0
    #: Attenuation of the originals while a dub plays, in dB (negative).
    duck_db: float = -15.0
    #: Length of the duck's ramp down at a dub's start and up after it, in ms.
    duck_ramp_ms: float = 50.0
    #: How long the duck holds after a dub ends before ramping up (bridges short gaps), in ms.
    duck_hold_ms: float = 250.0
    #: Backlog (seconds of queued dub audio) above which playback speeds up.
    speedup_backlog_s: float = 1.0
    #: Backlog under which a running speed-up returns to natural speed.
    speedup_release_s: float = 0.5
    #: Fastest playback rate while catching up (the pitch stays). With the bound above, the
    #: queue's p95 wait in a monologue fell from 3.0 s to 2.0 s (1.25x: 2.3 s), and 1.5x
    #: kept the words of recorded speech (``bench.dub_pace``, ``tests/test_tempo.py``).
    max_speedup: float = 1.5
    #: How fast the playback rate may change, in rate units per second (glides, no jumps).
    speed_slew_per_s: float = 1.0
    #: Backlog above which the oldest waiting clips are skipped.
    skip_backlog_s: float = 8.0

    def __post_init__(self) -> None:
        if not self.dub_gain >= 0:
            raise ValueError("dub_gain must be >= 0")
        if not self.duck_db <= 0:
            raise ValueError("duck_db must be <= 0")
        if not (self.duck_ramp_ms > 0 and self.duck_hold_ms >= 0):
            raise ValueError("duck_ramp_ms must be > 0 and duck_hold_ms >= 0")
        if not 1.0 <= self.max_speedup <= MAX_TEMPO or not self.speed_slew_per_s > 0:
            raise ValueError(f"max_speedup must be within 1..{MAX_TEMPO} and speed_slew_per_s > 0")
        if not 0 <= self.speedup_release_s <= self.speedup_backlog_s <= self.skip_backlog_s:
            raise ValueError("need 0 <= speedup_release_s <= speedup_backlog_s <= skip_backlog_s")


@dataclass(eq=False)
class DubClip:
    """One synthesized translation of one utterance, for one listener (48 kHz mono int16)."""

    utterance_id: str
    speaker_id: str
    samples: Pcm16
    #: Called once with (clip, tick time) when the clip's first sample is mixed.
    on_first_frame: Callable[[DubClip, float], None] | None = None
    #: Called once if the clip will never be heard (skipped, dubs off, listener gone).
    on_skipped: Callable[[DubClip], None] | None = None

    def __post_init__(self) -> None:
        if self.samples.dtype != np.int16 or self.samples.ndim != 1:
            raise ValueError("dub samples must be 1-D int16 (48 kHz mono)")

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


class DubPlayer:
    """One listener's dub queue, duck envelope and preferences; ``next_frame`` every 20 ms."""

    def __init__(self, settings: DubSettings | None = None, listener: str = "") -> None:
        self.settings = s = settings if settings is not None else DubSettings()
        self.listener = listener
        self.dub_enabled = True
        self.original_volume = 1.0
        self.rate = 1.0  # current playback rate (1.0: natural speed)
        #: Whether a dub is on its way: a speaker this listener gets dubs of is speaking
        #: (set by the mixer before each frame).
        self.expecting = False
        self.clips_skipped = 0
        self.frames_played = 0
        self.frames_ducked = 0
        self.ducking = False  # whether the last frame's originals were attenuated at all
        self._duck_level = 10 ** (s.duck_db / 20)
        self._duck_step = np.arange(1, FRAME_SAMPLES + 1, dtype=np.float32) * np.float32(
            (1.0 - self._duck_level) / (s.duck_ramp_ms * SAMPLE_RATE / 1000)
        )
        self._hold_frames = math.ceil(s.duck_hold_ms / FRAME_MS)
        self._rate_step = s.speed_slew_per_s * _FRAME_S
        self._duck = 1.0
        self._hold_left = 0
        self._applied_volume = 1.0
        self._catching_up = False
        self._fade_out = False
        self._current: DubClip | None = None
        self._pos = 0  # read position in the current clip, in source samples
        self._stretcher: Stretcher | None = None  # while playing faster than natural speed
        self._stretch_broken = False
        self._waiting: deque[DubClip] = deque()
        self._waiting_samples = 0

    @property
    def backlog_s(self) -> float:
        """Dub audio queued for this listener and not yet played, in source seconds."""
        left = 0 if self._current is None else self._current.samples.size - self._pos
        if self._stretcher is not None:
            left += round(self._stretcher.available * self._stretcher.tempo)
        return (left + self._waiting_samples) / SAMPLE_RATE

    @property
    def queued_clips(self) -> int:
        """Clips playing or waiting (a clip wholly inside the stretcher counts as playing)."""
        stretching = self._stretcher is not None and self._stretcher.available > 0
        return len(self._waiting) + (self._current is not None or stretching)

    def enqueue(self, clip: DubClip) -> int:
        """Queue ``clip``; return how many clips catch-up skipped to make room (0 usually).

        With dubs off, or an empty clip, the clip is dropped at once (``on_skipped``).
        """
        if not self.dub_enabled or clip.samples.size == 0:
            drop_clip(clip)
            return 0
        self._waiting.append(clip)
        self._waiting_samples += clip.samples.size
        skipped = 0
        while len(self._waiting) > 1 and self.backlog_s > self.settings.skip_backlog_s:
            old = self._waiting.popleft()
            self._waiting_samples -= old.samples.size
            skipped += 1
            log.debug(
                "dub skipped",
                extra={"listener": self.listener, "utterance": old.utterance_id},
            )
            drop_clip(old)
        self.clips_skipped += skipped
        return skipped

    def set_prefs(
        self, dub_enabled: bool | None = None, original_volume: float | None = None
    ) -> None:
        """Change the listener's controls; volume changes glide over one frame."""
        if original_volume is not None:
            if not 0.0 <= original_volume <= 1.0:
                raise ValueError("original_volume must be within 0.0..1.0")
            self.original_volume = float(original_volume)
        if dub_enabled is not None and dub_enabled != self.dub_enabled:
            self.dub_enabled = dub_enabled
            if dub_enabled:
                self._fade_out = False
            else:
                self._drop_waiting()
                # The playing clip fades out over the next frame instead of clicking off.
                self._fade_out = self._current is not None or self._stretcher is not None

    def close(self) -> None:
        """Forget every clip (listener gone); unplayed clips get ``on_skipped``."""
        self._drop_waiting()
        self._current = self._stretcher = None
        self._fade_out = False

    def next_frame(self, now: float) -> tuple[Pcm16 | None, Gain]:
        """The next 20 ms of dub (None: nothing playing) and the gain for the originals.

        The gain includes ``original_volume``; ``now`` is the tick time handed to
        ``on_first_frame``.
        """
        dub = self._render(now)
        duck = self._duck_gain(playing=dub is not None)
        volume = self._volume_gain()
        self.ducking = self._duck < 1.0 or not isinstance(duck, float)
        self.frames_ducked += self.ducking
        self.frames_played += dub is not None
        if isinstance(duck, float) and isinstance(volume, float):
            return dub, duck * volume
        combined: npt.NDArray[np.float32] = np.multiply(duck, volume, dtype=np.float32)
        return dub, combined

    def _render(self, now: float) -> Pcm16 | None:
        if self._current is None and not self._waiting and self._stretcher is None:
            return None
        self._update_rate()
        out = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        written = 0
        while written < FRAME_SAMPLES:
            if self._stretcher is not None:
                written += self._read_stretched(out, written, now)
                continue
            if self._current is None:
                if not self._waiting:
                    break
                self._start_next(now)
            clip = self._current
            assert clip is not None
            take = min(FRAME_SAMPLES - written, clip.samples.size - self._pos)
            out[written : written + take] = clip.samples[self._pos : self._pos + take]
            written += take
            self._pos += take
            if self._pos >= clip.samples.size:
                self._current = None
        if self._fade_out:
            out *= np.linspace(1.0, 0.0, FRAME_SAMPLES, dtype=np.float32)
            self._current, self._stretcher, self._fade_out = None, None, False
        if self.settings.dub_gain != 1.0:
            out *= np.float32(self.settings.dub_gain)
        frame: Pcm16 = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        return frame

    def _read_stretched(self, out: npt.NDArray[np.float32], at: int, now: float) -> int:
        """Fill ``out[at:]`` from the stretcher, feeding it the queue as it needs; return how
        many samples were written. The stretcher is gone once it has given all it holds."""
        stretcher = self._stretcher
        assert stretcher is not None
        want = FRAME_SAMPLES - at
        while stretcher.available < want and not stretcher.finished:
            source = self._next_source(now)
            if source is None:
                stretcher.finish()
            else:
                stretcher.feed(source)
        taken = stretcher.take(want)
        out[at : at + taken.size] = taken
        if stretcher.finished and stretcher.available == 0:
            self._stretcher = None
        return taken.size

    def _next_source(self, now: float) -> Pcm16 | None:
        """The next frame's worth of queued source samples (None: the queue is empty)."""
        if self._current is None:
            if not self._waiting:
                return None
            self._start_next(now)
        clip = self._current
        assert clip is not None
        chunk = clip.samples[self._pos : self._pos + FRAME_SAMPLES]
        self._pos += chunk.size
        if self._pos >= clip.samples.size:
            self._current = None
        return chunk

    def _start_next(self, now: float) -> None:
        clip = self._waiting.popleft()
        self._waiting_samples -= clip.samples.size
        self._current, self._pos = clip, 0
        if clip.on_first_frame is not None:
            try:
                clip.on_first_frame(clip, now)
            except Exception:
                log.exception("on_first_frame callback failed")

    def _update_rate(self) -> None:
        s = self.settings
        backlog = self.backlog_s
        # The first waiting clip is about to play when nothing is playing: it waits on nothing.
        behind = len(self._waiting) - (self._current is None)
        coming = behind > 0 or (self.expecting and self._current is not None)
        if not self._catching_up and backlog > s.speedup_backlog_s and coming:
            self._catching_up = True
            log.debug("dub catch-up", extra={"listener": self.listener, "backlog_s": backlog})
        elif self._catching_up and backlog <= s.speedup_release_s:
            self._catching_up = False
        target = s.max_speedup if self._catching_up and not self._stretch_broken else 1.0
        if self.rate < target:
            self.rate = min(target, self.rate + self._rate_step)
        elif self.rate > target:
            self.rate = max(target, self.rate - self._rate_step)
        if self._stretcher is not None and not self._stretcher.finished:
            if self.rate == 1.0:
                # Back at natural speed: the stretcher plays out what it holds, then the
                # clips go on sample-exact from where it stopped reading them.
                self._stretcher.finish()
            else:
                self._stretcher.set_tempo(self.rate)
        elif self._stretcher is None and self.rate != 1.0:
            try:
                self._stretcher = Stretcher(self.rate)
            except Exception:  # an ffmpeg without atempo: no catch-up, the dubs still play
                log.exception("dub catch-up unavailable", extra={"listener": self.listener})
                self._stretch_broken = True
                self.rate = 1.0

    def _duck_gain(self, playing: bool) -> Gain:
        if not self.dub_enabled:
            target = 1.0
            self._hold_left = 0
        elif playing:
            target = self._duck_level
            self._hold_left = self._hold_frames
        elif self._hold_left > 0:
            target = self._duck_level
            self._hold_left -= 1
        else:
            target = 1.0
        if self._duck == target:
            return self._duck
        ramp: npt.NDArray[np.float32]
        if target < self._duck:
            ramp = np.maximum(self._duck - self._duck_step, np.float32(target))
        else:
            ramp = np.minimum(self._duck + self._duck_step, np.float32(target))
        # Land exactly on the target so the steady state returns a plain scalar.
        self._duck = target if ramp[-1] == np.float32(target) else float(ramp[-1])
        return ramp

    def _volume_gain(self) -> Gain:
        if self._applied_volume == self.original_volume:
            return self._applied_volume
        glide = np.linspace(
            self._applied_volume, self.original_volume, FRAME_SAMPLES + 1, dtype=np.float32
        )[1:]
        self._applied_volume = self.original_volume
        return glide

    def _drop_waiting(self) -> None:
        while self._waiting:
            drop_clip(self._waiting.popleft())
        self._waiting_samples = 0


def drop_clip(clip: DubClip) -> None:
    """Tell a clip's owner (``on_skipped``) that it will never be heard."""
    if clip.on_skipped is None:
        return
    try:
        clip.on_skipped(clip)
    except Exception:
        log.exception("on_skipped callback failed")
