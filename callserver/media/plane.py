"""The embedded media plane: every room's mixer and peer connections in this process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from callserver.media.dub import DubClip, DubSettings
from callserver.media.mixer import MixStats, RoomMixer
from callserver.media.offer_check import OfferLimits, check_offer
from callserver.media.peer import FrameTap, ParticipantPeer
from callserver.media.peer_tasks import FailureCounter
from callserver.media.room_clock import RoomClock, TickSettings
from signaling.errors import ErrorCode, SignalingError

log = logging.getLogger(__name__)

#: Called with (room id, participant id, reason) when a participant's media connection ends
#: on its own (failure, connect timeout), so signaling can tell the participant.
PeerClosedCallback = Callable[[str, str, str], None]


@dataclass
class RoomMedia:
    """A room's mixer, the clock that ticks it, and its participants' peers."""

    mixer: RoomMixer
    clock: RoomClock
    peers: dict[str, ParticipantPeer] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaLimits:
    """The media plane's settings."""

    sdp_max_bytes: int = 32 * 1024
    offer: OfferLimits = field(default_factory=OfferLimits)
    connect_timeout_s: float = 30.0
    close_timeout_s: float = 5.0
    mixer_max_queue_frames: int = 10
    mixer_prebuffer_frames: int = 0
    #: STUN servers the server's own ICE agent uses; empty means host candidates only.
    stun_urls: tuple[str, ...] = ()
    dub: DubSettings = field(default_factory=DubSettings)
    ticks: TickSettings = field(default_factory=TickSettings)


class MediaPlane:
    """Creates, answers and closes participants' peer connections; one mixer per room."""

    def __init__(
        self,
        limits: MediaLimits,
        on_peer_state: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits
        self.stats = MixStats()
        self.on_peer_closed: PeerClosedCallback | None = None
        #: Counts failures of peer connections' background tasks and closes (a metric).
        self.on_peer_failure: FailureCounter | None = None
        self.taps: list[FrameTap] = []
        #: Called with (room id, participant id) whenever a peer connection is gone, for any
        #: reason, so per-participant work elsewhere (translation) can stop.
        self.closed_hooks: list[Callable[[str, str], Awaitable[None]]] = []
        #: Called with (room id, participant id) when a participant's data channel opens, so
        #: events meant for them before it could carry them (notices) can be sent again.
        self.ready_hooks: list[Callable[[str, str], None]] = []
        #: Called with (room id, participant id, muted) when a host mutes or unmutes someone,
        #: so work on speech already received (translation) can end it.
        self.mute_hooks: list[Callable[[str, str, bool], None]] = []
        self._on_peer_state = on_peer_state
        self._rooms: dict[str, RoomMedia] = {}
        # (room id, participant id) of every participant a host muted, with or without a peer:
        # a mute may come before the first offer, and outlives a failed connection.
        self._muted: set[tuple[str, str]] = set()
        self._hook_tasks: set[asyncio.Future[None]] = set()

    @property
    def peer_count(self) -> int:
        return sum(len(room.peers) for room in self._rooms.values())

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def peer(self, room_id: str, participant_id: str) -> ParticipantPeer | None:
        room = self._rooms.get(room_id)
        return None if room is None else room.peers.get(participant_id)

    async def answer(self, room_id: str, participant_id: str, offer_sdp: str) -> str:
        """Answer a participant's offer, creating their peer connection on the first one."""
        # surrogatepass: a lone surrogate from JSON is the offer check's to refuse, not a crash.
        if len(offer_sdp.encode("utf-8", "surrogatepass")) > self.limits.sdp_max_bytes:
            raise SignalingError(
                ErrorCode.SDP_TOO_LARGE,
                f"SDP is larger than the limit of {self.limits.sdp_max_bytes} bytes",
            )
        # Before any peer exists: an offer aiortc would choke on never creates a connection.
        check_offer(offer_sdp, self.limits.offer)
        room = self._rooms.get(room_id)
        if room is None:
            mixer = RoomMixer(
                self.limits.mixer_max_queue_frames,
                self.limits.mixer_prebuffer_frames,
                stats=self.stats,
                dub_settings=self.limits.dub,
            )
            room = RoomMedia(mixer=mixer, clock=RoomClock(mixer, self.limits.ticks))
            self._rooms[room_id] = room
        peer = room.peers.get(participant_id)
        fresh = peer is None or peer.closed
        if fresh:
            peer = ParticipantPeer(
                room_id=room_id,
                participant_id=participant_id,
                room_clock=room.clock,
                connect_timeout_s=self.limits.connect_timeout_s,
                close_timeout_s=self.limits.close_timeout_s,
                stun_urls=self.limits.stun_urls,
                on_closed=self._peer_closed,
                on_state=self._on_peer_state,
                taps=self.taps,
                count_failure=self.on_peer_failure,
                on_ready=self._peer_ready,
                muted=(room_id, participant_id) in self._muted,
            )
            room.peers[participant_id] = peer
            room.mixer.add(participant_id)
        assert peer is not None
        try:
            return await peer.answer(offer_sdp)
        except SignalingError:
            if fresh:
                await peer.close("bad_offer")
            raise

    def send_event(self, room_id: str, participant_id: str, event: dict[str, Any]) -> bool:
        """Send ``event`` on the participant's data channel, if it is open."""
        peer = self.peer(room_id, participant_id)
        return peer is not None and peer.send_event(event)

    def broadcast_event(self, room_id: str, event: dict[str, Any]) -> int:
        """Send ``event`` to every participant of the room with an open data channel."""
        room = self._rooms.get(room_id)
        if room is None:
            return 0
        return sum(peer.send_event(event) for peer in list(room.peers.values()))

    def enqueue_dub(self, room_id: str, listener_id: str, clip: DubClip) -> bool:
        """Queue dubbed speech in a listener's mix; False when they have no media now."""
        room = self._rooms.get(room_id)
        if room is None or listener_id not in room.peers:
            return False
        room.mixer.enqueue_dub(listener_id, clip)
        return True

    def set_speaking(self, room_id: str, speaker_id: str, speaking: bool) -> None:
        """Voice detection's view of whether a speaker is speaking (dub pacing uses it)."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.mixer.set_speaking(speaker_id, speaking)

    def set_prefs(
        self, room_id: str, participant_id: str, dub: bool, original_volume: float
    ) -> None:
        """Apply a listener's mix preferences (dubbing on or off, original voice volume)."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.mixer.set_listener_prefs(
                participant_id, dub_enabled=dub, original_volume=original_volume
            )

    def set_plain_speakers(self, room_id: str, listener_id: str, speakers: frozenset[str]) -> None:
        """Speakers the listener gets no dub of, heard at full volume (see ``RoomMixer``)."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.mixer.set_plain_speakers(listener_id, speakers)

    def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        """A host's mute: while muted, nothing the participant sends reaches anyone's mix or
        the translation pipeline. Remembered until ``remove``, so it holds for a peer made
        later and across a reconnect."""
        key = (room_id, participant_id)
        if muted == (key in self._muted):
            return
        if muted:
            self._muted.add(key)
        else:
            self._muted.discard(key)
        peer = self.peer(room_id, participant_id)
        if peer is not None:
            peer.muted = muted
        log.info(
            "participant media muted" if muted else "participant media unmuted",
            extra={"room": room_id, "participant": participant_id, "has_peer": peer is not None},
        )
        for hook in self.mute_hooks:
            try:
                hook(room_id, participant_id, muted)
            except Exception:  # the mute holds at the gate whatever a hook does
                log.exception(
                    "mute hook failed", extra={"room": room_id, "participant": participant_id}
                )

    async def remove(self, room_id: str, participant_id: str, reason: str = "left") -> None:
        """Close and forget a participant's peer connection and mute (leave, disconnect)."""
        self._muted.discard((room_id, participant_id))
        peer = self.peer(room_id, participant_id)
        if peer is not None:
            await peer.close(reason)

    async def close(self) -> None:
        """Close every peer connection (shutdown)."""
        peers = [peer for room in self._rooms.values() for peer in room.peers.values()]
        await asyncio.gather(*(peer.close("shutdown") for peer in peers), return_exceptions=True)
        await asyncio.gather(*(room.clock.close() for room in self._rooms.values()))
        if self._hook_tasks:
            await asyncio.gather(*self._hook_tasks, return_exceptions=True)
        self._rooms.clear()
        self._muted.clear()

    def _peer_ready(self, peer: ParticipantPeer) -> None:
        for hook in self.ready_hooks:
            try:
                hook(peer.room_id, peer.participant_id)
            except Exception:  # aiortc's event callback must not see it; the call goes on
                log.exception("ready hook failed", extra={"room": peer.room_id})

    def _peer_closed(self, peer: ParticipantPeer, reason: str) -> None:
        room = self._rooms.get(peer.room_id)
        if room is None or room.peers.get(peer.participant_id) is not peer:
            return
        del room.peers[peer.participant_id]
        room.clock.forget(peer.participant_id)
        room.mixer.remove(peer.participant_id)
        if not room.peers:
            del self._rooms[peer.room_id]
        if reason in ("failed", "connect_timeout") and self.on_peer_closed is not None:
            self.on_peer_closed(peer.room_id, peer.participant_id, reason)
        for hook in self.closed_hooks:
            task = asyncio.ensure_future(hook(peer.room_id, peer.participant_id))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)
