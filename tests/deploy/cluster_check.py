"""The distributed-mode step of `make test-deploy`: compose.yaml + compose.cluster.yaml.

Run by tests/deploy/scenario.py after the compose step's ``down -v``: the overlay binds the
same host ports and names the same volumes. Debian's ``docker-compose`` brings up project
``cs-td-cluster`` with the shipped files and the compose step's variables (the locally built
images, Redis on ``TEST_DEPLOY_REDIS_PORT``, media on loopback), plus
``CALLSERVER_WORKER_METRICS_PORT``, which the overlay passes through to the worker. Only what a
call needs is started: ``secrets``, ``redis``, the media nodes ``callserver`` (:8080) and
``callserver-2`` (:8081), and ``--scale worker=1`` (one worker: the metrics port is on the host
network, where a second worker would collide on it; compose.cluster.yaml says why). Then:

- the persistent Redis runs as 999 on a new volume that took the stand-in image's /data owner
  (999:999), and writes its append-only file there;
- Docker reports the worker healthy (its healthcheck reads the health file), and
  ``callserver healthcheck --worker --ready`` passes in it (capabilities in Redis);
- both nodes answer ``/readyz`` 200 and are live in the cluster's registry, each with its
  own ``CALLSERVER_CLUSTER_NODE_URL`` (the overlay's defaults);
- Ann joins one room at :8080 and Beto at :8081: exactly one of them is redirected, both end
  on the room's node, and they hear each other; Ann's recorded speech comes to Beto as a final
  caption, and the worker's /metrics count the recognition jobs it ran
  (``callserver_worker_jobs_total{kind="stt",outcome="ok"}``, ``callserver_worker_batch_size``),
  the nodes running no model (``CALLSERVER_CLUSTER_REMOTE_ENGINES``);
- ``docker-compose down -v`` (registered in the cleanup, so it runs on failure too) leaves no
  container of the project and no volume that was not there before, anonymous ones included.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from callserver.media.frames import SAMPLE_RATE, silence
from callserver.probe import ScriptedCaller, load_wav_48k
from signaling.nodes import RedisNodeRegistry
from tests.deploy.calls import hears_each_other
from tests.deploy.compose_check import (
    COMPOSE_FILE,
    REDIS_PORT,
    VOLUMES,
    compose,
    compose_env,
    containers,
    healthy,
    one_container,
)
from tests.deploy.engine import (
    Cleanup,
    ScenarioError,
    container_logs,
    docker,
    http_status,
    inspect,
    port_free,
    step,
    wait_until,
)
from tests.media_helpers import tone

OVERLAY = COMPOSE_FILE.parent / "compose.cluster.yaml"
FILES = (COMPOSE_FILE, OVERLAY)
PROJECT = "cs-td-cluster"
SERVICES = ("secrets", "redis", "callserver", "callserver-2", "worker")
#: The overlay's node URLs at their defaults, which redirects point at.
NODES = {"callserver": "http://localhost:8080", "callserver-2": "http://localhost:8081"}
WORKER_METRICS_PORT = int(os.environ.get("TEST_DEPLOY_WORKER_METRICS_PORT", "9464"))
PORTS = {"node 1": 8080, "node 2": 8081, "redis": REDIS_PORT, "worker metrics": WORKER_METRICS_PORT}
#: The overlay's volumes beyond compose.yaml's; `down -v` must remove them all.
CLUSTER_VOLUMES = (*VOLUMES, "callserver-data-2", "callserver-cluster-redis-data")
#: tests/data: "he was not an ill disposed young man" (about 3 s).
SPEECH = (
    Path(__file__).resolve().parents[1] / "data" / "sense_and_sensibility_01_austen_64kb-0880.wav"
)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def worker_metrics(session: aiohttp.ClientSession) -> dict[str, float]:
    """The worker's samples, ``name{label=value,...}`` -> value (empty when it does not answer)."""
    url = f"http://127.0.0.1:{WORKER_METRICS_PORT}/metrics"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = float(sample.value)
    return samples


async def down(env: dict[str, str], volumes_before: set[str]) -> None:
    started = time.monotonic()
    await compose(env, "down", "-v", "--remove-orphans", timeout=150, project=PROJECT, files=FILES)
    left = await docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}")
    # Every volume the step made: the named ones and each worker's anonymous /data.
    volumes = set((await docker("volume", "ls", "-q")).split()) - volumes_before
    if left or volumes:
        raise ScenarioError(f"after down -v: containers {left.split()}, volumes {volumes}")
    step(f"docker-compose -p {PROJECT} down -v: no container or volume left "
         f"({time.monotonic() - started:.0f} s)")  # fmt: skip


async def cluster_deployment(
    session: aiohttp.ClientSession, images: dict[str, str], cleanup: Cleanup
) -> None:
    taken = [f"{name} :{port}" for name, port in PORTS.items() if not port_free(port)]
    if taken:
        raise ScenarioError(f"ports the cluster binds (host networking) are taken: {taken}")
    volumes_before = set((await docker("volume", "ls", "-q")).split())
    existing = volumes_before & set(CLUSTER_VOLUMES)
    if existing:
        raise ScenarioError(f"volumes the cluster files name exist already: {sorted(existing)}")
    env = {**compose_env(images), "CALLSERVER_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT)}
    cleanup.add(f"docker-compose -p {PROJECT} down -v", partial(down, env, volumes_before))
    try:
        await checks(session, env)
    except Exception:
        for service in SERVICES:
            for container in await containers(service, PROJECT):
                state = (await inspect(container))["State"]
                step(f"cluster {service} {container[:12]}: {state['Status']} "
                     f"(exit {state['ExitCode']}); its log's end:")  # fmt: skip
                print((await container_logs(container))[-3000:], file=sys.stderr)
        raise


async def checks(session: aiohttp.ClientSession, env: dict[str, str]) -> None:
    started = time.monotonic()
    await compose(
        env, "up", "-d", "--no-build", "--scale", "worker=1", *SERVICES,
        timeout=240, project=PROJECT, files=FILES,
    )  # fmt: skip
    step(f"docker-compose -p {PROJECT} -f compose.yaml -f compose.cluster.yaml up -d "
         f"--scale worker=1 {' '.join(SERVICES)} ({time.monotonic() - started:.0f} s)")  # fmt: skip

    # The persistent Redis, on a volume initialised from the image's /data.
    redis = await one_container("redis", PROJECT)
    owner = await docker("exec", redis, "stat", "-c", "%u:%g", "/data")
    uid = await docker("exec", redis, "id", "-u")

    async def append_only_file() -> str | None:
        listing = await docker("exec", redis, "ls", "/data")
        return listing if "appendonly" in listing else None

    listing = await wait_until("Redis's append-only file in /data", append_only_file, 30)
    if owner != "999:999" or uid != "999":
        raise ScenarioError(f"Redis runs as uid {uid} on a /data owned by {owner}, not 999")
    step(f"persistent Redis: uid 999, /data {owner} (the volume took the image's owner), "
         f"holds {' '.join(listing.split())}")  # fmt: skip

    # The worker: healthy in Docker's view, then ready (its capabilities reached Redis).
    worker = await one_container("worker", PROJECT)
    await wait_until("the worker healthy", partial(healthy, worker), timeout=180, interval=2)
    await docker("exec", worker, "callserver", "healthcheck", "--worker", "--ready")
    check = (await inspect(worker))["Config"]["Healthcheck"]["Test"]
    step(f"worker healthy in Docker ({' '.join(check[1:])}); "
         "`callserver healthcheck --worker --ready` passes in it")  # fmt: skip

    # Both nodes ready and registered, each under its own URL.
    for service, url in NODES.items():
        port = urlsplit(url).port
        container = await one_container(service, PROJECT)
        await wait_until(f"{service} healthy", partial(healthy, container), 180, interval=2)

        async def ready(port: int | None = port) -> bool | None:
            status = await http_status(session, f"http://127.0.0.1:{port}/readyz")
            return True if status == 200 else None

        await wait_until(f"{service}'s /readyz on :{port}", ready, timeout=60)
    registry = RedisNodeRegistry(f"redis://127.0.0.1:{REDIS_PORT}/0", prefix="callserver:")
    try:

        async def registered() -> list[str] | None:
            live = await registry.live()
            urls = sorted(node.url for node in live if not node.draining)
            return urls if urls == sorted(NODES.values()) else None

        urls = await wait_until("both nodes in the registry", registered, timeout=30)
    finally:
        await registry.aclose()
    step(f"both nodes healthy, /readyz 200 on :8080 and :8081, live in the registry as "
         f"{', '.join(urls)}")  # fmt: skip

    # One room joined through both nodes: one call, on the room's node.
    before = await worker_metrics(session)
    if not before:
        raise ScenarioError(f"the worker serves no /metrics on 127.0.0.1:{WORKER_METRICS_PORT}")
    ann = ScriptedCaller("http://127.0.0.1:8080", session, name="Ann")
    beto = ScriptedCaller("http://127.0.0.1:8081", session, name="Beto")
    try:
        await ann.join("cluster-call")
        await beto.join("cluster-call")
        redirects = ann.redirects + beto.redirects
        ports = {urlsplit(caller.base_url).port for caller in (ann, beto)}
        if len(redirects) != 1 or len(ports) != 1:
            raise ScenarioError(
                f"joins through :8080 and :8081: redirects {redirects}, "
                f"ended on {ann.base_url} and {beto.base_url}"
            )
        owner_port = ports.pop()
        step(f"Ann joined at :8080, Beto at :8081: {'Ann' if ann.redirects else 'Beto'} was "
             f"redirected to {redirects[0]}; both on the node at :{owner_port}")  # fmt: skip
        await asyncio.gather(ann.start_media(), beto.start_media())
        call_started = time.monotonic()
        # Speech first, then a tone: the silence between ends the utterance, so its caption
        # does not wait for the tone (which carries the loudness check).
        ann.play(
            np.concatenate(
                (load_wav_48k(str(SPEECH)), silence(2 * SAMPLE_RATE), tone(440.0, 30 * SAMPLE_RATE))
            )
        )
        beto.play(tone(660.0, 40 * SAMPLE_RATE))
        await hears_each_other(ann, beto, call_started)

        async def caption() -> str | None:
            for event in beto.events:
                if (
                    event.get("type") == "caption"
                    and event.get("final")
                    and event.get("speaker") == ann.participant_id
                    and {"young", "man"} <= words(str(event.get("text", "")))
                ):
                    return str(event["text"])
            return None

        said = await wait_until("Beto's caption of Ann's speech", caption, 60, interval=0.2)
        step(f"Ann and Beto hear each other; Beto got the caption of Ann's speech: {said!r} "
             f"({time.monotonic() - call_started:.1f} s into the call)")  # fmt: skip
        await ann.leave()
        await beto.leave()
    finally:
        for caller in (ann, beto):
            await caller.close()

    # The recognition ran on the worker.
    jobs = "callserver_worker_jobs_total{kind=stt,outcome=ok}"
    batches = "callserver_worker_batch_size_count{kind=stt}"

    async def counted() -> dict[str, float] | None:
        after = await worker_metrics(session)
        done = {name: value - before.get(name, 0.0) for name, value in after.items()}
        return done if done.get(jobs, 0) >= 1 and done.get(batches, 0) >= 1 else None

    done = await wait_until("the worker's metrics to count the recognition", counted, 15)
    outcomes = ", ".join(
        f"{name.split('outcome=')[1].rstrip('}')} {value:.0f}"
        for name, value in sorted(done.items())
        if name.startswith("callserver_worker_jobs_total{kind=stt,") and value
    )
    # A batch counts when it starts, a job when it is answered: a later utterance (the tone)
    # may be in a batch that has not settled yet.
    step(f"worker /metrics on 127.0.0.1:{WORKER_METRICS_PORT} during the call: "
         f"{done[batches]:.0f} recognition batches run, jobs settled: {outcomes}")  # fmt: skip
