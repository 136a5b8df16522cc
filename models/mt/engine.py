"""What every translation engine offers the chain, and the metrics wrapper they share."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from models.errors import EngineError
from models.metrics import EngineMetrics


@dataclass(frozen=True)
class LanguageSupport:
    """The languages an engine serves. ``pairs`` None: every pair of two distinct languages."""

    engine: str
    languages: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the HTTP API."""
        return {
            "engine": self.engine,
            "languages": list(self.languages),
            "pairs": "all" if self.pairs is None else [list(pair) for pair in self.pairs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LanguageSupport:
        """The inverse of ``to_dict``."""
        pairs = data["pairs"]
        return cls(
            engine=str(data["engine"]),
            languages=tuple(str(code) for code in data["languages"]),
            pairs=None if pairs == "all" else tuple((str(a), str(b)) for a, b in pairs),
        )

    def serves(self, source: str, target: str) -> bool:
        """Whether this engine translates ``source`` into ``target``."""
        if self.pairs is not None:
            return (source, target) in self.pairs
        return source != target and source in self.languages and target in self.languages


@runtime_checkable
class TranslationEngine(Protocol):
    """A translator the chain can try. Language arguments are BCP-47 tags or NLLB codes."""

    name: str

    def supports(self, src: str, tgt: str) -> bool:
        """Whether this engine serves the pair (cheap, no inference)."""
        ...

    def languages(self) -> LanguageSupport:
        """Languages and pairs served."""
        ...

    async def translate(self, text: str, src: str, tgt: str) -> str:
        """Translate one text."""
        ...

    async def translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate several texts of one pair, batched where the engine can."""
        ...

    def info(self) -> dict[str, Any]:
        """Health-page facts: model, device, queue."""
        ...

    def close(self) -> None:
        """Release threads and models."""
        ...


@runtime_checkable
class WarmsUp(Protocol):
    """An engine with start-up work worth doing before the first request (optional)."""

    async def warm_up(self) -> None:
        """Do it now; failures are logged, not raised (the first request reports them)."""
        ...


@contextmanager
def recorded(metrics: EngineMetrics | None, engine: str, operation: str) -> Iterator[None]:
    """Time the block into ``metrics`` and count its outcome (ok or the error's code)."""
    if metrics is None:
        yield
        return
    start = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except EngineError as exc:
        outcome = exc.code
        raise
    except Exception:
        outcome = "internal_error"
        raise
    finally:
        metrics.latency.labels(engine, operation).observe(time.perf_counter() - start)
        metrics.requests.labels(engine, operation, outcome).inc()
