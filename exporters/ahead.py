"""Whole-exposition bodies made ready shortly before the scrape that will ask for them.

A fleet's whole body is every target's lines regrouped per family name (exporters/joined.py): at 1,400 targets
the regrouping and its deflate take about half a second, and nearly every name changes between two scrapes, so
a scrape that makes its own body waits that long. But Prometheus scrapes at a steady interval: from the spacing
of a scraper's last two scrapes of one kind (text or OpenMetrics, gzip or not; a scraper is a host, as Prometheus
keeps its connection and a person with curl does not) the next is expected, and its body is joined and
compressed (in a worker thread) that long before it, plus a margin. The scrape that comes is served it with
the part true at scrape time (self-metrics, alerts, process) made fresh as always.

A scrape nothing was made for (the first of a scraper, one much later than expected, scrapes closer together
than a build takes, several scrapers at once) or that comes while its body is still being made is served the
newest body of its kind made for anyone, if that was joined from the store at most :data:`YOUNG` seconds
before (three times its build's time when that is longer), and a newer one is started for the scrapes after
it: it never waits for a build that has a young enough body to stand in. Only when there is none does it wait
for its own, as before.

Nothing is lost and the work is the same: at most one build per scrape, only earlier. The body is that lead (the
last build's time plus a margin, about a second), or at most :data:`YOUNG` seconds, older than the scrape, which
the exposition allows for: every collected sample carries the time it was read, so Prometheus stores the same
values at the same times; what a collection changed meanwhile is in the next scrape, and tombstones count as
served at the build's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from dbwatch.exporters.joined import Joined

__all__ = ["Ahead", "Ready"]

logger = logging.getLogger(__name__)

MARGIN = 0.1  # seconds added to a build's expected time (its last time x SLACK) to make a body ahead of its scrape
SLACK = 1.25
LONGEST = 120.0  # seconds: scrapes spaced more than this are not anticipated
FORGET_AFTER = 3  # intervals without a scrape after which a scraper is forgotten
#: seconds a body joined from the store may be old to stand in for a scrape whose own is not ready (at least:
#: three times its build's time, as on a slow moment of the machine). A fleet's body takes about a second to
#: make on a busy 2-core machine, so that scrapes a second apart are served bodies 1-2 s old; a steady scraper's
#: body made ahead may be half its interval old (7.5 s at 15 s)
YOUNG = 5.0

Build = Callable[[bool, float], Awaitable[Joined]]  # (openmetrics, time.time()) -> the snapshot part joined


@dataclass(slots=True)
class Ready:
    joined: Joined
    at: float  # time.time() of the store it was joined from
    made: float  # time.monotonic() when it was ready


@dataclass(slots=True)
class _Cadence:
    openmetrics: bool
    gzip: bool
    last: float  # time.monotonic() of the last scrape
    interval: float | None = None  # spacing of the last two scrapes
    lead: float = 0.25  # seconds before the next scrape to start its body (then from the last build's time)
    expected: bool = False  # a scrape came and no body was made for the next one yet
    ready: Ready | None = None
    building: asyncio.Future[Ready] | None = field(default=None, repr=False)

    def due(self) -> float | None:
        """When to start building for the next scrape (monotonic), None when not anticipated: no steady spacing
        yet, a body already made or under way for it, or scrapes closer than a build takes."""
        if not self.expected or self.interval is None or self.interval < self.lead:
            return None
        return self.last + self.interval - self.lead

    def servable(self, ready: Ready, now: float) -> bool:
        """Whether a body made ahead is still young enough for a scrape at ``now`` (one much later than expected
        gets a body of its own)."""
        return now <= self.expires(ready)

    def expires(self, ready: Ready) -> float:
        return ready.made + max(self.lead, (self.interval or 0.0) / 2)


class Ahead:
    """Anticipates whole-body scrapes and makes their bodies ahead of them (see the module docstring)."""

    def __init__(self, build: Build) -> None:
        self._build = build
        self._cadences: dict[tuple[str, bool, bool], _Cadence] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.young_for = YOUNG
        #: per kind (openmetrics, gzip): the newest body made, whoever it was for, and how long its build took
        self._newest: dict[tuple[bool, bool], tuple[Ready, float]] = {}
        self._refreshing: dict[tuple[bool, bool], asyncio.Task[None]] = {}

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="exposition-ahead")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._refreshing.values()) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self._cadences.clear()
        self._newest.clear()
        self._refreshing.clear()

    def made(self, openmetrics: bool, gzip: bool, ready: Ready, seconds: float) -> None:
        """A body of that kind was made (by a scrape for itself, or ahead) in ``seconds``: the newest, if it is."""
        kind = (openmetrics, gzip)
        known = self._newest.get(kind)
        if known is None or known[0].at <= ready.at:
            self._newest[kind] = (ready, seconds)
            self._nudge()  # its expiry is one more to wake up for

    def _young(self, kind: tuple[bool, bool]) -> Ready | None:
        newest = self._newest.get(kind)
        if newest is None or time.time() > self._stale_at(*newest):
            return None
        return newest[0]

    def _stale_at(self, ready: Ready, seconds: float) -> float:
        """When a body joined at ``ready.at`` in ``seconds`` is too old to stand in for another (time.time())."""
        return ready.at + max(self.young_for, 3 * seconds)

    def _refresh(self, kind: tuple[bool, bool]) -> None:
        """A newer body of ``kind`` for the scrapes to come, unless one is under way."""
        task = self._refreshing.get(kind)
        if task is None or task.done():
            self._refreshing[kind] = asyncio.create_task(self._refresh_body(*kind), name="exposition-refresh")

    async def take(self, scraper: str, openmetrics: bool, gzip: bool) -> Ready | None:
        """A scrape by ``scraper`` (its host) has come: the body made ahead for it, or the newest young one of its
        kind (see the module docstring), waiting for its own under way only when there is none; None when it
        makes its own. Learns the scraper's spacing either way."""
        now = time.monotonic()
        key, kind = (scraper, openmetrics, gzip), (openmetrics, gzip)
        cadence = self._cadences.get(key)
        if cadence is None:
            self._cadences[key] = _Cadence(openmetrics, gzip, now)
            self._nudge()
            return self._stand_in(kind)
        spacing, cadence.last = now - cadence.last, now
        cadence.interval = spacing if spacing <= LONGEST else None
        ready, cadence.ready = cadence.ready, None
        building, cadence.building = cadence.building, None  # this scrape's: the next one gets a body of its own
        cadence.expected = True
        self._nudge()
        if building is not None:
            young = self._young(kind)
            if young is not None:  # the body under way is the newest when it is done, for the next scrapes
                return young
            try:
                return await asyncio.shield(building)
            except Exception:  # the build failed (the task said why): this scrape makes its own
                return None
            except asyncio.CancelledError:
                if building.cancelled():  # the agent is stopping: the scrape makes its own (or is cancelled too)
                    return None
                raise
        return ready if ready is not None and cadence.servable(ready, now) else self._stand_in(kind)

    def _stand_in(self, kind: tuple[bool, bool]) -> Ready | None:
        """For a scrape nothing was made for: the newest body of its kind if young enough (and a newer one
        started for the next scrapes), else None (it makes its own)."""
        young = self._young(kind)
        if young is not None:
            self._refresh(kind)
        return young

    def _nudge(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            for key, cadence in list(self._cadences.items()):
                if now - cadence.last > FORGET_AFTER * max(cadence.interval or LONGEST, 1.0):
                    del self._cadences[key]
                elif cadence.ready is not None and not cadence.servable(cadence.ready, now):
                    cadence.ready = None  # its scrape did not come: it would only hold old lines in memory
            wall = time.time()
            for kind, newest in list(self._newest.items()):
                if wall > self._stale_at(*newest):
                    del self._newest[kind]  # too old to stand in for anything: only old lines held in memory
            dues = [(due, cadence) for cadence in self._cadences.values() if (due := cadence.due()) is not None]
            if dues:
                due, cadence = min(dues, key=lambda entry: entry[0])
                if due <= now:
                    await self._make(cadence)
                    continue
            expiries = [c.expires(c.ready) for c in self._cadences.values() if c.ready is not None]
            expiries += [now + self._stale_at(*newest) - wall for newest in self._newest.values()]
            self._wake.clear()
            try:
                async with asyncio.timeout(min([d for d, _ in dues] + expiries, default=now + LONGEST) - now + 0.001):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _ready(self, openmetrics: bool, gzip: bool) -> Ready:
        """A body of that kind made now (the newest of its kind)."""
        began, at = time.monotonic(), time.time()
        joined = await self._build(openmetrics, at)
        if gzip:
            await asyncio.to_thread(joined.prepare_gzip)
        ready = Ready(joined, at, time.monotonic())
        self.made(openmetrics, gzip, ready, ready.made - began)
        return ready

    async def _refresh_body(self, openmetrics: bool, gzip: bool) -> None:
        try:
            await self._ready(openmetrics, gzip)
        except Exception:  # never the end of the agent: the next scrape makes its own
            logger.exception("making a /metrics body for the scrapes to come failed")

    async def _make(self, cadence: _Cadence) -> None:
        future: asyncio.Future[Ready] = asyncio.get_running_loop().create_future()
        cadence.building, cadence.expected = future, False
        began = time.monotonic()
        try:
            ready = await self._ready(cadence.openmetrics, cadence.gzip)
            made = ready.made
        except Exception as exc:  # never the end of the task: the scrape makes its own body
            logger.exception("making a /metrics body ahead of its scrape failed")
            future.set_exception(exc)
            future.exception()  # retrieved: a scrape may not be waiting for it
        else:
            future.set_result(ready)
            cadence.lead = (made - began) * SLACK + MARGIN
            if cadence.building is future:  # no scrape took it while it was made
                cadence.ready = ready
        finally:
            if not future.done():  # cancelled (the agent stops): a scrape waiting for it is not left waiting
                future.cancel()
            if cadence.building is future:
                cadence.building = None
