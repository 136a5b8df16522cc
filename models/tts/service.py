"""The TTS service: a fallback chain of engines behind a cache, always 48 kHz mono s16 out.

For each engine that has a voice for the language, in the configured order: look the speech up
in the cache under that engine's key, else synthesize and store it. An engine failure (down,
timed out, model missing, crashed) passes the request to the next engine; bad input does not,
because no engine would do better. Keys include engine and voice, so falling back never serves
one engine's audio as another's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from models.cache import ByteCache, CacheSettings, build_cache, cache_key, normalize_text
from models.cache.base import CorruptEntry
from models.cache.values import decode_pcm, encode_pcm
from models.errors import EngineError, InvalidInput, UnsupportedLanguage
from models.inflight import InFlight
from models.metrics import EngineMetrics
from models.pool import InferencePool
from models.store import ModelStore
from models.tts.audio import resample_to_48k
from models.tts.espeak import EspeakEngine
from models.tts.gtts_engine import GttsEngine
from models.tts.piper_engine import (
    PiperEngine,
    PiperVoiceFiles,
    installed_voices,
    pulled_voices,
)
from models.tts.settings import TtsSettings
from models.tts.speech import OUTPUT_RATE, Speech, TtsEngine, normalize_language

log = logging.getLogger(__name__)

CACHE_NAME = "tts"


class TtsService:
    """Speaks text in a language with the first engine that can, caching the result."""

    def __init__(
        self,
        engines: Sequence[TtsEngine],
        *,
        cache: ByteCache | None = None,
        max_chars: int = 1000,
        metrics: EngineMetrics | None = None,
    ) -> None:
        if not engines:
            raise ValueError("TtsService needs at least one engine")
        if max_chars < 1:
            raise ValueError("max_chars must be >= 1")
        self.engines = list(engines)
        self.cache = cache
        self.max_chars = max_chars
        self._metrics = metrics
        self._in_flight = InFlight()

    @property
    def pending(self) -> int:
        """Syntheses in progress (``Synthesizer.pending``)."""
        return self._in_flight.count

    async def warm_up(self) -> None:
        """Nothing to load ahead: each engine readies its voice when it is built."""

    def supports(self, language: str) -> bool:
        """Whether any engine has a voice for ``language``."""
        return any(engine.supports(language) for engine in self.engines)

    def voices(self) -> dict[str, dict[str, list[str]]]:
        """Voices by engine, then language."""
        return {engine.name: engine.voices() for engine in self.engines}

    def info(self) -> list[dict[str, Any]]:
        """Each engine's info, in chain order."""
        return [engine.info() for engine in self.engines]

    async def synthesize(self, text: str, language: str, voice: str | None = None) -> Speech:
        """48 kHz mono s16 speech of ``text``; raises InvalidInput, UnsupportedLanguage or the
        last engine's error when every engine failed."""
        with self._in_flight.serving():
            return await self._synthesize(text, language, voice)

    async def _synthesize(self, text: str, language: str, voice: str | None) -> Speech:
        clean = normalize_text(text)
        if not clean:
            raise InvalidInput("text is empty")
        if len(clean) > self.max_chars:
            raise InvalidInput(f"text is {len(clean)} characters; the limit is {self.max_chars}")
        tag = normalize_language(language)
        if not tag:
            raise InvalidInput("language is empty")
        candidates = [engine for engine in self.engines if engine.supports(tag)]
        if not candidates:
            raise UnsupportedLanguage(f"no TTS engine speaks {language!r}")
        failure: EngineError | None = None
        for engine in candidates:
            try:
                chosen = engine.voice_for(tag, voice)
            except UnsupportedLanguage as exc:
                failure = exc
                continue
            key = cache_key("tts", engine=engine.name, model=chosen, languages=(tag,), text=clean)
            cached = await self._lookup(key)
            if cached is not None:
                return cached
            try:
                speech = await self._run(engine, clean, tag, voice)
            except InvalidInput:
                raise
            except EngineError as exc:
                failure = exc
                log.warning(
                    "tts engine failed; trying the next",
                    extra={
                        "engine": engine.name,
                        "language": tag,
                        "code": exc.code,
                        "retryable": exc.retryable,
                        "error": exc.message,
                    },
                )
                continue
            await self._store(key, speech)
            return speech
        assert failure is not None
        raise failure

    async def aclose(self) -> None:
        """Close engines and cache."""
        for engine in self.engines:
            await engine.close()
        if self.cache is not None:
            await self.cache.close()

    async def _run(self, engine: TtsEngine, text: str, tag: str, voice: str | None) -> Speech:
        started = time.perf_counter()
        outcome = "ok"
        try:
            speech = await engine.synthesize(text, tag, voice)
        except EngineError as exc:
            outcome = exc.code
            raise
        except Exception as exc:
            # An engine bug must not take the chain down with it.
            outcome = "engine_error"
            raise EngineError(f"{engine.name} crashed: {type(exc).__name__}: {exc}") from exc
        finally:
            if self._metrics is not None:
                elapsed = time.perf_counter() - started
                self._metrics.latency.labels(engine=engine.name, operation="synthesize").observe(
                    elapsed
                )
                self._metrics.requests.labels(
                    engine=engine.name, operation="synthesize", outcome=outcome
                ).inc()
        if speech.sample_rate != OUTPUT_RATE:
            samples = resample_to_48k(speech.samples, speech.sample_rate)
            speech = Speech(samples, OUTPUT_RATE, speech.engine, speech.voice, speech.language)
        return speech

    async def _lookup(self, key: str) -> Speech | None:
        if self.cache is None:
            return None
        data = await self.cache.get(key)
        if data is None:
            return None
        try:
            samples, rate, meta = decode_pcm(data)
            if rate != OUTPUT_RATE:
                raise CorruptEntry(f"cached speech is at {rate} Hz")
            return Speech(
                samples, rate, meta["engine"], meta["voice"], meta["language"], cached=True
            )
        except (CorruptEntry, KeyError) as exc:
            # The frame checksum passed, so the value was written wrong: overwrite it.
            if self._metrics is not None:
                self._metrics.cache.labels(cache=CACHE_NAME, layer="value", event="corrupt").inc()
            log.warning("undecodable cached speech", extra={"key": key, "error": str(exc)})
            return None

    async def _store(self, key: str, speech: Speech) -> None:
        if self.cache is None:
            return
        meta = {"engine": speech.engine, "voice": speech.voice, "language": speech.language}
        await self.cache.put(key, encode_pcm(speech.samples, speech.sample_rate, meta))


def build_engines(
    settings: TtsSettings, metrics: EngineMetrics | None = None, store: ModelStore | None = None
) -> list[TtsEngine]:
    """The engines named in ``settings.tts_engines``, in order. Piper's voices: the configured
    ones first, then those pulled into the models folder (``store``), then packaged ones; the
    first voice of a language speaks it."""
    engines: list[TtsEngine] = []
    for name in settings.tts_engines:
        if name == "piper":
            voices = [PiperVoiceFiles.from_model(path) for path in settings.piper_voices]
            if settings.piper_use_pulled:
                voices += pulled_voices(store)
            if settings.piper_use_installed:
                voices += installed_voices()
            unique: dict[str, PiperVoiceFiles] = {}
            for voice in voices:  # a voice both pulled and packaged is used once
                unique.setdefault(voice.name, voice)
            voices = list(unique.values())
            pool = InferencePool("piper", settings.piper_workers, settings.piper_max_queue)
            engines.append(PiperEngine(voices, pool))
        elif name == "espeak":
            engines.append(
                EspeakEngine(
                    binary=settings.espeak_binary,
                    timeout_s=settings.espeak_timeout_s,
                    speed_wpm=settings.espeak_speed_wpm,
                    voice_overrides=settings.espeak_voices,
                    max_concurrency=settings.espeak_max_concurrency,
                )
            )
        elif name == "gtts":
            engines.append(
                GttsEngine(
                    url=settings.gtts_url,
                    timeout_s=settings.gtts_timeout_s,
                    max_tries=settings.gtts_max_tries,
                    backoff_s=settings.gtts_backoff_s,
                    backoff_max_s=settings.gtts_backoff_max_s,
                    metrics=metrics,
                )
            )
    return engines


def build_tts_service(
    settings: TtsSettings | None = None,
    cache_settings: CacheSettings | None = None,
    metrics: EngineMetrics | None = None,
    store: ModelStore | None = None,
) -> TtsService:
    """A service as configured by ``CALLSERVER_*`` (or the given settings)."""
    settings = settings or TtsSettings()
    cache_settings = cache_settings or CacheSettings()
    return TtsService(
        build_engines(settings, metrics, store),
        cache=build_cache(cache_settings, name=CACHE_NAME, metrics=metrics),
        max_chars=settings.tts_max_chars,
        metrics=metrics,
    )
