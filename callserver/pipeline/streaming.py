"""Streaming a long utterance: dubbing the clauses recognition has settled on while the
speaker goes on (``CALLSERVER_PIPELINE_STREAMING``).

Interim recognition transcribes the speech in progress again and again, each pass from the
utterance's start. Words two consecutive passes agree on (LocalAgreement-2) are taken as
stable; once the stable words reach the end of a clause (a comma, a full stop, a colon...)
and there are at least ``min_words`` new ones, that clause is *committed*: translated and
dubbed at once, ahead of the utterance's end.

A pause the speaker makes inside an utterance also ends a piece, as it does for an
interpreter: recognition at the pause heard every word up to it whole (the audio ends in
silence, no word is cut), so those words are committed without waiting for a second pass,
less any trailing words a clause does not end on ("and", "the", "of"...), which are left to
the next piece. When the utterance ends, its final recognition is
aligned with what was committed, and only the rest is translated and dubbed, after the
committed pieces in the listener's queue. The final caption's translation joins the pieces.

Why clauses and not every stable word: a translation engine needs a phrase to translate
(word order moves across languages), and a clause boundary is where a listener expects the
voice to pause anyway.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from callserver.pipeline.echo import words
from callserver.pipeline.sentence_end import CONTINUING, TERMINAL
from models.stt.filters import normalise

#: Marks that end a clause: sentence ends and the marks a sentence goes on after, but not
#: dashes (a word cut at the end of the audio so far can end in one), plus the full-width
#: semicolon and colon.
CLAUSE_ENDS = (*TERMINAL, *(m for m in CONTINUING if m not in "-–—"), "；", "：")


def _key(token: str) -> str:
    """A token as passes are compared: case, accents and punctuation ignored."""
    return "".join(words(token))


class StablePrefix:
    """LocalAgreement-2 over successive transcripts of one utterance in progress."""

    def __init__(self, min_words: int, held_words: frozenset[str] = frozenset()) -> None:
        """``held_words``: words a piece ending at a pause does not end on (lower case)."""
        if min_words < 1:
            raise ValueError("min_words must be >= 1")
        self.min_words = min_words
        self.held_words = held_words
        self.committed: list[str] = []  # tokens (with their punctuation) already committed
        self._previous: list[str] = []

    def offer(self, text: str, at_pause: bool = False) -> str | None:
        """A new transcript of the speech so far; the clause(s) to commit now, if any.

        ``at_pause``: the transcript is of the speech up to a pause the speaker is still in
        (and goes on after), so it ends a piece by itself."""
        tokens = text.split()
        if at_pause:
            return self._pause(tokens)
        agreed = 0
        for mine, theirs in zip(tokens, self._previous, strict=False):
            if _key(mine) != _key(theirs) or not _key(mine):
                break
            agreed += 1
        previous, self._previous = self._previous, tokens
        start = self._after_committed(tokens)
        if start is None or agreed <= start:
            return None  # the passes now disagree on the past, or nothing new is stable
        # The last clause end among the new stable words. Whisper ends whatever audio it is
        # given with a full stop, so a mark on the last word heard so far counts only if the
        # previous pass wrote it too; before later words, the latest pass's mark is informed.
        for end in range(agreed, start, -1):
            token = tokens[end - 1]
            if token.endswith(CLAUSE_ENDS) and (end < len(tokens) or previous[end - 1] == token):
                break
        else:
            return None
        return self._commit(tokens, start, end)

    def _pause(self, tokens: list[str]) -> str | None:
        self._previous = tokens
        start = self._after_committed(tokens)
        if start is None:
            return None  # this pass heard the committed words differently: wait for more
        return self._commit(tokens, start, self._unheld_end(tokens, start))

    def holds(self, text: str) -> bool:
        """Whether the committed pieces hold every word of ``text`` (a pass over the speech so
        far) but trailing words a piece does not end on."""
        tokens = text.split()
        start = self._after_committed(tokens)
        return (
            bool(self.committed) and start is not None and start >= self._unheld_end(tokens, start)
        )

    def too_few_new(self, text: str) -> bool:
        """Whether ``text`` goes on from the committed pieces by some words, fewer than a
        piece needs (``min_words``)."""
        tokens = text.split()
        start = self._after_committed(tokens)
        return (
            bool(self.committed) and start is not None and 0 < len(tokens) - start < self.min_words
        )

    def _unheld_end(self, tokens: list[str], start: int) -> int:
        """Where a piece of ``tokens`` from ``start`` ends: before trailing held words."""
        end = len(tokens)
        while end > start and self._held(tokens[end - 1]):
            end -= 1
        return end

    def _after_committed(self, tokens: list[str]) -> int | None:
        """Where a pass's words after the committed ones start. Aligned word by word, so a
        pass that hears a word an earlier one missed ("And Mr John Dashwood" after "Mr John
        Dashwood" was committed) still goes on from them. None when the pass heard them
        differently: it does not end them with the last two committed words in a row (one
        alone may be a later "you"), or matches fewer than half of them."""
        if not self.committed:
            return 0
        blocks = _matches(self.committed, tokens)
        if (
            not blocks
            or blocks[-1].a + blocks[-1].size != len(self.committed)
            or blocks[-1].size < min(2, len(self.committed))
            or 2 * sum(b.size for b in blocks) < len(self.committed)
        ):
            return None
        return blocks[-1].b + blocks[-1].size

    def _held(self, token: str) -> bool:
        last = normalise(token).split()[-1:]
        return bool(last) and last[0] in self.held_words

    def _commit(self, tokens: list[str], start: int, end: int) -> str | None:
        if end - start < self.min_words:
            return None
        piece = tokens[start:end]
        self.committed += piece
        return " ".join(piece)

    def remainder(self, final: str, count: int | None = None) -> str:
        """What of the utterance's final text was not committed (aligned word by word, so a
        final pass that words the committed part slightly differently still splits right).
        ``count``: only the first ``count`` committed tokens count as done."""
        tokens = final.split()
        committed = self.committed if count is None else self.committed[:count]
        if not committed:
            return final.strip()
        blocks = _matches(committed, tokens)
        if not blocks:
            # Nothing in common: the final pass heard something else; trust the count.
            return " ".join(tokens[len(committed) :])
        last = blocks[-1]
        # Committed words after the last match are taken to have been heard as the same
        # number of words.
        at = last.b + last.size + (len(committed) - (last.a + last.size))
        return " ".join(tokens[min(at, len(tokens)) :])


def _matches(committed: list[str], tokens: list[str]) -> list[difflib.Match]:
    """The runs of words ``committed`` and a pass's ``tokens`` share, in order (case,
    accents and punctuation ignored)."""
    done = [_key(t) for t in committed]
    keys = [_key(t) for t in tokens]
    matcher = difflib.SequenceMatcher(None, done, keys, autojunk=False)
    return [b for b in matcher.get_matching_blocks() if b.size]


@dataclass
class Streamed:
    """One utterance's committed pieces: their dubs in flight and their translations.

    A piece whose dub fails stops the pieces after it (they never play), so what was dubbed
    is always the leading pieces up to the first failure, and the utterance's end dubs the
    rest from there: no words are lost to a failed piece."""

    prefix: StablePrefix
    #: Each committed piece's tokens, in order.
    sizes: list[int] = field(default_factory=list)
    #: Each piece's translation per listening language, in order.
    translations: list[dict[str, str]] = field(default_factory=list)
    #: The pieces' dub tasks; each queues its dub only after the one before it succeeded.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: When each piece's dub started for each listener: (piece, listener) -> first frame time.
    started: dict[tuple[int, str], asyncio.Future[float]] = field(default_factory=dict)
    #: Handed over to the utterance's translation: its final caption is on its way, so no
    #: piece may show a caption in progress any more.
    ended: bool = False

    def add(self, piece: str, task: asyncio.Task[None]) -> None:
        """A piece committed and its dub task started."""
        self.sizes.append(len(piece.split()))
        self.translations.append({})
        self.tasks.append(task)

    def heard(self, index: int, listener_id: str) -> asyncio.Future[float]:
        """Resolved with the time piece ``index``'s dub starts for the listener (never, if it
        is skipped)."""
        key = (index, listener_id)
        if key not in self.started:
            self.started[key] = asyncio.get_running_loop().create_future()
        return self.started[key]

    def when_heard(self, index: int, listener_id: str, report: Callable[[float], None]) -> None:
        """Call ``report`` with the time piece ``index``'s dub starts for the listener."""

        def heard(started: asyncio.Future[float]) -> None:
            report(started.result())

        self.heard(index, listener_id).add_done_callback(heard)

    @property
    def done(self) -> bool:
        return all(task.done() for task in self.tasks)

    async def settled(self) -> None:
        """Every piece's dub is queued (or failed): what comes next may follow it."""
        if self.tasks:
            await asyncio.wait(self.tasks)

    @property
    def dubbed(self) -> int:
        """How many leading pieces were dubbed (their tasks succeeded); after ``settled``."""
        count = 0
        for task in self.tasks:
            if not task.done() or task.cancelled() or task.exception() is not None:
                break
            count += 1
        return count

    def dubbed_tokens(self) -> int:
        """Committed tokens the dubbed pieces hold."""
        return sum(self.sizes[: self.dubbed])

    def so_far(self, count: int | None = None) -> tuple[str, dict[str, str]]:
        """The first ``count`` pieces (all: None) as a caption in progress: their words, and
        their translations joined per language."""
        chosen = self.translations[:count]
        text = " ".join(self.prefix.committed[: sum(self.sizes[:count])])
        languages = {language for piece in chosen for language in piece}
        return text, {
            language: " ".join(t for piece in chosen if (t := piece.get(language, "")).strip())
            for language in sorted(languages)
        }

    def joined(self, language: str, rest: str) -> str:
        """The whole utterance's translation into ``language``: the dubbed pieces', then
        ``rest``."""
        pieces = self.so_far(self.dubbed)[1].get(language, "")
        return " ".join(t for t in (pieces, rest) if t.strip())

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
