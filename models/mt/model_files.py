"""Where a CTranslate2 translation engine's model is: a configured folder or the model store.

``CALLSERVER_MT_MODEL_PATH`` (NLLB only, a hand-converted model) wins; otherwise the engine's
catalogue name (``CALLSERVER_MT_MODEL``, ``CALLSERVER_MT_M2M_MODEL``) is resolved by the model
store, which downloads only when ``CALLSERVER_MODELS_AUTO_DOWNLOAD`` is on. Either way the
folder's vocabulary must hold the family's language tokens, so an M2M-100 model is never run
with NLLB's tokens (it would answer nonsense rather than fail).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelMissing
from models.mt.families import FAMILIES, NLLB, ModelFamily
from models.mt.settings import MtSettings
from models.store import ModelStore, lookup

log = logging.getLogger(__name__)

TOKENIZER_FILE = "sentencepiece.bpe.model"
#: Where CTranslate2 keeps a model's vocabulary, newest layout first.
VOCABULARY_FILES = (
    "shared_vocabulary.json",
    "shared_vocabulary.txt",
    "source_vocabulary.json",
    "source_vocabulary.txt",
)


@dataclass(frozen=True)
class Ct2Model:
    """A model folder ready to load. ``name``: its catalogue name, None for a configured folder."""

    path: Path
    tokenizer: Path
    name: str | None
    licence: str


def configured_name(settings: MtSettings, family: ModelFamily) -> str:
    """The catalogue name (or folder) the settings give ``family``'s engine."""
    return settings.model if family is NLLB else settings.m2m_model


def _explicit(settings: MtSettings, family: ModelFamily) -> Path | None:
    return settings.model_path if family is NLLB else None


def installed(settings: MtSettings, family: ModelFamily, store: ModelStore) -> bool:
    """Whether ``family``'s model is on this machine now (no download, no loading)."""
    explicit = _explicit(settings, family)
    if explicit is not None:
        return (explicit / "model.bin").is_file()
    return store.locate(configured_name(settings, family)).source != "missing"


def find_model(settings: MtSettings, family: ModelFamily, store: ModelStore) -> Ct2Model:
    """The model folder of ``family``'s engine; ModelMissing names what fixes it."""
    explicit = _explicit(settings, family)
    name: str | None = None
    licence = "unknown: a configured folder (see where it came from)"
    if explicit is not None:
        folder = Path(explicit)
    else:
        name = configured_name(settings, family)
        spec = lookup(name)
        if spec is not None and spec.family != family.name:
            raise ModelMissing(f"{name!r} is not a {family.title} model")
        # Never fetched at call time: hundreds of MB, under a licence the operator should
        # choose (NLLB is non-commercial). ``callserver models pull`` is the way in.
        folder = store.resolve(name, download=False).path
        if spec is not None:
            licence = spec.licence
    if not (folder / "model.bin").is_file():
        raise ModelMissing(
            f"no CTranslate2 model in {folder}; fetch one with `callserver models pull NAME` or "
            f"make one with: {family.convert_hint}"
        )
    tokenizer = settings.tokenizer_path if family is NLLB and settings.tokenizer_path else None
    tokenizer = tokenizer or folder / TOKENIZER_FILE
    if not Path(tokenizer).is_file():
        raise ModelMissing(
            f"no sentencepiece model at {tokenizer}; copy the model's {TOKENIZER_FILE} there"
            + (" or set CALLSERVER_MT_TOKENIZER_PATH" if family is NLLB else "")
        )
    _check_family(folder, family)
    return Ct2Model(folder, Path(tokenizer), name, licence)


def _vocabulary(folder: Path) -> set[str]:
    for file_name in VOCABULARY_FILES:
        path = folder / file_name
        if not path.is_file():
            continue
        try:
            text = path.read_text("utf-8")
            if file_name.endswith(".json"):
                return {str(token) for token in json.loads(text)}
            return set(text.splitlines())
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise ModelMissing(f"unreadable vocabulary {path}: {exc}") from exc
    raise ModelMissing(f"no vocabulary in {folder} ({', '.join(VOCABULARY_FILES)})")


def _check_family(folder: Path, family: ModelFamily) -> None:
    tokens = _vocabulary(folder)
    if family.marker in tokens:
        return
    others = [other for other in FAMILIES.values() if other.marker in tokens]
    if others:
        other = others[0]
        raise ModelMissing(
            f"{folder} holds an {other.title} model, not {family.title}: list `{other.name}` "
            "in CALLSERVER_MT_ENGINES and point its setting at it"
        )
    raise ModelMissing(f"{folder} has no {family.title} language tokens ({family.marker})")
