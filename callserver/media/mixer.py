"""Per-listener mixing of the other participants' voices, one 20 ms frame at a time.

Every listener has its own queue per speaker, so listeners never steal frames from each other
and each can later get its own extra sources (translated speech) in the same mix. Queues are a
small adaptive jitter buffer: they start playing after ``prebuffer`` frames, and frames that
stay queued through a whole half-second window are dropped, so latency cannot creep.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from callserver.media.frames import FRAME_SAMPLES, Pcm16, PcmFrame, silence

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
    ) -> None:
        self.max_queue_frames = max_queue_frames
        self.prebuffer_frames = prebuffer_frames
        # Shared between a server's mixers so counters survive rooms that close.
        self.stats = stats if stats is not None else MixStats()
        self._on_underrun = on_underrun
        # listener id -> speaker id -> queue
        self._queues: dict[str, dict[str, SpeakerQueue]] = {}

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

    def remove(self, participant: str) -> None:
        """Forget ``participant`` as listener and as speaker."""
        self._queues.pop(participant, None)
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

    def pull(self, listener: str) -> Pcm16:
        """The next 20 ms of what ``listener`` hears: other voices summed, or silence."""
        queues = self._queues.get(listener)
        self.stats.mixed_frames += 1
        if not queues:
            return silence()
        acc: np.ndarray | None = None
        for speaker, queue in queues.items():
            samples, underrun, dropped = queue.pull()
            self.stats.dropped_frames += dropped
            if underrun:
                self.stats.underruns += 1
                if self._on_underrun is not None:
                    self._on_underrun(listener, speaker)
            if samples is None:
                continue
            if acc is None:
                acc = samples.astype(np.int32)
            else:
                acc += samples
        if acc is None:
            return silence()
        mixed: Pcm16 = np.clip(acc, -32768, 32767).astype(np.int16)
        return mixed

    def _new_queue(self) -> SpeakerQueue:
        return SpeakerQueue(self.max_queue_frames, self.prebuffer_frames)
