"""The speech API: ``/api/stt``, ``/api/translate``, ``/api/tts``, ``/api/languages``,
``/api/engines``, ``/api/stats`` and ``/api/openapi.json``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from callserver.api.errors import api_error, engine_error_response
from callserver.api.openapi import openapi_document
from callserver.api.stats import RequestStats
from callserver.engines import EngineSet
from callserver.pairs import pair_matrix
from models.errors import EngineError, InvalidInput
from models.stt.audio import decode_audio
from models.stt.languages import WHISPER_LANGUAGES
from models.tts.audio import mp3_bytes, wav_bytes
from signaling.languages import LANGUAGES

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _measured(name: str, stats: RequestStats, handler: Handler) -> Handler:
    """Time the handler, count its outcome, and turn engine errors into 4xx/503 JSON."""

    async def run(request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        try:
            response = await handler(request)
        except EngineError as exc:
            stats.record(name, time.perf_counter() - start, exc.code)
            log.info("api request refused", extra={"endpoint": name, "code": exc.code})
            return engine_error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            stats.record(name, time.perf_counter() - start, "too_large")
            return api_error(413, "too_large", "the request body is larger than allowed")
        stats.record(name, time.perf_counter() - start, "ok")
        return response

    return run


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except ValueError as exc:
        raise InvalidInput("the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def _text_field(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string")
    return value


async def _read_limited(stream: Any, limit: int) -> bytes:
    """Read a body or part, refusing it as soon as it passes ``limit`` bytes."""
    data = bytearray()
    while chunk := await stream.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return bytes(data)


async def _upload(request: web.Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """The uploaded audio and form fields: multipart (field ``file``) or a raw body."""
    fields = {k: v for k, v in request.query.items()}
    if request.content_type.startswith("multipart/"):
        audio = b""
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                audio = await _read_limited(part, limit)
            elif part.name:
                fields[part.name] = (await _read_limited(part, 1024)).decode("utf-8", "replace")
        return audio, fields
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return bytes(data), fields


def api_routes(
    engines: EngineSet,
    stats: RequestStats,
    max_upload_bytes: int,
    max_texts: int,
    whisper_translate: bool = False,
) -> list[web.AbstractRouteDef]:
    """Every speech API route, bound to ``engines``; ``whisper_translate`` as the pipeline's
    (for the pair matrix)."""

    async def stt(request: web.Request) -> web.Response:
        audio_bytes, fields = await _upload(request, max_upload_bytes)
        engine = await engines.stt()
        start = time.perf_counter()
        audio = await asyncio.to_thread(decode_audio, audio_bytes, engine.max_audio_s)
        decoded = time.perf_counter()
        allowed = [c for c in fields.get("allowed", "").split(",") if c.strip()] or None
        transcript = await engine.transcribe(
            audio, language=fields.get("language") or None, allowed=allowed
        )
        done = time.perf_counter()
        return web.json_response(
            {
                "text": transcript.text,
                "language": transcript.language,
                "language_probability": transcript.language_probability,
                "duration": transcript.duration,
                "segments": [
                    {
                        "start": s.start,
                        "end": s.end,
                        "text": s.text,
                        "avg_logprob": s.avg_logprob,
                        "no_speech_prob": s.no_speech_prob,
                    }
                    for s in transcript.segments
                ],
                "timing_ms": {
                    "decode": (decoded - start) * 1000,
                    "recognize": (done - decoded) * 1000,
                },
            }
        )

    async def translate(request: web.Request) -> web.Response:
        body = await _json_body(request)
        source = _text_field(body, "source")
        target = _text_field(body, "target")
        assert source is not None and target is not None
        texts = body.get("texts")
        single = texts is None
        if single:
            texts = [_text_field(body, "text")]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("'texts' must be a list of strings")
        if not texts or len(texts) > max_texts:
            raise InvalidInput(f"send between 1 and {max_texts} texts")
        if not any(t.strip() for t in texts):
            raise InvalidInput("the text is empty")
        service = await engines.translation()
        engine_names = service.engine_names(source, target)
        start = time.perf_counter()
        result = await service.translate_many(texts, source, target)
        elapsed = (time.perf_counter() - start) * 1000
        payload: dict[str, Any] = {
            "source": source,
            "target": target,
            "engine": engine_names[0] if engine_names else None,
            "timing_ms": {"translate": elapsed},
        }
        if single:
            payload["translation"] = result[0]
        else:
            payload["translations"] = result
        return web.json_response(payload)

    async def tts(request: web.Request) -> web.Response:
        body = await _json_body(request)
        text = _text_field(body, "text")
        language = _text_field(body, "language")
        voice = _text_field(body, "voice", required=False)
        fmt = body.get("format", "wav")
        if fmt not in ("wav", "mp3"):
            raise InvalidInput("'format' must be 'wav' or 'mp3'")
        assert text is not None and language is not None
        service = await engines.tts()
        start = time.perf_counter()
        speech = await service.synthesize(text, language, voice)
        synthesized = time.perf_counter()
        stats.cache_lookup("tts", speech.cached)
        encode = mp3_bytes if fmt == "mp3" else wav_bytes
        audio = await asyncio.to_thread(encode, speech)
        return web.Response(
            body=audio,
            content_type="audio/mpeg" if fmt == "mp3" else "audio/wav",
            headers={
                "X-Engine": speech.engine,
                "X-Voice": speech.voice,
                "X-Cache": "hit" if speech.cached else "miss",
                "X-Audio-Duration-Ms": f"{speech.duration_s * 1000:.0f}",
                "X-Synthesis-Ms": f"{(synthesized - start) * 1000:.1f}",
            },
        )

    async def languages(request: web.Request) -> web.Response:
        service = await engines.translation()
        tts_service = await engines.tts()
        return web.json_response(
            {
                "stt": {"faster-whisper": sorted(WHISPER_LANGUAGES)},
                "translation": {s.engine: s.to_dict() for s in service.languages()},
                "tts": tts_service.voices(),
                "pairs": pair_matrix(service, tts_service, LANGUAGES, whisper_translate),
            }
        )

    async def engines_info(request: web.Request) -> web.Response:
        return web.json_response(engines.info())

    async def stats_page(request: web.Request) -> web.Response:
        return web.json_response(stats.snapshot(engines.metrics))

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(openapi_document(max_upload_bytes, max_texts))

    return [
        web.post("/api/stt", _measured("stt", stats, stt)),
        web.post("/api/translate", _measured("translate", stats, translate)),
        web.post("/api/tts", _measured("tts", stats, tts)),
        web.get("/api/languages", _measured("languages", stats, languages)),
        web.get("/api/engines", engines_info),
        web.get("/api/stats", stats_page),
        web.get("/api/openapi.json", openapi),
    ]
