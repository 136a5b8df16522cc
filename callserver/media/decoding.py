"""A guard on aiortc's decoders: an RTP payload of zero bytes must not reach FFmpeg.

aiortc hands FFmpeg an empty packet for an empty payload, and FFmpeg takes an empty packet
for the end of the stream: every later frame of that connection then fails with "End of
file" and the participant is silent for the rest of the call. One padding-only packet or
one broken sender is enough. An empty payload carries no audio, so it is skipped.
"""

from __future__ import annotations

from aiortc import rtcrtpreceiver
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame


class SkipEmptyPayloads(Decoder):
    """Decodes like ``inner``, except that an empty payload decodes to nothing."""

    def __init__(self, inner: Decoder) -> None:
        self.inner = inner

    def decode(self, encoded_frame: JitterFrame) -> list[Frame]:
        if not encoded_frame.data:
            return []
        return self.inner.decode(encoded_frame)


def guarded_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    return SkipEmptyPayloads(get_decoder(codec))


def install() -> None:
    """Make every RTCRtpReceiver (they look the factory up per stream) use the guard."""
    rtcrtpreceiver.get_decoder = guarded_decoder  # type: ignore[attr-defined]
