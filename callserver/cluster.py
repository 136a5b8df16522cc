"""The distributed mode's media node: room state in Redis, rooms placed across live nodes.

With ``CALLSERVER_CLUSTER_ENABLED=true`` (and ``CALLSERVER_REDIS_URL``) every ``callserver
serve`` is a media node: rooms and participants live in Redis (``RedisRoomStore``), the node
announces itself on a heartbeat (``RedisNodeRegistry``), and a join for a room another node
holds is answered with a ``redirect`` to that node (docs/distributed.md says why a redirect
and not a relay). Without it nothing changes: one process, rooms in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from callserver.engines import EngineSet
from models.env import EnvSettings
from models.metrics import EngineMetrics
from models.remote.engines import (
    RemoteClient,
    RemoteRecognizer,
    RemoteSynthesizer,
    RemoteTranslator,
)
from models.stt.settings import SttSettings
from signaling.nodes import NodeInfo, RedisNodeRegistry
from signaling.placement import ClusterPlacement
from signaling.rooms import RoomStore

log = logging.getLogger(__name__)


class ClusterSettings(EnvSettings):
    """Options of the distributed mode (off by default)."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_CLUSTER_", extra="ignore", frozen=True)

    enabled: bool = Field(
        False,
        description="Run as a media node of a cluster: rooms in Redis (CALLSERVER_REDIS_URL), "
        "placed across the live nodes.",
    )
    node_id: str | None = Field(
        None, description="This node's id in the registry. Default: host name, port, random."
    )
    node_url: str | None = Field(
        None,
        description="URL browsers reach this node at (its own route or host address); joins "
        "for its rooms are redirected there. Default: CALLSERVER_PUBLIC_URL.",
    )
    heartbeat_s: float = Field(
        1.0, gt=0, description="How often the node refreshes its registry entry."
    )
    node_expiry_s: float = Field(
        5.0,
        gt=0,
        description="A node whose entry is older than this is out: its rooms are placed again "
        "at their next join.",
    )
    node_max_participants: int = Field(
        200, ge=1, description="Participants at which a node takes no new rooms."
    )
    key_prefix: str = Field(
        "callserver:",
        description="Prefix of the cluster's Redis keys (rooms, transcripts, nodes, jobs); the "
        "same on every node and worker.",
    )
    remote_engines: bool = Field(
        False,
        description="Send recognition, translation and synthesis to inference workers "
        "(`callserver worker`) instead of running them in this node.",
    )
    job_budget_s: float = Field(
        10.0,
        gt=0,
        description="A job for the workers is dropped, not done late, once it has waited this "
        "long.",
    )
    transcript_ttl_s: float = Field(
        86_400.0,
        gt=0,
        description="A room's transcript (in Redis) is deleted when its room expires; this "
        "bounds how long one stays after its last caption when that delete never came (a node "
        "stopped in between). Keep it above the longest silence in a call.",
    )

    @field_validator("node_expiry_s")
    @classmethod
    def _expiry(cls, value: float, info: ValidationInfo) -> float:
        # One late heartbeat must not take a live node out.
        heartbeat = info.data.get("heartbeat_s")
        if heartbeat is not None and value < 2 * heartbeat:
            raise ValueError("must be at least twice CALLSERVER_CLUSTER_HEARTBEAT_S")
        return value


def default_node_id(port: int) -> str:
    """``host-port-xxxx``: readable in logs, unique across restarts."""
    return f"{socket.gethostname()}-{port}-{secrets.token_hex(2)}"


class MediaNode:
    """This process as a node: its heartbeat, and the placement of rooms on the live nodes."""

    def __init__(
        self,
        node_id: str,
        url: str,
        settings: ClusterSettings,
        redis_url: str,
        rooms: RoomStore,
        participants: Callable[[], int],
        draining: Callable[[], bool],
        on_reachable: Callable[[bool], None] = lambda ok: None,
    ) -> None:
        self.node_id, self.url, self.settings = node_id, url, settings
        self.registry = RedisNodeRegistry(
            redis_url, prefix=settings.key_prefix, expiry_s=settings.node_expiry_s
        )
        self.placement = ClusterPlacement(
            node_id, rooms, self.registry, settings.node_max_participants, draining=draining
        )
        self._participants = participants
        self._draining = draining
        self._on_reachable = on_reachable
        self._cpu_mark = (time.monotonic(), time.process_time())
        #: Whether the last heartbeat reached Redis (readiness reports it).
        self.registered = False

    def _entry(self) -> NodeInfo:
        wall, cpu = time.monotonic(), time.process_time()
        then_wall, then_cpu = self._cpu_mark
        self._cpu_mark = (wall, cpu)
        share = (cpu - then_cpu) / (wall - then_wall) if wall > then_wall else 0.0
        return NodeInfo(
            self.node_id,
            self.url,
            participants=self._participants(),
            cpu=share,
            draining=self._draining(),
        )

    async def beat(self) -> None:
        """One heartbeat; a failure is logged and the node is out until the next one works."""
        try:
            await self.registry.heartbeat(self._entry())
        except Exception as exc:  # Redis unreachable: retried on the next beat
            if self.registered:
                log.warning(
                    "node heartbeat failed; not ready until Redis answers",
                    extra={"node": self.node_id, "error": repr(exc)},
                )
            self.registered = False
            self._on_reachable(False)
            return
        if not self.registered:
            log.info("node registered", extra={"node": self.node_id, "url": self.url})
        self.registered = True
        self._on_reachable(True)

    async def run(self) -> AsyncIterator[None]:
        """Heartbeats while the server runs (an aiohttp cleanup context); leaves at the end."""
        await self.beat()

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.settings.heartbeat_s)
                await self.beat()

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.registry.remove(self.node_id)
                log.info("node left the registry", extra={"node": self.node_id})
            await self.registry.aclose()


def remote_engines(
    redis_url: str, node_id: str, settings: ClusterSettings, metrics: EngineMetrics
) -> EngineSet:
    """An engine set whose engines run on the inference workers."""
    client = RemoteClient(
        redis_url, node_id, prefix=settings.key_prefix, budget_s=settings.job_budget_s
    )
    return EngineSet(
        metrics,
        recognizer=RemoteRecognizer(client, SttSettings().max_audio_s),
        translator=RemoteTranslator(client),
        synthesizer=RemoteSynthesizer(client),
    )


def node_url(settings: ClusterSettings, public_url: str | None, host: str, port: int) -> str:
    """Where browsers reach this node: the setting, the public URL, or the bound address."""
    if settings.node_url:
        return settings.node_url.rstrip("/")
    if public_url:
        return public_url.rstrip("/")
    # Bound to every interface: loopback is the one address sure to be this machine's.
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    return f"http://{shown}:{port}"
