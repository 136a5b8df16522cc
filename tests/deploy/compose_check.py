"""The compose step of `make test-deploy`: deploy/compose.yaml as shipped, on this machine.

Run by tests/deploy/scenario.py after the swarm part has been removed (the same host ports).
Debian's ``docker-compose`` (1.29) brings the file up as project ``cs-td-compose`` with only
its own variables set: the images (the locally built ones), ``REDIS_PORT`` (the machine's own
Redis holds 6379), media and TURN on loopback. Grafana has no image here: ``up`` names every
other service (``--scale grafana=0`` is not enough, Compose 1.29 still pulls its image; no
override file). Then:

- the one-shot ``secrets`` service exited 0 and made the three secret files (0440, 10001);
- callserver turns healthy, the page answers 200 on :8080, ``/api/config`` and the welcome
  message hand out the TURN credential equal to the secret file's content, no join token is
  needed, and a scripted call direct to :8080 carries audio both ways;
- Prometheus on :9090 has ``up{job="callserver"} == 1``;
- coturn (its private config made by its entrypoint, the credential not on its command line)
  answers a STUN binding from the host's ``turnutils_stunclient`` and grants a TURN
  allocation with the credential, and refuses one with a wrong credential;
- ``docker-compose down -v`` (registered in the cleanup, so it runs on failure too) leaves no
  container or volume of the project.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint

from callserver.media.frames import SAMPLE_RATE
from callserver.probe import ScriptedCaller
from tests.deploy.calls import hears_each_other
from tests.deploy.engine import (
    Cleanup,
    ScenarioError,
    docker,
    http_status,
    inspect,
    port_free,
    prometheus_up,
    step,
    wait_until,
)
from tests.media_helpers import tone

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
PROJECT = "cs-td-compose"
DIRECT = "http://127.0.0.1:8080"
REDIS_PORT = int(os.environ.get("TEST_DEPLOY_REDIS_PORT", "6390"))
PORTS = {"callserver": 8080, "prometheus": 9090, "coturn": 3478, "redis": REDIS_PORT}
# The file names its volumes (no project prefix): `down -v` removes them, so they must be new.
VOLUMES = (
    "callserver-data",
    "callserver-secrets",
    "callserver-prometheus-data",
    "callserver-grafana-data",
)
SECRETS = ("turn_credential", "callserver_join_secret", "grafana_admin_password")
SERVICES = ("secrets", "redis", "callserver", "prometheus", "coturn")


def compose_env(images: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **images,
        "REDIS_PORT": str(REDIS_PORT),
        # Media and TURN on loopback (the callers run on this machine).
        "CALLSERVER_ICE_HOST_ADDRESSES": "127.0.0.1",
        "CALLSERVER_TURN_URLS": "turn:127.0.0.1:3478",
    }


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


async def compose(
    env: dict[str, str],
    *args: str,
    check: bool = True,
    timeout: float = 120.0,
    project: str = PROJECT,
    files: tuple[Path, ...] = (COMPOSE_FILE,),
) -> str:
    """``docker-compose -p PROJECT -f deploy/compose.yaml ARGS`` in a thread; its stdout."""
    argv = ["docker-compose", "--ansi", "never", "-p", project]
    for file in files:
        argv += ["-f", str(file)]
    argv += args
    try:
        proc = await asyncio.to_thread(_run, argv, env, timeout)
    except subprocess.TimeoutExpired:
        raise ScenarioError(f"docker-compose {' '.join(args)}: over {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise ScenarioError(
            f"docker-compose {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout.strip()


async def containers(service: str, project: str = PROJECT) -> list[str]:
    out = await docker(
        "ps", "-aq", "--no-trunc",
        "--filter", f"label=com.docker.compose.project={project}",
        "--filter", f"label=com.docker.compose.service={service}",
    )  # fmt: skip
    return out.split()


async def one_container(service: str, project: str = PROJECT) -> str:
    ids = await containers(service, project)
    if len(ids) != 1:
        raise ScenarioError(f"compose service {service}: {len(ids)} containers, not 1")
    return ids[0]


async def down(env: dict[str, str]) -> None:
    # Stopped first (each with its stop_grace_period), to show how each took SIGTERM (137:
    # killed after the grace).
    started = time.monotonic()
    await compose(env, "stop", timeout=150, check=False)
    stopped = []
    for service in SERVICES:
        for container in await containers(service):
            stopped.append(f"{service} exit {(await inspect(container))['State']['ExitCode']}")
    step(f"docker-compose stop: {', '.join(stopped)} ({time.monotonic() - started:.0f} s)")
    await compose(env, "down", "-v", "--remove-orphans", timeout=150)
    left = await docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}")
    volumes = set((await docker("volume", "ls", "-q")).split()) & set(VOLUMES)
    if left or volumes:
        raise ScenarioError(f"after down -v: containers {left.split()}, volumes {volumes}")


async def healthy(container: str) -> str | None:
    state = (await inspect(container))["State"]
    if state["Status"] in ("exited", "dead"):
        raise ScenarioError(f"{container[:12]} exited with {state['ExitCode']}")
    return "healthy" if state.get("Health", {}).get("Status") == "healthy" else None


async def stun_binding() -> str:
    """``turnutils_stunclient 127.0.0.1`` from the host: coturn's answer (mapped address)."""
    argv = ["turnutils_stunclient", "-p", "3478", "127.0.0.1"]
    try:
        proc = await asyncio.to_thread(_run, argv, dict(os.environ), 15)
    except subprocess.TimeoutExpired:
        raise ScenarioError("turnutils_stunclient: no answer within 15 s") from None
    out = proc.stdout + proc.stderr
    mapped = [line.strip() for line in out.splitlines() if "UDP reflexive addr" in line]
    if proc.returncode != 0 or not mapped:
        raise ScenarioError(f"turnutils_stunclient: exit {proc.returncode}: {out.strip()}")
    return mapped[0]


async def turn_allocation(username: str, password: str) -> tuple[str, int]:
    """A TURN allocation on coturn over UDP; the relayed address it grants."""
    transport, _ = await asyncio.wait_for(
        create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", 3478), username, password, lifetime=60
        ),
        15,
    )
    try:
        relayed = transport.get_extra_info("sockname")
        return str(relayed[0]), int(relayed[1])
    finally:
        transport.close()


def turn_entry(ice_servers: list[dict[str, Any]]) -> dict[str, Any]:
    for server in ice_servers:
        if any(str(url).startswith("turn:") for url in server.get("urls", [])):
            return server
    raise ScenarioError(f"no TURN server handed out: {ice_servers}")


async def compose_deployment(
    session: aiohttp.ClientSession, images: dict[str, str], cleanup: Cleanup
) -> None:
    if shutil.which("docker-compose") is None:
        raise ScenarioError("docker-compose is not installed (apt-get install docker-compose)")
    taken = [f"{name} :{port}" for name, port in PORTS.items() if not port_free(port)]
    if taken:
        raise ScenarioError(f"ports compose binds (host networking) are taken: {', '.join(taken)}")
    existing = set((await docker("volume", "ls", "-q")).split()) & set(VOLUMES)
    if existing:
        raise ScenarioError(f"volumes compose.yaml names exist already: {sorted(existing)}")
    env = compose_env(images)
    cleanup.add(f"docker-compose -p {PROJECT} down -v", partial(down, env))
    try:
        await checks(session, env)
    except Exception:
        for service in SERVICES:
            for container in await containers(service):
                state = (await inspect(container))["State"]
                step(f"compose {service} {container[:12]}: {state['Status']} "
                     f"(exit {state['ExitCode']}); its log's end:")  # fmt: skip
                proc = await asyncio.to_thread(_run, ["docker", "logs", container], env, 60)
                print((proc.stdout + proc.stderr)[-3000:], file=sys.stderr)
        raise


async def checks(session: aiohttp.ClientSession, env: dict[str, str]) -> None:
    started = time.monotonic()
    # Every service but Grafana, named: `--scale grafana=0` still pulls Grafana's image.
    await compose(env, "up", "-d", "--no-build", *SERVICES, timeout=240)
    step(f"docker-compose -p {PROJECT} up -d {' '.join(SERVICES)} "
         f"({time.monotonic() - started:.0f} s)")  # fmt: skip

    # The one-shot secrets service.
    made = await one_container("secrets")
    state = (await inspect(made))["State"]
    proc = await asyncio.to_thread(_run, ["docker", "logs", made], env, 60)
    log = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if state["Status"] != "exited" or state["ExitCode"] != 0:
        raise ScenarioError(f"secrets service: {state['Status']}, exit {state['ExitCode']}: {log}")
    if sorted(log) != sorted(f"secrets: made {name}" for name in SECRETS):
        raise ScenarioError(f"secrets service's log: {log}")
    listing = await compose(
        env, "exec", "-T", "callserver", "stat", "-c", "%n %u:%g %a %s",
        *(f"/run/secrets/{name}" for name in SECRETS),
    )  # fmt: skip
    files = {line.split()[0]: line.split()[1:] for line in listing.splitlines()}
    for name in SECRETS:
        owner, mode, size = files.get(f"/run/secrets/{name}", ["?", "?", "0"])
        if owner != "10001:10001" or mode != "440" or int(size) != 48:
            raise ScenarioError(f"secret files in /run/secrets: {listing}")
    credential = await compose(
        env, "exec", "-T", "callserver", "cat", "/run/secrets/turn_credential"
    )
    step(f"secrets service exited 0 and made {', '.join(SECRETS)} "
         "(10001:10001, 0440, 48 hex characters each)")  # fmt: skip

    # callserver on :8080 with the TURN credential from the file.
    server = await one_container("callserver")
    await wait_until("callserver healthy", partial(healthy, server), timeout=180, interval=2)

    async def page() -> int | None:
        return 200 if await http_status(session, DIRECT + "/") == 200 else None

    await wait_until("the page on :8080", page, timeout=30)
    async with session.get(DIRECT + "/api/config") as resp:
        config = await resp.json()
    turn = turn_entry(config["ice_servers"])
    if turn.get("username") != "callserver" or turn.get("credential") != credential:
        raise ScenarioError(f"/api/config hands out {turn}, not the secret file's credential")
    if config.get("token_required") is not False:
        raise ScenarioError(f"/api/config: token_required {config.get('token_required')}")
    step("callserver healthy; / 200 on :8080; /api/config hands out TURN user callserver "
         "with the turn_credential file's value; no join token required")  # fmt: skip

    a = ScriptedCaller(DIRECT, session, name="Ana")
    b = ScriptedCaller(DIRECT, session, name="Ben")
    try:
        for caller, freq in ((a, 440.0), (b, 660.0)):
            welcome = await caller.join("compose-call")
            if turn_entry(welcome["ice_servers"]).get("credential") != credential:
                raise ScenarioError(f"welcome's ice_servers: {welcome['ice_servers']}")
            await caller.start_media()
            caller.play(tone(freq, 60 * SAMPLE_RATE))
        await hears_each_other(a, b, time.monotonic())
        await a.leave()
        await b.leave()
    finally:
        for caller in (a, b):
            await caller.close()
    step("a call direct to ws://127.0.0.1:8080/ws with no token: Ana and Ben hear each other "
         "(welcome carries the same TURN credential)")  # fmt: skip

    await wait_until("Prometheus scraping callserver", partial(prometheus_up, session), 90, 2)
    step('Prometheus on :9090: up{job="callserver"} == 1')

    # coturn, with the private config its entrypoint made.
    relay = await one_container("coturn")
    await wait_until("coturn healthy", partial(healthy, relay), timeout=90, interval=2)
    conf = await compose(env, "exec", "-T", "coturn", "stat", "-c", "%a %u", "/tmp/turnserver.conf")
    cmdline = await compose(env, "exec", "-T", "coturn", "cat", "/proc/1/cmdline")
    if conf != "600 65534" or credential in cmdline or "turnserver" not in cmdline:
        raise ScenarioError(f"coturn's config {conf!r}, its command line {cmdline!r}")
    mapped = await stun_binding()
    host, port = await turn_allocation("callserver", credential)
    try:
        await turn_allocation("callserver", credential[::-1])
    except TransactionFailed as exc:
        refused = str(exc)
    else:
        raise ScenarioError("coturn granted an allocation with a wrong credential")
    step(
        f"coturn healthy (config 0600 in its tmpfs, credential not on its command line); "
        f"STUN binding: {mapped}; TURN allocation with the credential: relayed {host}:{port}; "
        f"a wrong credential refused ({refused})"
    )
    ps = await docker(
        "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
        "--format", '{{.Label "com.docker.compose.service"}}: {{.Status}}',
    )  # fmt: skip
    step("compose services: " + "; ".join(sorted(ps.splitlines())))
