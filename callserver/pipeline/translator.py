"""What happens to one utterance: recognise, caption, translate per listening language,
synthesise, and queue the dub in each listener's mix, measuring every stage."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from callserver.engines import EngineSet
from callserver.media.dub import DubClip
from callserver.pairs import primary, voice_engine
from callserver.pipeline.dub_latency import DubLatency
from callserver.pipeline.echo import EchoGuard
from callserver.pipeline.events import Float32, StageTimes, Utterance
from callserver.pipeline.latency import PipelineMetrics, stages_ms
from callserver.pipeline.streaming import Streamed
from callserver.pipeline.transcript import TranscriptEntry
from models.errors import EngineError
from models.stt.result import Transcript
from models.tts.speech import Speech
from signaling.rooms import Participant

log = logging.getLogger(__name__)


class Delivery(Protocol):
    """Where results go: data-channel events and dubs in listeners' mixes."""

    def send_event(self, room_id: str, participant_id: str, event: dict[str, Any]) -> bool: ...

    def enqueue_dub(self, room_id: str, listener_id: str, clip: DubClip) -> bool: ...

    def set_speaking(self, room_id: str, speaker_id: str, speaking: bool) -> None: ...


def wall(monotonic_t: float) -> float:
    """A monotonic time as Unix seconds, for the page's clock."""
    return time.time() - (time.monotonic() - monotonic_t)


class UtteranceTranslator:
    """Runs one utterance through recognition, translation and synthesis."""

    def __init__(
        self,
        engines: EngineSet,
        delivery: Delivery,
        metrics: PipelineMetrics,
        echo_guard: Callable[[str], EchoGuard],
        on_final: Callable[[str, TranscriptEntry], None] | None = None,
        whisper_translate: bool = False,
    ) -> None:
        self.engines = engines
        self.delivery = delivery
        self.metrics = metrics
        self.echo_guard = echo_guard
        self.on_final = on_final
        self.whisper_translate = whisper_translate
        self.latency = DubLatency(metrics, delivery)

    async def interim(
        self,
        room_id: str,
        speaker: Participant,
        utterance_id: str,
        audio: Any,
        started_at: float,
        participants: Iterable[Participant],
        is_final: Callable[[], bool],
        translations: Callable[[], dict[str, str]] | None = None,
    ) -> str | None:
        """Caption speech in progress (revisable), if recognition has nothing better to do;
        the text shown, if any."""
        stt = await self.engines.stt()
        if stt.pending > 0:
            return None
        try:
            transcript = await stt.transcribe(
                audio, language=primary(speaker.spoken), live=True, draft=True
            )
        except EngineError:
            return None
        if is_final() or not transcript.text:
            return None
        self.draft(
            room_id,
            speaker,
            utterance_id,
            transcript.text,
            started_at,
            participants,
            translations() if translations is not None else None,
        )
        return transcript.text

    def draft(
        self,
        room_id: str,
        speaker: Participant,
        utterance_id: str,
        text: str,
        started_at: float,
        participants: Iterable[Participant],
        translations: dict[str, str] | None = None,
    ) -> None:
        """A revisable caption of speech in progress (``started_at`` in Unix seconds), with
        the ``translations`` of its streamed pieces so far."""
        event = self._caption(
            speaker, utterance_id, text, translations or {}, started_at, None, False
        )
        self._broadcast(room_id, participants, event)

    def retract(
        self,
        room_id: str,
        speaker: Participant,
        utterance_id: str,
        started_at: float,
        ended_at: float,
        participants: Iterable[Participant],
    ) -> None:
        """End an utterance that gets no text (Unix times): an empty final caption retracts
        any interim text the pages show for it."""
        event = self._caption(speaker, utterance_id, "", {}, started_at, ended_at, True)
        self._broadcast(room_id, participants, event)

    async def recognize(self, speaker: Participant, audio: Float32) -> Transcript:
        """The speaker's words in ``audio``, in the language they declared."""
        stt = await self.engines.stt()
        return await stt.transcribe(audio, language=primary(speaker.spoken), live=True)

    async def translate(
        self,
        room_id: str,
        speaker: Participant,
        utterance: Utterance,
        participants: list[Participant],
        recognized: Callable[[], None] | None = None,
        transcript: Transcript | None = None,
        others_heard: Callable[[], Awaitable[None]] | None = None,
        streamed: Streamed | None = None,
    ) -> None:
        """The whole chain for one finished utterance; ``recognized`` is called (always) once
        recognition is over, so the caller can hand its recognition slot to the next one.
        ``transcript``: the utterance's text, already recognised (early, at the pause).
        ``others_heard``: awaited before the echo check, until what the speaker may have
        heard from others is known to their echo guard. ``streamed``: the pieces of the
        utterance already dubbed while it was spoken; only the rest is dubbed here, after
        them."""
        times = StageTimes(speech_end=utterance.speech_end_at, endpoint=utterance.endpoint_at)
        self.metrics.stage.labels("endpoint").observe(
            utterance.endpoint_at - utterance.speech_end_at
        )
        try:
            if transcript is None:
                transcript = await self.recognize(speaker, utterance.audio)
        finally:
            if recognized is not None:
                recognized()
        times.recognized = time.monotonic()
        self.metrics.stage.labels("recognize").observe(times.recognized - utterance.endpoint_at)
        text = transcript.text.strip()
        if text and others_heard is not None:
            await others_heard()
        others = [p for p in participants if p.id != speaker.id]
        ended = wall(utterance.speech_end_at)
        started = wall(utterance.started_at)
        log_fields = {
            "room": room_id,
            "participant": speaker.id,
            "utterance": utterance.utterance_id,
        }
        if not text or self.echo_guard(speaker.id).is_echo(text):
            outcome = "empty" if not text else "echo"
            self.metrics.utterances.labels(outcome).inc()
            log.info("utterance dropped", extra={**log_fields, "reason": outcome})
            self.retract(room_id, speaker, utterance.utterance_id, started, ended, participants)
            return
        for listener in others:
            self.echo_guard(listener.id).sent(text)
        translations: dict[str, str] = {}
        caption_stages = stages_ms(times)

        def announce(known: dict[str, str], stages: dict[str, float]) -> None:
            """The final caption to everyone, with the translations known so far."""
            caption = self._caption(
                speaker, utterance.utterance_id, text, known, started, ended, True, stages
            )
            self._broadcast(room_id, participants, caption)

        announce(translations, caption_stages)
        targets = await self.targets(speaker, others)
        results = await asyncio.gather(
            *(
                self._dub(
                    room_id,
                    speaker,
                    utterance,
                    text,
                    language,
                    listeners,
                    times,
                    translations,
                    announce,
                    streamed,
                )
                for language, listeners in targets.items()
            ),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for error in failed:
            log.warning("dub failed", extra={**log_fields, "error": str(error)})
        self.metrics.utterances.labels("failed" if failed else "translated").inc()
        if self.on_final is not None:
            self.on_final(
                room_id,
                TranscriptEntry(
                    utterance_id=utterance.utterance_id,
                    speaker_id=speaker.id,
                    speaker_name=speaker.name,
                    language=speaker.spoken,
                    text=text,
                    translations=dict(translations),
                    start=started,
                    end=ended,
                    stages_ms=caption_stages,
                ),
            )

    async def _dub(
        self,
        room_id: str,
        speaker: Participant,
        utterance: Utterance,
        text: str,
        language: str,
        listeners: list[Participant],
        times: StageTimes,
        translations: dict[str, str],
        announce: Callable[[dict[str, str], dict[str, float]], None],
        streamed: Streamed | None = None,
    ) -> None:
        service = await self.engines.translation()
        # Whisper's own translation (the only other way a target gets here) takes audio, so
        # it always translates the whole utterance: such pairs are never streamed.
        by_engine = bool(service.engine_names(speaker.spoken, language))
        pieces = streamed if by_engine else None
        if pieces is not None:
            # Which pieces were dubbed decides the rest, and the rest's dub follows theirs
            # (so a streamed utterance's translate stage includes this wait).
            await pieces.settled()
        rest = text if pieces is None else pieces.prefix.remainder(text, pieces.dubbed_tokens())
        translated = ""
        if rest.strip():
            if by_engine:
                translated = await service.translate(rest, speaker.spoken, language)
            else:
                stt = await self.engines.stt()
                english = await stt.transcribe(
                    utterance.audio, language=primary(speaker.spoken), live=True, to_english=True
                )
                translated = english.text
        times.translated[language] = time.monotonic()
        assert times.recognized is not None
        self.metrics.stage.labels("translate").observe(
            times.translated[language] - times.recognized
        )
        translations[language] = (
            translated if pieces is None else pieces.joined(language, translated)
        )
        announce(dict(translations), stages_ms(times))
        # Listeners who turned dubbing off still get the caption; nobody waits for speech
        # they would not hear.
        listeners = [listener for listener in listeners if listener.dub]
        if pieces is not None and pieces.dubbed and not rest.strip():
            # The pieces held every word: the last one's dub is where the utterance's end is
            # heard, and that is its mouth to ear.
            last = pieces.dubbed - 1
            for listener in listeners:
                report = functools.partial(
                    self.latency.pieces,
                    room_id,
                    listener.id,
                    utterance.utterance_id,
                    language,
                    times,
                )
                pieces.when_heard(last, listener.id, report)
            return
        if not translated.strip() or not listeners:
            return
        tts = await self.engines.tts()
        if voice_engine(tts.voices(), language) is None:
            return  # captions only: the listeners were told (pair_notices)
        speech = await tts.synthesize(translated, language)
        times.first_audio[language] = time.monotonic()
        self.metrics.stage.labels("synthesize").observe(
            times.first_audio[language] - times.translated[language]
        )
        first = pieces is None or pieces.dubbed == 0
        for listener in listeners:
            self.echo_guard(listener.id).sent(translated)
            first_frame = functools.partial(
                self.latency.dub,
                room_id,
                listener.id,
                utterance.utterance_id,
                language,
                times,
                utterance.started_at if first else None,
            )
            self.enqueue(room_id, speaker, listener, utterance.utterance_id, speech, first_frame)

    async def targets(
        self, speaker: Participant, others: list[Participant]
    ) -> dict[str, list[Participant]]:
        """Listeners who get a translation, by the language they hear."""
        targets: dict[str, list[Participant]] = {}
        service = await self.engines.translation()
        for listener in others:
            # A pair no engine serves gets the original caption and a notice (pair_notices),
            # not an error per utterance.
            if primary(listener.listen) != primary(speaker.spoken) and (
                service.engine_names(speaker.spoken, listener.listen)
                or self._whisper_translates(listener.listen)
            ):
                targets.setdefault(listener.listen, []).append(listener)
        return targets

    def enqueue(
        self,
        room_id: str,
        speaker: Participant,
        listener: Participant,
        utterance_id: str,
        speech: Speech,
        on_first_frame: Callable[[float], None],
    ) -> None:
        """Queue ``speech`` in one listener's mix as the dub of ``utterance_id``."""
        clip = DubClip(
            utterance_id=utterance_id,
            speaker_id=speaker.id,
            samples=speech.samples,
            on_first_frame=lambda clip, at: on_first_frame(at),
            on_skipped=functools.partial(self._skipped, room_id, listener, speaker),
        )
        self.delivery.enqueue_dub(room_id, listener.id, clip)

    def _whisper_translates(self, language: str) -> bool:
        return self.whisper_translate and primary(language) == "en"

    def _skipped(
        self, room_id: str, listener: Participant, speaker: Participant, clip: DubClip
    ) -> None:
        if not listener.dub:
            return  # dropped because the listener turned dubbing off: nothing to report
        self.metrics.utterances.labels("dub_skipped").inc()
        event = {
            "type": "caption-dropped",
            "utterance_id": clip.utterance_id,
            "speaker": speaker.id,
            "speaker_name": speaker.name,
            "reason": "catch_up",
        }
        self.delivery.send_event(room_id, listener.id, event)

    def _caption(
        self,
        speaker: Participant,
        utterance_id: str,
        text: str,
        translations: dict[str, str],
        started: float,
        ended: float | None,
        final: bool,
        stages: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "caption",
            "utterance_id": utterance_id,
            "speaker": speaker.id,
            "speaker_name": speaker.name,
            "final": final,
            "language": speaker.spoken,
            "text": text,
            "translations": translations,
            "started_at": started,
            "ended_at": ended,
        }
        if stages is not None:
            event["stages_ms"] = stages
        return event

    def _broadcast(
        self, room_id: str, participants: Iterable[Participant], event: dict[str, Any]
    ) -> None:
        for participant in participants:
            self.delivery.send_event(room_id, participant.id, event)
