"""Series that left the exposition, kept a little longer without a timestamp so that Prometheus ends them.

The exposition stamps every collected sample with the time of its collection (docs/metrics-freshness.md).
Prometheus writes a staleness marker only for a series it last scraped *without* a timestamp and then no
longer finds (before 2.48, or without ``track_timestamps_staleness``): a timestamped series that vanishes
would linger in queries for the whole lookback (5 min). So a series that vanishes (its target removed, its
label set gone, its collection failed) becomes a tombstone: its last line, untimestamped, served until every
scraper that is actively scraping the agent has fetched it once. That fetch makes Prometheus track the
series; its next scrape, without it, writes the staleness marker.

A scraper is one HTTP connection (address and port): Prometheus keeps one keep-alive connection per scrape
loop (per job and target), so two jobs or two servers are two scrapers. One is active while it keeps to its
own rhythm (the last scrape no older than three of its intervals); a connection used once (curl, or a scrape
interval longer than the listener's idle timeout, which closes the connection between scrapes) never is, and
its series fall back to the lookback. A tombstone outlives no more than the lookback: by then the series has
expired from queries anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

from dbwatch.model import LabelValues, MetricFamily

__all__ = ["LOOKBACK", "Graveyard", "Lines", "Scrapers"]

#: Prometheus's default query lookback (--query.lookback-delta): the longest a tombstone is useful
LOOKBACK = 300.0
#: a scraper counts as active while its last scrape is no older than this many of its own intervals
ACTIVE_INTERVALS = 3.0
#: scrapers remembered at most (a curl loop must not grow memory)
MAX_SCRAPERS = 64

#: a family's vanished samples: label values -> the exposition line without its timestamp
Lines = dict[LabelValues, str]


class Scrapers:
    """Who scrapes /metrics, how often, and when each was last served."""

    def __init__(self, limit: int = MAX_SCRAPERS) -> None:
        self._seen: dict[str, _Scraper] = {}
        self._limit = limit

    def served(self, who: str, now: float) -> None:
        scraper = self._seen.get(who)
        if scraper is None:
            if len(self._seen) >= self._limit:  # the oldest one-off client goes first, a scrape loop last
                del self._seen[min(self._seen, key=lambda k: (self._seen[k].interval is not None,
                                                              self._seen[k].last))]
            self._seen[who] = _Scraper(now)
            return
        scraper.interval, scraper.last = now - scraper.last, now

    def all_served_since(self, moment: float, now: float) -> bool:
        """Whether every active scraper has been served after ``moment`` (vacuously true with none)."""
        for who in [w for w, s in self._seen.items() if now - s.last > LOOKBACK]:
            del self._seen[who]
        return all(s.last > moment for s in self._seen.values() if s.active(now))


class Graveyard:
    """The tombstones of every (target, collector), retired once every active scraper has seen them."""

    def __init__(self) -> None:
        self._graves: list[_Tombstone] = []

    def bury(self, key: tuple[str, str], prefix: object, families: Mapping[str, tuple[MetricFamily, Lines]],
             now: float) -> None:
        families = {name: entry for name, entry in families.items() if entry[1]}
        if families:
            self._graves.append(_Tombstone(key, prefix, now, dict(families)))

    def revive(self, key: tuple[str, str], prefix: object, families: Mapping[str, MetricFamily]) -> bool:
        """Drop the tombstones of series that are back (served twice, they would clash). True if any was."""
        changed = False
        for grave in self._graves:
            if grave.key != key or grave.prefix != prefix:
                continue
            for name, (family, lines) in list(grave.families.items()):
                back = families.get(name)
                if back is None or back.labelnames != family.labelnames:
                    continue
                for labelvalues, _ in back.samples:
                    if lines.pop(labelvalues, None) is not None:
                        changed = True
                if not lines:
                    del grave.families[name]
        if changed:
            self._graves = [grave for grave in self._graves if grave.families]
        return changed

    def retire(self, scrapers: Scrapers, now: float,
               of_target: Callable[[str], Scrapers | None] | None = None) -> set[str]:
        """Forget the tombstones every active scraper has fetched (or that outlived the lookback): the scrapers
        of the whole exposition and, with ``of_target``, those of the tombstone's own target (its per-target
        scrapes, exporters/target_exposition.py). The targets whose tombstones went."""
        def seen(grave: _Tombstone) -> bool:
            if not scrapers.all_served_since(grave.created, now):
                return False
            own = of_target(grave.key[0]) if of_target is not None else None
            return own is None or own.all_served_since(grave.created, now)
        kept: list[_Tombstone] = []
        gone: set[str] = set()
        for grave in self._graves:
            if now - grave.created <= LOOKBACK and not seen(grave):
                kept.append(grave)
            else:
                gone.add(grave.key[0])
        self._graves = kept
        return gone

    def entries_of(self, target: str) -> Iterator[tuple[MetricFamily, str]]:
        """:meth:`entries` of one target's tombstones."""
        for grave in self._graves:
            if grave.key[0] == target:
                for family, lines in grave.families.values():
                    yield family, "".join(line + "\n" for line in lines.values())

    def entries(self) -> Iterator[tuple[MetricFamily, str]]:
        """(family, body of its untimestamped lines) of every tombstone."""
        for grave in self._graves:
            for family, lines in grave.families.values():
                yield family, "".join(line + "\n" for line in lines.values())

    def __len__(self) -> int:
        return sum(len(lines) for grave in self._graves for _, lines in grave.families.values())


@dataclass(slots=True)
class _Scraper:
    last: float
    interval: float | None = None

    def active(self, now: float) -> bool:
        return self.interval is not None and now - self.last <= ACTIVE_INTERVALS * self.interval + 1.0


@dataclass(slots=True)
class _Tombstone:
    key: tuple[str, str]
    prefix: object  # the target labels the lines were rendered with: a series is back only under the same
    created: float
    families: dict[str, tuple[MetricFamily, Lines]] = field(default_factory=dict)
