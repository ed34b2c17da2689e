"""How hard the agent presses on one server: a limit on its collections in flight that adapts to its answers.

Many targets may live on one server (databases of one PostgreSQL, a fleet's replicas behind one address).
Each server (``host:port`` of its targets' DSNs) has a :class:`ServerGate`: a collection of any of its targets
runs only while it holds one of the gate's places. The limit starts at :data:`MAX_LIMIT` (configurable:
``collection.max_concurrent_per_server``), is halved each time a collection holding a place times out (the
server is overloaded: it gets fewer concurrent queries, on top of each collector's longer interval,
agent/jobs.py), and grows back by one place per ``limit`` successful collections (additive increase,
multiplicative decrease, as TCP does). ``dbwatch_server_concurrency_limit{server}`` shows it.

A place is a target's, not a collection's: the collectors of one target take turns on its one connection
anyway, so they share the place the first of them took (agent/jobs.py). Were each to take its own, most
places would be held by collections waiting for their target's turn (a PostgreSQL target has seven
collectors), and a server's few places would serve two or three targets at a time.
Waiting for a place counts in the collection's timeout, so a collection that cannot get one in time fails as
timed out (and its collector eases off) without having asked the server anything.
"""

from __future__ import annotations

import asyncio
import collections
from typing import AsyncIterator
from contextlib import asynccontextmanager

from dbwatch.model import MetricFamily, gauge

__all__ = ["MAX_LIMIT", "MIN_LIMIT", "ServerGate", "ServerGates"]

MAX_LIMIT = 16  # collections in flight on one server at most, by default
MIN_LIMIT = 1


class ServerGate:
    def __init__(self, server: str, limit: int = MAX_LIMIT) -> None:
        self.server = server
        self.max_limit = max(MIN_LIMIT, limit)
        self.limit = float(self.max_limit)
        self.in_flight = 0
        self.timeouts = 0  # collections holding a place that timed out, since the start
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        """Take one of the server's places (waiting in FIFO order for one); :meth:`release` gives it back."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a place just as we were cancelled: pass it on
            elif waiter in self._waiters:  # (a cancelled waiter may already have been skipped by _wake)
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """Hold one of the server's places while the body runs."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def succeeded(self) -> None:
        self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
        self._wake()

    def timed_out(self) -> None:
        self.timeouts += 1
        self.limit = max(float(MIN_LIMIT), self.limit / 2)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1  # the place passes to the waiter directly: nobody can jump the queue
                waiter.set_result(None)


class ServerGates:
    """The gates of every server the agent's targets are on."""

    def __init__(self, limit: int = MAX_LIMIT) -> None:
        self.limit = limit
        self._gates: dict[str, ServerGate] = {}

    def gate(self, server: str) -> ServerGate:
        gate = self._gates.get(server)
        if gate is None:
            gate = self._gates[server] = ServerGate(server, self.limit)
        return gate

    def configure(self, limit: int, servers: set[str]) -> None:
        """A (re)loaded configuration: its limit, and the servers still watched (the others are forgotten)."""
        self.limit = limit
        for name in [s for s in self._gates if s not in servers and not self._gates[s].in_flight]:
            del self._gates[name]
        for gate in self._gates.values():
            gate.max_limit = max(MIN_LIMIT, limit)
            gate.limit = min(gate.limit, float(gate.max_limit))

    def metrics(self) -> list[MetricFamily]:
        limit = gauge("dbwatch_server_concurrency_limit",
                      "Collections the agent runs at once on the server now: lowered while its collections time "
                      "out, back up as they succeed.", ("server",))
        in_flight = gauge("dbwatch_server_collections_in_flight", "Collections running on the server now.",
                          ("server",))
        for name, gate in sorted(self._gates.items()):
            limit.add((name,), int(gate.limit))
            in_flight.add((name,), gate.in_flight)
        return [limit, in_flight]
