"""The scripted callers of `make test-deploy`: tones both ways through Traefik, and leaving."""

from __future__ import annotations

import aiohttp

from callserver.media.frames import SAMPLE_RATE
from callserver.probe import ScriptedCaller
from signaling.tokens import mint_token
from tests.deploy.engine import ScenarioError, wait_until
from tests.media_helpers import tone
from tests.pipeline_helpers import rms

TRAEFIK = "http://127.0.0.1:80"
LOUD = 1000.0  # RMS of a received 20 ms block that counts as the other caller's tone


def loud_seconds(caller: ScriptedCaller, after: float, before: float = float("inf")) -> float:
    """Seconds of the other caller's tone that ``caller`` received between two times."""
    rec = caller.recording
    blocks = 0
    for arrival, block in zip(list(rec.arrivals), list(rec.blocks), strict=False):
        if not (after <= arrival < before and block.size):
            continue
        if rms(block) > LOUD:
            blocks += 1
    return blocks * 0.02


async def hears_each_other(a: ScriptedCaller, b: ScriptedCaller, since: float) -> None:
    async def both() -> bool | None:
        return True if loud_seconds(a, since) > 1.0 and loud_seconds(b, since) > 1.0 else None

    await wait_until("audio both ways", both, timeout=30, interval=0.2)


async def open_call(
    session: aiohttp.ClientSession, room: str, secret: str, names: tuple[str, str]
) -> tuple[ScriptedCaller, ScriptedCaller]:
    """Two callers in ``room`` through Traefik, each playing its own tone for two minutes."""
    token = mint_token(secret.encode("utf-8"), room, 600)
    a = ScriptedCaller(TRAEFIK, session, name=names[0])
    b = ScriptedCaller(TRAEFIK, session, name=names[1])
    for caller, freq in ((a, 440.0), (b, 660.0)):
        await caller.join(room, token)
        await caller.start_media()
        caller.play(tone(freq, 120 * SAMPLE_RATE))
    return a, b


async def leave_while_draining(caller: ScriptedCaller) -> str:
    """Leave the room; the server must answer `left` even to the last caller of its drain."""
    await caller.send({"type": "leave"})
    try:
        await caller.expect("left", timeout=10)
    except TimeoutError as exc:
        raise ScenarioError(f"{caller.name}: no 'left' within 10 s of leaving") from exc
    await caller.stop_media()
    return f"{caller.name}: 'left'"
