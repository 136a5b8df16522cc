"""The latency events a listener gets when a dub starts playing for them, and the histograms
behind them: a whole utterance's dub, a streamed piece's, or an utterance whose pieces held
every word."""

from __future__ import annotations

from typing import Any, Protocol

from callserver.pipeline.events import StageTimes
from callserver.pipeline.latency import PipelineMetrics, stages_ms


class EventSink(Protocol):
    """Where the events go (the media plane's data channels)."""

    def send_event(self, room_id: str, participant_id: str, event: dict[str, Any]) -> bool: ...


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class DubLatency:
    """Reports, per listener, when each dub of an utterance started playing."""

    def __init__(self, metrics: PipelineMetrics, sink: EventSink) -> None:
        self.metrics = metrics
        self.sink = sink

    def dub(
        self,
        room_id: str,
        listener_id: str,
        utterance_id: str,
        language: str,
        times: StageTimes,
        started_at: float | None,
        at: float,
    ) -> None:
        """The utterance's dub (or, streamed, its last part) starts at ``at``; ``started_at``:
        the speech's start when this is the first of its dubs the listener hears."""
        if language not in times.first_dub_frame:
            times.first_dub_frame[language] = at
            self.metrics.stage.labels("first_dub_frame").observe(at - times.first_audio[language])
        figures = stages_ms(times, language)
        self._heard(room_id, listener_id, utterance_id, language, times, figures, at, started_at)

    def pieces(
        self,
        room_id: str,
        listener_id: str,
        utterance_id: str,
        language: str,
        times: StageTimes,
        at: float,
    ) -> None:
        """An utterance whose streamed pieces held every word: its end is heard where the
        last piece's dub starts, ``at``."""
        figures = stages_ms(times)
        self._heard(
            room_id, listener_id, utterance_id, language, times, figures, at, None, "pieces"
        )

    def prefix(
        self,
        room_id: str,
        listener_id: str,
        utterance_id: str,
        language: str,
        started_at: float,
        at: float,
    ) -> None:
        """A piece of an utterance still being spoken starts: no end of speech yet, so no
        stages (the page shows none for it), only start of speech to dub."""
        self.metrics.start_to_dub.observe(at - started_at)
        event = {
            "type": "latency",
            "utterance_id": utterance_id,
            "language": language,
            "part": "prefix",
            "start_to_dub_ms": _ms(at - started_at),
        }
        self.sink.send_event(room_id, listener_id, event)

    def _heard(
        self,
        room_id: str,
        listener_id: str,
        utterance_id: str,
        language: str,
        times: StageTimes,
        figures: dict[str, float],
        at: float,
        started_at: float | None,
        part: str | None = None,
    ) -> None:
        self.metrics.mouth_to_ear.observe(at - times.speech_end)
        figures["mouth_to_ear"] = _ms(at - times.speech_end)
        event: dict[str, Any] = {
            "type": "latency",
            "utterance_id": utterance_id,
            "language": language,
            "stages_ms": figures,
        }
        if part is not None:
            event["part"] = part
        if started_at is not None:
            self.metrics.start_to_dub.observe(at - started_at)
            event["start_to_dub_ms"] = _ms(at - started_at)
        self.sink.send_event(room_id, listener_id, event)
