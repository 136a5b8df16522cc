"""How much video each browser sends to each other participant, by the size of the call.

Video goes browser to browser (a mesh): a page with five others encodes and uploads its camera
five times. Each page caps what it sends on every direct connection with
``RTCRtpSender.setParameters`` (``encodings[0]``: ``maxBitrate``, ``scaleResolutionDownBy``,
``maxFramerate``) from the row for its number of other participants, and applies the row again
whenever someone joins or leaves. The rows keep a page's whole upload near 1.5-1.75 Mbit/s
whatever the size (1 x 1.5, 3 x 0.6, 5 x 0.35, 7 x 0.25), and shrink the picture as the tiles it
is shown in shrink. The page reads this table from ``web/generated.js`` (``python -m
signaling.webgen``); ``?videocaps=off`` on the page's address turns the caps off to measure
without them. docs/page.md, "Video in a mesh", describes it for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class VideoCap:
    """One row: what a page sends each peer while it has at most ``max_others`` others."""

    #: The row holds while the page has this many other participants or fewer.
    max_others: int
    #: ``encodings[0].maxBitrate``, bits per second, per peer.
    max_bitrate_bps: int
    #: ``encodings[0].scaleResolutionDownBy``: the camera's size divided by this (1.0: as is).
    scale_resolution_down_by: float
    #: ``encodings[0].maxFramerate``, frames per second.
    max_framerate: int

    def __post_init__(self) -> None:
        if self.max_others < 1 or self.max_bitrate_bps <= 0 or self.max_framerate <= 0:
            raise ValueError(f"a video cap needs positive numbers: {self}")
        if self.scale_resolution_down_by < 1.0:
            raise ValueError(f"scale_resolution_down_by must be at least 1.0: {self}")


#: Smallest call first. A call larger than the last row (a server configured for more than
#: eight) uses the last row.
VIDEO_CAPS: tuple[VideoCap, ...] = (
    VideoCap(
        max_others=1, max_bitrate_bps=1_500_000, scale_resolution_down_by=1.0, max_framerate=30
    ),
    VideoCap(max_others=3, max_bitrate_bps=600_000, scale_resolution_down_by=1.5, max_framerate=24),
    VideoCap(max_others=5, max_bitrate_bps=350_000, scale_resolution_down_by=2.0, max_framerate=20),
    VideoCap(max_others=7, max_bitrate_bps=250_000, scale_resolution_down_by=3.0, max_framerate=15),
)


def check_table(rows: tuple[VideoCap, ...]) -> None:
    """Rows strictly by ``max_others``, each sending no more than the one before."""
    if not rows:
        raise ValueError("the video cap table is empty")
    for smaller, larger in pairwise(rows):
        if larger.max_others <= smaller.max_others:
            raise ValueError(f"video cap rows out of order: {smaller} before {larger}")
        if (
            larger.max_bitrate_bps > smaller.max_bitrate_bps
            or larger.scale_resolution_down_by < smaller.scale_resolution_down_by
            or larger.max_framerate > smaller.max_framerate
        ):
            raise ValueError(f"a larger call may not send more: {smaller} before {larger}")


check_table(VIDEO_CAPS)


def cap_for(others: int, rows: tuple[VideoCap, ...] = VIDEO_CAPS) -> VideoCap:
    """The row for a page with ``others`` other participants (the last row beyond the table)."""
    for row in rows:
        if others <= row.max_others:
            return row
    return rows[-1]
