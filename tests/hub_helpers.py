"""Helpers for tests of the translation hub on its own: the real engines, no media plane."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from callserver.engines import EngineSet
from callserver.media.dub import DubClip
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.hub import TranslationHub
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.settings import PipelineSettings
from models.metrics import EngineMetrics
from signaling.rooms import Participant


class RecordingDelivery:
    """Collects what the pipeline would send to participants (stands in for the media plane)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.dubs: list[tuple[str, DubClip]] = []
        self.speaking: list[tuple[str, bool]] = []

    def send_event(self, room_id: str, participant_id: str, event: dict[str, Any]) -> bool:
        self.events.append((participant_id, event))
        return True

    def enqueue_dub(self, room_id: str, listener_id: str, clip: DubClip) -> bool:
        self.dubs.append((listener_id, clip))
        return True

    def set_speaking(self, room_id: str, speaker_id: str, speaking: bool) -> None:
        self.speaking.append((speaker_id, speaking))


def make_hub(
    registry: CollectorRegistry,
    delivery: RecordingDelivery,
    people: list[Participant],
    settings: PipelineSettings,
) -> tuple[TranslationHub, EngineSet]:
    """A hub over the real engines, delivering to ``delivery``, with ``people`` in every room."""
    engines = EngineSet(EngineMetrics(registry))
    hub = TranslationHub(
        settings,
        EndpointSettings(),
        engines,
        delivery,
        participants=lambda room_id: people,
        metrics=PipelineMetrics(registry),
    )
    return hub, engines
