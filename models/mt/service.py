"""The translation chain: engines tried in a configured order for each language pair."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from models.errors import EngineError, UnsupportedLanguage
from models.interfaces import BatchTranslator, TranslationRequest
from models.metrics import EngineMetrics
from models.mt.engine import LanguageSupport, TranslationEngine, WarmsUp
from models.mt.languages import to_nllb
from models.mt.settings import MtSettings
from models.store import ModelStore

log = logging.getLogger(__name__)


class TranslationService:
    """Serves each pair with the first engine that supports it, falling back on retryable errors.

    Same-language requests return the input unchanged. A non-retryable error (bad input) is
    raised at once: another engine would refuse it too.
    """

    def __init__(
        self,
        engines: Sequence[TranslationEngine],
        unavailable: dict[str, str] | None = None,
        start: Callable[[str], TranslationEngine] | None = None,
        order: Sequence[str] | None = None,
    ) -> None:
        self.engines = list(engines)
        #: Configured engines that could not start, with the reason (shown by ``info()``).
        self.unavailable = dict(unavailable or {})
        #: The configured order, of started engines and unavailable ones.
        self.order = list(order or [e.name for e in self.engines] + list(self.unavailable))
        self._start = start
        self._retrying = threading.Lock()

    def retry_unavailable(self) -> list[str]:
        """Start again the configured engines that could not start (a model pulled since, say);
        blocking, for a worker thread. Returns the names that started; they join the chain in
        their configured place, so the pairs they serve are served from the next request."""
        if self._start is None or not self.unavailable:
            return []
        started: list[TranslationEngine] = []
        with self._retrying:
            for name in list(self.unavailable):
                try:
                    started.append(self._start(name))
                except EngineError as exc:
                    self.unavailable[name] = exc.message
                    continue
                del self.unavailable[name]
                log.info("translation engine started", extra={"engine": name})
            if started:
                rank = {name: i for i, name in enumerate(self.order)}
                # One assignment: requests in flight keep iterating the list they had.
                self.engines = sorted([*self.engines, *started], key=lambda e: rank[e.name])
        return [e.name for e in started]

    def engines_for(self, src: str, tgt: str) -> list[TranslationEngine]:
        """Engines that serve the pair, in chain order."""
        return [engine for engine in self.engines if engine.supports(src, tgt)]

    async def translate(self, text: str, src: str, tgt: str) -> str:
        """Translate one text from ``src`` to ``tgt`` (BCP-47 tags or NLLB codes)."""
        return (await self.translate_many([text], src, tgt))[0]

    async def translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate several texts of one pair with one engine call."""
        src_code, tgt_code = to_nllb(src), to_nllb(tgt)  # UnsupportedLanguage for bad tags
        if src_code == tgt_code:
            return list(texts)
        candidates = self.engines_for(src, tgt)
        if not candidates:
            tried = ", ".join(e.name for e in self.engines) or "none configured"
            raise UnsupportedLanguage(f"no engine translates {src}→{tgt} (engines: {tried})")
        last: EngineError | None = None
        for engine in candidates:
            try:
                return await engine.translate_many(texts, src, tgt)
            except EngineError as exc:
                if not (exc.retryable or isinstance(exc, UnsupportedLanguage)):
                    raise
                last = exc
                log.warning(
                    "translation engine failed, trying the next",
                    extra={
                        "engine": engine.name,
                        "src": src,
                        "tgt": tgt,
                        "error": exc.code,
                        "detail": exc.message,
                    },
                )
        assert last is not None
        raise last

    async def translate_batch(
        self, requests: Sequence[TranslationRequest]
    ) -> list[list[str] | EngineError]:
        """Several requests of any pairs: those whose first engine batches (NLLB) go to it in
        one call, the others one by one; a request the batch could not serve with a retryable
        error goes through the whole chain alone, as ``translate_many`` would."""
        answers: list[list[str] | EngineError | None] = [None] * len(requests)
        groups: dict[int, tuple[BatchTranslator, list[int]]] = {}
        for i, request in enumerate(requests):
            candidates = self.engines_for(request.source, request.target)
            first = candidates[0] if candidates else None
            if isinstance(first, BatchTranslator):
                groups.setdefault(id(first), (first, []))[1].append(i)
        for engine, indices in groups.values():
            try:
                done = await engine.translate_batch([requests[i] for i in indices])
            except EngineError as exc:
                if not exc.retryable:
                    raise
                continue  # each request tries the chain below
            for i, answer in zip(indices, done, strict=True):
                if not (isinstance(answer, EngineError) and answer.retryable):
                    answers[i] = answer

        async def alone(request: TranslationRequest) -> list[str] | EngineError:
            try:
                return await self.translate_many(request.texts, request.source, request.target)
            except EngineError as exc:
                return exc

        rest = [i for i, answer in enumerate(answers) if answer is None]
        for i, answer in zip(
            rest, await asyncio.gather(*(alone(requests[i]) for i in rest)), strict=True
        ):
            answers[i] = answer
        return [a if a is not None else EngineError("not translated") for a in answers]

    async def warm_up(self) -> None:
        """Start what each engine starts lazily (Apertium's pipelines), before the first call."""
        for engine in self.engines:
            if isinstance(engine, WarmsUp):
                await engine.warm_up()

    def languages(self) -> list[LanguageSupport]:
        """Languages and pairs per running engine, in chain order."""
        return [engine.languages() for engine in self.engines]

    def info(self) -> dict[str, Any]:
        """Running engines in order, and configured ones that could not start."""
        return {
            "engines": [engine.info() for engine in self.engines],
            "unavailable": dict(self.unavailable),
        }

    def close(self) -> None:
        """Close every engine."""
        for engine in self.engines:
            engine.close()


def build_service(
    settings: MtSettings | None = None,
    metrics: EngineMetrics | None = None,
    store: ModelStore | None = None,
) -> TranslationService:
    """Start the engines named in ``settings.engines``; one that cannot start (its model not
    installed) is left out, so it claims no pair, and ``info()`` says why.
    ``TranslationService.retry_unavailable`` tries it again later."""
    settings = settings if settings is not None else MtSettings()

    def start(name: str) -> TranslationEngine:
        from models.mt.apertium import ApertiumTranslator
        from models.mt.m2m import M2mTranslator
        from models.mt.nllb import NllbTranslator

        if name == "apertium":
            return ApertiumTranslator(settings, metrics)
        if name == "m2m100":
            return M2mTranslator(settings, metrics, store)
        return NllbTranslator(settings, metrics, store)

    engines: list[TranslationEngine] = []
    unavailable: dict[str, str] = {}
    for name in settings.engines:
        try:
            engines.append(start(name))
        except EngineError as exc:
            unavailable[name] = exc.message
            log.warning(
                "translation engine unavailable", extra={"engine": name, "reason": exc.message}
            )
    return TranslationService(engines, unavailable, start, settings.engines)
