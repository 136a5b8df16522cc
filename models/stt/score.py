"""Word error rate, for judging transcripts against what was said (tests and benchmarks)."""

from __future__ import annotations

from models.stt.filters import normalise

_NUMBERS = str.split(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
#: Spellings Whisper chooses either way: compared as one.
_SPELLINGS = {
    "mr": "mister",
    "mrs": "missus",
    "dr": "doctor",
    **{str(n): word for n, word in enumerate(_NUMBERS)},
}


def words(text: str) -> list[str]:
    """Words for scoring: case, punctuation and hyphens ignored, common abbreviations and the
    numbers up to twenty spelt out."""
    return [_SPELLINGS.get(w, w) for w in normalise(text.replace("-", " ")).split()]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus word error rate: total edits over total reference words."""
    pairs = [(words(r), words(h)) for r, h in zip(refs, hyps, strict=True)]
    return sum(edit_distance(r, h) for r, h in pairs) / sum(len(r) for r, _ in pairs)
