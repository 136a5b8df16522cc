"""Serving HTTP with a header deadline: a client must finish each request's headers in time.

aiohttp has no header timeout: the only bound on a client that dribbles its headers a byte at
a time is its keep-alive timeout, an hour by default, so a few hundred such clients hold
connections and memory for that long (slowloris). The deadline counts from the moment a
connection opens, and on a kept-alive connection from the first byte of the next request, to
the moment aiohttp hands the parsed request to the application; a connection that misses it
gets ``408`` and is closed. Idle kept-alive connections, request bodies and WebSockets are not
timed by it (a proxy in front may hold idle connections open, and an upload may rightly take
longer).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _Phase(enum.Enum):
    AWAITING_HEADERS = enum.auto()
    IN_REQUEST = enum.auto()
    IDLE = enum.auto()


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the header deadline in front of it."""

    def __init__(self, inner: asyncio.Protocol, guard: HeaderDeadline) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._phase = _Phase.AWAITING_HEADERS
        self._timer: asyncio.TimerHandle | None = None
        self._headers_begun = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._guard.connections[transport] = self
        # Counted from the connection's opening: a client that connects and sends nothing
        # holds a connection as surely as one that sends a byte a second.
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if data and self._phase is _Phase.IDLE:
            self._phase = _Phase.AWAITING_HEADERS
            self._arm()
        if data and self._phase is _Phase.AWAITING_HEADERS:
            self._headers_begun = True
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._guard.connections.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_started(self) -> None:
        """aiohttp parsed a request's headers: the deadline is met."""
        self._disarm()
        self._phase = _Phase.IN_REQUEST
        self._headers_begun = False

    def request_done(self) -> None:
        """The application has its answer; the next request's clock starts at its first byte."""
        if self._phase is _Phase.IN_REQUEST:
            self._phase = _Phase.IDLE

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if self._phase is not _Phase.AWAITING_HEADERS or transport is None:
            return
        if transport.is_closing():
            return
        if transport.get_write_buffer_size():
            # A pipelining client's bytes arrived while a response to it is still being
            # written: it is not late with its headers, it is waiting for us.
            self._arm()
            return
        log.debug(
            "request headers not received in time; closing",
            extra={"client": transport.get_extra_info("peername"), "partial": self._headers_begun},
        )
        if self._headers_begun:
            transport.write(_REQUEST_TIMEOUT)
        transport.close()


class HeaderDeadline:
    """The header deadline for every connection of one server."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.connections: dict[asyncio.Transport, _GuardedConnection] = {}

    def protocol_factory(
        self, inner: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's protocol factory so that each connection is guarded."""
        return lambda: _GuardedConnection(inner(), self)

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Marks when aiohttp hands over a parsed request and when the answer is ready."""
        transport = request.transport
        conn = self.connections.get(transport) if isinstance(transport, asyncio.Transport) else None
        if conn is not None:
            conn.request_started()
        try:
            return await handler(request)
        finally:
            if conn is not None:
                conn.request_done()


class GuardedTCPSite(web.BaseSite):
    """A TCP site whose connections are guarded by a header deadline."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, deadline: HeaderDeadline
    ) -> None:
        super().__init__(runner)
        self._served_by = runner
        self._listen_host, self._listen_port = host, port
        self._deadline = deadline

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._listen_host, port=self._listen_port))

    async def start(self) -> None:
        await super().start()
        server = self._served_by.server
        assert server is not None
        loop = asyncio.get_running_loop()
        # BaseSite.stop() and the runner's addresses read the listening server from here.
        self._server = await loop.create_server(
            self._deadline.protocol_factory(server), self._listen_host, self._listen_port
        )


async def start_http(
    app: web.Application, host: str, port: int, header_timeout_s: float
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` with the header deadline; the runner's cleanup stops it."""
    deadline = HeaderDeadline(header_timeout_s)
    # First, so that it sees every request even when another middleware answers early.
    app.middlewares.insert(0, deadline.middleware)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = GuardedTCPSite(runner, host, port, deadline)
    await site.start()
    return runner
