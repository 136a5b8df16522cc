"""The deployment scenario of `make test-deploy`, on a real Docker engine (run as root).

scripts/test-deploy.sh builds the images, then runs ``python -m tests.deploy.scenario``:

1. speech with a root-owned volume (the seed outage): the callserver image, run as its own
   uid 10001 with a volume at /data that root owns and that already holds files, starts, says
   in one log line which folder it cannot write (path, owner, uid, fallback), and still serves
   POST /api/tts, /api/translate and /api/stt; a new empty volume gets the image's 10001 owner;
2. a single-node swarm with deploy/swarm/stack.yaml as shipped (tests/deploy/stack-override.yaml
   only sets Grafana's replicas to 0), every service healthy, the page and /readyz through
   Traefik on :80, Prometheus scraping callserver;
3. a scripted call through Traefik (two aiortc callers over ws://127.0.0.1:80/ws, audio both
   ways), then a rolling update of callserver while the call runs: both callers get
   `draining`, audio keeps flowing for seconds after it, the callers leave, the old task exits
   0 by itself (not killed, no "drain timeout"), the new task becomes healthy, Traefik routes
   to it and a new call works, and the update completes (no rollback);
4. everything it created is removed (containers, stack, secrets, configs, volumes, the swarm);
5. deploy/compose.yaml with Debian's docker-compose, then `down -v` (tests/deploy/compose_check.py);
6. the distributed mode: compose.yaml + compose.cluster.yaml with two media nodes and one
   worker, a call joined through both nodes and recognised on the worker, then `down -v`
   (tests/deploy/cluster_check.py).

Every wait is bounded; each step prints one line. Talks to loopback only (host networking).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from tests.deploy.calls import (
    TRAEFIK,
    hears_each_other,
    leave_while_draining,
    loud_seconds,
    open_call,
)
from tests.deploy.cluster_check import cluster_deployment
from tests.deploy.compose_check import compose_deployment
from tests.deploy.engine import (
    Cleanup,
    ScenarioError,
    container_logs,
    docker,
    http_status,
    inspect,
    json_lines,
    port_free,
    prometheus_up,
    step,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "deploy" / "swarm" / "stack.yaml"
OVERRIDE_FILE = Path(__file__).resolve().parent / "stack-override.yaml"
STACK = "cs-td"
# Ports the stack binds on the host (host networking); Redis's is moved off 6379, which the
# machine's own Redis (make test) may hold.
REDIS_PORT = int(os.environ.get("TEST_DEPLOY_REDIS_PORT", "6390"))
SPEECH_PORT = int(os.environ.get("TEST_DEPLOY_SPEECH_PORT", "8080"))
STACK_PORTS = {
    "traefik web": 80,
    "traefik websecure": 443,
    "traefik ping": 8082,
    "callserver": 8080,
    "prometheus": 9090,
    "redis": REDIS_PORT,
    "coturn": 3478,
}


# --- 1. speech with a root-owned volume ---------------------------------------------------------


async def speech_with_root_owned_volume(
    session: aiohttp.ClientSession, image: str, base: str, cleanup: Cleanup
) -> None:
    fresh, rooted = f"{STACK}-fresh", f"{STACK}-root-owned"
    for volume in (fresh, rooted):
        await docker("volume", "create", volume)
        cleanup.add(f"volume {volume}", partial(docker, "volume", "rm", "-f", volume))
    # The ownership rule: an empty named volume takes the image's /data owner and mode.
    owner = await docker(
        "run",
        "--rm",
        "-v",
        f"{fresh}:/data",
        "--entrypoint",
        "stat",
        image,
        "-c",
        "%u:%g %a",
        "/data",
    )
    if owner != "10001:10001 750":
        raise ScenarioError(f"a new volume at /data is {owner}, not the image's 10001:10001 750")
    step(f"a new named volume at /data is initialised from the image: {owner}")
    # The seed outage: a volume root made and filled (so Docker leaves it as it is).
    await docker(
        "run", "--rm", "-v", f"{rooted}:/data", base, "sh", "-c",
        "mkdir -p /data/cache /data/models && echo old > /data/cache/left-by-root"
        " && chown -R 0:0 /data && chmod 0755 /data /data/cache /data/models",
    )  # fmt: skip
    if not port_free(SPEECH_PORT):
        raise ScenarioError(f"port {SPEECH_PORT} is taken (set TEST_DEPLOY_SPEECH_PORT)")
    name = f"{STACK}-speech"
    container = await docker(
        "run", "-d", "--name", name, "--network", "host",
        "-e", f"CALLSERVER_PORT={SPEECH_PORT}", "-v", f"{rooted}:/data", image,
    )  # fmt: skip
    cleanup.add(f"container {name}", partial(docker, "rm", "-f", container))
    config = await inspect(container)
    user = config["Config"]["User"]
    uid = await docker("exec", container, "id", "-u")
    if user != "10001:10001" or uid != "10001":
        raise ScenarioError(f"the image runs as {user!r} (uid {uid}), not 10001:10001")
    base_url = f"http://127.0.0.1:{SPEECH_PORT}"

    async def ready() -> bool | None:
        return True if await http_status(session, base_url + "/readyz") == 200 else None

    await wait_until("the container's /readyz", ready, timeout=120)
    lines = json_lines(await container_logs(container))
    unwritable = [line for line in lines if line.get("msg") == "folder not writable"]
    cache = [line for line in unwritable if line.get("path") == "/data/cache"]
    if not cache or cache[0].get("owner") != "0:0" or cache[0].get("uid") != 10001:
        raise ScenarioError(f"no 'folder not writable' line for /data/cache: {unwritable}")
    if not all(line.get("fallback") for line in unwritable) or len(cache) != 1:
        raise ScenarioError(
            f"each unwritable folder should be one line with a fallback: {unwritable}"
        )
    for line in unwritable:
        step(
            f"start-up log: {line['msg']}: path={line['path']} owner={line['owner']} "
            f"uid={line['uid']} fallback={line['fallback']!r}"
        )
    text = "Hello from the container."
    async with session.post(base_url + "/api/tts", json={"text": text, "language": "en"}) as resp:
        wav = await resp.read()
        if resp.status != 200 or resp.content_type != "audio/wav" or wav[:4] != b"RIFF":
            raise ScenarioError(f"POST /api/tts: {resp.status} {resp.content_type} {wav[:200]!r}")
        duration_ms = float(resp.headers.get("X-Audio-Duration-Ms", "0"))
        engine = resp.headers.get("X-Engine")
    if duration_ms < 500:
        raise ScenarioError(f"POST /api/tts returned {duration_ms} ms of audio")
    # Spanish has no Piper voice: espeak-ng (a Debian package in the image) speaks it.
    async with session.post(
        base_url + "/api/tts", json={"text": "Hola desde el contenedor.", "language": "es"}
    ) as resp:
        spanish = await resp.read()
        engine_es = resp.headers.get("X-Engine")
    if resp.status != 200 or spanish[:4] != b"RIFF" or engine_es != "espeak":
        raise ScenarioError(f"POST /api/tts (es): {resp.status} {engine_es} {spanish[:200]!r}")
    async with session.post(
        base_url + "/api/translate", json={"text": "good morning", "source": "en", "target": "es"}
    ) as resp:
        translated = await resp.json()
    if (
        resp.status != 200
        or not translated.get("translation")
        or translated["translation"] == "good morning"
    ):
        raise ScenarioError(f"POST /api/translate: {resp.status} {translated}")
    form = aiohttp.FormData()
    form.add_field("file", wav, filename="speech.wav", content_type="audio/wav")
    async with session.post(base_url + "/api/stt", data=form) as resp:
        heard = await resp.json()
    if resp.status != 200 or "container" not in str(heard.get("text", "")).lower():
        raise ScenarioError(f"POST /api/stt: {resp.status} {heard}")
    step(
        f"speech served as uid 10001 on a root-owned /data: tts {engine} {duration_ms:.0f} ms "
        f"(es: {engine_es}), "
        f"translate 'good morning' -> {translated['translation']!r} ({translated['engine']}), "
        f"stt -> {heard['text']!r}"
    )
    await docker("stop", "-t", "45", container, timeout=60)
    state = (await inspect(container))["State"]
    if state["ExitCode"] != 0 or state["OOMKilled"]:
        raise ScenarioError(
            f"docker stop: exit {state['ExitCode']} (OOMKilled {state['OOMKilled']})"
        )
    step("docker stop: the server drained and exited 0")


# --- 2. the swarm stack -------------------------------------------------------------------------


def stack_env(images: dict[str, str]) -> dict[str, str]:
    return {
        **images,
        "REDIS_PORT": str(REDIS_PORT),
        # Media on loopback (the callers run on this machine).
        "CALLSERVER_ICE_HOST_ADDRESSES": "127.0.0.1",
        "CALLSERVER_TURN_URLS": "turn:127.0.0.1:3478",
    }


async def service_containers(service: str, *, every: bool = False) -> list[dict[str, Any]]:
    args = ["ps", "--no-trunc", "--format", "{{json .}}"]
    args += ["-a"] if every else []
    args += ["--filter", f"label=com.docker.swarm.service.name={STACK}_{service}"]
    out = await docker(*args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def healthy_container(service: str, not_id: str | None = None) -> str | None:
    for row in await service_containers(service):
        if "(healthy)" in row["Status"] and row["ID"] != not_id:
            return str(row["ID"])
    return None


async def deploy_stack(
    session: aiohttp.ClientSession, images: dict[str, str], secret: str, cleanup: Cleanup
) -> dict[str, str]:
    state = await docker("info", "--format", "{{.Swarm.LocalNodeState}}")
    if state != "inactive":
        raise ScenarioError(
            f"this engine is already in a swarm ({state}); test-deploy makes its own"
        )
    taken = [f"{name} :{port}" for name, port in STACK_PORTS.items() if not port_free(port)]
    if taken:
        raise ScenarioError(
            f"ports the stack binds (host networking) are taken: {', '.join(taken)}"
        )
    await docker(
        "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"
    )
    cleanup.add("swarm leave", partial(docker, "swarm", "leave", "--force"))
    node = await docker("info", "--format", "{{.Swarm.NodeID}}")
    await docker("node", "update", "--label-add", "callserver.media=true", node)
    for name, value in (
        ("callserver_join_secret", secret),
        ("turn_credential", secrets.token_hex(16)),
        ("grafana_admin_password", secrets.token_hex(16)),
    ):
        await docker("secret", "create", name, "-", stdin=value)
        cleanup.add(f"secret {name}", partial(docker, "secret", "rm", name))
    step("single-node swarm, node labelled callserver.media=true, 3 secrets")
    env = {**os.environ, **stack_env(images)}
    argv = ["docker", "stack", "deploy", "--resolve-image", "never"]
    argv += ["-c", str(STACK_FILE), "-c", str(OVERRIDE_FILE), STACK]
    proc = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    cleanup.add(f"stack {STACK}", remove_stack)
    if proc.returncode != 0:
        raise ScenarioError(f"docker stack deploy: {proc.stderr.strip()}")
    running = {}
    for service in ("redis", "callserver", "traefik", "prometheus", "coturn"):

        async def healthy(s: str = service) -> str | None:
            return await healthy_container(s)

        running[service] = await wait_until(f"{service} healthy", healthy, timeout=180, interval=2)
    listing = await docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}")
    step(
        "stack deployed, healthy: "
        + ", ".join(sorted(running))
        + f" ({'; '.join(listing.splitlines())})"
    )

    async def through_traefik() -> bool | None:
        page = await http_status(session, TRAEFIK + "/")
        ready = await http_status(session, TRAEFIK + "/readyz")
        return True if page == 200 and ready == 200 else None

    await wait_until("the page and /readyz through Traefik", through_traefik, timeout=60)
    step("through Traefik on :80: / 200, /readyz 200")

    await wait_until(
        "Prometheus scraping callserver", partial(prometheus_up, session), timeout=90, interval=2
    )
    step('Prometheus: up{job="callserver"} == 1')
    return running


async def remove_stack() -> None:
    await docker("stack", "rm", STACK, check=False)

    async def gone() -> bool | None:
        left = await docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}")
        return True if not left else None

    await wait_until("the stack's containers to go", gone, timeout=120, interval=2)
    volumes = await docker(
        "volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}"
    )
    for volume in volumes.split():
        await docker("volume", "rm", volume)


# --- 3. a call through Traefik, drained by a rolling update ------------------------------------


async def drained_rolling_update(
    session: aiohttp.ClientSession, secret: str, old_container: str
) -> None:
    a, b = await open_call(session, "deploy-drain-call", secret, ("Ann", "Beto"))
    callers = [a, b]
    try:
        started = time.monotonic()
        await hears_each_other(a, b, started)
        step("call through Traefik (ws://127.0.0.1:80/ws): Ann and Beto hear each other")
        old = await inspect(old_container)
        old_task = old["Config"]["Labels"]["com.docker.swarm.task.id"]
        await docker("service", "update", "--force", "--detach", f"{STACK}_callserver")
        try:
            notices = [
                await a.expect("draining", timeout=60),
                await b.expect("draining", timeout=60),
            ]
        except TimeoutError:
            raise ScenarioError("no 'draining' message within 60 s of the update") from None
        drained_at = time.monotonic()
        if any(n.get("deadline_s") != 30 for n in notices):
            raise ScenarioError(f"draining notices: {notices}")
        step(f"rolling update started: both callers got 'draining' (deadline_s 30) after "
             f"{drained_at - started:.1f} s of call")  # fmt: skip

        # /healthz stays 200 on a draining server; through Traefik it fails once Traefik's
        # /readyz health check has taken the server out of the load balancer.
        async def taken_out() -> int | None:
            direct = await http_status(session, "http://127.0.0.1:8080/healthz")
            proxied = await http_status(session, TRAEFIK + "/healthz")
            return proxied if direct == 200 and proxied not in (200, None) else None

        status = await wait_until("Traefik to take the draining server out", taken_out, 15, 0.5)
        step(
            f"Traefik takes the draining server out {time.monotonic() - drained_at:.1f} s after "
            f"'draining': /healthz answers 200 directly, {status} through Traefik"
        )
        # The call goes on: seconds 1 to 6 after the notice hold most of 5 s of each tone.
        await asyncio.sleep(max(0.0, drained_at + 6.5 - time.monotonic()))
        heard = {c.name: loud_seconds(c, drained_at + 1, drained_at + 6) for c in callers}
        for caller in callers:
            if heard[caller.name] < 3.5:
                raise ScenarioError(f"after 'draining', seconds 1-6 held only {heard} of audio")
            if caller.ws is None or caller.ws.closed:
                raise ScenarioError(f"{caller.name}'s WebSocket closed while draining")
        step(
            "after 'draining' the call went on: in seconds 1-6 after it, Ann heard "
            f"{heard['Ann']:.1f} s and Beto {heard['Beto']:.1f} s of the other's voice"
        )
        outcomes = [await leave_while_draining(caller) for caller in callers]
        left_at = time.monotonic()
        step(f"both callers left ({', '.join(outcomes)})")
    finally:
        for caller in callers:
            await caller.close()

    async def exited() -> dict[str, Any] | None:
        state: dict[str, Any] = (await inspect(old_container))["State"]
        return state if state["Status"] == "exited" else None

    state = await wait_until("the old task to exit", exited, timeout=60, interval=0.5)
    exit_s = time.monotonic() - left_at
    if state["ExitCode"] != 0 or state["OOMKilled"]:
        raise ScenarioError(f"old task: exit {state['ExitCode']}, OOMKilled {state['OOMKilled']}")

    async def settled() -> dict[str, Any] | None:
        # The container exits before Swarm records it: the task may still say running.
        status: dict[str, Any] = (await inspect(old_task))["Status"]
        return status if status.get("State") in ("shutdown", "complete", "failed") else None

    task_status = await wait_until("Swarm to record the old task", settled, 15, interval=0.5)
    if task_status.get("ContainerStatus", {}).get("ExitCode") != 0 or task_status.get("Err"):
        raise ScenarioError(f"old task status: {task_status}")
    old_log = json_lines(await container_logs(old_container))
    messages = [line.get("msg") for line in old_log]
    if "draining" not in messages or "stopped" not in messages:
        raise ScenarioError(f"old task's log lacks draining/stopped: {messages[-10:]}")
    if "drain timeout; closing calls" in messages:
        raise ScenarioError("the old task cut the call at the drain timeout")
    reasons = [line.get("reason") for line in old_log if line.get("msg") == "left"]
    if reasons != ["left", "left"]:
        raise ScenarioError(
            f"the old task's participants left with reasons {reasons}, not by leaving"
        )
    step(
        f"old task {old_task[:12]} exited by itself, code 0, {exit_s:.1f} s after the callers "
        f"left (task state {task_status['State']}; log: draining ... stopped, no drain timeout)"
    )

    async def new_healthy() -> str | None:
        return await healthy_container("callserver", not_id=old_container)

    new = await wait_until("the new task healthy", new_healthy, timeout=120, interval=1)

    async def routed() -> bool | None:
        return True if await http_status(session, TRAEFIK + "/readyz") == 200 else None

    await wait_until("Traefik routing to the new task", routed, timeout=30, interval=0.5)
    step(f"new task healthy ({new[:12]}), Traefik routes to it")
    c, d = await open_call(session, "deploy-after-update", secret, ("Cai", "Dara"))
    try:
        await hears_each_other(c, d, time.monotonic())
    finally:
        for caller in (c, d):
            await caller.close()
    step("a new call through Traefik works after the update")

    async def completed() -> str | None:
        out = await docker(
            "service", "inspect", "--format", "{{json .UpdateStatus}}", f"{STACK}_callserver"
        )
        status = json.loads(out) or {}
        state = str(status.get("State", ""))
        if state.startswith("rollback") or state == "paused":
            raise ScenarioError(f"the update did not complete: {status}")
        return state if state == "completed" else None

    await wait_until("the service update to complete", completed, timeout=120, interval=2)
    step("service update completed (monitored 30 s, no rollback)")


# --- main -----------------------------------------------------------------------------------------


async def scenario(args: argparse.Namespace) -> int:
    images = {
        "CALLSERVER_IMAGE": args.image,
        **{
            k: os.environ[k]
            for k in ("TRAEFIK_IMAGE", "REDIS_IMAGE", "PROMETHEUS_IMAGE", "COTURN_IMAGE")
            if k in os.environ
        },
    }
    cleanup = Cleanup()
    failed: BaseException | None = None
    secret = secrets.token_hex(32)
    try:
        async with aiohttp.ClientSession() as session:
            await speech_with_root_owned_volume(session, args.image, args.base_image, cleanup)
            if not args.skip_swarm:
                running = await deploy_stack(session, images, secret, cleanup)
                await drained_rolling_update(session, secret, running["callserver"])
            if not args.skip_compose:
                # The swarm goes first: deploy/compose.yaml binds the same host ports.
                if not await cleanup.run():
                    raise ScenarioError("the cleanup before the compose step failed")
                await compose_deployment(session, images, cleanup)
            if not args.skip_cluster:
                # The overlay binds compose.yaml's ports and names its volumes.
                if not await cleanup.run():
                    raise ScenarioError("the cleanup before the cluster step failed")
                await cluster_deployment(session, images, cleanup)
    except Exception as exc:  # every failure is reported, then everything is removed
        failed = exc
        step(f"FAILED: {type(exc).__name__}: {exc}")
        if not isinstance(exc, ScenarioError):
            traceback.print_exc()
        with contextlib.suppress(ScenarioError, OSError, subprocess.SubprocessError):
            for service in ("callserver", "traefik", "coturn", "prometheus", "redis"):
                for row in await service_containers(service, every=True):
                    step(f"{service} container {row['ID'][:12]}: {row['Status']}; its log's end:")
                    print((await container_logs(row["ID"]))[-3000:], file=sys.stderr)
    finally:
        clean = await cleanup.run()
    if failed is None and clean:
        step("PASSED")
        return 0
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.scenario", description=__doc__)
    parser.add_argument("--image", default=os.environ.get("CALLSERVER_IMAGE", "callserver:latest"))
    parser.add_argument("--base-image", default="local/bookworm-py", help="a root shell image")
    parser.add_argument("--skip-swarm", action="store_true", help="only the root-owned volume part")
    parser.add_argument("--skip-compose", action="store_true", help="no deploy/compose.yaml step")
    parser.add_argument(
        "--skip-cluster", action="store_true", help="no compose.cluster.yaml (distributed) step"
    )
    return asyncio.run(scenario(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
