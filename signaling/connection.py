"""One signaling connection, the limits the hub holds it to, and what the hub needs from the
media plane and the metrics (``signaling/hub.py`` dispatches; this is what it works with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from signaling.ratelimit import TokenBucket
from signaling.rooms import Participant
from signaling.tokens import TokenOptions


class MediaPlaneLike(Protocol):
    """What signaling needs from the media plane (embedded or remote)."""

    async def answer(self, room_id: str, participant_id: str, offer_sdp: str) -> str: ...

    async def remove(self, room_id: str, participant_id: str, reason: str = "left") -> None: ...

    def set_prefs(
        self, room_id: str, participant_id: str, dub: bool, original_volume: float
    ) -> None: ...

    def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None: ...


class HubMetrics(Protocol):
    """Counters the hub updates; ``callserver.metrics.Metrics`` provides them."""

    def message(self, kind: str) -> None: ...

    def error(self, code: str) -> None: ...

    def websockets(self, count: int) -> None: ...


@dataclass(frozen=True)
class HubLimits:
    """The signaling settings the hub enforces."""

    ws_max_message_bytes: int = 64 * 1024
    ws_heartbeat_s: float = 20.0
    sdp_max_bytes: int = 32 * 1024
    ice_candidate_max_bytes: int = 2048
    name_max_length: int = 64
    joins_per_minute: int = 30
    messages_per_second: float = 50.0
    max_protocol_errors: int = 20
    join_secret: bytes | None = None
    join_token: TokenOptions = field(default_factory=TokenOptions)
    #: Lifetime of the guest tokens a host's ``welcome`` carries (with a join secret).
    token_ttl_s: int = 3600
    ice_servers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(eq=False)
class ClientConnection:
    """One WebSocket and, once joined, the participant it speaks for."""

    ws: web.WebSocketResponse
    address: str
    bucket: TokenBucket
    room_id: str | None = None
    participant: Participant | None = None
    errors: int = 0

    def log_fields(self) -> dict[str, Any]:
        return {
            "room": self.room_id,
            "participant": self.participant.id if self.participant else None,
            "client": self.address,
        }
