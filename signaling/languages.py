"""Language tags participants may declare: BCP-47 style, checked against a known list."""

from __future__ import annotations

import re

from signaling.errors import ErrorCode, SignalingError

#: Languages the page offers, by ISO 639-1 code: (English name, native name).
LANGUAGES: dict[str, tuple[str, str]] = {
    "ar": ("Arabic", "العربية"),
    "de": ("German", "Deutsch"),
    "en": ("English", "English"),
    "es": ("Spanish", "Español"),
    "fr": ("French", "Français"),
    "hi": ("Hindi", "हिन्दी"),
    "id": ("Indonesian", "Bahasa Indonesia"),
    "it": ("Italian", "Italiano"),
    "ja": ("Japanese", "日本語"),
    "ko": ("Korean", "한국어"),
    "nl": ("Dutch", "Nederlands"),
    "pl": ("Polish", "Polski"),
    "pt": ("Portuguese", "Português"),
    "ru": ("Russian", "Русский"),
    "th": ("Thai", "ไทย"),
    "tr": ("Turkish", "Türkçe"),
    "uk": ("Ukrainian", "Українська"),
    "vi": ("Vietnamese", "Tiếng Việt"),
    "zh": ("Chinese", "中文"),
}

# \Z, not $: "$" also matches before a final newline ("pt-BR\n").
_TAG = re.compile(r"^(?P<primary>[A-Za-z]{2,3})(?:-[A-Za-z0-9]{2,8}){0,3}\Z")


def normalize_language(tag: str) -> str:
    """Canonical form of ``tag`` (``pt-br`` -> ``pt-BR``); raises ``language_invalid``."""
    match = _TAG.match(tag) if len(tag) <= 35 else None
    if match is None:
        raise SignalingError(ErrorCode.LANGUAGE_INVALID, f"{tag[:40]!r} is not a language tag")
    primary = match.group("primary").lower()
    if primary not in LANGUAGES:
        raise SignalingError(
            ErrorCode.LANGUAGE_INVALID,
            f"language {primary!r} is not supported; known: {', '.join(sorted(LANGUAGES))}",
        )
    parts = tag.split("-")
    canon = [primary]
    for sub in parts[1:]:
        # Region subtags are upper case, scripts title case, the rest lower case (RFC 5646 2.1.1).
        if len(sub) == 2 and sub.isalpha():
            canon.append(sub.upper())
        elif len(sub) == 4 and sub.isalpha():
            canon.append(sub.title())
        else:
            canon.append(sub.lower())
    return "-".join(canon)
