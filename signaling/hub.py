"""The WebSocket endpoint: one connection per participant, dispatching protocol messages."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from signaling.connection import ClientConnection, HubLimits, HubMetrics, MediaPlaneLike
from signaling.errors import CloseCode, ErrorCode, SignalingError
from signaling.hosting import HostActions
from signaling.languages import normalize_language
from signaling.names import check_name
from signaling.placement import LocalPlacement, Placement
from signaling.protocol import (
    HOST_MESSAGE_TYPES,
    ClientMessage,
    End,
    Join,
    Leave,
    Lock,
    Mute,
    Offer,
    PeerAnswer,
    PeerIce,
    PeerOffer,
    Ping,
    Prefs,
    Remove,
    Update,
    parse_message,
    server_message,
)
from signaling.ratelimit import SlidingWindowLimiter, TokenBucket
from signaling.rooms import Participant, Room, RoomStore, check_room_id, hash_key, new_key
from signaling.tokens import mint_token, verify_token

log = logging.getLogger(__name__)


class SignalingHub:
    """Owns every signaling connection; joins, relays and leaves go through here."""

    def __init__(
        self,
        limits: HubLimits,
        rooms: RoomStore,
        media: MediaPlaneLike,
        metrics: HubMetrics,
        is_draining: Callable[[], bool] = lambda: False,
        client_address: Callable[[web.Request], str] = lambda r: r.remote or "unknown",
        placement: Placement | None = None,
    ) -> None:
        self.limits = limits
        self.rooms = rooms
        self.media = media
        self.metrics = metrics
        self._is_draining = is_draining
        self._leaving = 0
        self._client_address = client_address
        self.placement = placement if placement is not None else LocalPlacement()
        self._connections: set[ClientConnection] = set()
        self._by_participant: dict[str, ClientConnection] = {}
        # room id -> participant id -> connection, in join order: the rooms with members here.
        self._members: dict[str, dict[str, ClientConnection]] = {}
        self.join_limiter = SlidingWindowLimiter(limits.joins_per_minute, 60.0)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Called with a room id after someone joins it, leaves it or changes languages, in
        #: the background (what listeners are told of their language pairs).
        self.room_hooks: list[Callable[[str], Awaitable[None]]] = []
        self.host = HostActions(self)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def room_count(self) -> int:
        """Rooms with participants connected to this server."""
        return len(self._members)

    @property
    def participant_count(self) -> int:
        """Participants connected to this server (what a drain waits for)."""
        return len(self._by_participant)

    def participant(self, participant_id: str) -> Participant | None:
        """A participant connected here, as they are now."""
        conn = self._by_participant.get(participant_id)
        return conn.participant if conn is not None else None

    def participants_of(self, room_id: str) -> list[Participant]:
        """The room's participants on this server, oldest first; empty for an unknown room.

        A room's calls are all held by one server, so this is the whole room; the pipeline
        reads it on every utterance without a round trip to the store.
        """
        members = self._members.get(room_id, {})
        return [conn.participant for conn in members.values() if conn.participant is not None]

    # --- connection lifecycle -----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """aiohttp handler for the signaling WebSocket."""
        ws = web.WebSocketResponse(
            max_msg_size=self.limits.ws_max_message_bytes,
            heartbeat=self.limits.ws_heartbeat_s,
        )
        await ws.prepare(request)
        burst = max(10.0, self.limits.messages_per_second)
        conn = ClientConnection(
            ws=ws,
            address=self._client_address(request),
            bucket=TokenBucket(self.limits.messages_per_second, burst),
        )
        self._connections.add(conn)
        self.metrics.websockets(len(self._connections))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._refuse(
                        conn,
                        SignalingError(ErrorCode.BAD_MESSAGE, "binary messages are not accepted"),
                    )
                elif msg.type == WSMsgType.ERROR:
                    # aiohttp has already closed with the right code (1009 for oversized).
                    self.metrics.error(ErrorCode.BAD_MESSAGE)
                    log.info("websocket error", extra={**conn.log_fields(), "error": str(msg.data)})
                    break
        finally:
            await self._disconnect(conn)
        return ws

    async def _disconnect(self, conn: ClientConnection) -> None:
        self._connections.discard(conn)
        self.metrics.websockets(len(self._connections))
        if conn.participant is not None:
            await self.drop(conn, "disconnected")

    async def close_all(self, code: CloseCode = CloseCode.GOING_AWAY) -> None:
        """Close every connection (shutdown); their participants leave."""
        for conn in list(self._connections):
            await conn.ws.close(code=code, message=b"server shutting down")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def notify_draining(self, deadline_s: float) -> None:
        """Tell every connection the server is draining and will close within ``deadline_s``."""
        message = server_message("draining", deadline_s=deadline_s)
        for conn in list(self._connections):
            await self.send(conn, message)

    def media_closed(self, room_id: str, participant_id: str, reason: str) -> None:
        """The media plane lost a participant's connection; tell them so they can re-offer."""
        conn = self._by_participant.get(participant_id)
        if conn is None or conn.room_id != room_id:
            return
        error = SignalingError(
            ErrorCode.MEDIA_FAILED, f"the media connection ended ({reason}); send a new offer"
        )
        self._spawn(self._send_error(conn, error, None))

    # --- message dispatch ---------------------------------------------------------------------

    async def _on_text(self, conn: ClientConnection, text: str) -> None:
        if not conn.bucket.allow():
            self.metrics.error(ErrorCode.RATE_LIMITED)
            await self._send_error(
                conn,
                SignalingError(ErrorCode.RATE_LIMITED, "too many messages; slow down"),
                None,
            )
            await conn.ws.close(code=CloseCode.RATE_LIMITED, message=b"rate limited")
            return
        kind: str | None = None
        try:
            message = parse_message(text)
            kind = message.type
            self.metrics.message(kind)
            await self._dispatch(conn, message)
        except SignalingError as error:
            if kind is None:
                self.metrics.message("invalid")
            await self._refuse(conn, error, kind)
        except Exception:
            log.exception("signaling handler failed", extra=conn.log_fields())
            await self._refuse(
                conn, SignalingError(ErrorCode.INTERNAL, "the server failed this request"), kind
            )

    async def _dispatch(self, conn: ClientConnection, message: ClientMessage) -> None:
        handler: Callable[[ClientConnection, Any], Awaitable[None]]
        handler = {  # type: ignore[assignment]
            Join: self._join,
            Offer: self._offer,
            PeerOffer: self._relay,
            PeerAnswer: self._relay,
            PeerIce: self._relay,
            Update: self._update,
            Prefs: self._prefs,
            Lock: self.host.lock,
            Remove: self.host.remove,
            Mute: self.host.mute,
            End: self.host.end,
            Leave: self._leave_message,
            Ping: self._ping,
        }[type(message)]
        if not isinstance(message, Join | Ping) and conn.participant is None:
            raise SignalingError(ErrorCode.NOT_JOINED, f"'{message.type}' needs a joined room")
        if message.type in HOST_MESSAGE_TYPES:
            assert conn.participant is not None
            if not conn.participant.host:
                raise SignalingError(
                    ErrorCode.NOT_HOST, f"only the room's host may send '{message.type}'"
                )
        await handler(conn, message)

    async def _join(self, conn: ClientConnection, msg: Join) -> None:
        if conn.participant is not None:
            raise SignalingError(ErrorCode.ALREADY_JOINED, "this connection is already in a room")
        if self._is_draining() and not self.placement.can_redirect:
            raise SignalingError(ErrorCode.DRAINING, "the server is shutting down; try again later")
        if not self.join_limiter.allow(conn.address):
            raise SignalingError(ErrorCode.RATE_LIMITED, "too many join attempts; wait a minute")
        check_room_id(msg.room)
        name = self._check_name(msg.name)
        spoken = normalize_language(msg.spoken)
        listen = normalize_language(msg.listen)
        host = False
        if self.limits.join_secret is not None:
            if not msg.token:
                raise SignalingError(ErrorCode.TOKEN_REQUIRED, "this server needs a join token")
            claims = verify_token(
                self.limits.join_secret, msg.token, msg.room, self.limits.join_token
            )
            host = claims.grants.host
        if msg.host_key is not None:
            # Checked even with a host token: a wrong key is refused, never quietly ignored.
            await self.host.check_key(msg.room, msg.host_key)
            host = True
        owner = await self.placement.owner(msg.room)
        if owner is not None:
            # Another node holds the room's calls: the client joins there (docs/protocol.md).
            log.info("join redirected", extra={**conn.log_fields(), "node": owner.id})
            await self.send(conn, server_message("redirect", url=owner.url, room=msg.room))
            return
        if self._is_draining():
            # A draining node keeps its calls but takes nobody new, not even into them.
            raise SignalingError(ErrorCode.DRAINING, "the server is shutting down; try again later")
        # A dropped connection comes back through a lock with the key its welcome gave it.
        rejoin_key = msg.rejoin_key or new_key()
        room, participant = await self.rooms.join(
            msg.room, name, spoken, listen, host=host, seat=hash_key(rejoin_key)
        )
        if conn.ws.closed:
            # Gone while the store answered: give the place back.
            await self.rooms.leave(room.id, participant.id)
            return
        conn.room_id, conn.participant = room.id, participant
        self._by_participant[participant.id] = conn
        self._members.setdefault(room.id, {})[participant.id] = conn
        log.info("joined", extra=conn.log_fields())
        await self.send(conn, self._welcome(room, participant, rejoin_key))
        await self.broadcast(
            room.id,
            server_message("participant-joined", participant=participant.to_wire()),
            exclude=participant.id,
        )
        self._room_changed(room.id)

    def _welcome(self, room: Room, participant: Participant, rejoin_key: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"rejoin_key": rejoin_key}
        if participant.host and self.limits.join_secret is not None:
            # The host's own token grants hosting: the page shares this one instead.
            fields["guest_token"] = mint_token(
                self.limits.join_secret,
                room.id,
                self.limits.token_ttl_s,
                options=self.limits.join_token,
            )
        return server_message(
            "welcome",
            participant=participant.to_wire(),
            room=room.to_wire(),
            ice_servers=self.limits.ice_servers,
            **fields,
        )

    async def _offer(self, conn: ClientConnection, msg: Offer) -> None:
        assert conn.participant is not None
        assert conn.room_id is not None
        participant, room_id = conn.participant, conn.room_id
        sdp = await self.media.answer(room_id, participant.id, msg.sdp)
        if conn.participant is None or conn.participant.id != participant.id:
            # Left (or disconnected) while the answer was being made: don't leak the peer.
            await self.media.remove(room_id, participant.id, "left")
            return
        # The prefs as they are now: they may have changed while the answer was made.
        participant = conn.participant
        self.media.set_prefs(room_id, participant.id, participant.dub, participant.original_volume)
        await self.send(conn, server_message("answer", sdp=sdp))

    async def _relay(self, conn: ClientConnection, msg: PeerOffer | PeerAnswer | PeerIce) -> None:
        assert conn.participant is not None
        if isinstance(msg, PeerIce):
            if msg.candidate is not None:
                # surrogatepass, as for SDP: a lone surrogate from JSON is relayed, not a crash.
                size = len(msg.candidate.candidate.encode("utf-8", "surrogatepass"))
                if size > self.limits.ice_candidate_max_bytes:
                    raise SignalingError(ErrorCode.BAD_MESSAGE, "ICE candidate is too long")
            payload: dict[str, Any] = {
                "candidate": None if msg.candidate is None else msg.candidate.model_dump()
            }
        else:
            self._check_sdp(msg.sdp)
            payload = {"sdp": msg.sdp}
        target = self._by_participant.get(msg.to)
        if target is None or target.room_id != conn.room_id or target is conn:
            raise SignalingError(ErrorCode.PEER_NOT_FOUND, f"no participant {msg.to[:40]!r} here")
        await self.send(
            target, server_message(msg.type, **{"from": conn.participant.id}, **payload)
        )

    async def _update(self, conn: ClientConnection, msg: Update) -> None:
        participant = conn.participant
        assert participant is not None
        assert conn.room_id is not None
        # Validate everything before changing anything, so a bad field changes nothing.
        name = self._check_name(msg.name) if msg.name is not None else None
        spoken = normalize_language(msg.spoken) if msg.spoken is not None else None
        listen = normalize_language(msg.listen) if msg.listen is not None else None
        participant = await self.rooms.update(
            conn.room_id, participant.id, name=name, spoken=spoken, listen=listen
        )
        if conn.participant is None or conn.participant.id != participant.id:
            return  # left meanwhile
        conn.participant = participant
        await self.broadcast(
            conn.room_id, server_message("participant-updated", participant=participant.to_wire())
        )
        self._room_changed(conn.room_id)

    async def _prefs(self, conn: ClientConnection, msg: Prefs) -> None:
        participant = conn.participant
        assert participant is not None and conn.room_id is not None
        video_before = participant.video
        participant = await self.rooms.set_prefs(
            conn.room_id,
            participant.id,
            dub=msg.dub,
            original_volume=msg.original_volume,
            video=msg.video,
        )
        if conn.participant is None or conn.participant.id != participant.id:
            return  # left meanwhile
        conn.participant = participant
        if participant.video != video_before:
            # The others' pages stop (or resume) sending their video to this participant.
            await self.broadcast(
                conn.room_id,
                server_message("participant-updated", participant=participant.to_wire()),
            )
        self.media.set_prefs(
            conn.room_id, participant.id, participant.dub, participant.original_volume
        )
        await self.send(
            conn,
            server_message(
                "prefs",
                dub=participant.dub,
                original_volume=participant.original_volume,
                video=participant.video,
            ),
        )

    async def _leave_message(self, conn: ClientConnection, msg: Leave) -> None:
        self._leaving += 1
        try:
            await self.drop(conn, "left")
            await self.send(conn, server_message("left"))
        finally:
            self._leaving -= 1

    async def _ping(self, conn: ClientConnection, msg: Ping) -> None:
        await self.send(conn, server_message("pong", id=msg.id))

    @property
    def leaving(self) -> int:
        """Leaves in progress: out of the room already, their media and messages not done yet."""
        return self._leaving

    def members(self, room_id: str) -> list[ClientConnection]:
        """The connections in ``room_id`` on this server, in join order."""
        return list(self._members.get(room_id, {}).values())

    async def drop(self, conn: ClientConnection, reason: str, *, tell_others: bool = True) -> None:
        """Take ``conn``'s participant out of its room: the store, the media and (unless the
        whole room is going) a ``participant-left`` to the others."""
        participant, room_id = conn.participant, conn.room_id
        if participant is None or room_id is None:
            return
        conn.participant, conn.room_id = None, None
        if self._by_participant.get(participant.id) is conn:
            del self._by_participant[participant.id]
        members = self._members.get(room_id, {})
        members.pop(participant.id, None)
        if not members:
            self._members.pop(room_id, None)
        self._leaving += 1
        try:
            try:
                await self.rooms.leave(room_id, participant.id, revoke=reason == "removed")
            except Exception as exc:  # the store is unreachable: the call still ends here
                log.warning(
                    "room store failed a leave; the place frees when the room expires",
                    extra={"room": room_id, "participant": participant.id, "error": repr(exc)},
                )
            await self.media.remove(room_id, participant.id, reason)
            log.info(
                "left", extra={"room": room_id, "participant": participant.id, "reason": reason}
            )
            if tell_others:
                await self.broadcast(
                    room_id,
                    server_message(
                        "participant-left", participant_id=participant.id, reason=reason
                    ),
                )
            self._room_changed(room_id)
        finally:
            self._leaving -= 1

    # --- validation ---------------------------------------------------------------------------

    def _check_name(self, raw: str) -> str:
        return check_name(raw, self.limits.name_max_length)

    def _check_sdp(self, sdp: str) -> None:
        # surrogatepass: JSON can carry a lone surrogate, which plain UTF-8 cannot encode.
        if len(sdp.encode("utf-8", "surrogatepass")) > self.limits.sdp_max_bytes:
            raise SignalingError(
                ErrorCode.SDP_TOO_LARGE,
                f"SDP is larger than the limit of {self.limits.sdp_max_bytes} bytes",
            )
        if not sdp.lstrip().startswith("v="):
            raise SignalingError(ErrorCode.SDP_INVALID, "the description is not SDP")

    # --- sending ------------------------------------------------------------------------------

    async def _refuse(
        self, conn: ClientConnection, error: SignalingError, kind: str | None = None
    ) -> None:
        conn.errors += 1
        await self._send_error(conn, error, kind)
        if conn.errors >= self.limits.max_protocol_errors and not conn.ws.closed:
            log.info("closing after too many protocol errors", extra=conn.log_fields())
            await conn.ws.close(code=CloseCode.TOO_MANY_ERRORS, message=b"too many errors")

    async def _send_error(
        self, conn: ClientConnection, error: SignalingError, kind: str | None
    ) -> None:
        self.metrics.error(error.code)
        log.info(
            "protocol error",
            extra={**conn.log_fields(), "code": str(error.code), "detail": error.message},
        )
        await self.send(
            conn,
            server_message(
                "error",
                code=str(error.code),
                message=error.message,
                retry=error.retry,
                in_reply_to=kind,
            ),
        )

    async def send(self, conn: ClientConnection, message: dict[str, Any]) -> None:
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, RuntimeError) as exc:
            # The socket went away mid-send; its handler's finally block cleans up.
            log.debug("send failed", extra={**conn.log_fields(), "error": str(exc)})

    async def broadcast(
        self, room_id: str, message: dict[str, Any], exclude: str | None = None
    ) -> None:
        for pid, target in list(self._members.get(room_id, {}).items()):
            if pid != exclude:
                await self.send(target, message)

    def _room_changed(self, room_id: str) -> None:
        for hook in self.room_hooks:
            self._spawn(self._run_hook(hook, room_id))

    async def _run_hook(self, hook: Callable[[str], Awaitable[None]], room_id: str) -> None:
        try:
            await hook(room_id)
        except Exception:  # a hook's failure is its own: the room and the call go on
            log.exception("room hook failed", extra={"room": room_id})

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
