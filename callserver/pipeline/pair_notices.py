"""Tells each listener, in words, whose speech they will not get dubbed, and why.

A Vietnamese speaker and an English listener on a server with no Vietnamese translation would
otherwise get original captions and no word of why. For every listener and every other
participant, the pair (the speaker's spoken language, the listener's heard language) is looked
up (``callserver.pairs``); when it gives less than a dub, the listener gets a ``notice`` event
saying what they get instead, and that speaker's voice stays at full volume in their mix (it is
all they hear of them). When the cause goes away (the speaker leaves or changes language, a
model is pulled), a ``notice`` with code ``cleared`` takes it back.

Notices are sent when someone joins, leaves or changes languages, and again to a listener whose
data channel opens, since what was sent before it opened was lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from callserver.engines import EngineSet
from callserver.pairs import PairSupport, pair_support, primary
from signaling.languages import LANGUAGES
from signaling.rooms import Participant

log = logging.getLogger(__name__)


class NoticeDelivery(Protocol):
    """Where notices go and where voices are kept at full volume (the media plane)."""

    def send_event(self, room_id: str, participant_id: str, event: dict[str, Any]) -> bool: ...

    def set_plain_speakers(
        self, room_id: str, listener_id: str, speakers: frozenset[str]
    ) -> None: ...


def language_name(tag: str) -> str:
    """``vi`` -> ``Vietnamese``; an unknown tag as it is."""
    known = LANGUAGES.get(primary(tag))
    return known[0] if known else tag


def notice_text(speaker: Participant, support: PairSupport) -> str:
    """What the listener reads: who, which languages, and what they get instead."""
    name = speaker.name or "Someone"
    spoken, heard = language_name(support.spoken), language_name(support.heard)
    if support.gives == "captions":
        return (
            f"{name} speaks {spoken}. This server has no {heard} voice: you will read "
            f"{name}'s words translated into {heard} and hear {name}'s own voice."
        )
    return (
        f"{name} speaks {spoken}, which this server cannot translate into {heard}: you will "
        f"read {name}'s words in {spoken} and hear {name}'s own voice."
    )


@dataclass(frozen=True)
class _Told:
    """What a listener was last told about one speaker."""

    spoken: str
    heard: str
    gives: str


class PairNotices:
    """Keeps every listener told of the speakers they get no dub of."""

    def __init__(
        self,
        engines: EngineSet,
        delivery: NoticeDelivery,
        participants: Callable[[str], list[Participant]],
        whisper_translate: bool = False,
    ) -> None:
        self.engines = engines
        self.whisper_translate = whisper_translate
        self.delivery = delivery
        self.participants = participants
        # (room, listener) -> speaker -> what the listener was told and still stands
        self._told: dict[tuple[str, str], dict[str, _Told]] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def refresh(self, room_id: str) -> None:
        """Bring the room's listeners up to date with who is in it and what they speak."""
        async with self._lock:
            translator, synthesizer = await self.engines.translation(), await self.engines.tts()
            voices = synthesizer.voices()
            present = self.participants(room_id)
            for key in [k for k in self._told if k[0] == room_id]:
                if all(p.id != key[1] for p in present):
                    del self._told[key]
            for listener in present:
                supports = {
                    speaker.id: (
                        speaker,
                        pair_support(
                            translator,
                            voices,
                            speaker.spoken,
                            listener.listen,
                            self.whisper_translate,
                        ),
                    )
                    for speaker in present
                    if speaker.id != listener.id
                }
                plain = frozenset(s for s, (_, sup) in supports.items() if sup.gives != "voice")
                self.delivery.set_plain_speakers(room_id, listener.id, plain)
                self._tell(room_id, listener.id, supports)

    def on_ready(self, room_id: str, participant_id: str) -> None:
        """A participant's data channel opened: tell them again (earlier sends were lost)."""
        self._told.pop((room_id, participant_id), None)
        task = asyncio.ensure_future(self._refresh_quietly(room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for refreshes in flight (shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _refresh_quietly(self, room_id: str) -> None:
        try:
            await self.refresh(room_id)
        except Exception:  # notices are advice: a failure must not touch the call
            log.exception("pair notices failed", extra={"room": room_id})

    def _tell(
        self,
        room_id: str,
        listener_id: str,
        supports: dict[str, tuple[Participant, PairSupport]],
    ) -> None:
        told = self._told.setdefault((room_id, listener_id), {})
        for speaker_id in [
            s for s in told if s not in supports or supports[s][1].gives in ("same", "voice")
        ]:
            event = {"type": "notice", "code": "cleared", "speaker": speaker_id}
            if self.delivery.send_event(room_id, listener_id, event):
                del told[speaker_id]
        for speaker_id, (speaker, support) in supports.items():
            if support.gives in ("same", "voice"):
                continue
            now = _Told(support.spoken, support.heard, support.gives)
            if told.get(speaker_id) == now:
                continue
            event = {
                "type": "notice",
                "code": "no_voice" if support.gives == "captions" else "untranslated",
                "speaker": speaker_id,
                "speaker_name": speaker.name,
                "spoken": support.spoken,
                "heard": support.heard,
                "gives": support.gives,
                "text": notice_text(speaker, support),
            }
            if self.delivery.send_event(room_id, listener_id, event):
                told[speaker_id] = now
                log.info(
                    "pair notice",
                    extra={
                        "room": room_id,
                        "participant": listener_id,
                        "speaker": speaker_id,
                        "gives": support.gives,
                    },
                )
