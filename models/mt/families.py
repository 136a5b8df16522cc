"""Model families of the CTranslate2 translator: how each writes its language tokens.

NLLB-200 and M2M-100 share one architecture and one input layout (source: language token,
sentencepiece pieces, ``</s>``; decoding forced to start with the target's language token) and
differ only in those tokens: ``vie_Latn`` for NLLB, ``__vi__`` for M2M-100.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.mt.languages import (
    M2M_CODES,
    NLLB_CODES,
    m2m_joiner,
    m2m_tag,
    sentence_joiner,
    to_m2m,
    to_nllb,
    to_tag,
)


@dataclass(frozen=True)
class ModelFamily:
    """One family's language tokens. ``name`` is also the engine's name in the chain."""

    name: str
    title: str
    #: Tag (BCP-47 or NLLB code) to the model's language token; raises UnsupportedLanguage.
    token: Callable[[str], str]
    #: What goes between translated sentences, by the target's language token.
    joiner: Callable[[str], str]
    #: The tags of every language it translates, as published by ``languages()``.
    tags: tuple[str, ...]
    #: A token only this family's vocabulary holds (English's), to recognise a model folder.
    marker: str
    #: How to make such a model by hand, for messages about a missing one.
    convert_hint: str


def _m2m_token(tag: str) -> str:
    return f"__{to_m2m(tag)}__"


def _m2m_joiner(token: str) -> str:
    return m2m_joiner(token.strip("_"))


NLLB = ModelFamily(
    name="nllb",
    title="NLLB-200",
    token=to_nllb,
    joiner=sentence_joiner,
    tags=tuple(to_tag(code) for code in NLLB_CODES),
    marker="eng_Latn",
    convert_hint="ct2-transformers-converter --model facebook/nllb-200-distilled-600M "
    "--output_dir DIR --quantization int8 --copy_files sentencepiece.bpe.model",
)
M2M100 = ModelFamily(
    name="m2m100",
    title="M2M-100",
    token=_m2m_token,
    joiner=_m2m_joiner,
    tags=tuple(m2m_tag(code) for code in M2M_CODES),
    marker="__en__",
    convert_hint="ct2-transformers-converter --model facebook/m2m100_418M "
    "--output_dir DIR --quantization int8 --copy_files sentencepiece.bpe.model",
)
FAMILIES = {family.name: family for family in (NLLB, M2M100)}
