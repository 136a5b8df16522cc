"""What a listener gets from a speaker, for each (spoken, heard) language pair.

The page offers every language in ``signaling.languages.LANGUAGES``, but what the server can do
with a pair depends on what is installed: Apertium's pairs, a pulled NLLB or M2M model, Piper
voices, espeak-ng. Each pair gives one of:

- ``same``: the listener understands the speaker; nothing to translate;
- ``voice``: translated captions and translated speech;
- ``captions``: translated captions, no voice for the heard language;
- ``original``: no engine translates the pair: the original captions and voice only.

The matrix is worked out from the engines' own answers (``Translator.engine_names``,
``Synthesizer.voices``) each time it is asked for, so it follows the engines that run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from models.interfaces import Synthesizer, Translator
from signaling.languages import LANGUAGES

if TYPE_CHECKING:  # callserver.engines builds every engine: only its type is needed here
    from callserver.engines import EngineSet

Gives = Literal["same", "voice", "captions", "original"]

#: The name the matrix gives Whisper's own translation into English (``to_english``).
WHISPER_TRANSLATE = "whisper"


def primary(tag: str) -> str:
    """``pt-BR`` -> ``pt``: a listener whose primary language is the speaker's needs no dub."""
    return tag.split("-", 1)[0].lower()


@dataclass(frozen=True)
class PairSupport:
    """What a listener hearing ``heard`` gets from a speaker of ``spoken``, and through what."""

    spoken: str
    heard: str
    gives: Gives
    #: Translation engines that serve the pair, in the order they are tried.
    translation: tuple[str, ...] = ()
    #: The engine that would speak the translation (None: no voice).
    voice: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"gives": self.gives, "translation": list(self.translation), "voice": self.voice}


Voices = Mapping[str, Mapping[str, list[str]]]


def voice_engine(voices: Voices, language: str) -> str | None:
    """The first engine in ``voices`` (``Synthesizer.voices()``: engine -> language -> voices,
    in chain order) with a voice for ``language`` or its primary language."""
    wanted = primary(language)
    for engine, table in voices.items():
        if any(primary(tag) == wanted for tag in table):
            return engine
    return None


def pair_support(
    translator: Translator,
    voices: Voices,
    spoken: str,
    heard: str,
    whisper_translate: bool = False,
) -> PairSupport:
    """What ``heard`` listeners get from ``spoken`` speakers with these engines;
    ``whisper_translate``: Whisper translates into English what no engine serves."""
    if primary(spoken) == primary(heard):
        return PairSupport(spoken, heard, "same")
    engines = tuple(translator.engine_names(spoken, heard))
    if not engines and whisper_translate and primary(heard) == "en":
        engines = (WHISPER_TRANSLATE,)
    if not engines:
        return PairSupport(spoken, heard, "original")
    voice = voice_engine(voices, heard)
    return PairSupport(spoken, heard, "voice" if voice else "captions", engines, voice)


def pair_matrix(
    translator: Translator,
    synthesizer: Synthesizer,
    languages: Iterable[str],
    whisper_translate: bool = False,
) -> dict[str, dict[str, dict[str, object]]]:
    """``matrix[spoken][heard]``: every pair of ``languages``, as ``PairSupport.to_dict``."""
    codes = sorted(set(languages))
    voices = synthesizer.voices()
    return {
        spoken: {
            heard: pair_support(translator, voices, spoken, heard, whisper_translate).to_dict()
            for heard in codes
        }
        for spoken in codes
    }


async def language_pairs(
    engines: EngineSet, whisper_translate: bool = False
) -> dict[str, dict[str, dict[str, object]]]:
    """The matrix of every language the page offers, with the engines as they are now."""
    translator, synthesizer = await engines.translation(), await engines.tts()
    return pair_matrix(translator, synthesizer, LANGUAGES, whisper_translate)
