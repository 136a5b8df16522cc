"""Outgoing audio: tracks that send fixed 20 ms frames, paced by a clock.

``FeedAudioTrack`` sends what a room's clock mixes for one listener (``room_clock.py``);
``PacedAudioTrack`` keeps its own clock (scripted callers, tools).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Awaitable, Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16
from callserver.media.room_clock import ListenerFeed

log = logging.getLogger(__name__)

#: When the loop falls this far behind the frame clock (a stall), restart the clock instead of
#: sending a burst of frames the far end's jitter buffer would discard.
MAX_LAG_S = 0.2

TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class PacedAudioTrack(MediaStreamTrack):
    """Sends ``source()`` every 20 ms; ``source`` returns silence when there is nothing to say.

    Once stopped (peer gone, leave, shutdown) ``recv`` raises ``MediaStreamError``, which ends
    aiortc's sender loop: the track never spins.
    """

    kind = "audio"

    def __init__(
        self,
        source: Callable[[], Pcm16],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__()
        self._source = source
        self._clock = clock
        self._sleep = sleep  # with ``clock``, a seam for tests to drive time
        self._start: float | None = None
        self._sent = 0  # samples sent since the clock (re)started
        self._pts = 0
        self.frames_sent = 0
        self.clock_resets = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._sent / SAMPLE_RATE
            wait = due - now
            if wait > 0:
                await self._sleep(wait)
            elif -wait > MAX_LAG_S:
                self.clock_resets += 1
                self._start, self._sent = now, 0
            if self.readyState != "live":
                raise MediaStreamError
        frame = audio_frame(self._source(), self._pts)
        self._pts += FRAME_SAMPLES
        self._sent += FRAME_SAMPLES
        self.frames_sent += 1
        return frame


class FeedAudioTrack(MediaStreamTrack):
    """Sends the frames a room's clock mixes for one listener, as the ticks give them.

    The room's clock paces it and sends silence when nobody speaks. Once stopped (peer gone,
    leave, shutdown), or once the clock closes the feed, ``recv`` raises ``MediaStreamError``,
    which ends aiortc's sender loop: the track never spins.
    """

    kind = "audio"

    def __init__(self, feed: ListenerFeed, on_stop: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.feed = feed
        self._on_stop = on_stop
        self._pts = 0
        self.frames_sent = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = await self.feed.get()
        if samples is None or self.readyState != "live":
            raise MediaStreamError
        frame = audio_frame(samples, self._pts)
        self._pts += FRAME_SAMPLES
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        if self._on_stop is not None:
            self._on_stop()
            self._on_stop = None


def audio_frame(samples: Pcm16, pts: int) -> av.AudioFrame:
    """One 20 ms mono frame for aiortc's encoder (the samples are copied).

    Filling a new frame's plane takes half the time of ``AudioFrame.from_ndarray``, which
    checks and reshapes on every call (1.6 against 3.4 us a frame here).
    """
    frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
    frame.planes[0].update(samples.tobytes())
    frame.sample_rate = SAMPLE_RATE
    frame.time_base = TIME_BASE
    frame.pts = pts
    return frame
