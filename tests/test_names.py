"""Names, room ids and language tags: strict rules, the same in the server and the page."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from bench.chromium import CHROMIUM
from signaling.errors import SignalingError
from signaling.languages import normalize_language
from signaling.names import FORBIDDEN_CATEGORIES, check_name
from signaling.rooms import ROOM_ID_CHARS, check_room_id
from tests.conftest import RunningServer

MAX = 64
# The page's patterns, written from the server's by signaling/webgen.py; web/names.js uses them.
GENERATED_JS = Path(__file__).parents[1] / "web" / "generated.js"

#: Display names and the name each is stored as (None: refused with ``name_invalid``).
NAMES: list[tuple[str, str | None]] = [
    ("Ann", "Ann"),
    ("  Ann  ", "Ann"),
    ("\u00a0Ann\u3000", "Ann"),  # no-break and ideographic spaces (Zs) are trimmed
    ("Nguye\u0302\u0303n", "Nguyễn"),  # NFC composes the accents
    ("\uff21nn", "\uff21nn"),  # NFC (not NFKC) keeps full-width letters
    ("\U0001f600" * MAX, "\U0001f600" * MAX),  # 64 code points: 128 UTF-16 units
    ("\U0001f600" * (MAX + 1), None),
    ("x" * MAX, "x" * MAX),
    ("x" * (MAX + 1), None),
    ("e\u0301" * MAX, "\u00e9" * MAX),  # long before NFC, short after it
    ("", None),
    ("   ", None),
    ("\u3000", None),
    ("\ud800", None),  # a lone high surrogate
    ("Ann\udc00", None),  # a lone low surrogate
    ("\udc00\ud800", None),  # reversed, so not a pair
    ("Ann\x00", None),
    ("Ann\n", None),
    ("Ann\t", None),
    ("Ann\x7f", None),
    ("Ann\x85", None),  # NEL: Python's strip() would drop it, JavaScript's trim() would not
    ("\ufeffAnn", None),  # BOM: JavaScript's trim() would drop it, Python's strip() would not
    ("Ann\u200b", None),  # zero-width space (Cf)
    ("\u202eevil", None),  # right-to-left override (Cf)
    ("\U0001f469\u200d\U0001f4bb", None),  # an emoji ZWJ sequence holds a format character
    ("Ann\u2028", None),  # line separator
    ("Ann\u2029Bob", None),  # paragraph separator
]
ROOM_IDS: list[tuple[str, bool]] = [
    ("abcdef", True),
    ("A-b_C-123", True),
    ("x" * 64, True),
    ("x" * 65, False),
    ("abcde", False),
    ("abcdef\n", False),  # re's "$" matches before a final newline; the rule does not
    ("abcdé1", False),
    ("abcdef!", False),
    ("abc def", False),
    ("\uff41bcdef", False),  # full-width a
    ("abcde\u0661", False),  # Arabic-Indic digit one: a digit to \d, not to the rule
]


def server_name(raw: str) -> str | None:
    try:
        return check_name(raw, MAX)
    except SignalingError:
        return None


def server_room_id(raw: str) -> bool:
    try:
        check_room_id(raw)
    except SignalingError:
        return False
    return True


@pytest.mark.parametrize(("raw", "stored"), NAMES)
def test_the_server_name_rule(raw: str, stored: str | None) -> None:
    assert server_name(raw) == stored
    if stored is not None:
        assert unicodedata.is_normalized("NFC", stored)
        assert not any(unicodedata.category(ch) in FORBIDDEN_CATEGORIES for ch in stored)
        assert server_name(stored) == stored


@pytest.mark.parametrize(("raw", "valid"), ROOM_IDS)
def test_the_server_room_id_rule(raw: str, valid: bool) -> None:
    assert server_room_id(raw) is valid


@pytest.mark.parametrize("tag", ["en\n", "pt-BR\n", "e\u0301n", "\uff45n", "en-\u0661\u0662"])
def test_language_tags_are_ascii_with_nothing_after(tag: str) -> None:
    with pytest.raises(SignalingError) as refused:
        normalize_language(tag)
    assert refused.value.code == "language_invalid"


async def test_a_lone_surrogate_name_is_refused_over_the_wire(server: RunningServer) -> None:
    from callserver.probe import ProbeError

    caller = server.caller()
    await caller.connect()
    join = {"type": "join", "room": "names-room", "spoken": "en", "listen": "en"}
    for change, code in [
        ({"name": "\ud800"}, "name_invalid"),
        ({"name": "Ann\u202e"}, "name_invalid"),
        ({"name": "Ann", "room": "names-room\n"}, "room_id_invalid"),
        ({"name": "Ann", "spoken": "en\n"}, "language_invalid"),
    ]:
        # json.dumps escapes the surrogate as \ud800, as a browser's JSON.stringify does.
        await caller.send({**join, **change})
        with pytest.raises(ProbeError) as refused:
            await caller.expect("welcome")
        assert isinstance(refused.value.message, dict)
        assert refused.value.message["code"] == code, change
    await caller.close()


# --- the page's rule, in Chromium -------------------------------------------------------------

# Strings cross into the page as UTF-16 code units: a lone surrogate would not survive UTF-8.
_PAGE_CHECK_JS = """
async ([names, roomIds, max]) => {
  const rules = await import("/static/names.js");
  const text = (units) => String.fromCharCode(...units);
  const units = (s) => Array.from({ length: s.length }, (_, i) => s.charCodeAt(i));
  return {
    names: names.map((n) => {
      const { name, problem } = rules.checkName(text(n), max);
      return problem === null ? units(name) : null;
    }),
    roomIds: roomIds.map((r) => rules.ROOM_ID.test(text(r))),
  };
}
"""


def utf16(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def from_utf16(units: list[int]) -> str:
    data = b"".join(unit.to_bytes(2, "little") for unit in units)
    return data.decode("utf-16-le", "surrogatepass")


def test_the_page_writes_the_servers_patterns() -> None:
    source = GENERATED_JS.read_text()
    assert f"const ROOM_ID = /^{ROOM_ID_CHARS}$/;" in source
    categories = "".join(f"\\p{{{c}}}" for c in FORBIDDEN_CATEGORIES)
    assert f"const NAME_FORBIDDEN = /[{categories}]/u;" in source


@pytest.mark.browser
async def test_the_page_and_the_server_agree(server: RunningServer) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            await page.goto(server.url + "/healthz")
            result = await page.evaluate(
                _PAGE_CHECK_JS,
                [[utf16(raw) for raw, _ in NAMES], [utf16(r) for r, _ in ROOM_IDS], MAX],
            )
        finally:
            await browser.close()
    page_names = [None if units is None else from_utf16(units) for units in result["names"]]
    server_names = [server_name(raw) for raw, _ in NAMES]
    disagreements = [
        (json.dumps(raw), page_said, server_said)
        for (raw, _), page_said, server_said in zip(NAMES, page_names, server_names, strict=True)
        if page_said != server_said
    ]
    assert disagreements == []
    assert result["roomIds"] == [server_room_id(raw) for raw, _ in ROOM_IDS]
