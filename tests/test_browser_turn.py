"""The page reaches the server's media through TURN: a real coturn, a real Chromium.

A caller whose firewall blocks UDP to the server can only reach it through the TURN server the
deployment hands out (``CALLSERVER_TURN_*``). Here coturn runs on loopback with a static
long-term user; one page gathers for its server link as shipped (its offer must carry a relay
candidate allocated on that coturn), and another is forced to relay only, as if nothing but
the TURN server were reachable, and must still connect its server audio link through coturn.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Playwright, async_playwright, expect

from tests.browser import fake_microphone, first_page, launch, open_page
from tests.conftest import CLIPS

pytestmark = [pytest.mark.browser, pytest.mark.needs("turnserver")]

TURN_USER = "callserver"
TURN_SECRET = "turn-test-secret"
TURN_REALM = "callserver"
RELAY_PORTS = 16  # coturn's relay port range for this test
WAIT_MS = 15_000  # each browser-side wait; on loopback these take well under a second

# Test-only: every RTCPeerConnection the page makes may use relay candidates only, as for a
# caller who can reach nothing but the TURN server. The page's own configuration (its
# iceServers) is kept, so without TURN servers in it nothing can be gathered at all.
RELAY_ONLY_JS = """
(() => {
  const Native = window.RTCPeerConnection;
  class RelayOnly extends Native {
    constructor(config, ...rest) {
      super({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
    }
  }
  window.RTCPeerConnection = RelayOnly;
})();
"""

# The server link's selected candidate pair and audio counters, from getStats.
SERVER_LINK_STATS_JS = """
async () => {
  const pc = window.callserverDebug.serverPc;
  if (!pc) return null;
  const stats = [...(await pc.getStats()).values()];
  const byId = new Map(stats.map((s) => [s.id, s]));
  const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair = transport ? byId.get(transport.selectedCandidatePairId) : null;
  const inbound = stats.find((s) => s.type === "inbound-rtp" && s.kind === "audio");
  const outbound = stats.find((s) => s.type === "outbound-rtp" && s.kind === "audio");
  const side = (id) => {
    const c = id ? byId.get(id) : null;
    return c ? { type: c.candidateType, address: c.address, port: c.port } : null;
  };
  return {
    state: pc.connectionState,
    local: pair ? side(pair.localCandidateId) : null,
    remote: pair ? side(pair.remoteCandidateId) : null,
    pairBytesReceived: pair ? pair.bytesReceived : 0,
    pairBytesSent: pair ? pair.bytesSent : 0,
    packetsReceived: inbound ? inbound.packetsReceived : 0,
    packetsSent: outbound ? outbound.packetsSent : 0,
  };
}
"""


@dataclass
class Turn:
    port: int
    relay_ports: range
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"


def _free_port() -> int:
    """A loopback port free for both UDP and TCP (coturn listens on both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free loopback port")


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until coturn accepts TCP on ``port`` (it opens UDP in the same step); 10 s at most."""
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.05)
    raise RuntimeError(f"turnserver not listening on {port}:\n{log.read_text()}")


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[Turn]:
    """coturn on a free loopback port with one static long-term user, stopped afterwards."""
    port = _free_port()
    base = random.randrange(20_000, 30_000, RELAY_PORTS)
    relay_ports = range(base, base + RELAY_PORTS)
    log = tmp_path / "turnserver.log"
    command = [
        "turnserver",
        "-n",  # no configuration file (not /etc/turnserver.conf)
        "--listening-ip=127.0.0.1",
        f"--listening-port={port}",
        "--relay-ip=127.0.0.1",
        f"--min-port={relay_ports.start}",
        f"--max-port={relay_ports.stop - 1}",
        "--lt-cred-mech",
        f"--user={TURN_USER}:{TURN_SECRET}",
        f"--realm={TURN_REALM}",
        # The server's media is on 127.0.0.1 here: coturn refuses loopback peers otherwise.
        "--allow-loopback-peers",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--verbose",
        "--simple-log",
        "--log-file=stdout",
        f"--pidfile={tmp_path / 'turnserver.pid'}",
        f"--userdb={tmp_path / 'turndb'}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, log)
        yield Turn(port, relay_ports, log)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


def _candidates(sdp: str) -> list[dict[str, str]]:
    """Each ``a=candidate`` line of an SDP as its address, port and type."""
    found = []
    for match in re.finditer(
        r"^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)", sdp, flags=re.MULTILINE
    ):
        protocol, address, port, kind = match.groups()
        found.append({"protocol": protocol.lower(), "address": address, "port": port, "typ": kind})
    return found


async def _create_room(page: Page, url: str, name: str) -> str:
    """Create a room from the start screen; the server link's offer SDP, once answered."""
    await open_page(page, url)
    await page.locator("#start-screen").get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Create a room").click()
    # Read in the same step as the check: a failed link is replaced by a new one at any time.
    answered = await page.wait_for_function(
        """(() => {
          const pc = window.callserverDebug.serverPc;
          return pc && pc.remoteDescription && pc.localDescription.sdp;
        })()""",
        timeout=WAIT_MS,
    )
    sdp: str = await answered.json_value()
    return sdp


async def _server_link_stats(page: Page) -> dict[str, Any]:
    stats: dict[str, Any] | None = await page.evaluate(SERVER_LINK_STATS_JS)
    assert stats is not None, "no server link"
    return stats


async def _until(
    page: Page, check: Callable[[dict[str, Any]], bool], seconds: float = 10.0
) -> dict[str, Any]:
    """Server link stats, polled until ``check`` holds (the last ones are returned either way)."""
    stats = await _server_link_stats(page)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not check(stats) and loop.time() < end:
        await asyncio.sleep(0.1)
        stats = await _server_link_stats(page)
    return stats


async def _log_until(log: Path, text: str, seconds: float = 3.0) -> str:
    """coturn's log, read until it holds ``text`` (it is written as coturn goes)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    content = _read(log)
    while text not in content and loop.time() < end:
        await asyncio.sleep(0.1)
        content = _read(log)
    return content


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def test_server_link_uses_the_turn_server_the_server_hands_out(
    make_server: Callable[..., Any], turn: Turn, playwright: Playwright, tmp_path: Path
) -> None:
    settings = {
        "turn_urls": [turn.url],
        "turn_username": TURN_USER,
        "turn_credential": TURN_SECRET,
    }
    async with make_server(**settings) as server:
        wav = fake_microphone(CLIPS[0], tmp_path / "mic.wav")
        context = await launch(playwright, tmp_path / "profile", wav, server.url)
        errors: list[str] = []
        try:
            plain = await first_page(context)
            relayed = await context.new_page()
            await relayed.add_init_script(RELAY_ONLY_JS)
            for page in (plain, relayed):
                page.on("pageerror", lambda error: errors.append(str(error)))

            # Each page creates a room of its own; the server answers its server link's offer.
            plain_sdp, relayed_sdp = await asyncio.gather(
                _create_room(plain, server.url, "Plain"),
                _create_room(relayed, server.url, "Relayed"),
            )

            # As shipped, the server link's offer carries a relay candidate next to the host
            # ones: the browser allocated on this coturn with the credentials from `welcome`.
            candidates = _candidates(plain_sdp)
            relays = [c for c in candidates if c["typ"] == "relay"]
            assert relays, f"no relay candidate in the server link's offer: {candidates}"
            for relay in relays:
                assert relay["address"] == "127.0.0.1", relay
                assert int(relay["port"]) in turn.relay_ports, (relay, turn.relay_ports)
            assert any(c["typ"] == "host" for c in candidates), candidates

            # Relay only: the offer has nothing but coturn's relayed addresses...
            candidates = _candidates(relayed_sdp)
            assert candidates, "the relay-only page offered no candidate"
            assert {c["typ"] for c in candidates} == {"relay"}, candidates

            # ...and both calls connect, the relay-only one through coturn, with its audio
            # flowing both ways.
            for page in (plain, relayed):
                await expect(page.locator("#state-text")).to_have_text("Connected", timeout=WAIT_MS)
            stats = await _until(
                relayed,
                lambda s: s["packetsReceived"] >= 25 and s["packetsSent"] >= 25,
            )
            assert stats["state"] == "connected", stats
            assert stats["local"] is not None, f"no selected candidate pair: {stats}"
            assert stats["local"]["type"] == "relay", stats
            assert stats["local"]["port"] in turn.relay_ports, (stats, turn.relay_ports)
            # The far end is the server's own media address (the relay only carries it).
            assert stats["remote"] == {**stats["remote"], "type": "host", "address": "127.0.0.1"}
            assert stats["pairBytesReceived"] > 0 and stats["pairBytesSent"] > 0, stats
            assert stats["packetsReceived"] >= 25, f"server audio is not arriving: {stats}"
            assert stats["packetsSent"] >= 25, f"microphone audio is not leaving: {stats}"
            assert not errors, errors

            # coturn's side: the user the server handed out allocated relays and opened a
            # permission towards the server's media address.
            for request in ("ALLOCATE", "CREATE_PERMISSION"):
                line = f"user <{TURN_USER}>: incoming packet {request} processed, success"
                log = await _log_until(turn.log, line)
                assert line in log, log[-4000:]
        finally:
            await context.close()
