"""What the event loop does with exceptions nobody awaited.

aiortc sends data-channel chunks from tasks of its own; when a peer's network path is gone
(the browser closed the tab) a chunk already queued fails with ``ConnectionError`` inside that
task, which nothing awaits, and asyncio logs it as an error with a traceback. That is a normal
end of a call, so it is logged briefly at debug level. Anything else keeps asyncio's handling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

#: Coroutines of aiortc's own transport tasks whose failure on a closed path is expected.
_TRANSPORT_TASKS = ("RTCSctpTransport.", "RTCDtlsTransport.", "RTCIceTransport.")


def is_closed_transport(context: dict[str, Any]) -> bool:
    """Whether ``context`` is an aiortc transport task that failed because its path closed."""
    if not isinstance(context.get("exception"), ConnectionError):
        return False
    task = context.get("future")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    name = getattr(coro, "__qualname__", "")
    return name.startswith(_TRANSPORT_TASKS)


def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Loop exception handler: quiet for closed transports, asyncio's default otherwise."""
    if is_closed_transport(context):
        task = context.get("future")
        log.debug(
            "transport task ended on a closed connection",
            extra={
                "task": task.get_name() if isinstance(task, asyncio.Task) else None,
                "error": str(context.get("exception")),
            },
        )
        return
    loop.default_exception_handler(context)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Use ``handle`` for ``loop``."""
    loop.set_exception_handler(handle)
