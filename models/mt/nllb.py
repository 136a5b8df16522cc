"""NLLB-200 translation (CTranslate2 + sentencepiece): ``vie_Latn``-style language tokens.

The engine itself is ``models/mt/ct2.py``; this names the family. Its model is
``CALLSERVER_MT_MODEL`` from the model store (``callserver models pull nllb-200-distilled-600M``)
or a hand-converted folder in ``CALLSERVER_MT_MODEL_PATH``. NLLB-200's weights are
CC-BY-NC-4.0: non-commercial use only.
"""

from __future__ import annotations

from typing import ClassVar

from models.mt.ct2 import EOS, Ct2Translator, resolve_device
from models.mt.families import NLLB, ModelFamily

CONVERT_HINT = NLLB.convert_hint

__all__ = ["CONVERT_HINT", "EOS", "NllbTranslator", "resolve_device"]


class NllbTranslator(Ct2Translator):
    """NLLB-200 in CTranslate2: any two of its 202 languages."""

    family: ClassVar[ModelFamily] = NLLB
