"""Echo safety: a participant's microphone must not send back what the server played them.

Browsers cancel most echo, but not all of it, and a loudspeaker call has plenty. The server
knows what it sent each participant (their dubbed speech, and the original voices whose text it
captioned), so an utterance of theirs whose words are mostly words just sent to them is
dropped instead of being translated a second time.
"""

from __future__ import annotations

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
        self._sent: deque[tuple[float, frozenset[str]]] = deque()

    def sent(self, text: str) -> None:
        """Remember that ``text`` was just played or shown to this participant."""
        tokens = frozenset(words(text))
        if tokens:
            self._sent.append((self._clock(), tokens))
        self._expire()

    def is_echo(self, text: str) -> bool:
        """Whether ``text`` (this participant's utterance) is mostly what they were sent."""
        self._expire()
        said = words(text)
        if not said or not self._sent:
            return False
        # A short utterance must match entirely: "yes" is not an echo of a sentence with "yes".
        needed = 1.0 if len(said) <= 2 else self.threshold
        return any(sum(w in sent for w in said) / len(said) >= needed for _, sent in self._sent)

    def _expire(self) -> None:
        cutoff = self._clock() - self.window_s
        while self._sent and self._sent[0][0] < cutoff:
            self._sent.popleft()
