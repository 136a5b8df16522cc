"""Helpers for settings read from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

FILE_SUFFIX = "_FILE"
# A value file is a secret or a short setting, never data: refuse anything bigger, so a wrong
# path (a model file, /dev/zero) fails at start with a message instead of filling memory.
FILE_VALUE_MAX_BYTES = 64 * 1024


class SettingsFileError(ValueError):
    """A ``CALLSERVER_<NAME>_FILE`` variable is unusable; fix the variable, a retry won't help."""


def split_list(value: Any) -> Any:
    """Accept ``a,b`` from the environment as well as a real list (a ``mode="before"`` hook)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class FileValues(PydanticBaseSettingsSource):
    """Values named by ``<PREFIX><NAME>_FILE`` variables, read from those files.

    This is how Docker and Kubernetes secrets reach the server (``/run/secrets/...``): every
    setting can be given this way, the secrets are the ones that should be. A trailing newline
    is dropped, because ``echo secret > file`` writes one.
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._prefix = str(settings_cls.model_config.get("env_prefix", ""))
        self._environ = {key.upper(): value for key, value in os.environ.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """One field's value from its file, or None when no file variable names one."""
        name = (self._prefix + field_name).upper()
        path = self._environ.get(name + FILE_SUFFIX)
        if path is None:
            return None, field_name, False
        if name in self._environ:
            raise SettingsFileError(f"{name} and {name}{FILE_SUFFIX} are both set; set only one")
        return _read_value(name + FILE_SUFFIX, Path(path)), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


def _read_value(variable: str, path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(FILE_VALUE_MAX_BYTES + 1)
    except OSError as exc:
        raise SettingsFileError(f"{variable}: cannot read {path}: {exc.strerror}") from exc
    if len(data) > FILE_VALUE_MAX_BYTES:
        raise SettingsFileError(f"{variable}: {path} is over {FILE_VALUE_MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsFileError(f"{variable}: {path} is not UTF-8 text") from exc
    return text.removesuffix("\n").removesuffix("\r")


class EnvSettings(BaseSettings):
    """Settings read from ``CALLSERVER_*`` variables, or from files ``CALLSERVER_*_FILE`` name."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Constructor arguments, then variables, then files named by ``*_FILE`` variables."""
        return (init_settings, env_settings, FileValues(settings_cls), dotenv_settings)
