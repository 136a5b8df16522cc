"""Per-listener mixing of the other participants' voices, one 20 ms frame at a time.

Every listener has its own queue per speaker, so listeners never steal frames from each other
and each gets its own translated speech (dubs, see ``dub.py``) in the same mix, with the
originals ducked underneath. Queues are a small adaptive jitter buffer: they start playing
after ``prebuffer`` frames, and frames that stay queued through a whole half-second window are
dropped, so latency cannot creep.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callserver.media.dub import DubClip, DubPlayer, DubSettings, drop_clip
from callserver.media.frames import FRAME_SAMPLES, SILENT_FRAME, Pcm16, PcmFrame

log = logging.getLogger(__name__)

#: Pulls over which a queue's lowest depth is watched; what never drained in that time is
#: dropped (0.5 s: long enough to see arrival jitter, short enough that delay cannot build).
CATCH_UP_WINDOW_PULLS = 25


@dataclass
class MixStats:
    """Counters the metrics layer reads."""

    mixed_frames: int = 0
    underruns: int = 0
    dropped_frames: int = 0
    #: Frames in which a listener heard dub audio.
    dub_frames: int = 0
    #: Dub clips dropped by catch-up before they were heard.
    dub_clips_skipped: int = 0
    #: Frames in which a listener's originals were ducked under a dub.
    ducked_frames: int = 0
    #: Mixed frames dropped because the listener's sender had not taken the ones before (an
    #: encoder falling behind the room's clock; see ``room_clock.ListenerFeed``).
    unsent_frames: int = 0


class SpeakerQueue:
    """One speaker's frames waiting for one listener."""

    def __init__(self, max_frames: int, prebuffer: int) -> None:
        self.max_frames = max_frames
        self.prebuffer = prebuffer
        self._frames: deque[Pcm16] = deque()
        self._playing = False
        self._window_min = 0
        self._window_pulls = 0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, samples: Pcm16) -> int:
        """Queue a frame; return how many old frames were dropped to stay within bounds."""
        self._frames.append(samples)
        dropped = 0
        while len(self._frames) > self.max_frames:
            self._frames.popleft()
            dropped += 1
        return dropped

    def pull(self) -> tuple[Pcm16 | None, bool, int]:
        """Return (frame or None, whether this was an underrun, frames dropped to catch up)."""
        if not self._playing:
            if len(self._frames) <= self.prebuffer:
                return None, False, 0
            self._playing = True
            self._window_min, self._window_pulls = len(self._frames), 0
        if not self._frames:
            self._playing = False
            return None, True, 0
        dropped = self._catch_up()
        return self._frames.popleft(), False, dropped

    def _catch_up(self) -> int:
        # Frames that stayed queued through a whole window, however the arrivals jittered,
        # are pure delay: drop them at the window's end.
        self._window_min = min(self._window_min, len(self._frames))
        self._window_pulls += 1
        if self._window_pulls < CATCH_UP_WINDOW_PULLS:
            return 0
        excess = self._window_min - (self.prebuffer + 1)
        for _ in range(max(0, excess)):
            self._frames.popleft()
        self._window_min, self._window_pulls = len(self._frames), 0
        return max(0, excess)


class RoomMixer:
    """Mixes, for each listener, every other participant's voice."""

    def __init__(
        self,
        max_queue_frames: int = 10,
        prebuffer_frames: int = 0,
        on_underrun: Callable[[str, str], None] | None = None,
        stats: MixStats | None = None,
        dub_settings: DubSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_queue_frames = max_queue_frames
        self.prebuffer_frames = prebuffer_frames
        # Shared between a server's mixers so counters survive rooms that close.
        self.stats = stats if stats is not None else MixStats()
        self._on_underrun = on_underrun
        self.dub_settings = dub_settings if dub_settings is not None else DubSettings()
        self._clock = clock
        # listener id -> speaker id -> queue
        self._queues: dict[str, dict[str, SpeakerQueue]] = {}
        # listener id -> that listener's dubs
        self._dubs: dict[str, DubPlayer] = {}
        # listener id -> speakers whose voice that listener gets no dub of: never lowered
        self._plain: dict[str, frozenset[str]] = {}
        # speakers whose voice detection hears them speaking now
        self._speaking: set[str] = set()

    @property
    def participants(self) -> list[str]:
        return list(self._queues)

    def add(self, participant: str) -> None:
        """Make ``participant`` both a listener and a speaker."""
        if participant in self._queues:
            return
        for listener, queues in self._queues.items():
            queues[participant] = self._new_queue()
            log.debug("mixer route", extra={"listener": listener, "speaker": participant})
        self._queues[participant] = {speaker: self._new_queue() for speaker in self._queues}
        self._dubs[participant] = DubPlayer(self.dub_settings, listener=participant)

    def remove(self, participant: str) -> None:
        """Forget ``participant`` as listener and as speaker."""
        self._queues.pop(participant, None)
        self._plain.pop(participant, None)
        self._speaking.discard(participant)
        player = self._dubs.pop(participant, None)
        if player is not None:
            player.close()
        for queues in self._queues.values():
            queues.pop(participant, None)

    def push(self, speaker: str, frame: PcmFrame) -> None:
        """Offer one 20 ms frame spoken by ``speaker`` to every other listener."""
        if frame.samples.size != FRAME_SAMPLES:
            raise ValueError(f"mixer frames must hold {FRAME_SAMPLES} samples")
        for listener, queues in self._queues.items():
            if listener == speaker:
                continue
            queue = queues.get(speaker)
            if queue is not None:
                self.stats.dropped_frames += queue.push(frame.samples)

    def enqueue_dub(self, listener: str, clip: DubClip) -> bool:
        """Queue a dub for ``listener``; False (and ``on_skipped``) when it will not play."""
        player = self._dubs.get(listener)
        if player is None:
            drop_clip(clip)
            return False
        accepted = player.dub_enabled and clip.samples.size > 0
        self.stats.dub_clips_skipped += player.enqueue(clip)
        return accepted

    def set_listener_prefs(
        self,
        listener: str,
        dub_enabled: bool | None = None,
        original_volume: float | None = None,
    ) -> None:
        """Change one listener's dub controls (None leaves a control as it is)."""
        player = self._dubs.get(listener)
        if player is not None:
            player.set_prefs(dub_enabled=dub_enabled, original_volume=original_volume)

    def set_plain_speakers(self, listener: str, speakers: frozenset[str]) -> None:
        """Speakers ``listener`` gets no dub of (same language, or a pair with no voice): their
        voice is all the listener hears of them, so neither the listener's original-voice
        volume nor the duck under other speakers' dubs lowers it."""
        if listener in self._queues:
            self._plain[listener] = speakers

    def set_speaking(self, speaker: str, speaking: bool) -> None:
        """Voice detection hears ``speaker`` speaking (or no longer): the listeners who get
        dubs of them know another dub is coming, and catch up sooner (``DubPlayer``)."""
        if speaking and speaker in self._queues:
            self._speaking.add(speaker)
        else:
            self._speaking.discard(speaker)

    def dub_player(self, listener: str) -> DubPlayer | None:
        """``listener``'s dub player (backlog, counters), if the listener is here."""
        return self._dubs.get(listener)

    def pull(self, listener: str, now: float | None = None) -> Pcm16:
        """The next 20 ms of what ``listener`` hears: other voices summed, dubs over them.

        ``now`` is the tick time (default: the mixer's clock) reported to ``on_first_frame``.
        """
        queues = self._queues.get(listener)
        self.stats.mixed_frames += 1
        if queues is None:
            return SILENT_FRAME
        originals: list[Pcm16] = []
        plain_ones: list[Pcm16] = []
        plain = self._plain.get(listener, frozenset())
        for speaker, queue in queues.items():
            samples, underrun, dropped = queue.pull()
            self.stats.dropped_frames += dropped
            if underrun:
                self.stats.underruns += 1
                if self._on_underrun is not None:
                    self._on_underrun(listener, speaker)
            if samples is not None:
                (plain_ones if speaker in plain else originals).append(samples)
        player = self._dubs[listener]
        player.expecting = any(s != listener and s not in plain for s in self._speaking)
        dub, gain = player.next_frame(self._clock() if now is None else now)
        self.stats.dub_frames += dub is not None
        self.stats.ducked_frames += player.ducking
        unity = isinstance(gain, float) and gain == 1.0
        if dub is None and (unity or not originals):
            sources = originals + plain_ones
            if not sources:
                return SILENT_FRAME
            if len(sources) == 1:
                # One voice at full volume (most of a two-party call): it is the mix already.
                return sources[0]
        acc = _sum(originals)
        if acc is not None and not unity:
            acc = np.rint(acc * gain).astype(np.int32)
        for part in (_sum(plain_ones), dub):
            if part is not None:
                acc = part.astype(np.int32) if acc is None else acc + part
        assert acc is not None  # some source was there, or the silent return above was taken
        mixed: Pcm16 = np.clip(acc, -32768, 32767).astype(np.int16)
        return mixed

    def _new_queue(self) -> SpeakerQueue:
        return SpeakerQueue(self.max_queue_frames, self.prebuffer_frames)


def _sum(frames: list[Pcm16]) -> npt.NDArray[np.int32] | None:
    """The frames summed in int32 (so a loud sum clips later instead of wrapping)."""
    if not frames:
        return None
    acc: npt.NDArray[np.int32] = frames[0].astype(np.int32)
    for samples in frames[1:]:
        acc += samples
    return acc
