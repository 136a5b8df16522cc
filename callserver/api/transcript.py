"""``GET /api/rooms/{room_id}/transcript.{srt,vtt,json}``: a room's captions as a download.

In the distributed mode any node answers, since transcripts live in Redis; while Redis does
not answer, a download is refused with 503 ``transcript_unavailable``, retryable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection, Sequence

from aiohttp import web

from callserver.api.errors import api_error
from callserver.pipeline.transcript import (
    TranscriptEntry,
    TranscriptSnapshot,
    TranscriptUnavailable,
    to_json,
    to_srt,
    to_webvtt,
)

log = logging.getLogger(__name__)

#: ``lookup(room_id)``: the room's transcript or None (``TranscriptStore.read``).
TranscriptLookup = Callable[[str], Awaitable[TranscriptSnapshot | None]]
#: ``token_check(request, room_id)``: None lets the request read the room's transcript; else the
#: error code (token_*) it is refused with.
TokenCheck = Callable[[web.Request, str], str | None]

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


def _render_json(
    entries: Sequence[TranscriptEntry],
    languages: Collection[str] | None,
    transcript: TranscriptSnapshot,
) -> str:
    return to_json(entries, languages, transcript.origin, room_id=transcript.room_id)


def _render_srt(
    entries: Sequence[TranscriptEntry],
    languages: Collection[str] | None,
    transcript: TranscriptSnapshot,
) -> str:
    return to_srt(entries, languages, transcript.origin)


def _render_vtt(
    entries: Sequence[TranscriptEntry],
    languages: Collection[str] | None,
    transcript: TranscriptSnapshot,
) -> str:
    return to_webvtt(entries, languages, transcript.origin)


Renderer = Callable[
    [Sequence[TranscriptEntry], Collection[str] | None, TranscriptSnapshot],
    str,
]

#: extension -> (content type, renderer)
FORMATS: dict[str, tuple[str, Renderer]] = {
    "srt": ("application/x-subrip", _render_srt),
    "vtt": ("text/vtt", _render_vtt),
    "json": ("application/json", _render_json),
}


def _languages(request: web.Request) -> list[str] | None:
    """``?lang=es,fr`` limits the translations shown; absent means all of them."""
    raw = request.query.get("lang")
    if raw is None:
        return None
    codes = [code.strip() for code in raw.split(",") if code.strip()]
    if len(codes) > 32 or not all(_LANGUAGE.match(code) for code in codes):
        raise web.HTTPBadRequest()
    return codes


def transcript_routes(lookup: TranscriptLookup, token_check: TokenCheck) -> list[web.RouteDef]:
    """The download routes; ``token_check`` decides who may read a room's transcript."""

    def handler(extension: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        content_type, render = FORMATS[extension]

        async def download(request: web.Request) -> web.Response:
            room_id = request.match_info["room_id"]
            # Refuse before looking the room up, so strangers cannot probe which rooms exist.
            refusal = token_check(request, room_id)
            if refusal is not None:
                return api_error(403, refusal, "a valid invitation token for this room is needed")
            try:
                transcript = await lookup(room_id)
            except TranscriptUnavailable as exc:
                log.warning(
                    "transcript download failed", extra={"room": room_id, "error": str(exc)}
                )
                return api_error(
                    503,
                    "transcript_unavailable",
                    "transcripts cannot be read right now; try again shortly",
                    retry=True,
                )
            if transcript is None:
                return api_error(404, "room_not_found", "there is no transcript for this room")
            try:
                languages = _languages(request)
            except web.HTTPBadRequest:
                return api_error(400, "language_invalid", "'lang' must list language tags")
            body = render(transcript.entries, languages, transcript)
            filename = f"transcript-{_SAFE_NAME.sub('_', room_id)[:64]}.{extension}"
            log.info(
                "transcript download",
                extra={"room": room_id, "format": extension, "entries": len(transcript)},
            )
            return web.Response(
                text=body,
                content_type=content_type,
                charset="utf-8",
                headers={
                    "Content-Disposition": f'attachment; filename="{filename}"',
                    "Cache-Control": "no-store",
                },
            )

        return download

    return [
        web.get(f"/api/rooms/{{room_id}}/transcript.{extension}", handler(extension))
        for extension in FORMATS
    ]
