"""Audio latency through the server against a direct aiortc-to-aiortc connection.

For each utterance A starts a speech clip after silence; the latency is the time from the
first sent block to the first received block above the silence floor at B (one clock: both
callers live in this process). The direct connection is measured in the same run, so the
difference is what the server adds: its own receive jitter buffer (aiortc holds 4 frames,
80 ms, before decoding), the wait for the listener's next 20 ms mix tick, and one more encode.

Run: .venv/bin/python -m bench.call_latency [--utterances 30]
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from bench.common import MEDIA_ONLY, ServerProcess, p50, p95, speech, summary
from callserver.media.frames import SAMPLE_RATE, Pcm16
from callserver.probe import AudioSource, Recording, ScriptedCaller, record_track

GAP_S = 0.8
ONSET_THRESHOLD = 300.0


def utterance(clip: Pcm16) -> Pcm16:
    """Half a second of speech starting at its first loud sample."""
    loud = np.flatnonzero(np.abs(clip) > 2000)
    start = int(loud[0]) if loud.size else 0
    return clip[start : start + SAMPLE_RATE // 2]


async def measure(source: AudioSource, recording: Recording, clip: Pcm16, n: int) -> list[float]:
    latencies: list[float] = []
    for _ in range(n):
        source.play(clip)
        while source.busy:
            await asyncio.sleep(0.02)
        await asyncio.sleep(GAP_S)
        onset = recording.onset_after(source.play_started[-1], ONSET_THRESHOLD)
        if onset is not None:
            latencies.append(onset - source.play_started[-1])
    return latencies


async def direct(clip: Pcm16, n: int) -> list[float]:
    config = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    source, recording = AudioSource(), Recording()
    a.addTrack(source.track())
    tasks: list[asyncio.Task[None]] = []

    def on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.create_task(record_track(track, recording)))

    b.on("track", on_track)
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.sleep(1.0)
    try:
        return await measure(source, recording, clip, n)
    finally:
        await a.close()
        await b.close()
        for task in tasks:
            task.cancel()


async def through_server(clip: Pcm16, n: int) -> list[float]:
    server = await ServerProcess.start(**MEDIA_ONLY)
    try:
        async with aiohttp.ClientSession() as session:
            a = ScriptedCaller(server.url, session, name="A")
            b = ScriptedCaller(server.url, session, name="B")
            await a.join("bench-latency")
            await b.join("bench-latency")
            await a.start_media()
            await b.start_media()
            await asyncio.sleep(1.0)
            try:
                return await measure(a.source, b.recording, clip, n)
            finally:
                await a.close()
                await b.close()
    finally:
        await server.stop()


async def main(n: int) -> None:
    clip = utterance(speech())
    rounds_direct: list[float] = []
    rounds_server: list[float] = []
    # Interleave two rounds of each so drift in machine load hits both alike.
    for _ in range(2):
        rounds_direct += await direct(clip, n // 2)
        rounds_server += await through_server(clip, n // 2)
    added = p50(rounds_server) - p50(rounds_direct)
    print(f"direct aiortc -> aiortc : {summary(rounds_direct)}")
    print(f"through callserver      : {summary(rounds_server)}")
    print(
        f"server adds             : p50 {added * 1000:.1f} ms, "
        f"p95 {(p95(rounds_server) - p95(rounds_direct)) * 1000:.1f} ms; "
        f"ratio p50 {p50(rounds_server) / p50(rounds_direct):.2f}x"
    )
    print("aim                     : <= 80 ms receive jitter buffer + 20 ms = 100 ms at p50")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=30)
    asyncio.run(main(parser.parse_args().utterances))
