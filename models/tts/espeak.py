"""espeak-ng: about 130 languages offline (Vietnamese included), robotic but always there.

The text goes to the subprocess on stdin, never on the command line, so no text can become an
option or reach a shell; the voice is checked against espeak-ng's own list first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
import subprocess
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.errors import EngineError, EngineUnavailable, InvalidInput, UnsupportedLanguage
from models.tts.audio import resample_to_48k
from models.tts.speech import OUTPUT_RATE, Pcm16, Speech, normalize_language, primary_subtag

log = logging.getLogger(__name__)

_OTHER_LANGUAGE = re.compile(r"\(([a-z0-9-]+)\s+(\d+)\)")
_LIST_TIMEOUT_S = 10.0


def list_voices(binary: str = "espeak-ng") -> dict[str, str]:
    """Language tag → espeak-ng voice, parsed from ``espeak-ng --voices``; {} if not installed."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [binary, "--voices"],
            capture_output=True,
            timeout=_LIST_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("espeak-ng unavailable", extra={"binary": binary, "error": str(exc)})
        return {}
    table: dict[str, str] = {}
    # tag → (priority, voice); espeak-ng's lower number is the better match
    extra: dict[str, tuple[int, str]] = {}
    for line in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split(None, 4)
        if len(fields) < 4:
            continue
        language = normalize_language(fields[1])
        table.setdefault(language, language)
        # e.g. "cmn" also answers to "(zh-cmn 5)(zh 5)"
        for other, priority in _OTHER_LANGUAGE.findall(fields[4] if len(fields) > 4 else ""):
            tag = normalize_language(other)
            if tag not in extra or int(priority) < extra[tag][0]:
                extra[tag] = (int(priority), language)
    for tag, (_, voice) in extra.items():
        table.setdefault(tag, voice)
    return table


def parse_wav(data: bytes) -> tuple[Pcm16, int]:
    """Samples and rate of a 16-bit mono WAV as espeak-ng writes it to a pipe.

    On a pipe it cannot seek back, so the header's sizes are placeholders: the data chunk is
    taken to run to the end.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EngineError("espeak-ng did not write a WAV file")
    pos, rate, bits = 12, 0, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if channels != 1 or bits != 16:
                raise EngineError(f"espeak-ng wrote {channels} channels of {bits} bits")
        elif chunk_id == b"data":
            if not rate:
                raise EngineError("espeak-ng WAV has no fmt chunk before its data")
            pcm = data[body:]
            pcm = pcm[: len(pcm) - len(pcm) % 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.int16), rate
        pos = body + size + (size & 1)
    raise EngineError("espeak-ng WAV has no data chunk")


class EspeakEngine:
    """Runs ``espeak-ng --stdin --stdout`` per request, at most ``max_concurrency`` at once."""

    name = "espeak"

    def __init__(
        self,
        *,
        binary: str = "espeak-ng",
        timeout_s: float = 10.0,
        speed_wpm: int = 165,
        voice_overrides: Mapping[str, str] | None = None,
        max_concurrency: int = 2,
        voice_table: Mapping[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.timeout_s = timeout_s
        self.speed_wpm = speed_wpm
        self._table = dict(voice_table) if voice_table is not None else list_voices(binary)
        self._known = set(self._table.values())
        self._overrides: dict[str, str] = {}
        for tag, voice in (voice_overrides or {}).items():
            if normalize_language(voice) not in self._known:
                raise ValueError(f"espeak-ng has no voice {voice!r} (for {tag!r})")
            self._overrides[normalize_language(tag)] = normalize_language(voice)
        self._slots = asyncio.Semaphore(max_concurrency)

    def supports(self, language: str) -> bool:
        """Whether espeak-ng has a voice for ``language`` or its primary language."""
        return self._find(language) is not None

    def voice_for(self, language: str, voice: str | None = None) -> str:
        """An override, the exact tag, or the primary language's voice."""
        if voice is not None:
            name = normalize_language(voice)
            if name not in self._known:
                raise UnsupportedLanguage(f"espeak-ng has no voice {voice!r}")
            return name
        found = self._find(language)
        if found is None:
            raise UnsupportedLanguage(f"espeak-ng has no voice for {language!r}")
        return found

    def voices(self) -> dict[str, list[str]]:
        """Voice by language tag."""
        table = {tag: [voice] for tag, voice in self._table.items()}
        for tag, voice in self._overrides.items():
            table[tag] = [voice]
        return table

    def info(self) -> dict[str, Any]:
        """Binary and how many languages it speaks."""
        return {
            "engine": self.name,
            "available": bool(self._table),
            "binary": self.binary,
            "languages": len(self._table),
        }

    async def synthesize(self, text: str, language: str, voice: str | None = None) -> Speech:
        """Run espeak-ng on ``text``; killed after ``timeout_s``."""
        if not text.strip():
            raise InvalidInput("nothing to speak")
        name = self.voice_for(language, voice)
        argv = [self.binary, "-v", name, "-s", str(self.speed_wpm), "-b", "1"]
        argv += ["--stdin", "--stdout"]
        async with self._slots:
            raw = await self._run(argv, text.encode("utf-8"))
        samples, rate = parse_wav(raw)
        if samples.size == 0:
            raise InvalidInput("text has nothing espeak-ng can speak")
        # Resampling a few seconds of audio takes well under a millisecond.
        pcm = resample_to_48k(samples, rate)
        return Speech(pcm, OUTPUT_RATE, self.name, name, normalize_language(language))

    async def close(self) -> None:
        """Nothing held between requests."""

    async def _run(self, argv: list[str], stdin: bytes) -> bytes:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise EngineUnavailable(f"cannot start {self.binary}: {exc}") from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                out, err = await proc.communicate(stdin)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise EngineUnavailable(f"espeak-ng took over {self.timeout_s} s") from exc
        if proc.returncode != 0:
            message = err.decode("utf-8", "replace").strip()[:200]
            raise EngineUnavailable(f"espeak-ng exited {proc.returncode}: {message}")
        return out

    def _find(self, language: str) -> str | None:
        tag = normalize_language(language)
        for candidate in (tag, primary_subtag(tag)):
            if candidate in self._overrides:
                return self._overrides[candidate]
            if candidate in self._table:
                return self._table[candidate]
        return None
