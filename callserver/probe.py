"""A scripted caller: joins a room over the real protocol and talks and listens with aiortc.

Tests and benchmarks use it as a participant; operators can use it to check a deployment.
It sends PCM it is given (silence otherwise) and records what it hears with arrival times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16, silence
from callserver.media.processors import DecodeToMono
from callserver.media.tracks import PacedAudioTrack


class ProbeError(Exception):
    """The server refused or did not answer; ``message`` is what it said."""

    def __init__(self, message: dict[str, Any] | str) -> None:
        super().__init__(str(message))
        self.message = message


@dataclass
class Recording:
    """Received audio: 48 kHz mono s16 blocks and the monotonic time each arrived."""

    blocks: list[Pcm16] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def samples(self) -> Pcm16:
        if not self.blocks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.blocks)

    def onset_after(self, t0: float, threshold: float = 500.0) -> float | None:
        """Arrival time of the first block after ``t0`` whose RMS exceeds ``threshold``."""
        for arrival, block in zip(self.arrivals, self.blocks, strict=True):
            if arrival < t0 or block.size == 0:
                continue
            if float(np.sqrt(np.mean(block.astype(np.float64) ** 2))) > threshold:
                return arrival
        return None


class AudioSource:
    """What a scripted caller says: queued 20 ms blocks, silence between, send times kept."""

    def __init__(self) -> None:
        self._outgoing: deque[Pcm16] = deque()
        self._pending_starts: deque[int] = deque()
        self._sent_blocks = 0
        #: Monotonic time at which the first block of each ``play`` left for the encoder.
        self.play_started: list[float] = []

    def play(self, samples: Pcm16) -> None:
        """Queue 48 kHz mono s16 samples to send after what is already queued."""
        padded = np.concatenate((samples, silence((-samples.size) % FRAME_SAMPLES)))
        blocks = padded.astype(np.int16).reshape(-1, FRAME_SAMPLES)
        self._pending_starts.append(self._sent_blocks + len(self._outgoing))
        self._outgoing.extend(blocks)

    @property
    def busy(self) -> bool:
        return bool(self._outgoing)

    @property
    def sent_blocks(self) -> int:
        """Blocks handed to the encoder so far, silence included."""
        return self._sent_blocks

    def next_block(self) -> Pcm16:
        """The next 20 ms to send (a ``PacedAudioTrack`` source)."""
        if self._pending_starts and self._pending_starts[0] == self._sent_blocks:
            self._pending_starts.popleft()
            self.play_started.append(time.monotonic())
        self._sent_blocks += 1
        return self._outgoing.popleft() if self._outgoing else silence()

    def track(self) -> PacedAudioTrack:
        return PacedAudioTrack(self.next_block)


async def record_track(track: MediaStreamTrack, recording: Recording) -> None:
    """Append everything ``track`` delivers to ``recording`` until the track ends."""
    decode = DecodeToMono()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, av.AudioFrame):
            for pcm in decode.process(frame):
                recording.blocks.append(pcm.samples)
                recording.arrivals.append(pcm.captured_at)


class ScriptedCaller:
    """One participant driven by code."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        name: str = "probe",
        spoken: str = "en",
        listen: str = "en",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.name, self.spoken, self.listen = name, spoken, listen
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc: RTCPeerConnection | None = None
        self.channel: RTCDataChannel | None = None
        self.participant_id: str | None = None
        self.recording = Recording()
        self.events: list[dict[str, Any]] = []
        #: Monotonic arrival time of each entry of ``events``.
        self.event_times: list[float] = []
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.source = AudioSource()
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._channel_open = asyncio.Event()
        #: Node URLs a join was redirected to (the distributed mode), in order.
        self.redirects: list[str] = []

    # --- signaling ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the signaling WebSocket."""
        url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.session.ws_connect(url)
        self._reader = asyncio.create_task(self._read_ws())
        self._tasks.append(self._reader)

    async def send(self, message: dict[str, Any]) -> None:
        """Send a protocol message (``v`` is added)."""
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"v": 1, **message}))

    async def expect(self, *kinds: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the next message of one of ``kinds``; raise ``ProbeError`` on an ``error``."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.inbox.get()
                if message.get("type") in kinds:
                    return message
                if message.get("type") == "error":
                    raise ProbeError(message)

    async def join(
        self,
        room: str,
        token: str | None = None,
        max_redirects: int = 3,
        *,
        host_key: str | None = None,
    ) -> dict[str, Any]:
        """Join ``room`` (as its host with ``host_key``), following ``redirect`` to the node
        that holds it; returns the welcome."""
        for _ in range(max_redirects + 1):
            if self.ws is None:
                await self.connect()
            await self.send(
                {
                    "type": "join",
                    "room": room,
                    "name": self.name,
                    "spoken": self.spoken,
                    "listen": self.listen,
                    "token": token,
                    "host_key": host_key,
                }
            )
            reply = await self.expect("welcome", "redirect")
            if reply["type"] == "welcome":
                self.participant_id = reply["participant"]["id"]
                return reply
            self.redirects.append(reply["url"])
            await self._close_signaling()
            self.base_url = str(reply["url"]).rstrip("/")
        raise ProbeError(f"more than {max_redirects} redirects: {self.redirects}")

    async def _close_signaling(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._tasks.remove(self._reader)
            self._reader = None
        self.inbox = asyncio.Queue()

    async def _read_ws(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self.inbox.put(json.loads(msg.data))

    # --- media --------------------------------------------------------------------------------

    async def start_media(self, timeout: float = 15.0) -> None:
        """Offer audio and a data channel to the server and wait until both are up."""
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(self.source.track())
        self.channel = pc.createDataChannel("events")
        self.channel.on("open", self._channel_open.set)
        self.channel.on("message", self._on_event)
        pc.on("track", self._on_track)
        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "sdp": pc.localDescription.sdp})
        answer = await self.expect("answer", timeout=timeout)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        async with asyncio.timeout(timeout):
            await self._channel_open.wait()

    def play(self, samples: Pcm16) -> None:
        """Queue 48 kHz mono s16 samples to send; ``play_started`` gets the send time."""
        self.source.play(samples)

    @property
    def play_started(self) -> list[float]:
        return self.source.play_started

    @property
    def sending(self) -> bool:
        return self.source.busy

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.create_task(record_track(track, self.recording)))

    def _on_event(self, message: str | bytes) -> None:
        with contextlib.suppress(ValueError):
            self.events.append(json.loads(message))
            self.event_times.append(time.monotonic())

    # --- teardown -----------------------------------------------------------------------------

    async def leave(self) -> None:
        """Leave the room (the WebSocket stays open)."""
        await self.send({"type": "leave"})
        await self.expect("left")
        await self.stop_media()

    async def stop_media(self) -> None:
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        self._channel_open.clear()

    async def close(self) -> None:
        """Close media and signaling and stop every task."""
        await self.stop_media()
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def trim_silence(pcm: Pcm16, threshold: float = 300.0) -> Pcm16:
    """``pcm`` without its leading and trailing 20 ms blocks under ``threshold`` RMS (all of
    it when no block is louder)."""
    n = pcm.size // FRAME_SAMPLES
    blocks = pcm[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES).astype(np.float64)
    loud = np.flatnonzero(np.sqrt(np.mean(blocks**2, axis=1)) > threshold)
    if loud.size == 0:
        return pcm
    return pcm[int(loud[0]) * FRAME_SAMPLES : (int(loud[-1]) + 1) * FRAME_SAMPLES]


def load_wav_48k(path: str) -> Pcm16:
    """Decode any audio file to 48 kHz mono s16 with av."""
    decode = DecodeToMono(SAMPLE_RATE)
    blocks: list[Pcm16] = []
    with av.open(path, mode="r") as container:
        for frame in container.decode(audio=0):
            blocks.extend(pcm.samples for pcm in decode.process(frame))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)
