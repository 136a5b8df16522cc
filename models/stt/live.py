"""Short-window decoding for the utterances of live calls.

faster-whisper pads every input to Whisper's 30 s window, so for a 3 s utterance about 90% of
the encoder's work is padding: on a 2-core CPU, base spends 0.63 s encoding 30 s and 0.08 s
encoding 10 s. CTranslate2's Whisper encoder takes shorter inputs (it slices the position
table), and on utterances that voice detection already cut out the decoder gives the same
words from a window only a little longer than the speech. Here the window is the utterance
plus ``pad_s`` rounded up to ``step_s``, encoded once, and decoded with the same prompt, token
suppression and thresholds faster-whisper uses. A decode that looks wrong (repetitive or low
confidence on audio the model calls speech) is marked doubtful; the engine then tries beam
search in the same window and, for utterances long enough that it can help, the standard 30 s
path.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.stt.audio import SAMPLE_RATE, Audio
from models.stt.doubt import compression_ratio, looks_looped, voiced_seconds
from models.stt.languages import pick_language

log = logging.getLogger(__name__)

#: Mel frames in Whisper's full window (30 s at 10 ms a frame).
FULL_WINDOW_FRAMES = 3000
FRAMES_PER_SECOND = 100
#: Tokens the decoder may produce per second of audio (fast speech is about 5), plus a floor,
#: so a decoder stuck in a loop stops early instead of running to Whisper's 448 tokens.
TOKENS_PER_SECOND = 12
MIN_NEW_TOKENS = 24


@dataclass(frozen=True)
class LiveDecode:
    """One short-window decode: the text and the scores the confidence filters read."""

    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    window_frames: int
    #: The probability the decoder gave the sentence-ending mark the text ends with (None:
    #: the text ends otherwise).
    end_probability: float | None = None
    #: The decode looks wrong (a loop, the token limit, low confidence on speech).
    doubtful: bool = False
    #: Doubtful for too few tokens for the voiced audio: words were likely skipped.
    too_few: bool = False


def window_frames(samples: int, pad_s: float, step_s: float) -> int | None:
    """Encoder frames for an utterance of ``samples``: its length plus ``pad_s``, rounded up
    to ``step_s``; ``None`` when that reaches the full window (nothing to save)."""
    content = samples * FRAMES_PER_SECOND / SAMPLE_RATE
    step = max(1, round(step_s * FRAMES_PER_SECOND))
    frames = math.ceil((content + pad_s * FRAMES_PER_SECOND) / step) * step
    return frames if frames < FULL_WINDOW_FRAMES else None


@dataclass(frozen=True)
class LiveRequest:
    """One utterance for ``decode_live_batch``: its samples and what is known of its language."""

    samples: Audio
    language: str | None = None
    allowed: Sequence[str] | None = None
    #: Whether a doubtful decode is tried again with ``retry_beam_size`` (not for drafts).
    retry: bool = True


@dataclass(frozen=True)
class _Limits:
    """What makes a decode doubtful (see ``decode_live_batch``)."""

    no_speech_threshold: float
    log_prob_threshold: float
    min_logprob: float
    #: Fewest tokens per second of voiced audio (None: no such floor).
    min_token_rate: float | None = None


def decode_live_batch(
    model: Any,
    requests: Sequence[LiveRequest],
    *,
    beam_size: int,
    retry_beam_size: int,
    pad_s: float,
    step_s: float,
    retry_pad_s: float | None,
    no_speech_threshold: float,
    log_prob_threshold: float,
    min_logprob: float,
    min_token_rate: float | None = None,
) -> list[LiveDecode | None]:
    """Transcribe utterances with short encoder windows; blocking, for a worker thread.

    ``model`` is a loaded ``faster_whisper.WhisperModel``. An utterance whose ``language`` is
    None has it detected on the same encoder output, restricted to its ``allowed`` when given.
    An item is ``None`` when the utterance is too long for a short window; it is marked
    ``doubtful`` when its decode looks wrong: a loop, the token limit reached, or an average
    log-probability below ``min_logprob`` on audio the model does not call silent
    (``no_speech_threshold`` and ``log_prob_threshold`` as in faster-whisper), or fewer than
    ``min_token_rate`` tokens per second of voiced audio (``voiced_seconds``): without
    timestamps the decoder can end its text early or jump over a sentence ("Queen of Hearts.
    Could you send me the report?" with 5.6 s of speech between the two); such an item is
    decoded again at once with timestamp tokens, which take the decoder through the window
    segment by segment, before any other retry. Utterances whose windows are the same length
    share one encoder pass and one ``generate``.

    An encoder batch needs one length. Padding every utterance to the longest window would
    batch more but change words (measured on the test clips: "ill-sposed" alone, "ill-disposed"
    in the window of a longer utterance), so utterances are grouped by their own window and
    each gets exactly what it would alone.
    ``step_s`` sets how many distinct windows there are: a larger step batches more. Each
    item gets its own prompt (languages may differ), token budget and verdict.

    A doubtful item (whose request allows it) is decoded again from the same encoder output
    with ``retry_beam_size``, when that is wider than ``beam_size``: on short utterances the
    greedy decoder sometimes starts over ("Yes. Yes.") or drops the first word, and beam
    search fixes that for the decoder's cost alone (docs/benchmarks.md). If the wider search is
    doubtful too, the item is decoded once more, both ways, in the window ``retry_pad_s``
    gives (None: not at all): which words a window hears depends on its length ("and and"
    in 7 s, "and he'll dispose young man" in 5 s), and a second short window costs a tenth
    of the full one. It stays marked doubtful if that decode is doubtful too.
    """
    limits = _Limits(no_speech_threshold, log_prob_threshold, min_logprob, min_token_rate)
    decoded: list[LiveDecode | None] = [None] * len(requests)
    # Once per utterance, for every window it is tried in; 0 (never too few) with no floor.
    voiced = [voiced_seconds(r.samples) if min_token_rate is not None else 0.0 for r in requests]
    windows = _Windows(model, requests, voiced, step_s, beam_size, retry_beam_size, limits)
    windows.decode(range(len(requests)), pad_s, decoded)
    again = [
        i
        for i, item in enumerate(decoded)
        if item is not None and item.doubtful and requests[i].retry
    ]
    if again and retry_pad_s is not None and retry_pad_s != pad_s:
        retried: list[LiveDecode | None] = [None] * len(requests)
        windows.decode(again, retry_pad_s, retried)
        for i in again:
            item = retried[i]
            if item is not None and not item.doubtful:
                decoded[i] = item
    return decoded


@dataclass(frozen=True)
class _Windows:
    """Decodes chosen requests in windows of their length plus a pad, grouped by window."""

    model: Any
    requests: Sequence[LiveRequest]
    voiced_s: Sequence[float]
    step_s: float
    beam_size: int
    retry_beam_size: int
    limits: _Limits

    def decode(self, indices: Sequence[int], pad_s: float, into: list[LiveDecode | None]) -> None:
        """Decode ``requests[i]`` for each of ``indices`` into ``into[i]``; those too long for
        a short window are left as they are."""
        groups: dict[int, list[int]] = {}
        for i in indices:
            frames = window_frames(self.requests[i].samples.size, pad_s, self.step_s)
            if frames is not None:
                groups.setdefault(frames, []).append(i)
        for frames, group in groups.items():
            items = _decode_window(
                self.model,
                [self.requests[i] for i in group],
                [self.voiced_s[i] for i in group],
                frames,
                self.beam_size,
                self.retry_beam_size,
                self.limits,
            )
            for i, item in zip(group, items, strict=True):
                into[i] = item


def _decode_window(
    model: Any,
    requests: Sequence[LiveRequest],
    voiced_s: Sequence[float],
    frames: int,
    beam_size: int,
    retry_beam_size: int,
    limits: _Limits,
) -> list[LiveDecode]:
    """Utterances that share the encoder window ``frames``, decoded as one batch."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    features = []
    for request in requests:
        item = model.feature_extractor(request.samples)
        content = item.shape[-1] - 1  # the extractor appends one frame of padding
        features.append(pad_or_trim(item[:, :content], frames))
    encoder_output = model.encode(np.stack(features))
    languages: list[tuple[str, float]] = []
    detected: list[Any] | None = None
    for row, request in enumerate(requests):
        if request.language is not None:
            languages.append((request.language, 1.0))
            continue
        if detected is None:
            detected = model.model.detect_language(encoder_output)
        languages.append(_pick(detected[row], request.allowed))
    multilingual = bool(model.model.is_multilingual)
    tokenizers = [
        Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
        for language, _ in languages
    ]
    batch = _Batch(
        tokenizers,
        languages,
        [
            MIN_NEW_TOKENS + math.ceil(TOKENS_PER_SECOND * r.samples.size / SAMPLE_RATE)
            for r in requests
        ],
        frames,
        voiced_s,
    )
    decoded = batch.generate(model, encoder_output, beam_size, limits)
    skipping = [row for row, item in enumerate(decoded) if item.too_few and requests[row].retry]
    if skipping:
        # Decoding without timestamps, the decoder may jump from one sentence to the last;
        # with them it goes segment by segment through the window (the skipped sentence's
        # words for 0.34 s where the full window took 2.3 s).
        timed = batch.generate(model, encoder_output, beam_size, limits, timestamps=True)
        for row in skipping:
            decoded[row] = timed[row]
    again = [row for row, item in enumerate(decoded) if item.doubtful and requests[row].retry]
    if again and retry_beam_size > beam_size:
        # One generate over the whole batch, which shares this encoder output; only the
        # doubtful rows take its answer.
        retried = batch.generate(model, encoder_output, retry_beam_size, limits)
        for row in again:
            decoded[row] = retried[row]
    return decoded


@dataclass(frozen=True)
class _Batch:
    """What a window's ``generate`` needs besides the encoder output, one entry per row."""

    tokenizers: list[Any]
    languages: list[tuple[str, float]]
    budgets: list[int]
    frames: int
    voiced_s: Sequence[float]

    def generate(
        self,
        model: Any,
        encoder_output: Any,
        beam_size: int,
        limits: _Limits,
        timestamps: bool = False,
    ) -> list[LiveDecode]:
        """Decode every row, with timestamp tokens or without (their text is the same
        either way: ``decode`` drops them)."""
        from faster_whisper.transcribe import get_suppressed_tokens

        if timestamps:
            prompts = [list(t.sot_sequence) for t in self.tokenizers]
            budgets = [b * 3 // 2 for b in self.budgets]  # two timestamps a segment
        else:
            prompts = [[*t.sot_sequence, t.no_timestamps] for t in self.tokenizers]
            budgets = self.budgets
        results = model.model.generate(
            encoder_output,
            prompts,
            beam_size=beam_size,
            max_length=min(
                model.max_length,
                max(len(p) + b for p, b in zip(prompts, budgets, strict=True)),
            ),
            return_scores=True,
            return_no_speech_prob=True,
            return_logits_vocab=True,
            suppress_blank=True,
            # The suppressed tokens (non-speech symbols, task tokens) do not depend on the
            # language.
            suppress_tokens=get_suppressed_tokens(self.tokenizers[0], (-1,)),
        )
        # The same ids in every language's tokenizer: the vocabulary is shared.
        marks = _mark_tokens(self.tokenizers[0])
        return [
            self._verdict(row, result, marks, beam_size, limits, budgets[row])
            for row, result in enumerate(results)
        ]

    def _verdict(
        self,
        row: int,
        result: Any,
        marks: list[int],
        beam_size: int,
        limits: _Limits,
        budget: int,
    ) -> LiveDecode:
        """One row's decode, marked doubtful where it looks wrong."""
        tokens = result.sequences_ids[0]
        tokenizer = self.tokenizers[row]
        text = tokenizer.decode(tokens).strip()
        # Up to the last text token: a decode with timestamps ends with one.
        spoken = len(tokens)
        while spoken and tokens[spoken - 1] >= tokenizer.eot:
            spoken -= 1
        said = sum(t < tokenizer.eot for t in tokens)
        # The score is the cumulative log-probability over length**1.0; faster-whisper's
        # recovery.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        item = LiveDecode(
            text=text,
            language=self.languages[row][0],
            language_probability=self.languages[row][1],
            avg_logprob=float(avg_logprob),
            no_speech_prob=float(result.no_speech_prob),
            compression_ratio=compression_ratio(text),
            window_frames=self.frames,
            end_probability=_end_probability(
                tokenizer, marks, tokens[:spoken], result.logits[0] if result.logits else []
            ),
        )
        hit_limit = len(tokens) >= budget
        rate = said / self.voiced_s[row] if self.voiced_s[row] > 0 else math.inf
        too_few = limits.min_token_rate is not None and said > 0 and rate < limits.min_token_rate
        if not _doubtful(item, hit_limit or too_few, limits):
            return item
        log.info(
            "short window doubtful",
            extra={
                "window_frames": self.frames,
                "beam_size": beam_size,
                "timestamp_tokens": len(tokens) - said,
                "avg_logprob": round(item.avg_logprob, 3),
                "compression_ratio": round(item.compression_ratio, 2),
                "tokens": said,
                "tokens_per_voiced_s": round(rate, 2),
            },
        )
        return dataclasses.replace(item, doubtful=True, too_few=too_few)


#: Marks that end a sentence, as the tokenizer may write them.
_TERMINAL_MARKS = (".", "?", "!", "。", "？", "！")


def _end_probability(
    tokenizer: Any, marks: list[int], tokens: Sequence[int], logits: Sequence[Any]
) -> float | None:
    """The probability of a sentence-ending mark where the decoder wrote the last one.

    After a whole sentence Whisper is sure of its full stop (0.66-0.91 on the test speech);
    after a fragment it writes one too, but doubts it ("Ask not." 0.52, "He was not." 0.41).
    None when the text does not end in such a mark."""
    if not tokens or not tokenizer.decode(tokens[-1:]).strip().endswith(_TERMINAL_MARKS):
        return None
    if len(logits) < len(tokens):
        return None
    step = np.asarray(logits[len(tokens) - 1], dtype=np.float64)
    probabilities = np.exp(step - step.max())
    probabilities /= probabilities.sum()
    return float(probabilities[[t for t in marks if t < probabilities.size]].sum())


def _mark_tokens(tokenizer: Any) -> list[int]:
    """Single tokens that are a sentence-ending mark, with or without a space before it."""
    found: set[int] = set()
    for mark in _TERMINAL_MARKS:
        for spelling in (mark, " " + mark):
            ids = tokenizer.encode(spelling)
            if len(ids) == 1:
                found.add(ids[0])
    return sorted(found)


def _doubtful(decoded: LiveDecode, miscounted: bool, limits: _Limits) -> bool:
    """A decode to redo: a loop, too many or too few tokens for the audio (``miscounted``), or
    low confidence on audio the model does not call silent."""
    silent = (
        decoded.no_speech_prob > limits.no_speech_threshold
        and decoded.avg_logprob < limits.log_prob_threshold
    )
    return not silent and (
        looks_looped(decoded.text) or decoded.avg_logprob < limits.min_logprob or miscounted
    )


def _pick(ranked: Any, allowed: Sequence[str] | None) -> tuple[str, float]:
    """Most probable language of one item's ``detect_language`` ranking, among ``allowed``."""
    probabilities = [(token[2:-2], float(p)) for token, p in ranked]  # "<|en|>" -> "en"
    if allowed:
        return pick_language(probabilities, allowed)
    return max(probabilities, key=lambda item: item[1])
