"""A worker's side of a job: read its fields, run it on the engines, write its answer.

Jobs of one kind taken together run as one batch where the engine can (``BatchRecognizer``,
``BatchTranslator``): several rooms' utterances through one Whisper ``generate``, several
pairs' sentences through one NLLB ``translate_batch``. Every job still gets its own answer:
its result fields, or the ``EngineError`` it alone raised (a job whose fields cannot be read
gets a non-retryable error; the others in its batch are not affected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from models.errors import EngineError
from models.interfaces import (
    BatchRecognizer,
    BatchTranslator,
    RecognitionRequest,
    Recognizer,
    Synthesizer,
    TranslationRequest,
    Translator,
)
from models.remote.queue import Job
from models.wire import (
    WireError,
    json_from_fields,
    json_to_fields,
    recognition_from_fields,
    speech_to_fields,
    transcript_to_fields,
)

Answer = dict[str, bytes] | EngineError


def _unreadable(exc: WireError) -> EngineError:
    return EngineError(f"unreadable job: {exc}", retryable=False)


def recognition_request(job: Job) -> RecognitionRequest:
    """The ``transcribe`` arguments a recognition job carries (WireError when unreadable)."""
    return recognition_from_fields(job.fields)


def translation_request(job: Job) -> TranslationRequest:
    """The ``translate_many`` arguments a translation job carries (WireError when unreadable)."""
    request = json_from_fields(job.fields)
    texts = request.get("texts")
    if not isinstance(texts, list):
        raise WireError("'texts' must be a list")
    source, target = request.get("source"), request.get("target")
    if not isinstance(source, str) or not isinstance(target, str):
        raise WireError("'source' and 'target' must be strings")
    return TranslationRequest([str(t) for t in texts], source, target)


class JobRunner:
    """Runs taken jobs on the engines ``engines()`` gives (loaded on first use)."""

    def __init__(
        self, engines: Callable[[], Awaitable[tuple[Recognizer, Translator, Synthesizer]]]
    ) -> None:
        self._engines = engines

    async def answer(self, kind: str, jobs: Sequence[Job]) -> list[Answer]:
        """Each job's answer, in order; jobs of one kind, batched where the engine can."""
        stt, mt, tts = await self._engines()
        if kind == "stt":
            return await self._batched(
                jobs,
                recognition_request,
                stt.transcribe_batch if isinstance(stt, BatchRecognizer) else None,
                lambda r: stt.transcribe(
                    r.audio, r.language, r.allowed, r.live, r.draft, r.to_english
                ),
                transcript_to_fields,
            )
        if kind == "mt":
            return await self._batched(
                jobs,
                translation_request,
                mt.translate_batch if isinstance(mt, BatchTranslator) else None,
                lambda r: mt.translate_many(r.texts, r.source, r.target),
                lambda done: json_to_fields({"translations": done}),
            )
        if kind == "tts":
            return list(await asyncio.gather(*(self._speech(tts, job) for job in jobs)))
        return [EngineError(f"unknown kind of job {kind!r}", retryable=False) for _ in jobs]

    async def _batched(
        self,
        jobs: Sequence[Job],
        read: Callable[[Job], Any],
        batch: Callable[[list[Any]], Awaitable[Sequence[Any]]] | None,
        alone: Callable[[Any], Awaitable[Any]],
        write: Callable[[Any], dict[str, bytes]],
    ) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(jobs)
        requests: list[tuple[int, Any]] = []
        for i, job in enumerate(jobs):
            try:
                requests.append((i, read(job)))
            except WireError as exc:
                answers[i] = _unreadable(exc)
        if batch is not None and len(requests) > 1:
            results: Sequence[Any] = await batch([request for _, request in requests])
        else:
            results = await asyncio.gather(*(_caught(alone(request)) for _, request in requests))
        for (i, _), result in zip(requests, results, strict=True):
            answers[i] = result if isinstance(result, EngineError) else write(result)
        return [a if a is not None else EngineError("no answer") for a in answers]

    async def _speech(self, tts: Synthesizer, job: Job) -> Answer:
        try:
            request = json_from_fields(job.fields)
            voice = request.get("voice")
            speech = await tts.synthesize(
                str(request["text"]), str(request["language"]), str(voice) if voice else None
            )
        except WireError as exc:
            return _unreadable(exc)
        except KeyError as exc:
            return EngineError(f"unreadable job: no {exc}", retryable=False)
        except EngineError as exc:
            return exc
        return speech_to_fields(speech)


async def _caught(work: Awaitable[Any]) -> Any:
    try:
        return await work
    except EngineError as exc:
        return exc
