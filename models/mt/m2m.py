"""M2M-100 translation (CTranslate2 + sentencepiece): ``__vi__``-style language tokens.

The engine itself is ``models/mt/ct2.py``; this names the family. Its model is
``CALLSERVER_MT_M2M_MODEL`` from the model store (``callserver models pull m2m100-418M``), MIT
licensed: the choice where NLLB-200's non-commercial licence does not fit.
"""

from __future__ import annotations

from typing import ClassVar

from models.mt.ct2 import Ct2Translator
from models.mt.families import M2M100, ModelFamily


class M2mTranslator(Ct2Translator):
    """M2M-100 in CTranslate2: any two of its 100 languages."""

    family: ClassVar[ModelFamily] = M2M100
