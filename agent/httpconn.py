"""The HTTP listener's guards: idle connections closed, a connection cap below the file limit, quiet bad requests.

aiohttp closes a connection that sends no complete request within its keep-alive timeout (set from
``server.idle_timeout``), but it has no cap on open connections: thousands of idle sockets would use up
the process's file descriptors (``LimitNOFILE``) and leave no room for /metrics or for the targets'
own connections. :class:`CappedSite` listens like ``web.TCPSite`` and a :class:`ConnectionCap` holds the
number of open HTTP connections under :func:`connection_cap`: a connection beyond it first closes the
connection idle the longest, and is refused (503) only when every connection is busy with a request.

A malformed request (a port scanner, TLS spoken to plain HTTP) is a client's problem: aiohttp would log
it with a traceback; :data:`REQUEST_LOGGER` turns that into one debug line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import time
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from dbwatch.model import MetricFamily, counter, gauge

__all__ = ["CappedSite", "ConnectionCap", "Handler", "REQUEST_LOGGER", "connection_cap"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

logger = logging.getLogger(__name__)

#: the logger aiohttp reports request errors to (``AppRunner(logger=...)``)
REQUEST_LOGGER = logging.getLogger("dbwatch.agent.http.requests")
CAP_LOG_EVERY = 60.0  # seconds between two "connection cap reached" lines
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 32\r\n\r\ntoo many connections, try again\n")


def connection_cap(limit: int | None = None) -> int:
    """Open HTTP connections allowed: a quarter of the file limit (at most 1024), leaving the rest to the
    targets' connections, the state files and the logs. ``LimitNOFILE=4096`` gives 1024."""
    if limit is None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    return max(8, min(1024, limit // 4))


class ConnectionCap:
    """Holds the open connections under ``cap``; its :meth:`middleware` tells busy connections from idle ones."""

    def __init__(self, cap: int, pending_for: float = 2.0) -> None:
        """``pending_for``: how long an accepted connection may wait for its handler to start (with TLS,
        the handshake: its timeout), counted against the cap meanwhile."""
        self.cap = cap
        self.pending_for = pending_for
        self._busy: set[RequestHandler] = set()
        self._closed = {"idle_evicted": 0, "refused": 0}
        self._new: list[tuple[float, RequestHandler]] = []
        self._logged_at = float("-inf")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A connection is busy while a request of it is handled: it is not evicted then."""
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self._busy.discard(protocol)

    def admit(self, server: web.Server) -> asyncio.BaseProtocol:
        """The protocol for a new connection: aiohttp's handler, after closing the longest idle connection
        if at the cap; a 503 when every connection is busy."""
        if self.open_connections(server) >= self.cap:
            self._log()
            # the server keeps its connections in the order they connected: the oldest idle one goes first
            idle = [c for c in server.connections if c.transport is not None and c not in self._busy]
            if idle:
                idle[0].force_close()
            elif self._new:
                # accepted in the same burst, not started yet: it closes as soon as it starts (its
                # connection_made is already queued on the loop, before this callback)
                _, handler = self._new.pop(0)
                asyncio.get_running_loop().call_soon(handler.force_close)
            else:
                self._closed["refused"] += 1
                return _Refuse()
            self._closed["idle_evicted"] += 1
        handler = server()
        self._new.append((time.monotonic(), handler))
        return handler

    def open_connections(self, server: web.Server) -> int:
        """Connections not closed yet, counting the ones accepted whose handler has not started."""
        connections = server.connections
        known, now = set(connections), time.monotonic()
        # accepted, their connection_made still queued on the loop (a moment) or after the TLS handshake
        self._new = [(at, h) for at, h in self._new
                     if h.transport is None and h not in known and now - at < self.pending_for]
        return sum(1 for c in connections if c.transport is not None) + len(self._new)

    def metrics(self, server: web.Server) -> list[MetricFamily]:
        current = gauge("dbwatch_http_connections", "Open connections to dbwatch's HTTP listener.")
        current.add((), self.open_connections(server))
        limit = gauge("dbwatch_http_connections_max", "The cap on open HTTP connections (below the file limit).")
        limit.add((), self.cap)
        closed = counter("dbwatch_http_connections_closed_total", "HTTP connections closed by the cap: "
                         "idle_evicted (the longest idle, to make room), refused (503, every one busy).",
                         ("reason",))
        for reason, count in self._closed.items():
            closed.add((reason,), count)
        return [current, limit, closed]

    def _log(self) -> None:
        now = time.monotonic()
        if now - self._logged_at >= CAP_LOG_EVERY:
            self._logged_at = now
            logger.warning("HTTP connection cap of %d reached: closing the longest idle connections, refusing "
                           "new ones while all are busy (at most one line a minute)", self.cap)


class CappedSite(web.BaseSite):
    """A TCP listener (``web.TCPSite``'s job) whose new connections go through a :class:`ConnectionCap`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, cap: ConnectionCap,
                 ssl_context: Any = None, handshake_timeout: float = 30.0) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port = host, port
        self._cap = cap
        self._handshake_timeout = handshake_timeout
        self.bound_port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        # asyncio accepts up to ``backlog`` connections in one go, before any of them reaches the cap: a
        # batch in proportion to the cap keeps such a burst within the file descriptors left over. The
        # kernel's queue stays long (connections waiting there hold no descriptor of ours), so a scrape
        # arriving during a flood waits a moment instead of being dropped.
        batch = min(self._backlog, max(8, self._cap.cap // 4))
        listener = await loop.create_server(
            lambda: self._cap.admit(server), self._host, self._port, ssl=self._ssl_context, backlog=batch,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
        )
        for sock in listener.sockets:
            with socket.socket(fileno=os.dup(sock.fileno())) as same:
                same.listen(self._backlog)
        self._server = listener
        self.bound_port = listener.sockets[0].getsockname()[1] if listener.sockets else self._port


class _Refuse(asyncio.Protocol):
    """Answers 503 and hangs up: the client learns why, no file descriptor stays held."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSAL)
        transport.close()


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot parse with a traceback; it becomes one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if REQUEST_LOGGER.isEnabledFor(logging.DEBUG):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            message = (str(exc.message) or type(exc).__name__).splitlines()[0][:200]
            REQUEST_LOGGER.debug("malformed HTTP request from %s: %d %s", remote, exc.code, message)
        return False


REQUEST_LOGGER.addFilter(_MalformedRequests())
