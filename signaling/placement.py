"""Which media node holds a room's calls.

A room's callers must all reach the one process that mixes them, so a room belongs to exactly
one node (``RoomStore.claim`` / ``reassign`` make that atomic across nodes). The embedded
server is the one node (``LocalPlacement``). In the distributed mode (``ClusterPlacement``) a
room is placed at its first join on a live node with room to spare, the less loaded of two
picked at random ("power of two choices": near the least-loaded without every node stampeding
to the same one); a room whose owner stopped heartbeating is placed again at its next join.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Protocol

from signaling.errors import ErrorCode, SignalingError
from signaling.nodes import NodeInfo, RedisNodeRegistry
from signaling.rooms import RoomStore

log = logging.getLogger(__name__)


class Placement(Protocol):
    """Finds the node that holds a room, placing it if it has none."""

    #: Whether joins can be sent to another node (a draining node then still redirects).
    can_redirect: bool

    async def owner(self, room_id: str) -> NodeInfo | None:
        """The node that holds ``room_id``'s calls; None: this one. ``nodes_full`` (retryable)
        when the room has no live owner and every node is full or draining."""
        ...


class LocalPlacement:
    """The embedded server: every room is this process's."""

    can_redirect = False

    async def owner(self, room_id: str) -> NodeInfo | None:
        return None


class ClusterPlacement:
    """Rooms placed on the live nodes of a ``RedisNodeRegistry``."""

    can_redirect = True

    def __init__(
        self,
        node_id: str,
        rooms: RoomStore,
        nodes: RedisNodeRegistry,
        max_participants: int,
        choose: random.Random | None = None,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.node_id = node_id
        self._draining = draining
        self.rooms = rooms
        self.nodes = nodes
        self.max_participants = max_participants
        self._random = choose or random.Random()

    async def owner(self, room_id: str) -> NodeInfo | None:
        room = await self.rooms.get(room_id) or await self.rooms.create(room_id=room_id)
        live = {node.id: node for node in await self.nodes.live()}
        owner_id = room.owner
        if owner_id is None or owner_id not in live:
            chosen = self._choose(list(live.values()))
            owner_id = await self.rooms.reassign(room_id, room.owner, chosen.id)
            if owner_id == chosen.id:
                log.info(
                    "room placed",
                    extra={"room": room_id, "node": chosen.id, "previous": room.owner},
                )
        if owner_id is None or owner_id == self.node_id:
            return None
        node = live.get(owner_id)
        if node is None:  # placed by another node on one that left in between: next try
            raise SignalingError(ErrorCode.NODES_FULL, "the room's node just left; try again")
        return node

    def _choose(self, live: list[NodeInfo]) -> NodeInfo:
        # This node's own drain counts from its start, not from its next heartbeat.
        open_nodes = [
            n
            for n in live
            if not n.draining
            and n.participants < self.max_participants
            and not (n.id == self.node_id and self._draining())
        ]
        if not open_nodes:
            raise SignalingError(
                ErrorCode.NODES_FULL, "every media node is full or draining; try again shortly"
            )
        pair = self._random.sample(open_nodes, min(2, len(open_nodes)))
        # CPU to a tenth of a core: finer differences are noise, and a tie must not send
        # every room to the same node.
        return min(pair, key=lambda n: (n.participants, round(n.cpu, 1), self._random.random()))
