"""One target's exposition on its own: ``GET /metrics?target=NAME``, the multi-target exporter pattern.

A fleet's whole exposition is one body of every target's series (~650,000 at 1,400 targets): the text
format wants each family's samples contiguous, so a scrape regroups every target's lines per family, and
at that size the regrouping and its gzip take a second. Prometheus can instead scrape each target on its own,
as it does postgres_exporter's and redis_exporter's multi-target modes (``__param_target`` relabelling,
deploy/prometheus/): each scrape is then one target's cached lines, its own ``up``, its own failure, and the
work a collection causes is bounded by that target's size, not the fleet's.

A body is the target's families in name order (a name shared by two of its collectors joined under one
header), its tombstones (exporters/staleness.py; retired once the target's own scrapers, and the whole
exposition's active ones, have fetched them), the agent's per-target job figures left to the agent's own
scrape (``GET /metrics?collected=false``: self-metrics, jobs, alerts, the process). Cached per target until
its part changes, gzip too.

A target that is scraped on its own at a steady spacing (Prometheus') has its body made ahead of its next
scrape, :data:`LEAD` seconds before it, when a collection of it landed since its last scrape, in the kinds it was
scraped in: its scrape finds the body ready and is answered on the HTTP thread (agent/httpthread.py) through
:meth:`TargetScrapes.ready`, without waiting for the event loop. At most one body per scrape is made, as when
each scrape made its own (made when each collection landed, the bench's per-target CPU rose by a quarter). A
scrape that finds none ready (the first ones, or a collection landed within the lead) makes it on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from dataclasses import dataclass

from dbwatch.exporters.compress import gzip_member
from dbwatch.exporters.prometheus import Exposition
from dbwatch.exporters.text_format import header_bytes
from dbwatch.exporters.staleness import Scrapers
from dbwatch.model import MetricFamily

__all__ = ["TargetScrapes"]

logger = logging.getLogger(__name__)

INLINE_GZIP = 64 * 1024  # bytes of text below which a body is compressed on the event loop

#: scrapers remembered per target (Prometheus keeps one connection per scrape loop; two servers are two)
_SCRAPERS_PER_TARGET = 8
#: seconds before a target's expected scrape that its body is made (the event loop's lag is rarely longer)
LEAD = 0.3
#: seconds after the HTTP thread answered a scrape that the event loop is told of it, with the others meanwhile
TELL_AFTER = 0.25
#: scrapes spaced more than this many seconds apart are not anticipated; a kind not asked for that long is
#: no longer made ahead
LONGEST = 300.0

Kind = tuple[bool, bool]  # (openmetrics, gzip)


@dataclass(slots=True)
class _Cadence:
    """How a target scraped on its own is scraped: the kinds asked for (and when last), the last scrape's time
    and the spacing before it (time.time()), the timer that makes its next body."""

    kinds: dict[Kind, float]
    last: float
    interval: float | None = None
    timer: asyncio.TimerHandle | None = None

    def due(self, now: float) -> float | None:
        """When to make the body for the next scrape (seconds from ``now``), None when not anticipated or due
        within the lead. A scrape expected before ``now`` came and is not told yet (or did not come): the one
        after it is next."""
        interval = self.interval
        if interval is None or interval > LONGEST or interval <= 0:
            return None
        next_at = self.last + interval
        if next_at < now:
            next_at += math.ceil((now - next_at) / interval) * interval
        lead = next_at - LEAD - now
        return lead if lead > 0 else None


@dataclass(slots=True)
class _Body:
    generation: int
    text: bytes | None = None
    gzipped: bytes | None = None


class TargetScrapes:
    """The bodies of per-target scrapes, cached per target and format (see the module docstring)."""

    def __init__(self, exposition: Exposition) -> None:
        self._exposition = exposition
        self._bodies: dict[tuple[str, bool], _Body] = {}
        self._scrapers: dict[str, Scrapers] = {}
        self._cadences: dict[str, _Cadence] = {}  # per target scraped on its own
        #: scrapes the HTTP thread answered, not yet told to the event loop (appended there, taken here: a
        #: deque's append and popleft are each whole under the interpreter's lock)
        self._told: collections.deque[tuple[str, bool, bool, str | None, float]] = collections.deque()
        self._telling = False
        exposition.target_scrapers = self._scrapers.get
        exposition.on_targets.append(self.forget)
        exposition.on_touched.append(self._touched)

    def ready(self, target: str, openmetrics: bool = False, gzip: bool = False) -> bytes | None:
        """The body for ``target`` when it is made for its part as it is now, else None; reads only, so that
        the HTTP thread may call it (what it reads is replaced whole by the event loop, never changed). The
        scrape it answers is then told to the event loop with :meth:`served`."""
        body = self._bodies.get((target, openmetrics))
        if body is None or body.generation != self._exposition.target_generation.get(target, 0):
            return None
        return body.gzipped if gzip else body.text

    def served(self, target: str, openmetrics: bool, gzip: bool, scraper: str | None, now: float,
               loop: asyncio.AbstractEventLoop) -> None:
        """On the HTTP thread: a scrape of ``target`` at ``now`` was answered with :meth:`ready`'s body. Told to
        the event loop (``loop``) in batches, :data:`TELL_AFTER` seconds after the first of a batch: woken for each
        scrape, the loop spent a fifth more CPU on a fleet scraped per target."""
        self._told.append((target, openmetrics, gzip, scraper, now))
        if not self._telling:
            self._telling = True
            loop.call_soon_threadsafe(loop.call_later, TELL_AFTER, self._take_told)

    def _take_told(self) -> None:
        self._telling = False  # first: a scrape told after it schedules the next batch
        told = self._told
        if not told:
            return
        while told:
            target, openmetrics, gzip, scraper, at = told.popleft()
            self._seen(target, (openmetrics, gzip), scraper, at)
            if self.ready(target, openmetrics, gzip) is None:  # a collection landed before its scrape was told
                self._touched(target)
        self._exposition.retire_graves(time.time())

    async def scrape(self, target: str, openmetrics: bool = False, gzip: bool = False,
                     scraper: str | None = None) -> bytes:
        """The body for ``target`` (a configured one: the caller checks), gzipped when asked."""
        now = time.time()
        exposition = self._exposition
        exposition.retire_graves(now)
        self._seen(target, (openmetrics, gzip), scraper, now)
        return await self._made(target, openmetrics, gzip)

    async def _made(self, target: str, openmetrics: bool, gzip: bool) -> bytes:
        made = self._made_here(target, openmetrics, gzip)
        return made if isinstance(made, bytes) else await _packed(*made)

    def _made_here(self, target: str, openmetrics: bool, gzip: bool) -> bytes | tuple[_Body, bytes]:
        """The body for ``target``'s part as it is now, made on the event loop if need be; for a large body whose
        gzip is not made yet, that body and the text to compress (elsewhere) instead."""
        generation = self._exposition.target_generation.get(target, 0)
        key = (target, openmetrics)
        body = self._bodies.get(key)
        if body is None or body.generation != generation:
            body = self._bodies[key] = _Body(generation)
        if not gzip:
            if body.text is None:
                body.text = self._render(target, openmetrics)
            return body.text
        if body.gzipped is None:
            # Only the compressed body is kept (Prometheus asks for gzip): kept as text too, a fleet scraped per
            # target would hold a second copy of its whole exposition. A small body (a Redis target's 30 KB:
            # 0.03 ms) is compressed here, cheaper than the hand-off to a thread.
            text = body.text if body.text is not None else self._render(target, openmetrics)
            if len(text) >= INLINE_GZIP:
                return body, text
            body.gzipped = gzip_member(text)
        return body.gzipped

    def _seen(self, target: str, kind: Kind, scraper: str | None, now: float) -> None:
        cadence = self._cadences.get(target)
        if cadence is None:
            cadence = self._cadences[target] = _Cadence({}, now)
        elif now - cadence.last > 0.1:  # a second kind asked at once is the same scrape's
            cadence.interval, cadence.last = now - cadence.last, now
        cadence.kinds[kind] = now
        if scraper is not None:
            scrapers = self._scrapers.get(target)
            if scrapers is None:
                scrapers = self._scrapers[target] = Scrapers(_SCRAPERS_PER_TARGET)
            scrapers.served(scraper, now)

    def _touched(self, target: str) -> None:
        """``target``'s part changed: its body is made before its next scrape, if it is scraped on its own."""
        cadence = self._cadences.get(target)
        if cadence is None or cadence.timer is not None:
            return
        delay = cadence.due(time.time())
        if delay is None:  # the scrape is due within the lead (or late): it makes its own
            return
        try:
            cadence.timer = asyncio.get_running_loop().call_later(delay, self._make_ahead, target)
        except RuntimeError:  # no loop (a collection landing in a test): made when scraped
            pass

    def _make_ahead(self, target: str) -> None:
        cadence = self._cadences.get(target)
        if cadence is None:
            return
        cadence.timer = None
        now = time.time()
        for kind in [k for k, last in cadence.kinds.items() if now - last > LONGEST]:
            del cadence.kinds[kind]  # not asked for so long: made when (if ever) asked again
        if not cadence.kinds:
            del self._cadences[target]
            return
        for openmetrics, gzip in list(cadence.kinds):  # most at once; a large body's gzip in a worker thread
            try:
                made = self._made_here(target, openmetrics, gzip)
                if not isinstance(made, bytes):
                    asyncio.ensure_future(_packed(*made)).add_done_callback(_log_failure)
            except Exception:  # a bug: said, and the scrape makes the body itself
                logger.exception("making the /metrics body of %s ahead of its scrape failed", target)

    def forget(self, targets: set[str]) -> None:
        """Drop what is kept for targets no longer configured."""
        for key in [k for k in self._bodies if k[0] not in targets]:
            del self._bodies[key]
        for target in [t for t in self._scrapers if t not in targets]:
            del self._scrapers[target]
        for target in [t for t in self._cadences if t not in targets]:
            timer = self._cadences.pop(target).timer
            if timer is not None:
                timer.cancel()

    def _render(self, target: str, openmetrics: bool) -> bytes:
        lines, graves = self._exposition.target_part(target, openmetrics)
        by_name: dict[str, tuple[MetricFamily, list[bytes]]] = {}
        for family, body in lines:
            by_name.setdefault(family.name, (family, []))[1].append(body)
        for family, text in graves:
            by_name.setdefault(family.name, (family, []))[1].append(text.encode())
        parts: list[bytes] = []
        for name in sorted(by_name):
            family, bodies = by_name[name]
            parts.append(header_bytes(family, openmetrics))
            parts.extend(bodies)
        if openmetrics:
            parts.append(b"# EOF\n")
        return b"".join(parts)


async def _packed(body: _Body, text: bytes) -> bytes:
    """A large body's gzip, made in a worker thread (the compressor lets go of the GIL, and runs beside the event
    loop instead of delaying it), kept unless another was kept meanwhile."""
    packed = await asyncio.to_thread(gzip_member, text)
    if body.gzipped is None:
        body.gzipped = packed
    return body.gzipped


def _log_failure(task: asyncio.Future[bytes]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("making per-target /metrics bodies failed: %s", error, exc_info=error)
