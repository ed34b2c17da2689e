"""Whole-exposition bodies made ready shortly before the scrape that will ask for them.

A fleet's whole body is every target's lines regrouped per family name (exporters/joined.py): at 1,400 targets
the regrouping and its deflate take about half a second, and nearly every name changes between two scrapes, so
a scrape that makes its own body waits that long. But Prometheus scrapes at a steady interval: from the spacing
of a scraper's last two scrapes of one kind (text or OpenMetrics, gzip or not; a scraper is a host, as Prometheus
keeps its connection and a person with curl does not) the next is expected, and its body is joined and
compressed (in a worker thread) ahead of it (twice as long as a build took, plus a margin), with what is true at
its making (the jobs' ages and the providers' families: alerts, recommendations, self-metrics; without a
timestamp): a fleet's 600 KB, which the scrape would otherwise format and compress on the listener's thread
while it waits.
The scrape that comes is served it with the process' metrics, read at most a second before.

A scrape nothing was made for (the first of a scraper, one much later than expected, scrapes closer together
than a build takes, several scrapers at once) or that comes while its body is still being made is served the
newest body of its kind made for anyone, if that was joined from the store at most :data:`YOUNG` seconds
before and at most twenty times as long as it took to make (a small agent's body is made for each scrape), and a
newer one is started for the scrapes after it: it never waits for a build that has a young enough body to stand
in. Only when there is none does it wait for one. There is at most one build of a kind under way: a scrape,
a refresh and a body made ahead that would start a second one join it instead (each build holds what it joins,
and the CPU is the agent's). A gzip body kept keeps only its compressed pieces, not the lines they were made of.

Nothing is lost and the work is the same: at most one build per scrape, only earlier. The body is that lead
(twice the longest of its kind's last eight builds' times plus a margin: 1-3 s at 1,400 targets), or at most
:data:`YOUNG` seconds, older than the scrape, which the exposition allows for: every collected sample carries the
time it was read, so Prometheus stores the same values at the same times; what a collection changed meanwhile is
in the next scrape, and tombstones count as served at the build's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from dbwatch.exporters.joined import Joined, Packed

__all__ = ["Ahead", "Ready"]

logger = logging.getLogger(__name__)

MARGIN = 0.25  # seconds added to a build's expected time (its longest recent x SLACK) to start a body ahead
#: a fleet's build time varies with what else the machine does: at 1,400 targets on a busy 2-core machine, builds
#: of 0.2-0.5 s and one in ten of 0.6-1.3 s (a body started 1.25 x the longest of the last four before its scrape,
#: as this once was, made 2 of 38 scrapes wait 80-130 ms for theirs); a body started too late makes its scrape
#: wait, one started too early only has its live part (ages, alerts) that much older
SLACK = 2.0
FIRST_LEAD = 0.25  # seconds: the lead when no build of a kind was timed yet
TIMED = 8  # builds of a kind whose longest sets the lead (two minutes of a 15 s scraper's)
LONGEST = 120.0  # seconds: scrapes spaced more than this are not anticipated
FORGET_AFTER = 3  # intervals without a scrape after which a scraper is forgotten
#: seconds a body joined from the store may be old to stand in for a scrape whose own is not ready, at most: a
#: fleet's body takes about a second to make on a busy 2-core machine, so that scrapes a second apart are served
#: bodies 1-2 s old; a steady scraper's body made ahead may be half its interval old (7.5 s at 15 s)
YOUNG = 5.0
#: ... and at most this many times as long as it took to make: a small agent's body, made in milliseconds, is made
#: anew for each scrape rather than served seconds old (a person or a test polling /metrics sees what landed);
#: a fleet's, made in 0.25 s, stands in for 5 s (a scraper every 3 s whose own body is late is served the last)
STAND_IN = 20.0

Build = Callable[[bool, float], Awaitable[Joined]]  # (openmetrics, time.time()) -> the snapshot part joined
Live = Callable[[bool, float], bytes]  # (openmetrics, time.time()) -> what is true at that time, made with it
Kind = tuple[bool, bool]  # (openmetrics, gzip)
Key = tuple[str, bool, bool]  # (scraper's host, openmetrics, gzip)


@dataclass(slots=True)
class Ready:
    joined: Joined | Packed  # a gzip body: its compressed pieces only, ``live`` among them
    at: float  # time.time() of the store it was joined from
    made: float  # time.monotonic() when it was ready
    seconds: float = 0.0  # how long it took to make
    live: bytes = b""  # a plain body's part true at ``at`` and made with it (the jobs' ages, the providers')


@dataclass(slots=True)
class _Cadence:
    kind: Kind
    last: float  # time.monotonic() of the last scrape
    interval: float | None = None  # spacing of the last two scrapes
    jitter: float = 0.0  # how much the last spacing differed from the one before
    expected: bool = False  # a scrape came and no body was made for the next one yet
    ready: Ready | None = None
    ready_until: float = 0.0  # time.monotonic() after which ``ready`` is too late for its scrape

    def due(self, lead: float) -> float | None:
        """When to start building for the next scrape (monotonic), ``lead`` seconds before it (and the spacing's
        jitter), None when not anticipated: no steady spacing yet (none, or one that moved by more than half of
        itself since the last), a body already made for it, or scrapes closer than a build takes."""
        if not self.expected or self.interval is None or self.jitter > self.interval / 2:
            return None  # not steady: a body made as early as its jitter would be older than its spacing
        lead += self.jitter
        if self.interval < lead:
            return None
        return self.last + self.interval - lead

    def servable(self, now: float) -> bool:
        """Whether the body made ahead is still young enough for a scrape at ``now``: one much later than
        expected (by half an interval, or the lead) gets another."""
        return now <= self.ready_until


class Ahead:
    """Anticipates whole-body scrapes and makes their bodies ahead of them (see the module docstring)."""

    def __init__(self, build: Build, live: Live) -> None:
        self._build = build
        self._live = live
        self._cadences: dict[tuple[str, bool, bool], _Cadence] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.young_for = YOUNG
        self._newest: dict[Kind, Ready] = {}  # per kind: the newest body made, whoever it was for
        self._building: dict[Kind, asyncio.Task[Ready]] = {}  # per kind: the one build under way
        self._took: dict[Kind, list[float]] = {}  # per kind: how long its last builds took, seconds
        #: told of a body made for a scraper's next scrape (its key, the body, until when it serves, monotonic)
        #: and of one that no longer stands ready (its key, None, 0)
        self.on_ready: Callable[[Key, Ready | None, float], None] | None = None
        #: told of the newest body of a kind (the body, until when it may stand in, time.time()), and None when
        #: there is none young enough any longer
        self.on_newest: Callable[[Kind, Ready | None, float], None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="exposition-ahead")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._building.values()) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self.on_ready is not None:
            for key in self._cadences:
                self.on_ready(key, None, 0.0)
        if self.on_newest is not None:
            for kind in self._newest:
                self.on_newest(kind, None, 0.0)
        self._cadences.clear()
        self._newest.clear()
        self._building.clear()

    def made(self, kind: Kind, ready: Ready) -> None:
        """A body of ``kind`` was made: the newest, if it is."""
        known = self._newest.get(kind)
        if known is None or known.at <= ready.at:
            self._newest[kind] = ready
            if self.on_newest is not None:
                self.on_newest(kind, ready, self._stale_at(ready))
            self._nudge()  # its expiry is one more to wake up for

    def stood_in(self, kind: Kind) -> None:
        """The newest body of ``kind`` stood in for a scrape (on the HTTP thread): a newer one is made for the
        scrapes after it, unless one is under way, as :meth:`take` does."""
        self.building(kind)

    async def take(self, scraper: str, openmetrics: bool, gzip: bool) -> Ready | None:
        """A scrape by ``scraper`` (its host) has come: the body made ahead for it, or the newest young one of its
        kind, or the one under way (started if none), as the module docstring says; None when the build failed
        or the agent stops (the scrape makes its own). Learns the scraper's spacing either way."""
        kind = (openmetrics, gzip)
        ready = self.took(scraper, openmetrics, gzip, time.monotonic())
        if ready is not None:
            return ready
        young = self._young(kind)
        if young is not None:
            self.building(kind)  # a newer one for the scrapes after this one, unless under way
            return young
        build = self.building(kind)
        try:
            return await asyncio.shield(build)
        except Exception:  # the build failed (it logged why): this scrape makes its own
            return None
        except asyncio.CancelledError:
            if build.cancelled():  # the agent is stopping: the scrape makes its own (or is cancelled too)
                return None
            raise

    def took(self, scraper: str, openmetrics: bool, gzip: bool, now: float) -> Ready | None:
        """A scrape by ``scraper`` came at ``now`` (monotonic): its spacing learnt, and the body made ahead for it
        handed over (None when none was, or it came too late for it). The HTTP thread, having served the body
        :attr:`on_ready` was told of, tells it here (the body returned is then the one it served)."""
        key, kind = (scraper, openmetrics, gzip), (openmetrics, gzip)
        cadence, ready = self._cadences.get(key), None
        if cadence is None:
            self._cadences[key] = _Cadence(kind, now)
        else:
            spacing, cadence.last = now - cadence.last, now
            before, cadence.interval = cadence.interval, spacing if spacing <= LONGEST else None
            # how much the spacing moves (a scraper that waits a fixed time after each scrape, not Prometheus)
            cadence.jitter = abs(spacing - before) if before is not None and cadence.interval is not None else 0.0
            ready, cadence.ready = cadence.ready, None
            cadence.expected = True
            if ready is not None and not cadence.servable(now):
                ready = None  # much later than expected: another body
        if self.on_ready is not None:
            self.on_ready(key, None, 0.0)
        self._nudge()
        return ready

    def building(self, kind: Kind) -> asyncio.Task[Ready]:
        """The build of ``kind`` under way, started if none is: its own task, so that a scrape that gives up
        waiting does not end it for the others."""
        task = self._building.get(kind)
        if task is None:
            task = self._building[kind] = asyncio.create_task(self._ready(kind), name="exposition-body")
            task.add_done_callback(self._built)
        return task

    def _built(self, task: asyncio.Task[Ready]) -> None:
        for kind, known in list(self._building.items()):
            if known is task:
                del self._building[kind]
        if not task.cancelled():
            task.exception()  # retrieved: it was logged, and no scrape may be waiting for it

    async def _ready(self, kind: Kind) -> Ready:
        openmetrics, gzip = kind
        began, at = time.monotonic(), time.time()
        try:
            joined = await self._build(openmetrics, at)
            live = self._live(openmetrics, at)
            body: Joined | Packed = await asyncio.to_thread(joined.packed, live) if gzip else joined
        except Exception:
            logger.exception("making a /metrics body failed")
            raise
        made = time.monotonic()
        ready = Ready(body, at, made, made - began, b"" if gzip else live)
        self._took[kind] = [*self._took.get(kind, ())[1 - TIMED:], ready.seconds]
        self.made(kind, ready)
        return ready

    def _young(self, kind: Kind) -> Ready | None:
        newest = self._newest.get(kind)
        if newest is None or time.time() > self._stale_at(newest):
            return None
        return newest

    def _lead(self, kind: Kind) -> float:
        """Seconds before a scrape to start making its body: from the longest of the last :data:`TIMED` builds
        of its kind (a scraper's first scrapes made theirs), else :data:`FIRST_LEAD`."""
        took = self._took.get(kind)
        return FIRST_LEAD if not took else max(took) * SLACK + MARGIN

    def _stale_at(self, ready: Ready) -> float:
        """When a body is too old to stand in for another (time.time())."""
        return ready.at + min(self.young_for, STAND_IN * ready.seconds)

    def _nudge(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            now, wall = time.monotonic(), time.time()
            for key, cadence in list(self._cadences.items()):
                if now - cadence.last > FORGET_AFTER * max(cadence.interval or LONGEST, 1.0):
                    del self._cadences[key]
                elif cadence.ready is not None and not cadence.servable(now):
                    cadence.ready = None  # its scrape did not come: it would only hold old lines in memory
                else:
                    continue
                if self.on_ready is not None:
                    self.on_ready(key, None, 0.0)
            for kind, newest in list(self._newest.items()):
                if wall > self._stale_at(newest):
                    del self._newest[kind]  # too old to stand in for anything: only old lines held in memory
                    if self.on_newest is not None:
                        self.on_newest(kind, None, 0.0)
            dues = [(due, key, cadence) for key, cadence in self._cadences.items()
                    if (due := cadence.due(self._lead(cadence.kind))) is not None]
            if dues:
                due, key, cadence = min(dues, key=lambda entry: entry[0])
                if due <= now:
                    await self._make(key, cadence)
                    continue
            expiries = [c.ready_until for c in self._cadences.values() if c.ready is not None]
            expiries += [now + self._stale_at(newest) - wall for newest in self._newest.values()]
            self._wake.clear()
            try:
                async with asyncio.timeout(min([d for d, _, _ in dues] + expiries, default=now + LONGEST) - now + 0.001):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _make(self, key: Key, cadence: _Cadence) -> None:
        """The body for ``cadence``'s (``key``'s) next scrape (the build of its kind under way, if one is)."""
        cadence.expected = False
        expected_at = cadence.last + (cadence.interval or 0.0)
        try:
            ready = await asyncio.shield(self.building(cadence.kind))
        except Exception:  # never the end of the task: the scrape makes its own body
            return
        if not cadence.expected:  # no scrape took another body while it was made
            cadence.ready = ready
            late = max(self._lead(cadence.kind), (cadence.interval or 0.0) / 2)
            cadence.ready_until = max(expected_at, ready.made) + late
            if self.on_ready is not None and self._cadences.get(key) is cadence:  # not forgotten meanwhile
                self.on_ready(key, ready, cadence.ready_until)
