"""The soak: translated calls held for a long time, the server's resources sampled each minute.

``--calls`` calls (default 4) of scripted callers, both parties talking in turns (A English,
B Spanish, as ``bench.distributed_call``: Whisper base + Apertium + espeak-ng), on one embedded
``callserver serve`` for ``--minutes`` (default 30). Every ``--every`` seconds (default 60) the
server's resident memory, open file descriptors and event-loop tasks are read from its
``/metrics`` (``process_resident_memory_bytes``, ``process_open_fds``,
``callserver_event_loop_tasks``), with the p95 mouth-to-ear of the dubs heard in that interval.
Reported: each sample, and the slope of each series over the run (least squares, per minute),
with the first samples as the baseline the last are compared with. After the calls hang up the
server must be back at its idle figures: no tasks or descriptors left by the calls.

Run: ``.venv/bin/python -m bench.soak [--calls 4] [--minutes 30] [--every 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from bench.common import ServerProcess, metric, p95
from bench.distributed_call import COMMON
from bench.translated_call import SPANISH, both_talking, espeak, pair
from callserver.media.frames import Pcm16

#: Utterance outcomes the server counts (callserver_utterances_total).
OUTCOMES = ("translated", "failed", "dropped_backlog", "dropped_deadline", "dub_skipped")


@dataclass
class Sample:
    """The server's resources at one moment, and the dubs of the interval before it."""

    minute: float
    rss_mb: float
    fds: float
    tasks: float
    #: The server's utterance outcomes so far (translated, failed, dropped_backlog, ...).
    outcomes: dict[str, float] = field(default_factory=dict)
    dubs: int = 0
    p95_s: float = float("nan")


@dataclass
class Soak:
    """What a soak saw: the server idle before the calls, during them, and after they ended."""

    idle: Sample
    samples: list[Sample] = field(default_factory=list)
    after: Sample | None = None

    def slope(self, name: str) -> float:
        """Least-squares slope of one series, per minute (the first sample is warm-up)."""
        points = [(s.minute, getattr(s, name)) for s in self.samples[1:]]
        points = [(x, y) for x, y in points if not np.isnan(y)]
        if len(points) < 2:
            return float("nan")
        xs, ys = np.array(points).T
        return float(np.polyfit(xs, ys, 1)[0])


async def sample(session: aiohttp.ClientSession, server: ServerProcess, minute: float) -> Sample:
    async with session.get(server.url + "/metrics") as response:
        text = await response.text()
    return Sample(
        minute=minute,
        rss_mb=metric(text, "process_resident_memory_bytes") / 2**20,
        fds=metric(text, "process_open_fds"),
        tasks=metric(text, "callserver_event_loop_tasks"),
        outcomes={
            outcome: metric(text, f'callserver_utterances_total{{outcome="{outcome}"}}')
            for outcome in OUTCOMES
        },
    )


async def soak(calls: int, minutes: float, every_s: float, min_samples: int = 0) -> Soak:
    """Hold ``calls`` talking calls for ``minutes`` on a fresh server, sampling every
    ``every_s`` seconds (and at least ``min_samples`` times: an interval ends with the turns
    in progress, so how many fit in ``minutes`` varies); then hang up and sample the server
    idle again."""
    with tempfile.TemporaryDirectory() as tmp:
        spanish: list[Pcm16] = [espeak(text, "es", Path(tmp)) for text in SPANISH]
    server = await ServerProcess.start(**COMMON)
    try:
        async with aiohttp.ClientSession() as session:
            await server.wait_ready(session)
            result = Soak(idle=await sample(session, server, 0.0))
            pairs = [await pair(server, session, f"soak-{i:02d}") for i in range(calls)]
            started = time.monotonic()
            elapsed = 0.0
            while elapsed < minutes * 60 or len(result.samples) < min_samples:
                # Each interval ends when the turns in progress do: a little past every_s.
                latencies = await both_talking(pairs, spanish, every_s)
                elapsed = time.monotonic() - started
                now = await sample(session, server, elapsed / 60)
                now.dubs = len(latencies)
                now.p95_s = p95(latencies) if latencies else float("nan")
                result.samples.append(now)
            for a, b in pairs:
                await a.close()
                await b.close()
            # The server notices the hang-ups and tears the calls down within seconds.
            await asyncio.sleep(5.0)
            result.after = await sample(session, server, elapsed / 60)
    finally:
        await server.stop()
    return result


def report(result: Soak, calls: int, command: str) -> str:
    """Markdown for docs/benchmarks.md."""
    lines = [
        f"Command: `{command}`; {calls} calls, both parties talking in turns.",
        "",
        "| minute | RSS MB | open fds | loop tasks | dubs heard | p95 mouth-to-ear s "
        "| server's utterances so far |",
        "|---|---|---|---|---|---|---|",
        f"| idle | {result.idle.rss_mb:.0f} | {result.idle.fds:.0f} | {result.idle.tasks:.0f} "
        "| - | - | - |",
    ]
    for s in result.samples:
        outcomes = ", ".join(f"{k} {v:.0f}" for k, v in s.outcomes.items() if v)
        lines.append(
            f"| {s.minute:.1f} | {s.rss_mb:.0f} | {s.fds:.0f} | {s.tasks:.0f} | {s.dubs} "
            f"| {s.p95_s:.2f} | {outcomes} |"
        )
    if result.after is not None:
        a = result.after
        lines.append(
            f"| after hang-up | {a.rss_mb:.0f} | {a.fds:.0f} | {a.tasks:.0f} | - | - | - |"
        )
    head, tail = result.samples[1:4], result.samples[-3:]

    def ratio(name: str) -> str:
        first = [getattr(s, name) for s in head if not np.isnan(getattr(s, name))]
        last = [getattr(s, name) for s in tail if not np.isnan(getattr(s, name))]
        if not first or not last:
            return "-"
        return f"{np.median(last) / np.median(first):.2f}"

    lines += [
        "",
        "| series | slope per minute | last 3 samples / samples 2-4 (median) |",
        "|---|---|---|",
        f"| RSS | {result.slope('rss_mb'):+.2f} MB | {ratio('rss_mb')} |",
        f"| open fds | {result.slope('fds'):+.3f} | {ratio('fds')} |",
        f"| loop tasks | {result.slope('tasks'):+.3f} | {ratio('tasks')} |",
        f"| p95 mouth-to-ear | {result.slope('p95_s'):+.3f} s | {ratio('p95_s')} |",
    ]
    return "\n".join(lines)


def main() -> None:
    """Entry point: ``python -m bench.soak``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=60.0)
    args = parser.parse_args()
    command = (
        f"python -m bench.soak --calls {args.calls} --minutes {args.minutes:g} "
        f"--every {args.every:g}"
    )
    result = asyncio.run(soak(args.calls, args.minutes, args.every))
    print(report(result, args.calls, command))


if __name__ == "__main__":
    main()
