"""The Prometheus exposition of the latest snapshots, rendered once per collection and served from memory.

Each new snapshot re-renders only its own (target, collector) fragment: per family, the sample lines with
``target`` and the target's configured labels in front. A scrape joins the fragments so that every family
has one ``# HELP``/``# TYPE`` header followed by all its samples (Prometheus wants them contiguous), and the
joined body (and its gzip form) is cached until the store changes; a scraper at a steady interval gets a body
made shortly before it came (exporters/ahead.py), as a fleet's changes with every collection. The text is
written by hand: prometheus-client costs about 6 µs per series, too slow to render 100k series in a scrape;
its ProcessCollector still provides the process_* metrics, which are few (exporters/process_metrics.py).

Every collected sample carries the time of the collection that read it (the middle of it), so Prometheus
keeps one sample per collection whatever its scrape interval: a repeated scrape of the same collection is
an identical sample at an identical time, which it drops, and ``irate()`` never sees a false zero. Series
that vanish are handed to :mod:`.staleness` so that Prometheus still ends them promptly. What the agent computes
(self-metrics, the collections' ages, alerts, process_*) goes out without a timestamp, true when the body was
made: at the scrape, or with a body made ahead of it (all but process_*: exporters/ahead.py).
docs/metrics-freshness.md tells the whole story.
"""

from __future__ import annotations

import asyncio
import platform
import time
from typing import Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_latest_openmetrics

from dbwatch.exporters.ahead import Ahead, Ready
from dbwatch.exporters.job_lines import JobColumn, JobFigures, JobLines
from dbwatch.exporters.compress import gzip_member
from dbwatch.exporters.fragments import Fragment, Parts, joined_of, vanished_series
from dbwatch.exporters.joined import DeflateCache, Joined
from dbwatch.exporters.prepared import PreparedBodies, body_parts
from dbwatch.exporters.process_metrics import ProcessSnapshot
from dbwatch.exporters.staleness import Graveyard, Lines, Scrapers
from dbwatch.exporters.text_format import PairsCache, render_families, render_samples
from dbwatch.model import MetricFamily, MetricType, Snapshot

__all__ = ["Exposition", "TEXT_CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "wants_openmetrics", "render_families"]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Provider = Callable[[], Iterable[MetricFamily]]


class SnapshotSource(Protocol):
    """What the exposition reads of the agent's store (structural: exporters never import the daemon)."""

    generation: int

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None: ...
    def latest(self, target: str, collector: str) -> Snapshot | None: ...
    def latest_all(self) -> Iterator[Snapshot]: ...
    def stats(self) -> Sequence[JobFigures]: ...
    def job_stats(self, target: str, collector: str) -> JobFigures | None: ...


def wants_openmetrics(accept: str | None) -> bool:
    return bool(accept) and "application/openmetrics-text" in accept  # type: ignore[operator]


class Exposition:
    def __init__(self, store: SnapshotSource, version: str) -> None:
        self.store = store
        self.version = version
        self._labels: dict[str, dict[str, str]] = {}  # target -> labels put on each of its samples
        self._fragments: dict[tuple[str, str], Fragment] = {}
        # Per family name, an edition bumped whenever a collection's lines of that name change: it says when the
        # name's cached deflate is still good (exporters/joined.py). A scrape groups the fragments' lines per
        # name as it joins them (a fleet's ~100k (fragment, family) pairs in ~2k names): an index kept for it
        # cost more memory than the grouping costs time, once per change of the store.
        self._edition: dict[str, int] = {}
        self._edits = 0
        self._deflates = DeflateCache()
        self._graves = Graveyard()
        self._scrapers = Scrapers()
        #: per target: its (target, collector) keys, and a number bumped whenever its part of the exposition
        #: (fragments, tombstones) changes, for per-target scrapes (exporters/target_exposition.py)
        self._keys_of: dict[str, set[tuple[str, str]]] = {}
        self.target_generation: dict[str, int] = {}
        #: the per-target scrapers of a target, when it is scraped on its own (see Graveyard.retire)
        self.target_scrapers: Callable[[str], Scrapers | None] = lambda target: None
        self.on_targets: list[Callable[[set[str]], None]] = []  # told the configured targets' names
        self.on_touched: list[Callable[[str], None]] = []  # told a target whose part changed
        self._providers: list[Provider] = [self._self_metrics]
        #: per (id of a family a provider gave, OpenMetrics): the family, held so that its id is its own, and its text
        self._rendered: dict[tuple[int, bool], tuple[MetricFamily, bytes]] = {}
        self._jobs = JobLines(store)  # the per-job figures (exporters/job_lines.py)
        self._cache: dict[bool, Joined] = {}
        #: whole bodies made ahead of the scrapes expected (started and stopped with the HTTP server)
        self.ahead = Ahead(self._joined_async, self._live)
        #: ... and handed whole to the HTTP thread (exporters/prepared.py)
        self.prepared = PreparedBodies()
        self.ahead.on_ready = self.prepared.ready
        self.ahead.on_newest = self.prepared.newest
        self._generation = 0
        self._process = CollectorRegistry(auto_describe=False)
        #: process_* read on the agent's loop once a second (started and stopped with the HTTP server)
        self.process = ProcessSnapshot(self._process)
        _fixed_mmap_threshold()
        store.subscribe(self._on_snapshot)

    @property
    def registry(self) -> CollectorRegistry:
        """prometheus-client's registry of what is true at scrape time and read then (process_*, the event loop's
        lag: agent/loophealth.py); served with the agent's own metrics."""
        return self._process

    def target_names(self) -> list[str]:
        """The configured targets' names, sorted."""
        return sorted(self._labels)

    def has_target(self, name: str) -> bool:
        """Whether ``name`` is a configured target."""
        return name in self._labels

    def set_target_labels(self, labels: Mapping[str, Mapping[str, str]]) -> None:
        """The targets' configured labels; targets no longer present lose their fragments."""
        self._labels = {name: {"target": name, **own} for name, own in labels.items()}
        for forget in self.on_targets:
            forget(set(labels))
        now = time.time()
        for key in [k for k in self._fragments if k[0] not in labels]:
            gone = self._fragments.pop(key)
            self._forget(key)
            self._changed(gone.names())
            self._graves.bury(key, gone.prefix, vanished_series(gone, None, None), now)
        for snapshot in self.store.latest_all():
            if snapshot.target in labels:
                self._on_snapshot(snapshot)
        self._generation += 1

    def add_job_columns(self, columns: Iterable[JobColumn]) -> None:
        """More families made of the per-job figures, written when a collection lands (exporters/job_lines.py)."""
        self._jobs.add(columns)

    def add_provider(self, provider: Provider) -> None:
        """A source of a few families computed at scrape time (alerts, notification queues)."""
        self._providers.append(provider)

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole body of a scrape, uncompressed, served to no one in particular."""
        return self.scrape(openmetrics)

    def scrape(self, openmetrics: bool = False, gzip: bool = False, scraper: str | None = None) -> bytes:
        """The body of one scrape by ``scraper`` (who it is: tombstones last until every scraper saw them).

        The snapshot part is joined, and compressed, once per change of the store; providers are cheap
        and always fresh. With ``gzip`` the body is one gzip member: the cached deflate of the snapshot
        part (ended by a full flush), the deflate of the fresh part, one CRC over both.
        """
        now = time.time()
        return b"".join(self._respond(self._joined(openmetrics, now), openmetrics, gzip, scraper, now)[1])

    async def scrape_async(self, openmetrics: bool = False, gzip: bool = False, scraper: str | None = None
                           ) -> bytes:
        """:meth:`scrape`, compressing the snapshot part in a worker thread (see :meth:`scrape_chunks`)."""
        return b"".join((await self.scrape_chunks(openmetrics, gzip, scraper))[1])

    async def scrape_chunks(self, openmetrics: bool = False, gzip: bool = False, scraper: str | None = None
                            ) -> tuple[int, Iterable[bytes]]:
        """:meth:`scrape`'s body as its length and the pieces to send one after the other: the collections'
        lines are served as they are, never copied into a body of their own (exporters/joined.py). The
        deflate runs in a worker thread (the compressor lets go of the GIL), so that the event loop keeps collecting
        while a large body is compressed. A collection that ends meanwhile is in the next scrape."""
        ready = await self.ahead.take((scraper or "").rpartition(":")[0], openmetrics, gzip)
        if ready is not None:  # made ahead of this scrape (exporters/ahead.py)
            if scraper is not None:  # served what the store held when joined: tombstones buried later are not in it
                self._scrapers.served(scraper, ready.at)
            return self._made_parts(ready, openmetrics, gzip)
        now = time.time()  # the build failed (it was logged) or the agent stops: one of its own, without Ahead
        joined = await self._joined_async(openmetrics, now)
        if gzip:
            await asyncio.to_thread(joined.prepare_gzip)
        return self._respond(joined, openmetrics, gzip, scraper, now)

    def tombstones(self) -> int:
        """Vanished series still served without a timestamp (for tests and self-metrics)."""
        return len(self._graves)

    # -- one scrape ---------------------------------------------------------------------------------

    def _joined(self, openmetrics: bool, now: float) -> Joined:
        joined = self._cached(openmetrics, now)
        if joined is None:
            joined = self._cache[openmetrics] = joined_of(*self._parts(openmetrics))
        return joined

    async def _joined_async(self, openmetrics: bool, now: float) -> Joined:
        """:meth:`_joined`, grouping a fleet's ~100k (collection, family) parts in a worker thread: it still
        takes the interpreter's lock, but hands it back to the event loop every few milliseconds instead of
        holding it for the ~0.1 s the grouping takes at 1,400 targets."""
        joined = self._cached(openmetrics, now)
        if joined is None:
            joined = await asyncio.to_thread(joined_of, *self._parts(openmetrics))
            if joined.key == self._key():  # nothing landed meanwhile
                self._cache[openmetrics] = joined
        return joined

    def _key(self) -> int:
        """What a joined body is valid for: the store's generation and the exposition's own."""
        return self.store.generation + self._generation

    def _cached(self, openmetrics: bool, now: float) -> Joined | None:
        """The joined body for the store as it is, when cached (else the stale one is let go of first: two
        whole bodies at once would be the peak)."""
        if self.retire_graves(now):
            self._generation += 1
        joined = self._cache.get(openmetrics)
        if joined is not None and joined.key == self._key():
            return joined
        self._cache.pop(openmetrics, None)
        return None

    def _parts(self, openmetrics: bool) -> Parts:
        """What joining the body takes, read now on the event loop (a collection landing later does not change
        it): :func:`joined_of`'s arguments."""
        columns = [fragment.columns(openmetrics) for fragment in self._fragments.values()]
        graves = [(family, lines.encode()) for family, lines in self._graves.entries()]
        jobs = self._jobs.figures(openmetrics)  # as of the store now, compressed with the rest
        return self._key(), columns, graves, dict(self._edition), self._deflates, openmetrics, jobs

    def scrape_agent(self, openmetrics: bool = False, gzip: bool = False) -> bytes:
        """The agent's own part only (``GET /metrics?collected=false``): self-metrics, per-job figures, alerts,
        the process; for a Prometheus that scrapes each target on its own (exporters/target_exposition.py)."""
        now = time.time()
        fresh = (self._jobs.figures(openmetrics) + self._jobs.ages(openmetrics, now) + self._provided(openmetrics)
                 + self._process_text(openmetrics))  # all as of now: the ages without a timestamp
        return gzip_member(fresh) if gzip else fresh

    def _live(self, openmetrics: bool, at: float) -> bytes:
        """What a whole body joined at ``at`` is served with as of then: the jobs' ages (their other figures are in
        the snapshot part) and the providers' families. Made with a body made ahead (exporters/ahead.py), so
        that its scrape formats and compresses none of it; without a timestamp, as Prometheus ends a series that
        has none when it vanishes (a removed target's ages)."""
        return self._jobs.ages(openmetrics, at) + self._provided(openmetrics)

    def _process_text(self, openmetrics: bool) -> bytes:
        """The process' metrics and the agent's loop health (prometheus-client, which locks: any thread), and
        the OpenMetrics end."""
        process = (generate_latest_openmetrics if openmetrics else generate_latest)(self._process)
        if openmetrics:
            process = process.removesuffix(b"# EOF\n")
        return process + (b"# EOF\n" if openmetrics else b"")

    def _provided(self, openmetrics: bool) -> bytes:
        """The providers' families rendered. A family a provider gives again as the same object (it did not
        change: a fleet's 1,000 recommendations, alerts by target) keeps the text it was rendered to."""
        kept, rendered = self._rendered, {}
        out = []
        for family in (fam for provider in self._providers for fam in provider()):
            hit = kept.get((id(family), openmetrics))
            text = hit[1] if hit is not None and hit[0] is family else render_families((family,), openmetrics).encode()
            rendered[(id(family), openmetrics)] = (family, text)
            out.append(text)
        kept.update(rendered)
        for key in [k for k in kept if k[1] == openmetrics and k not in rendered]:
            del kept[key]  # a family given no more (its object is held until then, so its id is not reused)
        return b"".join(out)

    def _respond(self, joined: Joined, openmetrics: bool, gzip: bool, scraper: str | None, now: float
                 ) -> tuple[int, Iterable[bytes]]:
        """A whole body joined at ``now``, its live part made now, and the process' metrics."""
        if scraper is not None:
            self._scrapers.served(scraper, now)
        return body_parts(joined, self._live(openmetrics, now) + self._process_text(openmetrics), gzip)

    def _made_parts(self, made: Ready, openmetrics: bool, gzip: bool) -> tuple[int, Iterable[bytes]]:
        """A body made ahead (its live part in it) and the process' metrics: on either thread."""
        return body_parts(made.joined, self._process_text(openmetrics), gzip, made.live)

    def prepared_scrape(self, scraper: str | None, openmetrics: bool, gzip: bool
                        ) -> tuple[int, Iterable[bytes], Callable[[], None], bool] | None:
        """On the HTTP thread: the whole body made ahead for ``scraper``'s scrape now, with the part true at
        scrape time that is safe to read from there (exporters/prepared.py), what to tell the event loop once
        served, and whether a body made for another scrape stood in; None when none is ready (the scrape goes
        through :meth:`scrape_chunks`)."""
        host = (scraper or "").rpartition(":")[0]
        taken_at, now = time.monotonic(), time.time()
        prepared = self.prepared.take((host, openmetrics, gzip), taken_at)
        stand_in = prepared is None
        if stand_in:  # nothing made for this scrape: the newest body, if young enough (exporters/ahead.py)
            prepared = self.prepared.stand_in((openmetrics, gzip), now)
            if prepared is None:
                return None
        assert prepared is not None
        ready = prepared.ready

        def served() -> None:  # on the event loop
            self.ahead.took(host, openmetrics, gzip, taken_at)
            if stand_in:
                self.ahead.stood_in((openmetrics, gzip))
            if scraper is not None:
                self._scrapers.served(scraper, ready.at)

        return (*self._made_parts(ready, openmetrics, gzip), served, stand_in)

    # -- snapshots to fragments ---------------------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._jobs.landed(snapshot)
        labels = self._labels.get(snapshot.target) or {"target": snapshot.target}
        key = (snapshot.target, snapshot.collector)
        pairs: PairsCache = {}  # families of one collection share label sets (a table's 29 families)
        stamp = round((snapshot.started_at + snapshot.duration / 2) * 1000)
        # Each sample line ends with the timestamp; bodies are kept as bytes, so that a scrape joins them
        # without a second, text copy of the whole exposition.
        end = f" {stamp}\n"
        prefix = tuple(sorted(labels.items()))  # identity, not text order
        latest = {family.name: family for family in snapshot.families}
        # The old fragment's lines go before the new ones are rendered (what vanished is taken out first):
        # two renderings of a large collection at once would be the peak of memory.
        old = self._fragments.pop(key, None)
        vanished: dict[str, tuple[MetricFamily, Lines]] = {}
        old_names: list[str] = []
        kept: dict[str, bytes] = {}
        if old is not None:
            vanished, old_names = vanished_series(old, prefix, latest), [family.name for family in old.families]
            if old.prefix == prefix:
                # A family the collection left as it was (agent/jobs.py shares it: the same object) keeps its
                # lines with the new timestamp put in. " <ms>\n" ends a line only: a value is never written as
                # bare digits ("1.0", "1e+20") and an escaped label value holds no newline.
                was, now, get = f" {old.stamp_ms}\n".encode(), end.encode(), latest.get
                kept = {family.name: body.replace(was, now) for family, body in zip(old.families, old.bodies)
                        if get(family.name) is family}
            self._release(old)
        families = list(latest.values())
        bodies = [body if (body := kept.get(family.name)) is not None
                  else render_samples(family, labels, pairs, end).encode() for family in families]
        fragment = Fragment(prefix, stamp, families, bodies)
        self._fragments[key] = fragment
        self._keys_of.setdefault(snapshot.target, set()).add(key)
        self._touch(snapshot.target)
        self._changed(old_names, latest)
        self._graves.revive(key, fragment.prefix, latest)
        if old is not None:
            self._graves.bury(key, old.prefix, vanished, time.time())
        self._generation += 1

    def retire_graves(self, now: float) -> bool:
        """Forget the tombstones every scraper that should see them has fetched; True if any went."""
        gone = self._graves.retire(self._scrapers, now, self.target_scrapers)
        for target in gone:
            self._touch(target)
        return bool(gone)

    def target_part(self, target: str, openmetrics: bool = False
                    ) -> tuple[list[tuple[MetricFamily, bytes]], list[tuple[MetricFamily, str]]]:
        """One target's part of the exposition: each family's sample lines per collector, its tombstones."""
        fragments = self._fragments
        lines = [entry for key in sorted(self._keys_of.get(target, ())) if (f := fragments.get(key)) is not None
                 for entry in f.entries(openmetrics)]
        return lines, list(self._graves.entries_of(target))

    def _touch(self, target: str) -> None:
        self.target_generation[target] = self.target_generation.get(target, 0) + 1
        for touched in self.on_touched:
            touched(target)

    def _forget(self, key: tuple[str, str]) -> None:
        keys = self._keys_of.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys_of[key[0]]
        self._touch(key[0])

    def _release(self, old: Fragment) -> None:
        """Let go of ``old``'s sample lines (the caller marks its names changed)."""
        self._cache.clear()  # the joined scrape holds them too, and is stale from now on
        old.bodies = []
        old._openmetrics = None

    def _changed(self, *names: Iterable[str]) -> None:
        """A collection's lines of ``names`` changed (came, went or were rendered anew)."""
        self._edits += 1
        for some in names:
            self._edition.update(dict.fromkeys(some, self._edits))

    def _self_metrics(self) -> list[MetricFamily]:
        build = MetricFamily("dbwatch_build_info", MetricType.GAUGE, "dbwatch's version and Python's.",
                             ("version", "python"))
        build.add((self.version, platform.python_version()), 1)
        return [build]


def _fixed_mmap_threshold() -> None:
    """Keep glibc's malloc giving buffers of 128 KiB and more their own mappings, returned when freed.

    Each collection renders family bodies of a few hundred KiB (and their text before it is encoded); glibc
    raises its mmap threshold to the largest buffer freed so far, after which such bodies come from the heap
    and fragment it with every collection (bench/pg_cycle.py: 4 MiB of peak RSS). Setting the threshold turns
    that adjustment off. Elsewhere (musl, macOS) nothing is done."""
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (AttributeError, OSError):
        pass
