"""CPU, memory and mixer underruns per concurrent two-party call.

The server runs as its own process; scripted aiortc callers (in this process) hold N calls at
once, both parties talking all the time (the test clips on a loop). For each N the server's
CPU time and resident memory are read from /proc over a fixed window, and underruns from its
/metrics. The baseline is the same server idle, measured in the same run.

Run: .venv/bin/python -m bench.call_load [--calls 1 4 8 16] [--seconds 10] [--profile 4]

``--profile N`` adds one run of N calls sampled by py-spy and prints where the server's time
went (``bench/profile.py``); its CPU figures are not in the table, as the sampling costs some.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import MEDIA_ONLY, ServerProcess, metric, speech
from bench.profile import Profile, record, summarise
from callserver.media.frames import Pcm16
from callserver.probe import ScriptedCaller


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url + "/metrics") as resp:
        return await resp.text()


async def keep_talking(caller: ScriptedCaller, clip: Pcm16) -> None:
    while True:
        if not caller.sending:
            caller.play(clip)
        await asyncio.sleep(0.2)


async def run_level(
    calls: int, seconds: float, clip: Pcm16, profile: list[Profile] | None = None
) -> dict[str, float]:
    """Hold ``calls`` calls and measure the server; with ``profile``, sample it instead."""
    server = await ServerProcess.start(**MEDIA_ONLY)
    talkers: list[asyncio.Task[None]] = []
    callers: list[ScriptedCaller] = []
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(1.0)
            idle_rss = server.rss_bytes()
            for i in range(calls):
                pair = [ScriptedCaller(server.url, session, name=f"c{i}{x}") for x in "ab"]
                for c in pair:
                    await c.join(f"load-room-{i:03d}")
                    await c.start_media()
                callers += pair
            for n, c in enumerate(callers):
                # Stagger the speakers so the load is steady, not synchronised.
                c.play(clip[: (n * 4801) % len(clip)])
                talkers.append(asyncio.create_task(keep_talking(c, clip)))
            await asyncio.sleep(2.0)  # settle: jitter buffers fill, queues catch up
            before = await scrape(session, server.url)
            cpu0, t0 = server.cpu_seconds(), time.monotonic()
            if profile is None:
                await asyncio.sleep(seconds)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp) / "stacks.txt"
                    await record(server.proc.pid, seconds, out)
                    profile.append(summarise(out))
            cpu1, t1 = server.cpu_seconds(), time.monotonic()
            after = await scrape(session, server.url)
            rss = server.rss_bytes()
            for task in talkers:
                task.cancel()
            for c in callers:
                await c.close()
    finally:
        await server.stop()
    mixed = metric(after, "callserver_mixed_frames_total") - metric(
        before, "callserver_mixed_frames_total"
    )
    underruns = metric(after, "callserver_mixer_underruns_total") - metric(
        before, "callserver_mixer_underruns_total"
    )
    dropped = metric(after, "callserver_mixer_dropped_frames_total") - metric(
        before, "callserver_mixer_dropped_frames_total"
    )
    unsent = metric(after, "callserver_mixer_unsent_frames_total") - metric(
        before, "callserver_mixer_unsent_frames_total"
    )
    cpu = (cpu1 - cpu0) / (t1 - t0)
    return {
        "calls": calls,
        "cpu_core": cpu,
        "cpu_per_call": cpu / calls,
        "rss_mb": rss / 1e6,
        "rss_per_call_mb": (rss - idle_rss) / 1e6 / calls,
        "mixed_per_s": mixed / (t1 - t0),
        "underruns_per_min": underruns / (t1 - t0) * 60,
        "underrun_ratio": underruns / mixed if mixed else 0.0,
        "dropped_per_min": dropped / (t1 - t0) * 60,
        "unsent_per_min": unsent / (t1 - t0) * 60,
    }


async def idle_cpu(seconds: float) -> float:
    server = await ServerProcess.start(**MEDIA_ONLY)
    try:
        await asyncio.sleep(1.0)
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        return (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    finally:
        await server.stop()


async def main(levels: list[int], seconds: float, profile_calls: int | None) -> None:
    clip = speech()
    idle = await idle_cpu(seconds / 2)
    print(f"idle server: {idle * 100:.1f}% of a core")
    print(
        "| calls | server CPU (% of a core) | per call | RSS MB | per call MB "
        "| mixed frames/s | underruns/min | underrun share | catch-up drops/min "
        "| unsent/min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for calls in levels:
        r = await run_level(calls, seconds, clip)
        print(
            f"| {calls} | {r['cpu_core'] * 100:.1f} | {r['cpu_per_call'] * 100:.1f} "
            f"| {r['rss_mb']:.0f} | {r['rss_per_call_mb']:.1f} | {r['mixed_per_s']:.0f} "
            f"| {r['underruns_per_min']:.1f} | {r['underrun_ratio'] * 100:.2f}% "
            f"| {r['dropped_per_min']:.1f} | {r['unsent_per_min']:.1f} |",
            flush=True,
        )
    if profile_calls is not None:
        profiles: list[Profile] = []
        r = await run_level(profile_calls, seconds, clip, profiles)
        print(
            f"\nprofile of the server at {profile_calls} calls ({profiles[0].total} busy samples, "
            f"{r['cpu_core'] * 100:.0f}% of a core while sampled):\n"
        )
        print(profiles[0].table(rows=25))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=int, default=None, metavar="CALLS")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.seconds, args.profile))
