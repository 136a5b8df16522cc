"""The aiohttp application: routes, shared state and its start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from callserver.api.routes import api_routes
from callserver.api.stats import RequestStats
from callserver.api.transcript import transcript_routes
from callserver.cluster import (
    ClusterSettings,
    MediaNode,
    default_node_id,
    node_url,
    remote_engines,
)
from callserver.engines import EngineSet
from callserver.ice import use_host_addresses
from callserver.media.dub import DubSettings
from callserver.media.offer_check import OfferLimits
from callserver.media.plane import MediaLimits, MediaPlane
from callserver.media.room_clock import TickSettings
from callserver.metrics import Metrics
from callserver.ops import ops_routes
from callserver.pairs import language_pairs
from callserver.pipeline.endpoint import EndpointSettings
from callserver.pipeline.hub import TranslationHub
from callserver.pipeline.latency import PipelineMetrics
from callserver.pipeline.memory_transcript import MemoryTranscriptStore
from callserver.pipeline.pair_notices import PairNotices
from callserver.pipeline.redis_transcript import RedisTranscriptStore
from callserver.pipeline.settings import PipelineSettings
from callserver.pipeline.transcript import TranscriptStore, TranscriptUnavailable
from callserver.settings import Settings
from models.cache import CacheSettings
from models.metrics import EngineMetrics
from signaling.connection import HubLimits
from signaling.errors import ErrorCode, SignalingError
from signaling.http import PairsProvider, RoomRoutesOptions, client_address, rooms_routes
from signaling.hub import SignalingHub
from signaling.memory_rooms import MemoryRoomStore
from signaling.redis_rooms import RedisRoomStore
from signaling.rooms import RoomLimits, RoomStore
from signaling.tokens import verify_token

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """Mutable server-wide state: warming its engines up at start, or draining for shutdown."""

    warming: bool = False
    draining: bool = False
    #: Distributed mode: the cluster's Redis did not answer the last heartbeat.
    detached: bool = False

    @property
    def readiness(self) -> str:
        """``ready``, ``starting`` (engines still loading), ``draining`` or ``detached`` (the
        cluster's Redis is unreachable: no new joins can be placed), for /readyz."""
        if self.draining:
            return "draining"
        if self.detached:
            return "detached"
        return "starting" if self.warming else "ready"


SETTINGS = web.AppKey("settings", Settings)
ENGINES = web.AppKey("engines", EngineSet)
TRANSCRIPTS = web.AppKey("transcripts", TranscriptStore)
TRANSLATION = web.AppKey("translation", TranslationHub)
NOTICES = web.AppKey("notices", PairNotices)
METRICS = web.AppKey("metrics", Metrics)
ROOMS = web.AppKey("rooms", RoomStore)
MEDIA = web.AppKey("media", MediaPlane)
HUB = web.AppKey("hub", SignalingHub)
STATE = web.AppKey("state", ServerState)


def build_app(
    settings: Settings | None = None,
    *,
    engines: EngineSet | None = None,
    pipeline: PipelineSettings | None = None,
    endpoint: EndpointSettings | None = None,
    cluster: ClusterSettings | None = None,
) -> web.Application:
    """Assemble the server; nothing runs until the application starts.

    ``engines``, ``pipeline`` and ``endpoint`` default to what the environment configures;
    tests pass their own (a small translation model, for instance).
    """
    settings = settings if settings is not None else Settings()
    pipeline = pipeline if pipeline is not None else PipelineSettings()
    use_host_addresses(settings.ice_host_addresses)
    metrics = Metrics()
    state = ServerState()
    cluster = cluster if cluster is not None else ClusterSettings()
    limits = RoomLimits(
        default_capacity=settings.room_capacity,
        max_capacity=settings.room_max_capacity,
        max_rooms=settings.max_rooms,
        empty_ttl_s=settings.room_empty_ttl_s,
    )
    redis_url = CacheSettings().redis_url if cluster.enabled else None
    if cluster.enabled and not redis_url:
        raise ValueError("CALLSERVER_CLUSTER_ENABLED needs CALLSERVER_REDIS_URL")
    rooms: RoomStore = (
        RedisRoomStore(redis_url, limits, prefix=cluster.key_prefix)
        if redis_url
        else MemoryRoomStore(limits)
    )
    media = MediaPlane(
        MediaLimits(
            sdp_max_bytes=settings.sdp_max_bytes,
            offer=OfferLimits(
                max_media_sections=settings.sdp_max_media_sections,
                max_candidates=settings.sdp_max_candidates,
            ),
            connect_timeout_s=settings.pc_connect_timeout_s,
            close_timeout_s=settings.pc_close_timeout_s,
            mixer_max_queue_frames=settings.mixer_max_queue_frames,
            mixer_prebuffer_frames=settings.mixer_prebuffer_frames,
            stun_urls=tuple(settings.server_stun_urls),
            ticks=TickSettings(
                arrival_margin_s=settings.mixer_arrival_margin_ms / 1000,
                arrival_quantile=settings.mixer_arrival_quantile,
            ),
            dub=DubSettings(
                dub_gain=settings.dub_gain,
                duck_db=settings.dub_duck_db,
                duck_ramp_ms=settings.dub_duck_ramp_ms,
                speedup_backlog_s=settings.dub_speedup_backlog_s,
                speedup_release_s=settings.dub_speedup_backlog_s / 2,
                max_speedup=settings.dub_max_speedup,
                skip_backlog_s=settings.dub_skip_backlog_s,
            ),
        ),
        on_peer_state=lambda state_name: metrics.peer_states.labels(state_name).inc(),
    )
    hub = SignalingHub(
        HubLimits(
            ws_max_message_bytes=settings.ws_max_message_bytes,
            ws_heartbeat_s=settings.ws_heartbeat_s,
            sdp_max_bytes=settings.sdp_max_bytes,
            ice_candidate_max_bytes=settings.ice_candidate_max_bytes,
            name_max_length=settings.name_max_length,
            joins_per_minute=settings.joins_per_minute,
            messages_per_second=settings.messages_per_second,
            max_protocol_errors=settings.max_protocol_errors,
            join_secret=(
                settings.join_secret.get_secret_value().encode("utf-8")
                if settings.join_secret
                else None
            ),
            join_token=settings.join_token_options(),
            token_ttl_s=settings.token_ttl_s,
            ice_servers=settings.ice_servers(),
        ),
        rooms,
        media,
        metrics,
        is_draining=lambda: state.draining,
        client_address=lambda request: client_address(request, settings.trust_forwarded_for),
    )
    node: MediaNode | None = None
    if redis_url:
        node = MediaNode(
            cluster.node_id or default_node_id(settings.port),
            node_url(cluster, settings.public_url, settings.host, settings.port),
            cluster,
            redis_url,
            rooms,
            participants=lambda: hub.participant_count,
            draining=lambda: state.draining,
            on_reachable=lambda ok: setattr(state, "detached", not ok),
        )
        hub.placement = node.placement
    media.on_peer_closed = hub.media_closed
    media.on_peer_failure = lambda where, error: metrics.peer_failures.labels(where, error).inc()
    metrics.rooms.set_function(lambda: hub.room_count)
    metrics.participants.set_function(lambda: hub.participant_count)
    metrics.peer_connections.set_function(lambda: media.peer_count)
    metrics.ready.set_function(lambda: 1 if state.readiness == "ready" else 0)
    metrics.watch_mixers(lambda: media.stats)

    app = web.Application(client_max_size=settings.ws_max_message_bytes)
    app[SETTINGS], app[METRICS], app[ROOMS] = settings, metrics, rooms
    app[MEDIA], app[HUB], app[STATE] = media, hub, state
    app.add_routes([web.get("/ws", hub.handle)])

    async def pairs() -> dict[str, Any]:
        # The engines are chosen further down.
        return await language_pairs(app[ENGINES], pipeline.whisper_translate)

    app.add_routes(rooms_routes(rooms, _room_routes_options(settings, pairs)))
    app.add_routes(ops_routes(metrics, lambda: state.readiness))
    stats = RequestStats()
    if engines is None:
        engines = (
            remote_engines(redis_url, node.node_id, cluster, EngineMetrics(metrics.registry))
            if node is not None and redis_url and cluster.remote_engines
            else EngineSet(EngineMetrics(metrics.registry))
        )
    engines.on_mt_lookup = lambda hit: stats.cache_lookup("mt", hit)
    app[ENGINES] = engines
    transcripts: TranscriptStore = (
        RedisTranscriptStore(
            redis_url,
            max_entries=pipeline.transcript_max_entries,
            ttl_s=cluster.transcript_ttl_s,
            prefix=cluster.key_prefix,
            on_lost=lambda reason: metrics.transcript_entries_lost.labels(reason).inc(),
        )
        if redis_url
        else MemoryTranscriptStore(pipeline.transcript_max_entries)
    )
    app[TRANSCRIPTS] = transcripts
    if settings.translate_calls:
        translation = TranslationHub(
            pipeline,
            endpoint if endpoint is not None else EndpointSettings(),
            engines,
            media,
            participants=hub.participants_of,
            metrics=PipelineMetrics(metrics.registry),
            on_final=transcripts.record,
        )
        media.taps.append(translation.on_frame)
        media.closed_hooks.append(translation.on_peer_closed)
        # The plane stops a muted speaker's frames; only the pipeline can end the speech they
        # were in the middle of.
        media.mute_hooks.append(translation.on_muted)
        app[TRANSLATION] = translation
        notices = PairNotices(engines, media, hub.participants_of, pipeline.whisper_translate)
        hub.room_hooks.append(notices.refresh)
        media.ready_hooks.append(notices.on_ready)
        app[NOTICES] = notices
    app.add_routes(transcript_routes(transcripts.read, functools.partial(_read_refusal, hub)))
    app.add_routes(
        api_routes(
            engines,
            stats,
            settings.api_max_upload_bytes,
            settings.api_max_texts,
            pipeline.whisper_translate,
        )
    )
    app.add_routes(_page_routes(settings))
    if node is not None:
        app.cleanup_ctx.append(lambda _: node.run())
    app.cleanup_ctx.append(_room_sweeper)
    app.cleanup_ctx.append(_engines)
    app.on_shutdown.append(_close_calls)
    return app


def _room_routes_options(settings: Settings, pairs: PairsProvider) -> RoomRoutesOptions:
    return RoomRoutesOptions(
        join_secret=settings.join_secret.get_secret_value() if settings.join_secret else None,
        token_ttl_s=settings.token_ttl_s,
        join_token=settings.join_token_options(),
        public_url=settings.public_url,
        trust_forwarded_for=settings.trust_forwarded_for,
        ice_servers=settings.ice_servers(),
        name_max_length=settings.name_max_length,
        title_max_length=settings.room_title_max_length,
        pairs=pairs,
    )


def _page_routes(settings: Settings) -> list[web.AbstractRouteDef]:
    index = settings.web_dir / "index.html"

    demo = settings.web_dir / "demo.html"

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    async def demo_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(demo, headers={"Cache-Control": "no-cache"})

    return [
        web.get("/", page),
        web.get("/demo", demo_page),
        web.static("/static", settings.web_dir),
    ]


async def _room_sweeper(app: web.Application) -> AsyncIterator[None]:
    settings, rooms, hub = app[SETTINGS], app[ROOMS], app[HUB]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(settings.room_sweep_interval_s)
            try:
                expired = await rooms.sweep()
            except Exception as exc:  # a shared store that is unreachable: try next time
                log.warning("room sweep failed; retried next interval", extra={"error": repr(exc)})
                expired = []
            for room_id in expired:
                try:
                    await app[TRANSCRIPTS].discard(room_id)
                except TranscriptUnavailable as exc:  # its expiry in the store removes it later
                    log.warning(
                        "transcript discard failed", extra={"room": room_id, "error": str(exc)}
                    )
            hub.join_limiter.prune()

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _engines(app: web.Application) -> AsyncIterator[None]:
    engines, state = app[ENGINES], app[STATE]

    async def warm_up() -> None:
        # Not ready until the model is loaded, so a load balancer or a rolling update sends the
        # first call to a server that answers it at full speed.
        state.warming = True
        try:
            await engines.warm_up()
        finally:
            state.warming = False

    warm = asyncio.create_task(warm_up()) if app[SETTINGS].preload_engines else None
    yield
    if warm is not None:
        warm.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await warm
    await engines.close()


def _read_refusal(hub: SignalingHub, request: web.Request, room_id: str) -> str | None:
    """Why a transcript download is refused: with a join secret it needs the room's token.

    The codes are the ones a join with that token gets (docs/protocol.md).
    """
    secret = hub.limits.join_secret
    if secret is None:
        return None
    token = request.query.get("token", "")
    if not token:
        return ErrorCode.TOKEN_REQUIRED.value
    try:
        verify_token(secret, token, room_id, hub.limits.join_token)
    except SignalingError as exc:
        return exc.code.value
    return None


async def _close_calls(app: web.Application) -> None:
    await app[HUB].close_all()
    if TRANSLATION in app:
        await app[NOTICES].close()
        await app[TRANSLATION].close()
    await app[MEDIA].close()
    # After the pipeline has closed, so no final caption comes after the last write.
    await app[TRANSCRIPTS].aclose()
    await app[ROOMS].aclose()
