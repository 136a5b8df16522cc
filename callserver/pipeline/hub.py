"""Joins calls to the engines: a front end per speaker, a queue of utterances per speaker,
and a server-wide bound on waiting utterances so latency cannot build up."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from callserver.engines import EngineSet
from callserver.media.frames import PcmFrame
from callserver.pipeline.echo import EchoGuard
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.events import SpeechUpdate, Utterance
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.settings import PipelineSettings
from callserver.pipeline.speaker import SpeakerPipeline, SpeechEvent
from callserver.pipeline.transcript import TranscriptEntry
from callserver.pipeline.translator import Delivery, UtteranceTranslator, wall
from models.errors import EngineError
from models.pool import InferencePool
from signaling.rooms import Participant

log = logging.getLogger(__name__)

#: Utterance ids whose final caption went out, remembered per speaker so a late interim
#: result never replaces final text.
FINAL_MEMORY = 16


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


class TranslationHub:
    """Receives every participant's frames and turns their speech into captions and dubs."""

    def __init__(
        self,
        settings: PipelineSettings,
        endpoint_settings: EndpointSettings,
        engines: EngineSet,
        delivery: Delivery,
        participants: Callable[[str], list[Participant]],
        metrics: PipelineMetrics,
        on_final: Callable[[str, TranscriptEntry], None] | None = None,
    ) -> None:
        self.settings = settings
        self.endpoint_settings = endpoint_settings
        self.participants = participants
        self.metrics = metrics
        self._speakers: dict[tuple[str, str], SpeakerState] = {}
        self._guards: dict[str, EchoGuard] = {}
        self._vad_pool = InferencePool("vad", workers=1, max_queue=10_000)
        # Utterances wait for recognition here, in their speaker's queue, where the backlog
        # bound can see and drop them; not inside the engine's pool, where it could not.
        self._recognition = asyncio.Semaphore(settings.recognition_slots)
        self.translator = UtteranceTranslator(engines, delivery, metrics, self.echo_guard, on_final)

    @property
    def pending(self) -> int:
        """Utterances waiting for recognition, server-wide."""
        return sum(len(s.pending) for s in self._speakers.values())

    @property
    def speaker_count(self) -> int:
        return len(self._speakers)

    def echo_guard(self, participant_id: str) -> EchoGuard:
        guard = self._guards.get(participant_id)
        if guard is None:
            guard = EchoGuard(self.settings.echo_window_s, self.settings.echo_similarity)
            self._guards[participant_id] = guard
        return guard

    # --- media plane hooks ------------------------------------------------------------------------

    def on_frame(self, room_id: str, participant_id: str, frame: PcmFrame) -> None:
        """Frame tap: one 20 ms frame a participant sent (event loop)."""
        key = (room_id, participant_id)
        state = self._speakers.get(key)
        if state is None:
            state = SpeakerState(room_id, participant_id)
            state.front = SpeakerPipeline(
                participant_id,
                self.endpoint_settings,
                self._vad_pool,
                functools.partial(self._on_speech, state),
                self.settings.frame_queue_max,
            )
            state.worker = asyncio.create_task(self._work(state))
            self._speakers[key] = state
        assert state.front is not None
        state.front.push(frame)

    async def on_peer_closed(self, room_id: str, participant_id: str) -> None:
        """The participant's media ended: stop their pipeline and forget their echo memory."""
        state = self._speakers.pop((room_id, participant_id), None)
        if state is not None:
            await self._stop(state)
        if not any(pid == participant_id for _, pid in self._speakers):
            self._guards.pop(participant_id, None)

    async def close(self) -> None:
        """Stop every pipeline (shutdown)."""
        states = list(self._speakers.values())
        self._speakers.clear()
        for state in states:
            await self._stop(state)
        self._vad_pool.close()

    async def _stop(self, state: SpeakerState) -> None:
        if state.front is not None:
            await state.front.close()
        for task in (state.worker, state.interim):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- speech events ----------------------------------------------------------------------------

    def submit(self, room_id: str, participant_id: str, utterance: Utterance) -> None:
        """Queue a finished utterance of a participant for translation (as their voice
        detection does; also the entry point for utterances detected elsewhere)."""
        key = (room_id, participant_id)
        state = self._speakers.get(key)
        if state is None:
            state = SpeakerState(room_id, participant_id)
            state.worker = asyncio.create_task(self._work(state))
            self._speakers[key] = state
        self._admit(state, utterance)

    def _on_speech(self, state: SpeakerState, event: SpeechEvent) -> None:
        if isinstance(event, Utterance):
            self._admit(state, event)
        elif (
            isinstance(event, SpeechUpdate)
            and self.settings.interim_captions
            and (state.interim is None or state.interim.done())
        ):
            state.interim = asyncio.create_task(self._interim(state, event))

    def _admit(self, state: SpeakerState, utterance: Utterance) -> None:
        # Guards of participants who were only ever listeners are not freed by a speaker's
        # pipeline closing; forget every guard with nothing left to remember.
        self._guards = {pid: g for pid, g in self._guards.items() if not g.idle}
        if self.pending >= self.settings.max_pending_utterances:
            self._drop_oldest()
        state.pending.append(utterance)
        state.wake.set()

    def _drop_oldest(self) -> None:
        waiting = [s for s in self._speakers.values() if s.pending]
        if not waiting:
            return
        victim = min(waiting, key=lambda s: s.pending[0].endpoint_at)
        dropped = victim.pending.popleft()
        self.metrics.utterances.labels("dropped_backlog").inc()
        log.warning(
            "utterance dropped: backlog",
            extra={
                "room": victim.room_id,
                "participant": victim.participant_id,
                "utterance": dropped.utterance_id,
                "pending": self.pending,
            },
        )
        speaker = self._participant(victim.room_id, victim.participant_id)
        for p in self.participants(victim.room_id):
            self.translator.delivery.send_event(
                victim.room_id,
                p.id,
                {
                    "type": "caption-dropped",
                    "utterance_id": dropped.utterance_id,
                    "speaker": victim.participant_id,
                    "speaker_name": speaker.name if speaker else "",
                    "reason": "backlog",
                },
            )

    def _participant(self, room_id: str, participant_id: str) -> Participant | None:
        return next((p for p in self.participants(room_id) if p.id == participant_id), None)

    async def _work(self, state: SpeakerState) -> None:
        while True:
            await state.wake.wait()
            state.wake.clear()
            while state.pending:
                await self._recognition.acquire()
                released = False

                def release() -> None:
                    nonlocal released
                    if not released:
                        released = True
                        self._recognition.release()

                try:
                    await self._process_next(state, release)
                finally:
                    release()

    async def _process_next(self, state: SpeakerState, release: Callable[[], None]) -> None:
        if not state.pending:  # dropped for backlog while this speaker waited for a slot
            return
        utterance = state.pending.popleft()
        state.finals.append(utterance.utterance_id)
        speaker = self._participant(state.room_id, state.participant_id)
        if speaker is None:
            return
        fields = {
            "room": state.room_id,
            "participant": state.participant_id,
            "utterance": utterance.utterance_id,
        }
        try:
            await self.translator.translate(
                state.room_id,
                speaker,
                utterance,
                self.participants(state.room_id),
                recognized=release,
            )
        except EngineError as exc:
            self.metrics.utterances.labels("failed").inc()
            log.warning(
                "utterance failed", extra={**fields, "error": exc.message, "retry": exc.retryable}
            )
        except Exception:
            self.metrics.utterances.labels("failed").inc()
            log.exception("utterance failed", extra=fields)

    async def _interim(self, state: SpeakerState, update: SpeechUpdate) -> None:
        speaker = self._participant(state.room_id, state.participant_id)
        if speaker is None:
            return
        try:
            await self.translator.interim(
                state.room_id,
                speaker,
                update.utterance_id,
                update.audio,
                wall(update.started_at),
                self.participants(state.room_id),
                lambda: update.utterance_id in state.finals,
            )
        except Exception:
            log.exception("interim caption failed", extra={"participant": state.participant_id})
