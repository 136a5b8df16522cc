"""Errors raised by engines. Each says whether retrying the same request may help."""

from __future__ import annotations


class EngineError(Exception):
    """An engine could not serve a request. ``retryable``: the same request may work later."""

    retryable: bool = False
    #: Short machine-readable code, used in API errors and metrics labels.
    code: str = "engine_error"

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class UnsupportedLanguage(EngineError):
    """No configured engine serves this language or language pair."""

    code = "unsupported_language"


class InvalidInput(EngineError):
    """The input itself is unusable (empty, too long, undecodable)."""

    code = "invalid_input"


class ModelMissing(EngineError):
    """A configured model is not on this machine; the message names the command that fixes it."""

    code = "model_missing"


class EngineUnavailable(EngineError):
    """The engine is down, overloaded or timed out; retrying later may help."""

    code = "engine_unavailable"
    retryable = True


class DeadlinePassed(EngineUnavailable):
    """The job waited past its budget and was dropped, not done late (the caption says so)."""

    code = "deadline"
    retryable = False
