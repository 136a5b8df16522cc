"""One headless Chromium's CPU in a video mesh of 2, 4 and 6, with and without the video caps.

Video goes browser to browser: in a call of N participants each page encodes and uploads its
camera N-1 times, once per direct peer connection, and decodes N-1 incoming streams. The page
caps what it sends per peer by the call's size (signaling/video_caps.py, applied with
``RTCRtpSender.setParameters``); ``?videocaps=off`` on the page's address leaves the browser's
own choice. For each call size N (participants, so the measured browser has N-1 peers) and
each mode, a room of capacity N is created with ``POST /api/rooms`` on a ``callserver serve``
(its own process, translation off), N separate headless Chromium processes join it through
the page's start form (one browser per participant, so participant 0's process tree can be
measured alone), and once every page has N-1 connected peer links the benchmark samples, once
a second for ``--seconds``:

- participant 0's whole Chromium process tree CPU from /proc (% of one core),
- all N browsers' trees, the server, and the whole machine (/proc/stat), for context, and
  the machine less this benchmark's own process tree ("other load": anything else running),
- the server's audio peer connections and mixed frames (its /metrics),
- from participant 0's page, ``getStats`` on every peer connection: outbound video bitrate
  per peer, frame size, frames per second and the quality limitation (reason and the share of
  time in each, from ``qualityLimitationDurations``), and the received frame rate.

The camera is a generated 1280x720 30 fps Y4M clip (``--use-file-for-fake-video-capture``: a
textured still background with a moving head-sized disc and a moving bar), the microphone the
test clips; the page's own getUserMedia constraints (web/local-media.js) decide what is sent,
and the table says the frame size getStats reports. The uncapped run is the baseline: modes
alternate within each size (the order flips every round), and the ratio is capped / uncapped
median CPU of browser 0.

On a small machine N browsers saturate the CPUs from N=4 (2 cores), and a browser's CPU is
then its share of a full machine, not what it would use alone. ``--pin`` gives participant 0
CPU 0 to itself and puts everything else (the other browsers, the server, this process) on
the other CPUs, so its figure is its own demand (its peers then send it fewer frames).

Run: .venv/bin/python -m bench.mesh_video [--sizes 2 4 6] [--seconds 20] [--rounds 2] [--pin]
     [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright

from bench.chromium import CHROMIUM, chromium_flags
from bench.common import MEDIA_ONLY, ServerProcess, metric, p50, p95, speech
from callserver.media.frames import SAMPLE_RATE

#: Page loads, joins and ICE on a loaded 2-core machine (as tests/browser.py allows).
CONNECT_TIMEOUT_MS = 60_000
VIEWPORT_W, VIEWPORT_H = 1280, 800
TICK = os.sysconf("SC_CLK_TCK")

#: Participant 0's peer connections: outbound and inbound video, and the sender's encoding.
_STATS_JS = """
async () => {
  const peers = [];
  for (const [id, pc] of Object.entries(window.callserverDebug.peerPcs)) {
    const report = await pc.getStats();
    const codecs = {};
    report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
    let out = null;
    let inb = null;
    report.forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        out = {
          timestamp: s.timestamp, bytesSent: s.bytesSent ?? 0,
          framesEncoded: s.framesEncoded ?? 0, totalEncodeTime: s.totalEncodeTime ?? 0,
          frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
          framesPerSecond: s.framesPerSecond ?? 0,
          qualityLimitationReason: s.qualityLimitationReason ?? "",
          qualityLimitationDurations: s.qualityLimitationDurations ?? {},
          targetBitrate: s.targetBitrate ?? 0,
          encoderImplementation: s.encoderImplementation ?? "",
          codec: codecs[s.codecId] ?? "",
        };
      }
      if (s.type === "inbound-rtp" && s.kind === "video") {
        inb = {
          framesPerSecond: s.framesPerSecond ?? 0, framesDecoded: s.framesDecoded ?? 0,
          frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
          decoderImplementation: s.decoderImplementation ?? "",
        };
      }
    });
    const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
    const enc = sender ? sender.getParameters().encodings[0] : null;
    const encoding = enc ? {
      maxBitrate: enc.maxBitrate ?? null,
      scaleResolutionDownBy: enc.scaleResolutionDownBy ?? null,
      maxFramerate: enc.maxFramerate ?? null,
    } : null;
    peers.push({ id, state: pc.connectionState, out, inb, encoding });
  }
  const track = document.getElementById("local-video").srcObject?.getVideoTracks()[0];
  return { peers, camera: track ? track.getSettings() : null };
}
"""

#: True once the page has ``n`` peer links in the connected state.
_CONNECTED_JS = """
(n) => {
  const d = window.callserverDebug;
  const pcs = Object.values(d.peerPcs);
  return pcs.filter((pc) => pc.connectionState === "connected").length >= n;
}
"""


# ---------------------------------------------------------------------------------------------
# Fake devices


def write_y4m(path: Path, width: int = 1280, height: int = 720, frames: int = 60) -> Path:
    """A seamless ``frames``-long 30 fps I420 clip: textured still scene, moving disc and bar."""
    rng = np.random.default_rng(14)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # A still background with detail: gradients, a coarse grid of shelves, fixed grain.
    back = 90 + 50 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 30 * (xx / width)
    back += 25 * (((xx // 80) + (yy // 60)) % 2)
    back += rng.normal(0, 6, size=back.shape)
    cu = (128 + 30 * np.sin(xx[::2, ::2] / 90.0)).astype(np.uint8)
    cv = (128 + 30 * np.cos(yy[::2, ::2] / 70.0)).astype(np.uint8)
    face = rng.normal(0, 10, size=(height, width)).astype(np.float32)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            phase = 2 * np.pi * i / frames
            # A head-sized disc swaying and bobbing (a person in front of the camera).
            cx = width / 2 + 0.12 * width * np.sin(phase)
            cy = height / 2 + 0.04 * height * np.sin(2 * phase)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.22 * height) ** 2
            luma = back.copy()
            luma[disc] = 170 + face[disc] + 20 * np.sin((xx[disc] - cx) / 15.0)
            # A bar crossing the picture (a hand, a passer-by).
            bar_x = int((i / frames) * width)
            luma[:, bar_x : bar_x + 40] = 230
            u, v = cu.copy(), cv.copy()
            small = disc[::2, ::2]
            u[small], v[small] = 110, 150
            out.write(b"FRAME\n")
            out.write(np.clip(luma, 16, 235).astype(np.uint8).tobytes())
            out.write(u.tobytes())
            out.write(v.tobytes())
    return path


def write_wav(path: Path) -> Path:
    """The test clips, 48 kHz mono s16, as the fake microphone (it loops)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(speech().astype("<i2").tobytes())
    return path


# ---------------------------------------------------------------------------------------------
# CPU from /proc


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user + system ticks) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks) for every process now."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            got = _stat(int(entry.name))
            if got is not None:
                table[int(entry.name)] = got
    return table


def tree_ticks(table: dict[int, tuple[int, int]], root: int) -> dict[int, int]:
    """pid -> CPU ticks for ``root`` and all its descendants in ``table``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, int] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            out[pid] = table[pid][1]
            stack.extend(children.get(pid, []))
    return out


def ticks_delta(before: dict[int, int], after: dict[int, int]) -> int:
    """CPU ticks used between two snapshots of a tree (a process new since counts in full)."""
    return sum(max(0, ticks - before.get(pid, 0)) for pid, ticks in after.items())


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs (busy excludes idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already inside user
    return total - fields[3] - fields[4], total


def allowed_cpus(pid: int) -> str:
    """The CPUs a process may run on, as /proc says (``0-1``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split()[1]
    return "?"


def browser_pid(profile: Path) -> int:
    """The Chromium browser process started with ``--user-data-dir=profile``."""
    marker = f"--user-data-dir={profile}".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if marker in argv and not any(a.startswith(b"--type=") for a in argv):
            return int(entry.name)
    raise RuntimeError(f"no Chromium browser process for {profile}")


# ---------------------------------------------------------------------------------------------
# One call


#: The fake microphone (WAV) and camera (Y4M) files.
Devices = tuple[Path, Path]


def pin(devices_dir: Path) -> str:
    """Give participant 0 CPU 0 alone: everything else here moves to the other CPUs.

    Returns a Chromium launcher pinned to CPU 0. This process (and so the server, Playwright's
    driver and the other browsers it starts) runs on the rest.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least two CPUs")
    os.sched_setaffinity(0, cpus[1:])
    launcher = devices_dir / "chromium-cpu0"
    launcher.write_text(f'#!/bin/sh\nexec taskset -c {cpus[0]} {CHROMIUM} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


@dataclass
class Participant:
    label: str
    context: BrowserContext
    page: Page
    pid: int


@dataclass
class RunResult:
    """Everything one (size, mode, round) measured."""

    size: int
    caps: bool
    round: int
    cpu0: list[float] = field(default_factory=list)  # % of one core, per second
    browsers: list[float] = field(default_factory=list)  # all N trees, % of one core
    server: list[float] = field(default_factory=list)
    machine: list[float] = field(default_factory=list)  # busy, % of one core (max 100 x cores)
    others: list[float] = field(default_factory=list)  # machine less this benchmark's processes
    kbps: list[float] = field(default_factory=list)  # per peer per second
    fps: list[float] = field(default_factory=list)
    received_fps: list[float] = field(default_factory=list)
    sizes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # sampled reason, per peer-second
    limited_s: dict[str, float] = field(default_factory=dict)  # qualityLimitationDurations delta
    encode_ms: list[float] = field(default_factory=list)  # per frame, per peer-second
    sent_frames: list[float] = field(default_factory=list)  # frames encoded/s, all peers
    server_links: list[int] = field(default_factory=list)  # server's audio peer connections
    video_links: list[int] = field(default_factory=list)  # browser 0's connected peer links
    mixed: list[float] = field(default_factory=list)  # server's mixed 20 ms frames per second
    encoder: set[str] = field(default_factory=set)
    codec: set[str] = field(default_factory=set)
    encodings: list[dict[str, Any]] = field(default_factory=list)
    camera: dict[str, Any] | None = None
    join_s: float = 0.0
    allowed_cpus: list[str] = field(default_factory=list)  # per browser, its main process

    def summary(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "peers": self.size - 1,
            "caps": self.caps,
            "round": self.round,
            "join_s": round(self.join_s, 1),
            "samples": len(self.cpu0),
            "cpu0": self.cpu0,
            "browsers": self.browsers,
            "server": self.server,
            "machine": self.machine,
            "others": self.others,
            "kbps_per_peer": self.kbps,
            "fps": self.fps,
            "received_fps": self.received_fps,
            "frame_sizes": dict(self.sizes),
            "reasons": dict(self.reasons),
            "limited_s": self.limited_s,
            "encode_ms_per_frame": self.encode_ms,
            "sent_frames_per_s": self.sent_frames,
            "server_links": self.server_links,
            "video_links": self.video_links,
            "mixed_frames_per_s": self.mixed,
            "encoder": sorted(self.encoder),
            "codec": sorted(self.codec),
            "encodings": self.encodings,
            "camera": self.camera,
            "allowed_cpus": self.allowed_cpus,
        }


async def create_room(session: aiohttp.ClientSession, url: str, capacity: int) -> str:
    async with session.post(url + "/api/rooms", json={"capacity": capacity}) as resp:
        if resp.status != 201:
            raise RuntimeError(f"POST /api/rooms: {resp.status} {await resp.text()}")
        room: dict[str, Any] = await resp.json()
    return str(room["id"])


async def launch(
    pw: Playwright, workdir: Path, label: str, devices: Devices, executable: str = CHROMIUM
) -> Participant:
    audio, video = devices
    profile = workdir / f"profile-{label}"
    context = await pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=executable,
        headless=True,
        args=chromium_flags(audio, fake_video=video),
        viewport={"width": VIEWPORT_W, "height": VIEWPORT_H},
    )
    page = context.pages[0] if context.pages else await context.new_page()
    page.on("pageerror", lambda error: print(f"[{label}] page error: {error}", flush=True))
    return Participant(label, context, page, browser_pid(profile))


async def join(page: Page, url: str, name: str) -> None:
    """Open the invitation, fill the start form and join (as tests/browser.py does)."""
    await page.goto(url)
    await page.wait_for_selector("body[data-ready='true']", timeout=CONNECT_TIMEOUT_MS)
    start = page.locator("#start-screen")
    await start.get_by_label("Your name").fill(name)
    await start.get_by_label("I speak").select_option("en")
    await start.get_by_label("I want to hear").select_option("en")
    await page.get_by_role("button", name="Join the call").click()
    await page.wait_for_function(
        "document.getElementById('state-text').textContent.trim() === 'Connected'",
        timeout=CONNECT_TIMEOUT_MS,
    )


def _rate(before: dict[str, Any], after: dict[str, Any], key: str) -> float:
    """Per second, between two getStats entries (timestamps in ms)."""
    dt = (after["timestamp"] - before["timestamp"]) / 1000
    return (after[key] - before[key]) / dt if dt > 0 else 0.0


async def run_call(
    pw: Playwright,
    server: ServerProcess,
    session: aiohttp.ClientSession,
    size: int,
    caps: bool,
    rnd: int,
    args: argparse.Namespace,
    devices: Devices,
    pinned: str | None,
) -> RunResult:
    result = RunResult(size, caps, rnd)
    room = await create_room(session, server.url, size)
    link = f"{server.url}/?room={room}" + ("" if caps else "&videocaps=off")
    workdir = Path(tempfile.mkdtemp(prefix=f"mesh-{size}-"))
    people: list[Participant] = []
    try:
        people = list(
            await asyncio.gather(
                launch(pw, workdir, "p0", devices, pinned or CHROMIUM),
                *(launch(pw, workdir, f"p{i}", devices) for i in range(1, size)),
            )
        )
        t0 = time.monotonic()
        for i, person in enumerate(people):
            await join(person.page, link, f"P{i}")
        for person in people:
            await person.page.wait_for_function(
                _CONNECTED_JS, arg=size - 1, timeout=CONNECT_TIMEOUT_MS
            )
        result.join_s = time.monotonic() - t0
        result.allowed_cpus = [allowed_cpus(p.pid) for p in people]
        got = await people[0].page.evaluate("window.callserverDebug.videoCaps")
        if bool(got) != caps:
            raise RuntimeError(f"page says videoCaps={got}, wanted {caps}")
        await asyncio.sleep(args.settle)
        await sample(people, server, session, result, args.seconds)
    finally:
        await asyncio.gather(*(p.context.close() for p in people), return_exceptions=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return result


async def sample(
    people: list[Participant],
    server: ServerProcess,
    session: aiohttp.ClientSession,
    result: RunResult,
    seconds: float,
) -> None:
    """For ``seconds``: CPU from /proc every second, and participant 0's getStats.

    Two loops: a starved page can take seconds to answer getStats, which must not thin out
    the CPU samples (rates from getStats use its own timestamps).
    """
    deadline = time.monotonic() + seconds
    cpu = asyncio.create_task(sample_cpu(people, server, result, deadline))
    media = asyncio.create_task(sample_server(session, server.url, result, deadline))
    try:
        await sample_stats(people[0].page, result, deadline)
    finally:
        await asyncio.gather(cpu, media)


async def sample_server(
    session: aiohttp.ClientSession, url: str, result: RunResult, deadline: float
) -> None:
    """Once a second: the server's audio peer connections and mixed frames (its /metrics)."""

    async def scrape() -> tuple[float, str]:
        async with session.get(url + "/metrics") as resp:
            return time.monotonic(), await resp.text()

    t0, text0 = await scrape()
    while time.monotonic() + 1.0 <= deadline:
        await asyncio.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
        t1, text1 = await scrape()
        result.server_links.append(int(metric(text1, "callserver_peer_connections")))
        mixed = metric(text1, "callserver_mixed_frames_total")
        result.mixed.append((mixed - metric(text0, "callserver_mixed_frames_total")) / (t1 - t0))
        t0, text0 = t1, text1


Snapshot = tuple[float, list[dict[int, int]], float, tuple[int, int]]


def snapshot(people: list[Participant], server: ServerProcess) -> Snapshot:
    """Now: each browser's tree, this benchmark's tree, the server and the machine."""
    table = process_table()
    # This benchmark's own tree holds the server, Playwright's driver and the browsers: the
    # machine less that is load from elsewhere.
    trees = [tree_ticks(table, p.pid) for p in people]
    trees.append(tree_ticks(table, os.getpid()))
    return time.monotonic(), trees, server.cpu_seconds(), machine_ticks()


async def sample_cpu(
    people: list[Participant], server: ServerProcess, result: RunResult, deadline: float
) -> None:
    snap0 = snapshot(people, server)
    tick = snap0[0] + 1.0
    while tick <= deadline:
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        tick += 1.0
        snap1 = snapshot(people, server)
        dt = snap1[0] - snap0[0]
        per_core = 100 / TICK / dt
        deltas = [ticks_delta(a, b) for a, b in zip(snap0[1], snap1[1], strict=True)]
        result.cpu0.append(deltas[0] * per_core)
        result.browsers.append(sum(deltas[:-1]) * per_core)
        result.server.append((snap1[2] - snap0[2]) * 100 / dt)
        busy = snap1[3][0] - snap0[3][0]
        result.machine.append(busy * per_core)
        result.others.append(max(0.0, (busy - deltas[-1]) * per_core))
        snap0 = snap1


async def sample_stats(page: Page, result: RunResult, deadline: float) -> None:
    stats0: dict[str, Any] = await page.evaluate(_STATS_JS)
    first = stats0
    asked = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(max(0.0, min(asked + 1.0, deadline) - time.monotonic()))
        asked = time.monotonic()
        stats1: dict[str, Any] = await page.evaluate(_STATS_JS)
        peers0 = {p["id"]: p for p in stats0["peers"]}
        encoded = 0.0
        for peer in stats1["peers"]:
            out, before = peer["out"], peers0.get(peer["id"], {}).get("out")
            if out is None or before is None or out["timestamp"] <= before["timestamp"]:
                continue
            result.kbps.append(_rate(before, out, "bytesSent") * 8 / 1000)
            result.fps.append(float(out["framesPerSecond"]))
            result.sizes[f"{out['frameWidth']}x{out['frameHeight']}"] += 1
            result.reasons[out["qualityLimitationReason"] or "?"] += 1
            frames = out["framesEncoded"] - before["framesEncoded"]
            encoded += _rate(before, out, "framesEncoded")
            if frames > 0:
                spent = out["totalEncodeTime"] - before["totalEncodeTime"]
                result.encode_ms.append(spent / frames * 1000)
            result.encoder.add(out["encoderImplementation"])
            result.codec.add(out["codec"])
            if peer["inb"] is not None:
                result.received_fps.append(float(peer["inb"]["framesPerSecond"]))
        result.sent_frames.append(encoded)
        result.video_links.append(sum(p["state"] == "connected" for p in stats1["peers"]))
        stats0 = stats1
    # Seconds in each quality limitation over the window, summed over the peers.
    start = {p["id"]: p for p in first["peers"]}
    for peer in stats0["peers"]:
        before = start.get(peer["id"], {}).get("out")
        if peer["out"] is None or before is None:
            continue
        for reason, secs in peer["out"]["qualityLimitationDurations"].items():
            was = before["qualityLimitationDurations"].get(reason, 0.0)
            result.limited_s[reason] = result.limited_s.get(reason, 0.0) + secs - was
        result.encodings.append(peer["encoding"])
    result.camera = stats0["camera"]


# ---------------------------------------------------------------------------------------------
# Report


def pooled(runs: list[RunResult], size: int, caps: bool) -> RunResult:
    """The rounds of one (size, mode) as one sample set."""
    out = RunResult(size, caps, -1)
    for r in runs:
        if r.size != size or r.caps != caps:
            continue
        for name in (
            "cpu0",
            "browsers",
            "server",
            "machine",
            "others",
            "kbps",
            "fps",
            "received_fps",
            "encode_ms",
            "sent_frames",
            "server_links",
            "video_links",
            "mixed",
        ):
            getattr(out, name).extend(getattr(r, name))
        out.sizes.update(r.sizes)
        out.reasons.update(r.reasons)
        for reason, secs in r.limited_s.items():
            out.limited_s[reason] = out.limited_s.get(reason, 0.0) + secs
        out.encoder |= r.encoder
        out.codec |= r.codec
        out.encodings = out.encodings or r.encodings
        out.camera = out.camera or r.camera
    return out


def _pp(values: list[float], fmt: str = "{:.0f}") -> tuple[str, str]:
    if not values:
        return "-", "-"
    return fmt.format(p50(values)), fmt.format(p95(values))


def limitation(r: RunResult) -> str:
    total = sum(r.limited_s.values())
    if total <= 0:
        return "-"
    shares = sorted(r.limited_s.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v / total:.0%}" for k, v in shares if v / total >= 0.005)


def links(counts: list[int]) -> str:
    """Connections counted over the window: ``5`` or ``min-max``."""
    if not counts:
        return "-"
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


def cpu_per_frame(r: RunResult) -> str:
    """Browser 0's CPU (ms) per frame it encodes, from the two medians."""
    if not r.cpu0 or not r.sent_frames or p50(r.sent_frames) <= 0:
        return "-"
    return f"{p50(r.cpu0) * 10 / p50(r.sent_frames):.1f}"


def frame_size(r: RunResult) -> str:
    if not r.sizes:
        return "-"
    total = sum(r.sizes.values())
    common = r.sizes.most_common(2)
    text = f"{common[0][0]} ({common[0][1] / total:.0%})"
    if len(common) > 1:
        text += f", {common[1][0]} ({common[1][1] / total:.0%})"
    return text


def report(runs: list[RunResult], sizes: list[int]) -> str:
    lines = [
        "| call size | peers of browser 0 | caps | browser 0 CPU p50 (% of a core) | p95 "
        "| capped / uncapped p50 | all browsers p50 | server p50 | server audio links "
        "| browser 0 video links | machine busy p50 | other load p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    video = [
        "| call size | caps | sent per peer p50 kbit/s | p95 | sent frame size (share) "
        "| sent fps per peer p50 | frames encoded/s, all peers "
        "| browser 0 CPU ms per encoded frame | encode ms/frame p50 "
        "| quality limitation (time share) | received fps p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        base = pooled(runs, size, caps=False)
        for caps in (False, True):
            r = pooled(runs, size, caps)
            c50, c95 = _pp(r.cpu0)
            ratio = (
                f"{p50(r.cpu0) / p50(base.cpu0):.2f}"
                if caps and r.cpu0 and base.cpu0 and p50(base.cpu0) > 0
                else "1.00 (baseline)"
                if not caps
                else "-"
            )
            label = "on" if caps else "off (`?videocaps=off`)"
            lines.append(
                f"| {size} | {size - 1} | {label} | {c50} | {c95} | {ratio} "
                f"| {_pp(r.browsers)[0]} | {_pp(r.server)[0]} | {links(r.server_links)} "
                f"| {links(r.video_links)} | {_pp(r.machine)[0]} "
                f"| {_pp(r.others)[0]} |"
            )
            k50, k95 = _pp(r.kbps)
            video.append(
                f"| {size} | {'on' if caps else 'off'} | {k50} | {k95} | {frame_size(r)} "
                f"| {_pp(r.fps, '{:.1f}')[0]} | {_pp(r.sent_frames)[0]} "
                f"| {cpu_per_frame(r)} | {_pp(r.encode_ms, '{:.1f}')[0]} "
                f"| {limitation(r)} | {_pp(r.received_fps, '{:.1f}')[0]} |"
            )
    return "\n".join(lines) + "\n\n" + "\n".join(video)


def chromium_version() -> str:
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


async def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    version = await asyncio.to_thread(chromium_version)
    devices_dir = Path(tempfile.mkdtemp(prefix="mesh-devices-"))
    runs: list[RunResult] = []
    try:
        audio = write_wav(devices_dir / "speech.wav")
        video = write_y4m(devices_dir / "camera.y4m")
        pinned = pin(devices_dir) if args.pin else None
        server = await ServerProcess.start(**MEDIA_ONLY)
        try:
            async with aiohttp.ClientSession() as session, async_playwright() as pw:
                await server.wait_ready(session)
                for size in args.sizes:
                    for rnd in range(args.rounds):
                        order = (False, True) if rnd % 2 == 0 else (True, False)
                        for caps in order:
                            try:
                                r = await run_call(
                                    pw,
                                    server,
                                    session,
                                    size,
                                    caps,
                                    rnd,
                                    args,
                                    (audio, video),
                                    pinned,
                                )
                            except Exception as error:  # one failed call: say so, go on
                                print(f"size {size} caps {caps} round {rnd} failed: {error!r}")
                                continue
                            print(
                                f"size {size} caps {'on' if caps else 'off'} round {rnd}: "
                                f"browser 0 CPU p50 {p50(r.cpu0):.0f}% "
                                f"(joined in {r.join_s:.1f} s), "
                                f"{p50(r.kbps) if r.kbps else 0:.0f} kbit/s per peer, "
                                f"{frame_size(r)}, {limitation(r)}",
                                flush=True,
                            )
                            runs.append(r)
        finally:
            await server.stop()
    finally:
        shutil.rmtree(devices_dir, ignore_errors=True)
    wall = time.monotonic() - started
    print()
    print(report(runs, args.sizes))
    print(f"\nwall time {wall:.0f} s; {version}")
    if args.json:
        text = json.dumps(
            {
                "sizes": args.sizes,
                "seconds": args.seconds,
                "settle": args.settle,
                "rounds": args.rounds,
                "pin": args.pin,
                "chromium": version,
                "cores": os.cpu_count(),
                "wall_s": round(wall, 1),
                "runs": [r.summary() for r in runs],
            },
            indent=1,
        )
        await asyncio.to_thread(Path(args.json).write_text, text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling window per run")
    parser.add_argument(
        "--settle", type=float, default=8.0, help="wait after connecting (bandwidth ramp-up)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="capped/uncapped pairs per size")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="participant 0 alone on CPU 0, everything else on the other CPUs",
    )
    parser.add_argument("--json", help="write every sample to this file")
    asyncio.run(main(parser.parse_args()))
