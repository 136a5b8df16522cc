"""HTTP endpoints for rooms: create one, look one up, and the page's configuration."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from signaling.errors import ErrorCode, SignalingError
from signaling.languages import LANGUAGES
from signaling.names import check_title
from signaling.protocol import PROTOCOL_VERSION
from signaling.rooms import ROOM_ID_PATTERN, Room, RoomStore, hash_key, new_key
from signaling.tokens import Grants, TokenOptions, mint_token, verify_token

log = logging.getLogger(__name__)

#: What listeners of each language get from speakers of each other (see callserver.pairs).
PairsProvider = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class RoomRoutesOptions:
    """What the room endpoints need to know (the server fills it from its settings)."""

    #: Holders of the join secret create rooms and mint tokens; None lets anyone join.
    join_secret: str | None = None
    token_ttl_s: int = 3600
    join_token: TokenOptions = field(default_factory=TokenOptions)
    #: The URL users reach the server at, for join links; None derives it from the request.
    public_url: str | None = None
    #: Whether X-Forwarded-For / X-Forwarded-Proto come from a proxy that is trusted.
    trust_forwarded_for: bool = False
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    name_max_length: int = 64
    title_max_length: int = 80
    #: The language-pair matrix for the page's pickers; None leaves it out of the config.
    pairs: PairsProvider | None = None


_STATUS = {
    ErrorCode.CAPACITY_INVALID: 400,
    ErrorCode.BAD_JSON: 400,
    ErrorCode.BAD_MESSAGE: 400,
    ErrorCode.TITLE_INVALID: 400,
    ErrorCode.ROOM_ID_INVALID: 400,
    ErrorCode.TOKEN_REQUIRED: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.ROOMS_EXHAUSTED: 503,
}


def json_error(error: SignalingError) -> web.Response:
    """An error response in the same shape as the protocol's ``error`` message."""
    return web.json_response(
        {"error": {"code": str(error.code), "message": error.message, "retry": error.retry}},
        status=_STATUS.get(error.code, 400),
    )


def client_address(request: web.Request, trust_forwarded_for: bool) -> str:
    """The caller's address, from X-Forwarded-For only when the proxy is trusted."""
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.remote or "unknown"


def base_url(request: web.Request, options: RoomRoutesOptions) -> str:
    """The URL users reach the server at."""
    if options.public_url:
        return options.public_url.rstrip("/")
    scheme = request.scheme
    if options.trust_forwarded_for:
        # Behind a TLS proxy the server itself speaks plain HTTP: the link must say https.
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            scheme = forwarded
    return f"{scheme}://{request.host}"


def room_summary(room: Room, with_people: bool) -> dict[str, Any]:
    """What an invited guest is shown before joining (``GET /api/rooms/{id}``)."""
    people = [
        {"name": p.name, "spoken": p.spoken, "listen": p.listen, "host": p.host}
        for p in room.participants.values()
    ]
    return {
        "id": room.id,
        "capacity": room.capacity,
        "occupancy": len(room.participants),
        "title": room.title,
        "locked": room.locked,
        "ended": room.ended,
        "participants": people if with_people else None,
    }


def rooms_routes(rooms: RoomStore, options: RoomRoutesOptions) -> list[web.AbstractRouteDef]:
    """``POST /api/rooms``, ``GET /api/rooms/{id}`` and ``GET /api/config``."""
    secret = options.join_secret

    async def create_room(request: web.Request) -> web.Response:
        if secret is not None:
            # With a join secret, only the operator (who holds it) creates rooms and tokens.
            auth = request.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {secret}".encode()):
                # A wrong secret is told apart, so an operator sees it is not missing.
                code = ErrorCode.TOKEN_INVALID if auth else ErrorCode.TOKEN_REQUIRED
                message = (
                    "the Authorization header does not carry this server's join secret"
                    if auth
                    else "this server needs 'Authorization: Bearer <join secret>' to create rooms"
                )
                return json_error(SignalingError(code, message))
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                parsed = json.loads(await request.text() or "{}")
            except ValueError:
                return json_error(SignalingError(ErrorCode.BAD_JSON, "body is not valid JSON"))
            if not isinstance(parsed, dict):
                return json_error(
                    SignalingError(ErrorCode.BAD_MESSAGE, "body must be a JSON object")
                )
            body = parsed
        capacity = body.get("capacity")
        if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool)):
            return json_error(
                SignalingError(ErrorCode.CAPACITY_INVALID, "capacity must be an integer")
            )
        raw_title = body.get("title")
        if raw_title is not None and not isinstance(raw_title, str):
            return json_error(SignalingError(ErrorCode.TITLE_INVALID, "title must be text"))
        host_key = new_key()
        try:
            title = check_title(raw_title, options.title_max_length) if raw_title else None
            room = await rooms.create(
                capacity=capacity, title=title, host_key_hash=hash_key(host_key)
            )
        except SignalingError as error:
            return json_error(error)
        join_url = f"{base_url(request, options)}/?room={room.id}"
        result: dict[str, Any] = {
            "id": room.id,
            "capacity": room.capacity,
            "title": room.title,
            "join_url": join_url,
            "host_key": host_key,
        }
        if secret is not None:
            key = secret.encode("utf-8")
            token = mint_token(key, room.id, options.token_ttl_s, options=options.join_token)
            result["token"] = token
            result["host_token"] = mint_token(
                key,
                room.id,
                options.token_ttl_s,
                grants=Grants(host=True),
                options=options.join_token,
            )
            result["join_url"] = f"{join_url}&token={token}"
        return web.json_response(result, status=201)

    def may_see_who(request: web.Request, room_id: str) -> bool:
        """Without a join secret anyone with the link may join, so may see who is in; with
        one, only the holder of a valid token for the room."""
        if secret is None:
            return True
        token = request.query.get("token", "")
        try:
            verify_token(secret.encode("utf-8"), token, room_id, options.join_token)
        except SignalingError:
            return False
        return True

    async def get_room(request: web.Request) -> web.Response:
        room_id = request.match_info["room_id"]
        if not ROOM_ID_PATTERN.match(room_id):
            return json_error(SignalingError(ErrorCode.ROOM_ID_INVALID, "not a room id"))
        room = await rooms.get(room_id)
        if room is None:
            return json_error(SignalingError(ErrorCode.ROOM_NOT_FOUND, "no such room"))
        return web.json_response(room_summary(room, may_see_who(request, room_id)))

    async def config(request: web.Request) -> web.Response:
        pairs: Mapping[str, Any] | None = None
        if options.pairs is not None:
            try:
                pairs = await options.pairs()
            except Exception as exc:  # the page still works without it: it just marks nothing
                log.warning("language pairs unavailable", extra={"error": repr(exc)})
        return web.json_response(
            {
                "protocol": PROTOCOL_VERSION,
                "ice_servers": options.ice_servers,
                "languages": [
                    {"code": code, "name": name, "native": native}
                    for code, (name, native) in sorted(LANGUAGES.items())
                ],
                "room_capacity": rooms.limits.default_capacity,
                "room_max_capacity": rooms.limits.max_capacity,
                "name_max_length": options.name_max_length,
                "title_max_length": options.title_max_length,
                "token_required": secret is not None,
                "pairs": pairs,
            }
        )

    return [
        web.post("/api/rooms", create_room),
        web.get("/api/rooms/{room_id}", get_room),
        web.get("/api/config", config),
    ]
