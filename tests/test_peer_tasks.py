"""A failure in a task started for a peer connection is logged once, with whose call it was."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from callserver.media.peer_tasks import PeerScope

LOGGER = "callserver.media.peer_tasks"


async def settle() -> None:
    """Let done callbacks run and unreferenced tasks be collected (asyncio reports then)."""
    for _ in range(10):
        await asyncio.sleep(0)
    gc.collect()
    await asyncio.sleep(0)


def unretrieved(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_a_forgotten_failure_is_logged_once_with_the_call_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    counted: list[tuple[str, str]] = []
    scope = PeerScope("room-1", "p_a", lambda where, error: counted.append((where, error)))

    async def inner() -> None:
        raise RuntimeError("'NoneType' object has no attribute 'transport'")

    async def outer() -> None:
        # As aiortc does: a task started from a task of the connection, never awaited.
        asyncio.ensure_future(inner())  # noqa: RUF006

    with scope.active():
        asyncio.ensure_future(outer())  # noqa: RUF006
    await settle()
    ours = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelno for r in ours] == [logging.WARNING]
    fields = ours[0].__dict__
    assert (fields["room"], fields["participant"], fields["where"]) == ("room-1", "p_a", "task")
    assert fields["error_type"] == "RuntimeError" and ours[0].exc_info is None
    assert counted == [("task", "RuntimeError")]
    assert unretrieved(caplog) == []


async def test_a_failure_someone_awaits_is_theirs_to_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    scope = PeerScope("room-1", "p_a")

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("handled by the caller")

    with scope.active():
        with pytest.raises(ValueError, match="handled by the caller"):
            await asyncio.wait_for(asyncio.ensure_future(fails()), 5)
        results = await asyncio.gather(fails(), return_exceptions=True)
    assert isinstance(results[0], ValueError)
    await settle()
    assert [r for r in caplog.records if r.name == LOGGER] == []


async def test_a_closed_path_is_a_debug_note_and_tasks_outside_a_scope_are_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def path_closed() -> None:
        raise ConnectionError("Cannot send encrypted data, not connected")

    with PeerScope("room-1", "p_a").active():
        asyncio.ensure_future(path_closed())  # noqa: RUF006
    outside = asyncio.ensure_future(path_closed())
    await settle()
    ours = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelno for r in ours] == [logging.DEBUG]
    # Unscoped tasks keep asyncio's own handling (callserver.loop_errors in the server).
    assert outside.exception() is not None
