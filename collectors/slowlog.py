"""Slow query logs: follow the file, parse every event, fingerprint it, aggregate per class per interval.

The collector reads what the server appended since the last collection (MySQL/MariaDB slow log, or
PostgreSQL's log with ``log_min_duration_statement``; see :mod:`~dbwatch.collectors.slowlog_formats`),
puts each event in its class (:mod:`~dbwatch.collectors.fingerprint`, pt-query-digest's classes) and
produces:

- the :class:`SlowClasses` fact: one :class:`SlowClass` per class seen in the interval (the top ``top_n`` by
  total time), with count, total/mean/p95/max time, lock time, rows, first and last seen, and one sample
  statement (the slowest, literals and all, truncated to ``sample_length``): literal values are data, so
  the sample lives in facts only, never in a metric label;
- cumulative counters per class id for the top ``top_n`` classes by total time, the rest summed under
  ``class_id="other"`` (as for pg_stat_statements; a class moving in or out of the top makes ``other``
  step), and the interval's maximum per top class;
- the reading's own health: events, bytes, rotations, skipped lines and unparseable records.

The file offset is saved in ``state_dir`` after each collection, so a restarted agent resumes where it was
and counts no event twice. The first collection without a saved offset starts at the end of the file
(``from_beginning: true`` reads the existing file first). Reading is blocking file I/O, done in a worker
thread and bounded per collection (``max_bytes_per_collection``; a backlog is read over several).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from dbwatch.model import MetricFamily, Snapshot, counter, gauge, info
from dbwatch.collectors.base import Collector, CollectorError, Session, SlowSample
from dbwatch.collectors.fingerprint import ShapeCache, class_id
from dbwatch.collectors.logtail import LogFollower
from dbwatch.collectors.slowlog_formats import FORMATS, SlowEvent, format_name, make_parser
from dbwatch.model.facts.slowlog import SlowClass, SlowClasses, SlowLogPosition
from dbwatch.model.options import CollectorOptions, Count, Flag, Text

__all__ = ["SlowLogCollector", "SlowLogOptions", "Aggregator", "analyze"]


class SlowLogOptions(CollectorOptions):
    path: Text = ""  # required: the slow log file to follow
    # auto | mysql | postgres-stderr | postgres-csv | postgres-json | neo4j; checked when collecting (see below)
    format: Text = "auto"
    state_dir: Text = ""  # where the read offset is kept across restarts; empty: not kept
    top_n: Count = 50  # query classes with their own series
    sample_length: Count = 1000  # characters of the sample statement kept per class
    from_beginning: Flag = False  # read the file from its start the first time, not from its end
    max_bytes_per_collection: Count = 64 << 20

MAX_CLASSES = 10_000  # classes kept with their own cumulative counters; the least costly fold into "other"
_FINGERPRINT_CACHE = 4096  # raw statement -> fingerprint, for the statements repeated verbatim (COMMIT, ...)
_CACHE_MAX_QUERY = 1024  # longer statements are not cached, so the cache stays within a few MiB
_LOG_BUCKET = 1 / math.log(1.05)  # histogram buckets 5 % wide from 1 µs, like pt-query-digest's


@dataclass(slots=True)
class _Stats:
    fingerprint: str
    count: int = 0
    time: float = 0.0
    time_max: float = -1.0
    time_min: float = math.inf
    lock: float = 0.0
    examined: int = 0
    sent: int = 0
    affected: int = 0
    full_scans: int = 0
    tmp_disk: int = 0
    first: float | None = None
    last: float | None = None
    db: str = ""
    user: str = ""
    sample: str = ""
    buckets: dict[int, int] = field(default_factory=dict)


class Aggregator:
    """Per-class statistics of the current interval, plus cumulative counters per class id."""

    def __init__(self, sample_length: int = 1000) -> None:
        self.sample_length = sample_length
        self.interval: dict[str, _Stats] = {}  # by fingerprint
        self.totals: dict[str, list[float]] = {}  # class id -> [count, seconds]
        self.other = [0.0, 0.0]  # counters of classes evicted from ``totals``
        self.events = 0
        self._ids: dict[str, str] = {}
        self._cache: dict[str, str] = {}
        self._shapes = ShapeCache()

    def add(self, events: Iterable[SlowEvent]) -> None:
        cache, classes, log, fingerprint = self._cache, self.interval, math.log, self._shapes
        sample_keep = self.sample_length + 1  # one more than shown, so that _row knows to mark the cut
        n = 0
        for query, t, lock, sent, examined, affected, ts, db, user, full_scan, tmp_disk, postgres in events:
            n += 1
            fp = cache.get(query)
            if fp is None:
                fp = fingerprint(query, postgres)
                if len(query) <= _CACHE_MAX_QUERY:
                    if len(cache) >= _FINGERPRINT_CACHE:
                        cache.clear()
                    cache[query] = fp
            st = classes.get(fp)
            if st is None:
                st = classes[fp] = _Stats(fp, db=db, user=user)
            st.count += 1
            st.time += t
            if t > st.time_max:
                st.time_max = t
                st.sample = query if len(query) <= sample_keep else query[:sample_keep]
            if t < st.time_min:
                st.time_min = t
            st.lock += lock
            st.examined += examined
            st.sent += sent
            st.affected += affected
            if full_scan:
                st.full_scans += 1
            if tmp_disk:
                st.tmp_disk += 1
            if ts is not None:
                if st.first is None or ts < st.first:
                    st.first = ts
                if st.last is None or ts > st.last:
                    st.last = ts
            b = int(log(t * 1e6) * _LOG_BUCKET) + 1 if t >= 1e-6 else 0  # pt-query-digest's bucket_idx
            buckets = st.buckets
            buckets[b] = buckets.get(b, 0) + 1
        self.events += n

    def close_interval(self, limit: int | None = None) -> list[SlowClass]:
        """Fold the interval into the cumulative counters; return its classes, the costliest first."""
        rows = []
        for fp, st in self.interval.items():
            cid = self._ids.get(fp)
            if cid is None:
                cid = self._ids[fp] = class_id(fp)
            total = self.totals.get(cid)
            if total is None:
                total = self.totals[cid] = [0, 0.0]
            total[0] += st.count
            total[1] += st.time
            rows.append(self._row(cid, st))
        self.interval = {}
        self._evict()
        rows.sort(key=lambda r: r.query_time_total, reverse=True)
        return rows if limit is None else rows[:limit]

    def fingerprints(self) -> dict[str, str]:
        """Class id -> fingerprint, for the classes with their own counters."""
        return {cid: fp for fp, cid in self._ids.items()}

    def top(self, n: int) -> list[str]:
        return heapq.nlargest(n, self.totals, key=lambda cid: self.totals[cid][1])

    def _row(self, cid: str, st: _Stats) -> SlowClass:
        sample = st.sample if len(st.sample) <= self.sample_length else st.sample[: self.sample_length - 1] + "…"
        return SlowClass(
            class_id=cid, fingerprint=st.fingerprint, count=st.count, query_time_total=st.time,
            query_time_mean=st.time / st.count, query_time_p95=_p95(st),
            query_time_max=st.time_max, lock_time_total=st.lock, rows_examined_total=st.examined,
            rows_sent_total=st.sent, rows_affected_total=st.affected, full_scans=st.full_scans,
            tmp_disk_tables=st.tmp_disk, first_seen=st.first, last_seen=st.last, db=st.db, user=st.user,
            sample=sample,
        )

    def _evict(self) -> None:
        if len(self.totals) <= MAX_CLASSES:
            return
        keep = set(self.top(MAX_CLASSES * 9 // 10))
        for cid in [c for c in self.totals if c not in keep]:
            count, seconds = self.totals.pop(cid)
            self.other[0] += count
            self.other[1] += seconds
        self._ids = {fp: cid for fp, cid in self._ids.items() if cid in keep}


def _p95(st: _Stats) -> float:
    """The 95th percentile exactly as pt-query-digest computes it, so that both reports show the same figure:
    the lower edge of the 5 %-wide bucket holding the ``int(0.95 n)``-th smallest value (the largest value
    below 10 events), and the maximum itself for one or two events or when all are equal."""
    if st.count <= 2 or st.time_max == st.time_min:
        return st.time_max
    cutoff = int(st.count * 0.95) if st.count >= 10 else st.count
    seen = 0
    for b in sorted(st.buckets):
        seen += st.buckets[b]
        if seen >= cutoff:
            return 1e-6 * 1.05 ** (b - 1) if b else 0.0  # pt-query-digest's bucket_value
    return st.time_max


class SlowLogCollector(Collector[Session, SlowLogOptions]):
    """Follows a slow log file (:class:`SlowLogOptions`). Needs no connection; it leaves the top classes'
    samples on the session (``session.slow_samples``) for the target's other collectors."""

    name = "slowlog"
    options_model = SlowLogOptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        options = self.options
        # A wrong option fails each collection with this message (a metric and an alert), not the agent.
        self.problem = None
        if not options.path:
            self.problem = "collectors.slowlog.path: the slow log file to follow is not set"
        elif options.format not in FORMATS:
            self.problem = f"collectors.slowlog.format: expected one of {', '.join(FORMATS)}, got {options.format!r}"
        state_file = None
        if options.state_dir:
            key = hashlib.sha1(f"{self.target.name}\0{options.path}".encode()).hexdigest()[:16]
            state_file = str(Path(options.state_dir) / f"slowlog-{key}.json")
        self.parser = make_parser(options.format if options.format in FORMATS else "auto")
        self.follower = LogFollower(options.path, self.parser, state_file, options.from_beginning)
        self.aggregator = Aggregator(options.sample_length)
        self._lock = threading.Lock()

    async def collect(self, snapshot: Snapshot) -> None:
        if self.problem:
            raise CollectorError(self.problem)
        await asyncio.to_thread(self.collect_now, snapshot)
        if self.session is not None:  # for the target's other collectors (the PostgreSQL index advisor)
            now = time.time()
            self.session.keep_slow_samples([  # on the event loop, never from the reading thread
                SlowSample(class_id=c.class_id, fingerprint=c.fingerprint, sample=c.sample, count=c.count,
                           query_time_total=c.query_time_total, query_time_max=c.query_time_max, db=c.db,
                           seen_at=now)
                for c in reversed(snapshot.fact(SlowClasses) or ())
                if c.sample and not c.sample.endswith("…")])  # a cut statement cannot be planned

    def collect_now(self, snapshot: Snapshot) -> None:
        """The blocking part: read, parse and aggregate what is new, then fill ``snapshot``."""
        # One collection at a time: a collection that timed out may still be reading in its thread.
        with self._lock:
            self.follower.poll(self.aggregator.add, self.options.max_bytes_per_collection)
            classes = self.aggregator.close_interval()
            snapshot.families.extend(self._families({row.class_id: row.query_time_max for row in classes}))
            offset = self.follower.offset
        snapshot.put(SlowClasses(tuple(classes[: self.options.top_n])), SlowLogPosition(
            path=self.options.path, format=format_name(self.parser), offset=offset,
            classes_in_interval=len(classes), events_in_interval=sum(r.count for r in classes)))
        if not Path(self.options.path).exists():
            snapshot.notes.append(f"the slow log {self.options.path} does not exist (yet); check the server's "
                                  "slow_query_log_file / log_directory and that dbwatch may read it")
        if self.follower.save_error is not None:
            snapshot.notes.append(f"cannot save the read offset in {self.options.state_dir} "
                                  f"({self.follower.save_error}); after a restart the log is read again from the "
                                  "last offset saved")

    def _families(self, maxima: dict[str, float]) -> list[MetricFamily]:
        agg, stats = self.aggregator, self.follower.stats
        labels = ("class_id",)
        queries = counter("dbwatch_slowlog_queries_total", "Queries in the slow log, per query class.", labels)
        seconds = counter("dbwatch_slowlog_query_seconds_total",
                          "Total query time logged in the slow log, in seconds, per query class.", labels)
        maximum = gauge("dbwatch_slowlog_query_max_seconds",
                        "Longest query of the class in the last interval, in seconds.", labels)
        text = info("dbwatch_slowlog_query_class_info", "Fingerprint of a query class (no literals; truncated).",
                    ("class_id", "fingerprint"))
        top = agg.top(self.options.top_n)
        fingerprints = agg.fingerprints()
        other = list(agg.other)
        for cid, (count, total) in agg.totals.items():
            other[0] += count
            other[1] += total
        for cid in top:
            count, total = agg.totals[cid]
            other[0] -= count
            other[1] -= total
            queries.add((cid,), count)
            seconds.add((cid,), total)
            if cid in maxima:
                maximum.add((cid,), maxima[cid])
            if cid in fingerprints:
                fp = fingerprints[cid]
                text.add((cid, fp if len(fp) <= 200 else fp[:199] + "…"), 1)
        if len(agg.totals) > len(top) or agg.other[0]:
            queries.add(("other",), max(0.0, other[0]))
            seconds.add(("other",), max(0.0, other[1]))
        events = counter("dbwatch_slowlog_events_total", "Events parsed from the slow log.")
        events.add((), agg.events)
        skipped = counter("dbwatch_slowlog_lines_skipped_total",
                          "Lines of the slow log that belong to no event (neither a header nor a query).")
        skipped.add((), self.parser.skipped_lines)
        errors = counter("dbwatch_slowlog_parse_errors_total",
                         "Slow log records skipped: malformed, not UTF-8, or larger than the record limit.")
        errors.add((), self.parser.skipped)
        read = counter("dbwatch_slowlog_read_bytes_total", "Bytes read from the slow log.")
        read.add((), stats.bytes_read)
        rotations = counter("dbwatch_slowlog_rotations_total", "Rotations (rename) and truncations of the slow log "
                            "seen while following it.")
        rotations.add((), stats.rotations + stats.truncations)
        classes = gauge("dbwatch_slowlog_classes", "Query classes with their own cumulative counters.")
        classes.add((), len(agg.totals))
        return [queries, seconds, maximum, text, events, skipped, errors, read, rotations, classes]


def analyze(paths: Iterable[str], fmt: str = "auto", sample_length: int = 1000
            ) -> tuple[list[SlowClass], dict[str, int]]:
    """An offline report over whole files: every class, costliest first, and the parse counters."""
    aggregator = Aggregator(sample_length)
    skipped = skipped_lines = 0
    for path in paths:
        parser = make_parser(fmt)
        follower = LogFollower(path, parser, None, from_beginning=True)
        while follower.poll(aggregator.add, 1 << 62):
            pass
        follower.finish(aggregator.add)
        follower.close()
        skipped += parser.skipped
        skipped_lines += parser.skipped_lines
    classes = aggregator.close_interval()
    return classes, {"events": aggregator.events, "parse_errors": skipped, "lines_skipped": skipped_lines}
