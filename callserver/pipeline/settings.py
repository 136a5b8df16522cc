"""Options of the live translation pipeline (``CALLSERVER_PIPELINE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from models.env import EnvSettings


class PipelineSettings(EnvSettings):
    """How calls are recognised, translated and dubbed."""

    model_config = SettingsConfigDict(
        env_prefix="CALLSERVER_PIPELINE_", extra="ignore", frozen=True
    )

    max_pending_utterances: int = Field(
        4,
        ge=1,
        description="Utterances waiting for recognition, server-wide; past this the oldest "
        "waiting one is dropped (with a caption marker) so latency cannot build up.",
    )
    recognition_slots: int = Field(
        2,
        ge=1,
        le=64,
        description="Utterances recognised at once, server-wide (match "
        "`CALLSERVER_STT_WORKERS`: more only queue inside the engine, where the backlog bound "
        "cannot see them).",
    )
    early_recognition: bool = Field(
        True,
        description="Start recognising an utterance when the speaker pauses (after the "
        "endpoint's tail), not when the endpoint's silence has passed; the result is used only "
        "if speech did not resume, so the words are the same, sooner. Only when recognition "
        "is idle.",
    )
    sentence_endpointing: bool = Field(
        True,
        description="Judge the words early recognition finds at a pause: an utterance that "
        "sounds complete ends after `CALLSERVER_VAD_COMPLETE_SILENCE_MS`, an unfinished "
        "clause only after `CALLSERVER_VAD_UNFINISHED_SILENCE_MS`, so a pause inside a "
        "sentence does not cut it in two. Needs `early_recognition`.",
    )
    sentence_min_words: int = Field(
        3,
        ge=1,
        le=20,
        description="Fewer words than this (other than a short reply such as 'yes') sound "
        "unfinished to sentence-aware endpointing.",
    )
    sentence_end_min_probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A full stop the recogniser gave less probability than this sounds "
        "unfinished to sentence-aware endpointing (after a fragment such as 'He was not.' "
        "Whisper writes one but doubts it: 0.29-0.52 on the test speech, against 0.54-0.92 "
        "at sentence ends; at 0.6 the clip ending 0.62 waited 1.2 s in one call of four).",
    )
    streaming: bool = Field(
        True,
        description="Dub a long utterance piece by piece while the speaker goes on: the words "
        "before a pause inside it (less a trailing 'and', 'the'...), and words two interim "
        "recognitions agree on up to a comma or full stop, are translated and dubbed at once, "
        "and only the rest when the utterance ends. Needs `interim_captions` for the "
        "agreement rule; not for pairs Whisper translates.",
    )
    streaming_min_words: int = Field(
        3,
        ge=1,
        le=50,
        description="Fewest new words a piece needs before streaming dubs it on its own (a "
        "pause after 'Ask not' leaves those two words to the next piece). 3 rather than 4: "
        "'he was not', 'Mr John Dashwood' are dubbed at the pause, and the utterance then "
        "waits for the sentence to go on (`CALLSERVER_VAD_STREAMED_SILENCE_MS`): on the "
        "long-form call, WER 0.08 -> 0.02 and 6 -> 4 utterances ending inside sentences "
        "(`bench.long_form_call`).",
    )
    streamed_wait_when_complete_max_s: float = Field(
        8.0,
        ge=0,
        le=60,
        description="Words judged complete at a pause are dubbed there as a piece too, and "
        "the utterance then waits `CALLSERVER_VAD_STREAMED_SILENCE_MS` for the sentence to go "
        "on, as after any other piece, while it holds less speech than this (seconds; 0: "
        "never). The listener hears the words at once either way, and a fragment Whisper ends "
        "with a full stop ('I think the meeting start.') is recognised with the rest of its "
        "sentence: on the long-form call with 1.8 s between sentences, 4 -> 1 utterances "
        "ending inside a sentence; in noise (10 dB) 8 -> 1, WER / raw faster-whisper 1.29 -> "
        "0.71. Its cost: sentences less than 1.5 s apart join into one utterance; past this "
        "length a complete verdict ends it after `CALLSERVER_VAD_COMPLETE_SILENCE_MS` (8 s "
        "rather than no bound: with 0.8 s between sentences, p95 mouth to ear 2.40 -> 1.78 s, "
        "the longest utterance 11.1 -> 10.5 s; `bench.long_form_call`, docs/benchmarks.md).",
    )
    streamed_tail_min_end_probability: float = Field(
        0.8,
        ge=0,
        le=1,
        description="In an utterance dubbed in pieces, words after the last piece too few "
        "to make one (under `streaming_min_words`) end the utterance after the short "
        "complete silence only when Whisper ends them with a full stop it gives at least "
        "this probability; otherwise (a doubted mark, no mark, an unfinished clause) the "
        "utterance waits as after a piece and they go out with the next piece or the rest. "
        "'And so, my fellow Americans, | ask not.' (0.68) had ended its sentence there, while "
        "real ends after a pause ('before lunch?', 'by Monday.') were 0.83-0.96 and short "
        "fragments 0.52-0.68 (`bench.pause_shortening --marks`). 0: any full stop after them "
        "is taken at its word.",
    )
    interim_captions: bool = Field(
        True,
        description="Transcribe speech in progress for revisable captions, when recognition "
        "is idle (never delays final text).",
    )
    whisper_translate: bool = Field(
        False,
        description="For listeners who hear English, translate speech no translation engine "
        "serves with Whisper's own translate task. Off: with Whisper base on Vietnamese it "
        "invented sentences (docs/benchmarks.md); larger models may be worth it on a GPU.",
    )
    echo_window_s: float = Field(
        20.0,
        gt=0,
        description="How long what a participant was sent (dub and caption text) is remembered "
        "to recognise it coming back through their microphone.",
    )
    echo_similarity: float = Field(
        0.65,
        gt=0,
        le=1,
        description="Similarity (0-1; words close in spelling, or letters aligned) between an "
        "utterance and recently sent text above which it is taken for echo and dropped.",
    )
    transcript_max_entries: int = Field(
        5000, ge=10, description="Final captions kept per room for the transcript download."
    )
    frame_queue_max: int = Field(
        250,
        ge=10,
        description="20 ms frames buffered per speaker before voice detection (5 s); a "
        "speaker whose detection falls this far behind loses the oldest frames.",
    )
