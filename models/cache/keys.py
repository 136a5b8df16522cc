"""Cache keys that are valid both as file names and as Redis keys.

The old system keyed entries ``tts:<hash>``; the ``:`` made the key unusable as a file name on
some file systems and broke its file cache. Keys here are ``<kind>-<sha256 hex>``: lowercase
letters, digits and one ``-``, nothing a file system or Redis treats specially.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
_KIND = re.compile(r"^[a-z][a-z0-9]{0,15}$")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,15}-[0-9a-f]{64}$")


def normalize_text(text: str) -> str:
    """NFC, every whitespace run collapsed to one space, stripped: equal speech, equal key."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def cache_key(kind: str, *, engine: str, model: str, languages: tuple[str, ...], text: str) -> str:
    """``<kind>-<sha256 hex>`` of engine, model or voice, languages and normalized text.

    The parts are hashed as a JSON array, so no separator inside a part can make two different
    requests collide.
    """
    if not _KIND.match(kind):
        raise ValueError(f"cache kind {kind!r} must be 1-16 lowercase letters or digits")
    parts = [engine, model, [lang.lower() for lang in languages], normalize_text(text)]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"{kind}-{digest}"


def is_valid_key(key: str) -> bool:
    """Whether ``key`` has the shape :func:`cache_key` produces."""
    return KEY_PATTERN.match(key) is not None
