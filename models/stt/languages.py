"""Which language to decode in: declared, detected, or detected among an allowed set."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from faster_whisper.tokenizer import _LANGUAGE_CODES

from models.errors import UnsupportedLanguage

#: Language codes Whisper knows (ISO 639-1 where one exists, e.g. ``vi``, ``en``, ``haw``).
WHISPER_LANGUAGES: frozenset[str] = frozenset(_LANGUAGE_CODES)


def check_language(code: str, multilingual: bool) -> str:
    """``code`` normalised, or UnsupportedLanguage for a code the model cannot decode."""
    norm = code.strip().lower()
    if norm not in WHISPER_LANGUAGES:
        raise UnsupportedLanguage(f"speech recognition does not know language {code!r}")
    if not multilingual and norm != "en":
        raise UnsupportedLanguage(f"the configured speech model is English-only, not {code!r}")
    return norm


def check_allowed(allowed: Iterable[str], multilingual: bool) -> tuple[str, ...]:
    """The allowed set normalised; codes the model cannot decode are refused up front."""
    codes = tuple(dict.fromkeys(code.strip().lower() for code in allowed))
    if not codes:
        raise UnsupportedLanguage("the allowed language set is empty")
    unknown = [code for code in codes if code not in WHISPER_LANGUAGES]
    if unknown:
        raise UnsupportedLanguage(f"speech recognition does not know {', '.join(unknown)}")
    if not multilingual:
        if "en" not in codes:
            raise UnsupportedLanguage("the configured speech model is English-only")
        return ("en",)
    return codes


def pick_language(
    probabilities: Sequence[tuple[str, float]], allowed: Sequence[str]
) -> tuple[str, float]:
    """The most probable language among ``allowed``, with its probability renormalised.

    Renormalising over the allowed set makes the figure comparable whatever else the
    model considered: 0.3 for vi and 0.1 for en becomes 0.75 for vi.
    """
    by_code = dict(probabilities)
    scores = {code: by_code.get(code, 0.0) for code in allowed}
    best = max(scores, key=lambda code: scores[code])
    total = sum(scores.values())
    return best, (scores[best] / total if total > 0 else 0.0)
