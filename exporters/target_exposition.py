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
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from dbwatch.exporters.compress import gzip_member
from dbwatch.exporters.prometheus import Exposition
from dbwatch.exporters.text_format import header_bytes
from dbwatch.exporters.staleness import Scrapers
from dbwatch.model import MetricFamily

__all__ = ["TargetScrapes"]

INLINE_GZIP = 64 * 1024  # bytes of text below which a body is compressed on the event loop

#: scrapers remembered per target (Prometheus keeps one connection per scrape loop; two servers are two)
_SCRAPERS_PER_TARGET = 8


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
        exposition.target_scrapers = self._scrapers.get
        exposition.on_targets.append(self.forget)

    async def scrape(self, target: str, openmetrics: bool = False, gzip: bool = False,
                     scraper: str | None = None) -> bytes:
        """The body for ``target`` (a configured one: the caller checks), gzipped when asked."""
        now = time.time()
        exposition = self._exposition
        exposition.retire_graves(now)
        generation = exposition.target_generation.get(target, 0)
        key = (target, openmetrics)
        body = self._bodies.get(key)
        if body is None or body.generation != generation:
            body = self._bodies[key] = _Body(generation)
        if scraper is not None:
            scrapers = self._scrapers.get(target)
            if scrapers is None:
                scrapers = self._scrapers[target] = Scrapers(_SCRAPERS_PER_TARGET)
            scrapers.served(scraper, now)
        if not gzip:
            if body.text is None:
                body.text = self._render(target, openmetrics)
            return body.text
        if body.gzipped is None:
            # Only the compressed body is kept (Prometheus asks for gzip): kept as text too, a fleet scraped per
            # target would hold a second copy of its whole exposition. A large body is compressed in a worker
            # thread (the compressor lets go of the GIL: it runs beside the event loop instead of delaying
            # collections' round trips); a small one (a Redis target's 30 KB: 0.06 ms) here, cheaper than the hand-off.
            text = body.text if body.text is not None else self._render(target, openmetrics)
            packed = gzip_member(text) if len(text) < INLINE_GZIP else await asyncio.to_thread(gzip_member, text)
            if body.gzipped is None:
                body.gzipped = packed
        return body.gzipped

    def forget(self, targets: set[str]) -> None:
        """Drop what is kept for targets no longer configured."""
        for key in [k for k in self._bodies if k[0] not in targets]:
            del self._bodies[key]
        for target in [t for t in self._scrapers if t not in targets]:
            del self._scrapers[target]

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
