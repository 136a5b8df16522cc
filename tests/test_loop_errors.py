"""A data-channel send that fails because the peer's path closed is not logged as an error."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callserver import loop_errors


class RTCSctpTransport:
    """Fault injection: named like aiortc's class, its transmit task fails as aiortc's does
    when the peer's network path is gone."""

    async def _transmit(self) -> None:
        raise ConnectionError("Cannot send data, not connected")


async def test_closed_transport_task_is_logged_at_debug_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop_errors.install(loop)
    caplog.set_level(logging.DEBUG)
    try:
        task = asyncio.ensure_future(RTCSctpTransport()._transmit())
        await asyncio.wait([task])
        closed = {
            "message": "Task exception was never retrieved",
            "exception": task.exception(),
            "future": task,
        }
        assert loop_errors.is_closed_transport(closed)
        loop.call_exception_handler(closed)
        # Any other unretrieved failure keeps asyncio's error report.
        other = asyncio.ensure_future(asyncio.sleep(0, result=None))
        await other
        loop.call_exception_handler(
            {"message": "boom", "exception": ConnectionError("elsewhere"), "future": other}
        )
    finally:
        loop.set_exception_handler(previous)
    levels = {(r.name, r.levelno) for r in caplog.records}
    assert ("callserver.loop_errors", logging.DEBUG) in levels
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().splitlines()[0] for r in errors] == ["boom"]
