"""Whisper engine on real models and real speech: accuracy, no text from non-speech, languages."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from models.errors import EngineUnavailable, InvalidInput, UnsupportedLanguage
from models.metrics import EngineMetrics
from models.store import ModelStore, StoreSettings
from models.stt import SttSettings, WhisperEngine, decode_audio
from models.stt.audio import Audio
from models.stt.filters import PhantomFilter
from models.stt.languages import pick_language
from models.stt.score import wer, words
from models.stt.settings import DEFAULT_PHANTOM_PHRASES

DATA = Path(__file__).parent / "data"
CLIPS = sorted(DATA.glob("sense_and_sensibility_*.wav"))
SR = 16_000


def test_wer_counts_each_kind_of_error() -> None:
    assert wer(["he was not an ill disposed man"], ["He was not an ill-disposed man."]) == 0
    assert wer(["a b c d"], ["a x c d"]) == 0.25  # substitution
    assert wer(["a b c d"], ["a c d"]) == 0.25  # deletion
    assert wer(["a b c d"], ["a b b c d e"]) == 0.5  # two insertions
    assert wer(["mister john"], ["Mr. John"]) == 0


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    root = tmp_path_factory.mktemp("stt-models")
    return ModelStore(StoreSettings(models_dir=root, models_auto_download=False))


@pytest.fixture(scope="session")
def metrics() -> EngineMetrics:
    return EngineMetrics(CollectorRegistry())


def _engine(store: ModelStore, metrics: EngineMetrics | None = None, **kw: object) -> WhisperEngine:
    return WhisperEngine(SttSettings(**kw), store=store, metrics=metrics)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def base(store: ModelStore, metrics: EngineMetrics) -> Iterator[WhisperEngine]:
    engine = _engine(store, metrics, model="base")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tiny_en(store: ModelStore) -> Iterator[WhisperEngine]:
    engine = _engine(store, model="tiny.en")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def clips() -> list[tuple[Audio, str]]:
    return [(decode_audio(c), c.with_suffix(".txt").read_text("utf-8")) for c in CLIPS]


@pytest.fixture(scope="session")
def vietnamese(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    # The brief's sentence alone (2 s of espeak's robotic voice) is too short: Whisper base
    # scores it ja 0.25, en 0.06, vi 0.03. Two more sentences make it clearly vi (about 0.7).
    text = (
        "Xin chào, hôm nay trời đẹp quá. Tôi tên là Nam, tôi sống ở Hà Nội. "
        "Chúng ta đi uống cà phê nhé."
    )
    out = tmp_path_factory.mktemp("vi") / "vi.wav"
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(out), text], check=True)
    return decode_audio(out)


# Measured on this machine (CPU, int8, beam 5), corpus WER over the three clips:
# base 0.000 (all 44 words right), tiny.en 0.045 ("ill-disposed" heard as "old-sposed").
# Bounds leave room for other CPUs' int8 kernels: about two more wrong words for each.
WER_BOUNDS = {"base": 0.05, "tiny.en": 0.10}


@pytest.mark.parametrize("name", ["base", "tiny.en"])
async def test_real_models_transcribe_real_speech(
    name: str, request: pytest.FixtureRequest, clips: list[tuple[Audio, str]]
) -> None:
    engine: WhisperEngine = request.getfixturevalue(name.replace(".", "_"))
    results = [await engine.transcribe(audio) for audio, _ in clips]
    score = wer([ref for _, ref in clips], [r.text for r in results])
    assert score <= WER_BOUNDS[name], (score, [r.text for r in results])
    for result, (audio, _) in zip(results, clips, strict=True):
        assert result.language == "en"
        assert result.duration == pytest.approx(audio.size / SR)
        assert result.segments and 0 <= result.segments[0].start < result.segments[-1].end
        assert result.segments[-1].end <= result.duration + 0.5
        assert all(s.no_speech_prob <= 0.6 and s.avg_logprob >= -1 for s in result.segments)


def _cough(seed: int) -> Audio:
    """A 0.35 s throaty burst: fast attack, exponential decay, low-passed noise, in 2 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.35 * SR)) / SR
    burst = rng.standard_normal(t.size) * np.exp(-t * 12) * (1 - np.exp(-t * 400))
    burst = np.convolve(burst, np.ones(8) / 8, mode="same")
    out = np.zeros(2 * SR, dtype=np.float32)
    out[SR // 2 : SR // 2 + t.size] = 0.6 * burst / np.abs(burst).max()
    return out


NON_SPEECH: dict[str, Callable[[], Audio]] = {
    "silence": lambda: np.zeros(3 * SR, dtype=np.float32),
    "white noise": lambda: (np.random.default_rng(0).standard_normal(3 * SR) * 0.1).astype(
        np.float32
    ),
    "cough": lambda: _cough(1),
}


@pytest.mark.parametrize("kind", sorted(NON_SPEECH))
async def test_non_speech_gives_no_text(
    kind: str, base: WhisperEngine, tiny_en: WhisperEngine
) -> None:
    audio = NON_SPEECH[kind]()
    for engine in (base, tiny_en):
        result = await engine.transcribe(audio)
        assert result.text == "" and result.segments == ()
    # The live profile (no second voice-detection pass) relies on the confidence filters alone.
    live = await base.transcribe(audio, language="en", live=True)
    assert live.text == ""


async def test_without_vad_confidence_filters_still_give_no_text(store: ModelStore) -> None:
    engine = _engine(store, model="tiny.en", vad_filter=False)
    try:
        for kind in sorted(NON_SPEECH):
            assert (await engine.transcribe(NON_SPEECH[kind]())).text == "", kind
    finally:
        engine.close()


def test_phantom_phrases_are_dropped_only_as_the_whole_output() -> None:
    from models.stt.result import Segment

    phantoms = PhantomFilter(DEFAULT_PHANTOM_PHRASES)

    def seg(text: str) -> Segment:
        return Segment(0.0, 1.0, text, -0.2, 0.1)

    for text in ("Thank you.", "thanks for watching", "Subtitles by the Amara.org community", "♪"):
        assert phantoms.apply([seg(text)]) == [], text
    assert phantoms.apply([seg("Thank you."), seg("Thank you.")]) == []
    real = [seg("Thank you."), seg("I will see you tomorrow.")]
    assert phantoms.apply(real) == real
    assert phantoms.apply([seg("Thank you for the tea.")]) != []


async def test_declared_language(base: WhisperEngine, tiny_en: WhisperEngine) -> None:
    audio = decode_audio(CLIPS[1])
    result = await base.transcribe(audio, language="EN")
    assert (result.language, result.language_probability) == ("en", 1.0)
    assert wer(["he was not an ill disposed young man"], [result.text]) == 0
    live = await base.transcribe(audio, language="en", live=True)
    # int8 kernels differ between CPUs: on an AMD EPYC (AVX2) the short window hears
    # "ill-sposed" where an Intel CPU heard "ill disposed"; one word in eight, no more.
    assert wer(["he was not an ill disposed young man"], [live.text]) <= 1 / 8, live.text
    with pytest.raises(UnsupportedLanguage):
        await base.transcribe(audio, language="xx")
    with pytest.raises(UnsupportedLanguage, match="English-only"):
        await tiny_en.transcribe(audio, language="vi")


async def test_detection_restricted_to_allowed_set(
    base: WhisperEngine, vietnamese: Audio, clips: list[tuple[Audio, str]]
) -> None:
    result = await base.transcribe(vietnamese, allowed=["vi", "en"])
    assert result.language == "vi"
    assert result.language_probability > 0.5
    assert "xin chào" in result.text.lower()
    english = await base.transcribe(clips[0][0], allowed=["en", "vi"])
    assert english.language == "en"
    with pytest.raises(UnsupportedLanguage):
        await base.transcribe(vietnamese, allowed=[])


def test_pick_language_renormalises_over_the_allowed_set() -> None:
    probabilities = [("ja", 0.5), ("vi", 0.3), ("en", 0.1), ("fr", 0.1)]
    language, probability = pick_language(probabilities, ["en", "vi"])
    assert language == "vi"
    assert probability == pytest.approx(0.75)


async def test_bad_input_is_refused_clearly(base: WhisperEngine) -> None:
    with pytest.raises(InvalidInput, match="cannot be decoded"):
        decode_audio(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 20)
    with pytest.raises(InvalidInput):
        decode_audio(b"")
    with pytest.raises(InvalidInput, match="longer than"):
        decode_audio(CLIPS[0], max_seconds=1.0)
    bad: list[object] = [
        np.zeros(0, dtype=np.float32),
        np.zeros((2, SR), dtype=np.float32),
        np.zeros(SR, dtype=np.int16),
        np.full(SR, np.nan, dtype=np.float32),
        np.zeros(int(base.settings.max_audio_s + 1) * SR, dtype=np.float32),
        [0.0] * SR,
    ]
    for item in bad:
        with pytest.raises(InvalidInput):
            await base.transcribe(item)  # type: ignore[arg-type]


async def test_transcribe_many_keeps_order(
    tiny_en: WhisperEngine, clips: list[tuple[Audio, str]]
) -> None:
    audios = [audio for audio, _ in clips] + [np.zeros(SR, dtype=np.float32)]
    results = await tiny_en.transcribe_many(audios)
    assert [r.duration for r in results] == pytest.approx([a.size / SR for a in audios])
    assert results[-1].text == ""
    assert wer([ref for _, ref in clips], [r.text for r in results[:3]]) <= WER_BOUNDS["tiny.en"]


def test_decoding_bytes_equals_decoding_the_file() -> None:
    from_bytes = decode_audio(CLIPS[1].read_bytes())
    assert from_bytes.dtype == np.float32 and from_bytes.ndim == 1
    assert np.array_equal(from_bytes, decode_audio(CLIPS[1]))
    assert from_bytes.size == pytest.approx(3.0 * SR, rel=0.01)  # the clip lasts 2.99 s


async def test_info_and_metrics(base: WhisperEngine, metrics: EngineMetrics) -> None:
    await base.transcribe(np.zeros(SR, dtype=np.float32))
    info = base.info()
    assert info["loaded"] is True
    assert info["device"] in ("cpu", "cuda")
    assert info["compute_type"] == ("int8" if info["device"] == "cpu" else "float16")
    assert info["path"] == str(base.store.locate("base").path)
    registry = metrics.registry
    ok = registry.get_sample_value(
        "callserver_engine_requests_total",
        {"engine": "stt", "operation": "transcribe", "outcome": "ok"},
    )
    assert ok is not None and ok >= 1
    count = registry.get_sample_value(
        "callserver_engine_seconds_count", {"engine": "stt", "operation": "transcribe"}
    )
    assert count is not None and count >= ok


async def test_overload_is_a_retryable_error(
    store: ModelStore, clips: list[tuple[Audio, str]]
) -> None:
    engine = _engine(store, model="tiny.en", workers=1, max_queue=0)
    try:
        await engine.load()
        audio = clips[0][0]
        results = await asyncio.gather(
            engine.transcribe(audio), engine.transcribe(audio), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], EngineUnavailable)
        assert errors[0].retryable
    finally:
        engine.close()


async def test_live_utterances_decode_in_a_short_window(
    base: WhisperEngine, clips: list[tuple[Audio, str]], vietnamese: Audio
) -> None:
    # Same words as the full 30 s window on every clip, from a window of speech + 4 s.
    results = [await base.transcribe(audio, language="en", live=True) for audio, _ in clips]
    for result, (audio, _) in zip(results, clips, strict=True):
        assert result.window_s == np.ceil(audio.size / SR + 4.0), result
        assert result.segments and result.segments[0].no_speech_prob <= 0.6
    assert wer([ref for _, ref in clips], [r.text for r in results]) <= WER_BOUNDS["base"]
    # Detection among the room's languages runs on the same short encoder output.
    detected = await base.transcribe(vietnamese, allowed=["en", "vi"], live=True)
    assert (detected.language, detected.window_s < 30) == ("vi", True)
    assert "xin chào" in detected.text.lower()
    english = await base.transcribe(clips[1][0], allowed=["en", "vi"], live=True)
    assert english.language == "en" and english.language_probability > 0.5
    # A draft that decodes confidently is the same short-window decode.
    draft = await base.transcribe(clips[1][0], language="en", live=True, draft=True)
    assert (draft.text, draft.window_s) == (results[1].text, results[1].window_s)


async def test_doubtful_or_long_live_utterances_use_the_full_window_drafts_do_not(
    store: ModelStore, clips: list[tuple[Audio, str]]
) -> None:
    audio, ref = clips[1]
    # Every decode counts as doubtful: the answer comes from the full window, unchanged.
    strict = _engine(store, model="base", live_window_min_logprob=0.0)
    # Speech plus padding reaching 30 s: nothing to save, the full window straight away.
    padded = _engine(store, model="base", live_window_pad_s=30.0)
    try:
        for engine in (strict, padded):
            result = await engine.transcribe(audio, language="en", live=True)
            assert result.window_s == 30.0 and wer([ref], [result.text]) == 0
        # A draft (an interim caption) is not worth the full window: a doubtful short decode
        # gives no text, so the recognition worker is free again at once.
        draft = await strict.transcribe(audio, language="en", live=True, draft=True)
        assert (draft.text, draft.window_s) == ("", np.ceil(audio.size / SR + 4.0)), draft
        # Unless the short window is no shorter: then the full window costs nothing more.
        draft = await padded.transcribe(audio, language="en", live=True, draft=True)
        assert draft.window_s == 30.0 and wer([ref], [draft.text]) == 0
    finally:
        strict.close()
        padded.close()


async def test_a_doubtful_short_decode_tries_a_second_short_window_before_the_full_one(
    store: ModelStore, base: WhisperEngine
) -> None:
    # The end of clip 0880 as a call's server received it (Opus, 16 kHz), 2.02 s: its 7 s
    # window hears two words at a low log-probability, greedy and beam alike; a 5 s window
    # hears the sentence, at a tenth of the full window's cost.
    audio = decode_audio(DATA / "misheard" / "window-retry-0880.wav")
    result = await base.transcribe(audio, language="en", live=True)
    assert result.window_s == 5.0 and "dispose young man" in result.text, result
    without = _engine(store, model="base", live_window_retry_pad_s=None)
    try:
        result = await without.transcribe(audio, language="en", live=True)
        assert result.window_s == 30.0 and "dispose young man" in result.text, result
    finally:
        without.close()


async def test_a_short_decode_that_skips_a_sentence_is_doubtful(
    store: ModelStore, base: WhisperEngine
) -> None:
    # "Queen of hearts. [0.8 s] Unless to be rather cold hearted and rather selfish is to be
    # ill disposed. [0.8 s] Could you send me the report", one utterance of bench.long_form_call
    # with 0.8 s between sentences (as sent, 48 kHz; lossless, since a rounding of the samples
    # is enough to change what greedy hears): in its 14 s window greedy wrote the first
    # sentence and the last and jumped over the 5.6 s between, too few tokens for the speech.
    # (With the packages `make install-test` got on 2026-12-05, among them ctranslate2 4.8.5,
    # greedy no longer jumps here, so the check is also shown held to a rate no speech reaches.)
    audio = decode_audio(DATA / "misheard" / "skipped-sentence.flac")
    said = {"queen", "unless", "selfish", "disposed", "report"}
    result = await base.transcribe(audio, language="en", live=True)
    assert said <= set(words(result.text)) and result.window_s == 14.0, result
    # The retry with timestamps alone finds the sentence, in the same short window.
    timed = _engine(store, model="base", beam_size=1, live_window_retry_pad_s=None)
    # More tokens a voiced second than any speech gives: every short decode has too few, so
    # it is doubtful after its retries too, and decoded again in the full window.
    strict = _engine(
        store, model="base", live_window_min_token_rate=40.0, live_window_retry_pad_s=None
    )
    without = _engine(store, model="base", live_window_min_token_rate=None)
    try:
        result = await timed.transcribe(audio, language="en", live=True)
        assert said <= set(words(result.text)) and result.window_s == 14.0, result
        result = await strict.transcribe(audio, language="en", live=True)
        assert said <= set(words(result.text)) and result.window_s == 30.0, result
        result = await without.transcribe(audio, language="en", live=True)
        assert {"queen", "report"} <= set(words(result.text)) and result.window_s == 14.0, result
    finally:
        timed.close()
        strict.close()
        without.close()


def test_voiced_seconds_leave_out_pauses_and_a_quiet_floor() -> None:
    from models.stt.doubt import voiced_seconds

    rng = np.random.default_rng(3)
    t = np.arange(SR) / SR
    speech = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    pause = np.zeros(SR // 2, dtype=np.float32)
    assert voiced_seconds(np.concatenate((speech, pause, speech))) == pytest.approx(2.0, abs=0.04)
    assert voiced_seconds(pause) == 0.0 and voiced_seconds(pause[:100]) == 0.0
    # A fan 40 dB under the voice is not speech.
    floor = (0.003 * rng.standard_normal(3 * SR)).astype(np.float32)
    floor[SR : 2 * SR] += speech
    assert voiced_seconds(floor) == pytest.approx(1.0, abs=0.04)


def test_short_window_sizes_and_loop_detection() -> None:
    from models.stt.doubt import looks_looped
    from models.stt.live import window_frames

    assert window_frames(3 * SR, 4.0, 1.0) == 700
    assert window_frames(int(3.2 * SR), 4.0, 1.0) == 800
    assert window_frames(int(3.2 * SR), 0.5, 0.25) == 375
    assert window_frames(26 * SR, 4.0, 1.0) is None
    looped = (
        "He was not an ill-d-d-d-d-d-d-d-",
        "well------",
        "Hello? Can you hear me now? Hello? Can you hear me now?",
        "My daughter starts school next week. My daughter starts school next week.",
        "the end " * 12,
        "Yes. Yes.",  # greedy on a 0.6 s "Yes." starting over
    )
    for text in looped:
        assert looks_looped(text), text
    fine = (
        "He was not an ill-disposed young man.",
        "Xin chào, hôm nay trời đẹp quá.",
        "No, no, I said the red one, not the blue one.",
        "Very very good.",
    )
    for text in fine:
        assert not looks_looped(text), text


async def test_to_english_is_whispers_translate_task_in_the_full_window(
    base: WhisperEngine, vietnamese: Audio
) -> None:
    spoken = await base.transcribe(vietnamese, language="vi", live=True)
    assert "xin chào" in spoken.text.lower()
    # Whisper base's English for espeak-ng's Vietnamese is an invented sentence or nothing
    # (its confidence filter drops it): the task is what can be asserted, not the words.
    english = await base.transcribe(vietnamese, language="vi", live=True, to_english=True)
    # Invented with temperature fallback, it may borrow a word ("I am a café."): mostly
    # plain ASCII words, and not the Vietnamese heard.
    said = english.text.split()
    assert english.window_s == 30.0 and "xin" not in english.text.lower(), english
    assert sum(w.isascii() for w in said) > len(said) / 2 or not said, english
    assert english.language == "vi"
