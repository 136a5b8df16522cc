"""Speech to text with faster-whisper, off the event loop, with silence and phantom filters."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from models.errors import EngineError, EngineUnavailable, ModelMissing
from models.interfaces import RecognitionRequest
from models.metrics import EngineMetrics
from models.pool import InferencePool
from models.store import ModelStore
from models.stt.audio import SAMPLE_RATE, Audio, check_audio
from models.stt.doubt import looks_looped
from models.stt.filters import PhantomFilter, confident
from models.stt.languages import check_allowed, check_language, pick_language
from models.stt.live import (
    FRAMES_PER_SECOND,
    LiveDecode,
    LiveRequest,
    decode_live_batch,
    window_frames,
)
from models.stt.result import Segment, Transcript
from models.stt.settings import SttSettings

log = logging.getLogger("callserver.models.stt")

ENGINE = "stt"
R = TypeVar("R")


def pick_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def pick_compute_type(compute_type: str, device: str) -> str:
    """``auto`` becomes int8 on CPU (fast, small) and float16 on GPU."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def pick_cpu_threads(cpu_threads: int, workers: int) -> int:
    """0 shares half the CPUs among the workers, at least 1 and at most 4 each.

    The other half is left to the media plane and voice detection. On a 2-core machine that
    is one thread per worker: measured in calls, two single-threaded workers gave mouth-to-ear
    p50 0.93 s where one two-threaded worker gave 1.32 s (OpenMP threads spinning against
    the call's other work, and captions in progress delaying final text).
    """
    if cpu_threads > 0:
        return cpu_threads
    return max(1, min(4, (os.cpu_count() or 1) // (2 * workers)))


class WhisperEngine:
    """Transcribes 16 kHz mono float32 audio with a lazily loaded faster-whisper model.

    ``await transcribe(audio)`` runs in the engine's InferencePool (``workers`` threads, at most
    ``max_queue`` waiting); the model loads on first use, in that pool, never on the event loop.
    """

    def __init__(
        self,
        settings: SttSettings | None = None,
        *,
        store: ModelStore | None = None,
        metrics: EngineMetrics | None = None,
        pool: InferencePool | None = None,
    ) -> None:
        self.settings = settings if settings is not None else SttSettings()
        self.store = store if store is not None else ModelStore()
        self.metrics = metrics
        self.pool = pool or InferencePool(ENGINE, self.settings.workers, self.settings.max_queue)
        self.device = pick_device(self.settings.device)
        self.compute_type = pick_compute_type(self.settings.compute_type, self.device)
        self.cpu_threads = pick_cpu_threads(self.settings.cpu_threads, self.settings.workers)
        self._phantoms = PhantomFilter(self.settings.phantom_phrases)
        self._model: Any = None
        self._path: str | None = None
        self._load_lock = threading.Lock()

    # --- public API ----------------------------------------------------------------------------
    async def transcribe(
        self,
        audio: Audio,
        language: str | None = None,
        allowed: Sequence[str] | None = None,
        live: bool = False,
        draft: bool = False,
        to_english: bool = False,
    ) -> Transcript:
        """Text spoken in ``audio``: in ``language`` if given, else the detected language,
        restricted to ``allowed`` when that is given. Silence and noise give empty text.

        ``live``: an utterance a call's voice detection already cut out, wanted fast: decoded
        with ``live_beam_size``, no second voice-detection pass and no timestamps.
        ``draft``: live speech still going on, for a revisable caption: the short window only,
        and empty text where its decode is doubtful.
        ``to_english``: Whisper's own translation into English (its ``translate`` task, in the
        full window) instead of the words as spoken.
        """
        samples = self._check_audio(audio)
        return await self._run(
            "transcribe", self.transcribe_sync, samples, language, allowed, live, draft, to_english
        )

    async def transcribe_batch(
        self, requests: Sequence[RecognitionRequest]
    ) -> list[Transcript | EngineError]:
        """``BatchRecognizer``: several utterances (of any rooms and languages) in one pool job,
        live ones through one batched short-window decode. Each item is answered on its own,
        with its transcript or the error it alone raised."""
        return await self._run("transcribe_batch", self.transcribe_batch_sync, list(requests))

    async def transcribe_many(
        self,
        audios: Sequence[Audio],
        language: str | None = None,
        allowed: Sequence[str] | None = None,
    ) -> list[Transcript]:
        """Transcripts of several clips in one pool job.

        For now the clips are decoded one after another inside a single worker call (no
        batched decoding); this saves per-call queueing, not compute. Every clip is checked
        before any is decoded, so one bad clip fails the whole batch with InvalidInput.
        """
        checked = [self._check_audio(audio) for audio in audios]

        def work() -> list[Transcript]:
            return [self.transcribe_sync(a, language, allowed) for a in checked]

        return await self._run("transcribe_many", work)

    async def load(self) -> None:
        """Load the model now (in the pool) instead of on the first request."""
        await self._run("load", self._ensure_model)

    async def warm_up(self) -> None:
        """``Recognizer.warm_up``: the model loaded."""
        await self.load()

    @property
    def pending(self) -> int:
        """Transcriptions running or waiting in the pool."""
        return self.pool.depth

    @property
    def max_audio_s(self) -> float:
        return self.settings.max_audio_s

    def info(self) -> dict[str, Any]:
        """Model name, path, device and compute type, for health pages."""
        return {
            "engine": "faster-whisper",
            "model": self.settings.model,
            "path": self._path,
            "loaded": self._model is not None,
            "device": self.device,
            "compute_type": self.compute_type,
            "beam_size": self.settings.beam_size,
            "cpu_threads": self.cpu_threads,
            "workers": self.settings.workers,
            "queue_depth": self.pool.depth,
        }

    def loaded_model(self) -> Any:
        """The underlying ``faster_whisper.WhisperModel``, loading it if needed (blocking).

        For benchmarks and diagnostics that must call faster-whisper on the very same model.
        """
        return self._ensure_model()

    def close(self) -> None:
        """Stop the worker pool; the model is freed with the engine."""
        self.pool.close()

    async def aclose(self) -> None:
        self.close()

    # --- worker side ---------------------------------------------------------------------------
    def transcribe_sync(
        self,
        audio: Audio,
        language: str | None = None,
        allowed: Sequence[str] | None = None,
        live: bool = False,
        draft: bool = False,
        to_english: bool = False,
    ) -> Transcript:
        """Blocking transcription; call it from a worker thread, never the event loop."""
        request = RecognitionRequest(audio, language, allowed, live, draft, to_english)
        result = self.transcribe_batch_sync([request])[0]
        if isinstance(result, EngineError):
            raise result
        return result

    def transcribe_batch_sync(
        self, requests: Sequence[RecognitionRequest]
    ) -> list[Transcript | EngineError]:
        """Blocking ``transcribe_batch``; call it from a worker thread, never the event loop.

        Live utterances that fit a short window are decoded together (``decode_live_batch``);
        the others, and any whose batched decode looks doubtful, one at a time as
        ``transcribe_sync`` would. An item's error is its own: the rest are still answered.
        """
        model = self._ensure_model()
        results: list[Transcript | EngineError | None] = [None] * len(requests)
        prepared: list[tuple[int, Audio, str | None, tuple[str, ...] | None]] = []
        for i, request in enumerate(requests):
            try:
                samples = self._check_audio(request.audio)
                language, codes = self._languages(model, request.language, request.allowed)
            except EngineError as exc:
                results[i] = exc
                continue
            prepared.append((i, samples, language, codes))
        live = [r.live or r.draft for r in requests]
        # The short window's decoder prompt is for transcription: translations take the full one.
        batched = [
            p
            for p in prepared
            if live[p[0]] and self.settings.live_window and not requests[p[0]].to_english
        ]
        if batched:
            decodes = self._decode_live_batch(
                model, [LiveRequest(*p[1:], retry=not requests[p[0]].draft) for p in batched]
            )
            for (i, samples, language, _), decoded in zip(batched, decodes, strict=True):
                if decoded is None:
                    continue  # too long for a short window
                if not decoded.doubtful or (
                    samples.size < self.settings.live_full_window_min_s * SAMPLE_RATE
                    and not looks_looped(decoded.text)
                ):
                    results[i] = self._short_transcript(samples, decoded)
                elif requests[i].draft:
                    results[i] = self._no_draft(samples, language)
        for i, samples, language, codes in prepared:
            if results[i] is None:
                try:
                    results[i] = self._transcribe_full(
                        model, samples, language, codes, live[i], requests[i].to_english
                    )
                except EngineError as exc:
                    results[i] = exc
        return [r if r is not None else EngineError("not transcribed") for r in results]

    def _languages(
        self, model: Any, language: str | None, allowed: Sequence[str] | None
    ) -> tuple[str | None, tuple[str, ...] | None]:
        """The language to decode in (None: detect it) and the codes detection may pick."""
        multilingual = bool(model.model.is_multilingual)
        codes: tuple[str, ...] | None = None
        if language is not None:
            language = check_language(language, multilingual)
        elif allowed is not None:
            codes = check_allowed(allowed, multilingual)
            if len(codes) == 1:
                language = codes[0]
        elif not multilingual:
            language = "en"
        return language, codes

    def _transcribe_full(
        self,
        model: Any,
        samples: Audio,
        language: str | None,
        codes: tuple[str, ...] | None,
        live: bool,
        to_english: bool = False,
    ) -> Transcript:
        """faster-whisper's own ``transcribe`` over Whisper's 30 s window, filtered."""
        duration = samples.size / SAMPLE_RATE
        probability = 1.0
        if language is None and codes is not None:
            speech = self._speech_only(samples)
            if speech.size == 0:
                return Transcript("", codes[0], 0.0, (), duration)
            _, _, probabilities = model.detect_language(speech)
            language, probability = pick_language(probabilities, codes)
        try:
            raw, info = model.transcribe(
                samples,
                language=language,
                task="translate" if to_english else "transcribe",
                beam_size=self.settings.live_beam_size if live else self.settings.beam_size,
                no_speech_threshold=self.settings.no_speech_threshold,
                log_prob_threshold=self.settings.log_prob_threshold,
                vad_filter=self.settings.vad_filter and not live,
                without_timestamps=live,
                condition_on_previous_text=False,
            )
            segments = [
                Segment(s.start, s.end, s.text.strip(), s.avg_logprob, s.no_speech_prob)
                for s in raw  # the generator decodes as it is consumed: here, in the worker
            ]
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"speech recognition failed: {exc}") from exc
        kept = [
            s
            for s in segments
            if confident(s, self.settings.no_speech_threshold, self.settings.log_prob_threshold)
        ]
        kept = self._phantoms.apply(kept)
        if len(kept) != len(segments):
            log.debug(
                "dropped segments",
                extra={"dropped": [s.text for s in segments if s not in kept], "kept": len(kept)},
            )
        if language is None:
            language, probability = info.language, float(info.language_probability)
        text = " ".join(s.text for s in kept).strip()
        return Transcript(text, language, probability, tuple(kept), duration)

    def _live_options(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "beam_size": settings.live_beam_size,
            "retry_beam_size": settings.beam_size,
            "pad_s": settings.live_window_pad_s,
            "retry_pad_s": settings.live_window_retry_pad_s,
            "step_s": settings.live_window_step_s,
            "no_speech_threshold": settings.no_speech_threshold,
            "log_prob_threshold": settings.log_prob_threshold,
            "min_logprob": settings.live_window_min_logprob,
            "min_token_rate": settings.live_window_min_token_rate,
        }

    def _decode_live_batch(
        self, model: Any, requests: Sequence[LiveRequest]
    ) -> list[LiveDecode | None]:
        try:
            return decode_live_batch(model, requests, **self._live_options())
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"speech recognition failed: {exc}") from exc

    def _no_draft(self, samples: Audio, language: str | None) -> Transcript | None:
        """A draft whose short decode was doubtful: no text (None: the audio is too long for
        a short window, and the full one costs no more). A revisable caption is not worth the
        full 30 s window, which on a CPU costs several times the short one and holds a
        recognition worker that the speaker's final utterance may be waiting for."""
        settings = self.settings
        frames = window_frames(
            samples.size, settings.live_window_pad_s, settings.live_window_step_s
        )
        if frames is None:
            return None
        duration = samples.size / SAMPLE_RATE
        return Transcript("", language or "", 0.0, (), duration, frames / FRAMES_PER_SECOND)

    def _short_transcript(self, samples: Audio, decoded: LiveDecode) -> Transcript:
        """A short-window decode as a Transcript, through the same filters as the full path."""
        settings = self.settings
        duration = samples.size / SAMPLE_RATE
        segment = Segment(0.0, duration, decoded.text, decoded.avg_logprob, decoded.no_speech_prob)
        kept = self._phantoms.apply(
            [segment]
            if confident(segment, settings.no_speech_threshold, settings.log_prob_threshold)
            else []
        )
        text = kept[0].text if kept else ""
        return Transcript(
            text,
            decoded.language,
            decoded.language_probability,
            tuple(kept),
            duration,
            window_s=decoded.window_frames / FRAMES_PER_SECOND,
            end_probability=decoded.end_probability if kept else None,
        )

    def _speech_only(self, samples: Audio) -> Audio:
        """The speech parts of ``samples`` (all of it when VAD is off)."""
        if not self.settings.vad_filter:
            return samples
        from faster_whisper.vad import collect_chunks, get_speech_timestamps

        chunks = get_speech_timestamps(samples)
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        pieces, _ = collect_chunks(samples, chunks)
        return np.concatenate(pieces).astype(np.float32, copy=False)

    def _ensure_model(self) -> Any:
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None:
                self._model = self._load()
        return self._model

    def _load(self) -> Any:
        from faster_whisper import WhisperModel

        found = self.store.resolve(self.settings.model)
        if found.kind not in (None, "stt"):
            raise ModelMissing(f"model {self.settings.model!r} is not a speech recognition model")
        started = time.perf_counter()
        try:
            model = WhisperModel(
                str(found.path),
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                num_workers=self.settings.workers,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineUnavailable(
                f"cannot load speech model {found.path}: {exc}", retryable=False
            ) from exc
        self._path = str(found.path)
        log.info(
            "speech model loaded",
            extra={
                "model": self.settings.model,
                "path": self._path,
                "device": self.device,
                "compute_type": self.compute_type,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return model

    # --- checks and bookkeeping ----------------------------------------------------------------
    def _check_audio(self, audio: object) -> Audio:
        return check_audio(audio, self.settings.max_audio_s)

    async def _run(self, operation: str, fn: Callable[..., R], *args: Any) -> R:
        started = time.perf_counter()
        outcome = "ok"
        if self.metrics is not None:
            self.metrics.queue_depth.labels(self.pool.name).set(self.pool.depth + 1)
        try:
            return await self.pool.run(fn, *args)
        except EngineError as exc:
            outcome = exc.code
            raise
        except Exception:
            outcome = "engine_error"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.latency.labels(ENGINE, operation).observe(
                    time.perf_counter() - started
                )
                self.metrics.requests.labels(ENGINE, operation, outcome).inc()
                self.metrics.queue_depth.labels(self.pool.name).set(self.pool.depth)
