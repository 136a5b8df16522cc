"""Prometheus metrics, one registry per application so several servers can share a process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from callserver.media.mixer import MixStats


class _MixerCollector(Collector):
    """Reads the mixers' counters at scrape time instead of updating a counter per frame."""

    def __init__(self, stats: Callable[[], MixStats]) -> None:
        self._stats = stats

    def collect(self) -> list[CounterMetricFamily]:
        stats = self._stats()
        return [
            CounterMetricFamily(
                "callserver_mixed_frames", "20 ms frames mixed for listeners", stats.mixed_frames
            ),
            CounterMetricFamily(
                "callserver_mixer_underruns",
                "Times a speaker's queue ran dry while playing",
                stats.underruns,
            ),
            CounterMetricFamily(
                "callserver_mixer_dropped_frames",
                "Frames dropped to keep per-listener queues short",
                stats.dropped_frames,
            ),
            CounterMetricFamily(
                "callserver_mixer_unsent_frames",
                "Mixed frames dropped because a listener's sender fell behind the room's clock",
                stats.unsent_frames,
            ),
            CounterMetricFamily(
                "callserver_dub_frames", "20 ms frames of dubbed speech mixed", stats.dub_frames
            ),
            CounterMetricFamily(
                "callserver_dub_clips_skipped",
                "Dubbed utterances skipped to catch up with a listener's backlog",
                stats.dub_clips_skipped,
            ),
            CounterMetricFamily(
                "callserver_ducked_frames",
                "Frames in which original voices were lowered under a dub",
                stats.ducked_frames,
            ),
        ]


def _loop_tasks() -> float:
    """Tasks of the running loop: /metrics is rendered in the server's loop thread."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # rendered outside the loop (a test's registry dump)
        return 0.0


class Metrics:
    """Every metric the server exposes at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes, ...: the dashboard's CPU and
        # memory panels. Each app has its own registry, so the default one's collector is absent.
        ProcessCollector(registry=self.registry)
        self.ready = Gauge(
            "callserver_ready",
            "1 while the server takes new calls; 0 while its engines warm up and while it drains",
            registry=self.registry,
        )
        self.event_loop_tasks = Gauge(
            "callserver_event_loop_tasks",
            "asyncio tasks alive in the server's event loop (a count that only grows is a leak)",
            registry=self.registry,
        )
        self.event_loop_tasks.set_function(_loop_tasks)
        self.rooms = Gauge(
            "callserver_rooms", "Rooms with participants on this server", registry=self.registry
        )
        self.participants = Gauge(
            "callserver_participants",
            "Participants connected to this server",
            registry=self.registry,
        )
        self.peer_connections = Gauge(
            "callserver_peer_connections",
            "Peer connections between the server and participants",
            registry=self.registry,
        )
        self.websocket_count = Gauge(
            "callserver_websockets", "Open signaling connections", registry=self.registry
        )
        self.signaling_messages = Counter(
            "callserver_signaling_messages",
            "Signaling messages received, by type",
            ["type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "callserver_errors", "Protocol errors sent, by code", ["code"], registry=self.registry
        )
        self.peer_states = Counter(
            "callserver_peer_connection_states",
            "Peer connection state changes, by new state",
            ["state"],
            registry=self.registry,
        )
        self.peer_failures = Counter(
            "callserver_peer_connection_failures",
            "Failures inside peer connections that no request saw, by where (task: a background "
            "task of aiortc or the server; close: closing the connection) and exception type",
            ["where", "error"],
            registry=self.registry,
        )
        self.transcript_entries_lost = Counter(
            "callserver_transcript_entries_lost",
            "Final captions missing from their room's transcript download, by reason "
            "(unreachable: the transcript store did not answer; backlog: too many waited; "
            "closed: written during shutdown; error: a failed write)",
            ["reason"],
            registry=self.registry,
        )

    def message(self, kind: str) -> None:
        """Count one signaling message of type ``kind``."""
        self.signaling_messages.labels(kind).inc()

    def error(self, code: str) -> None:
        """Count one protocol error with ``code``."""
        self.errors.labels(code).inc()

    def websockets(self, count: int) -> None:
        """Record the number of open signaling connections."""
        self.websocket_count.set(count)

    def watch_mixers(self, stats: Callable[[], MixStats]) -> None:
        """Expose the mixers' counters, summed by ``stats`` at scrape time."""
        self.registry.register(_MixerCollector(stats))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
