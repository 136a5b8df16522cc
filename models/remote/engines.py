"""Engines that run on inference workers: the node's side of the job queue.

``RemoteRecognizer``, ``RemoteTranslator`` and ``RemoteSynthesizer`` implement the same
interfaces as the in-process engines (``models/interfaces.py``), so the pipeline does not know
which it has. Each call is a job on the queue with a budget; the answer comes back on this
node's results stream, read by one task (``RemoteClient``). A job answered twice (a worker
died after publishing and another did it again) counts once: the first answer wins.

What the interfaces ask synchronously (languages, voices, engine names, info) comes from the
capabilities the workers publish (``capabilities`` hash), refreshed in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from models.errors import (
    DeadlinePassed,
    EngineError,
    EngineUnavailable,
    InvalidInput,
    UnsupportedLanguage,
)
from models.mt.engine import LanguageSupport
from models.remote.queue import ERROR, JobQueue, new_job_id
from models.stt.audio import Audio, check_audio
from models.stt.result import Transcript
from models.tts.speech import Speech
from models.wire import (
    WireError,
    json_from_fields,
    json_to_fields,
    recognition_to_fields,
    speech_from_fields,
    transcript_from_fields,
)

log = logging.getLogger(__name__)

#: Engine errors a worker reports, rebuilt on the node by their code.
_ERRORS: dict[str, type[EngineError]] = {
    cls.code: cls for cls in (EngineUnavailable, InvalidInput, UnsupportedLanguage, EngineError)
}


def error_fields(exc: EngineError) -> dict[str, bytes]:
    """How a worker reports an engine error (the node raises it again from these)."""
    body = {"code": exc.code, "message": exc.message, "retryable": exc.retryable}
    return {ERROR: b"failed", "detail": json.dumps(body).encode("utf-8")}


def _raise_for(fields: Mapping[str, bytes]) -> None:
    reason = fields.get(ERROR)
    if reason is None:
        return
    if reason == b"deadline":
        raise DeadlinePassed("the job waited past its deadline on the workers")
    if reason == b"dead":
        raise EngineError("the workers failed this job repeatedly", retryable=False)
    try:
        detail = json.loads(fields.get("detail", b"{}"))
        cls = _ERRORS.get(str(detail.get("code")), EngineError)
        raise cls(
            str(detail.get("message", "the worker failed")), retryable=detail.get("retryable")
        )
    except (ValueError, AttributeError) as exc:
        raise EngineError("the worker sent an unreadable error", retryable=False) from exc


class RemoteClient:
    """Submits jobs for this node and hands each answer to the call waiting for it."""

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        prefix: str = "callserver:",
        budget_s: float = 10.0,
        capabilities_every_s: float = 2.0,
    ) -> None:
        self.node_id = node_id
        self.budget_s = budget_s
        self.prefix = prefix
        self.queue = JobQueue(url, prefix=prefix)
        self._redis = aioredis.Redis.from_url(url)
        self._waiting: dict[str, asyncio.Future[dict[str, bytes]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._caps_every_s = capabilities_every_s
        self._caps: dict[str, Any] = {}
        self._caps_at = float("-inf")
        self._closed = False
        #: Calls in flight by kind of job (each engine's ``pending``).
        self.in_flight: dict[str, int] = {"stt": 0, "mt": 0, "tts": 0}

    async def _start(self) -> None:
        if self._reader is None:
            # Read from the stream's end as it is now, so no answer can slip in before.
            last: Any = await self._redis.xrevrange(self.queue.results_key(self.node_id), count=1)
            after = last[0][0].decode() if last else "0-0"
            self._reader = asyncio.create_task(self._read(after))

    async def _read(self, after: str) -> None:
        while True:
            try:
                after, answers = await self.queue.results(self.node_id, after=after)
            except (RedisError, OSError) as exc:
                log.warning("results stream unreachable", extra={"error": repr(exc)})
                await asyncio.sleep(1.0)
                continue
            for job_id, fields in answers:
                future = self._waiting.pop(job_id, None)
                if future is not None and not future.done():
                    future.set_result(fields)

    async def call(
        self, kind: str, fields: Mapping[str, bytes], budget_s: float | None = None
    ) -> dict[str, bytes]:
        """Submit a job and wait for its answer; EngineError as the worker reported it."""
        if self._closed:
            raise EngineUnavailable("the remote engines are closed", retryable=False)
        budget = self.budget_s if budget_s is None else budget_s
        self.in_flight[kind] += 1
        try:
            await self._start()
            future: asyncio.Future[dict[str, bytes]] = asyncio.get_running_loop().create_future()
            # Waiting before it is queued, so even an answer faster than this task finds it.
            job_id = new_job_id()
            self._waiting[job_id] = future
            try:
                await self.queue.submit(kind, fields, self.node_id, budget, job_id=job_id)
                # The budget, plus room for a worker that dies holding the job to be replaced.
                answer = await asyncio.wait_for(future, budget + self.queue.claim_idle_s + 5)
            except TimeoutError as exc:
                raise EngineUnavailable(f"no worker answered the {kind} job in time") from exc
            finally:
                self._waiting.pop(job_id, None)
        except (RedisError, OSError) as exc:
            raise EngineUnavailable(f"the job queue is unreachable: {exc}") from exc
        finally:
            self.in_flight[kind] -= 1
        _raise_for(answer)
        return answer

    async def capabilities(self) -> dict[str, Any]:
        """What the workers published, refreshed at most every ``capabilities_every_s``."""
        if time.monotonic() - self._caps_at >= self._caps_every_s:
            with contextlib.suppress(RedisError, OSError, ValueError):
                raw: Any = await self._redis.hgetall(f"{self.prefix}capabilities")
                self._caps = {k.decode(): json.loads(v) for k, v in raw.items()}
                self._caps_at = time.monotonic()
        return self._caps

    def known(self, kind: str) -> Any:
        """The last published capabilities of ``kind`` (None before any worker published)."""
        return self._caps.get(kind)

    async def wait_for_workers(self, kind: str, timeout_s: float = 60.0) -> None:
        """Until a worker has published ``kind`` (its engines built and warm)."""
        async with asyncio.timeout(timeout_s):
            while (await self.capabilities()).get(kind) is None:
                self._caps_at = float("-inf")
                await asyncio.sleep(0.2)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for future in self._waiting.values():
            future.cancel()
        await self.queue.aclose()
        await self._redis.aclose()


class RemoteRecognizer:
    """``Recognizer`` on the workers."""

    def __init__(self, client: RemoteClient, max_audio_s: float = 30.0) -> None:
        self.client = client
        self._max_audio_s = max_audio_s

    @property
    def pending(self) -> int:
        return self.client.in_flight["stt"]

    @property
    def max_audio_s(self) -> float:
        return self._max_audio_s

    async def transcribe(
        self,
        audio: Audio,
        language: str | None = None,
        allowed: Sequence[str] | None = None,
        live: bool = False,
        draft: bool = False,
        to_english: bool = False,
    ) -> Transcript:
        # The same refusals as the in-process engine, before a job is queued for nothing.
        samples = check_audio(audio, self._max_audio_s)
        fields = recognition_to_fields(samples, language, allowed, live, draft, to_english)
        answer = await self.client.call("stt", fields)
        try:
            return transcript_from_fields(answer)
        except WireError as exc:
            raise EngineError(f"unreadable transcript from a worker: {exc}") from exc

    async def warm_up(self) -> None:
        await self.client.wait_for_workers("stt")

    def info(self) -> dict[str, Any]:
        known = self.client.known("stt") or {"loaded": False}
        return {**known, "remote": True, "queue_depth": self.pending}

    async def aclose(self) -> None:
        await self.client.aclose()


class RemoteTranslator:
    """``Translator`` on the workers."""

    def __init__(self, client: RemoteClient) -> None:
        self.client = client

    @property
    def pending(self) -> int:
        return self.client.in_flight["mt"]

    def languages(self) -> list[LanguageSupport]:
        known = self.client.known("mt") or {}
        return [LanguageSupport.from_dict(d) for d in known.get("languages", [])]

    def engine_names(self, source: str, target: str) -> list[str]:
        pairs = ((source, target), (source.split("-")[0], target.split("-")[0]))
        return [s.engine for s in self.languages() if any(s.serves(a, b) for a, b in pairs)]

    async def translate(self, text: str, source: str, target: str) -> str:
        return (await self.translate_many([text], source, target))[0]

    async def translate_many(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        request = {"texts": list(texts), "source": source, "target": target}
        answer = json_from_fields(await self.client.call("mt", json_to_fields(request)))
        translations = answer.get("translations")
        if not isinstance(translations, list) or len(translations) != len(texts):
            raise EngineError("a worker answered the wrong number of translations")
        return [str(t) for t in translations]

    async def warm_up(self) -> None:
        await self.client.wait_for_workers("mt")

    def info(self) -> dict[str, Any]:
        known = self.client.known("mt") or {}
        return {**known.get("info", {"loaded": False}), "remote": True}

    async def aclose(self) -> None:
        await self.client.aclose()


class RemoteSynthesizer:
    """``Synthesizer`` on the workers."""

    def __init__(self, client: RemoteClient) -> None:
        self.client = client

    @property
    def pending(self) -> int:
        return self.client.in_flight["tts"]

    def voices(self) -> dict[str, dict[str, list[str]]]:
        known = self.client.known("tts") or {}
        voices: dict[str, dict[str, list[str]]] = known.get("voices", {})
        return voices

    async def synthesize(self, text: str, language: str, voice: str | None = None) -> Speech:
        request = {"text": text, "language": language, "voice": voice}
        answer = await self.client.call("tts", json_to_fields(request))
        try:
            return speech_from_fields(answer)
        except WireError as exc:
            raise EngineError(f"unreadable speech from a worker: {exc}") from exc

    async def warm_up(self) -> None:
        await self.client.wait_for_workers("tts")

    def info(self) -> list[dict[str, Any]]:
        known = self.client.known("tts") or {}
        info: list[dict[str, Any]] = known.get("info", [])
        return info

    async def aclose(self) -> None:
        await self.client.aclose()
