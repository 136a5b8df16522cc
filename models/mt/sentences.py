"""Sentence splitting for translation: NLLB was trained on sentences, not paragraphs."""

from __future__ import annotations

import re

#: Words that end in a period without ending a sentence (lower-cased, without the period).
_ABBREVIATIONS_TEXT = """mr mrs ms dr prof sr jr st mt vs cf approx no nos fig vol pp ca dept art
    jan feb mar apr jun jul aug sep sept oct nov dec sra srta dra ud uds av"""
ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())

# Western terminators need whitespace after them ("3.5", "example.com" are not ends);
# CJK full-width terminators end a sentence even with no space after.
_END = re.compile(r"(?:[.!?…]+[\"'”’)\]»]*(?=\s)|[.!?…]+[\"'”’)\]»]*$|[。！？]+[」』”’)）]*)")
_SPACE = re.compile(r"\s+")


def _word_before(text: str, index: int) -> str:
    start = index
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:index]


def _ends_nothing(text: str, match: re.Match[str]) -> bool:
    """True when a terminator does not end a sentence: "Dr. Smith", "J. Smith", "e.g. this",
    or a lower-case continuation ("Stop!" he said)."""
    mark = match.group(0)
    if mark[0] in "。！？":
        return False
    rest = text[match.end() :].lstrip()
    if rest and (rest[0].islower() or rest[0].isdigit()):
        return True
    if mark != ".":
        return False
    word = _word_before(text, match.start()).lstrip("(\"'“‘[").lower()
    if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return True
    # "e.g." / "U.S." style: letters separated by periods.
    return "." in word and all(len(part) <= 2 for part in word.split("."))


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, keeping each one's punctuation; whitespace is collapsed."""
    text = _SPACE.sub(" ", text).strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        if _ends_nothing(text, match):
            continue
        piece = text[start : match.end()].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
