"""What the translation hub keeps per speaker and per utterance in flight."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from callserver.pipeline.events import Utterance
from callserver.pipeline.speaker import SpeakerPipeline
from callserver.pipeline.streaming import Streamed
from models.stt.result import Transcript

#: Utterance ids whose final caption went out, remembered per speaker so a late interim
#: result never replaces final text.
FINAL_MEMORY = 16


@dataclass
class EarlyRecognition:
    """Recognition started when the speaker paused, before the endpoint was sure.

    Used only by the utterance it was started for, and only if speech did not resume after
    the pause (same ``speech_end_at`` and length): then its audio is the utterance's audio."""

    utterance_id: str
    speech_end_at: float
    samples: int
    task: asyncio.Task[Transcript]

    def matches(self, utterance: Utterance) -> bool:
        return (
            self.utterance_id == utterance.utterance_id
            and self.speech_end_at == utterance.speech_end_at
            and self.samples == utterance.audio.size
        )


@dataclass
class Heard:
    """An utterance the others in its room may have heard, until its texts (caption and
    translations) are in their echo guards, or it is dropped."""

    participant_id: str
    speech_end_at: float
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class SpeakerState:
    """One speaker's front end, pending utterances and the task that works through them."""

    room_id: str
    participant_id: str
    front: SpeakerPipeline | None = None
    pending: deque[Utterance] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None
    finals: deque[str] = field(default_factory=lambda: deque(maxlen=FINAL_MEMORY))
    interim: asyncio.Task[None] | None = None
    early: EarlyRecognition | None = None
    #: Utterances in progress with pieces dubbed ahead of their end (streaming), by id.
    streams: dict[str, Streamed] = field(default_factory=dict)
    #: An utterance taken from ``pending`` is being recognised, translated or synthesised.
    busy: bool = False

    @property
    def idle(self) -> bool:
        """Nothing of this speaker's is queued, detected, recognised or translated."""
        return (
            (self.front is None or self.front.idle)
            and not self.pending
            and not self.busy
            and (self.interim is None or self.interim.done())
            and (self.early is None or self.early.task.done())
            and all(streamed.done for streamed in self.streams.values())
        )
