"""Display names: the rule the server and the call page (web/names.js) both apply.

A name is taken in NFC; it may not hold control characters, invisible formatting characters
(zero-width joiners, bidi overrides), lone UTF-16 surrogates or line and paragraph separators;
spaces at either end are dropped; what is left must be 1 to the limit's code points. With those
characters refused first, Python's ``str.strip`` and JavaScript's ``String.prototype.trim`` drop
the same characters (the Zs spaces), so both sides reach the same name.
``tests/test_names_page.py`` runs the page's check in Chromium on the inputs of
``tests/test_names.py`` and compares.
"""

from __future__ import annotations

import unicodedata

from signaling.errors import ErrorCode, SignalingError

#: Unicode general categories a display name may not contain; web/names.js gets the same ones
#: through web/generated.js (signaling/webgen.py).
FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def _clean(raw: str, max_length: int, code: ErrorCode, what: str) -> str:
    """``raw`` normalised and trimmed (possibly empty), or ``code`` naming what is wrong."""
    text = unicodedata.normalize("NFC", raw)
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise SignalingError(
                code, f"the {what} has a broken character (a lone UTF-16 surrogate)"
            )
        if category in FORBIDDEN_CATEGORIES:
            raise SignalingError(
                code, f"the {what} has control, invisible formatting or line break characters"
            )
    text = text.strip()
    if len(text) > max_length:
        raise SignalingError(code, f"the {what} is longer than {max_length} characters")
    return text


def check_name(raw: str, max_length: int) -> str:
    """The display name ``raw`` stands for, normalised; ``name_invalid`` if there is none."""
    name = _clean(raw, max_length, ErrorCode.NAME_INVALID, "display name")
    if not name:
        raise SignalingError(ErrorCode.NAME_INVALID, "the display name is empty")
    return name


def check_title(raw: str, max_length: int) -> str | None:
    """A room title by the display-name rule; None when blank; ``title_invalid`` otherwise."""
    return _clean(raw, max_length, ErrorCode.TITLE_INVALID, "room title") or None
