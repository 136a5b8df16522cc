"""Helpers for tests of the CTranslate2 translation engines."""

from __future__ import annotations

from typing import Any


class CountingTranslator:
    """Passes every call to the real ctranslate2.Translator and records its arguments and the
    raw tokens it produced."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []
        self.raw: list[list[str]] = []

    def translate_batch(self, source: list[list[str]], **kwargs: Any) -> Any:
        self.calls.append({"source": source, **kwargs})
        results = self.inner.translate_batch(source, **kwargs)
        self.raw.extend(r.hypotheses[0] for r in results)
        return results
