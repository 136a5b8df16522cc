"""Options of the speech-to-text engine, settable as ``CALLSERVER_STT_<NAME>``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from models.env import EnvSettings

#: Sentences Whisper is known to invent on silence, noise and music (learnt from subtitles).
#: Compared after lower-casing and removing punctuation, and only against the whole output.
DEFAULT_PHANTOM_PHRASES = (
    "Thank you.",
    "Thank you very much.",
    "Thanks.",
    "Thanks for watching!",
    "Thank you for watching!",
    "Thank you for watching. Please subscribe.",
    "Thanks for watching and see you next time.",
    "Please subscribe.",
    "Like and subscribe.",
    "Don't forget to like and subscribe.",
    "Subtitles by the Amara.org community",
    "Subtitles made by the community of Amara.org",
    "Subtitles by",
    "Transcribed by",
    "You",
    "Bye.",
    "Bye!",
    "Okay.",
    "So",
    "Music",
    "[Music]",
    "(music)",
    "Applause",
    "[BLANK_AUDIO]",
    "Sous-titres réalisés par la communauté d'Amara.org",
    "Untertitel im Auftrag des ZDF, 2017",
    "Untertitel der Amara.org-Community",
)


class SttSettings(EnvSettings):
    """Whisper model, hardware and the filters that keep silence and noise from making text."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_STT_", extra="ignore", frozen=True)

    model: str = Field(
        "base", min_length=1, description="Model name from the catalogue, or a model folder path."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto` uses CUDA when CTranslate2 sees a GPU, else the CPU."
    )
    compute_type: str = Field(
        "auto",
        description="CTranslate2 compute type; `auto` is int8 on CPU and float16 on GPU.",
    )
    beam_size: int = Field(5, ge=1, le=20, description="Beam width of the decoder (1 = greedy).")
    live_beam_size: int = Field(
        1,
        ge=1,
        le=20,
        description="Beam width for utterances of live calls, where every 100 ms counts "
        "(greedy decoding was about 15% faster than beam 5 with the same words on the test "
        "clips).",
    )
    live_window: bool = Field(
        True,
        description="Decode live utterances with an encoder window just longer than the "
        "speech instead of Whisper's 30 s (about 4x faster on a CPU); a doubtful result is "
        "decoded again (see `live_window_min_logprob`).",
    )
    live_window_pad_s: float = Field(
        4.0,
        ge=0,
        le=30,
        description="Seconds added to a live utterance to make its encoder window. Less is "
        "faster; with under 2 s the words drift from the full window's on cut-off speech.",
    )
    live_window_retry_pad_s: float | None = Field(
        2.0,
        ge=0,
        le=30,
        description="A short-window decode still doubtful after the beam-search retry is "
        "decoded once more in a window of the utterance plus this many seconds, before the "
        "full window: the words a window hears depend on its length, and on a 2 s utterance "
        "of the long-form call the 7 s window heard 'and and' where 5 s heard the sentence, "
        "in 0.1 s against the full window's 1.25 s (docs/benchmarks.md). Empty, or equal to "
        "`live_window_pad_s`: no such retry.",
    )
    live_window_step_s: float = Field(
        1.0,
        gt=0,
        le=30,
        description="Live windows are rounded up to a multiple of this many seconds.",
    )
    live_full_window_min_s: float = Field(
        2.0,
        ge=0,
        le=30,
        description="A live utterance shorter than this whose short-window decode stays "
        "doubtful after the beam-search retry keeps that decode (unless it loops) instead of "
        "being decoded again in the full 30 s window, which costs about 1 s on a 2-core CPU "
        "and gave the same words on short utterances.",
    )
    live_window_min_logprob: float = Field(
        -0.8,
        le=0,
        description="A short-window decode whose average token log-probability is below "
        "this (on audio the model does not call silent) is doubtful: decoded again in the "
        "short window with `beam_size`, then, if still doubtful, in the full window.",
    )
    live_window_min_token_rate: float | None = Field(
        2.5,
        ge=0,
        description="A short-window decode with fewer tokens than this per second of voiced "
        "audio is doubtful: the decoder ended early or jumped over a sentence (2.0 when it "
        'wrote "Queen of Hearts. Could you send me the report?" over 5.9 s of voice, 5.6 s '
        "of it between the two; whole decodes of the test speech give 4.7-13). A slow speaker "
        "taken for such a decode costs a retry, not words. None: no such check.",
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        description="CPU threads per worker; 0 shares half the CPUs among the workers (at "
        "least 1, at most 4 each), leaving the rest to the calls' media.",
    )
    workers: int = Field(
        2,
        ge=1,
        le=32,
        description="Transcriptions that run at once. Two by default, so a final utterance "
        "never waits for a caption in progress (model weights are shared: about 50 MB more).",
    )
    max_queue: int = Field(
        16, ge=0, description="Requests that may wait for a worker before new ones are refused."
    )
    max_audio_s: float = Field(
        120.0, gt=0, le=3600, description="Longest audio accepted in one request, in seconds."
    )
    no_speech_threshold: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Segments whose no-speech probability is above this are dropped.",
    )
    log_prob_threshold: float = Field(
        -1.0, le=0, description="Segments whose average token log-probability is below are dropped."
    )
    vad_filter: bool = Field(
        True, description="Cut non-speech with Silero VAD before decoding (and skip silence)."
    )
    phantom_phrases: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PHANTOM_PHRASES),
        description="Outputs dropped when they are all that was heard (`|` separated), "
        "e.g. `Thank you.` and subtitle credits Whisper invents on noise.",
    )

    @field_validator("phantom_phrases", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split("|") if item.strip()]
        return value

    @field_validator("compute_type")
    @classmethod
    def _compute_type(cls, value: str) -> str:
        allowed = {
            "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
            "int16", "float16", "bfloat16", "float32",
        }  # fmt: skip
        if value not in allowed:
            raise ValueError(f"compute_type must be one of {', '.join(sorted(allowed))}")
        return value
