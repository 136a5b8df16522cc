"""Live request statistics for the demo page: counts, p50/p95 latency, cache hit rate."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

import numpy as np

from models.metrics import EngineMetrics

#: Latencies kept per endpoint: enough for stable percentiles, bounded memory.
WINDOW = 500


class RequestStats:
    """Outcome counts and recent latencies per API endpoint."""

    def __init__(self) -> None:
        self._latency: dict[str, deque[float]] = {}
        self._outcomes: dict[str, Counter[str]] = {}
        self._cache: dict[str, Counter[str]] = {}
        self.started = time.time()

    def cache_lookup(self, cache: str, hit: bool) -> None:
        """Count one request-level cache lookup (whatever layer answered)."""
        self._cache.setdefault(cache, Counter())["hit" if hit else "miss"] += 1

    def record(self, endpoint: str, seconds: float, outcome: str) -> None:
        """Count one request and, when it succeeded, its latency."""
        self._outcomes.setdefault(endpoint, Counter())[outcome] += 1
        if outcome == "ok":
            self._latency.setdefault(endpoint, deque(maxlen=WINDOW)).append(seconds)

    def snapshot(self, metrics: EngineMetrics) -> dict[str, Any]:
        """Everything the demo page shows, as JSON-ready values."""
        endpoints: dict[str, Any] = {}
        for name, outcomes in sorted(self._outcomes.items()):
            window = list(self._latency.get(name, ()))
            total = sum(outcomes.values())
            endpoints[name] = {
                "requests": total,
                "errors": total - outcomes.get("ok", 0),
                "outcomes": dict(outcomes),
                "p50_ms": float(np.percentile(window, 50)) * 1000 if window else None,
                "p95_ms": float(np.percentile(window, 95)) * 1000 if window else None,
            }
        caches: dict[str, Any] = {}
        for cache, counts in sorted(self._cache.items()):
            lookups = counts["hit"] + counts["miss"]
            caches[cache] = {
                "hits": counts["hit"],
                "misses": counts["miss"],
                "hit_rate": counts["hit"] / lookups if lookups else None,
                "errors": _cache_errors(metrics, cache),
            }
        return {"uptime_s": time.time() - self.started, "endpoints": endpoints, "caches": caches}


def _cache_errors(metrics: EngineMetrics, cache: str) -> int:
    """Failed or corrupt cache operations (any layer) from the Prometheus counters."""
    total = 0
    for family in metrics.cache.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_total")
                and labels.get("cache") == cache
                and labels.get("event") in ("error", "corrupt")
            ):
                total += int(sample.value)
    return total
