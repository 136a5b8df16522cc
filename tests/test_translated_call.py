"""Translated calls end to end: aiortc callers through the real server with the pipeline on.

Real Silero endpointing, Whisper, Apertium (en↔es), a tiny random-weight NLLB model built
here (pairs with Vietnamese: its output is meaningless but non-empty), espeak-ng and Piper.
One server serves the module (engines load once); every test uses its own room, and checks
counters as differences from before the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from callserver.app import ENGINES
from callserver.media.frames import SAMPLE_RATE, Pcm16, silence
from callserver.pipeline.echo import similarity, words
from callserver.probe import ScriptedCaller, load_wav_48k
from models.mt.synthetic import TINY, SyntheticModel, cached_model
from models.stt.audio import decode_audio
from models.stt.whisper import WhisperEngine
from tests.conftest import CLIPS, RunningServer, wait_for
from tests.pipeline_helpers import (
    ANN,
    BETO,
    callers,
    captions,
    delta,
    drain,
    finals,
    latencies,
    outcomes,
    received_between,
    rms,
    scrape,
    speech_then_silence,
    translating_server,
    utterances_of,
)

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.needs("apertium", "espeak-ng"),
]

ENGLISH_CLIP = CLIPS[1]  # "he was not an ill disposed young man"
TIMEOUT = 60.0
STAGES = ("endpoint", "recognize", "translate", "synthesize", "first_dub_frame")
#: Block RMS (int16) under which received audio counts as quiet.
QUIET_RMS = 150.0

SPANISH_TEXT = "Buenos días a todos. La casa es muy grande y bonita."
VIETNAMESE_TEXT = "Xin chào các bạn. Hôm nay trời đẹp lắm."


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_nllb(tmp_path_factory: pytest.TempPathFactory) -> SyntheticModel:
    return cached_model(TINY, tmp_path_factory.mktemp("mt-model"))


@pytest.fixture(scope="module")
def espeak_speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pcm16]:
    """Spanish and Vietnamese sentences spoken by espeak-ng, 48 kHz mono s16."""
    folder = tmp_path_factory.mktemp("espeak")
    clips: dict[str, Pcm16] = {}
    for language, text in (("es", SPANISH_TEXT), ("vi", VIETNAMESE_TEXT)):
        path = folder / f"{language}.wav"
        subprocess.run(
            ["espeak-ng", "-v", language, "-w", str(path), text],
            check=True,
            timeout=30,
        )
        clips[language] = load_wav_48k(str(path))
    return clips


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def call_server(
    make_server_module: Callable[..., Any], tiny_nllb: SyntheticModel
) -> AsyncIterator[RunningServer]:
    async with translating_server(make_server_module, tiny_nllb) as server:
        yield server


# --- helpers ----------------------------------------------------------------------------------


def arrival(caller: ScriptedCaller, event: dict[str, Any]) -> float:
    """When ``caller`` received ``event``."""
    return caller.event_times[caller.events.index(event)]


def translated_caption(
    caller: ScriptedCaller, speaker: ScriptedCaller, language: str
) -> dict[str, Any] | None:
    """The first final caption from ``speaker`` carrying a non-empty ``language`` translation."""
    for event in finals(caller, speaker):
        if event["translations"].get(language, "").strip():
            return event
    return None


async def wait_quiet(caller: ScriptedCaller, after: float, quiet_s: float = 1.0) -> None:
    """Wait until ``caller`` has heard only quiet for ``quiet_s`` (after time ``after``)."""

    def quiet() -> bool:
        now = time.monotonic()
        if now - after < quiet_s:
            return False
        recent = received_between(caller, now - quiet_s)
        blocks = np.array_split(recent, max(1, recent.size // 960))
        return recent.size > 0 and max(rms(b) for b in blocks) < QUIET_RMS

    await wait_for(quiet, TIMEOUT)


async def finish_speaking(caller: ScriptedCaller) -> float:
    """Wait until ``caller`` sent all it was given; return when its last clip started."""
    await wait_for(lambda: not caller.sending, TIMEOUT)
    return caller.play_started[-1]


#: Quiet 20 ms blocks a listener hears, at least, between the speaker's voice and its dub. The
#: endpointer waits 0.5 s of silence in the speaker's audio at the server, but the voice can
#: reach the listener up to a full speaker queue late (10 frames, 0.2 s: a stall of the
#: server's loop leaves such a backlog until catch-up drops it) while the dub never waits
#: behind it. So 0.3 s. (With 0.5 s, one full-suite run found no onset although the latency
#: event showed the dub mixed for the listener.)
MIN_DUB_GAP_BLOCKS = (500 - 10 * 20) // 20


def dub_onset(
    caller: ScriptedCaller, speech_end: float, dub_sent: float | None = None
) -> float | None:
    """Arrival of the first loud block after ``MIN_DUB_GAP_BLOCKS`` of quiet (see there).

    ``dub_sent``: when the dub's latency event arrived (it leaves with the dub's first frame).
    The search then starts shortly before it, and two quiet blocks will do: a complete
    sentence ends after only 0.3 s of silence, and on a quick machine its dub follows the
    voice by about that much, which the listener hears as a gap of 15 blocks or a few less."""
    quiet_blocks = 0
    rec = caller.recording
    start = speech_end if dub_sent is None else max(speech_end, dub_sent - 0.25)
    needed = MIN_DUB_GAP_BLOCKS if dub_sent is None else 2
    for arrival, block in zip(rec.arrivals, rec.blocks, strict=True):
        if arrival < start:
            continue
        if rms(block) < QUIET_RMS:
            quiet_blocks += 1
        elif quiet_blocks >= needed:
            return arrival
        else:
            quiet_blocks = 0
    return None


def to_whisper(samples: Pcm16) -> np.ndarray[Any, np.dtype[np.float32]]:
    """48 kHz s16 to Whisper's 16 kHz float32, through FFmpeg's resampler."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.astype("<i2").tobytes())
    return decode_audio(buffer.getvalue())


def raw_spanish(model: Any, audio: np.ndarray[Any, np.dtype[np.float32]]) -> str:
    """faster-whisper's own decode, with no confidence filter, in a worker thread."""
    segments, _ = model.transcribe(audio, language="es", condition_on_previous_text=False)
    return " ".join(segment.text for segment in segments)


def check_stages(event: dict[str, Any]) -> None:
    stages = event["stages_ms"]
    for name in (*STAGES, "mouth_to_ear"):
        assert name in stages, (name, stages)
        assert stages[name] >= 0, (name, stages)
    # Each stage is rounded to 0.1 ms on its own.
    assert stages["mouth_to_ear"] == pytest.approx(sum(stages[s] for s in STAGES), abs=1.0)


def seconds(samples: Pcm16) -> float:
    return samples.size / SAMPLE_RATE


# --- tests ------------------------------------------------------------------------------------


async def test_english_speech_reaches_a_spanish_listener_as_spanish_speech(
    call_server: RunningServer,
) -> None:
    server = call_server
    clip = load_wav_48k(str(ENGLISH_CLIP))
    expected = set(words(ENGLISH_CLIP.with_suffix(".txt").read_text()))
    before = await scrape(server)
    async with callers(
        server,
        "translated-en-es",
        ANN,
        BETO,
    ) as (ann, beto):
        ann.play(speech_then_silence(clip))
        await wait_for(lambda: bool(latencies(beto, utterances_of(beto, ann))), TIMEOUT)
        latency = latencies(beto)[0]
        heard_from = time.monotonic()
        await wait_quiet(beto, heard_from)
        spoke_at = ann.play_started[-1]

        caption = translated_caption(beto, ann, "es")
        assert caption is not None, beto.events
        assert caption["utterance_id"] == latency["utterance_id"]
        assert caption["language"] == "en" and caption["speaker_name"] == "Ann"
        text, spanish = caption["text"], caption["translations"]["es"]
        # While Ann spoke, Beto saw revisable text for the same utterance, before the final.
        shown = captions(beto, ann)
        interim = [
            i
            for i, e in enumerate(shown)
            if not e["final"] and e["utterance_id"] == caption["utterance_id"]
        ]
        assert interim, shown
        assert interim[0] < shown.index(caption)
        first = shown[interim[0]]
        assert first["text"].strip() and first["ended_at"] is None, first
        assert set(words(first["text"])) & expected, first["text"]
        said = set(words(text))
        assert len(said & expected) >= 5, (text, expected)
        # "ill-disposed" is Whisper base's weak word in this clip ("old supposed", "ill-sposed"
        # depending on the window and the codec's noise); the rest of the sentence is steady.
        assert {"he", "was", "not", "young", "man"} <= said, text
        # Apertium: "He was not an ill-disposed young man." -> "No fue un enfermo-hombre joven
        # colocado." Check the words any sane translation has, not the whole sentence.
        spanish_words = set(words(spanish))
        assert spanish.strip().lower() != text.strip().lower()
        assert {"hombre", "joven"} <= spanish_words, spanish
        assert spanish_words & {"no", "un", "el", "la", "de"}, spanish
        assert not spanish_words & {"man", "young", "was"}, spanish
        check_stages(latency)
        assert latency["language"] == "es"

        # What Beto heard after Ann's voice ended is the Spanish dub: Whisper finds its words.
        # Whisper is given the dub alone: long leading silence, or the tail of Ann's voice,
        # make it give up on this robotic speech.
        onset = dub_onset(beto, spoke_at + seconds(clip), arrival(beto, latency))
        assert onset is not None, "no dub audio reached Beto"
        dub_audio = received_between(beto, onset - 0.2)
        assert rms(dub_audio) > QUIET_RMS
        # Whisper base on espeak's Spanish is rough (average log-probability near -1.2, which
        # the engine's confidence filter drops), so the raw decoder listens, and its words are
        # compared by spelling too: "supruesto yeko" for "supuesto viejo" still counts.
        stt = await server.app[ENGINES].stt()
        assert isinstance(stt, WhisperEngine)
        model = stt.loaded_model()
        heard = words(await asyncio.to_thread(raw_spanish, model, to_whisper(dub_audio)))
        assert heard, "Whisper heard nothing in the dub"
        like_spanish = similarity(heard, words(spanish))
        # 0.5, not more: on an AMD EPYC Whisper hears Ann say "ill-sposed", Apertium leaves
        # "viejo-sposed", and espeak reads that non-word as "bien que posee" (0.56 here).
        assert like_spanish >= 0.5, (heard, spanish)
        # By a margin: 0.16 on the AMD EPYC, where the English caption reads "old-sposed".
        assert like_spanish > similarity(heard, words(text)) + 0.1, (heard, text)

    assert await delta(server, before, "callserver_mouth_to_ear_seconds_count") >= 1
    assert await delta(server, before, "callserver_utterances_total", outcome="translated") >= 1
    # The sentence was recognised from the speaker's pause on, before the endpoint.
    assert await delta(server, before, "callserver_early_recognitions_total", outcome="used") >= 1
    assert await delta(server, before, "callserver_dub_frames_total") > 0


async def test_vietnamese_speech_is_dubbed_through_the_nllb_model(
    call_server: RunningServer, espeak_speech: dict[str, Pcm16]
) -> None:
    server = call_server
    clip = espeak_speech["vi"]
    async with callers(
        server,
        "translated-vi-en",
        {"name": "Lan", "spoken": "vi", "listen": "vi"},
        {"name": "Bob", "spoken": "en", "listen": "en"},
    ) as (lan, bob):
        await wait_for(lambda: len(bob.recording.blocks) >= 60, TIMEOUT)  # the floor: silence
        lan.play(speech_then_silence(clip))
        await wait_for(lambda: bool(latencies(bob, utterances_of(bob, lan))), TIMEOUT)
        await wait_quiet(bob, time.monotonic())
        spoke_at = lan.play_started[-1]

        caption = translated_caption(bob, lan, "en")
        assert caption is not None, bob.events
        assert caption["language"] == "vi"
        assert caption["text"].strip()
        latency = latencies(bob, [caption["utterance_id"]])[0]
        assert latency["language"] == "en"
        check_stages(latency)

        floor = received_between(bob, spoke_at - 1.0, spoke_at)
        assert floor.size > 0
        onset = dub_onset(bob, spoke_at + seconds(clip), arrival(bob, latency))
        assert onset is not None, "no dub audio reached Bob"
        dub_audio = received_between(bob, onset)
        blocks = np.array_split(dub_audio, max(1, dub_audio.size // 960))
        loudest = max(rms(b) for b in blocks)
        assert loudest > max(10 * rms(floor), 300.0), (loudest, rms(floor))
        # The dub is speech, not a click: a good part of a second of it is loud.
        assert sum(rms(b) > QUIET_RMS for b in blocks) >= 25


async def test_echoed_dub_is_not_translated_again(
    call_server: RunningServer, espeak_speech: dict[str, Pcm16]
) -> None:
    """Bob's microphone hears his loudspeaker: Ana's Spanish, ducked, under its English dub.
    English dub speech is what Whisper recognises well (Spanish espeak it mostly drops as
    too doubtful), so the words do come back, and the echo guard must stop them."""
    server = call_server
    before = await scrape(server)
    async with callers(
        server,
        "translated-echo",
        {"name": "Ana", "spoken": "es", "listen": "es"},
        {"name": "Bob", "spoken": "en", "listen": "en"},
    ) as (ana, bob):

        async def loudspeaker() -> None:
            """Bob's microphone hears Bob's speaker, 100 ms later."""
            bob.play(silence(SAMPLE_RATE // 10))
            seen = len(bob.recording.blocks)
            while True:
                await asyncio.sleep(0.02)
                count = len(bob.recording.blocks)
                if count > seen:
                    bob.play(np.concatenate(bob.recording.blocks[seen:count]))
                    seen = count

        echo = asyncio.create_task(loudspeaker())
        try:
            ana.play(speech_then_silence(espeak_speech["es"]))
            await wait_for(lambda: bool(latencies(bob, utterances_of(bob, ana))), TIMEOUT)
            # Bob heard the whole dub and then quiet, so his microphone has picked it all up.
            await wait_quiet(bob, time.monotonic(), quiet_s=1.5)
        finally:
            echo.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await echo
        await drain(server, ana, bob)

        dub = translated_caption(bob, ana, "en")
        assert dub is not None
        echoed = finals(ana, bob)
        ended = await outcomes(server, before)
        assert not echoed, (
            f"Bob's echo was translated: {sorted({e['text'] for e in echoed})!r}; "
            f"Ana said {dub['text']!r}, dubbed as {dub['translations']['en']!r}; {ended}"
        )
        # The loop did feed the dub back, and the echo guard is what stopped it.
        assert ended["echo"] >= 1, ended
        assert not latencies(ana)
        assert len(utterances_of(bob, ana)) == 1
    assert (await outcomes(server, before))["translated"] == 1


async def test_silence_and_noise_are_not_translated(call_server: RunningServer) -> None:
    server = call_server
    rng = np.random.default_rng(7)
    noise = np.clip(rng.normal(0, 1000, 3 * SAMPLE_RATE), -32768, 32767).astype(np.int16)
    burst = np.clip(rng.normal(0, 8000, SAMPLE_RATE * 150 // 1000), -32768, 32767)
    before = await scrape(server)
    async with callers(
        server,
        "translated-noise",
        ANN,
        BETO,
    ) as (ann, beto):
        ann.play(silence(3 * SAMPLE_RATE))
        ann.play(noise)
        ann.play(speech_then_silence(burst.astype(np.int16)))
        await finish_speaking(ann)
        # The noise did reach Beto: the call works, only the translation stays quiet.
        assert rms(received_between(beto, ann.play_started[1] + 0.5, ann.play_started[2])) > 300
        await drain(server, ann, beto)
        assert not finals(beto), finals(beto)
        assert not latencies(beto)
    assert await delta(server, before, "callserver_dub_frames_total") == 0
    assert await delta(server, before, "callserver_utterances_total", outcome="translated") == 0


async def test_three_people_three_languages(
    call_server: RunningServer, espeak_speech: dict[str, Pcm16]
) -> None:
    server = call_server
    async with server.session.post(server.url + "/api/rooms", json={"capacity": 3}) as resp:
        assert resp.status == 201
        room = (await resp.json())["id"]
    async with callers(
        server,
        room,
        ANN,
        BETO,
        {"name": "Chi", "spoken": "vi", "listen": "vi"},
    ) as people:
        speech = {
            "Ann": load_wav_48k(str(ENGLISH_CLIP)),
            "Beto": espeak_speech["es"],
            "Chi": espeak_speech["vi"],
        }
        for speaker in people:
            others = [p for p in people if p is not speaker]
            speaker.play(speech_then_silence(speech[speaker.name]))

            def heard_by_all(speaker: ScriptedCaller = speaker) -> bool:
                return all(
                    latencies(o, utterances_of(o, speaker)) for o in people if o is not speaker
                )

            await wait_for(heard_by_all, TIMEOUT)
            for listener in others:
                await wait_quiet(listener, time.monotonic())
            await drain(server, *people)

        for listener in people:
            for speaker in people:
                if speaker is listener:
                    continue
                caption = translated_caption(listener, speaker, listener.listen)
                assert caption is not None, (listener.name, speaker.name, listener.events)
                assert caption["language"] == speaker.spoken
                heard = latencies(listener, utterances_of(listener, speaker))
                assert heard, (listener.name, speaker.name)
                assert {e["language"] for e in heard} == {listener.listen}
                check_stages(heard[0])


async def test_listener_without_dubbing_gets_captions_only(call_server: RunningServer) -> None:
    server = call_server
    clip = load_wav_48k(str(CLIPS[2]))
    before = await scrape(server)
    async with callers(
        server,
        "translated-prefs",
        ANN,
        BETO,
    ) as (ann, beto):
        await beto.send({"type": "prefs", "dub": False})
        prefs = await beto.expect("prefs")
        assert prefs["dub"] is False
        ann.play(speech_then_silence(clip))
        await wait_for(lambda: translated_caption(beto, ann, "es") is not None, TIMEOUT)
        caption = translated_caption(beto, ann, "es")
        assert caption is not None
        assert {"selfish", "rather"} <= set(words(caption["text"])), caption["text"]
        spoke_at = await finish_speaking(ann)
        await drain(server, ann, beto)
        assert (await outcomes(server, before))["translated"] == 1
        assert not latencies(beto)
        # Nothing but Ann's own voice reached Beto.
        assert dub_onset(beto, spoke_at + seconds(clip)) is None
    assert await delta(server, before, "callserver_dub_frames_total") == 0
    # Nobody else listens in Spanish: no speech was synthesised at all.
    stage = "callserver_pipeline_stage_seconds_count"
    assert await delta(server, before, stage, stage="synthesize") == 0
    assert await delta(server, before, stage, stage="translate") >= 1


async def test_echo_shown_as_interim_text_is_retracted(call_server: RunningServer) -> None:
    """Bob's loudspeaker plays Ann's voice into his microphone: while the echo plays it is
    speech like any other and gets interim captions, then its final text is found to be what
    Bob was just sent, and an empty final caption takes the interim text back."""
    server = call_server
    clip = load_wav_48k(str(CLIPS[0]))  # 7 s: several interim updates
    bob_side = {"name": "Bob", "spoken": "en", "listen": "en"}
    async with callers(server, "translated-retract", ANN, bob_side) as (ann, bob):
        ann.play(speech_then_silence(clip))
        await wait_for(lambda: bool(finals(bob, ann)), TIMEOUT)
        await drain(server, ann, bob)
        heard = received_between(bob, ann.play_started[-1])
        assert rms(heard) > QUIET_RMS
        before = await scrape(server)
        bob.play(speech_then_silence(heard))
        await drain(server, ann, bob)
        ended = await outcomes(server, before)

        shown = captions(ann, bob)
        assert not finals(ann, bob), (finals(ann, bob), ended)
        retracted = [e for e in shown if e["final"] and not e["text"]]
        assert retracted, (shown, ended)

        def interim_before(retraction: dict[str, Any]) -> bool:
            """The page showed text for this utterance before the empty final took it back."""
            at = shown.index(retraction)
            return any(
                e["utterance_id"] == retraction["utterance_id"]
                and not e["final"]
                and e["text"].strip()
                for e in shown[:at]
            )

        assert any(interim_before(r) for r in retracted), (shown, ended)
        assert ended["echo"] >= 1 and ended["translated"] == 0, ended
