"""Signs that a decode went wrong: a decoder loop in the text, or too little text for the
voice in the audio (``models.stt.live`` reads them to mark a short-window decode doubtful)."""

from __future__ import annotations

import re
import zlib

import numpy as np
import numpy.typing as npt

from models.stt.audio import SAMPLE_RATE, Audio

#: faster-whisper's defaults: above this ratio the text is a loop, not speech.
COMPRESSION_RATIO_LIMIT = 2.4
#: A unit of one to four characters repeated five times running ("-d-d-d-d-d", "------"): a
#: decoder loop too short for the compression ratio to catch.
_STUTTER = re.compile(r"(.{1,4}?)\1{4,}", re.DOTALL)
#: A phrase of this many words or more said twice back to back: with little padding after
#: the speech, the decoder sometimes starts the utterance over ("Hello? Can you hear me now?
#: Hello? Can you hear me now?"); gzip does not see a single repeat as a loop.
REPEATED_PHRASE_WORDS = 3
_WORD = re.compile(r"\w+", re.UNICODE)
#: ``voiced_seconds``: frames this close to the loudest one, and above this level, are speech.
VOICED_RANGE_DB = 30.0
VOICED_FLOOR_DBFS = -50.0


def frame_power(samples: np.ndarray, frame: int) -> npt.NDArray[np.float64]:
    """Mean square of each whole ``frame``-sample frame of ``samples`` (float64; a partial
    last frame is left out)."""
    count = samples.size // frame
    squares = np.square(samples[: count * frame].reshape(count, frame), dtype=np.float64)
    power: npt.NDArray[np.float64] = squares.mean(axis=1)
    return power


def voiced_seconds(samples: Audio) -> float:
    """Seconds of ``samples`` (16 kHz float) in 20 ms frames within ``VOICED_RANGE_DB`` of the
    loudest frame and above ``VOICED_FLOOR_DBFS``: the speech in an utterance, less its pauses.
    A noise floor close to the speech counts less, never more, so the estimate errs short."""
    power = frame_power(samples, SAMPLE_RATE // 50)
    if power.size == 0:
        return 0.0
    level = 10 * np.log10(power + 1e-12)
    threshold = max(float(level.max()) - VOICED_RANGE_DB, VOICED_FLOOR_DBFS)
    return float(np.count_nonzero(level > threshold)) / 50


def compression_ratio(text: str) -> float:
    """How well ``text`` gzips: repeated phrases (a decoder loop) compress far better."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeats_a_phrase(text: str, min_words: int = REPEATED_PHRASE_WORDS) -> bool:
    """True when some run of at least ``min_words`` words comes twice in a row."""
    words = _WORD.findall(text.casefold())
    for size in range(min_words, len(words) // 2 + 1):
        for start in range(len(words) - 2 * size + 1):
            if words[start : start + size] == words[start + size : start + 2 * size]:
                return True
    return False


def said_over(text: str) -> bool:
    """True when the whole text is one phrase, of any length, said two or more times
    ("Yes. Yes."): on a short utterance the greedy decoder sometimes starts over."""
    words = _WORD.findall(text.casefold())
    return any(
        len(words) % size == 0 and words == words[:size] * (len(words) // size)
        for size in range(1, len(words) // 2 + 1)
    )


def looks_looped(text: str) -> bool:
    """A decoder loop: high compression, a stutter, or a phrase said twice running."""
    return (
        compression_ratio(text) > COMPRESSION_RATIO_LIMIT
        or _STUTTER.search(text) is not None
        or repeats_a_phrase(text)
        or said_over(text)
    )
