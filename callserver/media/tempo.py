"""Playing a stream of speech faster without raising its pitch, a few milliseconds at a time.

A listener's dubs queue up when they are longer than the speech they translate (espeak-ng's
Spanish for English: up to 1.75x on the long-form speech), and the player catches up by
playing faster. Resampling would raise the pitch with the speed (1.25x: four semitones);
ffmpeg's ``atempo`` filter, bundled with PyAV, time-stretches by overlap-adding windows of
the input at the best-matching offsets (WSOLA style), so the voice keeps its pitch. It runs on
the stream as it plays: about 0.1 ms per 20 ms frame, with the tempo changeable between
frames, and about 40 ms of input buffered inside it.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.filter import Graph

from callserver.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Pcm16

#: Fastest tempo (one atempo stage handles up to 2; a dub faster than that is not speech).
MAX_TEMPO = 2.0


class Stretcher:
    """One stream, fed source samples and read at ``tempo`` times their speed, pitch kept.

    Output starts with the first sample fed and, after ``finish``, ends with the last one.
    """

    def __init__(self, tempo: float) -> None:
        self._graph = Graph()
        source = self._graph.add_abuffer(
            format="s16", sample_rate=SAMPLE_RATE, layout="mono", time_base=Fraction(1, SAMPLE_RATE)
        )
        self._atempo = self._graph.add("atempo", _arg(tempo))
        sink = self._graph.add("abuffersink")
        source.link_to(self._atempo)
        self._atempo.link_to(sink)
        self._graph.configure()
        self.tempo = tempo
        self.finished = False
        self._fed = 0
        self._ready: deque[Pcm16] = deque()
        self.available = 0  # output samples ready to take

    def set_tempo(self, tempo: float) -> None:
        """Change the tempo from the next samples fed on."""
        if tempo != self.tempo:
            self._atempo.process_command("tempo", _arg(tempo))
            self.tempo = tempo

    def feed(self, samples: Pcm16) -> None:
        """Add source samples (any number; the filter takes them a frame at a time)."""
        if self.finished:
            raise RuntimeError("the stream was finished")
        for at in range(0, samples.size, FRAME_SAMPLES):
            frame = AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[None, at : at + FRAME_SAMPLES]),
                format="s16",
                layout="mono",
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._fed
            self._fed += frame.samples
            self._graph.push(frame)
            self._drain()

    def finish(self) -> None:
        """No more source: what the filter still holds becomes available."""
        if not self.finished:
            self.finished = True
            self._graph.push(None)
            self._drain()

    def take(self, count: int) -> Pcm16:
        """Up to ``count`` output samples, oldest first."""
        pieces: list[Pcm16] = []
        while count > 0 and self._ready:
            head = self._ready[0]
            if head.size <= count:
                pieces.append(self._ready.popleft())
            else:
                pieces.append(head[:count])
                self._ready[0] = head[count:]
            count -= pieces[-1].size
            self.available -= pieces[-1].size
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _drain(self) -> None:
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            samples = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            self._ready.append(samples)
            self.available += samples.size


def _arg(tempo: float) -> str:
    if not 0.5 <= tempo <= MAX_TEMPO:
        raise ValueError(f"tempo must be within 0.5..{MAX_TEMPO}, not {tempo}")
    return f"{tempo:.6f}"
