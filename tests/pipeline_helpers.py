"""Helpers for tests of translated calls over real aiortc callers: metrics, captions, and
waiting until the pipeline has finished with what the callers said."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from callserver.app import TRANSLATION
from callserver.engines import EngineSet
from callserver.media.frames import SAMPLE_RATE, Pcm16, silence
from callserver.pipeline.settings import PipelineSettings
from callserver.probe import ScriptedCaller
from models.metrics import EngineMetrics
from models.mt.settings import MtSettings
from models.mt.synthetic import SyntheticModel
from tests.conftest import RunningServer, wait_for

#: Generous: CI is a loaded two-core machine running Whisper.
TIMEOUT = 90.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

#: NLLB decoding for a test-built model: random weights may end at once; a few tokens keep
#: the dub non-empty and short.
TINY_NLLB_DECODING: dict[str, Any] = {
    "device": "cpu",
    "threads": 1,
    "beam_size": 1,
    "min_decoding_length": 4,
    "max_decoding_length": 10,
}
#: What the Vietnamese callers say, through espeak-ng (the only offline Vietnamese voice).
VIETNAMESE_TEXT = "Xin chào các bạn. Hôm nay trời đẹp lắm, chúng ta đi uống cà phê nhé."

#: The two callers most tests use: Ann speaks English, Beto listens in Spanish.
ANN = {"name": "Ann", "spoken": "en", "listen": "en"}
BETO = {"name": "Beto", "spoken": "es", "listen": "es"}


@contextlib.asynccontextmanager
async def translating_server(
    make_server: Callable[..., Any], tiny_nllb: SyntheticModel
) -> AsyncIterator[RunningServer]:
    """A server that translates calls: Apertium where it has the pair, else the tiny NLLB
    model; Whisper loaded before the first caller speaks (an interim would come too late).

    Streaming is off: these tests listen for each utterance's dub after its speech ends and
    time it from there, which a clause dubbed mid-sentence would blur (``test_streaming``
    covers that)."""
    engines = EngineSet(
        EngineMetrics(),
        mt_settings=MtSettings(
            engines=["apertium", "nllb"],
            model_path=tiny_nllb.model_dir,
            tokenizer_path=tiny_nllb.tokenizer_path,
            **TINY_NLLB_DECODING,
        ),
    )
    pipeline = PipelineSettings(streaming=False)
    async with make_server(translate_calls=True, engines=engines, pipeline=pipeline) as server:
        await (await engines.stt()).warm_up()
        yield server


async def scrape(server: RunningServer) -> Samples:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    async with server.session.get(server.url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    values: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def sample(values: Samples, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def delta(server: RunningServer, before: Samples, name: str, **labels: str) -> float:
    return sample(await scrape(server), name, **labels) - sample(before, name, **labels)


async def outcomes(server: RunningServer, before: Samples) -> dict[str, float]:
    """How many utterances ended each way since ``before``."""
    names = ("translated", "empty", "echo", "dropped_backlog", "dub_skipped", "failed")
    now = await scrape(server)
    total = "callserver_utterances_total"
    return {
        name: sample(now, total, outcome=name) - sample(before, total, outcome=name)
        for name in names
    }


@contextlib.asynccontextmanager
async def callers(
    server: RunningServer, room: str, *people: dict[str, str]
) -> AsyncIterator[list[ScriptedCaller]]:
    """Join ``people`` (caller keyword arguments) to ``room`` with media up; close them after."""
    joined = [server.caller(**person) for person in people]
    try:
        for caller in joined:
            await caller.join(room)
        await asyncio.gather(*(caller.start_media() for caller in joined))
        yield joined
    finally:
        for caller in joined:
            await caller.close()


async def drain(server: RunningServer, *speakers: ScriptedCaller) -> None:
    """Wait until the pipeline is done with everything ``speakers`` have played.

    First every clip has left the callers, then the server has received as many frames of
    each caller as the caller had sent by then: frames arrive in order, so a frame still on
    its way (socket, jitter buffer, decoder) keeps the count below; a frame lost on the way
    only makes the wait longer, by as many frames of the silence callers keep sending. (A
    caller's 20 ms frame is one frame at the server; junk Opus packets that decode to more
    audio would break that.) Only then can the hub's ``idle`` (nothing queued, detected,
    recognised or translated) speak for what was played.
    """
    hub = server.app[TRANSLATION]
    await wait_for(lambda: not any(s.sending for s in speakers), TIMEOUT)
    sent = {s.participant_id: s.source.sent_blocks for s in speakers}
    await wait_for(
        lambda: all(hub.frames_received(str(pid)) >= n for pid, n in sent.items()), TIMEOUT
    )
    await wait_for(lambda: hub.idle, TIMEOUT)


def captions(caller: ScriptedCaller, speaker: ScriptedCaller | None = None) -> list[dict[str, Any]]:
    """Every caption ``caller`` received (from ``speaker`` when given), in order."""
    return [
        e
        for e in caller.events
        if e.get("type") == "caption"
        and (speaker is None or e.get("speaker") == speaker.participant_id)
    ]


def finals(caller: ScriptedCaller, speaker: ScriptedCaller | None = None) -> list[dict[str, Any]]:
    """Final captions with text that ``caller`` received (from ``speaker`` when given)."""
    return [e for e in captions(caller, speaker) if e.get("final") and e.get("text")]


def latencies(
    caller: ScriptedCaller, utterances: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The latency events of whole utterances (not of streamed pieces) ``caller`` got."""
    wanted = None if utterances is None else set(utterances)
    return [
        e
        for e in caller.events
        if e.get("type") == "latency"
        and e.get("part") != "prefix"
        and (wanted is None or e["utterance_id"] in wanted)
    ]


def dropped(caller: ScriptedCaller, reason: str) -> list[dict[str, Any]]:
    """``caption-dropped`` events with ``reason`` that ``caller`` received."""
    return [
        e for e in caller.events if e.get("type") == "caption-dropped" and e["reason"] == reason
    ]


def utterances_of(caller: ScriptedCaller, speaker: ScriptedCaller) -> set[str]:
    return {e["utterance_id"] for e in finals(caller, speaker)}


def rms(block: Pcm16) -> float:
    return float(np.sqrt(np.mean(block.astype(np.float64) ** 2))) if block.size else 0.0


def received_between(caller: ScriptedCaller, start: float, end: float = float("inf")) -> Pcm16:
    """What ``caller`` received with arrival times in [start, end)."""
    rec = caller.recording
    blocks = [b for t, b in zip(rec.arrivals, rec.blocks, strict=True) if start <= t < end]
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)


def speech_then_silence(samples: Pcm16, silence_s: float = 1.5) -> Pcm16:
    return np.concatenate((samples, silence(int(silence_s * SAMPLE_RATE))))
