"""One speaker's front end: their 20 ms frames through resampling and voice detection.

Frames arrive on the event loop; detection runs in a worker thread (it is model inference),
one batch at a time per speaker so the speaker's events keep their order. Every speaker has
their own resampler and detector state: nothing is shared between speakers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from callserver.media.frames import PcmFrame
from callserver.pipeline.endpoint import Endpointer, EndpointSettings
from callserver.pipeline.events import SpeechPaused, SpeechStarted, SpeechUpdate, Utterance
from callserver.pipeline.resample import Downsample
from models.pool import InferencePool

log = logging.getLogger(__name__)

SpeechEvent = SpeechStarted | SpeechUpdate | SpeechPaused | Utterance


class SpeakerPipeline:
    """Buffers a speaker's frames and turns them into speech events off the event loop."""

    def __init__(
        self,
        speaker: str,
        settings: EndpointSettings,
        pool: InferencePool,
        on_event: Callable[[SpeechEvent], None],
        max_frames: int = 250,
    ) -> None:
        self.speaker = speaker
        self.dropped_frames = 0
        #: Frames pushed since the start; tests compare it with what a caller sent.
        self.frames_received = 0
        self._downsample = Downsample()
        self._endpointer = Endpointer(settings)
        self._pool = pool
        self._on_event = on_event
        self._frames: deque[PcmFrame] = deque()
        self._max_frames = max_frames
        self._ready = asyncio.Event()
        self._detecting = False
        self._task = asyncio.create_task(self._run(), name=f"speaker-{speaker}")

    @property
    def idle(self) -> bool:
        """No frame waits or is being detected, and no speech is in progress."""
        return not self._frames and not self._detecting and self._endpointer.idle

    def push(self, frame: PcmFrame) -> None:
        """Accept one 20 ms frame (event loop; cheap)."""
        self.frames_received += 1
        self._frames.append(frame)
        if len(self._frames) > self._max_frames:
            self._frames.popleft()
            self.dropped_frames += 1
        self._ready.set()

    async def close(self) -> None:
        """Stop detection; speech in progress is discarded."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = list(self._frames)
            self._frames.clear()
            # Busy until the batch's events are handed on, so ``idle`` never reports a gap
            # between frames leaving the queue and their utterance reaching the hub.
            self._detecting = True
            try:
                events = await self._pool.run(self._detect, batch)
            except Exception:
                # Detection failing on one batch must not end the speaker's translation.
                log.exception("voice detection failed", extra={"participant": self.speaker})
                continue
            else:
                for event in events:
                    self._on_event(event)
            finally:
                self._detecting = False

    def _detect(self, batch: list[PcmFrame]) -> list[SpeechEvent]:
        events: list[SpeechEvent] = []
        for frame in batch:
            for speech in self._downsample.process(frame):
                events.extend(self._endpointer.process(speech))
        return events
