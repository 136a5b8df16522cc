"""The hub's side of streaming: each speaker's utterances in progress, the clauses their
interim transcripts settle, and the dubs of those clauses (``callserver.pipeline.streaming``
holds the agreement rule)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from callserver.pairs import primary, voice_engine
from callserver.pipeline.events import SpeechPaused
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.sentence_end import TRAILING_WORDS, Verdict
from callserver.pipeline.settings import PipelineSettings
from callserver.pipeline.speaker_state import SpeakerState
from callserver.pipeline.streaming import StablePrefix, Streamed
from callserver.pipeline.translator import UtteranceTranslator, wall
from models.errors import EngineError
from models.tts.speech import Speech
from signaling.rooms import Participant

log = logging.getLogger(__name__)


class PieceSkipped(Exception):
    """A piece is not dubbed because one before it failed: the utterance's end dubs it with
    the rest (a retry of this piece alone would play it out of order)."""


class Streamer:
    """Dubs the clauses of utterances still being spoken, when streaming is on."""

    def __init__(
        self,
        settings: PipelineSettings,
        metrics: PipelineMetrics,
        translator: UtteranceTranslator,
        participants: Callable[[str], list[Participant]],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.translator = translator
        self.participants = participants

    def offer(
        self,
        state: SpeakerState,
        speaker: Participant,
        utterance_id: str,
        started_at: float,
        text: str,
        at_pause: bool = False,
    ) -> None:
        """Another transcript of speech in progress (``started_at``: its start, monotonic):
        dub the clause it settles, if any. ``at_pause``: the words up to a pause inside the
        utterance, which end a piece by themselves (``StablePrefix.offer``)."""
        if not self.settings.streaming or utterance_id in state.finals:
            return
        if self.translator.echo_guard(speaker.id).is_echo(text):
            return  # a dub coming back through their microphone: the final is dropped too
        for old in [u for u in state.streams if u != utterance_id and u in state.finals]:
            state.streams.pop(old)  # ended without reaching translation (dropped, discarded)
        streamed = state.streams.get(utterance_id)
        if streamed is None:
            held = TRAILING_WORDS.get(primary(speaker.spoken), frozenset())
            streamed = Streamed(StablePrefix(self.settings.streaming_min_words, held))
            state.streams[utterance_id] = streamed
        piece = streamed.prefix.offer(text, at_pause)
        if piece is None:
            return
        self.metrics.streamed_pieces.inc()
        task = asyncio.create_task(
            self._dub(
                state.room_id,
                speaker,
                utterance_id,
                piece,
                started_at,
                self.participants(state.room_id),
                streamed,
                len(streamed.tasks),
            )
        )
        task.add_done_callback(functools.partial(self._piece_done, state, utterance_id))
        streamed.add(piece, task)

    def at_pause(
        self,
        state: SpeakerState,
        speaker: Participant,
        paused: SpeechPaused,
        text: str,
        verdict: Verdict,
        end_probability: float | None = None,
    ) -> bool:
        """The words recognised at a pause: a piece ends there. Words with no full stop end one
        too: the speaker paused there. Words that end a sentence end one only in an utterance
        shorter than ``streamed_wait_when_complete_max_s`` (otherwise they are about to be the
        whole utterance's). Returns whether the utterance waits for the sentence to go on as
        after a piece (``Verdict.STREAMED``): the pieces now hold every word heard, or the
        words after the last piece are too few for one and not a sentence end Whisper is sure
        of (``end_probability``: that of its final mark), as "ask not." after "And so, my fellow
        Americans,": those go out with the next piece or the rest."""
        held_s = paused.speech_end_at - paused.started_at
        if (
            verdict is Verdict.COMPLETE
            and held_s >= self.settings.streamed_wait_when_complete_max_s
        ):
            self.offer(state, speaker, paused.utterance_id, paused.started_at, text)
            return False
        self.offer(state, speaker, paused.utterance_id, paused.started_at, text, at_pause=True)
        streamed = state.streams.get(paused.utterance_id)
        if streamed is None:
            return False
        # As in ``judge``, a mark of unknown probability is taken at its word.
        sure_end = verdict is Verdict.COMPLETE and (
            end_probability is None
            or end_probability >= self.settings.streamed_tail_min_end_probability
        )
        return streamed.prefix.holds(text) or (not sure_end and streamed.prefix.too_few_new(text))

    async def _dub(
        self,
        room_id: str,
        speaker: Participant,
        utterance_id: str,
        piece: str,
        started_at: float,
        participants: list[Participant],
        streamed: Streamed,
        index: int,
    ) -> None:
        """Translate and dub piece ``index`` of an utterance still being spoken, queued after
        the piece before it, and only if that one was dubbed."""
        translator = self.translator
        others = [p for p in participants if p.id != speaker.id]
        targets = await translator.targets(speaker, others)
        service = await translator.engines.translation()
        tts = await translator.engines.tts()
        spoken: dict[str, Speech] = {}
        for language in targets:
            if not service.engine_names(speaker.spoken, language):
                continue  # Whisper translates the whole utterance's audio at its end
            translated = await service.translate(piece, speaker.spoken, language)
            streamed.translations[index][language] = translated
            if translated.strip() and voice_engine(tts.voices(), language) is not None:
                spoken[language] = await tts.synthesize(translated, language)
        if index > 0:
            before = streamed.tasks[index - 1]
            await asyncio.wait([before])
            if streamed.dubbed < index:
                raise PieceSkipped("an earlier piece of the utterance was not dubbed")
        for language, speech in spoken.items():
            for listener in targets[language]:
                if not listener.dub:
                    continue
                translator.echo_guard(listener.id).sent(streamed.translations[index][language])
                first_frame = functools.partial(
                    self._first_frame,
                    streamed.heard(index, listener.id),
                    functools.partial(
                        translator.latency.prefix,
                        room_id,
                        listener.id,
                        utterance_id,
                        language,
                        started_at,
                    ),
                )
                translator.enqueue(room_id, speaker, listener, utterance_id, speech, first_frame)
        if not streamed.ended:
            # The caption in progress shows what the listener now hears, translated.
            text, translations = streamed.so_far(index + 1)
            translator.draft(
                room_id, speaker, utterance_id, text, wall(started_at), participants, translations
            )

    @staticmethod
    def _first_frame(
        heard: asyncio.Future[float], report: Callable[[float], None], at: float
    ) -> None:
        if not heard.done():
            heard.set_result(at)
        report(at)

    def take(self, state: SpeakerState, utterance_id: str) -> Streamed | None:
        """The utterance's pieces, handed over to its translation (which dubs the rest)."""
        streamed = state.streams.pop(utterance_id, None)
        if streamed is not None:
            streamed.ended = True
        return streamed

    def end(self, state: SpeakerState, utterance_id: str) -> None:
        """The utterance will not be translated: pieces not yet queued never will be."""
        streamed = state.streams.pop(utterance_id, None)
        if streamed is not None:
            streamed.ended = True
            streamed.cancel()

    def translations(self, state: SpeakerState, utterance_id: str) -> dict[str, str]:
        """The translations of the utterance's pieces so far, for its caption in progress."""
        streamed = state.streams.get(utterance_id)
        return {} if streamed is None else streamed.so_far()[1]

    def tasks(self, state: SpeakerState) -> list[asyncio.Task[None]]:
        """Every piece task of the speaker's, forgotten here (the speaker is stopping)."""
        tasks = [task for streamed in state.streams.values() for task in streamed.tasks]
        state.streams.clear()
        return tasks

    def _piece_done(self, state: SpeakerState, utterance_id: str, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.warning(
            "streamed piece failed",
            extra={
                "room": state.room_id,
                "participant": state.participant_id,
                "utterance": utterance_id,
                "error": str(error),
                "retry": isinstance(error, EngineError) and error.retryable,
            },
        )
