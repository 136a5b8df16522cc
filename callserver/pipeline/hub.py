"""Joins calls to the engines: a front end per speaker, a queue of utterances per speaker,
and a server-wide bound on waiting utterances so latency cannot build up."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

from callserver.engines import EngineSet
from callserver.media.frames import PcmFrame
from callserver.pipeline.early import EarlyRecognizer
from callserver.pipeline.echo import EchoGuard
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.events import SpeechDiscarded, SpeechPaused, SpeechUpdate, Utterance
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.settings import PipelineSettings
from callserver.pipeline.speaker import SpeakerPipeline, SpeechEvent
from callserver.pipeline.speaker_state import Heard, SpeakerState
from callserver.pipeline.streamer import Streamer
from callserver.pipeline.transcript import TranscriptEntry
from callserver.pipeline.translator import Delivery, UtteranceTranslator, wall
from models.errors import DeadlinePassed, EngineError
from models.pool import InferencePool
from models.stt.result import Transcript
from signaling.rooms import Participant

log = logging.getLogger(__name__)


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
        self._heard: dict[str, dict[str, Heard]] = {}  # room -> utterance id -> utterance
        self._vad_pool = InferencePool("vad", workers=1, max_queue=10_000)
        # Utterances wait for recognition here, in their speaker's queue, where the backlog
        # bound can see and drop them; not inside the engine's pool, where it could not.
        self._recognition = asyncio.Semaphore(settings.recognition_slots)
        self.translator = UtteranceTranslator(
            engines, delivery, metrics, self.echo_guard, on_final, settings.whisper_translate
        )
        self._streamer = Streamer(settings, metrics, self.translator, participants)
        self._early = EarlyRecognizer(
            settings,
            metrics,
            self.translator,
            self._recognition,
            participants,
            on_words=self._streamer.at_pause,
            translations=self._streamer.translations,
        )

    @property
    def pending(self) -> int:
        """Utterances waiting for recognition, server-wide."""
        return sum(len(s.pending) for s in self._speakers.values())

    @property
    def idle(self) -> bool:
        """No speech of anyone's is in the pipeline: from frames waiting for voice detection
        to the dub handed to the mixer. Only as complete as the frames received so far, which
        ``frames_received`` tells."""
        return not self._early.abandoned and all(s.idle for s in self._speakers.values())

    def frames_received(self, participant_id: str) -> int:
        """Frames of ``participant_id``'s voice the hub was given, in any room."""
        return sum(
            state.front.frames_received
            for (_, pid), state in self._speakers.items()
            if pid == participant_id and state.front is not None
        )

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
                functools.partial(self._on_speaking, state),
                awaits_verdicts=self.settings.sentence_endpointing
                and self.settings.early_recognition,
            )
            state.worker = asyncio.create_task(self._work(state))
            self._speakers[key] = state
        assert state.front is not None
        state.front.push(frame)

    def on_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        """A host muted (or unmuted) the participant; their frames stop (or resume) at the
        media plane. Speech they were in the middle of is dropped, not translated: see
        ``_on_discarded``. An unmute needs nothing: frames simply arrive again."""
        state = self._speakers.get((room_id, participant_id))
        if muted and state is not None and state.front is not None:
            state.front.cut_off()

    async def on_peer_closed(self, room_id: str, participant_id: str) -> None:
        """The participant's media ended: stop their pipeline and forget their echo memory."""
        state = self._speakers.pop((room_id, participant_id), None)
        if state is not None:
            if state.front is not None and state.front.speaking:
                self._on_speaking(state, False)  # the others' pages would highlight them on
            await self._stop(state)
        if not any(pid == participant_id for _, pid in self._speakers):
            self._guards.pop(participant_id, None)

    async def close(self) -> None:
        """Stop every pipeline (shutdown)."""
        states = list(self._speakers.values())
        self._speakers.clear()
        for state in states:
            await self._stop(state)
        await self._early.close()
        self._vad_pool.close()

    async def _stop(self, state: SpeakerState) -> None:
        if state.front is not None:
            await state.front.close()
        heard = self._heard.get(state.room_id, {})
        for utterance_id in [
            u for u, h in heard.items() if h.participant_id == state.participant_id
        ]:
            self._settle(state.room_id, utterance_id)
        early = state.early.task if state.early is not None else None
        for task in (state.worker, state.interim, early, *self._streamer.tasks(state)):
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
        elif isinstance(event, SpeechPaused):
            speaker = self._participant(state.room_id, state.participant_id)
            self._early.start(state, speaker, event)
        elif isinstance(event, SpeechDiscarded):
            self._on_discarded(state, event)
        elif (
            isinstance(event, SpeechUpdate)
            and self.settings.interim_captions
            and (state.interim is None or state.interim.done())
        ):
            state.interim = asyncio.create_task(self._interim(state, event))

    def _on_speaking(self, state: SpeakerState, speaking: bool) -> None:
        """Tell everyone in the room that the speaker started or stopped speaking, and their
        listeners' dub players that another dub is on its way."""
        event = {"type": "speaking", "speaker": state.participant_id, "speaking": speaking}
        delivery = self.translator.delivery
        delivery.set_speaking(state.room_id, state.participant_id, speaking)
        for participant in self.participants(state.room_id):
            delivery.send_event(state.room_id, participant.id, event)

    def _on_discarded(self, state: SpeakerState, discarded: SpeechDiscarded) -> None:
        """The speaker was muted mid-utterance. Recognising the audio so far as a whole
        utterance would caption and dub half a sentence as if it were all they said, so it is
        dropped: listeners heard the original voice up to the mute, and that is all."""
        # Marked final, so an interim recognition still running never shows it again.
        state.finals.append(discarded.utterance_id)
        self._streamer.end(state, discarded.utterance_id)
        if state.early is not None and state.early.utterance_id == discarded.utterance_id:
            self._early.discard(state)
        speaker = self._participant(state.room_id, state.participant_id)
        if speaker is not None and self.settings.interim_captions:
            self.translator.retract(
                state.room_id,
                speaker,
                discarded.utterance_id,
                wall(discarded.started_at),
                wall(discarded.ended_at),
                self.participants(state.room_id),
            )

    def _admit(self, state: SpeakerState, utterance: Utterance) -> None:
        # Guards of participants who were only ever listeners are not freed by a speaker's
        # pipeline closing; forget every guard with nothing left to remember.
        self._guards = {pid: g for pid, g in self._guards.items() if not g.idle}
        if self.pending >= self.settings.max_pending_utterances:
            self._drop_oldest()
        state.pending.append(utterance)
        heard = Heard(state.participant_id, utterance.speech_end_at)
        self._heard.setdefault(state.room_id, {})[utterance.utterance_id] = heard
        state.wake.set()

    def _settle(self, room_id: str, utterance_id: str) -> None:
        """The utterance's texts are in the guards (or never will be): stop waiting for it."""
        room = self._heard.get(room_id, {})
        heard = room.pop(utterance_id, None)
        if heard is not None:
            heard.done.set()
        if not room:
            self._heard.pop(room_id, None)

    async def _others_heard(self, state: SpeakerState, utterance: Utterance) -> None:
        """Wait for the utterances of others in the room that ended before this one.

        Their echo may be in this one, and in another language Whisper translates it, so it
        can only be recognised by their translations; until those are in the speaker's echo
        guard the echo would pass as new speech. Bounded by the guard's memory: text older
        than that would not count anyway."""
        waiting = [
            heard.done
            for heard in self._heard.get(state.room_id, {}).values()
            if heard.participant_id != state.participant_id
            and heard.speech_end_at < utterance.speech_end_at
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.echo_window_s):
                for done in waiting:
                    await done.wait()

    def _drop_oldest(self) -> None:
        waiting = [s for s in self._speakers.values() if s.pending]
        if not waiting:
            return
        victim = min(waiting, key=lambda s: s.pending[0].endpoint_at)
        dropped = victim.pending.popleft()
        self._settle(victim.room_id, dropped.utterance_id)
        self._streamer.end(victim, dropped.utterance_id)
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
        self._announce_dropped(victim, dropped.utterance_id, "backlog")

    def _announce_dropped(self, state: SpeakerState, utterance_id: str, reason: str) -> None:
        """Tell everyone in the room that an utterance will not be captioned nor dubbed."""
        speaker = self._participant(state.room_id, state.participant_id)
        for p in self.participants(state.room_id):
            self.translator.delivery.send_event(
                state.room_id,
                p.id,
                {
                    "type": "caption-dropped",
                    "utterance_id": utterance_id,
                    "speaker": state.participant_id,
                    "speaker_name": speaker.name if speaker else "",
                    "reason": reason,
                },
            )

    def _participant(self, room_id: str, participant_id: str) -> Participant | None:
        return next((p for p in self.participants(room_id) if p.id == participant_id), None)

    async def _work(self, state: SpeakerState) -> None:
        while True:
            await state.wake.wait()
            state.wake.clear()
            state.busy = True
            try:
                await self._drain(state)
            finally:
                state.busy = False

    async def _drain(self, state: SpeakerState) -> None:
        """Recognise and translate the speaker's pending utterances, oldest first."""
        while state.pending:
            early = self._early.take(state, state.pending[0])
            if early is not None:
                # Out of the queue: while its early recognition finishes it is being
                # recognised, not waiting, and the backlog bound must not drop it.
                utterance = state.pending.popleft()
                transcript = await self._early.transcript(early)
                if transcript is not None:
                    await self._process(state, utterance, transcript, lambda: None)
                    continue
                state.pending.appendleft(utterance)  # recognised the usual way instead
            await self._recognition.acquire()
            released = False

            def release() -> None:
                nonlocal released
                if not released:
                    released = True
                    self._recognition.release()

            try:
                if state.pending:  # else dropped for backlog while waiting for a slot
                    await self._process(state, state.pending.popleft(), None, release)
            finally:
                release()

    async def _process(
        self,
        state: SpeakerState,
        utterance: Utterance,
        transcript: Transcript | None,
        release: Callable[[], None],
    ) -> None:
        try:
            await self._translate(state, utterance, transcript, release)
        finally:
            self._settle(state.room_id, utterance.utterance_id)

    async def _translate(
        self,
        state: SpeakerState,
        utterance: Utterance,
        transcript: Transcript | None,
        release: Callable[[], None],
    ) -> None:
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
                transcript=transcript,
                others_heard=functools.partial(self._others_heard, state, utterance),
                streamed=self._streamer.take(state, utterance.utterance_id),
            )
        except DeadlinePassed:
            # The workers could not take it in time: dropped, not done late, and said so.
            self.metrics.utterances.labels("dropped_deadline").inc()
            log.warning("utterance dropped: deadline", extra=fields)
            self._announce_dropped(state, utterance.utterance_id, "deadline")
        except EngineError as exc:
            self.metrics.utterances.labels("failed").inc()
            log.warning(
                "utterance failed", extra={**fields, "error": exc.message, "retry": exc.retryable}
            )
            if exc.retryable:
                # The engines are away for now (the job queue unreachable, a pool overloaded):
                # listeners are told in words rather than left with silence.
                self._announce_dropped(state, utterance.utterance_id, "unavailable")
        except Exception:
            self.metrics.utterances.labels("failed").inc()
            log.exception("utterance failed", extra=fields)

    async def _interim(self, state: SpeakerState, update: SpeechUpdate) -> None:
        speaker = self._participant(state.room_id, state.participant_id)
        if speaker is None:
            return
        try:
            text = await self.translator.interim(
                state.room_id,
                speaker,
                update.utterance_id,
                update.audio,
                wall(update.started_at),
                self.participants(state.room_id),
                lambda: update.utterance_id in state.finals,
                lambda: self._streamer.translations(state, update.utterance_id),
            )
        except Exception:
            log.exception("interim caption failed", extra={"participant": state.participant_id})
            return
        if text is not None:
            self._streamer.offer(state, speaker, update.utterance_id, update.started_at, text)
