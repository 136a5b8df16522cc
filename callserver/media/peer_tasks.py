"""Every task started for a participant's peer connection, watched so none fails unheard.

aiortc starts tasks of its own (``RTCPeerConnection.__connect``, the DTLS and SCTP loops, data
channel flushes) and awaits few of them, so a failure in one is reported by asyncio as "Task
exception was never retrieved" with a traceback, without saying whose call it was. While a
``PeerScope`` is active, a task factory on the loop attaches every new task to that scope; tasks
inherit the context they were created in, so aiortc's tasks, the tasks those start and the
callbacks of the sockets they open are all attributed to the same connection. A failure nobody
else retrieved is then retrieved here, logged once with the room and participant, and counted.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Called with (where, error type name) for every failure counted: ``task`` or ``close``.
FailureCounter = Callable[[str, str], None]

_SCOPE: contextvars.ContextVar[PeerScope | None] = contextvars.ContextVar(
    "callserver_peer_scope", default=None
)
# Loop iterations to wait before deciding nobody retrieved a failure: an awaiting task reads it
# one iteration after the task ends, ``asyncio.wait_for`` two.
_GRACE_ITERATIONS = 3
_OWN_CODE = str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True)
class PeerScope:
    """The connection new tasks belong to while this scope is active."""

    room_id: str
    participant_id: str
    count: FailureCounter | None = None

    @contextmanager
    def active(self) -> Iterator[None]:
        """Attribute tasks created inside the block (and the tasks they create) to this scope."""
        install(asyncio.get_running_loop())
        token = _SCOPE.set(self)
        try:
            yield
        finally:
            _SCOPE.reset(token)

    def failed(self, where: str, exc: BaseException, task: str | None = None) -> None:
        """Log and count one failure of this connection that nothing else handles."""
        fields = {
            "room": self.room_id,
            "participant": self.participant_id,
            "where": where,
            "task": task,
            "error_type": type(exc).__name__,
            "error": str(exc)[:200],
        }
        if isinstance(exc, ConnectionError):
            # The network path closed under a transport loop: how calls end, not a fault.
            log.debug("peer connection %s ended on a closed path", where, extra=fields)
        else:
            log.warning("peer connection %s failed", where, extra=fields)
        if self.count is not None:
            self.count(where, type(exc).__name__)


def current() -> PeerScope | None:
    """The scope active in this context, if any."""
    return _SCOPE.get()


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Put the scope-aware task factory on ``loop`` (once), keeping any factory it had."""
    previous = loop.get_task_factory()
    if getattr(previous, "_peer_scopes", False):
        return

    def factory(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        context: contextvars.Context | None = None,
    ) -> asyncio.Future[Any]:
        task: asyncio.Future[Any]
        if previous is not None:
            # typeshed's factory type for 3.11 lacks ``context``, which asyncio passes.
            task = (
                previous(loop, coro) if context is None else previous(loop, coro, context=context)  # type: ignore[call-arg]
            )
        else:
            task = asyncio.Task(coro, loop=loop, context=context)
        scope = context.get(_SCOPE) if context is not None else _SCOPE.get()
        if scope is not None:
            task.add_done_callback(lambda done: _settle(scope, done, _GRACE_ITERATIONS))
        return task

    factory._peer_scopes = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)  # type: ignore[arg-type]


def _settle(scope: PeerScope, task: asyncio.Future[Any], iterations: int) -> None:
    if task.cancelled():
        return
    # Private but stable since Python 3.4: asyncio's own flag for "nobody read the exception".
    if not getattr(task, "_log_traceback", True):
        return
    if iterations > 0:
        task.get_loop().call_soon(_settle, scope, task, iterations - 1)
        return
    exc = task.exception()  # retrieves it, so asyncio does not report it again
    if exc is None:
        return
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    name = getattr(coro, "__qualname__", None)
    code = getattr(coro, "cr_code", None)
    if code is not None and code.co_filename.startswith(_OWN_CODE):
        # A failure in the server's own code is a bug: the traceback is what fixes it.
        log.error(
            "server task of a peer connection failed",
            exc_info=exc,
            extra={"room": scope.room_id, "participant": scope.participant_id, "task": name},
        )
        if scope.count is not None:
            scope.count("task", type(exc).__name__)
        return
    scope.failed("task", exc, name)
