"""Engines using what ``callserver models pull`` fetched: NLLB and M2M-100 found by name with
no CALLSERVER_MT_MODEL_PATH, a Piper voice speaking its language, licences in /api/engines.

The translation models are test-built stand-ins with random weights (models/mt/synthetic.py):
what they say is meaningless, so the tests assert what the engine controls (language tokens in,
target prefix, decoding back to the tokenizer's own text) rather than any translation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from callserver.engines import EngineSet
from models.cache import CacheSettings
from models.errors import ModelMissing, UnsupportedLanguage
from models.metrics import EngineMetrics
from models.mt.cached import CachedTranslation
from models.mt.ct2 import Ct2Translator
from models.mt.languages import M2M_CODES
from models.mt.m2m import M2mTranslator
from models.mt.nllb import NllbTranslator
from models.mt.service import build_service
from models.mt.settings import MtSettings
from models.mt.synthetic import TINY, TINY_M2M
from models.store import ModelStore, StoreSettings
from models.tts import TtsSettings, build_tts_service
from tests.model_hub import mirror_translation_model, mirror_voice
from tests.mt_helpers import CountingTranslator

NLLB = "nllb-200-distilled-600M"
M2M = "m2m100-418M"
VOICE = "vi_VN-vais1000-medium"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror folder holding the NLLB and M2M-100 stand-ins and the Vietnamese voice."""
    root = tmp_path_factory.mktemp("hub")
    cache = tmp_path_factory.mktemp("synthetic-mt")
    mirror_translation_model(root, NLLB, TINY, cache)
    mirror_translation_model(root, M2M, TINY_M2M, cache)
    mirror_voice(root, VOICE, "vi_VN", "vi")
    return root


def store_for(root: Path, hub: Path, *, auto_download: bool = False) -> ModelStore:
    return ModelStore(
        StoreSettings(
            models_dir=root / "models",
            models_fallback_dir=root / "fallback",
            models_hub=str(hub),
            models_auto_download=auto_download,
        )
    )


def mt_settings(**overrides: Any) -> MtSettings:
    values: dict[str, Any] = {
        "device": "cpu",
        "threads": 1,
        "beam_size": 1,
        "max_decoding_length": 12,
    }
    values.update(overrides)
    return MtSettings(**values)


def recorded(engine: Ct2Translator) -> CountingTranslator:
    recorder = CountingTranslator(engine.translator)
    engine.translator = recorder
    return recorder


def assert_decoded(engine: Ct2Translator, out: str, raw: Sequence[list[str]], target: str) -> None:
    """The output is the model's own hypothesis decoded: target token first, then pieces of the
    tokenizer with no language or special token left in the text."""
    sp = engine._sp
    assert raw and all(tokens[0] == target for tokens in raw)
    sentences = [engine.decode(tokens, target) for tokens in raw]
    assert out == " ".join(s for s in sentences if s)
    assert out.strip()
    specials = {"<s>", "</s>", "<pad>", "<unk>", target}
    assert not any(token in out for token in specials)
    pieces = {sp.id_to_piece(i) for i in range(sp.get_piece_size())}
    assert all(t in pieces or t.startswith("madeupword") for tokens in raw for t in tokens[1:])


@pytest.fixture
def pulled(tmp_path: Path, hub: Path) -> ModelStore:
    store = store_for(tmp_path, hub)
    for name in (NLLB, M2M, VOICE):
        store.pull(name)
    return store


async def test_nllb_is_found_by_name_and_translates(pulled: ModelStore) -> None:
    settings = mt_settings()
    assert settings.model_path is None and settings.model == NLLB
    assert NllbTranslator.installed(settings, pulled)
    engine = NllbTranslator(settings, store=pulled)
    try:
        assert engine.model_path == pulled.settings.models_dir / NLLB
        info = engine.info()
        assert (info["model_name"], info["licence"]) == (NLLB, "CC-BY-NC-4.0")
        recorder = recorded(engine)
        out = await engine.translate("Tôi đi chợ hôm nay.", "vi", "en")
        (call,) = recorder.calls
        assert call["target_prefix"] == [["eng_Latn"]]
        assert call["source"][0][0] == "vie_Latn" and call["source"][0][-1] == "</s>"
        assert_decoded(engine, out, recorder.raw, "eng_Latn")
    finally:
        engine.close()


async def test_chain_serves_pairs_only_with_installed_models(
    tmp_path: Path, hub: Path, pulled: ModelStore
) -> None:
    settings = mt_settings(engines=["apertium", "nllb", "m2m100"])
    empty = build_service(settings, store=store_for(tmp_path / "empty", hub))
    try:
        assert [e.name for e in empty.engines_for("vi", "en")] == []
        assert {s.engine for s in empty.languages()} <= {"apertium"}
        assert set(empty.unavailable) >= {"nllb", "m2m100"}
    finally:
        empty.close()
    full = build_service(settings, store=pulled)
    try:
        # The configured order: Apertium where it has the pair, then NLLB, then M2M-100.
        assert [e.name for e in full.engines_for("vi", "en")] == ["nllb", "m2m100"]
        served = {s.engine: s for s in full.languages()}
        assert served["nllb"].serves("vi", "en") and served["m2m100"].serves("vi", "en")
        assert not served["m2m100"].serves("vi", "ku")  # Kurdish: NLLB has it, M2M-100 not
        assert await full.translate("Xin chào.", "vi", "en")
    finally:
        full.close()


def test_translation_models_are_never_downloaded_at_call_time(tmp_path: Path, hub: Path) -> None:
    settings = mt_settings()
    # Even with auto-download on (it fetches Whisper): NLLB is 600 MB under a non-commercial
    # licence, so only ``callserver models pull`` brings it in.
    for auto_download in (False, True):
        root = tmp_path / str(auto_download)
        store = store_for(root, hub, auto_download=auto_download)
        with pytest.raises(ModelMissing, match=f"callserver models pull {NLLB}"):
            NllbTranslator(settings, store=store)
        assert not (root / "models" / NLLB).exists()
    # Pulled, it is found.
    pulled_store = store_for(tmp_path / "pulled", hub)
    pulled_store.pull(NLLB)
    engine = NllbTranslator(settings, store=pulled_store)
    try:
        assert engine.model_path == tmp_path / "pulled" / "models" / NLLB
    finally:
        engine.close()


def test_explicit_model_path_still_wins(tmp_path: Path, pulled: ModelStore) -> None:
    folder = pulled.settings.models_dir / NLLB
    engine = NllbTranslator(mt_settings(model="nllb-200-distilled-1.3B", model_path=folder))
    try:
        assert engine.model_path == folder
        assert engine.info()["model_name"] is None
        assert engine.info()["licence"].startswith("unknown")
    finally:
        engine.close()


async def test_m2m100_uses_its_own_language_tokens(pulled: ModelStore) -> None:
    engine = M2mTranslator(mt_settings(), store=pulled)
    try:
        assert engine.info()["licence"] == "MIT"
        assert len(engine.languages().languages) == len(M2M_CODES) == 100
        recorder = recorded(engine)
        out = await engine.translate("Tôi đi chợ. Bạn ở đâu?", "vi", "en")
        (call,) = recorder.calls
        assert call["target_prefix"] == [["__en__"], ["__en__"]]
        assert [tokens[0] for tokens in call["source"]] == ["__vi__", "__vi__"]
        assert_decoded(engine, out, recorder.raw, "__en__")
        with pytest.raises(UnsupportedLanguage, match="simplified Chinese"):
            await engine.translate("Xin chào.", "vi", "zh-TW")
        assert recorder.calls == [call]  # refused before the model ran
        assert engine.supports("no", "br") and not engine.supports("vi", "ku")
    finally:
        engine.close()


def test_a_model_of_the_other_family_is_refused(pulled: ModelStore) -> None:
    m2m_folder = pulled.settings.models_dir / M2M
    with pytest.raises(ModelMissing, match=r"holds an M2M-100 model, not NLLB-200: list `m2m100`"):
        NllbTranslator(mt_settings(model_path=m2m_folder))
    with pytest.raises(ModelMissing, match="holds an NLLB-200 model, not M2M-100"):
        M2mTranslator(mt_settings(m2m_model=str(pulled.settings.models_dir / NLLB)))


# --- voices -------------------------------------------------------------------------------------


@pytest.fixture
def tts_settings() -> TtsSettings:
    return TtsSettings(tts_engines=["piper", "espeak"])


async def test_pulled_voice_speaks_its_language_instead_of_espeak(
    tmp_path: Path, hub: Path, tts_settings: TtsSettings
) -> None:
    no_cache = CacheSettings(cache_enabled=False)
    before = build_tts_service(tts_settings, no_cache, store=store_for(tmp_path / "none", hub))
    try:
        assert (await before.synthesize("Xin chào các bạn.", "vi")).engine == "espeak"
    finally:
        await before.aclose()
    store = store_for(tmp_path, hub)
    store.pull(VOICE)
    service = build_tts_service(tts_settings, no_cache, store=store)
    try:
        assert service.voices()["piper"]["vi-vn"] == [VOICE]
        speech = await service.synthesize("Xin chào các bạn.", "vi")
        assert (speech.engine, speech.voice, speech.language) == ("piper", VOICE, "vi")
        rms = float(np.sqrt(np.mean(speech.samples.astype(np.float64) ** 2)))
        assert speech.sample_rate == 48_000 and rms > 300
        # English still goes to the packaged voice; the pulled one does not take it over.
        assert (await service.synthesize("Hello there.", "en")).voice == "en_US-joe-medium"
    finally:
        await service.aclose()


async def test_engine_info_shows_each_models_licence(
    pulled: ModelStore, tts_settings: TtsSettings
) -> None:
    service = build_service(mt_settings(engines=["nllb", "m2m100"]), store=pulled)
    no_cache = CacheSettings(cache_enabled=False)
    engines = EngineSet(
        EngineMetrics(CollectorRegistry()),
        translator=CachedTranslation(service, None),
        synthesizer=build_tts_service(tts_settings, no_cache, store=pulled),
    )
    try:
        info = engines.info()
        mt = {e["engine"]: e for e in info["translation"]["engines"]}
        assert (mt["nllb"]["licence"], mt["nllb"]["non_commercial"]) == ("CC-BY-NC-4.0", True)
        assert (mt["m2m100"]["licence"], mt["m2m100"]["non_commercial"]) == ("MIT", False)
        piper, espeak = info["tts"]
        assert piper["licences"] == {"en_US-joe-medium": "CC0-1.0", VOICE: "CC-BY-4.0"}
        assert espeak["licence"] == "GPL-3.0-or-later"
    finally:
        await engines.close()
