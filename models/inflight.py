"""A count of requests in progress: the ``pending`` figure of engines without a pool."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    """Counts the requests an engine is serving, for its ``pending``."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def serving(self) -> Iterator[None]:
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
