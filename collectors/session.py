"""The one session template: connect, bound, back off, scrub, and fail as a :class:`CollectorError`.

Every engine's session (PostgreSQL, MySQL/MariaDB, Redis, PgBouncer, MongoDB) is a :class:`DriverSession`
that supplies only its driver calls: :meth:`~DriverSession.connect` (open and authenticate),
:meth:`~DriverSession.prepare` (the first words on a new connection), :meth:`~DriverSession.disconnect`,
and how it describes a driver's error. The template owns the rest, once:

- the connection belongs to the session; a collector gets it only while it holds the session's lock
  (:meth:`~DriverSession.connection` refuses anyone else), so no collector runs on a connection that another
  one dropped;
- a holder that leaves the lock abnormally (cancelled by the daemon's timeout, or a bug) leaves a connection
  in an unknown state: it is dropped before the next collector gets the lock;
- reconnection backs off exponentially with jitter, so a dead server is not hammered, and the agent starts at
  most :func:`connect_slots` connections at a time, so a fleet starting up does not storm its servers; an
  attempt still unanswered after :data:`SLOT_HOLD` seconds (a server that accepts and never answers) gives its
  slot back and goes on waiting on its own, so hung servers cannot starve the healthy ones of slots;
- error text never holds the DSN as written, a password, or one written into a URI.
"""

from __future__ import annotations

import abc
import asyncio
import random
import re
import time
import urllib.parse
import weakref
from typing import ClassVar, Generic, TypeVar

from dbwatch.collectors.base import CollectorError, Session
from dbwatch.model import SecretUnavailable, Target

__all__ = ["DEFAULT_CONNECT_SLOTS", "ConnectRefused", "DriverSession", "connect_slots", "dsn_password", "scrub",
           "set_connect_slots"]

ConnT = TypeVar("ConnT")

#: connection attempts in flight at once across the agent, unless configured (see :func:`set_connect_slots`)
DEFAULT_CONNECT_SLOTS = 32
#: seconds an attempt holds its slot at most (a handshake that takes longer is a hung server's, not a herd's)
SLOT_HOLD = 2.0


class ConnectRefused(Exception):
    """Raised by an engine's connect or prepare: the peer answered, but it is not what the target says it is.
    The message is shown as is (the engine scrubs it)."""


class DriverSession(Session, Generic[ConnT]):
    """One long-lived connection to a target, shared by that target's collectors in turn."""

    #: the engine's port when the DSN names none (for the endpoint shown in errors)
    default_port: ClassVar[int] = 0
    min_backoff: ClassVar[float] = 1.0
    max_backoff: ClassVar[float] = 60.0
    #: the driver's errors that mean a connection could not be opened (anything else is a bug, and raised)
    connect_errors: ClassVar[tuple[type[BaseException], ...]] = (Exception,)
    #: the driver's errors that mean the server did not answer in time (an overloaded server: the daemon eases
    #: off, agent/pressure.py), beside asyncio's
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (TimeoutError,)

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._conn: ConnT | None = None
        self._closed = False
        self._last_error = ""
        self._last_timed_out = False  # whether the last failed attempt timed out (an overloaded server)
        self._failures = 0
        self._next_attempt = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        #: the shortest of the target's collector timeouts: engines bound their driver's timeouts below it, so
        #: the usual failure is the driver's clean error rather than the daemon's cancellation
        self.shortest_timeout = min((c.timeout for c in target.collectors.values()), default=10.0)
        self.endpoint = self.endpoint_of(target.dsn)

    # -- what an engine supplies --------------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self, password: str | None) -> ConnT:
        """Open and authenticate a connection with the driver; raise the driver's error if it cannot."""

    async def prepare(self, conn: ConnT) -> None:
        """The first words on a new connection (session settings, what server it is). If it raises, the
        connection is dropped and the error is reported as a failure to connect."""

    @abc.abstractmethod
    async def disconnect(self, conn: ConnT, graceful: bool) -> None:
        """Close ``conn``; must not raise. Not ``graceful``: the connection may be stuck, do not wait for
        the server."""

    def is_open(self, conn: ConnT) -> bool:
        """Whether the driver still considers ``conn`` usable."""
        return True

    def describe(self, exc: BaseException) -> str:
        """One line for the user from a driver's error (scrubbed afterwards)."""
        text = str(exc).strip() or type(exc).__name__
        return text.splitlines()[0]

    def connect_reason(self, exc: BaseException, password: str | None) -> str:
        """Why a connection could not be opened, secret-free; engines add hints for common mistakes."""
        return self.safe(self.describe(exc), password)

    def endpoint_of(self, dsn: str) -> str:
        """``host:port`` for errors and logs: never the DSN as written."""
        parsed = urllib.parse.urlsplit(dsn)
        try:
            port = parsed.port or self.default_port
        except ValueError:
            port = self.default_port
        return f"{parsed.hostname or 'localhost'}:{port}"

    # -- the template ---------------------------------------------------------------------------------

    async def connection(self) -> ConnT:
        """The live connection, opened on first use, for the holder of :attr:`lock` only; raises a
        secret-free :class:`CollectorError` when it cannot be had."""
        if not self.lock.held():
            raise RuntimeError(f"{type(self).__name__}.connection() outside the session's lock")
        if self._closed:
            raise CollectorError(f"the session to {self.endpoint} is closed")
        conn = self._conn
        if conn is not None:
            if self.is_open(conn):
                return conn
            self._drop()
        self.check_backoff(time.monotonic(), self._last_error)
        password = self.target.password()
        async with connect_slots():
            attempt = asyncio.ensure_future(self._open(password))
            try:
                await asyncio.wait({attempt}, timeout=_slot_hold)
            except BaseException:
                attempt.cancel()
                raise
        opened = await attempt  # cancelling this await cancels the attempt too
        self._conn = opened
        return opened

    @property
    def connected(self) -> bool:
        """Whether the session holds a connection now (a lost one is dropped at once)."""
        return self._conn is not None

    def lost(self, exc: BaseException) -> CollectorError:
        """The connection broke under its holder: drop it (the next use reconnects) and say so plainly."""
        self._drop()
        return CollectorError(f"connection to {self.endpoint} lost: {self.safe(self.describe(exc))}",
                              overloaded=isinstance(exc, self.timeout_errors))

    async def invalidate(self) -> None:
        if self.lock.held():
            self._drop()
        else:
            async with self.lock:
                self._drop()

    async def close(self) -> None:
        """Close for good. A connection in use is never closed under its holder: the holder drops it as it
        releases the lock (see :meth:`released`), and nobody gets it afterwards."""
        self._closed = True
        if not self.lock.locked():
            conn, self._conn = self._conn, None
            if conn is not None:
                await self.disconnect(conn, graceful=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def released(self, error: type[BaseException] | None) -> None:
        if self._closed or (error is not None and not issubclass(error, (CollectorError, SecretUnavailable))):
            self._drop()

    def backoff_remaining(self, now: float) -> float:
        return max(0.0, self._next_attempt - now)

    def record_failure(self, now: float) -> None:
        self._failures += 1
        delay = min(self.max_backoff, self.min_backoff * 2 ** (self._failures - 1))
        self._next_attempt = now + delay * random.uniform(0.5, 1.0)

    def record_success(self) -> None:
        self._failures = 0
        self._next_attempt = 0.0

    def check_backoff(self, now: float, last_error: str) -> None:
        """Refuse to reconnect before the backoff has passed (the server is not hammered while down)."""
        wait = self.backoff_remaining(now)
        if wait > 0:
            # Backing off from a server that did not answer in time is easing off an overloaded server: the
            # collectors refused meanwhile lengthen their intervals too, not only the one whose attempt timed out.
            raise CollectorError(f"reconnect backoff: next attempt in {wait:.1f}s (last error: {last_error})",
                                 overloaded=self._last_timed_out, asked=False)

    def safe(self, text: str, password: str | None = None) -> str:
        return scrub(text, self.target.dsn, self.endpoint, password)

    # -- helpers --------------------------------------------------------------------------------------

    async def _open(self, password: str | None) -> ConnT:
        timed_out = False
        try:
            conn = await self.connect(password)
            try:
                await self.prepare(conn)
            except BaseException:  # also the daemon's cancellation: never leak the socket
                self._discard(conn)
                raise
        except ConnectRefused as exc:
            reason = str(exc)
        except self.connect_errors as exc:
            reason = self.connect_reason(exc, password)
            timed_out = isinstance(exc, self.timeout_errors)
        else:
            self.record_success()
            return conn
        self.record_failure(time.monotonic())
        self._last_error, self._last_timed_out = reason, timed_out
        raise CollectorError(f"cannot connect to {self.endpoint}: {reason}", overloaded=timed_out)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._discard(conn)

    def _discard(self, conn: ConnT) -> None:
        # Detached at once (nobody can reach it any more); closed in the background, so that a cancelled holder
        # leaves the lock without waiting on a server that may be the thing that is stuck.
        task = asyncio.get_running_loop().create_task(self.disconnect(conn, graceful=False))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def scrub(text: str, dsn: str, endpoint: str, password: str | None = None) -> str:
    """Error text without secrets: never the DSN as written (it becomes ``endpoint``), never a password,
    whether the one read from the environment or file, or one written into a URI."""
    if dsn:
        text = text.replace(dsn, endpoint)
    text = _URI_PASSWORD.sub(r"\1***@", text)
    for secret in (password, dsn_password(dsn)):
        if secret:
            text = text.replace(secret, "***")
    return text


def dsn_password(dsn: str) -> str | None:
    """The password written into a DSN, if any (the config refuses them; old files may still hold one)."""
    try:
        return urllib.parse.urlsplit(dsn).password
    except ValueError:
        return None


_slots = DEFAULT_CONNECT_SLOTS
_slot_hold = SLOT_HOLD
# One semaphore per event loop: asyncio primitives belong to the loop they first wait on, and tests (and
# `dbwatch check`) run more than one loop in a process.
_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def set_connect_slots(size: int, hold: float = SLOT_HOLD) -> None:
    """How many connection attempts the agent starts at once, across all targets, and how long one may hold its
    slot before it waits on without it (set before collections start)."""
    global _slots, _slot_hold
    if size < 1:
        raise ValueError(f"connect slots: expected a number of at least 1, got {size}")
    _slots, _slot_hold = size, hold
    _semaphores.clear()


def connect_slots() -> asyncio.Semaphore:
    """The running loop's bound on connection attempts in flight."""
    loop = asyncio.get_running_loop()
    semaphore = _semaphores.get(loop)
    if semaphore is None:
        semaphore = _semaphores[loop] = asyncio.Semaphore(_slots)
    return semaphore


_URI_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s]*@")
