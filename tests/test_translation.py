"""Translation: language codes, sentence splitting, NLLB (tiny synthetic model), Apertium, chain."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from models.errors import EngineUnavailable, InvalidInput, ModelMissing, UnsupportedLanguage
from models.metrics import EngineMetrics
from models.mt import apertium_process
from models.mt.apertium import ApertiumTranslator, parse_modes, strip_marks
from models.mt.apertium_process import (
    ApertiumProcess,
    NoPipeline,
    deformat,
    parse_pipeline,
    reformat,
)
from models.mt.engine import LanguageSupport, TranslationEngine
from models.mt.languages import (
    ISO1_TO_NLLB,
    NLLB_CODES,
    from_apertium,
    sentence_joiner,
    to_apertium,
    to_nllb,
    to_tag,
)
from models.mt.nllb import NllbTranslator
from models.mt.sentences import split_sentences
from models.mt.service import TranslationService, build_service
from models.mt.settings import MtSettings
from models.mt.synthetic import TINY, SyntheticModel, cached_model
from models.store import ModelStore, StoreSettings
from tests.conftest import missing_dependency
from tests.mt_helpers import CountingTranslator

needs_apertium = pytest.mark.needs("apertium")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> SyntheticModel:
    return cached_model(TINY, tmp_path_factory.mktemp("mt-cache"))


def nllb_settings(model: SyntheticModel, **overrides: Any) -> MtSettings:
    values: dict[str, Any] = {
        "model_path": model.model_dir,
        "device": "cpu",
        "threads": 1,
        "beam_size": 1,
        "max_decoding_length": 12,
    }
    values.update(overrides)
    return MtSettings(**values)


@pytest.fixture
def nllb(tiny_model: SyntheticModel) -> Iterator[tuple[NllbTranslator, CountingTranslator]]:
    engine = NllbTranslator(nllb_settings(tiny_model, batch_size=4), EngineMetrics())
    counter = CountingTranslator(engine.translator)
    engine.translator = counter
    yield engine, counter
    engine.close()


@pytest.fixture(scope="module")
def apertium() -> Iterator[ApertiumTranslator]:
    if shutil.which("apertium") is None:
        missing_dependency("Debian's apertium is not installed")
    engine = ApertiumTranslator(MtSettings())
    yield engine
    engine.close()


class FailingTranslator:
    """Fault injection: claims every pair and fails each call with the given error."""

    def __init__(self, error: Exception, name: str = "failing") -> None:
        self.name = name
        self.error = error
        self.calls = 0

    def supports(self, src: str, tgt: str) -> bool:
        return True

    def languages(self) -> LanguageSupport:
        return LanguageSupport(self.name, (), None)

    async def translate(self, text: str, src: str, tgt: str) -> str:
        return (await self.translate_many([text], src, tgt))[0]

    async def translate_many(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        self.calls += 1
        raise self.error

    def info(self) -> dict[str, Any]:
        return {"engine": self.name}

    def close(self) -> None:
        pass


# --- language codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("vi", "vie_Latn"),
        ("en", "eng_Latn"),
        ("EN-us", "eng_Latn"),
        ("pt-BR", "por_Latn"),
        ("zh", "zho_Hans"),
        ("zh-TW", "zho_Hant"),
        ("zh-HK", "zho_Hant"),
        ("zh-Hans", "zho_Hans"),
        ("zh-Hant-TW", "zho_Hant"),
        ("zh_CN", "zho_Hans"),
        ("yue", "yue_Hant"),
        ("ks-Deva", "kas_Deva"),
        ("ks", "kas_Arab"),
        ("jw", "jav_Latn"),
        ("fil", "tgl_Latn"),
        ("ast", "ast_Latn"),
        ("vie_Latn", "vie_Latn"),
    ],
)
def test_tags_map_to_nllb_codes(tag: str, code: str) -> None:
    assert to_nllb(tag) == code


@pytest.mark.parametrize("tag", ["xx", "tlh", "sr-Latn", "", "not a tag", "en--US", "123"])
def test_unknown_languages_are_refused_clearly(tag: str) -> None:
    with pytest.raises(UnsupportedLanguage) as caught:
        to_nllb(tag)
    assert repr(tag) in caught.value.message
    assert not caught.value.retryable


def test_language_table_is_consistent() -> None:
    assert len(NLLB_CODES) == len(set(NLLB_CODES)) == 202
    assert set(ISO1_TO_NLLB.values()) <= set(NLLB_CODES)
    for code in NLLB_CODES:
        assert to_nllb(to_tag(code)) == code
    assert sentence_joiner("zho_Hans") == ""
    assert sentence_joiner("vie_Latn") == " "


def test_apertium_codes() -> None:
    assert to_apertium("en") == "eng"
    assert to_apertium("es-MX") == "spa"
    assert from_apertium("eng") == "eng_Latn"
    assert from_apertium("gl") == "glg_Latn"
    assert from_apertium("qqq") is None
    modes = ["eng-spa", "spa-eng_US", "spa-eng", "eng-spa-morph", "qqq-eng", "en-gl"]
    assert parse_modes(modes) == {
        ("eng_Latn", "spa_Latn"): "eng-spa",
        ("spa_Latn", "eng_Latn"): "spa-eng",
        ("eng_Latn", "glg_Latn"): "en-gl",
    }
    assert strip_marks("La *casa es #grande @hoy, 3 * 4") == "La casa es grande hoy, 3 * 4"


# --- sentences --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello Dr. Smith. How are you? Fine!", ["Hello Dr. Smith.", "How are you?", "Fine!"]),
        ("It costs 3.5 dollars. Ok…  Next", ["It costs 3.5 dollars.", "Ok…", "Next"]),
        ("我们走吧。今天很好！你呢？", ["我们走吧。", "今天很好！", "你呢？"]),
        ("I met J. R. Smith. He left.", ["I met J. R. Smith.", "He left."]),
        ("See e.g. the house. Yes", ["See e.g. the house.", "Yes"]),
        ('"Stop!" he said. Then "Go." Done', ['"Stop!" he said.', 'Then "Go."', "Done"]),
        ("Tôi đi chợ.\nBạn ở đâu?", ["Tôi đi chợ.", "Bạn ở đâu?"]),
        ("no punctuation here", ["no punctuation here"]),
        ("   ", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


# --- NLLB engine ------------------------------------------------------------------------------


def test_synthetic_model_is_cached(tiny_model: SyntheticModel) -> None:
    stamp = (tiny_model.model_dir / "model.bin").stat().st_mtime_ns
    again = cached_model(TINY, tiny_model.model_dir.parent)
    assert again.model_dir == tiny_model.model_dir
    assert (again.model_dir / "model.bin").stat().st_mtime_ns == stamp


def test_source_tokens_carry_language_code_and_eos(
    nllb: tuple[NllbTranslator, CountingTranslator],
) -> None:
    engine, _ = nllb
    tokens = engine.encode("tôi đi chợ hôm nay", "vie_Latn")
    assert tokens[0] == "vie_Latn"
    assert tokens[-1] == "</s>"
    assert tokens[1:-1] == engine._sp.encode("tôi đi chợ hôm nay", out_type=str)
    assert "▁tôi" in tokens


def test_decode_strips_language_and_special_tokens(
    nllb: tuple[NllbTranslator, CountingTranslator],
) -> None:
    engine, _ = nllb
    assert engine.decode(["eng_Latn", "▁the", "▁house", "madeupword3", "</s>"], "eng_Latn") == (
        "the house"
    )


async def test_target_prefix_applied_and_stripped(
    nllb: tuple[NllbTranslator, CountingTranslator],
) -> None:
    engine, counter = nllb
    out = await engine.translate("Tôi đi chợ hôm nay.", "vi", "en")
    assert len(counter.calls) == 1
    call = counter.calls[0]
    assert call["target_prefix"] == [["eng_Latn"]]
    assert call["source"][0][0] == "vie_Latn"
    assert counter.raw[0][0] == "eng_Latn"
    assert "eng_Latn" not in out
    assert out == engine.decode(counter.raw[0], "eng_Latn")


async def test_batches_many_texts_into_few_calls(
    nllb: tuple[NllbTranslator, CountingTranslator],
) -> None:
    engine, counter = nllb
    texts = [f"Tôi đi chợ {word} hôm nay." for word in ("nhà", "nước", "bạn", "người", "ta")]
    texts += ["Vamos al mercado hoy.", "Friend water coffee.", "We go to market."]
    texts += ["Where is the city?", "Hôm nay ở đâu?"]
    batched = await engine.translate_many(texts, "vi", "en")
    assert [len(call["source"]) for call in counter.calls] == [4, 4, 2]  # batch_size 4
    singles = [await engine.translate(text, "vi", "en") for text in texts]
    assert batched == singles


async def test_long_text_split_into_sentences_and_rejoined(
    nllb: tuple[NllbTranslator, CountingTranslator],
) -> None:
    engine, counter = nllb
    text = "Tôi đi chợ. Bạn ở đâu? Hôm nay nước lớn!"
    joined = await engine.translate(text, "vi", "en")
    assert len(counter.calls) == 1
    assert [src[1:-1] for src in counter.calls[0]["source"]] == [
        engine._sp.encode(s, out_type=str) for s in split_sentences(text)
    ]
    parts = [engine.decode(raw, "eng_Latn") for raw in counter.raw]
    assert joined == " ".join(p for p in parts if p)
    chinese = await engine.translate(text, "vi", "zh-TW")
    assert counter.calls[-1]["target_prefix"] == [["zho_Hant"]] * 3
    assert chinese == "".join(engine.decode(raw, "zho_Hant") for raw in counter.raw[3:])


async def test_length_limits(tiny_model: SyntheticModel) -> None:
    engine = NllbTranslator(nllb_settings(tiny_model, max_input_chars=60, max_input_tokens=8))
    counter = CountingTranslator(engine.translator)
    engine.translator = counter
    try:
        with pytest.raises(InvalidInput, match="MAX_INPUT_CHARS") as too_long:
            await engine.translate("nhà " * 20, "vi", "en")
        assert not too_long.value.retryable
        with pytest.raises(InvalidInput, match="MAX_INPUT_TOKENS"):
            await engine.translate("tôi bạn nhà lớn nhỏ chúng ta đi chợ", "vi", "en")
        assert counter.calls == []  # refused before the model ran
        # The same words as short sentences fit: the limit is per sentence.
        fitting = "Tôi bạn. Nhà lớn. Chúng ta đi."
        out = await engine.translate(fitting, "vi", "en")
        (call,) = counter.calls
        assert call["source"] == [engine.encode(t, "vie_Latn") for t in split_sentences(fitting)]
        assert all(len(tokens) <= 8 for tokens in call["source"])
        assert_made_of_model_pieces(engine, out, counter.raw, "eng_Latn")
        assert await engine.translate(fitting, "vi", "en") == out  # greedy: deterministic
        assert await engine.translate("   ", "vi", "en") == ""
    finally:
        engine.close()


def assert_made_of_model_pieces(
    engine: NllbTranslator, out: str, raw: list[list[str]], target: str
) -> None:
    """What can honestly be asserted of the random model's output: each sentence was generated
    in ``target`` (its language token first), is made of the tokenizer's own pieces with no
    special or language token left in, and ``out`` is those sentences decoded and joined."""
    sp = engine._sp
    specials = {"<s>", "</s>", "<pad>", "<unk>", *NLLB_CODES}
    words = {sp.id_to_piece(i) for i in range(sp.get_piece_size())} - specials
    assert out.strip() and raw
    sentences = []
    for tokens in raw:
        assert tokens[0] == target
        # Filler ids past the tokenizer's vocabulary are no text; everything else the model
        # generated must come through.
        pieces = [t for t in tokens[1:] if t in words]
        sentences.append(sp.decode(pieces).strip())
    joiner = "" if target.startswith(("zho", "yue", "jpn")) else " "
    assert out == joiner.join(s for s in sentences if s)
    assert not any(code in out for code in specials)


async def test_fixed_decoding_length(tiny_model: SyntheticModel) -> None:
    engine = NllbTranslator(nllb_settings(tiny_model, min_decoding_length=6, max_decoding_length=6))
    counter = CountingTranslator(engine.translator)
    engine.translator = counter
    try:
        await engine.translate_many(["Tôi đi chợ.", "Bạn ở đâu?"], "vi", "en")
        assert [len(raw) for raw in counter.raw] == [6, 6]
    finally:
        engine.close()


async def test_nllb_refuses_unknown_language(
    nllb: tuple[NllbTranslator, CountingTranslator],
) -> None:
    engine, counter = nllb
    with pytest.raises(UnsupportedLanguage, match="'xx'"):
        await engine.translate("hello", "en", "xx")
    assert counter.calls == []
    assert not engine.supports("en", "xx")
    assert engine.supports("vi", "zh-TW")
    assert len(engine.languages().languages) == 202


def empty_store(root: Path) -> ModelStore:
    """A model store with nothing in it that never downloads."""
    return ModelStore(
        StoreSettings(
            models_dir=root / "models",
            models_fallback_dir=root / "fallback",
            models_auto_download=False,
        )
    )


def test_nllb_model_missing(tmp_path: Path) -> None:
    store = empty_store(tmp_path)
    assert not NllbTranslator.installed(MtSettings(), store)
    with pytest.raises(ModelMissing, match="callserver models pull nllb-200-distilled-600M") as no:
        NllbTranslator(MtSettings(model_path=None), store=store)
    assert not no.value.retryable
    assert not (tmp_path / "models" / "nllb-200-distilled-600M").exists()  # nothing downloaded
    with pytest.raises(ModelMissing, match="ct2-transformers-converter"):
        NllbTranslator(MtSettings(model_path=tmp_path))


async def test_nllb_records_metrics(tiny_model: SyntheticModel) -> None:
    metrics = EngineMetrics()
    engine = NllbTranslator(nllb_settings(tiny_model), metrics)
    try:
        await engine.translate("Tôi đi chợ.", "vi", "en")
        with pytest.raises(UnsupportedLanguage):
            await engine.translate("x", "vi", "xx")
        get = metrics.registry.get_sample_value
        assert get("callserver_engine_requests_total", {"engine": "nllb",
                   "operation": "translate", "outcome": "ok"}) == 1.0  # fmt: skip
        assert get("callserver_engine_requests_total", {"engine": "nllb",
                   "operation": "translate", "outcome": "unsupported_language"}) == 1.0  # fmt: skip
    finally:
        engine.close()


# --- Apertium ---------------------------------------------------------------------------------


@needs_apertium
async def test_apertium_translates_english_to_spanish(apertium: ApertiumTranslator) -> None:
    out = await apertium.translate("The house is big", "en", "es")
    assert "casa" in out.lower()
    assert "grande" in out.lower()
    many = await apertium.translate_many(
        ["The house is big.", "", "Where is the station?\nI am here."], "en-US", "es"
    )
    assert many[0].startswith("La casa es grande")
    assert many[1] == ""
    assert many[2].startswith("Dónde") and "aquí" in many[2]
    assert "*" not in " ".join(many)
    assert apertium.supports("es", "en")
    assert not apertium.supports("vi", "en")


@needs_apertium
async def test_apertium_timeout_is_retryable() -> None:
    engine = ApertiumTranslator(MtSettings(apertium_timeout_s=0.001))
    try:
        with pytest.raises(EngineUnavailable) as caught:
            await engine.translate("The house is big " * 50, "en", "es")
        assert caught.value.retryable
    finally:
        engine.close()


@needs_apertium
async def test_apertium_refuses_pairs_it_lacks(apertium: ApertiumTranslator) -> None:
    with pytest.raises(UnsupportedLanguage, match="vi→en"):
        await apertium.translate("xin chào", "vi", "en")


# --- Apertium's running pipeline ---------------------------------------------------------------

# Fault injection: fake pipelines standing in for apertium's programs.
ECHO_PIPELINE = [["cat"]]  # answers each text with itself: tests the framing alone
SILENT_PIPELINE = [["sleep", "30"]]  # reads nothing and never answers: a hung pipeline
DYING_PIPELINE = [["true"]]  # exits at once, every time it is started

APERTIUM_SAMPLES = [
    "Hello.",
    "The house is red.",
    "Where is the train station?",
    "I would like a cup of coffee, please.",
    "The xyzzy frobnicates [quickly] @home <b> 3/4 $5 {a} ^b\\c ~ d",
    "Hello\0 world",
    "",
    "   ",
    "Mr. Smith paid 5€ for the café au lait!",
]


def group_members(pgid: int) -> list[int]:
    """Processes (zombies included) whose process group is ``pgid``, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


@pytest.fixture(scope="module")
def apertium_one_shot() -> Iterator[ApertiumTranslator]:
    if shutil.which("apertium") is None:
        missing_dependency("Debian's apertium is not installed")
    engine = ApertiumTranslator(MtSettings(apertium_persistent=False))
    yield engine
    engine.close()


@pytest.mark.needs("apertium-destxt", "apertium-retxt")
@pytest.mark.parametrize(
    "text",
    ["Hi", "Hi.", "a [b] c", "x\\y ^z$ /w @h <i> {k}", "a ~ b", "~x", "end ~", "x ~~ y ~ ~ z",
     "[\\@x", "a.[]b", "é — “q” €5", "a\n\nb", "a \r\n\r\n\tb\n", "end\n\n", "x "],
)  # fmt: skip
def test_apertium_formatting_matches_destxt_and_retxt(text: str) -> None:
    destxt = subprocess.run(["apertium-destxt"], input=text.encode(), capture_output=True)
    assert deformat(text) == destxt.stdout.decode()
    # The same, with marks retxt treats specially, stands in for a translation.
    translated = destxt.stdout.replace(b"a", b"\\@").replace(b"x", b"[\\@]")
    retxt = subprocess.run(["apertium-retxt"], input=translated, capture_output=True)
    assert reformat(translated.decode()) == retxt.stdout.decode()


def test_apertium_mode_lines_become_stages() -> None:
    line = "lt-proc -z '/x y/a.bin' | apertium-tagger -z -g $2 b.prob | lt-proc -z $1 c.bin"
    assert parse_pipeline(line) == [
        ["lt-proc", "-z", "/x y/a.bin"],
        ["apertium-tagger", "-z", "-g", "b.prob"],
        ["lt-proc", "-z", "-n", "c.bin"],
    ]
    for odd in ["a > out", "a && b", "a $HOME", "a | | b", "a `b`"]:
        with pytest.raises(NoPipeline):
            parse_pipeline(odd)


@needs_apertium
def test_apertium_pipeline_matches_one_shot(
    apertium: ApertiumTranslator, apertium_one_shot: ApertiumTranslator
) -> None:
    running = apertium.translate_sync(APERTIUM_SAMPLES, "eng-spa")
    assert running == apertium_one_shot.translate_sync(APERTIUM_SAMPLES, "eng-spa")
    # Apertium's exact words change with its packages, and the comparison above already
    # checks the pipeline reproduces them; what follows holds whatever its dictionaries say:
    # one answer per text, blank in for blank out, every sentence translated with its final
    # punctuation, unknown words and format marks passed through, no marks or NULs left over.
    assert len(running) == len(APERTIUM_SAMPLES)
    for text, out in zip(APERTIUM_SAMPLES, running, strict=True):
        assert bool(out.strip()) == bool(text.strip()), (text, out)
        assert "\0" not in out and "*" not in out and "#" not in out, out
    for text, out in zip(APERTIUM_SAMPLES[:4], running[:4], strict=True):
        assert out != text and out[-1] == text[-1], (text, out)
    assert "xyzzy" in running[4] and "frobnicates" in running[4]
    for mark in ("[", "]", "<b>", "3/4", "$5", "{", "}", "^b\\c", "~"):
        assert mark in running[4], mark
    assert running[5] and " " in running[5]
    assert apertium.pipelines()["eng-spa"] is not None
    assert apertium_one_shot.pipelines() == {}


@needs_apertium
async def test_apertium_pipeline_is_reused_and_restarted_after_a_kill() -> None:
    engine = ApertiumTranslator(MtSettings())
    try:
        assert await engine.translate("The house is red.", "en", "es") == "La casa es roja."
        pgid = engine.pipelines()["eng-spa"]
        assert pgid is not None
        assert await engine.translate("Hello.", "en", "es") == "Hola."
        # Both workers share the one pipeline, a text at a time.
        answers = await asyncio.gather(
            *(engine.translate(text, "en", "es") for text in ["Hello.", "The house is red."] * 3)
        )
        assert answers == ["Hola.", "La casa es roja."] * 3
        assert engine.pipelines()["eng-spa"] == pgid
        os.killpg(pgid, signal.SIGKILL)
        assert await engine.translate("The house is red.", "en", "es") == "La casa es roja."
        assert engine.pipelines()["eng-spa"] not in (None, pgid)
        assert group_members(pgid) == []  # the killed stages were reaped
    finally:
        engine.close()


@needs_apertium
async def test_apertium_hung_pipeline_times_out_and_is_replaced() -> None:
    engine = ApertiumTranslator(MtSettings())
    try:
        await engine.translate("Hello.", "en", "es")
        pgid = engine.pipelines()["eng-spa"]
        assert pgid is not None
        os.killpg(pgid, signal.SIGSTOP)
        engine.settings = MtSettings(apertium_timeout_s=0.3)
        with pytest.raises(EngineUnavailable, match=r"took over 0\.3 s") as caught:
            await engine.translate("The house is red.", "en", "es")
        assert caught.value.retryable
        assert group_members(pgid) == []
        engine.settings = MtSettings()
        assert await engine.translate("The house is red.", "en", "es") == "La casa es roja."
        assert engine.pipelines()["eng-spa"] not in (None, pgid)
    finally:
        engine.close()


@needs_apertium
async def test_apertium_close_leaves_no_processes() -> None:
    engine = ApertiumTranslator(MtSettings())
    await engine.translate_many(["Hello."], "en", "es")
    await engine.translate_many(["Hola."], "es", "en")
    groups = list(engine.pipelines().values())
    assert len(groups) == 2 and None not in groups
    engine.close()
    assert [group_members(pgid) for pgid in groups if pgid is not None] == [[], []]
    with pytest.raises(EngineUnavailable):
        engine.translate_sync(["Hello."], "eng-spa")


@needs_apertium
async def test_apertium_warm_up_starts_every_mode_before_the_first_text() -> None:
    engine = ApertiumTranslator(MtSettings())
    service = TranslationService([engine])
    try:
        assert all(pgid is None for pgid in engine.pipelines().values())
        await service.warm_up()
        started = engine.pipelines()
        assert set(started) == set(engine.pairs.values()) and None not in started.values()
        assert await service.translate("The house is red.", "en", "es") == "La casa es roja."
        assert engine.pipelines() == started  # the first real text used the warm pipeline
    finally:
        service.close()


@needs_apertium
def test_apertium_falls_back_to_one_shot_without_a_pipeline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_pipeline(command: str, mode: str) -> Any:
        raise NoPipeline("fault injection: no mode file")

    monkeypatch.setattr(apertium_process, "mode_pipeline", no_pipeline)
    engine = ApertiumTranslator(MtSettings())
    try:
        assert engine.translate_sync(["Hello.", "The house is red."], "eng-spa") == [
            "Hola.",
            "La casa es roja.",
        ]
        assert engine.pipelines() == {"eng-spa": None}
    finally:
        engine.close()


def test_apertium_process_frames_answers_by_nul() -> None:
    process = ApertiumProcess("fake", stages=ECHO_PIPELINE)
    try:
        assert process.translate("a [b] ~ c\0d", 5) == "a [b] ~ cd"
        pids = process.pids
        assert process.translate("Hello.", 5) == "Hello."
        assert process.pids == pids
        # Longer than the pipes hold: the answer must be read while the text is still going in.
        long = "word [x] " * 30_000
        assert process.translate(long, 5) == long
    finally:
        process.close()
    assert process.pids == [] and group_members(pids[0]) == []


def test_apertium_process_that_never_answers_times_out() -> None:
    process = ApertiumProcess("fake", stages=SILENT_PIPELINE)
    try:
        with pytest.raises(EngineUnavailable, match=r"took over 0\.2 s"):
            process.translate("Hello.", 0.2)
        assert process.pids == []
    finally:
        process.close()


def test_apertium_process_closed_mid_text_stops_at_once() -> None:
    process = ApertiumProcess("fake", stages=SILENT_PIPELINE)
    with ThreadPoolExecutor(1) as pool:
        # The text's own timeout is far past the wait below, and its error would say "took
        # over": only close() interrupting it ends it in time with "shut down".
        pending = pool.submit(process.translate, "Hello.", 120)
        # Bounded: starting a `sleep` process takes milliseconds; 10 s covers a loaded CI box.
        deadline = time.monotonic() + 10
        while not process.pids:
            assert time.monotonic() < deadline, "the fake pipeline never started"
            time.sleep(0.01)
        pgid = process.pids[0]
        process.close()
        with pytest.raises(EngineUnavailable, match="shut down"):
            pending.result(timeout=30)
    assert process.pids == [] and group_members(pgid) == []


def test_apertium_process_that_keeps_dying_is_unavailable() -> None:
    process = ApertiumProcess("fake", stages=DYING_PIPELINE)
    try:
        with pytest.raises(EngineUnavailable, match="died twice") as caught:
            process.translate("Hello.", 5)
        assert caught.value.retryable
        assert process.pids == []
    finally:
        process.close()


# --- chain ------------------------------------------------------------------------------------


@needs_apertium
async def test_chain_picks_engine_per_pair(
    apertium: ApertiumTranslator, nllb: tuple[NllbTranslator, CountingTranslator]
) -> None:
    engine, counter = nllb
    service = TranslationService([apertium, engine])
    assert isinstance(apertium, TranslationEngine)
    assert isinstance(engine, TranslationEngine)
    assert "casa" in (await service.translate("The house is big", "en", "es")).lower()
    assert counter.calls == []
    vi_en = await service.translate("Tôi đi chợ.", "vi", "en")
    assert len(counter.calls) == 1
    assert counter.calls[0]["target_prefix"] == [["eng_Latn"]]
    assert_made_of_model_pieces(engine, vi_en, counter.raw, "eng_Latn")
    # The chain hands NLLB's answer back untouched.
    assert vi_en == await engine.translate("Tôi đi chợ.", "vi", "en")
    assert [e.name for e in service.engines_for("vi", "en")] == ["nllb"]
    listing = [support.to_dict() for support in service.languages()]
    assert listing[0]["pairs"] == [["en", "es"], ["es", "en"]]
    assert listing[1]["pairs"] == "all"


@needs_apertium
async def test_chain_refuses_pair_nobody_serves(apertium: ApertiumTranslator) -> None:
    service = TranslationService([apertium])
    with pytest.raises(UnsupportedLanguage) as caught:
        await service.translate("xin chào", "vi", "en")
    assert "vi→en" in caught.value.message
    assert "apertium" in caught.value.message
    with pytest.raises(UnsupportedLanguage, match="'xx'"):
        await service.translate("hello", "en", "xx")


@needs_apertium
async def test_chain_falls_back_on_retryable_failure(apertium: ApertiumTranslator) -> None:
    failing = FailingTranslator(EngineUnavailable("injected outage"))
    service = TranslationService([failing, apertium])
    assert "casa" in (await service.translate("The house is big", "en", "es")).lower()
    assert failing.calls == 1


@needs_apertium
async def test_chain_does_not_retry_bad_input(apertium: ApertiumTranslator) -> None:
    failing = FailingTranslator(InvalidInput("injected bad input"))
    service = TranslationService([failing, apertium])
    with pytest.raises(InvalidInput, match="injected"):
        await service.translate("The house is big", "en", "es")


async def test_chain_raises_last_error_when_all_fail() -> None:
    first = FailingTranslator(EngineUnavailable("first down"), "a")
    second = FailingTranslator(EngineUnavailable("second down"), "b")
    service = TranslationService([first, second])
    with pytest.raises(EngineUnavailable, match="second down"):
        await service.translate("hello", "en", "vi")
    assert (first.calls, second.calls) == (1, 1)


async def test_same_language_passes_through() -> None:
    failing = FailingTranslator(EngineUnavailable("must not be called"))
    service = TranslationService([failing])
    assert await service.translate("Hello there.", "en", "en-US") == "Hello there."
    assert await service.translate_many(["a", "b"], "pt-BR", "pt") == ["a", "b"]
    assert failing.calls == 0


def test_build_service_leaves_out_engines_that_cannot_start(tmp_path: Path) -> None:
    settings = MtSettings(engines=["nllb", "m2m100"], model_path=None)
    service = build_service(settings, store=empty_store(tmp_path))
    try:
        assert service.engines == []
        assert service.languages() == []  # an engine without its model claims no pair
        unavailable = service.info()["unavailable"]
        assert "callserver models pull nllb-200-distilled-600M" in unavailable["nllb"]
        assert "callserver models pull m2m100-418M" in unavailable["m2m100"]
    finally:
        service.close()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSERVER_MT_ENGINES", "nllb, apertium")
    monkeypatch.setenv("CALLSERVER_MT_BEAM_SIZE", "4")
    settings = MtSettings()
    assert settings.engines == ["nllb", "apertium"]
    assert settings.beam_size == 4
    monkeypatch.setenv("CALLSERVER_MT_ENGINES", "nllb,google")
    with pytest.raises(ValidationError, match="google"):
        MtSettings()
    monkeypatch.delenv("CALLSERVER_MT_ENGINES")
    monkeypatch.setenv("CALLSERVER_MT_MODEL", "nllb-200-distilled-1.3B")
    assert MtSettings().model == "nllb-200-distilled-1.3B"
    for bad in ("m2m100-418M", "no-such-model"):  # not an NLLB model: refused at start
        monkeypatch.setenv("CALLSERVER_MT_MODEL", bad)
        with pytest.raises(ValidationError, match="not a nllb model; known: nllb-200"):
            MtSettings()
    monkeypatch.setenv("CALLSERVER_MT_MODEL", "/srv/models/my-nllb")
    assert MtSettings().model == "/srv/models/my-nllb"
    monkeypatch.delenv("CALLSERVER_MT_MODEL")
    with pytest.raises(ValidationError):
        MtSettings(min_decoding_length=10, max_decoding_length=5)
