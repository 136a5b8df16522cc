"""The room transcript: bounds, SRT/WebVTT/JSON export, and the download routes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callserver.api.transcript import FORMATS, transcript_routes
from callserver.app import TRANSCRIPTS
from callserver.pipeline.transcript import (
    RoomTranscript,
    TranscriptEntry,
    TranscriptSnapshot,
    entry_from_caption,
    to_json,
    to_srt,
    to_webvtt,
)
from signaling.tokens import mint_token
from tests.conftest import RunningServer

Client = TestClient[web.Request, web.Application]

T0 = 1_764_230_000.0  # a wall-clock time, as time.time() gives


def _entry(
    uid: str, start: float, end: float, text: str, name: str = "Alice", **translations: str
) -> TranscriptEntry:
    return TranscriptEntry(
        utterance_id=uid,
        speaker_id="p_" + name.lower()[:3],
        speaker_name=name,
        language="en",
        text=text,
        translations=translations,
        start=T0 + start,
        end=T0 + end,
    )


@pytest.fixture
def transcript() -> RoomTranscript:
    room = RoomTranscript("room-123456", created_at=T0 + 0.5)
    room.add(_entry("u1", 1.25, 3.5, "Hello everyone.", es="Hola a todos.", vi="Xin chào."))
    # Bob starts before Alice finishes: overlapping cues are kept as they are.
    room.add(_entry("u2", 3.0, 3661.042, "Hi Alice!", name="Bob", es="¡Hola Alice!"))
    room.add(_entry("u0", 0.0, 0.9, "Test.", name="Bob"))
    return room


# --- tiny parsers, strict about the parts the formats require ------------------------------


@dataclass
class Cue:
    number: int
    start: float
    end: float
    lines: list[str]


_SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
_VTT_TIME = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"


def _seconds(parts: tuple[str, ...]) -> float:
    h, m, s, ms = (int(p) for p in parts)
    return h * 3600 + m * 60 + s + ms / 1000


def _parse_blocks(blocks: list[str], time_pattern: str) -> list[Cue]:
    cues = []
    timing = re.compile(f"^{time_pattern} --> {time_pattern}$")
    for block in blocks:
        lines = block.split("\n")
        assert len(lines) >= 3, block
        assert lines[0].isdigit(), block
        match = timing.match(lines[1])
        assert match, lines[1]
        groups = match.groups()
        cues.append(Cue(int(lines[0]), _seconds(groups[:4]), _seconds(groups[4:]), lines[2:]))
    return cues


def parse_srt(text: str) -> list[Cue]:
    assert text.endswith("\n\n")
    return _parse_blocks(text.rstrip("\n").split("\n\n"), _SRT_TIME)


def parse_vtt(text: str) -> list[Cue]:
    header, _, rest = text.partition("\n\n")
    assert header == "WEBVTT"
    cues = _parse_blocks(rest.rstrip("\n").split("\n\n"), _VTT_TIME)
    for cue in cues:
        for line in cue.lines:
            # Cue text may not hold "-->", nor a bare "<" or "&" (they start tags and entities).
            assert "-->" not in line, line
            assert not re.search(r"<|&(?!(amp|lt|gt);)", line), line
    return cues


def _vtt_unescape(line: str) -> str:
    return line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --- export -----------------------------------------------------------------------------------


def test_srt_numbers_cues_in_start_order_with_relative_times(transcript: RoomTranscript) -> None:
    cues = parse_srt(to_srt(transcript.entries(), origin=transcript.origin))
    assert [c.number for c in cues] == [1, 2, 3]
    # The origin moved back from the creation time to the earliest start (u0 at T0).
    assert transcript.origin == T0
    assert [(c.start, c.end) for c in cues] == [(0.0, 0.9), (1.25, 3.5), (3.0, 3661.042)]
    assert cues[1].lines == ["Alice: Hello everyone.", "[es] Hola a todos.", "[vi] Xin chào."]
    assert cues[2].lines == ["Bob: Hi Alice!", "[es] ¡Hola Alice!"]
    assert cues[0].lines == ["Bob: Test."]
    assert "01:01:01,042" in to_srt(transcript.entries())


def test_languages_pick_and_order_the_translations(transcript: RoomTranscript) -> None:
    cues = parse_srt(to_srt(transcript.entries(), languages=["vi", "fr"]))
    assert cues[1].lines == ["Alice: Hello everyone.", "[vi] Xin chào."]
    assert cues[2].lines == ["Bob: Hi Alice!"]
    both = parse_vtt(to_webvtt(transcript.entries(), languages=["vi", "es"]))
    assert both[1].lines[1:] == ["[vi] Xin chào.", "[es] Hola a todos."]


def test_webvtt_times_and_text(transcript: RoomTranscript) -> None:
    text = to_webvtt(transcript.entries(), origin=T0 - 10)
    cues = parse_vtt(text)
    assert [(c.start, c.end) for c in cues] == [(10.0, 10.9), (11.25, 13.5), (13.0, 3671.042)]
    assert cues[1].lines[0] == "Alice: Hello everyone."
    assert "00:00:11.250 --> 00:00:13.500" in text


def test_webvtt_escapes_what_would_break_a_cue() -> None:
    nasty = "a --> b <i>c</i> & d &amp;"
    entries = [
        _entry("u1", 0.0, 1.0, nasty, name="<Eve & co>", es="x --> y"),
        _entry("u2", 1.0, 2.0, "line one\n\nline two\r\n3 --> 4"),
    ]
    cues = parse_vtt(to_webvtt(entries))
    assert len(cues) == 2
    assert _vtt_unescape(cues[0].lines[0]) == f"<Eve & co>: {nasty}"
    assert _vtt_unescape(cues[0].lines[1]) == "[es] x --> y"
    # Line breaks in recognized text would end the cue early: they become spaces.
    assert _vtt_unescape(cues[1].lines[0]) == "Alice: line one line two 3 --> 4"
    srt = parse_srt(to_srt(entries))
    assert srt[1].lines == ["Alice: line one line two 3 --> 4"]


def test_json_export_round_trips(transcript: RoomTranscript) -> None:
    transcript.add(
        TranscriptEntry(
            "u3", "p_ali", "Alice", "en", "Bye.", {}, T0 + 5, T0 + 6, {"recognize": 520.0}
        )
    )
    doc = json.loads(to_json(transcript.entries(), origin=transcript.origin, room_id="r"))
    assert doc["room_id"] == "r"
    assert doc["started_at"] == T0
    ids = [e["utterance_id"] for e in doc["entries"]]
    assert ids == ["u0", "u1", "u2", "u3"]
    first = doc["entries"][1]
    assert first["speaker_name"] == "Alice"
    assert first["translations"] == {"es": "Hola a todos.", "vi": "Xin chào."}
    assert (first["start"], first["end"]) == (1.25, 3.5)
    assert first["started_at"] == T0 + 1.25
    assert doc["entries"][3]["stages_ms"] == {"recognize": 520.0}
    filtered = json.loads(to_json(transcript.entries(), languages=["vi"]))
    assert filtered["entries"][2]["translations"] == {}


def test_empty_transcript_exports_are_valid() -> None:
    assert to_webvtt([]) == "WEBVTT\n\n"
    assert to_srt([]) == ""
    assert json.loads(to_json([]))["entries"] == []


# --- the store ----------------------------------------------------------------------------


def test_bounded_oldest_dropped_and_origin_kept() -> None:
    room = RoomTranscript("r", max_entries=3, created_at=T0 + 100)
    for i in range(5):
        room.add(_entry(f"u{i}", 10.0 * i, 10.0 * i + 1, f"n{i}"))
    assert len(room) == 3
    assert room.dropped == 2
    assert [e.utterance_id for e in room.entries()] == ["u2", "u3", "u4"]
    assert room.get("u0") is None
    # Times stay relative to the first utterance ever, not to the oldest one still kept.
    assert parse_srt(to_srt(room.entries(), origin=room.origin))[0].start == 20.0
    with pytest.raises(ValueError, match="max_entries"):
        RoomTranscript("r", max_entries=0)


def test_same_utterance_replaces_and_translations_arrive_later() -> None:
    room = RoomTranscript("r", created_at=T0)
    room.add(_entry("u1", 1, 2, "first try"))
    room.add(_entry("u1", 1, 2.5, "Final text."))
    assert len(room) == 1
    assert room.add_translation("u1", "de", "Endgültiger Text.")
    assert not room.add_translation("nope", "de", "x")
    entry = room.get("u1")
    assert entry is not None
    assert (entry.text, entry.end, dict(entry.translations)) == (
        "Final text.",
        T0 + 2.5,
        {"de": "Endgültiger Text."},
    )


def test_entry_from_a_final_caption_event() -> None:
    event = {
        "type": "caption",
        "utterance_id": "u_ab12",
        "speaker": "p_x",
        "speaker_name": "Alice",
        "final": True,
        "language": "en",
        "text": "Hello everyone.",
        "translations": {"es": "Hola a todos."},
        "started_at": 1764230000.12,
        "ended_at": 1764230001.90,
        "stages_ms": {"endpoint": 410, "recognize": 520, "translate": 90},
    }
    entry = entry_from_caption(event)
    assert entry.utterance_id == "u_ab12"
    assert (entry.speaker_id, entry.speaker_name, entry.language) == ("p_x", "Alice", "en")
    assert dict(entry.translations) == {"es": "Hola a todos."}
    assert (entry.start, entry.end) == (1764230000.12, 1764230001.90)
    assert dict(entry.stages_ms) == {"endpoint": 410.0, "recognize": 520.0, "translate": 90.0}
    open_ended = entry_from_caption({**event, "ended_at": None, "speaker_name": ""})
    assert open_ended.end == open_ended.start
    assert open_ended.speaker_name == "p_x"


# --- routes -------------------------------------------------------------------------------


@pytest.fixture
async def client(
    transcript: RoomTranscript,
) -> AsyncIterator[Client]:
    rooms = {transcript.room_id: transcript}

    async def lookup(room_id: str) -> TranscriptSnapshot | None:
        found = rooms.get(room_id)
        return found.snapshot() if found is not None else None

    def token_check(request: web.Request, room_id: str) -> str | None:
        return "token_invalid" if request.query.get("token") == "bad" else None

    app = web.Application()
    app.add_routes(transcript_routes(lookup, token_check))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("extension", "content_type"),
    [("srt", "application/x-subrip"), ("vtt", "text/vtt"), ("json", "application/json")],
)
async def test_download_routes(client: Client, extension: str, content_type: str) -> None:
    response = await client.get(f"/api/rooms/room-123456/transcript.{extension}")
    assert response.status == 200
    assert response.content_type == content_type
    assert response.charset == "utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="transcript-room-123456.{extension}"'
    )
    body = await response.text()
    if extension == "srt":
        assert parse_srt(body)[1].lines[0] == "Alice: Hello everyone."
    elif extension == "vtt":
        assert parse_vtt(body)[2].start == 3.0
    else:
        assert json.loads(body)["room_id"] == "room-123456"


async def test_download_picks_languages(client: Client) -> None:
    response = await client.get("/api/rooms/room-123456/transcript.srt?lang=vi")
    assert parse_srt(await response.text())[1].lines == ["Alice: Hello everyone.", "[vi] Xin chào."]
    bad = await client.get("/api/rooms/room-123456/transcript.srt?lang=<script>")
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "language_invalid"


async def test_unknown_room_and_refused_token(
    client: Client,
) -> None:
    missing = await client.get("/api/rooms/no-such-room/transcript.vtt")
    assert missing.status == 404
    assert await missing.json() == {
        "error": {
            "code": "room_not_found",
            "message": "there is no transcript for this room",
            "retry": False,
        }
    }
    refused = await client.get("/api/rooms/room-123456/transcript.json?token=bad")
    assert refused.status == 403
    error = (await refused.json())["error"]
    assert error["code"] == "token_invalid"
    assert error["retry"] is False
    # A refused caller learns nothing about which rooms exist.
    hidden = await client.get("/api/rooms/no-such-room/transcript.json?token=bad")
    assert hidden.status == 403


# --- the app's own access check, on a real server with a join secret ------------------------

SECRET = "transcript-test-secret"
ROOM, OTHER_ROOM = "room-123456", "room-654321"


@pytest.fixture
async def secured(make_server: Any) -> AsyncIterator[RunningServer]:
    async with make_server(join_secret=SECRET) as server:
        # The same path a call's final captions take (the pipeline's on_final).
        record = server.app[TRANSCRIPTS].record
        record(ROOM, _entry("u1", 1.25, 3.5, "Hello everyone.", es="Hola a todos."))
        record(ROOM, _entry("u2", 3.0, 4.0, "Hi Alice!", name="Bob", es="¡Hola Alice!"))
        record(OTHER_ROOM, _entry("v1", 0.0, 1.0, "Not yours."))
        yield server


async def _get(server: RunningServer, path: str) -> tuple[int, str, str]:
    async with server.session.get(f"{server.url}{path}") as response:
        return response.status, response.content_type, await response.text()


@pytest.mark.parametrize("extension", ["srt", "vtt", "json"])
async def test_real_app_serves_transcripts_to_holders_of_the_rooms_token(
    secured: RunningServer, extension: str
) -> None:
    token = mint_token(SECRET.encode(), ROOM, 600)
    path = f"/api/rooms/{ROOM}/transcript.{extension}"
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")  # the signature no longer matches
    status, content_type, body = await _get(secured, f"{path}?token={token}")
    assert status == 200, body
    assert content_type == FORMATS[extension][0]
    if extension == "srt":
        cues = parse_srt(body)
        assert [c.lines for c in cues] == [
            ["Alice: Hello everyone.", "[es] Hola a todos."],
            ["Bob: Hi Alice!", "[es] ¡Hola Alice!"],
        ]
        assert [(c.start, c.end) for c in cues] == [(0.0, 2.25), (1.75, 2.75)]
    elif extension == "vtt":
        cues = parse_vtt(body)
        assert [c.lines[0] for c in cues] == ["Alice: Hello everyone.", "Bob: Hi Alice!"]
        assert [(c.start, c.end) for c in cues] == [(0.0, 2.25), (1.75, 2.75)]
    else:
        document = json.loads(body)
        assert document["room_id"] == ROOM
        assert [(e["utterance_id"], e["text"]) for e in document["entries"]] == [
            ("u1", "Hello everyone."),
            ("u2", "Hi Alice!"),
        ]
        assert document["entries"][0]["translations"] == {"es": "Hola a todos."}

    refusals = {
        "": "token_required",
        "?token=": "token_required",
        f"?token={tampered}": "token_invalid",
        "?token=not-a-token": "token_invalid",
        f"?token={mint_token(b'another-secret', ROOM, 600)}": "token_invalid",
        f"?token={mint_token(SECRET.encode(), OTHER_ROOM, 600)}": "token_wrong_room",
        f"?token={mint_token(SECRET.encode(), ROOM, 600, now=time.time() - 3600)}": (
            "token_expired"
        ),
    }
    for query, code in refusals.items():
        status, content_type, body = await _get(secured, path + query)
        assert (status, content_type) == (403, "application/json"), (query, body)
        error = json.loads(body)["error"]
        assert (error["code"], error["retry"]) == (code, False), query
        assert "Hello" not in body


async def test_real_app_hides_which_rooms_exist_from_strangers(secured: RunningServer) -> None:
    stranger = mint_token(SECRET.encode(), OTHER_ROOM, 600)
    status, _, body = await _get(
        secured, f"/api/rooms/room-999999/transcript.json?token={stranger}"
    )
    assert status == 403, body
    status, _, body = await _get(secured, "/api/rooms/room-999999/transcript.json")
    assert status == 403, body
    # The room's own token for a room without a transcript: only then a 404.
    own = mint_token(SECRET.encode(), "room-999999", 600)
    status, _, body = await _get(secured, f"/api/rooms/room-999999/transcript.json?token={own}")
    assert status == 404, body
    assert json.loads(body)["error"]["code"] == "room_not_found"


async def test_real_app_without_a_join_secret_serves_anyone(make_server: Any) -> None:
    async with make_server() as server:
        server.app[TRANSCRIPTS].record(ROOM, _entry("u1", 0.0, 1.0, "Hello."))
        status, _, body = await _get(server, f"/api/rooms/{ROOM}/transcript.srt")
        assert status == 200, body
        assert parse_srt(body)[0].lines == ["Alice: Hello."]
