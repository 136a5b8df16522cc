"""Sampling profiles of a running server with py-spy, summarised as tables for the docs.

py-spy reads the process from outside (no instrumentation, so the figures are not skewed by
the profiler's own cost in the server) and writes collapsed stacks; ``summarise`` turns them
into the share of samples spent in each function itself (self) and below it (inclusive).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: Leaves where a thread waits rather than works. py-spy's own idle detection reads the
#: thread's state from /proc, which in this container says "running" for a thread blocked in
#: epoll or on a lock, so waiting samples are dropped by where they wait instead.
IDLE_LEAVES = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
        "_worker (concurrent/futures/thread.py)",  # its own line is the blocking queue get
        "_wait_for_tstate_lock (threading.py)",
    }
)

#: ``function (path/to/file.py:line)`` as py-spy writes a frame.
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str:
    """The py-spy binary (installed with the test extras)."""
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: run `make install-test`")
    return found


async def record(pid: int, seconds: float, out: Path, rate: int = 200) -> None:
    """Sample ``pid`` for ``seconds`` into collapsed stacks at ``out``."""
    proc = await asyncio.create_subprocess_exec(
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--threads",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace').strip()[-400:]}")


@dataclass(frozen=True)
class Profile:
    """Busy samples per function: where the time was spent (self) and below (inclusive)."""

    total: int
    idle: int
    own: Counter[str]
    inclusive: Counter[str]

    def table(self, rows: int = 15, min_share: float = 0.0) -> str:
        """Markdown: the functions with the most self time, with their inclusive share."""
        lines = ["| function | self | inclusive |", "|---|---|---|"]
        for name, count in self.own.most_common(rows):
            if count / self.total < min_share:
                break
            own, below = 100 * count / self.total, 100 * self.inclusive[name] / self.total
            lines.append(f"| `{name}` | {own:.1f}% | {below:.1f}% |")
        return "\n".join(lines)


def _name(frame: str) -> str:
    """``func (file)`` without the line: py-spy already writes paths relative to sys.path."""
    match = _FRAME.match(frame.strip())
    return frame.strip() if match is None else f"{match['func']} ({match['file']})"


def summarise(collapsed: Path) -> Profile:
    """Read py-spy's ``--format raw`` output (``frame;frame;... count`` per line); shares are
    of the busy samples, waiting ones (``IDLE_LEAVES``) left out."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # The first frame is the thread ("process 1:"/"thread (0x...)"): not a function.
        frames = [_name(f) for f in stack.split(";")[1:]] or [_name(stack)]
        if frames[-1] in IDLE_LEAVES:
            idle += count
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return Profile(total=max(total, 1), idle=idle, own=own, inclusive=inclusive)
