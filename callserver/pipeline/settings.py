"""Options of the live translation pipeline (``CALLSERVER_PIPELINE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from models.env import EnvSettings


class PipelineSettings(EnvSettings):
    """How calls are recognised, translated and dubbed."""

    model_config = SettingsConfigDict(
        env_prefix="CALLSERVER_PIPELINE_", extra="ignore", frozen=True
    )

    max_pending_utterances: int = Field(
        4,
        ge=1,
        description="Utterances waiting for recognition, server-wide; past this the oldest "
        "waiting one is dropped (with a caption marker) so latency cannot build up.",
    )
    recognition_slots: int = Field(
        2,
        ge=1,
        le=64,
        description="Utterances recognised at once, server-wide (match "
        "`CALLSERVER_STT_WORKERS`: more only queue inside the engine, where the backlog bound "
        "cannot see them).",
    )
    early_recognition: bool = Field(
        True,
        description="Start recognising an utterance when the speaker pauses (after the "
        "endpoint's tail), not when the endpoint's silence has passed; the result is used only "
        "if speech did not resume, so the words are the same, sooner. Only when recognition "
        "is idle.",
    )
    interim_captions: bool = Field(
        True,
        description="Transcribe speech in progress for revisable captions, when recognition "
        "is idle (never delays final text).",
    )
    whisper_translate: bool = Field(
        False,
        description="For listeners who hear English, translate speech no translation engine "
        "serves with Whisper's own translate task. Off: with Whisper base on Vietnamese it "
        "invented sentences (docs/benchmarks.md); larger models may be worth it on a GPU.",
    )
    echo_window_s: float = Field(
        20.0,
        gt=0,
        description="How long what a participant was sent (dub and caption text) is remembered "
        "to recognise it coming back through their microphone.",
    )
    echo_similarity: float = Field(
        0.65,
        gt=0,
        le=1,
        description="Similarity (0-1; words close in spelling, or letters aligned) between an "
        "utterance and recently sent text above which it is taken for echo and dropped.",
    )
    transcript_max_entries: int = Field(
        5000, ge=10, description="Final captions kept per room for the transcript download."
    )
    frame_queue_max: int = Field(
        250,
        ge=10,
        description="20 ms frames buffered per speaker before voice detection (5 s); a "
        "speaker whose detection falls this far behind loses the oldest frames.",
    )
