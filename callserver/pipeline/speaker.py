"""One speaker's front end: their 20 ms frames through resampling and voice detection.

Frames arrive on the event loop; detection runs in a worker thread (it is model inference),
one batch at a time per speaker so the speaker's events keep their order. Every speaker has
their own resampler and detector state: nothing is shared between speakers.

Whether the speaker is speaking (the voice detection's verdict, as events tell it) is reported
on each change, for the page's active-speaker highlight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from callserver.media.frames import PcmFrame
from callserver.pipeline.endpoint import Endpointer, EndpointSettings
from callserver.pipeline.events import (
    SpeechDiscarded,
    SpeechPaused,
    SpeechStarted,
    SpeechUpdate,
    Utterance,
)
from callserver.pipeline.resample import Downsample
from callserver.pipeline.sentence_end import Verdict
from models.pool import InferencePool

log = logging.getLogger(__name__)

SpeechEvent = SpeechStarted | SpeechUpdate | SpeechPaused | Utterance | SpeechDiscarded


class SpeakerPipeline:
    """Buffers a speaker's frames and turns them into speech events off the event loop."""

    def __init__(
        self,
        speaker: str,
        settings: EndpointSettings,
        pool: InferencePool,
        on_event: Callable[[SpeechEvent], None],
        max_frames: int = 250,
        on_speaking: Callable[[bool], None] | None = None,
        awaits_verdicts: bool = False,
    ) -> None:
        self.speaker = speaker
        self.dropped_frames = 0
        #: Frames pushed since the start; tests compare it with what a caller sent.
        self.frames_received = 0
        self._downsample = Downsample()
        self._endpointer = Endpointer(settings, awaits_verdicts=awaits_verdicts)
        self._pool = pool
        self._on_event = on_event
        self._on_speaking = on_speaking
        self._speaking = False
        # None marks where the speaker was cut off (muted): detection must drop the speech in
        # progress there, after the frames before it and before any that follow an unmute.
        self._frames: deque[PcmFrame | None] = deque()
        self._verdicts: list[tuple[str, float, Verdict]] = []
        self._max_frames = max_frames
        self._ready = asyncio.Event()
        self._detecting = False
        self._task = asyncio.create_task(self._run(), name=f"speaker-{speaker}")

    @property
    def idle(self) -> bool:
        """No frame waits or is being detected, and no speech is in progress."""
        return (
            not self._frames
            and not self._verdicts
            and not self._detecting
            and self._endpointer.idle
        )

    @property
    def speaking(self) -> bool:
        """Whether the speaker was last reported speaking (``on_speaking``)."""
        return self._speaking

    def push(self, frame: PcmFrame) -> None:
        """Accept one 20 ms frame (event loop; cheap)."""
        self.frames_received += 1
        self._enqueue(frame)

    def judge(self, utterance_id: str, speech_end_at: float, verdict: Verdict) -> None:
        """Tell voice detection what the words of a paused utterance say about its end.

        Handed to detection with the next batch, before its frames (event loop; cheap). It
        is applied even if no frame follows: detection may have seen the whole pause already
        (it lags, or the speaker's frames stopped), and the utterance must still end."""
        self._verdicts.append((utterance_id, speech_end_at, verdict))
        self._ready.set()

    def cut_off(self) -> None:
        """The speaker's audio stops here (a host muted them): the utterance in progress is
        dropped unrecognised once the frames already received are detected."""
        self._enqueue(None)

    def _enqueue(self, item: PcmFrame | None) -> None:
        self._frames.append(item)
        if len(self._frames) > self._max_frames:
            oldest = self._frames.popleft()
            if oldest is None:
                # Detection is far behind: a frame goes instead of the cut, which must happen.
                self._frames.popleft()
                self._frames.appendleft(None)
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
            verdicts, self._verdicts = self._verdicts, []
            # Busy until the batch's events are handed on, so ``idle`` never reports a gap
            # between frames leaving the queue and their utterance reaching the hub.
            self._detecting = True
            try:
                events = await self._pool.run(self._detect, batch, verdicts)
            except Exception:
                # Detection failing on one batch must not end the speaker's translation.
                log.exception("voice detection failed", extra={"participant": self.speaker})
                continue
            else:
                for index, event in enumerate(events):
                    self._on_event(event)
                    self._track_speaking(events, index)
            finally:
                self._detecting = False

    def _track_speaking(self, events: list[SpeechEvent], index: int) -> None:
        """Report a change of speaking after ``events[index]``, once per change."""
        event = events[index]
        if isinstance(event, SpeechStarted):
            speaking = True
        elif isinstance(event, Utterance | SpeechDiscarded):
            following = events[index + 1] if index + 1 < len(events) else None
            if isinstance(following, SpeechStarted):
                return  # an utterance cut at the maximum length: the speech goes on
            speaking = False
        else:
            return
        if speaking != self._speaking:
            self._speaking = speaking
            if self._on_speaking is not None:
                self._on_speaking(speaking)

    def _detect(
        self, batch: list[PcmFrame | None], verdicts: list[tuple[str, float, Verdict]]
    ) -> list[SpeechEvent]:
        events: list[SpeechEvent] = []
        for verdict in verdicts:
            events.extend(self._endpointer.judge(*verdict))
        for frame in batch:
            if frame is None:
                events.extend(self._endpointer.discard())
                continue
            for speech in self._downsample.process(frame):
                events.extend(self._endpointer.process(speech))
        return events
