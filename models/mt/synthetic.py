"""Builds NLLB-shaped CTranslate2 models with random weights, plus a matching tokenizer.

No NLLB weights can be fetched offline, so tests and benchmarks build a stand-in: the same
architecture as NLLB-200 / M2M100 (pre-norm Transformer, ReLU, scaled and shared embeddings,
no embedding layer norm, ``</s>`` as decoder start token) and, for the benchmark, the same
dimensions. ``family="m2m100"`` gives it M2M-100's ``__vi__`` language tokens instead of
NLLB's ``vie_Latn``. Its output is meaningless but it loads, tokenises, batches and decodes through
the real CTranslate2 and sentencepiece code, and costs the same compute per token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.mt.languages import M2M_CODES, NLLB_CODES

log = logging.getLogger(__name__)

TOKENIZER_FILE = "sentencepiece.bpe.model"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "callserver" / "synthetic-mt"


@dataclass(frozen=True)
class SyntheticDims:
    """Model dimensions. ``vocab_size`` is padded with filler tokens past the tokenizer's."""

    d_model: int
    heads: int
    encoder_layers: int
    decoder_layers: int
    ffn: int
    vocab_size: int
    sp_vocab_size: int = 1000
    quantization: str | None = None
    seed: int = 0
    #: Bumped when the builder changes what it writes, so cached models are rebuilt.
    layout: int = 2
    #: Whose language tokens the vocabulary holds: ``nllb`` or ``m2m100``.
    family: str = "nllb"

    def key(self) -> str:
        """A short stable name for the cache directory."""
        fields = asdict(self)
        if self.family == "nllb":  # NLLB models keep the names they were cached under
            del fields["family"]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        shape = f"{self.d_model}x{self.encoder_layers}+{self.decoder_layers}"
        return f"{self.family}-synth-{shape}-{digest[:12]}"

    def language_tokens(self) -> tuple[str, ...]:
        """The language tokens of the vocabulary, in the family's format."""
        if self.family == "m2m100":
            return tuple(f"__{code}__" for code in M2M_CODES)
        return NLLB_CODES


#: A model small enough to build in well under a second, for tests.
TINY = SyntheticDims(d_model=64, heads=4, encoder_layers=2, decoder_layers=2, ffn=128,
                     vocab_size=1400)  # fmt: skip
#: The same, with M2M-100's language tokens.
TINY_M2M = replace(TINY, family="m2m100")
#: NLLB-200-distilled-600M (facebook/nllb-200-distilled-600M config.json), int8 weights.
NLLB_600M = SyntheticDims(d_model=1024, heads=16, encoder_layers=12, decoder_layers=12,
                          ffn=4096, vocab_size=256_206, quantization="int8")  # fmt: skip


@dataclass(frozen=True)
class SyntheticModel:
    """Where a built model and its tokenizer lie."""

    model_dir: Path
    tokenizer_path: Path


_WORDS_TEXT = (
    "the house is big small we go to market today tomorrow when where why how people city "
    "water coffee morning night friend family work call hear speak language translate voice "
    "tôi bạn nhà lớn nhỏ chúng ta đi chợ hôm nay ngày mai ở đâu tại sao người thành phố nước "
    "la casa es grande pequeña vamos al mercado hoy mañana dónde por qué gente ciudad agua "
    "我们 今天 明天 城市 朋友 家 水 早上 晚上 説話 語言"
)
_WORDS = _WORDS_TEXT.split()


def _training_sentences(count: int, rng: random.Random) -> list[str]:
    ends = (".", "?", "!", "…", "。")
    sentences = []
    for _ in range(count):
        words = rng.choices(_WORDS, k=rng.randint(3, 12))
        sentences.append(" ".join(words).capitalize() + rng.choice(ends))
    return sentences


def build_tokenizer(
    path: Path, vocab_size: int, seed: int = 0, language_tokens: tuple[str, ...] = NLLB_CODES
) -> Path:
    """Train a sentencepiece model whose vocabulary holds every language token."""
    import sentencepiece as spm

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(_training_sentences(400, rng)) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "sp"),
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type="bpe",
            character_coverage=1.0,
            user_defined_symbols=list(language_tokens),
            minloglevel=2,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "sp.model", path)
    return path


def _sp_pieces(tokenizer_path: Path) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _vocabulary(tokenizer_path: Path, size: int, language_tokens: tuple[str, ...]) -> list[str]:
    """NLLB's layout: specials first, tokenizer pieces, language codes, filler to ``size``."""
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokens = list(specials)
    seen = set(tokens)
    for piece in _sp_pieces(tokenizer_path):
        if piece not in seen:
            tokens.append(piece)
            seen.add(piece)
    for code in language_tokens:
        if code not in seen:
            tokens.append(code)
            seen.add(code)
    if len(tokens) > size:
        raise ValueError(f"vocab_size {size} is smaller than the tokenizer's {len(tokens)}")
    tokens += [f"madeupword{i}" for i in range(size - len(tokens))]
    return tokens


class _Weights:
    """Random weights with a fixed seed; float32, small scale so activations stay finite."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def matrix(self, rows: int, cols: int) -> np.ndarray[Any, Any]:
        values: np.ndarray[Any, Any] = self._rng.standard_normal((rows, cols), dtype=np.float32)
        values *= np.float32(1.0 / np.sqrt(cols))
        return values

    def vector(self, size: int) -> np.ndarray[Any, Any]:
        return (self._rng.standard_normal(size, dtype=np.float32) * 0.02).astype(np.float32)


def _set_linear(spec: Any, w: _Weights, rows: int, cols: int) -> None:
    spec.weight = w.matrix(rows, cols)
    spec.bias = w.vector(rows)


def _set_norm(spec: Any, w: _Weights, d: int) -> None:
    spec.gamma = (1.0 + w.vector(d)).astype(np.float32)
    spec.beta = w.vector(d)


def _set_attention(spec: Any, w: _Weights, d: int, *, self_attention: bool) -> None:
    _set_norm(spec.layer_norm, w, d)
    if self_attention:
        _set_linear(spec.linear[0], w, 3 * d, d)
    else:
        _set_linear(spec.linear[0], w, d, d)
        _set_linear(spec.linear[1], w, 2 * d, d)
    _set_linear(spec.linear[-1], w, d, d)


def _set_ffn(spec: Any, w: _Weights, d: int, ffn: int) -> None:
    _set_norm(spec.layer_norm, w, d)
    _set_linear(spec.linear_0, w, ffn, d)
    _set_linear(spec.linear_1, w, d, ffn)


def build_model(directory: Path, dims: SyntheticDims) -> SyntheticModel:
    """Build a model and tokenizer into ``directory`` (created; must not hold a model)."""
    from ctranslate2.specs import common_spec, transformer_spec

    directory.mkdir(parents=True, exist_ok=True)
    languages = dims.language_tokens()
    tokenizer_path = build_tokenizer(
        directory / TOKENIZER_FILE, dims.sp_vocab_size, dims.seed, languages
    )
    vocabulary = _vocabulary(tokenizer_path, dims.vocab_size, languages)
    d = dims.d_model
    spec = transformer_spec.TransformerSpec.from_config(
        (dims.encoder_layers, dims.decoder_layers),
        dims.heads,
        pre_norm=True,
        activation=common_spec.Activation.RELU,
        layernorm_embedding=False,
    )
    spec.config.decoder_start_token = "</s>"  # noqa: S105  (a token, not a secret)
    w = _Weights(dims.seed)
    # NLLB ties the encoder, decoder and output embeddings: one array, aliased on save.
    shared = w.matrix(dims.vocab_size, d)
    # Zero output rows for filler and language codes: their logits stay at 0 while real pieces
    # spread around it, so greedy decoding emits tokenizer pieces, i.e. text of realistic length
    # for the synthesis stage, as a trained model would. The compute per token is unchanged.
    language_set = frozenset(languages)
    silent = [
        i for i, t in enumerate(vocabulary) if t in language_set or t.startswith("madeupword")
    ]
    shared[silent] = 0.0
    spec.encoder.embeddings[0].weight = shared
    spec.decoder.embeddings.weight = shared
    spec.decoder.projection.weight = shared
    _set_norm(spec.encoder.layer_norm, w, d)
    _set_norm(spec.decoder.layer_norm, w, d)
    for layer in spec.encoder.layer:
        _set_attention(layer.self_attention, w, d, self_attention=True)
        _set_ffn(layer.ffn, w, d, dims.ffn)
    for layer in spec.decoder.layer:
        _set_attention(layer.self_attention, w, d, self_attention=True)
        _set_attention(layer.attention, w, d, self_attention=False)
        _set_ffn(layer.ffn, w, d, dims.ffn)
    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.validate()
    spec.optimize(quantization=dims.quantization)
    spec.save(str(directory))
    log.info("built synthetic model", extra={"dir": str(directory), "dims": asdict(dims)})
    return SyntheticModel(directory, tokenizer_path)


def cached_model(dims: SyntheticDims, cache_dir: Path | None = None) -> SyntheticModel:
    """Return the model for ``dims`` from ``cache_dir``, building it there on first use."""
    root = cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR
    target = root / dims.key()
    if (target / "model.bin").is_file() and (target / TOKENIZER_FILE).is_file():
        return SyntheticModel(target, target / TOKENIZER_FILE)
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so a crash never leaves a half model in the cache.
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        build_model(tmp, dims)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "model.bin").is_file():  # not a concurrent builder's result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SyntheticModel(target, target / TOKENIZER_FILE)
