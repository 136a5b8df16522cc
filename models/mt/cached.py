"""Translations through a cache: the same text, pair and engine is translated once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from models.cache import ByteCache, cache_key, decode_text, encode_text
from models.cache.base import CorruptEntry
from models.errors import EngineError
from models.inflight import InFlight
from models.interfaces import TranslationRequest
from models.mt.engine import LanguageSupport
from models.mt.service import TranslationService

log = logging.getLogger(__name__)


class CachedTranslation:
    """Looks each text up under the serving engine's key before translating the misses.

    The key names the engine and its model, so a new model never serves old translations.
    Cache failures are counted by the cache itself and never fail a translation.
    """

    def __init__(
        self,
        service: TranslationService,
        cache: ByteCache | None,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.service = service
        self.cache = cache
        #: Called with True for each text the cache answered, False for each it did not.
        self.on_lookup = on_lookup
        self._in_flight = InFlight()

    @property
    def pending(self) -> int:
        """Translations in progress (``Translator.pending``)."""
        return self._in_flight.count

    def engine_names(self, source: str, target: str) -> list[str]:
        return [engine.name for engine in self.service.engines_for(source, target)]

    def languages(self) -> list[LanguageSupport]:
        return self.service.languages()

    async def warm_up(self) -> None:
        await self.service.warm_up()

    def info(self) -> dict[str, Any]:
        return self.service.info()

    async def aclose(self) -> None:
        self.service.close()
        if self.cache is not None:
            await self.cache.close()

    def _keys(self, texts: Sequence[str], src: str, tgt: str) -> list[str] | None:
        engines = self.service.engines_for(src, tgt)
        if self.cache is None or not engines:
            return None
        engine = engines[0]
        model = str(engine.info().get("model") or engine.info().get("model_path") or "")
        return [
            cache_key("mt", engine=engine.name, model=model, languages=(src, tgt), text=text)
            for text in texts
        ]

    async def translate(self, text: str, src: str, tgt: str) -> str:
        """``text`` in ``tgt``."""
        return (await self.translate_many([text], src, tgt))[0]

    async def translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Each of ``texts`` in ``tgt``, translating only what the cache does not hold."""
        with self._in_flight.serving():
            return await self._translate_many(texts, src, tgt)

    async def translate_batch(
        self, requests: Sequence[TranslationRequest]
    ) -> list[list[str] | EngineError]:
        """``BatchTranslator``: every request's cache misses translated in one batch."""
        with self._in_flight.serving():
            looked = [await self._look_up(r.texts, r.source, r.target) for r in requests]
            asking = [
                i for i, (_, found, _) in enumerate(looked) if len(found) < len(requests[i].texts)
            ]
            misses = [
                TranslationRequest(
                    [t for n, t in enumerate(requests[i].texts) if n not in looked[i][1]],
                    requests[i].source,
                    requests[i].target,
                )
                for i in asking
            ]
            fresh = await self.service.translate_batch(misses) if misses else []
            answers: list[list[str] | EngineError] = []
            fresh_of = dict(zip(asking, fresh, strict=True))
            for i, (keys, found, _) in enumerate(looked):
                answer = fresh_of.get(i)
                if isinstance(answer, EngineError):
                    answers.append(answer)
                    continue
                if answer is not None:
                    await self._store(keys, found, len(requests[i].texts), answer)
                answers.append([found[n] for n in range(len(requests[i].texts))])
            return answers

    async def _translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        keys, found, cached = await self._look_up(texts, src, tgt)
        if not cached:
            return await self.service.translate_many(texts, src, tgt)
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            fresh = await self.service.translate_many([texts[i] for i in missing], src, tgt)
            await self._store(keys, found, len(texts), fresh)
        return [found[i] for i in range(len(texts))]

    async def _look_up(
        self, texts: Sequence[str], src: str, tgt: str
    ) -> tuple[list[str], dict[int, str], bool]:
        """Cache keys, the translations found by index, and whether there is a cache."""
        keys = self._keys(texts, src, tgt)
        if keys is None or self.cache is None:
            return [], {}, False
        found: dict[int, str] = {}
        for i, key in enumerate(keys):
            raw = await self.cache.get(key)
            if raw is None:
                continue
            try:
                found[i] = decode_text(raw)
            except CorruptEntry:
                log.warning("corrupt translation cache entry", extra={"key": key})
        if self.on_lookup is not None:
            for i in range(len(texts)):
                self.on_lookup(i in found)
        return keys, found, True

    async def _store(
        self, keys: list[str], found: dict[int, str], count: int, fresh: Sequence[str]
    ) -> None:
        """Fill the missing places of ``found`` with ``fresh``, in order, and cache them."""
        missing = [i for i in range(count) if i not in found]
        for i, translation in zip(missing, fresh, strict=True):
            found[i] = translation
            if keys and self.cache is not None:
                await self.cache.put(keys[i], encode_text(translation))
