"""Recognition at a pause, before the endpoint is sure the utterance is over: its words are
judged for a sentence end (``sentence_end``), shown while an unfinished clause waits, offered
to streaming, and used as the utterance's text if speech does not resume."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable

from callserver.pairs import primary
from callserver.pipeline.events import SpeechPaused, Utterance
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.sentence_end import Verdict, judge
from callserver.pipeline.settings import PipelineSettings
from callserver.pipeline.speaker_state import EarlyRecognition, SpeakerState
from callserver.pipeline.translator import UtteranceTranslator, wall
from models.stt.result import Transcript
from signaling.rooms import Participant

#: Told the words heard at a pause: (speaker's state, speaker, the pause, the words, the
#: verdict on them, the probability of their final mark); returns whether the utterance waits
#: as a streamed one does (``Streamer.at_pause``).
OnWords = Callable[[SpeakerState, Participant, SpeechPaused, str, Verdict, float | None], bool]


class EarlyRecognizer:
    """Starts, judges, hands over or abandons each speaker's recognition at a pause."""

    def __init__(
        self,
        settings: PipelineSettings,
        metrics: PipelineMetrics,
        translator: UtteranceTranslator,
        recognition: asyncio.Semaphore,
        participants: Callable[[str], list[Participant]],
        on_words: OnWords,
        translations: Callable[[SpeakerState, str], dict[str, str]],
    ) -> None:
        """``translations``: those of an utterance's streamed pieces so far (its caption in
        progress keeps them)."""
        self.settings = settings
        self.metrics = metrics
        self.translator = translator
        self.recognition = recognition
        self.participants = participants
        self.on_words = on_words
        self.translations = translations
        # Early recognitions nobody will use, left to finish: their decode runs on in the
        # engine whatever happens to the task, so they keep their slot until it ends.
        self.abandoned: set[asyncio.Task[Transcript]] = set()

    def start(self, state: SpeakerState, speaker: Participant | None, paused: SpeechPaused) -> None:
        """Start recognising a paused utterance now, if recognition is idle.

        The endpoint needs ``silence_ms`` of silence; the audio is settled after the shorter
        tail, so the difference is recognition time the listener does not wait for. Only when
        idle: early work must never delay another speaker's final utterance."""
        if (
            not self.settings.early_recognition
            or state.pending
            or self.recognition.locked()
            or speaker is None
        ):
            self._judge(state, paused, Verdict.UNKNOWN)
            return
        self.discard(state)  # speech resumed since that one started: stale audio

        async def recognize() -> Transcript:
            async with self.recognition:
                return await self.translator.recognize(speaker, paused.audio)

        task = asyncio.create_task(recognize())
        state.early = EarlyRecognition(
            paused.utterance_id, paused.speech_end_at, paused.audio.size, task
        )
        task.add_done_callback(functools.partial(self._judge_words, state, paused, speaker))

    def _judge_words(
        self,
        state: SpeakerState,
        paused: SpeechPaused,
        speaker: Participant,
        task: asyncio.Task[Transcript],
    ) -> None:
        """The early words are known: tell the endpointer whether they end a sentence, and
        show an unfinished clause as a caption in progress while the speaker pauses."""
        if task.cancelled() or task.exception() is not None:
            self._judge(state, paused, Verdict.UNKNOWN)
            return
        transcript = task.result()
        text = transcript.text
        verdict = judge(
            text,
            primary(speaker.spoken),
            self.settings.sentence_min_words,
            transcript.end_probability,
            self.settings.sentence_end_min_probability,
        )
        streamed = self.on_words(state, speaker, paused, text, verdict, transcript.end_probability)
        self._judge(state, paused, verdict, streamed)
        if (
            verdict is Verdict.UNFINISHED
            and self.settings.interim_captions
            and paused.utterance_id not in state.finals
        ):
            self.translator.draft(
                state.room_id,
                speaker,
                paused.utterance_id,
                text,
                wall(paused.started_at),
                self.participants(state.room_id),
                self.translations(state, paused.utterance_id),
            )

    def _judge(
        self, state: SpeakerState, paused: SpeechPaused, verdict: Verdict, streamed: bool = False
    ) -> None:
        """Tell the endpointer the verdict, or ``STREAMED`` when the utterance waits as a
        streamed one does (``Streamer.at_pause`` says when)."""
        if not self.settings.sentence_endpointing or state.front is None:
            return
        self.metrics.sentence_verdicts.labels(verdict.value).inc()
        if streamed:
            verdict = Verdict.STREAMED
        state.front.judge(paused.utterance_id, paused.speech_end_at, verdict)

    def discard(self, state: SpeakerState) -> None:
        """Drop the speaker's early recognition, if any (its audio is stale)."""
        if state.early is not None:
            task = state.early.task
            # Not cancelled: that would free its recognition slot while the engine goes on
            # decoding, and the next utterance would wait inside the engine, unseen by the
            # backlog bound. It finishes holding the slot; its result is dropped.
            if not task.done():
                self.abandoned.add(task)
            task.add_done_callback(self._forget_abandoned)
            state.early = None
            self.metrics.early_recognitions.labels("discarded").inc()

    def _forget_abandoned(self, task: asyncio.Task[Transcript]) -> None:
        self.abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody needs is not an error to log

    def take(self, state: SpeakerState, utterance: Utterance) -> EarlyRecognition | None:
        """The early recognition of ``utterance``, if one was started; any other is stale."""
        early, state.early = state.early, None
        if early is not None and not early.matches(utterance):
            state.early = early
            self.discard(state)
            return None
        return early

    async def transcript(self, early: EarlyRecognition) -> Transcript | None:
        """The early recognition's words, once it ends (None: it failed)."""
        await asyncio.wait([early.task])
        if early.task.cancelled() or early.task.exception() is not None:
            self.metrics.early_recognitions.labels("failed").inc()
            return None
        self.metrics.early_recognitions.labels("used").inc()
        return early.task.result()

    async def close(self) -> None:
        """Cancel the abandoned recognitions (shutdown)."""
        for task in list(self.abandoned):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
