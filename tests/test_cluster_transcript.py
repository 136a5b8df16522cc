"""Transcripts in the distributed mode: in Redis, served by any node, outliving the node that
held the call, and refused in words (503, retryable) while Redis does not answer.

Node A is an application in this process, so the test can hand its pipeline a final caption
without running speech engines; node B is a real ``callserver serve`` process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from callserver.app import TRANSCRIPTS, TRANSLATION, build_app
from callserver.cluster import ClusterSettings
from callserver.pipeline.transcript import TranscriptEntry
from signaling.redis_rooms import RedisRoomStore
from signaling.rooms import RoomLimits
from tests.cluster_helpers import EXPIRY_S, start_node
from tests.conftest import REDIS_URL, RunningServer, wait_for_async
from tests.conftest import test_settings as settings_for_tests
from tests.pipeline_helpers import sample, scrape
from tests.process_helpers import terminate
from tests.redis_helpers import SpareRedis

T0 = 1_764_230_000.25
ROOM = "transcript-room-1"


def entry(uid: str, start: float, text: str) -> TranscriptEntry:
    return TranscriptEntry(
        utterance_id=uid,
        speaker_id="p_ann",
        speaker_name="Ann",
        language="en",
        text=text,
        translations={"es": f"[es] {text}"},
        start=T0 + start,
        end=T0 + start + 1.0,
    )


class InProcessNode:
    """A media node served from this process on a free loopback port."""

    def __init__(self, app: web.Application, runner: web.AppRunner, url: str) -> None:
        self.app, self.runner, self.url = app, runner, url

    async def stop(self) -> None:
        await self.runner.cleanup()


@contextlib.asynccontextmanager
async def in_process_node(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, prefix: str, **overrides: Any
) -> AsyncIterator[InProcessNode]:
    monkeypatch.setenv("CALLSERVER_REDIS_URL", redis_url)
    cluster = ClusterSettings(
        enabled=True,
        node_id="node-a",
        node_url="http://127.0.0.1:9",  # never reached: nobody joins through it
        key_prefix=prefix,
        heartbeat_s=0.3,
        node_expiry_s=EXPIRY_S,
    )
    app = build_app(settings_for_tests(**overrides), cluster=cluster)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    node = InProcessNode(app, runner, f"http://127.0.0.1:{runner.addresses[0][1]}")
    try:
        yield node
    finally:
        await runner.cleanup()  # a second cleanup after stop() does nothing


async def download(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(f"{url}/api/rooms/{ROOM}/transcript.json") as response:
        return response.status, await response.json()


async def test_a_transcript_written_on_one_node_is_served_by_another_after_it_stops(
    monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> None:
    node_b = await start_node(
        "node-b",
        redis_prefix,
        CALLSERVER_ROOM_EMPTY_TTL_S="0.5",
        CALLSERVER_ROOM_SWEEP_INTERVAL_S="0.2",
    )
    rooms = RedisRoomStore(REDIS_URL, RoomLimits(), prefix=redis_prefix)
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with (
            in_process_node(monkeypatch, REDIS_URL, redis_prefix, translate_calls=True) as node_a,
            aiohttp.ClientSession() as session,
        ):
            _, ann = await rooms.join(ROOM, "Ann", "en", "es")
            # Node A's pipeline finishes two utterances of its call: what it hands on.
            on_final = node_a.app[TRANSLATION].translator.on_final
            assert on_final is not None
            on_final(ROOM, entry("u2", 2.0, "How are you?"))
            on_final(ROOM, entry("u1", 0.0, "Hello everyone."))

            async def b_has_both() -> bool:
                status, body = await download(session, node_b.url)
                return status == 200 and len(body["entries"]) == 2

            await wait_for_async(b_has_both)
            _, from_a = await download(session, node_a.url)
            _, from_b = await download(session, node_b.url)
            assert from_a == from_b
            assert from_b["room_id"] == ROOM and from_b["started_at"] == T0
            assert [(e["utterance_id"], e["text"]) for e in from_b["entries"]] == [
                ("u1", "Hello everyone."),
                ("u2", "How are you?"),
            ]
            assert from_b["entries"][0]["translations"] == {"es": "[es] Hello everyone."}

            # Node A stops right after a last caption: it writes it before it exits, and the
            # transcript of its call stays, whole, on B.
            on_final(ROOM, entry("u3", 3.0, "Bye."))
            await node_a.stop()
            status, after = await download(session, node_b.url)
            assert status == 200
            assert after["entries"][:2] == from_b["entries"]
            assert [e["text"] for e in after["entries"]] == [
                "Hello everyone.",
                "How are you?",
                "Bye.",
            ]

            # The room empties and expires: B's sweep forgets its transcript too.
            await rooms.leave(ROOM, ann.id)

            async def forgotten() -> bool:
                return (await download(session, node_b.url))[0] == 404

            await wait_for_async(forgotten)
            assert await redis.keys(f"{redis_prefix}transcript:*") == []
    finally:
        await redis.aclose()
        await rooms.aclose()
        await terminate(node_b.proc)


async def test_redis_down_loses_captions_in_words_and_downloads_answer_503(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis = SpareRedis(tmp_path, persistent=True)
    await redis.start()
    caplog.set_level(logging.WARNING)
    try:
        async with (
            in_process_node(monkeypatch, redis.url, "outage:") as node,
            aiohttp.ClientSession() as session,
        ):
            transcripts = node.app[TRANSCRIPTS]
            # What the pipeline's on_final calls.
            transcripts.record(ROOM, entry("u1", 0.0, "Before."))
            await transcripts.flush()
            status, body = await download(session, node.url)
            assert status == 200, body

            await redis.stop()
            transcripts.record(ROOM, entry("u2", 1.0, "During."))  # returns at once
            await transcripts.flush()
            metrics = await scrape(RunningServer(node.app, node.url, session))
            lost = sample(metrics, "callserver_transcript_entries_lost_total", reason="unreachable")
            assert lost == 1
            status, body = await download(session, node.url)
            assert status == 503
            assert body["error"]["code"] == "transcript_unavailable"
            assert body["error"]["retry"] is True
            assert "try again" in body["error"]["message"]

            await redis.start()
            transcripts.record(ROOM, entry("u3", 2.0, "After."))
            await transcripts.flush()
            status, body = await download(session, node.url)
            assert status == 200, body
            assert [e["text"] for e in body["entries"]] == ["Before.", "After."]
        assert "transcript entry lost" in caplog.text
        assert "Traceback" not in caplog.text
    finally:
        await redis.stop()
