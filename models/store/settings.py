"""Options of the model store, settable as ``CALLSERVER_MODELS_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from models.env import EnvSettings

MODELS_DIR_DEFAULT = Path("~/.cache/callserver/models")
HUB_DEFAULT = "https://huggingface.co"


class StoreSettings(EnvSettings):
    """Where models are kept and where missing ones come from."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_", extra="ignore", frozen=True)

    models_dir: Path = Field(
        MODELS_DIR_DEFAULT,
        description="Folder holding models by name (`<dir>/base/model.bin`); assembled and "
        "downloaded models are written here.",
    )
    models_fallback_dir: Path | None = Field(
        None,
        description="Where models are written when the models folder is read-only or full. "
        "Default: `callserver-models-<uid>` in the system temporary folder.",
    )
    models_hub: str = Field(
        HUB_DEFAULT,
        description="Where missing models are downloaded from: a Hugging Face endpoint "
        "(http/https URL) or a local mirror folder laid out as `<folder>/<repo id>/<files>`.",
    )
    models_auto_download: bool = Field(
        True,
        description="Download a missing model when it is first needed; off: only "
        "`callserver models pull` downloads.",
    )
    models_download_timeout_s: float = Field(
        10.0, gt=0, description="Seconds to wait for the hub to answer each request."
    )

    @field_validator("models_dir", "models_fallback_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("models_hub")
    @classmethod
    def _hub(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("models_hub may not be empty")
        return value.rstrip("/") if value.startswith(("http://", "https://")) else value
