"""Runs blocking inference off the event loop with bounded concurrency and a visible queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from models.errors import EngineUnavailable

P = ParamSpec("P")
R = TypeVar("R")


class InferencePool:
    """A thread pool for one engine: ``workers`` run at once, at most ``max_queue`` wait.

    Engines release the GIL inside CTranslate2, ONNX Runtime and numpy, so threads give real
    parallelism; a bounded queue turns overload into a fast, retryable error instead of latency.
    """

    def __init__(self, name: str, workers: int = 1, max_queue: int = 64) -> None:
        if workers < 1 or max_queue < 0:
            raise ValueError("workers must be >= 1 and max_queue >= 0")
        self.name = name
        self.workers = workers
        self.max_queue = max_queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending = 0

    @property
    def depth(self) -> int:
        """Requests running or waiting, counted until their thread is done with them.

        A caller that stops waiting (its task cancelled) does not stop a decode already running
        in a thread: that work still holds a worker, so it still counts here.
        """
        return self._pending

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` in the pool; lazy results must be consumed inside ``fn``."""
        if self._pending >= self.workers + self.max_queue:
            raise EngineUnavailable(f"{self.name} is overloaded ({self._pending} queued)")
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        try:
            future = self._executor.submit(call)
        except RuntimeError as exc:  # shut down
            raise EngineUnavailable(f"{self.name} is closed", retryable=False) from exc
        self._pending += 1

        def finished(_: concurrent.futures.Future[R]) -> None:
            # Runs in the worker thread (or wherever the future was cancelled before it ran).
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody counts
                loop.call_soon_threadsafe(self._done)

        future.add_done_callback(finished)
        return await asyncio.wrap_future(future)

    def _done(self) -> None:
        self._pending -= 1

    def close(self) -> None:
        """Stop accepting work; running calls finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)
