"""Checks on what scripted aiortc callers hear: shared by the call tests."""

from __future__ import annotations

import numpy as np

from callserver.media.frames import Pcm16
from callserver.probe import Recording, ScriptedCaller
from tests.conftest import envelope_match, wait_for


def heard_after(recording: Recording, mark: int, t0: float) -> int:
    """Samples received since block ``mark`` from the first loud block arriving after ``t0``."""
    onset = recording.onset_after(t0)
    if onset is None:
        return 0
    return sum(
        block.size
        for arrival, block in zip(recording.arrivals[mark:], recording.blocks[mark:], strict=True)
        if arrival >= onset
    )


async def speak_and_check(
    speaker: ScriptedCaller,
    listener: ScriptedCaller,
    clip: Pcm16,
    timeout: float = 30.0,
    min_match: float = 0.9,
) -> None:
    """``speaker`` plays ``clip``; ``listener`` must receive audio whose envelope matches it.

    ``min_match`` is the correlation required; the mixer's own tests keep 0.9, tests of what
    carries the call (a proxy) may ask less, since a loaded machine drops a frame or two.
    """
    mark = len(listener.recording.blocks)
    speaker.play(clip)
    await wait_for(lambda: not speaker.sending, timeout=timeout)
    # The clip's first loud block starts the count, so once a clip's length has arrived after
    # it, its end has crossed both legs however long they took.
    started = speaker.play_started[-1]
    await wait_for(
        lambda: heard_after(listener.recording, mark, started) >= clip.size, timeout=timeout
    )
    heard = np.concatenate(listener.recording.blocks[mark:])
    match, _ = envelope_match(clip, heard)
    assert match > min_match, f"received audio does not match the sent clip (r={match:.2f})"
    # The same measure on the clip played backwards stays low: the check can fail.
    control, _ = envelope_match(clip[::-1].copy(), heard)
    assert control < match - 0.2
    # How soon it is heard is measured by bench/call_latency.py, not asserted on a loaded
    # machine; the mixer's queue bounds (tests/test_mixer.py) keep the delay from building up.
