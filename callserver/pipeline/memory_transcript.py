"""The in-process transcript store of the embedded default: each room's transcript in a dict."""

from __future__ import annotations

import logging

from callserver.pipeline.transcript import (
    DEFAULT_MAX_ENTRIES,
    RoomTranscript,
    TranscriptEntry,
    TranscriptSnapshot,
)

log = logging.getLogger(__name__)


class MemoryTranscriptStore:
    """``TranscriptStore`` in memory: an entry is added the moment the pipeline hands it over,
    so a caption is in the download as soon as the callers have seen it."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._rooms: dict[str, RoomTranscript] = {}

    def get(self, room_id: str) -> RoomTranscript | None:
        """The room's live transcript, or None."""
        return self._rooms.get(room_id)

    def for_room(self, room_id: str) -> RoomTranscript:
        """The room's live transcript, created on first use."""
        transcript = self._rooms.get(room_id)
        if transcript is None:
            transcript = RoomTranscript(room_id, self.max_entries)
            self._rooms[room_id] = transcript
        return transcript

    def record(self, room_id: str, entry: TranscriptEntry) -> None:
        self.for_room(room_id).add(entry)

    async def append(self, room_id: str, entry: TranscriptEntry) -> None:
        self.record(room_id, entry)

    async def read(self, room_id: str) -> TranscriptSnapshot | None:
        transcript = self._rooms.get(room_id)
        return transcript.snapshot() if transcript is not None else None

    async def discard(self, room_id: str) -> None:
        if self._rooms.pop(room_id, None) is not None:
            log.debug("transcript discarded", extra={"room": room_id})

    async def flush(self) -> None:
        """Nothing waits: ``record`` adds at once."""

    async def aclose(self) -> None:
        """Nothing to release; the transcripts go with the process."""
