"""Checks on what scripted aiortc callers hear: shared by the call tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from callserver.media.frames import Pcm16
from callserver.probe import Recording, ScriptedCaller
from tests.conftest import envelope, envelope_match, wait_for

#: How far (in 20 ms blocks) the received audio may slip against the clip's best single lag.
#: The mixer's jitter buffer drops frames to catch up and plays silence on an underrun; on a
#: loaded 2-core machine that moved the clip by up to a few blocks mid-way, and a single-lag
#: correlation fell to 0.81 although every word arrived. 5 blocks (100 ms) follows such slips
#: while the reversed clip, the control, stays below 0.7 (measured over 24 loaded runs).
MAX_SLIP_BLOCKS = 5
#: Cost of each block the alignment skips or repeats, in squared standard deviations, so it
#: follows the diagonal unless the audio really slipped. Replayed against 33 loaded recordings
#: each given 0-2 underruns of 1-3 blocks and 0-2 drops of 1-2 blocks (198 in all), 3.0 kept
#: every match above 0.9 and every reversed control at least 0.17 below its match.
SLIP_COST = 3.0


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
) -> None:
    """``speaker`` plays ``clip``; ``listener`` must receive audio whose envelope matches it.

    Give it about 3 s of speech: the slip allowance and the control's margin were measured
    on such clips (a 2 s one leaves the reversed control too close).
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
    match = slipping_envelope_match(clip, heard)
    assert match > 0.9, f"received audio does not match the sent clip (r={match:.2f})"
    # The same measure on the clip played backwards stays low: the check can fail.
    control = slipping_envelope_match(clip[::-1].copy(), heard)
    assert control < match - 0.2
    # How soon it is heard is measured by bench/call_latency.py, not asserted on a loaded
    # machine; the mixer's queue bounds (tests/test_mixer.py) keep the delay from building up.


def slipping_envelope_match(sent: Pcm16, received: Pcm16) -> float:
    """Envelope correlation of ``sent`` with ``received``, letting the alignment slip a little.

    The best single lag is found first (``envelope_match``); then a dynamic-time-warping path
    within ``MAX_SLIP_BLOCKS`` of that lag maps each sent block to a received one, so frames the
    jitter buffer dropped or silence it inserted shift the rest of the clip without ruining the
    whole comparison. What is returned is the Pearson r of the sent envelope and the received
    envelope read along that path.
    """
    a = envelope(sent)
    _, lag_s = envelope_match(sent, received)
    lag = round(lag_s / 0.02)
    start = max(0, lag - MAX_SLIP_BLOCKS)
    b = envelope(received)[start : lag + a.size + MAX_SLIP_BLOCKS]
    b = np.concatenate((b, np.zeros(max(0, lag + a.size + MAX_SLIP_BLOCKS - start - b.size))))
    path = _warp_path(_standardised(a), _standardised(b), diagonal=lag - start)
    warped = b[path]
    if warped.std() == 0:
        return -1.0
    return float(np.corrcoef(a, warped)[0, 1])


def _standardised(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    spread = float(x.std())
    centred: npt.NDArray[np.float64] = x - x.mean()
    return centred / spread if spread else centred


def _warp_path(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], diagonal: int
) -> npt.NDArray[np.intp]:
    """For each index of ``a``, the index of ``b`` on the cheapest monotone path in the band.

    A path pays the squared distance of each pair it reads and ``SLIP_COST`` for each block of
    ``b`` it repeats or skips. Skipped blocks are not read: an underrun's silence is passed over
    for the price of the slip, where a classic warping path had to read it (a 2-block gap cost
    more than 16 and the path ran straight through it, r=0.89 on audio that had every word).
    """
    n, m, inf = a.size, b.size, np.inf
    cost = np.full((n, m), inf)
    came_from = np.zeros((n, m), dtype=np.intp)
    for i in range(n):
        low = max(0, i + diagonal - MAX_SLIP_BLOCKS)
        high = min(m, i + diagonal + MAX_SLIP_BLOCKS + 1)
        for j in range(low, high):
            here = (a[i] - b[j]) ** 2
            if i == 0:
                # The path may start anywhere in the band.
                cost[i, j] = here
                continue
            # From b[k] to b[j]: one block on is the diagonal, any other step is a slip.
            first = max(0, low - 1)
            previous = [cost[i - 1, k] + SLIP_COST * abs(j - k - 1) for k in range(first, j + 1)]
            best = int(np.argmin(previous))
            cost[i, j], came_from[i, j] = here + previous[best], first + best
    path = np.zeros(n, dtype=np.intp)
    path[-1] = int(np.argmin(cost[n - 1]))
    for i in range(n - 1, 0, -1):
        path[i - 1] = came_from[i, path[i]]
    return path
