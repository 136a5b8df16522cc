"""Endpointing: turns one speaker's 20 ms speech frames into utterances for recognition.

A small state machine over Silero probabilities: ``idle`` (only a pre-roll ring is kept),
``pending`` (the probability crossed the speech threshold but the minimum speech duration
has not been reached yet, so coughs and clicks die here), and ``speaking``. Hysteresis: speech
starts at ``threshold`` and only counts as stopped below ``release_threshold``.

Times: every time is the ``captured_at`` of some frame. A frame's ``captured_at`` is when the
frame was complete at the server, i.e. the capture time of its end.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from callserver.pipeline.events import (
    SPEECH_FRAME_SAMPLES,
    SPEECH_RATE,
    Float32,
    SpeechDiscarded,
    SpeechFrame,
    SpeechPaused,
    SpeechStarted,
    SpeechUpdate,
    Utterance,
)
from callserver.pipeline.pauses import shorten_pauses
from callserver.pipeline.sentence_end import Verdict
from callserver.pipeline.vad import SileroVad
from models.env import EnvSettings

logger = logging.getLogger(__name__)

FRAME_S = SPEECH_FRAME_SAMPLES / SPEECH_RATE  # 0.02

EndpointEvent = SpeechStarted | SpeechUpdate | SpeechPaused | Utterance | SpeechDiscarded


class EndpointSettings(EnvSettings):
    """When speech starts and ends; settable as ``CALLSERVER_VAD_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_VAD_", extra="ignore", frozen=True)

    threshold: float = Field(
        0.5, gt=0, lt=1, description="Silero speech probability at which speech starts."
    )
    release_threshold: float = Field(
        0.35,
        gt=0,
        lt=1,
        description="Probability below which a frame counts as silence once speech started "
        "(hysteresis: at most `threshold`).",
    )
    silence_ms: int = Field(
        500,
        ge=40,
        le=10_000,
        description="Silence after speech that ends an utterance when its words are not known "
        "yet (recognition busy, or sentence-aware endpointing off).",
    )
    complete_silence_ms: int = Field(
        300,
        ge=0,
        le=10_000,
        description="Silence that ends an utterance whose words, recognised at the pause, "
        "sound complete (a sentence ending in a full stop) and are not all dubbed already as "
        "a streamed piece (`CALLSERVER_PIPELINE_STREAMED_WAIT_WHEN_COMPLETE_MAX_S`); taken as "
        "`tail_ms` when shorter and as `silence_ms` when longer.",
    )
    unfinished_silence_ms: int = Field(
        1000,
        ge=40,
        le=10_000,
        description="Silence that ends an utterance whose words sound unfinished (a "
        "trailing conjunction or article, a full stop the recogniser doubted, very few "
        "words): a pause shorter than this "
        "is taken for one inside the sentence. Also the longest wait for the words to be "
        "known; taken as `silence_ms` when shorter. 1000 rather than 1200: the same words on "
        "the long-form speech, and a speaker who did stop after a fragment waits less "
        "(`bench.long_form_call`).",
    )
    streamed_silence_ms: int = Field(
        1500,
        ge=40,
        le=10_000,
        description="Silence that ends an utterance whose every word up to the pause is "
        "already dubbed as a streamed piece (`CALLSERVER_PIPELINE_STREAMING`; words judged "
        "complete too, within `CALLSERVER_PIPELINE_STREAMED_WAIT_WHEN_COMPLETE_MAX_S`): "
        "the listener is not kept waiting, and a sentence that goes on after the pause is "
        "recognised in one piece, so its words are not cut apart. Taken as `silence_ms` "
        "when shorter.",
    )
    min_speech_ms: int = Field(
        250,
        ge=20,
        le=5_000,
        description="Speech shorter than this (a cough, a click) produces no utterance.",
    )
    max_utterance_s: float = Field(
        12.0,
        ge=2,
        le=60,
        description="Longest utterance; longer speech is cut at the quietest point of the "
        "last `cut_search_s` and the rest starts the next utterance.",
    )
    cut_search_s: float = Field(
        2.0, gt=0, description="How far back from the maximum length a cut point is searched."
    )
    pre_roll_ms: int = Field(
        200,
        ge=0,
        le=2_000,
        description="Audio before the detected start that is included, so first syllables "
        "are not clipped.",
    )
    tail_ms: int = Field(
        200,
        ge=0,
        le=2_000,
        description="Audio after the last voiced frame that is included (at most `silence_ms`).",
    )
    interim_ms: int = Field(
        1000, ge=20, description="Interval of interim updates (audio so far) while speaking."
    )
    pause_kept_ms: int = Field(
        150,
        ge=0,
        le=10_000,
        description="Pauses inside an utterance longer than this are shortened to it in the "
        "audio recognition hears (times keep them): Whisper takes a word before a long pause "
        "for a sentence's end ('calendar end.' for 'calendar and'). On 27 sentences with "
        "pauses, word errors fell by a third, clean and in noise; 150 did best of 100-250 "
        "(`bench.pause_shortening`). 0 keeps pauses whole.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> EndpointSettings:
        if self.release_threshold > self.threshold:
            raise ValueError("release_threshold may not exceed threshold")
        if self.tail_ms > self.silence_ms:
            raise ValueError("tail_ms may not exceed silence_ms")
        if self.cut_search_s >= self.max_utterance_s:
            raise ValueError("cut_search_s must be shorter than max_utterance_s")
        if (self.pre_roll_ms + self.min_speech_ms) / 1000 >= self.max_utterance_s:
            raise ValueError("pre_roll_ms + min_speech_ms must be shorter than max_utterance_s")
        return self


def _frames(ms: float) -> int:
    return round(ms / 1000 / FRAME_S)


class _State(enum.Enum):
    IDLE = "idle"
    PENDING = "pending"
    SPEAKING = "speaking"


@dataclass(slots=True)
class _Frame:
    samples: Float32
    captured_at: float
    prob: float
    energy: float  # mean square


def _new_utterance_id() -> str:
    return "u_" + secrets.token_hex(8)


class Endpointer:
    """``SpeechFrame`` → ``SpeechStarted`` / ``SpeechUpdate`` / ``Utterance`` for one speaker.

    Holds its own ``SileroVad`` state; never feed two speakers through one instance. Memory is
    bounded: at most ``max_utterance_s`` of utterance audio plus the pre-roll ring.
    """

    def __init__(
        self,
        settings: EndpointSettings | None = None,
        vad: SileroVad | None = None,
        new_id: Callable[[], str] = _new_utterance_id,
        awaits_verdicts: bool = False,
    ) -> None:
        self.settings = settings or EndpointSettings()
        self.vad = vad or SileroVad()
        self._new_id = new_id
        s = self.settings
        self._silence_frames = max(1, _frames(s.silence_ms))
        # Kept in order (tail <= complete <= silence <= unfinished) rather than refused, so
        # that setting only silence_ms or tail_ms, as before these existed, still works.
        complete_ms = min(max(s.complete_silence_ms, s.tail_ms), s.silence_ms)
        self._complete_frames = max(1, _frames(complete_ms))
        self._unfinished_frames = max(self._silence_frames, _frames(s.unfinished_silence_ms))
        self._streamed_frames = max(self._silence_frames, _frames(s.streamed_silence_ms))
        self._min_frames = max(1, _frames(s.min_speech_ms))
        self._max_frames = _frames(s.max_utterance_s * 1000)
        self._search_frames = max(1, _frames(s.cut_search_s * 1000))
        self._tail_frames = _frames(s.tail_ms)
        self._kept_frames = _frames(s.pause_kept_ms)
        # A pause is announced once the utterance's tail is complete (one frame of silence at
        # least, so the last voiced frame is known); never when it coincides with the end.
        self._pause_frames = max(1, self._tail_frames)
        if self._pause_frames >= self._silence_frames:
            self._pause_frames = -1
        # Verdicts are given on the words of a pause, so with no pause event there are none.
        self._awaits_verdicts = awaits_verdicts and self._pause_frames > 0
        # The latest verdict given; it counts only for the pause it names.
        self._verdict: tuple[str, float, Verdict] | None = None
        self._interim_frames = max(1, _frames(s.interim_ms))
        self._pre_roll: deque[_Frame] = deque(maxlen=_frames(s.pre_roll_ms))
        self._prob = 0.0
        self._reset_utterance()

    def _reset_utterance(self) -> None:
        self._state = _State.IDLE
        self._frames: list[_Frame] = []  # candidate or utterance, pre-roll included
        self._onset = 0  # index in _frames of the first frame over the threshold
        self._last_voiced = -1  # index in _frames of the last frame over the release
        self._since_update = 0
        self._id = ""

    @property
    def speaking(self) -> bool:
        """Whether an utterance is in progress (started and not yet ended)."""
        return self._state is _State.SPEAKING

    @property
    def idle(self) -> bool:
        """Whether no speech is in progress, not even a candidate shorter than the minimum."""
        return self._state is _State.IDLE

    @property
    def buffered_s(self) -> float:
        """Seconds of audio held right now (utterance so far plus pre-roll)."""
        return (len(self._frames) + len(self._pre_roll)) * FRAME_S

    def process(self, frame: SpeechFrame) -> list[EndpointEvent]:
        if frame.samples.shape != (SPEECH_FRAME_SAMPLES,):
            raise ValueError(f"expected {SPEECH_FRAME_SAMPLES} samples, got {frame.samples.shape}")
        probs = self.vad.push(frame.samples)
        if probs:
            # The latest window ends inside this frame: its probability is the freshest.
            self._prob = probs[-1]
        samples = frame.samples
        rec = _Frame(samples, frame.captured_at, self._prob, float(np.mean(np.square(samples))))
        s = self.settings
        if self._state is _State.IDLE:
            if rec.prob < s.threshold:
                self._pre_roll.append(rec)
                return []
            self._frames = [*self._pre_roll, rec]
            self._pre_roll.clear()
            self._onset = self._last_voiced = len(self._frames) - 1
            self._state = _State.PENDING
            return self._confirm()
        self._frames.append(rec)
        index = len(self._frames) - 1
        if self._voiced(rec):
            self._last_voiced = index
        if self._state is _State.PENDING:
            if not self._voiced(rec):
                self._pre_roll.extend(self._frames)
                self._reset_utterance()
                return []
            return self._confirm()
        silent_for = index - self._last_voiced
        if silent_for >= self._silence_frames_now():
            return [self._finish(rec.captured_at)]
        if len(self._frames) >= self._max_frames:
            return self._cut(rec.captured_at)
        if silent_for == self._pause_frames:
            # Every frame the utterance would keep is here: from now on only a resumption
            # (a new speech_end_at) changes what recognition would be given.
            return [
                SpeechPaused(
                    self._id,
                    self._audio(self._frames[: self._last_voiced + 1 + self._tail_frames]),
                    self._frames[0].captured_at,
                    self._frames[self._last_voiced].captured_at,
                )
            ]
        self._since_update += 1
        if silent_for == 0 and self._since_update >= self._interim_frames:
            # No interim during a pause: the audio has not changed, and recognition is better
            # spent on the utterance that is probably about to end.
            self._since_update = 0
            return [SpeechUpdate(self._id, self._audio(self._frames), self._frames[0].captured_at)]
        return []

    def judge(
        self, utterance_id: str, speech_end_at: float, verdict: Verdict
    ) -> list[EndpointEvent]:
        """What the words of a paused utterance say about its end (``SpeechPaused`` gave the
        id and ``speech_end_at``). A verdict on a pause the speaker has since talked through
        is ignored. Returns the utterance, ended, if the silence already heard suffices."""
        self._verdict = (utterance_id, speech_end_at, verdict)
        if self._state is not _State.SPEAKING:
            return []
        silent_for = len(self._frames) - 1 - self._last_voiced
        if silent_for >= max(self._pause_frames, self._silence_frames_now()):
            return [self._finish(self._frames[-1].captured_at)]
        return []

    def _silence_frames_now(self) -> int:
        """Frames of silence that end the current utterance, given what is known of its
        words: until the verdict on this pause comes, up to the unfinished bound."""
        if not self._awaits_verdicts:
            return self._silence_frames
        given = self._verdict
        if (
            given is None
            or given[0] != self._id
            or given[1] != self._frames[self._last_voiced].captured_at
        ):
            return self._unfinished_frames
        if given[2] is Verdict.COMPLETE:
            return self._complete_frames
        if given[2] is Verdict.UNFINISHED:
            return self._unfinished_frames
        if given[2] is Verdict.STREAMED:
            return self._streamed_frames
        return self._silence_frames

    def flush(self) -> list[EndpointEvent]:
        """End of stream: emit the utterance in progress, if any, as finished (``discard``
        drops it instead)."""
        events: list[EndpointEvent] = []
        if self._state is _State.SPEAKING:
            events.append(self._finish(self._frames[-1].captured_at))
        self._end_stream()
        return events

    def discard(self) -> list[EndpointEvent]:
        """The speaker's audio stops here unfinished (a host muted them): drop the utterance in
        progress instead of passing its first half off as a whole one."""
        events: list[EndpointEvent] = []
        if self._state is _State.SPEAKING:
            first, last = self._frames[0], self._frames[-1]
            events.append(SpeechDiscarded(self._id, first.captured_at, last.captured_at))
            logger.debug("utterance %s discarded unfinished", self._id)
        self._end_stream()
        return events

    def _end_stream(self) -> None:
        # What comes next (after an unmute, say) is not a continuation of this audio: the
        # pre-roll and Silero's recurrent state would leak the old speech into it.
        self._reset_utterance()
        self._pre_roll.clear()
        self._prob = 0.0
        self.vad.reset()

    def _confirm(self) -> list[EndpointEvent]:
        if len(self._frames) - self._onset < self._min_frames:
            return []
        self._state = _State.SPEAKING
        self._id = self._new_id()
        self._since_update = 0
        logger.debug("speech started %s", self._id)
        return [SpeechStarted(self._id, self._frames[0].captured_at)]

    def _voiced(self, frame: _Frame) -> bool:
        """Whether a frame of speech in progress counts as voice (hysteresis: the release
        threshold, not the onset's)."""
        return frame.prob >= self.settings.release_threshold

    def _audio(self, frames: list[_Frame]) -> Float32:
        """The audio of ``frames`` for recognition: pauses inside shortened."""
        voiced = np.array([self._voiced(f) for f in frames], bool)
        return shorten_pauses([f.samples for f in frames], voiced, self._kept_frames)

    def _finish(self, endpoint_at: float) -> Utterance:
        end = min(len(self._frames), self._last_voiced + 1 + self._tail_frames)
        kept, rest = self._frames[:end], self._frames[end:]
        utterance = Utterance(
            utterance_id=self._id,
            audio=self._audio(kept),
            started_at=kept[0].captured_at,
            speech_end_at=self._frames[self._last_voiced].captured_at,
            endpoint_at=endpoint_at,
        )
        logger.debug("utterance %s ended by silence: %.2f s", self._id, len(kept) * FRAME_S)
        self._reset_utterance()
        # What followed the tail may hold the next utterance's first syllable.
        self._pre_roll.extend(rest)
        return utterance

    def cut_point(self) -> int:
        """Index in the current utterance where a cut would go: the quietest point.

        Scores each frame boundary in the last ``cut_search_s`` by speech probability plus
        loudness (dB, normalised over the search span) around it, averaged over 80 ms so a
        real pause wins over one quiet zero crossing.
        """
        frames = self._frames
        lo = max(self._onset + 1, len(frames) - self._search_frames)
        energy_db = 10 * np.log10(np.array([f.energy for f in frames]) + 1e-10)
        probs = np.array([f.prob for f in frames])
        kernel = np.ones(4) / 4
        # smooth[k] averages frames k-2 .. k+1, i.e. 40 ms either side of boundary k.
        padded_db = np.pad(energy_db, (2, 1), mode="edge")
        padded_p = np.pad(probs, (2, 1), mode="edge")
        smooth_db = np.convolve(padded_db, kernel, mode="valid")
        smooth_p = np.convolve(padded_p, kernel, mode="valid")
        span_db = smooth_db[lo:]
        loud = (span_db - span_db.min()) / max(float(np.ptp(span_db)), 1e-6)
        score = loud + smooth_p[lo:]
        return lo + int(np.argmin(score))

    def _cut(self, endpoint_at: float) -> list[EndpointEvent]:
        k = self.cut_point()
        kept, rest = self._frames[:k], self._frames[k:]
        utterance = Utterance(
            utterance_id=self._id,
            audio=self._audio(kept),
            started_at=kept[0].captured_at,
            speech_end_at=kept[min(self._last_voiced, k - 1)].captured_at,
            endpoint_at=endpoint_at,
            cut=True,
        )
        logger.debug("utterance %s cut at max length: %.2f s", self._id, len(kept) * FRAME_S)
        last_voiced = self._last_voiced - k
        self._reset_utterance()
        events: list[EndpointEvent] = [utterance]
        if last_voiced < 0:
            # The remainder is the start of a pause: nothing left to say yet.
            self._pre_roll.extend(rest)
            return events
        self._frames = rest
        self._onset = 0
        self._last_voiced = last_voiced
        self._state = _State.SPEAKING
        self._id = self._new_id()
        events.append(SpeechStarted(self._id, rest[0].captured_at))
        return events
