"""Per-utterance stage times, as Prometheus histograms and as the figures captions carry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from callserver.pipeline.events import StageTimes

BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)


class PipelineMetrics:
    """Stage and end-to-end latency histograms, and counters of what the pipeline dropped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage = Histogram(
            "callserver_pipeline_stage_seconds",
            "Time each pipeline stage took for one utterance "
            "(endpoint: speech end to utterance decided; recognize; translate; synthesize; "
            "first_dub_frame: synthesized to first frame mixed)",
            ["stage"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.mouth_to_ear = Histogram(
            "callserver_mouth_to_ear_seconds",
            "From the end of speech to the first frame of its dub sent to a listener",
            buckets=BUCKETS,
            registry=registry,
        )
        self.start_to_dub = Histogram(
            "callserver_start_to_dub_seconds",
            "From the start of an utterance's speech to the first frame of its dub sent to a "
            "listener (with streaming, the dub of its first committed piece)",
            buckets=BUCKETS,
            registry=registry,
        )
        self.streamed_pieces = Counter(
            "callserver_streamed_pieces",
            "Clauses dubbed while their utterance was still being spoken (streaming)",
            registry=registry,
        )
        self.early_recognitions = Counter(
            "callserver_early_recognitions",
            "Recognitions started at a pause, by outcome (used; discarded: speech resumed; failed)",
            ["outcome"],
            registry=registry,
        )
        self.sentence_verdicts = Counter(
            "callserver_sentence_verdicts",
            "What the words at a pause said about the utterance's end (complete; unfinished: "
            "the endpoint waits longer; unknown: no words in time)",
            ["verdict"],
            registry=registry,
        )
        self.utterances = Counter(
            "callserver_utterances",
            "Utterances by outcome (translated, empty, echo, dropped_backlog, dub_skipped, failed)",
            ["outcome"],
            registry=registry,
        )


def stages_ms(times: StageTimes, language: str | None = None) -> dict[str, float]:
    """Milliseconds spent in each stage so far; per-language stages for ``language``."""
    out: dict[str, float] = {}
    previous = times.speech_end
    steps: list[tuple[str, float | None]] = [
        ("endpoint", times.endpoint),
        ("recognize", times.recognized),
    ]
    if language is not None:
        steps += [
            ("translate", times.translated.get(language)),
            ("synthesize", times.first_audio.get(language)),
            ("first_dub_frame", times.first_dub_frame.get(language)),
        ]
    for name, at in steps:
        if at is None:
            break
        out[name] = round((at - previous) * 1000, 1)
        previous = at
    if language is not None and language in times.first_dub_frame:
        out["mouth_to_ear"] = round((times.first_dub_frame[language] - times.speech_end) * 1000, 1)
    return out
