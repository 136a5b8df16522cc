"""Concurrent translated calls: one embedded process against media nodes with a worker.

Both parties of every call talk in turns (A English, B Spanish, configuration (a) of
``bench.translated_call``: Whisper base + Apertium + espeak-ng). Topologies, on this machine:

- ``embedded``: one ``callserver serve`` does everything (the default);
- ``cluster``: two ``callserver serve`` media nodes with ``CALLSERVER_CLUSTER_REMOTE_ENGINES``
  plus one ``callserver worker``, on one Redis; B joins through the other node, so half the
  calls begin with a redirect.

Reported per level: mouth-to-ear p50/p95 (end of speech in the sent audio to the dub's first
sample in the received audio) and the CPU-seconds all the topology's processes spent per
call-minute. Needs a Redis at ``--redis`` (``make test`` starts one on 6379).

Run: .venv/bin/python -m bench.distributed_call [--calls 1 2 4] [--seconds 40]
[--topologies embedded cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from pathlib import Path

import aiohttp

from bench.common import ServerProcess, free_port, p50, p95
from bench.translated_call import SPANISH, both_talking, espeak, pair
from callserver.media.frames import Pcm16

COMMON = {
    "CALLSERVER_PRELOAD_ENGINES": "true",
    "CALLSERVER_CACHE_ENABLED": "false",
    "CALLSERVER_MT_ENGINES": "apertium",
}


async def topology(name: str, redis_url: str) -> tuple[list[ServerProcess], list[ServerProcess]]:
    """(entry nodes, every process) of ``name``, started and ready."""
    if name == "embedded":
        node = await ServerProcess.start(**COMMON)
        return [node], [node]
    cluster = {
        **COMMON,
        "CALLSERVER_REDIS_URL": redis_url,
        "CALLSERVER_CLUSTER_ENABLED": "true",
        "CALLSERVER_CLUSTER_REMOTE_ENGINES": "true",
        "CALLSERVER_CLUSTER_KEY_PREFIX": f"bench-{secrets.token_hex(4)}:",
    }
    worker = await ServerProcess.start("worker", **cluster)
    nodes = []
    for i in range(2):
        # A node's port is part of its URL in the registry: it cannot be 0.
        nodes.append(
            await ServerProcess.start(
                **cluster,
                CALLSERVER_PORT=str(free_port()),
                CALLSERVER_CLUSTER_NODE_ID=f"bench-node-{i}",
            )
        )
    return nodes, [*nodes, worker]


async def level(name: str, calls: int, spanish: list[Pcm16], seconds: float, redis: str) -> str:
    entries, processes = await topology(name, redis)
    try:
        async with aiohttp.ClientSession() as session:
            for node in entries:
                await node.wait_ready(session)
            other = entries[-1]
            pairs = [
                await pair(entries[0], session, f"bench-dist-{i:02d}", b_server=other)
                for i in range(calls)
            ]
            cpu_before = sum(p.cpu_seconds() for p in processes)
            latencies = await both_talking(pairs, spanish, seconds)
            cpu = sum(p.cpu_seconds() for p in processes) - cpu_before
            for a, b in pairs:
                await a.close()
                await b.close()
    finally:
        for process in processes:
            await process.stop()
    per_call_minute = cpu / (calls * seconds / 60)
    low = f"{p50(latencies):.2f}" if latencies else "-"
    high = f"{p95(latencies):.2f}" if latencies else "-"
    return f"| {name} | {calls} | {len(latencies)} | {low} | {high} | {per_call_minute:.1f} |"


async def main(levels: list[int], seconds: float, names: list[str], redis: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spanish = [espeak(text, "es", Path(tmp)) for text in SPANISH]
    print("| topology | calls | dubs heard | p50 s | p95 s | CPU-s per call-minute |")
    print("|---|---|---|---|---|---|")
    for name in names:
        for calls in levels:
            print(await level(name, calls, spanish, seconds, redis), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument(
        "--topologies", nargs="*", choices=("embedded", "cluster"), default=["embedded", "cluster"]
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.seconds, args.topologies, args.redis))
