"""Run every benchmark in turn: ``python -m bench`` (or ``make bench``). Takes about 30 minutes
on 2 cores; run one with ``python -m bench.<name>``. Figures go in docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS: list[tuple[str, list[str]]] = [
    ("call_latency", []),
    ("call_load", ["--profile", "4"]),
    ("stt", []),
    ("stt_live", []),
    ("translate", []),
    ("tts", []),
    ("translated_call", []),
    ("distributed_call", []),
    ("mesh_video", ["--pin"]),
]


def main() -> int:
    failed = 0
    for name, args in BENCHMARKS:
        print(f"\n# bench.{name}", flush=True)
        failed += subprocess.run([sys.executable, "-m", f"bench.{name}", *args]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
