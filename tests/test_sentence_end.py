"""Sentence-aware endpointing: the verdict on the words at a pause, and what the endpointer does
with it, on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from callserver.pipeline.endpoint import Endpointer, EndpointEvent, EndpointSettings
from callserver.pipeline.events import SPEECH_RATE, SpeechPaused, Utterance
from callserver.pipeline.sentence_end import Verdict, judge
from tests.test_endpoint import CLIP_B, CLIP_C, load_clip, room_noise, speech_frames

# --- the verdict -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "verdict"),
    [
        ("Ask what you can do for your country.", "en", Verdict.COMPLETE),
        ("Could you send me the report before lunch?", "en", Verdict.COMPLETE),
        ("Yes.", "en", Verdict.COMPLETE),
        ("Thank you!", "en", Verdict.COMPLETE),
        ("what your country can do for", "en", Verdict.UNFINISHED),
        ("Unless to be rather cold-hearted and", "en", Verdict.UNFINISHED),
        ("Let me check the.", "en", Verdict.UNFINISHED),
        ("And so, my fellow Americans,", "en", Verdict.UNFINISHED),
        ("I was thinking...", "en", Verdict.UNFINISHED),
        ("Ask not.", "en", Verdict.UNFINISHED),
        ("Queen of Hearts", "en", Verdict.UNKNOWN),
        ("", "en", Verdict.UNKNOWN),
        ("Creo que la reunión empieza a las nueve y", "es", Verdict.UNFINISHED),
        ("Tôi nghĩ cuộc họp bắt đầu lúc chín giờ và", "vi", Verdict.UNFINISHED),
        ("Vâng.", "vi", Verdict.COMPLETE),
        ("会議は九時に始まります。", "ja", Verdict.COMPLETE),
    ],
)
def test_the_words_at_a_pause_say_whether_the_sentence_goes_on(
    text: str, language: str, verdict: Verdict
) -> None:
    assert judge(text, language, min_words=3) is verdict


def test_a_full_stop_the_recogniser_doubted_sounds_unfinished() -> None:
    # Whisper writes "He was not." after the fragment too, but gives its full stop 0.46.
    assert judge("He was not.", "en", 3, 0.46, 0.6) is Verdict.UNFINISHED
    assert judge("He was not an ill-disposed young man.", "en", 3, 0.65, 0.6) is Verdict.COMPLETE
    assert judge("He was not.", "en", 3, None, 0.6) is Verdict.COMPLETE


# --- the endpointer --------------------------------------------------------------------------

UNFINISHED_S = EndpointSettings().unfinished_silence_ms / 1000


def speech_with_a_pause(pause_s: float) -> list[np.ndarray]:
    """Two clips with ``pause_s`` of room noise between: with the clips' own quiet ends the
    silence is about 0.5 s longer."""
    return [room_noise(0.5), load_clip(CLIP_B), room_noise(pause_s, seed=1), load_clip(CLIP_C)]


def run(
    verdict: Verdict | None, pause_s: float = 0.3
) -> tuple[list[Utterance], list[SpeechPaused]]:
    """Two clips with a pause between; at each pause the endpointer is told ``verdict`` (None:
    told nothing) as soon as the pause is announced."""
    audio = np.concatenate([*speech_with_a_pause(pause_s), room_noise(2.0, seed=2)])
    endpointer = Endpointer(EndpointSettings(), awaits_verdicts=True)
    events: list[EndpointEvent] = []
    for frame in speech_frames(audio.astype(np.float32)):
        for event in endpointer.process(frame):
            events.append(event)
            if isinstance(event, SpeechPaused) and verdict is not None:
                assert endpointer.judge(event.utterance_id, event.speech_end_at, verdict) == []
    utterances = [e for e in events if isinstance(e, Utterance)]
    pauses = [e for e in events if isinstance(e, SpeechPaused)]
    return utterances, pauses


def test_an_unfinished_clause_is_held_through_a_pause_inside_the_sentence() -> None:
    utterances, pauses = run(Verdict.UNFINISHED)
    assert len(utterances) == 1
    clip_b, clip_c = load_clip(CLIP_B), load_clip(CLIP_C)
    # Both clips and the pause between them (about 0.8 s of silence), in one utterance: by
    # its times, since recognition hears the pause shortened.
    spoken_s = utterances[0].speech_end_at - utterances[0].started_at
    assert spoken_s > (clip_b.size + clip_c.size) / SPEECH_RATE
    assert len(pauses) >= 2  # the pause inside, and the end
    gap = utterances[0].endpoint_at - utterances[0].speech_end_at
    assert gap == pytest.approx(UNFINISHED_S, abs=0.03)


def test_a_complete_sentence_ends_after_the_short_silence() -> None:
    utterances, _ = run(Verdict.COMPLETE)
    assert len(utterances) == 2
    for utterance in utterances:
        assert utterance.endpoint_at - utterance.speech_end_at == pytest.approx(0.3, abs=0.03)


def test_unknown_words_end_after_the_plain_silence() -> None:
    utterances, _ = run(Verdict.UNKNOWN)
    assert len(utterances) == 2
    assert utterances[0].endpoint_at - utterances[0].speech_end_at == pytest.approx(0.5, abs=0.03)


def test_words_already_dubbed_keep_the_utterance_open_through_a_longer_pause() -> None:
    # About 1.25 s of silence: past the unfinished wait, within the streamed one.
    assert len(run(Verdict.UNFINISHED, pause_s=0.75)[0]) == 2
    utterances, _ = run(Verdict.STREAMED, pause_s=0.75)
    assert len(utterances) == 1
    assert utterances[0].endpoint_at - utterances[0].speech_end_at == pytest.approx(
        EndpointSettings().streamed_silence_ms / 1000, abs=0.03
    )


def test_waiting_for_words_that_never_come_is_bounded() -> None:
    utterances, _ = run(None, pause_s=2.0)
    assert len(utterances) == 2
    for utterance in utterances:
        assert utterance.endpoint_at - utterance.speech_end_at == pytest.approx(
            UNFINISHED_S, abs=0.03
        )


def test_a_verdict_on_a_pause_the_speaker_talked_through_is_ignored() -> None:
    audio = np.concatenate([*speech_with_a_pause(0.1), room_noise(2.0, seed=2)])
    endpointer = Endpointer(EndpointSettings(), awaits_verdicts=True)
    first: SpeechPaused | None = None
    utterances: list[Utterance] = []
    for frame in speech_frames(audio.astype(np.float32)):
        for event in endpointer.process(frame):
            if isinstance(event, SpeechPaused) and first is None:
                first = event  # the short pause: speech resumes after it
            elif isinstance(event, SpeechPaused) and first is not None:
                # Late news about the first pause: it must not end the utterance now.
                late = endpointer.judge(first.utterance_id, first.speech_end_at, Verdict.COMPLETE)
                assert late == []
            elif isinstance(event, Utterance):
                utterances.append(event)
    assert first is not None and len(utterances) == 1
    assert utterances[0].endpoint_at - utterances[0].speech_end_at == pytest.approx(
        UNFINISHED_S, abs=0.03
    )


def test_a_verdict_after_the_whole_pause_was_heard_ends_the_utterance_at_once() -> None:
    # Detection saw the pause and 0.8 s of the silence after it before the words came (it
    # lagged, or the speaker's frames stopped): no further frame is needed to end it.
    audio = np.concatenate([room_noise(0.5), load_clip(CLIP_B), room_noise(0.8, seed=1)])
    endpointer = Endpointer(EndpointSettings(), awaits_verdicts=True)
    events = [e for f in speech_frames(audio.astype(np.float32)) for e in endpointer.process(f)]
    paused = [e for e in events if isinstance(e, SpeechPaused)]
    assert len(paused) == 1 and not [e for e in events if isinstance(e, Utterance)]
    assert (
        endpointer.judge(paused[0].utterance_id, paused[0].speech_end_at, Verdict.UNFINISHED) == []
    )
    ended = endpointer.judge(paused[0].utterance_id, paused[0].speech_end_at, Verdict.COMPLETE)
    assert len(ended) == 1 and isinstance(ended[0], Utterance)
    assert ended[0].speech_end_at == paused[0].speech_end_at
    assert ended[0].audio.size == paused[0].audio.size  # what early recognition was given
    assert endpointer.idle


def test_without_verdicts_the_endpointer_ends_on_silence_alone() -> None:
    audio = np.concatenate([*speech_with_a_pause(0.3), room_noise(2.0, seed=2)])
    endpointer = Endpointer(EndpointSettings())
    events = [e for f in speech_frames(audio.astype(np.float32)) for e in endpointer.process(f)]
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert len(utterances) == 2
    assert utterances[0].endpoint_at - utterances[0].speech_end_at == pytest.approx(0.5, abs=0.03)


def test_endpoint_silences_out_of_order_are_kept_in_order() -> None:
    # A complete sentence never ends sooner than its tail nor later than the plain silence.
    settings = EndpointSettings(silence_ms=400, complete_silence_ms=600, unfinished_silence_ms=100)
    audio = np.concatenate([*speech_with_a_pause(0.3), room_noise(2.0, seed=2)])
    for verdict, wait in ((Verdict.COMPLETE, 0.4), (Verdict.UNFINISHED, 0.4)):
        endpointer = Endpointer(settings, awaits_verdicts=True)
        ends = []
        for frame in speech_frames(audio.astype(np.float32)):
            for event in endpointer.process(frame):
                if isinstance(event, SpeechPaused):
                    assert endpointer.judge(event.utterance_id, event.speech_end_at, verdict) == []
                elif isinstance(event, Utterance):
                    ends.append(event.endpoint_at - event.speech_end_at)
        assert ends and all(e == pytest.approx(wait, abs=0.03) for e in ends), (verdict, ends)
