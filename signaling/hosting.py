"""What a room's host may do: lock the room, remove or mute a participant, end the call.

The hub checks that the sender hosts the room before any of these run (``not_host``); each
action goes through the room store first, so every node and every page sees one outcome, and
then tells the people in the room (docs/protocol.md, "Hosted rooms").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from signaling.errors import ErrorCode, SignalingError
from signaling.protocol import End, Lock, Mute, Remove, server_message

if TYPE_CHECKING:
    from signaling.connection import ClientConnection
    from signaling.hub import SignalingHub

log = logging.getLogger(__name__)


def host_key_invalid() -> SignalingError:
    return SignalingError(
        ErrorCode.HOST_KEY_INVALID,
        "this host key is not the room's (it may be from another room, or from one that ended)",
    )


class HostActions:
    """The host messages of one hub; ``conn`` is always a joined host's connection."""

    def __init__(self, hub: SignalingHub) -> None:
        self._hub = hub

    async def check_key(self, room_id: str, key: str) -> None:
        """Refuse a join whose ``host_key`` is not ``room_id``'s host credential."""
        room = await self._hub.rooms.get(room_id)
        if room is None or not room.host_key_matches(key):
            raise host_key_invalid()

    def _target(self, conn: ClientConnection, participant_id: str) -> ClientConnection:
        assert conn.room_id is not None
        for member in self._hub.members(conn.room_id):
            if member.participant is not None and member.participant.id == participant_id:
                return member
        raise SignalingError(
            ErrorCode.PEER_NOT_FOUND, f"no participant {participant_id[:40]!r} in this room"
        )

    @staticmethod
    def _host_name(conn: ClientConnection) -> str:
        assert conn.participant is not None
        return conn.participant.name

    async def lock(self, conn: ClientConnection, msg: Lock) -> None:
        assert conn.room_id is not None
        room = await self._hub.rooms.set_locked(conn.room_id, msg.locked)
        log.info("room locked" if msg.locked else "room unlocked", extra=conn.log_fields())
        await self._hub.broadcast(room.id, server_message("room-updated", room=room.to_wire()))

    async def remove(self, conn: ClientConnection, msg: Remove) -> None:
        target = self._target(conn, msg.participant)
        if target is conn:
            raise SignalingError(
                ErrorCode.PEER_NOT_FOUND, "a host cannot remove themselves; send 'leave'"
            )
        log.info("participant removed", extra={**conn.log_fields(), "target": msg.participant})
        await self._hub.send(target, server_message("removed", by=self._host_name(conn)))
        await self._hub.drop(target, "removed")

    async def mute(self, conn: ClientConnection, msg: Mute) -> None:
        assert conn.room_id is not None
        target = self._target(conn, msg.participant)
        participant = await self._hub.rooms.set_muted(conn.room_id, msg.participant, msg.muted)
        if target.participant is None or target.participant.id != participant.id:
            return  # left while the store answered
        target.participant = participant
        self._hub.media.set_muted(conn.room_id, participant.id, participant.muted)
        log.info(
            "participant muted" if msg.muted else "participant unmuted",
            extra={**conn.log_fields(), "target": msg.participant},
        )
        await self._hub.broadcast(
            conn.room_id, server_message("participant-updated", participant=participant.to_wire())
        )

    async def end(self, conn: ClientConnection, msg: End) -> None:
        room_id = conn.room_id
        assert room_id is not None
        await self._hub.rooms.end(room_id)
        log.info("call ended by host", extra=conn.log_fields())
        ended = server_message("ended", by=self._host_name(conn))
        for member in self._hub.members(room_id):
            await self._hub.send(member, ended)
            await self._hub.drop(member, "ended", tell_others=False)
