"""The licence of each engine's model, added to what ``/api/engines`` shows.

Models of the catalogue carry their licence (``models/store/catalogue.py``); the engines that
use no catalogue model are licensed with the Debian packages they run (read from each package's
``/usr/share/doc/<package>/copyright``), or by the service they call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.store.catalogue import lookup, spec_holding

#: Engines whose "model" is a program's own data rather than a catalogue model.
ENGINE_LICENCES: dict[str, str] = {
    "apertium": "GPL-2.0",  # apertium-eng-spa's language data (the apertium program: GPL-2+)
    "espeak": "GPL-3.0-or-later",
    "gtts": "Google Translate's terms of service (an online service)",
}
UNKNOWN = "unknown: not a catalogue model (check where it came from)"


def model_licence(model: str) -> str:
    """The licence of a model named by catalogue name, Piper voice name or folder path."""
    spec = lookup(model) or spec_holding(f"{model}.onnx") or lookup(Path(model).name)
    return spec.licence if spec is not None else UNKNOWN


def _entry(info: dict[str, Any], model_key: str) -> dict[str, Any]:
    """``info`` with ``licence`` (and ``non_commercial``) filled in where it is missing."""
    out = dict(info)
    if "licence" not in out:
        engine = str(out.get("engine", ""))
        model = out.get(model_key)
        if engine in ENGINE_LICENCES:
            out["licence"] = ENGINE_LICENCES[engine]
        elif isinstance(model, str) and model:
            out["licence"] = model_licence(model)
    licence = out.get("licence")
    if isinstance(licence, str):
        out["non_commercial"] = "-NC" in licence.upper()
    return out


def with_licences(info: dict[str, Any]) -> dict[str, Any]:
    """``EngineSet.info()`` with each engine's (or each Piper voice's) licence added."""
    out = dict(info)
    stt = out.get("stt")
    if isinstance(stt, dict) and "model" in stt:
        out["stt"] = _entry(stt, "model")
    translation = out.get("translation")
    if isinstance(translation, dict) and isinstance(translation.get("engines"), list):
        engines = [
            _entry(e, "model_name") if isinstance(e, dict) else e for e in translation["engines"]
        ]
        out["translation"] = {**translation, "engines": engines}
    tts = out.get("tts")
    if isinstance(tts, list):
        out["tts"] = [_tts_entry(e) if isinstance(e, dict) else e for e in tts]
    return out


def _tts_entry(info: dict[str, Any]) -> dict[str, Any]:
    if isinstance(info.get("voices"), dict):  # Piper: each voice is its own model
        names = [name for names in info["voices"].values() for name in names]
        return {**info, "licences": {name: model_licence(name) for name in sorted(names)}}
    return _entry(info, "model")
