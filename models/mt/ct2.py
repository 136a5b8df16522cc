"""Translation with a CTranslate2 sequence-to-sequence model and its sentencepiece tokenizer.

The engine of NLLB-200 and M2M-100 (``models/mt/families.py``: only their language tokens
differ). Input follows their (non-legacy, transformers >= 4.29) tokenizer convention: the source
is ``[source language token] + pieces + ["</s>"]`` and decoding is forced to start with the
target's language token (``target_prefix``), which is stripped from the output. Texts are split
into sentences, because these models were trained on sentences and degrade on paragraphs; all
sentences of one ``translate_many`` call go through ``translate_batch`` in batches of
``batch_size``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from models.errors import EngineError, EngineUnavailable, InvalidInput, ModelMissing
from models.interfaces import TranslationRequest
from models.metrics import EngineMetrics
from models.mt.engine import LanguageSupport, recorded
from models.mt.families import ModelFamily
from models.mt.model_files import find_model
from models.mt.model_files import installed as model_installed
from models.mt.sentences import split_sentences
from models.mt.settings import MtSettings
from models.pool import InferencePool
from models.store import ModelStore

log = logging.getLogger(__name__)

EOS = "</s>"


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class Ct2Translator:
    """A CTranslate2 translator of one model family. Blocking work runs in its own pool.

    Subclasses name the family; the model comes from ``model_files.find_model`` (the settings'
    folder or the model store), so a missing model stops the engine from being built at all
    and it never claims a pair it cannot translate.
    """

    family: ClassVar[ModelFamily]
    name: str

    def __init__(
        self,
        settings: MtSettings,
        metrics: EngineMetrics | None = None,
        store: ModelStore | None = None,
    ) -> None:
        import ctranslate2
        import sentencepiece as spm

        family = self.family
        self.name = family.name
        model = find_model(settings, family, store if store is not None else ModelStore())
        self.settings = settings
        self.metrics = metrics
        self.device = resolve_device(settings.device)
        self.model_path = model.path
        self.tokenizer_path = model.tokenizer
        #: Catalogue name and licence of the model, for /api/engines.
        self.model_name = model.name
        self.licence = model.licence
        try:
            #: The CTranslate2 translator; public so tests can wrap it to count calls.
            self.translator: Any = ctranslate2.Translator(
                str(model.path),
                device=self.device,
                device_index=settings.device_index,
                compute_type=settings.compute_type,
                inter_threads=settings.workers,
                intra_threads=settings.threads,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelMissing(
                f"cannot load {family.title} model from {model.path}: {exc}"
            ) from exc
        self._sp = spm.SentencePieceProcessor(model_file=str(model.tokenizer))
        self._unk_id = self._sp.unk_id()
        self._pool = InferencePool(f"mt-{family.name}", settings.workers, settings.max_queue)
        log.info(
            "translation model loaded",
            extra={
                "engine": family.name,
                "model": str(model.path),
                "device": self.device,
                "compute_type": settings.compute_type,
                "licence": model.licence,
            },
        )

    @classmethod
    def installed(cls, settings: MtSettings, store: ModelStore | None = None) -> bool:
        """Whether this engine's model is on this machine now (cheap: no download, no load)."""
        return model_installed(settings, cls.family, store if store is not None else ModelStore())

    # --- languages ----------------------------------------------------------------------------

    def supports(self, src: str, tgt: str) -> bool:
        """Any two of the family's languages."""
        try:
            self.family.token(src)
            self.family.token(tgt)
        except EngineError:
            return False
        return True

    def languages(self) -> LanguageSupport:
        """All the family's languages, any pair."""
        return LanguageSupport(self.name, self.family.tags, None)

    # --- tokens -------------------------------------------------------------------------------

    def encode(self, sentence: str, src_code: str) -> list[str]:
        """Source tokens: language token, pieces, ``</s>``; refuses a sentence over
        ``max_input_tokens``."""
        pieces: list[str] = self._sp.encode(sentence, out_type=str)
        tokens = [src_code, *pieces, EOS]
        if len(tokens) > self.settings.max_input_tokens:
            raise InvalidInput(
                f"a sentence is {len(tokens)} tokens; the limit is "
                f"{self.settings.max_input_tokens} (CALLSERVER_MT_MAX_INPUT_TOKENS)"
            )
        return tokens

    def decode(self, tokens: Sequence[str], tgt_code: str) -> str:
        """Text of an output hypothesis, without the language prefix or special tokens."""
        if tokens and tokens[0] == tgt_code:
            tokens = tokens[1:]
        # Language codes, specials and filler are not pieces of the tokenizer: drop them.
        pieces = [t for t in tokens if self._sp.piece_to_id(t) != self._unk_id]
        text: str = self._sp.decode(pieces)
        return text.strip()

    # --- translation --------------------------------------------------------------------------

    def _check_text(self, text: object) -> str:
        if not isinstance(text, str):
            raise InvalidInput(f"text must be a string, not {type(text).__name__}")
        if len(text) > self.settings.max_input_chars:
            raise InvalidInput(
                f"text is {len(text)} characters; the limit is {self.settings.max_input_chars} "
                "(CALLSERVER_MT_MAX_INPUT_CHARS)"
            )
        return text

    def translate_sync(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Blocking batch translation; call it from a worker thread, never the event loop."""
        answer = self.translate_requests_sync([TranslationRequest(texts, src, tgt)])[0]
        if isinstance(answer, EngineError):
            raise answer
        return answer

    def translate_requests_sync(
        self, requests: Sequence[TranslationRequest]
    ) -> list[list[str] | EngineError]:
        """Blocking: the sentences of every request, whatever its pair, through the same
        ``translate_batch`` calls, each sentence with its own source tag and target prefix.
        A request that cannot be encoded gets its error; the others are still translated."""
        sources: list[list[str]] = []
        targets: list[str] = []
        #: Per request: its sentence count per text and its target code, or its error.
        counts: list[tuple[list[int], str] | EngineError] = []
        for request in requests:
            try:
                src_code = self.family.token(request.source)
                tgt_code = self.family.token(request.target)
                per_text: list[int] = []
                encoded: list[list[str]] = []
                for text in request.texts:
                    parts = split_sentences(self._check_text(text))
                    per_text.append(len(parts))
                    encoded.extend(self.encode(part, src_code) for part in parts)
            except EngineError as exc:
                counts.append(exc)
                continue
            sources.extend(encoded)
            targets.extend([tgt_code] * len(encoded))
            counts.append((per_text, tgt_code))
        outputs = self._run_batches(sources, targets)
        results: list[list[str] | EngineError] = []
        index = 0
        for item in counts:
            if isinstance(item, EngineError):
                results.append(item)
                continue
            per_text, tgt_code = item
            joiner = self.family.joiner(tgt_code)
            done = []
            for count in per_text:
                done.append(joiner.join(o for o in outputs[index : index + count] if o))
                index += count
            results.append(done)
        return results

    def _run_batches(self, sources: list[list[str]], targets: list[str]) -> list[str]:
        s = self.settings
        outputs: list[str] = []
        for start in range(0, len(sources), s.batch_size):
            batch = sources[start : start + s.batch_size]
            prefixes = targets[start : start + s.batch_size]
            try:
                results = self.translator.translate_batch(
                    batch,
                    target_prefix=[[code] for code in prefixes],
                    beam_size=s.beam_size,
                    max_decoding_length=s.max_decoding_length,
                    min_decoding_length=s.min_decoding_length,
                )
            except RuntimeError as exc:
                # Out of memory and CUDA errors come as RuntimeError; another engine or a
                # later try may succeed.
                raise EngineUnavailable(f"{self.name} failed: {exc}") from exc
            outputs.extend(
                self.decode(r.hypotheses[0], code)
                for r, code in zip(results, prefixes, strict=True)
            )
        return outputs

    async def translate_batch(
        self, requests: Sequence[TranslationRequest]
    ) -> list[list[str] | EngineError]:
        """``BatchTranslator``: requests of any pairs in one pool job, their sentences in the
        same ``translate_batch`` calls; a request with bad input or an unknown language gets
        its error, the rest are translated."""
        with recorded(self.metrics, self.name, "translate_batch"):
            return await self._pool.run(self.translate_requests_sync, list(requests))

    async def translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate texts of one pair; sentences are batched ``batch_size`` at a time."""
        with recorded(self.metrics, self.name, "translate"):
            self.family.token(src), self.family.token(tgt)  # fail fast, before queueing
            texts = [self._check_text(text) for text in texts]
            if self.metrics is not None:
                self.metrics.queue_depth.labels(self._pool.name).set(self._pool.depth + 1)
            try:
                return await self._pool.run(self.translate_sync, texts, src, tgt)
            finally:
                if self.metrics is not None:
                    self.metrics.queue_depth.labels(self._pool.name).set(self._pool.depth)

    async def translate(self, text: str, src: str, tgt: str) -> str:
        """Translate one text (split into sentences and rejoined)."""
        return (await self.translate_many([text], src, tgt))[0]

    def info(self) -> dict[str, Any]:
        """Model, device and queue, for health pages."""
        return {
            "engine": self.name,
            "model": str(self.model_path),
            "model_name": self.model_name,
            "licence": self.licence,
            "device": self.device,
            "compute_type": self.settings.compute_type,
            "beam_size": self.settings.beam_size,
            "queue_depth": self._pool.depth,
        }

    def close(self) -> None:
        """Stop the worker pool."""
        self._pool.close()
