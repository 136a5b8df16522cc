"""Translations through a cache: the same text, pair and engine is translated once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from models.cache import ByteCache, cache_key, decode_text, encode_text
from models.cache.base import CorruptEntry
from models.inflight import InFlight
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

    async def _translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        keys = self._keys(texts, src, tgt)
        if keys is None or self.cache is None:
            return await self.service.translate_many(texts, src, tgt)
        found: dict[int, str] = {}
        for i, key in enumerate(keys):
            raw = await self.cache.get(key)
            if raw is None:
                continue
            try:
                found[i] = decode_text(raw)
            except CorruptEntry:
                log.warning("corrupt translation cache entry", extra={"key": key})
        missing = [i for i in range(len(texts)) if i not in found]
        if self.on_lookup is not None:
            for i in range(len(texts)):
                self.on_lookup(i in found)
        if missing:
            fresh = await self.service.translate_many([texts[i] for i in missing], src, tgt)
            for i, translation in zip(missing, fresh, strict=True):
                found[i] = translation
                await self.cache.put(keys[i], encode_text(translation))
        return [found[i] for i in range(len(texts))]
