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
A target's main collector (the one its ``up`` comes from) is served before the others, so that a congested
server still says which targets are up while their other collections wait. Waiting for a place counts in the
collection's timeout, so a collection that cannot get one in time fails as timed out (and its collector eases
off, which unloads the queue) without having asked the server anything.

When the server's main collections themselves queue for places (as many of them waiting as the limit lets in
at once), a target's other collectors do not join the queue: their runs are deferred (agent/jobs.py) until
the queue is short again, so that the places go to the collections that say whether targets are up
(``dbwatch_server_collections_deferred_total{server}``). An overloaded server keeps its targets' ``up`` and
loses only the secondary figures' freshness, instead of every collection timing out in turn.

The limit is halved once per congestion event, as TCP does once per window: the collections that time out
together were all in flight under the old limit, and halving for each of them (a few hundred targets on one
busy server) pinned the limit at one place, where nothing got through in time and nothing could succeed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator
from contextlib import asynccontextmanager

from dbwatch.collectors.turns import Turns
from dbwatch.model import MetricFamily, counter, gauge

__all__ = ["MAX_LIMIT", "MIN_LIMIT", "ServerGate", "ServerGates"]

logger = logging.getLogger(__name__)

MAX_LIMIT = 16  # collections in flight on one server at most, by default
MIN_LIMIT = 1
SAY_DEFERRING_EVERY = 600.0  # seconds between two log lines of one server's deferring


class ServerGate:
    def __init__(self, server: str, limit: int = MAX_LIMIT) -> None:
        self.server = server
        self.max_limit = max(MIN_LIMIT, limit)
        self.limit = float(self.max_limit)
        self.in_flight = 0
        self.timeouts = 0  # collections holding a place that timed out, since the start
        self.deferred = 0  # secondary collections deferred while the main ones queued, since the start
        self._shedding = False  # whether secondary collections are being deferred now
        self._said_at = float("-inf")  # when (monotonic) the log last said so
        self._turns = Turns()
        self._decreased_at = float("-inf")  # when (monotonic) the limit was last halved

    def request(self, urgent: bool = False) -> asyncio.Future[None]:
        """Ask for one of the server's places: the future is done when it is granted (at once when one is
        free). Urgent requests are served before the others. Every request ends with :meth:`withdraw`."""
        if self.in_flight < int(self.limit) and not self._turns:
            self.in_flight += 1
            place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            place.set_result(None)
            return place
        return self._turns.wait(urgent)

    def defers(self) -> bool:
        """Whether a secondary collection (not a target's main one) is deferred now: the server's main collections
        queue for places, as many waiting as the limit lets in at once. A deferral is counted, and said in the log
        when deferring starts, at most every :data:`SAY_DEFERRING_EVERY` seconds (congestion comes and goes)."""
        if self._turns.urgent_waiting < int(self.limit):
            self._shedding = False
            return False
        self.deferred += 1
        if not self._shedding:
            self._shedding = True
            now = time.monotonic()
            if now - self._said_at >= SAY_DEFERRING_EVERY:
                self._said_at = now
                logger.warning("server %s: its targets' main collections queue for places (limit %d): their "
                               "other collections are deferred while they do", self.server, int(self.limit))
        return True

    def promote(self, place: asyncio.Future[None]) -> None:
        """Make a waiting request urgent."""
        self._turns.promote(place)

    def withdraw(self, place: asyncio.Future[None]) -> None:
        """The requester is done: a granted place is given back, a waiting request leaves the queue."""
        if place.done() and not place.cancelled():
            self.release()
            return
        self._turns.remove(place)
        place.cancel()

    async def acquire(self, urgent: bool = False) -> None:
        """Take one of the server's places (waiting in turn for one); :meth:`release` gives it back."""
        place = self.request(urgent)
        try:
            await place
        except BaseException:
            self.withdraw(place)  # (handed a place just as we were cancelled: it is passed on)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    @asynccontextmanager
    async def place(self, urgent: bool = False) -> AsyncIterator[None]:
        """Hold one of the server's places while the body runs."""
        await self.acquire(urgent)
        try:
            yield
        finally:
            self.release()

    def succeeded(self) -> None:
        self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
        self._wake()

    def timed_out(self, began: float | None = None) -> None:
        """A collection holding a place timed out. ``began`` (monotonic): when it started; one that started
        before the last halving belongs to the congestion that halving answered, and does not halve again."""
        self.timeouts += 1
        if began is not None and began < self._decreased_at:
            return
        self._decreased_at = time.monotonic()
        self.limit = max(float(MIN_LIMIT), self.limit / 2)

    def _wake(self) -> None:
        # the place passes to the next waiter directly: nobody can jump the queue
        while self.in_flight < int(self.limit) and self._turns.grant_next():
            self.in_flight += 1


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
        deferred = counter("dbwatch_server_collections_deferred_total",
                           "Secondary collections not run because the server's main collections queued for places.",
                           ("server",))
        for name, gate in sorted(self._gates.items()):
            limit.add((name,), int(gate.limit))
            in_flight.add((name,), gate.in_flight)
            deferred.add((name,), gate.deferred)
        return [limit, in_flight, deferred]
