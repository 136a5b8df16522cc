"""Inference workers as real processes: a media node whose engines run on ``callserver worker``.

Callers who reach one room through two nodes hear each other translated by the workers; a
worker killed with SIGKILL while it holds an utterance loses nothing: the other claims the job,
and the listener gets the caption and the dub once.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from callserver.probe import ScriptedCaller, load_wav_48k
from models.remote.queue import JobQueue
from models.stt.audio import decode_audio
from models.wire import recognition_to_fields
from tests.cluster_helpers import start_node
from tests.conftest import CLIPS, REDIS_URL, wait_for
from tests.pipeline_helpers import finals, latencies, received_between, rms, speech_then_silence
from tests.process_helpers import terminate

TIMEOUT = 90.0


class Workers:
    """``callserver worker`` processes sharing one queue (their logs in ``logs``)."""

    def __init__(self, prefix: str, logs: Path) -> None:
        self.prefix, self.logs = prefix, logs
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str) -> None:
        env = {
            **os.environ,
            "CALLSERVER_REDIS_URL": REDIS_URL,
            "CALLSERVER_CLUSTER_KEY_PREFIX": self.prefix,
            "CALLSERVER_WORKER_CONSUMER": name,
            "CALLSERVER_WORKER_SLOTS": "1",
            "CALLSERVER_WORKER_CLAIM_IDLE_S": "1",
        }
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callserver", "worker",
                stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
            )  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"is taking jobs" in line, (self.logs / f"{name}.log").read_text()
        self.procs[name] = proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    async def stop(self) -> None:
        for proc in self.procs.values():
            await terminate(proc)


@pytest.fixture
async def workers(redis_prefix: str, tmp_path: Path) -> AsyncIterator[Workers]:
    running = Workers(redis_prefix, tmp_path)
    yield running
    await running.stop()


async def test_callers_on_two_nodes_hear_each_other_translated_and_a_killed_worker_loses_nothing(
    workers: Workers, redis_prefix: str
) -> None:
    # Two media nodes and two workers, separate processes, one Redis.
    await asyncio.gather(workers.start("worker-1"), workers.start("worker-2"))
    settings = {
        "CALLSERVER_TRANSLATE_CALLS": "true",
        "CALLSERVER_PRELOAD_ENGINES": "true",  # ready once a worker has published its engines
        "CALLSERVER_CLUSTER_REMOTE_ENGINES": "true",
        "CALLSERVER_CLUSTER_JOB_BUDGET_S": "60",
        # One recognition job per utterance, so the job the test waits for is the utterance.
        "CALLSERVER_PIPELINE_INTERIM_CAPTIONS": "false",
        "CALLSERVER_PIPELINE_EARLY_RECOGNITION": "false",
    }
    nodes = await asyncio.gather(
        start_node("node-a", redis_prefix, **settings),
        start_node("node-b", redis_prefix, **settings),
    )
    queue = JobQueue(REDIS_URL, prefix=redis_prefix)
    try:
        async with aiohttp.ClientSession() as session:
            ann = ScriptedCaller(nodes[0].url, session, name="Ann", spoken="en", listen="en")
            ben = ScriptedCaller(nodes[1].url, session, name="Ben", spoken="es", listen="es")
            await ann.join("worker-room")
            await ben.join("worker-room")
            # Through different nodes, into one call on the room's node.
            assert ann.base_url == ben.base_url and len(ann.redirects + ben.redirects) == 1
            await asyncio.gather(ann.start_media(), ben.start_media())
            ann.play(speech_then_silence(load_wav_48k(str(CLIPS[1]))))

            # Whichever worker takes the utterance's recognition is killed holding it.
            async with asyncio.timeout(TIMEOUT):
                while not (holders := await queue.holders("stt")):
                    await asyncio.sleep(0.01)
            (doomed,) = holders
            workers.procs[doomed].send_signal(signal.SIGKILL)
            await workers.procs[doomed].wait()
            assert await queue.holders("stt") == {doomed: 1}  # still the dead worker's

            await wait_for(lambda: bool(latencies(ben)), TIMEOUT)

            async def dubbed_frames() -> float:
                async with session.get(ben.base_url + "/metrics") as resp:
                    text = await resp.text()
                line = next(x for x in text.splitlines() if x.startswith("callserver_dub_frames"))
                return float(line.split()[-1])

            async with asyncio.timeout(TIMEOUT):
                while await dubbed_frames() < 25:  # half a second of Spanish speech mixed
                    await asyncio.sleep(0.1)
            # Whatever a second answer would bring would come within this: nothing may.
            await asyncio.sleep(3.0)
            # One utterance, translated once (its caption comes first untranslated, as always).
            shown = finals(ben, ann)
            assert len({e["utterance_id"] for e in shown}) == 1, shown
            (caption,) = [e for e in shown if e["translations"].get("es")]
            spanish = caption["translations"]["es"].lower()
            # Words, not spaces: Apertium joins some ("enfermo-hombre" for "ill-disposed man").
            assert {"hombre", "joven"} <= set(re.findall(r"\w+", spanish)), spanish
            assert len(latencies(ben)) == 1
            assert await queue.pending("stt") == 0
            assert await queue.dead_letters("stt") == []
            assert rms(received_between(ben, ann.play_started[-1])) > 300
            await asyncio.gather(ann.close(), ben.close())
    finally:
        await queue.aclose()
        for node in nodes:
            await terminate(node.proc)


async def test_a_draining_worker_finishes_what_it_holds_and_takes_nothing_new(
    workers: Workers, redis_prefix: str
) -> None:
    await workers.start("drainer")
    queue = JobQueue(REDIS_URL, prefix=redis_prefix)
    try:
        audio = decode_audio(CLIPS[1].read_bytes(), 30.0)
        held = await queue.submit("stt", recognition_to_fields(audio, "en", None, False), "n", 60)
        async with asyncio.timeout(TIMEOUT):
            while await queue.pending("stt") == 0:
                await asyncio.sleep(0.01)
        workers.procs["drainer"].send_signal(signal.SIGTERM)
        # Queued after the drain began: it must stay for another worker.
        later = await queue.submit("stt", recognition_to_fields(audio, "en", None, False), "n", 60)
        assert await asyncio.wait_for(workers.procs["drainer"].wait(), TIMEOUT) == 0
        _, answers = await queue.results("n", after="0-0", block_ms=1)
        assert [job_id for job_id, _ in answers] == [held]
        assert b"young man" in answers[0][1]["meta"]
        assert await queue.pending("stt") == 0
        # The later job was never taken: the next worker gets it.
        await workers.start("next")
        async with asyncio.timeout(TIMEOUT):
            while len((await queue.results("n", after="0-0", block_ms=1))[1]) < 2:
                await asyncio.sleep(0.1)
        _, answers = await queue.results("n", after="0-0", block_ms=1)
        assert [job_id for job_id, _ in answers] == [held, later]
        assert "worker drained" in workers.log("drainer")
    finally:
        await queue.aclose()
