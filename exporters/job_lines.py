"""The agent's per-job figures on /metrics: every (target, collector)'s last duration, runs, errors, last success
and the age of its last collection, and the families other tools expect made from them (postgres_exporter's own:
exporters/pg_exporter_compat.py).

They are true at scrape time and go out without a timestamp, but all of them except the age change only when a
collection lands: each job's lines are written then (a store listener, after the store counted the run), and a
scrape joins them per family, as C joins strings. Only the age is written per scrape. A fleet has thousands of
jobs (4,800 at 1,400 targets): going over every job's figures per scrape, as this once did, took 12-40 ms of the
event loop per scrape, which every scrape waiting behind it paid; postgres_exporter's families made per scrape
from the store took 9 ms more, and their rendering about as much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

from dbwatch.exporters.text_format import escape, header, number
from dbwatch.model import MetricFamily, MetricType, Snapshot

__all__ = ["JobColumn", "JobFigures", "JobLines", "JOB_COLUMNS", "AGE_FAMILY"]

Key = tuple[str, str]


class JobFigures(Protocol):
    target: str
    collector: str
    runs: int
    errors: int
    last_duration: float | None
    last_success: float | None


@dataclass(frozen=True, slots=True)
class JobColumn:
    """A family with at most one sample per job: ``value`` of the job's figures and its latest collection (None:
    no sample for that job). Its labels are ``target`` and ``collector``, or ``target`` alone (then the value is
    given for one job of the target only)."""

    family: MetricFamily
    value: Callable[[JobFigures, Snapshot], float | None]

    def line(self, key: Key, pairs: str, stats: JobFigures, snapshot: Snapshot) -> str:
        value = self.value(stats, snapshot)
        if value is None:
            return ""
        if len(self.family.labelnames) == 1:
            pairs = f'target="{escape(key[0])}"'
        return f"{self.family.name}{{{pairs}}} {number(value)}\n"


_JOB = ("target", "collector")
JOB_COLUMNS = (
    JobColumn(MetricFamily("dbwatch_collector_duration_seconds", MetricType.GAUGE,
                           "How long the last collection took.", _JOB), lambda s, _: s.last_duration),
    JobColumn(MetricFamily("dbwatch_collector_runs_total", MetricType.COUNTER, "Collections run.", _JOB),
              lambda s, _: s.runs),
    JobColumn(MetricFamily("dbwatch_collector_errors_total", MetricType.COUNTER, "Collections that failed.", _JOB),
              lambda s, _: s.errors),
    JobColumn(MetricFamily("dbwatch_collector_last_success_timestamp_seconds", MetricType.GAUGE,
                           "When the last successful collection ended (Unix time).", _JOB),
              lambda s, _: s.last_success),
)
AGE_FAMILY = MetricFamily("dbwatch_collect_age_seconds", MetricType.GAUGE,
                          "Seconds since the last collection ended, successful or not.", _JOB)


class JobSource(Protocol):
    """What is read of the agent's store (structural: exporters never import the daemon)."""

    def latest(self, target: str, collector: str) -> Snapshot | None: ...
    def stats(self) -> Sequence[JobFigures]: ...
    def job_stats(self, target: str, collector: str) -> JobFigures | None: ...


class JobLines:
    """Each job's figure lines, kept current by :meth:`landed` and joined by :meth:`figures` and :meth:`ages`."""

    def __init__(self, store: JobSource, columns: Iterable[JobColumn] = JOB_COLUMNS) -> None:
        self._store = store
        self._columns = tuple(columns)
        #: per column: the job's line ("" while it has no such figure), in the store's order
        self._lines: tuple[dict[Key, str], ...] = tuple({} for _ in self._columns)
        #: per job: its age line up to the value, and when its last collection ended
        self._ages: dict[Key, tuple[str, float]] = {}

    def add(self, columns: Iterable[JobColumn]) -> None:
        """More columns (written for the jobs known from the store now on)."""
        self._columns += tuple(columns)
        self._rebuild(self._store.stats())

    def landed(self, snapshot: Snapshot) -> None:
        """A collection landed in the store (which counted it already): its job's lines anew."""
        key = (snapshot.target, snapshot.collector)
        stats = self._store.job_stats(*key)
        if stats is not None:
            self._write(key, stats, snapshot)

    def figures(self, openmetrics: bool) -> bytes:
        """The families that change only when a collection lands (all but the age): as of the store now, like
        the collected samples, so that a whole body joins them with those (exporters/prometheus.py)."""
        jobs = self._store.stats()
        if len(jobs) != len(self._ages):  # targets went (or came without a collection yet): from the store
            self._rebuild(jobs)
        out: list[str] = []
        for column, lines in zip(self._columns, self._lines):
            text = "".join(lines.values())
            if text:
                out += (header(column.family, openmetrics), text)
        return "".join(out).encode()

    def ages(self, openmetrics: bool, now: float) -> bytes:
        """``dbwatch_collect_age_seconds`` as of ``now``."""
        if not self._ages:
            return b""
        # to the ms: twice as fast as number()'s repr (and %-formatting a quarter faster than an f-string with
        # max()); over a copy taken at once, as the HTTP thread reads it too
        return (header(AGE_FAMILY, openmetrics) + "".join([
            "%s%.3f\n" % (start, now - ended if ended < now else 0.0)
            for start, ended in list(self._ages.values())])).encode()

    def _write(self, key: Key, stats: JobFigures, snapshot: Snapshot) -> None:
        known = self._ages.get(key)
        start = known[0] if known else f'{AGE_FAMILY.name}{{target="{escape(key[0])}",collector="{escape(key[1])}"}} '
        pairs = start[len(AGE_FAMILY.name) + 1:-2]
        for column, lines in zip(self._columns, self._lines):
            lines[key] = column.line(key, pairs, stats, snapshot)
        self._ages[key] = (start, snapshot.started_at + snapshot.duration)

    def _rebuild(self, jobs: Sequence[JobFigures]) -> None:
        self._lines = tuple({} for _ in self._columns)
        self._ages = {}
        for stats in jobs:
            latest = self._store.latest(stats.target, stats.collector)
            if latest is not None:
                self._write((stats.target, stats.collector), stats, latest)
