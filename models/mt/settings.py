"""Translation options, settable as ``CALLSERVER_MT_<NAME>``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from models.env import EnvSettings, split_list

ENGINE_NAMES = ("apertium", "nllb")


class MtSettings(EnvSettings):
    """Which translation engines run, in what order, and every limit they enforce."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_MT_", extra="ignore", frozen=True)

    engines: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["apertium", "nllb"],
        description="Engines tried in this order for each language pair (comma separated). "
        "The first that serves a pair translates it; on a retryable failure the next one does.",
    )

    # --- NLLB (CTranslate2) -----------------------------------------------------------------
    model_path: Path | None = Field(
        None,
        description="Folder of an NLLB-200 model in CTranslate2 format (model.bin, "
        "shared_vocabulary.json). Unset: the NLLB engine is left out of the chain.",
    )
    tokenizer_path: Path | None = Field(
        None,
        description="NLLB's sentencepiece model. Default: sentencepiece.bpe.model in model_path.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where NLLB runs; auto picks CUDA when a GPU is visible."
    )
    device_index: int = Field(0, ge=0, description="GPU index when device is cuda.")
    compute_type: str = Field(
        "default",
        description="CTranslate2 compute type (default keeps the model's own: int8, "
        "int8_float16, float16, float32, auto...).",
    )
    threads: int = Field(
        0, ge=0, description="CPU threads per NLLB worker (0: CTranslate2 chooses)."
    )
    beam_size: int = Field(2, ge=1, le=16, description="NLLB beam width; 1 is greedy search.")
    max_input_chars: int = Field(
        2000, ge=1, description="Longest text accepted for one translation; longer is refused."
    )
    max_input_tokens: int = Field(
        256,
        ge=4,
        le=1020,
        description="Longest sentence in tokens. A longer sentence is refused with "
        "invalid_input (never truncated: dropping speech silently is worse than an error).",
    )
    max_decoding_length: int = Field(
        256,
        ge=2,
        le=1024,
        description="Most tokens NLLB generates for one sentence (the language token included).",
    )
    min_decoding_length: int = Field(
        0,
        ge=0,
        description="Fewest tokens NLLB generates; 0 in service. Benchmarks set it to "
        "max_decoding_length so every run costs the same.",
    )
    batch_size: int = Field(
        16, ge=1, le=256, description="Sentences per translate_batch call in translate_many."
    )
    workers: int = Field(1, ge=1, le=64, description="NLLB calls running at once.")
    max_queue: int = Field(
        32, ge=0, description="NLLB calls waiting beyond workers before overload errors."
    )

    # --- Apertium ---------------------------------------------------------------------------
    apertium_command: str = Field("apertium", description="The apertium program.")
    apertium_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds one apertium run may take before it is killed (with the running "
        "pipeline: one text, and its start-up for the first).",
    )
    apertium_persistent: bool = Field(
        True,
        description="Keep one Apertium pipeline running per language pair and feed it text by "
        "text (milliseconds a sentence); false starts apertium for every call (about 140 ms).",
    )
    apertium_workers: int = Field(2, ge=1, le=64, description="Apertium runs at once.")
    apertium_max_queue: int = Field(
        32, ge=0, description="Apertium runs waiting beyond workers before overload errors."
    )
    apertium_max_input_chars: int = Field(
        5000, ge=1, description="Longest text Apertium accepts for one translation."
    )

    _split_engines = field_validator("engines", mode="before")(split_list)

    @field_validator("engines")
    @classmethod
    def _known_engines(cls, value: list[str]) -> list[str]:
        names = [name.lower() for name in value]
        unknown = sorted(set(names) - set(ENGINE_NAMES))
        if unknown:
            raise ValueError(f"unknown engines {unknown}; known: {', '.join(ENGINE_NAMES)}")
        if len(set(names)) != len(names):
            raise ValueError("an engine is listed twice")
        return names

    @model_validator(mode="after")
    def _lengths(self) -> MtSettings:
        if self.min_decoding_length > self.max_decoding_length:
            raise ValueError("min_decoding_length is above max_decoding_length")
        return self
