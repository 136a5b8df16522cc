"""One participant's peer connection with the server: voice up, their mix down, a data channel."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import av
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from callserver.media import audio_level, decoding
from callserver.media.frames import PcmFrame
from callserver.media.peer_tasks import FailureCounter, PeerScope
from callserver.media.processors import DecodeToMono, Rechunk
from callserver.media.room_clock import RoomClock
from callserver.media.tracks import FeedAudioTrack
from signaling.errors import ErrorCode, SignalingError

log = logging.getLogger(__name__)

decoding.install()
audio_level.install()

#: Called with (room id, participant id, 20 ms frame) for every frame a participant sends.
FrameTap = Callable[[str, str, PcmFrame], None]


class ParticipantPeer:
    """Owns one RTCPeerConnection and the tasks that serve it; ``close`` releases everything."""

    def __init__(
        self,
        *,
        room_id: str,
        participant_id: str,
        room_clock: RoomClock,
        connect_timeout_s: float,
        close_timeout_s: float,
        stun_urls: tuple[str, ...] = (),
        on_closed: Callable[[ParticipantPeer, str], None],
        on_state: Callable[[str], None] | None = None,
        taps: list[FrameTap] | None = None,
        count_failure: FailureCounter | None = None,
        on_ready: Callable[[ParticipantPeer], None] | None = None,
        muted: bool = False,
    ) -> None:
        self.room_id = room_id
        self.participant_id = participant_id
        self._scope = PeerScope(room_id, participant_id, count_failure)
        # An explicit server list: aiortc's default is Google's STUN server, which an offline or
        # self-hosted deployment must not depend on (and which stalls gathering when unreachable).
        ice_servers = [RTCIceServer(urls=list(stun_urls))] if stun_urls else []
        with self._scope.active():
            self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        feed = room_clock.attach(participant_id)
        self.track = FeedAudioTrack(feed, on_stop=lambda: room_clock.detach(participant_id, feed))
        self.channel: RTCDataChannel | None = None
        self.closed = False
        self.bad_frames = 0
        #: A host muted this participant: their voice goes to nobody (see ``_consume``).
        self.muted = muted
        self._room_clock = room_clock
        self._close_timeout_s = close_timeout_s
        self._on_closed = on_closed
        self._on_state = on_state
        self._on_ready = on_ready
        self._taps = taps or []
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = {"room": room_id, "participant": participant_id}
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        with self._scope.active():
            self._spawn(self._connect_deadline(connect_timeout_s))

    @property
    def connected(self) -> bool:
        return self.pc.connectionState == "connected"

    async def answer(self, offer_sdp: str) -> str:
        """Apply the participant's offer (checked by ``offer_check``) and return the answer SDP."""
        if self.closed:
            raise SignalingError(ErrorCode.MEDIA_FAILED, "the media connection is closed")
        with self._scope.active():
            return await self._answer(offer_sdp)

    async def _answer(self, offer_sdp: str) -> str:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc raises many types for bad SDP; all mean the same here
            raise self._refused("apply", exc) from exc
        transceivers = self.pc.getTransceivers()
        if not any(t.kind == "audio" for t in transceivers):
            raise SignalingError(
                ErrorCode.SDP_INVALID,
                "The offer has no audio section, so the server cannot hear you or send you the "
                "call.",
            )
        for transceiver in transceivers:
            if transceiver.kind != "audio":
                # Video travels browser to browser; refusing it here saves decoding it for nobody.
                transceiver.direction = "inactive"
        if self.track not in [s.track for s in self.pc.getSenders()]:
            self.pc.addTrack(self.track)
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            raise self._refused("answer", exc) from exc
        return self.pc.localDescription.sdp

    def _refused(self, stage: str, exc: Exception) -> SignalingError:
        # The exception's text is for operators; the participant gets a sentence.
        log.warning(
            "offer refused by aiortc",
            extra={
                **self._log,
                "stage": stage,
                "error_type": type(exc).__name__,
                "error": _short(exc),
            },
        )
        if stage == "apply":
            return SignalingError(
                ErrorCode.SDP_INVALID,
                "The server could not apply the offer; it may come from a browser this server "
                "does not support.",
            )
        return SignalingError(
            ErrorCode.SDP_INVALID, "The server could not find an answer that fits the offer."
        )

    def send_event(self, event: dict[str, Any]) -> bool:
        """Send a JSON event on the data channel; False when the channel is not open."""
        channel = self.channel
        # A closing connection may still show an open channel; aiortc's SCTP sender then fails
        # in a background task. Only send while the whole connection is up.
        if channel is None or channel.readyState != "open" or not self.connected:
            return False
        with self._scope.active():
            # The send may start aiortc's flush task, which belongs to this connection.
            channel.send(json.dumps(event, separators=(",", ":")))
        return True

    async def close(self, reason: str = "closed") -> None:
        """Stop the track and tasks and close the connection, waiting at most the close timeout."""
        if self.closed:
            return
        self.closed = True
        self.track.stop()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        try:
            with self._scope.active():
                await asyncio.wait_for(self.pc.close(), self._close_timeout_s)
        except TimeoutError:
            log.warning("peer connection close timed out", extra=self._log)
        except Exception as exc:
            # aiortc's close trips over a connection its offer left half set up; nothing is
            # left to release, so this is a note, not a traceback.
            self._scope.failed("close", exc)
        log.info("peer connection closed", extra={**self._log, "reason": reason})
        self._on_closed(self, reason)

    # --- aiortc events -------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._consume(track))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.on("open", self._channel_open)
        if channel.readyState == "open":
            self._channel_open()

    def _channel_open(self) -> None:
        self.send_event({"type": "media-ready"})
        if self._on_ready is not None:
            self._on_ready(self)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("peer connection state", extra={**self._log, "state": state})
        if self._on_state is not None:
            self._on_state(state)
        if state == "failed":
            self._spawn(self.close("failed"))
        elif state == "closed" and not self.closed:
            # aiortc closes the connection itself when the client's DTLS says goodbye; forget
            # it here too, so the mixer drops the participant and their next offer starts anew.
            self._spawn(self.close("closed_by_client"))

    # --- tasks ------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_deadline(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)
        if not self.closed and self.pc.connectionState != "connected":
            log.warning("peer connection did not connect in time", extra=self._log)
            await self.close("connect_timeout")

    async def _consume(self, track: MediaStreamTrack) -> None:
        decode = DecodeToMono()
        rechunk = Rechunk()
        while not self.closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame) or self.muted:
                # The one gate of a host's mute: everything the participant says fans out
                # below (every listener's mix, the taps: voice detection and translation),
                # so nothing of it is heard, recognised or translated, and it costs no decoding.
                continue
            try:
                pcm_frames = decode.process(frame)
            except (av.FFmpegError, ValueError) as exc:
                # One undecodable frame costs 20 ms of audio, not the call.
                self.bad_frames += 1
                log.debug("dropped bad audio frame", extra={**self._log, "error": _short(exc)})
                continue
            for pcm in pcm_frames:
                for chunk in rechunk.process(pcm):
                    self._room_clock.push(self.participant_id, chunk)
                    for tap in self._taps:
                        tap(self.room_id, self.participant_id, chunk)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
