"""Running the server: bind, serve until SIGTERM or SIGINT, drain calls, close, exit 0."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

from callserver import loop_errors
from callserver.app import HUB, STATE, build_app
from callserver.folders import check_folders, written_folders
from callserver.http_guard import start_http
from callserver.settings import Settings

log = logging.getLogger(__name__)


async def drain(app: web.Application, timeout_s: float, force: asyncio.Event) -> None:
    """Refuse new joins and wait for calls to end, at most ``timeout_s`` or until ``force``."""
    app[STATE].draining = True
    hub = app[HUB]
    log.info("draining", extra={"participants": hub.participant_count, "timeout_s": timeout_s})
    await app[HUB].notify_draining(timeout_s)
    deadline = time.monotonic() + timeout_s
    # Polling: participants leave through many paths, none of which is worth an event. A leave
    # still closing its media or sending its `left` is waited for too, or the last caller to
    # leave could lose that answer to the shutdown.
    while (  # noqa: ASYNC110
        (hub.participant_count or hub.leaving)
        and time.monotonic() < deadline
        and not force.is_set()
    ):
        await asyncio.sleep(0.1)
    if hub.participant_count:
        log.info("drain timeout; closing calls", extra={"participants": hub.participant_count})


async def serve(settings: Settings) -> int:
    """Serve until a stop signal; return the process exit status."""
    await asyncio.to_thread(check_folders, written_folders())
    app = build_app(settings)
    runner = await start_http(app, settings.host, settings.port, settings.http_header_timeout_s)
    for address in runner.addresses:
        host, port = address[0], address[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"callserver is listening on http://{shown}:{port}/", flush=True)

    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        # The first signal drains; a second one cuts the drain short.
        if stop.is_set():
            force.set()
        stop.set()

    loop = asyncio.get_running_loop()
    loop_errors.install(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    await drain(app, settings.drain_timeout_s, force)
    await runner.cleanup()
    log.info("stopped")
    return 0
