"""Echo safety: a participant's microphone must not send back what the server played them.

Browsers cancel most echo, but not all of it, and a loudspeaker call has plenty. The server
knows what it sent each participant (their dubbed speech, and the original voices whose text it
captioned), so an utterance of theirs whose words are mostly words just sent to them is
dropped instead of being translated a second time.

Recognition of an echo is never exact (a loudspeaker, a room and a codec stand between), so
matching is fuzzy: a word counts as heard when it is close in spelling to a sent word, and the
whole utterance also counts when its letters line up with a sent text's.
"""

from __future__ import annotations

import difflib
import re
import time
import unicodedata
from collections import deque
from collections.abc import Callable

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case words without accents, so recognition's spelling differences still match."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _WORD.findall(plain)


#: Utterances of this many words or fewer are judged by the stricter short-utterance rule.
SHORT_WORDS = 2
#: Spelling similarity at which two words are taken for the same word heard twice.
WORD_MATCH = 0.75


def _heard(word: str, sent: list[str]) -> bool:
    return word in sent or any(
        difflib.SequenceMatcher(None, word, other).ratio() >= WORD_MATCH for other in sent
    )


def similarity(said: list[str], sent: list[str]) -> float:
    """How much of ``said`` repeats ``sent``: the better of word and letter alignment, 0..1."""
    by_word = sum(_heard(word, sent) for word in said) / len(said)
    by_letter = difflib.SequenceMatcher(None, " ".join(said), " ".join(sent)).ratio()
    return max(by_word, by_letter)


class EchoGuard:
    """Texts recently sent to one participant, and the test for their coming back."""

    def __init__(
        self,
        window_s: float,
        threshold: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.threshold = threshold
        self._clock = clock
        self._sent: deque[tuple[float, list[str]]] = deque()

    def sent(self, text: str) -> None:
        """Remember that ``text`` was just played or shown to this participant."""
        tokens = words(text)
        if tokens:
            self._sent.append((self._clock(), tokens))
        self._expire()

    @property
    def idle(self) -> bool:
        """Nothing sent within the window is remembered (the guard can be forgotten)."""
        self._expire()
        return not self._sent

    def is_echo(self, text: str) -> bool:
        """Whether ``text`` (this participant's utterance) is mostly what they were sent."""
        self._expire()
        said = words(text)
        if not said or not self._sent:
            return False
        if len(said) <= SHORT_WORDS:
            # "No" after a dub that contained "no" is far more often a reply than an echo: a
            # short utterance is echo only of a short text, word for word.
            return any(
                len(sent) <= SHORT_WORDS + 1 and all(w in sent for w in said)
                for _, sent in self._sent
            )
        return any(similarity(said, sent) >= self.threshold for _, sent in self._sent)

    def _expire(self) -> None:
        cutoff = self._clock() - self.window_s
        while self._sent and self._sent[0][0] < cutoff:
            self._sent.popleft()
