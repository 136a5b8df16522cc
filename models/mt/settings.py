"""Translation options, settable as ``CALLSERVER_MT_<NAME>``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from models.env import EnvSettings, split_list
from models.store.catalogue import CATALOGUE, lookup
from models.store.store import looks_like_path

ENGINE_NAMES = ("apertium", "nllb", "m2m100")


class MtSettings(EnvSettings):
    """Which translation engines run, in what order, and every limit they enforce."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_MT_", extra="ignore", frozen=True)

    engines: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["apertium", "nllb"],
        description="Engines tried in this order for each language pair (comma separated): "
        "`apertium`, `nllb`, `m2m100`. The first that serves a pair translates it; on a "
        "retryable failure the next one does. An engine whose model is not installed is left "
        "out and claims no pair.",
    )

    recheck_s: float = Field(
        10.0,
        ge=0,
        description="How often engines that could not start (their model not pulled yet) are "
        "tried again, so a model pulled while the server runs is used without a restart; "
        "0 never tries again.",
    )

    # --- NLLB and M2M-100 (CTranslate2) -----------------------------------------------------
    model: str = Field(
        "nllb-200-distilled-600M",
        description="The `nllb` engine's model: a name from `callserver models list` (fetched "
        "by `callserver models pull NAME` into the models folder; CC-BY-NC-4.0, non-commercial) "
        "or a folder. Never downloaded at call time (hundreds of MB, a licence to choose): "
        "pull it.",
    )
    m2m_model: str = Field(
        "m2m100-418M",
        description="The `m2m100` engine's model (MIT licence), a name or a folder as for "
        "CALLSERVER_MT_MODEL.",
    )
    model_path: Path | None = Field(
        None,
        description="Folder of a hand-converted NLLB-200 model in CTranslate2 format "
        "(model.bin, shared_vocabulary.*); when set it wins over CALLSERVER_MT_MODEL.",
    )
    tokenizer_path: Path | None = Field(
        None,
        description="NLLB's sentencepiece model. Default: sentencepiece.bpe.model beside the "
        "model.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where NLLB and M2M-100 run; auto picks CUDA when a GPU is visible."
    )
    device_index: int = Field(0, ge=0, description="GPU index when device is cuda.")
    compute_type: str = Field(
        "default",
        description="CTranslate2 compute type (default keeps the model's own: int8, "
        "int8_float16, float16, float32, auto...).",
    )
    threads: int = Field(
        0, ge=0, description="CPU threads per NLLB or M2M-100 worker (0: CTranslate2 chooses)."
    )
    beam_size: int = Field(
        2, ge=1, le=16, description="NLLB and M2M-100 beam width; 1 is greedy search."
    )
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
        description="Most tokens NLLB or M2M-100 generates for one sentence (the language "
        "token included).",
    )
    min_decoding_length: int = Field(
        0,
        ge=0,
        description="Fewest tokens NLLB or M2M-100 generates; 0 in service. Benchmarks set it to "
        "max_decoding_length so every run costs the same.",
    )
    batch_size: int = Field(
        16, ge=1, le=256, description="Sentences per translate_batch call in translate_many."
    )
    workers: int = Field(
        1, ge=1, le=64, description="NLLB (and M2M-100) calls running at once, per engine."
    )
    max_queue: int = Field(
        32,
        ge=0,
        description="NLLB (and M2M-100) calls waiting beyond workers before overload errors.",
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

    @field_validator("model", "m2m_model")
    @classmethod
    def _model_name(cls, value: str, info: ValidationInfo) -> str:
        family = "nllb" if info.field_name == "model" else "m2m100"
        value = value.strip()
        if looks_like_path(value):
            return value
        known = sorted(s.name for s in CATALOGUE.values() if s.family == family)
        spec = lookup(value)
        if spec is None or spec.family != family:
            raise ValueError(f"{value!r} is not a {family} model; known: {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _lengths(self) -> MtSettings:
        if self.min_decoding_length > self.max_decoding_length:
            raise ValueError("min_decoding_length is above max_decoding_length")
        return self
