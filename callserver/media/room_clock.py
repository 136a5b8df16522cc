"""One clock per room: every listener's mix is pulled on a tick placed just after its speakers.

A listener's 20 ms mix used to be pulled by their own outgoing track's timer, at a phase that
had nothing to do with when their speakers' frames arrived: a frame arriving just after the
tick waited almost a whole frame for the next one (about 20 ms of the 126 ms the server added
over a plain relay). Here one task per room serves every listener. Each listener's ticks are
moved, a little at a time, to just after the moment by which their speakers' frames have
mostly arrived (``ArrivalPhase``), so a frame waits for its tick by a couple of milliseconds,
not by up to a frame. Listeners whose ticks fall together are mixed in the same wake-up from
the same frames.

The clock keeps pacing in fixed 20 ms frames: a listener gets a frame on every tick (silence
when nobody speaks), ticks restart after a stall instead of bursting, and a listener whose
track is gone is detached so nothing ticks for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from callserver.media.frames import FRAME_MS, Pcm16, PcmFrame
from callserver.media.mixer import RoomMixer

log = logging.getLogger(__name__)

TICK_S = FRAME_MS / 1000
#: Listeners due within this of each other are mixed in one wake-up.
COALESCE_S = 0.001
#: When the loop falls this far behind a listener's tick (a stall), that listener's ticks
#: restart from now instead of catching up with a burst the far end would discard.
MAX_LAG_S = 0.2
#: Ticks between two placements of a listener's phase.
PLACE_EVERY_TICKS = 25
#: A speaker counts for a listener's phase while their last frame is this recent.
ACTIVE_S = 1.0


@dataclass(frozen=True)
class TickSettings:
    """How a room's clock places each listener's ticks."""

    #: Time added after the moment by which ``arrival_quantile`` of a speaker's recent frames
    #: had arrived: covers the thread hop from aiortc's decoder to the event loop.
    arrival_margin_s: float = 0.003
    #: Share of a speaker's recent frames (the last second's) that should arrive before the
    #: tick; the rest wait a tick in the speaker's queue. 1.0, the latest of them, was the
    #: setting that kept underruns down without a prebuffer (``docs/benchmarks.md``).
    arrival_quantile: float = 1.0
    #: Most a listener's tick moves at once: the far end sees a frame early or late by this
    #: much, well within a browser's jitter buffer.
    max_shift_per_tick_s: float = 0.002
    #: Mixed frames kept for a track whose sender is late; older ones are dropped.
    listener_buffer_frames: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.arrival_margin_s < TICK_S:
            raise ValueError("arrival_margin_s must be in [0, 0.02)")
        if not 0 < self.arrival_quantile <= 1:
            raise ValueError("arrival_quantile must be in (0, 1]")
        if not 0 < self.max_shift_per_tick_s <= TICK_S / 2:
            raise ValueError("max_shift_per_tick_s must be in (0, 0.01]")
        if self.listener_buffer_frames < 1:
            raise ValueError("listener_buffer_frames must be at least 1")


class ArrivalPhase:
    """Where in the 20 ms period one speaker's frames arrive, from their last second."""

    def __init__(self, window: int = 50) -> None:
        self._phases: deque[float] = deque(maxlen=window)
        self.last_arrival = -math.inf

    def note(self, at: float) -> None:
        self._phases.append(at % TICK_S)
        self.last_arrival = at

    def late_edge(self, quantile: float) -> float | None:
        """The phase by which ``quantile`` of the recent frames had arrived; None: too few."""
        if len(self._phases) < 5:
            return None
        phases = np.fromiter(self._phases, dtype=np.float64)
        angles = phases * (2 * math.pi / TICK_S)
        centre = math.atan2(float(np.sin(angles).mean()), float(np.cos(angles).mean()))
        mean = centre * TICK_S / (2 * math.pi)
        # Signed distance of each arrival from the circular mean, in (-T/2, T/2].
        spread = (phases - mean + TICK_S / 2) % TICK_S - TICK_S / 2
        return float((mean + np.quantile(spread, quantile)) % TICK_S)


class ListenerFeed:
    """One listener's mixed frames, handed from the room's tick to their outgoing track."""

    def __init__(self, capacity: int) -> None:
        self.closed = False
        #: The track has asked for a frame: from then on a dropped frame is a late sender's
        #: (before, aiortc has not started sending, and old frames are merely stale).
        self.started = False
        self._frames: deque[Pcm16] = deque()
        self._capacity = capacity
        self._waiter: asyncio.Future[None] | None = None

    def put(self, samples: Pcm16) -> int:
        """Hand over a mixed frame, keeping the newest; return how many unsent frames of a
        started track were dropped for it (before it starts, old frames are merely stale)."""
        self._frames.append(samples)
        dropped = 0
        while len(self._frames) > self._capacity:
            self._frames.popleft()
            dropped += 1
        self._wake()
        return dropped if self.started else 0

    async def get(self) -> Pcm16 | None:
        """The next mixed frame; None once the feed is closed."""
        self.started = True
        while not self._frames:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._frames.popleft()

    def close(self) -> None:
        self.closed = True
        self._frames.clear()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


@dataclass
class _Listener:
    feed: ListenerFeed
    next_due: float
    shift_left: float = 0.0
    ticks: int = 0


class RoomClock:
    """Ticks a room's listeners: each listener's mix pulled just after their speakers' frames.

    ``push`` is the speakers' side (it notes when each frame arrived); ``attach`` gives a
    listener's track its feed. ``run_due`` is the whole tick, synchronous so tests can drive
    time; the task started by ``attach`` calls it on the event loop's clock.
    """

    def __init__(
        self,
        mixer: RoomMixer,
        settings: TickSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.mixer = mixer
        self.settings = settings if settings is not None else TickSettings()
        self.clock_resets = 0
        self._clock = clock
        self._sleep = sleep
        self._listeners: dict[str, _Listener] = {}
        self._arrivals: dict[str, ArrivalPhase] = {}
        self._task: asyncio.Task[None] | None = None

    # --- speakers -------------------------------------------------------------------------------

    def push(self, speaker: str, frame: PcmFrame) -> None:
        """Offer a speaker's 20 ms frame to the room's listeners, noting when it arrived."""
        self.mixer.push(speaker, frame)
        arrival = self._arrivals.get(speaker)
        if arrival is None:
            arrival = self._arrivals[speaker] = ArrivalPhase()
        arrival.note(self._clock())

    def forget(self, participant: str) -> None:
        """``participant`` left: neither their arrivals nor their ticks count any more."""
        self._arrivals.pop(participant, None)
        self.detach(participant)

    # --- listeners ------------------------------------------------------------------------------

    def attach(self, listener: str, start: bool = True) -> ListenerFeed:
        """A feed of ``listener``'s mix, one frame per tick from the next tick on."""
        self.detach(listener)
        feed = ListenerFeed(self.settings.listener_buffer_frames)
        self._listeners[listener] = _Listener(feed=feed, next_due=self._clock())
        if start and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="room-clock")
        return feed

    def detach(self, listener: str, feed: ListenerFeed | None = None) -> None:
        """Stop ticking for ``listener`` and close their feed (their track then ends).

        With ``feed``, only if that is still the listener's feed: a track stopped after its
        participant reconnected must not end the new connection's feed.
        """
        entry = self._listeners.get(listener)
        if entry is None or (feed is not None and entry.feed is not feed):
            return
        del self._listeners[listener]
        entry.feed.close()

    @property
    def listeners(self) -> list[str]:
        return list(self._listeners)

    def due(self) -> float | None:
        """When the next listener's tick is due; None when nobody listens."""
        return min((entry.next_due for entry in self._listeners.values()), default=None)

    def run_due(self, now: float) -> list[str]:
        """Tick every listener due by ``now``; return who was ticked."""
        ticked = []
        for listener, entry in list(self._listeners.items()):
            if entry.next_due > now + COALESCE_S:
                continue
            if now - entry.next_due > MAX_LAG_S:
                self.clock_resets += 1
                entry.next_due = now
            # Mixed on time even for a sender that fell behind (an overloaded encoder thread):
            # its oldest unsent frame goes, so the speakers' queues never build a backlog that
            # would delay their voices after the stall. (Skipping the tick instead left up to
            # 0.2 s of voice queued behind a stall until catch-up dropped it.)
            self.mixer.stats.unsent_frames += entry.feed.put(self.mixer.pull(listener, now))
            entry.ticks += 1
            if entry.ticks % PLACE_EVERY_TICKS == 0:
                entry.shift_left = self._shift_towards_speakers(listener, entry.next_due, now)
            most = self.settings.max_shift_per_tick_s
            step = max(-most, min(entry.shift_left, most))
            entry.shift_left -= step
            entry.next_due += TICK_S + step
            ticked.append(listener)
        return ticked

    async def close(self) -> None:
        """Stop the clock and close every feed."""
        for listener in list(self._listeners):
            self.detach(listener)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- placing ticks --------------------------------------------------------------------------

    def _shift_towards_speakers(self, listener: str, due: float, now: float) -> float:
        """How far to move ``listener``'s ticks so they fall just after their speakers'."""
        edges: list[float] = []
        for speaker, arrival in self._arrivals.items():
            if speaker == listener or now - arrival.last_arrival > ACTIVE_S:
                continue
            edge = arrival.late_edge(self.settings.arrival_quantile)
            if edge is not None:
                edges.append((edge + self.settings.arrival_margin_s) % TICK_S)
        if not edges:
            return 0.0
        # Of the speakers' own targets, the one that makes their frames wait least in total.
        target = min(edges, key=lambda c: sum((c - edge) % TICK_S for edge in edges))
        return (target - due % TICK_S + TICK_S / 2) % TICK_S - TICK_S / 2

    async def _run(self) -> None:
        while (due := self.due()) is not None:
            now = self._clock()
            if due > now:
                await self._sleep(due - now)
                continue
            try:
                self.run_due(now)
            except Exception:
                # A mixing error must not silence the room: log it, keep the clock going.
                log.exception("room tick failed")
                await self._sleep(TICK_S)
