"""gTTS: Google Translate's voices over HTTP, with a timeout, bounded retries and back-off.

The request bodies come from gTTS itself (its text tokenizer and RPC packaging), so the wire
format stays the library's; the HTTP exchange is ours, on aiohttp, so it does not block the
loop, honours a timeout and goes to a configurable endpoint (tests point it at a local server
standing in for Google). After ``max_tries`` failures it raises EngineUnavailable and the
service falls back to the next engine.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from typing import Any

import aiohttp
import numpy as np

from models.errors import EngineUnavailable, InvalidInput, UnsupportedLanguage
from models.metrics import EngineMetrics
from models.tts.audio import decode_to_48k
from models.tts.speech import OUTPUT_RATE, Pcm16, Speech, normalize_language, primary_subtag

log = logging.getLogger(__name__)

_AUDIO = re.compile(r'jQ1olc","\[\\"(.*?)\\"]')


def gtts_languages() -> dict[str, str]:
    """Lowercase tag → gTTS language code, from gTTS's bundled table (no network)."""
    from gtts.lang import tts_langs

    return {code.lower(): code for code in tts_langs()}


def request_bodies(text: str, lang: str) -> list[str]:
    """The form bodies gTTS would POST for ``text`` (one per ~100-character part)."""
    from gtts import gTTS

    try:
        bodies = gTTS(text, lang=lang, lang_check=False).get_bodies()
    except AssertionError as exc:  # gTTS asserts on text with nothing left to speak
        raise InvalidInput(f"gTTS found nothing to speak: {exc}") from exc
    return [body if isinstance(body, str) else body.decode("utf-8") for body in bodies]


def parse_audio(body: str) -> bytes:
    """MP3 bytes in a batchexecute response; EngineUnavailable if there are none."""
    match = _AUDIO.search(body)
    if match is None:
        raise EngineUnavailable("gTTS response carried no audio")
    try:
        return base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EngineUnavailable(f"gTTS audio is not base64: {exc}") from exc


class GttsEngine:
    """Google's voices; any language in gTTS's table."""

    name = "gtts"

    def __init__(
        self,
        *,
        url: str,
        timeout_s: float = 5.0,
        max_tries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 4.0,
        metrics: EngineMetrics | None = None,
    ) -> None:
        if max_tries < 1 or timeout_s <= 0 or backoff_s < 0 or backoff_max_s < 0:
            raise ValueError("invalid gTTS retry or timeout options")
        self.url = url
        self.timeout_s = timeout_s
        self.max_tries = max_tries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._metrics = metrics
        self._languages = gtts_languages()
        self._session: aiohttp.ClientSession | None = None
        # Imported lazily: gTTS needs requests' headers for the form's content type.
        from gtts import gTTS

        self._headers = dict(gTTS.GOOGLE_TTS_HEADERS)

    def supports(self, language: str) -> bool:
        """Whether gTTS lists ``language`` or its primary language."""
        return self._find(language) is not None

    def voice_for(self, language: str, voice: str | None = None) -> str:
        """gTTS has one voice per language: its code."""
        found = self._find(language)
        if found is None or (voice is not None and voice != found):
            raise UnsupportedLanguage(f"gTTS has no voice {voice or ''!r} for {language!r}")
        return found

    def voices(self) -> dict[str, list[str]]:
        """One voice per language."""
        return {tag: [code] for tag, code in self._languages.items()}

    def info(self) -> dict[str, Any]:
        """Endpoint and retry policy."""
        return {
            "engine": self.name,
            "available": True,
            "url": self.url,
            "timeout_s": self.timeout_s,
            "max_tries": self.max_tries,
            "languages": len(self._languages),
        }

    async def synthesize(self, text: str, language: str, voice: str | None = None) -> Speech:
        """Fetch every part's MP3, join and decode them to 48 kHz."""
        if not text.strip():
            raise InvalidInput("nothing to speak")
        code = self.voice_for(language, voice)
        bodies = request_bodies(text, code)
        parts = [await self._fetch(body) for body in bodies]
        # Each part is a whole MP3 file (with its own tags), so each is decoded on its own.
        samples = await asyncio.to_thread(_decode_parts, parts)
        return Speech(samples, OUTPUT_RATE, self.name, code, normalize_language(language))

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self, body: str) -> bytes:
        session = self._get_session()
        last = "no attempt"
        for attempt in range(1, self.max_tries + 1):
            retry_after: float | None = None
            try:
                async with session.post(
                    self.url,
                    data=body.encode("utf-8"),
                    headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                ) as response:
                    text = await response.text()
                    status = response.status
                    if status == 200:
                        self._count("ok")
                        return parse_audio(text)
                    self._count(str(status))
                    last = f"HTTP {status}"
                    if status != 429 and status < 500:
                        raise EngineUnavailable(f"gTTS refused the request: HTTP {status}")
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            except TimeoutError:
                self._count("timeout")
                last = f"timed out after {self.timeout_s} s"
            except aiohttp.ClientError as exc:
                self._count("connect_error")
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_tries:
                delay = min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), self.backoff_max_s)
                log.info(
                    "gTTS attempt failed; retrying",
                    extra={"attempt": attempt, "error": last, "delay_s": delay},
                )
                await asyncio.sleep(delay)
        raise EngineUnavailable(f"gTTS failed {self.max_tries} times; last: {last}")

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _find(self, language: str) -> str | None:
        tag = normalize_language(language)
        return self._languages.get(tag) or self._languages.get(primary_subtag(tag))

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.requests.labels(engine=self.name, operation="http", outcome=outcome).inc()


def _decode_parts(parts: list[bytes]) -> Pcm16:
    return np.concatenate([decode_to_48k(part) for part in parts])


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
