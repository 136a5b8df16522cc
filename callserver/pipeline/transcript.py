"""A room's final captions: the values, the store interface, and export as SRT, WebVTT, JSON.

Entries carry wall-clock times (``time.time()``) because exported cues are read against a
recording or the meeting's own clock; exporters turn them into times relative to the start
of the room's transcript.

Transcripts live in a ``TranscriptStore``: ``MemoryTranscriptStore``
(``callserver/pipeline/memory_transcript.py``) in the embedded default, ``RedisTranscriptStore``
(``callserver/pipeline/redis_transcript.py``) in the distributed mode, where any node serves a
room's transcript and it outlives the node that held the call.
``tests/test_transcript_store_contract.py`` runs one suite against both.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 2000


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One finished utterance: what was said, by whom, and its translations."""

    utterance_id: str
    speaker_id: str
    speaker_name: str
    language: str
    text: str
    translations: Mapping[str, str] = field(default_factory=dict)
    #: Wall-clock seconds (``time.time()``) when speech started and ended.
    start: float = 0.0
    end: float = 0.0
    #: Optional per-stage durations in milliseconds (``endpoint``, ``recognize``, ...).
    stages_ms: Mapping[str, float] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """Every field, as JSON-ready values (what a shared store keeps)."""
        return {
            "utterance_id": self.utterance_id,
            "speaker_id": self.speaker_id,
            "speaker_name": self.speaker_name,
            "language": self.language,
            "text": self.text,
            "translations": dict(self.translations),
            "start": self.start,
            "end": self.end,
            "stages_ms": dict(self.stages_ms),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TranscriptEntry:
        """The inverse of ``to_record``."""
        return cls(
            utterance_id=str(record["utterance_id"]),
            speaker_id=str(record["speaker_id"]),
            speaker_name=str(record["speaker_name"]),
            language=str(record["language"]),
            text=str(record["text"]),
            translations={str(k): str(v) for k, v in dict(record["translations"]).items()},
            start=float(record["start"]),
            end=float(record["end"]),
            stages_ms={str(k): float(v) for k, v in dict(record["stages_ms"]).items()},
        )


@dataclass(frozen=True, slots=True)
class TranscriptSnapshot:
    """A room's transcript as a store saw it: what a download renders."""

    room_id: str
    #: Wall-clock time that exported times count from.
    origin: float
    #: Ordered by start (overlapping utterances are allowed).
    entries: tuple[TranscriptEntry, ...]

    def __len__(self) -> int:
        return len(self.entries)


class TranscriptUnavailable(Exception):
    """The store that holds transcripts did not answer (a Redis that is down); retryable."""


def entry_from_caption(event: Mapping[str, Any]) -> TranscriptEntry:
    """The entry for a final ``caption`` data-channel event (see docs/protocol.md)."""
    start = float(event["started_at"])
    ended = event.get("ended_at")
    return TranscriptEntry(
        utterance_id=str(event["utterance_id"]),
        speaker_id=str(event["speaker"]),
        speaker_name=str(event.get("speaker_name") or event["speaker"]),
        language=str(event["language"]),
        text=str(event["text"]),
        translations={str(k): str(v) for k, v in dict(event.get("translations") or {}).items()},
        start=start,
        end=float(ended) if ended is not None else start,
        stages_ms={str(k): float(v) for k, v in dict(event.get("stages_ms") or {}).items()},
    )


class RoomTranscript:
    """The final captions of one room, oldest dropped past ``max_entries``."""

    def __init__(
        self,
        room_id: str,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        created_at: float | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.room_id = room_id
        self.max_entries = max_entries
        self.created_at = time.time() if created_at is None else created_at
        self.dropped = 0
        # The transcript is often created at the first final caption, after that speech began:
        # the origin moves back to the earliest start ever seen and never forward again, so
        # dropping old entries does not shift the times of the others.
        self._origin = self.created_at
        self._entries: deque[TranscriptEntry] = deque()
        self._index: dict[str, TranscriptEntry] = {}

    @property
    def origin(self) -> float:
        """Wall-clock time that exported times count from."""
        return self._origin

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[TranscriptEntry]:
        """Entries in order of their start (overlapping utterances are allowed)."""
        return sorted(self._entries, key=lambda e: (e.start, e.end))

    def get(self, utterance_id: str) -> TranscriptEntry | None:
        return self._index.get(utterance_id)

    def snapshot(self) -> TranscriptSnapshot:
        """The transcript now; later additions do not change it."""
        return TranscriptSnapshot(self.room_id, self._origin, tuple(self.entries()))

    def add(self, entry: TranscriptEntry) -> None:
        """Add a final entry; one with a known utterance id replaces the earlier one."""
        self._origin = min(self._origin, entry.start)
        old = self._index.get(entry.utterance_id)
        if old is not None:
            self._entries[self._entries.index(old)] = entry
            self._index[entry.utterance_id] = entry
            return
        self._entries.append(entry)
        self._index[entry.utterance_id] = entry
        while len(self._entries) > self.max_entries:
            gone = self._entries.popleft()
            del self._index[gone.utterance_id]
            self.dropped += 1
        if self.dropped and self.dropped % 1000 == 1:
            log.info(
                "transcript full, dropping oldest entries",
                extra={"room": self.room_id, "dropped": self.dropped},
            )

    def add_translation(self, utterance_id: str, language: str, text: str) -> bool:
        """Attach a translation that came after the entry; False if the entry is gone."""
        old = self._index.get(utterance_id)
        if old is None:
            return False
        translations = {**old.translations, language: text}
        self.add(
            TranscriptEntry(
                old.utterance_id,
                old.speaker_id,
                old.speaker_name,
                old.language,
                old.text,
                translations,
                old.start,
                old.end,
                old.stages_ms,
            )
        )
        return True


class TranscriptStore(Protocol):
    """Where rooms' transcripts live. A room's transcript is created by its first entry and
    kept, at most ``max_entries`` of them (the oldest dropped), until its room expires."""

    max_entries: int

    def record(self, room_id: str, entry: TranscriptEntry) -> None:
        """Take a final caption from the call's pipeline: never blocks and never raises, so a
        store that does not answer cannot hold up or break a call (what cannot be written is
        logged and counted)."""
        ...

    async def append(self, room_id: str, entry: TranscriptEntry) -> None:
        """Add ``entry`` (one with a known utterance id replaces the earlier one), dropping the
        oldest past ``max_entries``; ``TranscriptUnavailable`` if the store does not answer."""
        ...

    async def read(self, room_id: str) -> TranscriptSnapshot | None:
        """The room's transcript, or None if it has none; ``TranscriptUnavailable``."""
        ...

    async def discard(self, room_id: str) -> None:
        """Forget the room's transcript (its room expired); ``TranscriptUnavailable``."""
        ...

    async def flush(self) -> None:
        """Return once every entry ``record`` took before the call is written or given up."""
        ...

    async def aclose(self) -> None:
        """Write what ``record`` still holds (briefly) and release the store's resources."""
        ...


# --- export -----------------------------------------------------------------------------------


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in both formats, so text never spans lines of its own.
    return " ".join(text.split())


def _vtt_escape(text: str) -> str:
    # "&" first so the other entities are not escaped twice; escaping ">" also breaks "-->".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _origin(entries: Sequence[TranscriptEntry], origin: float | None) -> float:
    if origin is not None:
        return origin
    return min((e.start for e in entries), default=0.0)


def _translation_lines(
    entry: TranscriptEntry, languages: Collection[str] | None
) -> list[tuple[str, str]]:
    codes: Iterable[str] = sorted(entry.translations) if languages is None else languages
    return [
        (code, entry.translations[code])
        for code in codes
        if code in entry.translations and code != entry.language and entry.translations[code]
    ]


def _cues(
    entries: Sequence[TranscriptEntry], languages: Collection[str] | None, origin: float | None
) -> list[tuple[float, float, str, str, list[tuple[str, str]]]]:
    """(start, end, speaker, text, [(language, translation)]) per entry, ordered by start."""
    zero = _origin(entries, origin)
    cues = []
    for e in sorted(entries, key=lambda e: (e.start, e.end)):
        start = e.start - zero
        end = max(e.end - zero, start)
        lines = [(code, _one_line(text)) for code, text in _translation_lines(e, languages)]
        cues.append((start, end, _one_line(e.speaker_name), _one_line(e.text), lines))
    return cues


def to_srt(
    entries: Sequence[TranscriptEntry],
    languages: Collection[str] | None = None,
    origin: float | None = None,
) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm`` times from ``origin`` (default: first start).

    ``languages`` limits (and orders) the translations shown; None shows all of them.
    """
    blocks = []
    for number, (start, end, speaker, text, lines) in enumerate(
        _cues(entries, languages, origin), start=1
    ):
        body = [f"{speaker}: {text}"] + [f"[{code}] {line}" for code, line in lines]
        blocks.append(
            "\n".join([str(number), f"{_clock(start, ',')} --> {_clock(end, ',')}", *body])
        )
    return "".join(block + "\n\n" for block in blocks)


def to_webvtt(
    entries: Sequence[TranscriptEntry],
    languages: Collection[str] | None = None,
    origin: float | None = None,
) -> str:
    """WebVTT with ``HH:MM:SS.mmm`` times; text escaped so ``<``, ``&`` and ``-->`` are literal."""
    out = ["WEBVTT", ""]
    for number, (start, end, speaker, text, lines) in enumerate(
        _cues(entries, languages, origin), start=1
    ):
        out.append(str(number))
        out.append(f"{_clock(start, '.')} --> {_clock(end, '.')}")
        out.append(f"{_vtt_escape(speaker)}: {_vtt_escape(text)}")
        out.extend(f"[{code}] {_vtt_escape(line)}" for code, line in lines)
        out.append("")
    return "\n".join(out) + "\n"


def to_json(
    entries: Sequence[TranscriptEntry],
    languages: Collection[str] | None = None,
    origin: float | None = None,
    room_id: str | None = None,
) -> str:
    """The entries as JSON: relative ``start``/``end`` and absolute ``started_at``/``ended_at``."""
    zero = _origin(entries, origin)
    items = []
    for e in sorted(entries, key=lambda e: (e.start, e.end)):
        start = e.start - zero
        items.append(
            {
                "utterance_id": e.utterance_id,
                "speaker": e.speaker_id,
                "speaker_name": e.speaker_name,
                "language": e.language,
                "text": e.text,
                "translations": dict(_translation_lines(e, languages)),
                "start": round(start, 3),
                "end": round(max(e.end - zero, start), 3),
                "started_at": e.start,
                "ended_at": e.end,
                "stages_ms": {k: v for k, v in e.stages_ms.items() if math.isfinite(v)},
            }
        )
    document = {"room_id": room_id, "started_at": zero, "entries": items}
    return json.dumps(document, ensure_ascii=False, indent=1)
