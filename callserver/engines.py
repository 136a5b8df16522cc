"""The speech engines one server uses: built on first use (or warmed at start), closed at stop.

Building is lazy because each engine costs start-up time (Apertium lists its pairs, Piper
loads its voice, Whisper its model) that a server which only relays calls should not pay, and
it happens in a worker thread because those steps block. Callers get the engines as their
interfaces (``models/interfaces.py``); an engine given to the constructor is used instead of
building one (another implementation, or a fault-injection fake in tests).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from models.cache import CacheSettings, build_cache
from models.errors import EngineError
from models.interfaces import Recognizer, Synthesizer, Translator
from models.licences import with_licences
from models.metrics import EngineMetrics
from models.mt.cached import CachedTranslation
from models.mt.service import TranslationService, build_service
from models.mt.settings import MtSettings
from models.stt.settings import SttSettings
from models.stt.whisper import WhisperEngine
from models.tts.service import build_tts_service
from models.tts.settings import TtsSettings

log = logging.getLogger(__name__)


class EngineSet:
    """Speech to text, translation and text to speech, each built once when first needed."""

    def __init__(
        self,
        metrics: EngineMetrics,
        *,
        stt_settings: SttSettings | None = None,
        mt_settings: MtSettings | None = None,
        tts_settings: TtsSettings | None = None,
        cache_settings: CacheSettings | None = None,
        on_mt_lookup: Callable[[bool], None] | None = None,
        recognizer: Recognizer | None = None,
        translator: Translator | None = None,
        synthesizer: Synthesizer | None = None,
    ) -> None:
        self.metrics = metrics
        #: Called with True or False for each translation the cache did or did not answer.
        self.on_mt_lookup = on_mt_lookup
        self._stt_settings = stt_settings
        self._mt_settings = mt_settings
        self._tts_settings = tts_settings
        self._cache_settings = cache_settings
        self._stt = recognizer
        self._mt = translator
        self._tts = synthesizer
        self._lock = asyncio.Lock()
        self._service: TranslationService | None = None
        self._rechecked = 0.0
        self._recheck: asyncio.Task[None] | None = None

    async def stt(self) -> Recognizer:
        """The recogniser (its model loads on the first transcription, in its pool)."""
        if self._stt is None:
            self._stt = WhisperEngine(self._stt_settings, metrics=self.metrics)
        return self._stt

    async def translation(self) -> Translator:
        """The translation chain behind its cache."""
        if self._mt is None:
            async with self._lock:
                if self._mt is None:
                    self._mt = await asyncio.to_thread(self._build_translation)
                    self._rechecked = time.monotonic()
        self._recheck_translation()
        return self._mt

    def _recheck_translation(self) -> None:
        """Now and then, start in the background the engines whose model was missing: a model
        pulled while the server runs then serves from a later request, without a restart."""
        service = self._service
        every = (self._mt_settings or MtSettings()).recheck_s
        if service is None or not service.unavailable or every <= 0:
            return
        if self._recheck is not None and not self._recheck.done():
            return
        if time.monotonic() - self._rechecked < every:
            return
        self._rechecked = time.monotonic()

        async def recheck() -> None:
            try:
                started = await asyncio.to_thread(service.retry_unavailable)
            except Exception:  # an engine that fails oddly stays out; the next check retries
                log.exception("restarting translation engines failed")
                return
            if started:
                log.info("translation engines started late", extra={"engines": started})

        self._recheck = asyncio.create_task(recheck())

    async def tts(self) -> Synthesizer:
        """The synthesis chain behind its cache."""
        if self._tts is None:
            async with self._lock:
                if self._tts is None:
                    self._tts = await asyncio.to_thread(
                        build_tts_service, self._tts_settings, self._cache_settings, self.metrics
                    )
        return self._tts

    def _build_translation(self) -> Translator:
        service: TranslationService = build_service(self._mt_settings, self.metrics)
        self._service = service
        cache = build_cache(
            self._cache_settings or CacheSettings(), name="mt", metrics=self.metrics
        )
        return CachedTranslation(service, cache, self.on_mt_lookup)

    async def warm_up(self) -> None:
        """Build every engine and load the Whisper model now, so the first request is fast."""
        try:
            await (await self.translation()).warm_up()
            await (await self.tts()).warm_up()
            await (await self.stt()).warm_up()
            log.info("engines ready")
        except EngineError as exc:
            # A missing model is reported by /api/engines and by each request that needs it.
            log.warning("engine warm-up incomplete", extra={"error": exc.message})

    def info(self) -> dict[str, Any]:
        """What each engine is, whether it is built and its model's licence, for /api/engines."""
        return with_licences(
            {
                "stt": self._stt.info() if self._stt else {"loaded": False},
                "translation": self._mt.info() if self._mt else {"loaded": False},
                "tts": self._tts.info() if self._tts else {"loaded": False},
            }
        )

    async def close(self) -> None:
        """Release models, pools and cache connections."""
        if self._recheck is not None:
            await asyncio.gather(self._recheck, return_exceptions=True)
        for engine in (self._stt, self._mt, self._tts):
            if engine is not None:
                await engine.aclose()
