"""What the server asks of each speech engine, whichever process runs it.

The pipeline and the HTTP API hold a ``Recognizer``, a ``Translator`` and a ``Synthesizer``
and nothing more: the in-process engines (``WhisperEngine``, ``CachedTranslation``,
``TtsService``) implement them, and so does anything that runs them elsewhere. Each reports
its load as ``pending`` (requests running or waiting) instead of letting callers look at its
pool, and is released with ``aclose()``. ``tests/test_engine_contract.py`` holds every
implementation to the same behaviour.

An inference worker serves many rooms, so it may hold several requests at once: an engine that
can run them as one batch (one encoder pass and one ``generate`` for several utterances, one
``translate_batch`` for several pairs' sentences) also implements ``BatchRecognizer`` or
``BatchTranslator``. Batch items are answered one by one: an item's error is its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the engines import this module: only their types are needed here
    from models.errors import EngineError
    from models.mt.engine import LanguageSupport
    from models.stt.audio import Audio
    from models.stt.result import Transcript
    from models.tts.speech import Speech


class Recognizer(Protocol):
    """Speech to text."""

    @property
    def pending(self) -> int:
        """Requests running or waiting, counted until the work behind them has stopped."""
        ...

    @property
    def max_audio_s(self) -> float:
        """The longest audio accepted."""
        ...

    async def transcribe(
        self,
        audio: Audio,
        language: str | None = None,
        allowed: Sequence[str] | None = None,
        live: bool = False,
        draft: bool = False,
        to_english: bool = False,
    ) -> Transcript:
        """The words in 16 kHz mono float ``audio``; ``live``: an utterance of a call;
        ``draft``: speech still going on, for a revisable caption, wanted only if cheap (an
        engine may give empty text rather than spend more on it); ``to_english``: the words
        translated into English by the recogniser itself (Whisper's translate task)."""
        ...

    async def warm_up(self) -> None:
        """Load what the first request would otherwise wait for."""
        ...

    def info(self) -> dict[str, Any]:
        """What the engine is, for /api/engines."""
        ...

    async def aclose(self) -> None:
        """Release models and workers; later requests fail with EngineUnavailable."""
        ...


class Translator(Protocol):
    """Text from one language to another, through a chain of engines."""

    @property
    def pending(self) -> int: ...

    def engine_names(self, source: str, target: str) -> list[str]:
        """The engines that would serve the pair, in the order they are tried."""
        ...

    def languages(self) -> list[LanguageSupport]:
        """What each engine translates."""
        ...

    async def translate(self, text: str, source: str, target: str) -> str: ...

    async def translate_many(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """Each of ``texts`` in ``target``, in order."""
        ...

    async def warm_up(self) -> None: ...

    def info(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class Synthesizer(Protocol):
    """Text to 48 kHz mono speech."""

    @property
    def pending(self) -> int: ...

    def voices(self) -> dict[str, dict[str, list[str]]]:
        """Voices by engine, then language."""
        ...

    async def synthesize(self, text: str, language: str, voice: str | None = None) -> Speech: ...

    async def warm_up(self) -> None: ...

    def info(self) -> list[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RecognitionRequest:
    """One item of a recognition batch: ``Recognizer.transcribe``'s arguments."""

    audio: Audio
    language: str | None = None
    allowed: Sequence[str] | None = None
    live: bool = False
    draft: bool = False
    to_english: bool = False


@dataclass(frozen=True)
class TranslationRequest:
    """One item of a translation batch: ``Translator.translate_many``'s arguments."""

    texts: Sequence[str]
    source: str
    target: str


@runtime_checkable
class BatchRecognizer(Protocol):
    """A recogniser that decodes several utterances together."""

    async def transcribe_batch(
        self, requests: Sequence[RecognitionRequest]
    ) -> list[Transcript | EngineError]:
        """Each request's transcript, or the error it raised, in order."""
        ...


@runtime_checkable
class BatchTranslator(Protocol):
    """A translator that runs several requests, of any pairs, together."""

    async def translate_batch(
        self, requests: Sequence[TranslationRequest]
    ) -> list[list[str] | EngineError]:
        """Each request's translations, or the error it raised, in order."""
        ...
