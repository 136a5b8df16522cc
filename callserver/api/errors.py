"""Engine errors as HTTP answers: a status, and the body every API error has."""

from __future__ import annotations

from aiohttp import web

from models.errors import (
    EngineError,
    EngineUnavailable,
    InvalidInput,
    ModelMissing,
    UnsupportedLanguage,
)

#: Most specific class first.
_STATUS: list[tuple[type[EngineError], int]] = [
    (InvalidInput, 400),
    (UnsupportedLanguage, 422),
    (ModelMissing, 503),
    (EngineUnavailable, 503),
    (EngineError, 503),
]


def api_error(status: int, code: str, message: str, retry: bool = False) -> web.Response:
    """``{"error": {"code", "message", "retry"}}`` with ``status``."""
    return web.json_response(
        {"error": {"code": code, "message": message, "retry": retry}}, status=status
    )


def engine_error_response(exc: EngineError) -> web.Response:
    """The answer for an engine's refusal: 4xx for the caller's input, 503 for the engine's."""
    status = next(code for cls, code in _STATUS if isinstance(exc, cls))
    return api_error(status, exc.code, exc.message, exc.retryable)
