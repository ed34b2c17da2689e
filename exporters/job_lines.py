"""The agent's per-job figures on /metrics: every (target, collector)'s last duration, runs, errors, last success
and the age of its last collection.

They are true at scrape time and go out without a timestamp, but all of them except the age change only when a
collection lands: each job's lines are written then (a store listener, after the store counted the run), and a
scrape joins them per family, as C joins strings. Only the age is written per scrape. A fleet has thousands of
jobs (4,400 at 1,400 targets): going over every job's figures per scrape, as this once did, took 12-40 ms of the
event loop per scrape, which every scrape waiting behind it paid.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from dbwatch.exporters.text_format import escape, header, number
from dbwatch.model import MetricFamily, MetricType, Snapshot

__all__ = ["JobLines", "JOB_FAMILIES"]

_JOB = ("target", "collector")
JOB_FAMILIES = (
    MetricFamily("dbwatch_collector_duration_seconds", MetricType.GAUGE, "How long the last collection took.", _JOB),
    MetricFamily("dbwatch_collector_runs_total", MetricType.COUNTER, "Collections run.", _JOB),
    MetricFamily("dbwatch_collector_errors_total", MetricType.COUNTER, "Collections that failed.", _JOB),
    MetricFamily("dbwatch_collector_last_success_timestamp_seconds", MetricType.GAUGE,
                 "When the last successful collection ended (Unix time).", _JOB),
    MetricFamily("dbwatch_collect_age_seconds", MetricType.GAUGE,
                 "Seconds since the last collection ended, successful or not.", _JOB),
)

Key = tuple[str, str]


class JobFigures(Protocol):
    target: str
    collector: str
    runs: int
    errors: int
    last_duration: float | None
    last_success: float | None


class JobSource(Protocol):
    """What is read of the agent's store (structural: exporters never import the daemon)."""

    def latest(self, target: str, collector: str) -> Snapshot | None: ...
    def stats(self) -> Sequence[JobFigures]: ...
    def job_stats(self, target: str, collector: str) -> JobFigures | None: ...


class JobLines:
    """Each job's figure lines, kept current by :meth:`landed` and joined by :meth:`figures` and :meth:`ages`."""

    def __init__(self, store: JobSource) -> None:
        self._store = store
        #: per figure family but the age: the job's line ("" while it has no such figure), in the store's order
        self._columns: tuple[dict[Key, str], ...] = ({}, {}, {}, {})
        self._ages: dict[Key, tuple[str, float]] = {}  # its labels as written, when its last collection ended

    def landed(self, snapshot: Snapshot) -> None:
        """A collection landed in the store (which counted it already): its job's lines anew."""
        key = (snapshot.target, snapshot.collector)
        stats = self._store.job_stats(*key)
        if stats is not None:
            self._write(key, stats, snapshot)

    def figures(self, openmetrics: bool) -> bytes:
        """The four families that change only when a collection lands (all but the age): as of the store now,
        like the collected samples, so that a whole body joins them with those (exporters/prometheus.py)."""
        jobs = self._store.stats()
        if len(jobs) != len(self._ages):  # targets went (or came without a collection yet): from the store
            self._rebuild(jobs)
        return "".join([header(family, openmetrics) + "".join(column.values())
                        for family, column in zip(JOB_FAMILIES, self._columns) if column]).encode()

    def ages(self, openmetrics: bool, now: float) -> bytes:
        """``dbwatch_collect_age_seconds`` as of ``now``."""
        if not self._ages:
            return b""
        return (header(JOB_FAMILIES[4], openmetrics) + "".join([
            f"dbwatch_collect_age_seconds{{{pairs}}} {number(max(0.0, now - ended))}\n"
            for pairs, ended in self._ages.values()])).encode()

    def _write(self, key: Key, stats: JobFigures, snapshot: Snapshot) -> None:
        known = self._ages.get(key)
        pairs = known[0] if known else f'target="{escape(key[0])}",collector="{escape(key[1])}"'
        for column, family, value in zip(self._columns, JOB_FAMILIES, (stats.last_duration, stats.runs,
                                                                       stats.errors, stats.last_success)):
            column[key] = "" if value is None else f"{family.name}{{{pairs}}} {number(value)}\n"
        self._ages[key] = (pairs, snapshot.started_at + snapshot.duration)

    def _rebuild(self, jobs: Sequence[JobFigures]) -> None:
        self._columns = ({}, {}, {}, {})
        self._ages = {}
        for stats in jobs:
            latest = self._store.latest(stats.target, stats.collector)
            if latest is not None:
                self._write((stats.target, stats.collector), stats, latest)
