"""The ``queries`` collector: dbwatch's own custom queries (:mod:`.custom_parse`), the same on every SQL engine.

Each engine's collector (:mod:`.pg_queries`, :mod:`.mysql_custom`) says only how to run one statement
read-only within a timeout; the rest is here. Each query runs at most every ``interval`` (between runs its
last rows are served again), on the target's own connection and database, within ``timeout`` (at most the
target's statement timeout). Each metric takes its ``value`` column as the number and its ``labels`` columns
as label values (NULL is an empty label). A row whose value is NULL or not a number, or whose labels repeat
an earlier row's, is skipped and counted in ``dbwatch_custom_query_skipped_rows_total{query,metric}``. A query
that fails (a server error, a timeout, a column the metrics name that the result lacks) is counted in
``dbwatch_custom_query_errors_total{query}``, said in the snapshot's notes and by
``dbwatch_custom_query_success{query}`` 0; the other queries still run, and the collector carries on.
"""

from __future__ import annotations

import math
import os
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from dbwatch.collectors import catalog
from dbwatch.collectors.base import Collector, CollectorError, Session
from dbwatch.collectors.custom_parse import MetricSpec, QuerySpec, load_query_file, parse_query_list
from dbwatch.collectors.pg_custom_parse import QueryFileError, sample_value
from dbwatch.model import MetricFamily, MetricType, Snapshot, Target, counter, gauge
from dbwatch.model.catalog import find as catalog_find
from dbwatch.model.options import CollectorOptions, Text

__all__ = ["QueriesCollector", "QueriesOptions", "QueryFile", "not_built_in"]

Row = Mapping[str, Any]
S = TypeVar("S", bound=Session)
T = TypeVar("T")


class QueriesOptions(CollectorOptions):
    """Options of the ``queries`` collector: the queries inline, or in a file (both may be given)."""

    queries: Any = None  # a list of queries (custom_parse); checked by file_problems, one line per problem
    queries_file: Text = ""  # a YAML file holding such a list, re-read when it changes

    def file_problems(self) -> list[tuple[str, str]]:
        """What the configuration check reports: ``(option, line)``, one per problem, naming query and field."""
        out = [("queries", problem) for problem in parse_query_list(self.queries)[1]]
        if self.queries_file:
            try:
                load_query_file(self.queries_file)
            except QueryFileError as exc:
                out.extend(("queries_file", f"{exc.source}: {problem}") for problem in exc.problems)
        return out


class QueriesCollector(Collector[S, QueriesOptions]):
    """The configured queries, their metrics, and how each query fared."""

    name = "queries"
    options_model = QueriesOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._file = QueryFile(load_query_file)
        self._rows: dict[str, tuple[float, Sequence[Row]]] = {}  # query -> (when it ran, its rows)
        self._errors: Counter[str] = Counter()
        self._skipped: Counter[tuple[str, str]] = Counter()

    @abstractmethod
    async def fetch(self, query: QuerySpec, timeout: float) -> Sequence[Row]:
        """The rows of ``query``, run read-only and cancelled by the server after ``timeout`` seconds (0: the
        session's own statement timeout); raises CollectorError."""

    async def collect(self, snapshot: Snapshot) -> None:
        queries = (*parse_query_list(self.options.queries)[0], *self._file_queries())
        success = gauge("dbwatch_custom_query_success", "Whether the custom query's last run succeeded (1) or "
                        "failed (0).", ("query",))
        duration = gauge("dbwatch_custom_query_duration_seconds", "How long the custom query's last run took.",
                         ("query",))
        out: dict[str, MetricFamily] = {}
        now = time.monotonic()
        for query in queries:
            cached = self._rows.get(query.name)
            if cached is None or now - cached[0] >= query.interval:
                began = time.monotonic()
                try:
                    rows = await self.fetch(query, query.timeout)
                    _check_columns(query, rows)
                except CollectorError as exc:
                    self._errors[query.name] += 1
                    self._rows.pop(query.name, None)
                    snapshot.notes.append(f"custom query {query.name}: {exc}")
                    success.add((query.name,), 0)
                    continue
                duration.add((query.name,), time.monotonic() - began)
                cached = self._rows[query.name] = (now, rows)
            success.add((query.name,), 1)
            for metric in query.metrics:
                self._export(query.name, metric, cached[1], out)
        names = {query.name for query in queries}
        errors = counter("dbwatch_custom_query_errors_total", "Runs of the custom query that failed.", ("query",))
        errors.samples.extend(((name,), float(self._errors[name])) for name in sorted(names))
        skipped = counter("dbwatch_custom_query_skipped_rows_total",
                          "Rows skipped by a custom query's metric: a NULL or non-numeric value, or repeated labels.",
                          ("query", "metric"))
        skipped.samples.extend(((q, m), float(n)) for (q, m), n in sorted(self._skipped.items()) if q in names)
        families, shadowed = not_built_in(self.target, self.name, list(out.values()))
        if shadowed:
            snapshot.notes.append(f"custom queries: {', '.join(shadowed)} left out: dbwatch's own collectors of "
                                  "this target export these names")
        snapshot.families.extend([*families, success, duration, errors, skipped])
        snapshot.keep_history = False  # the user's series; no rule reads them over time

    def _file_queries(self) -> tuple[QuerySpec, ...]:
        queries, changed = self._file.read(self.options.queries_file)
        if changed:
            self._rows.clear()
        return queries or ()

    def _export(self, query: str, metric: MetricSpec, rows: Sequence[Row], out: dict[str, MetricFamily]) -> None:
        family = out.get(metric.name)
        if family is None:
            kind = MetricType.COUNTER if metric.type == "counter" else MetricType.GAUGE
            family = out[metric.name] = MetricFamily(metric.name, kind, metric.help, metric.labels)
        seen: set[tuple[str, ...]] = set()
        bad = 0
        for row in rows:
            raw = row[metric.value]
            value = None if raw is None else sample_value(raw)
            labels = tuple("" if row[c] is None else str(row[c]) for c in metric.labels)
            if value is None or math.isnan(value) or labels in seen:
                bad += 1
                continue
            seen.add(labels)
            family.samples.append((labels, value))
        if bad:
            self._skipped[(query, metric.name)] += bad


class QueryFile(Generic[T]):
    """A queries file, re-read when it changes; a file gone bad fails the collection, plainly."""

    def __init__(self, load: Callable[[str], T]) -> None:
        self._load = load
        self._read: tuple[str, float, T] | None = None  # (path, mtime, what it holds)

    def read(self, path: str) -> tuple[T | None, bool]:
        """What the file at ``path`` holds (None: no path), and whether that changed since the last read."""
        if not path:
            return None, False
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            raise CollectorError(f"queries_file {path}: {exc.strerror}") from None
        if self._read is not None and self._read[:2] == (path, mtime):
            return self._read[2], False
        try:
            self._read = (path, mtime, self._load(path))
        except QueryFileError as exc:
            raise CollectorError(f"queries_file {exc}") from None
        return self._read[2], True


def not_built_in(target: Target, own: str, families: list[MetricFamily]) -> tuple[list[MetricFamily], list[str]]:
    """The families no other enabled collector of the target exports (by the metric catalog), and the names of
    the others: one series twice in a scrape is an error."""
    # (an open template of any name, as the custom collector's, would shadow everything: not counted)
    specs = [spec for name in target.collectors if name != own
             for spec in catalog.families(target.engine, name) if spec.prefix != ""]
    kept: list[MetricFamily] = []
    shadowed: list[str] = []
    for family in families:
        if catalog_find(specs, family.name) is None:
            kept.append(family)
        else:
            shadowed.append(family.name)
    return kept, shadowed


def _check_columns(query: QuerySpec, rows: Sequence[Row]) -> None:
    """A column a metric names that the result lacks is the query's error (the file and the SQL disagree)."""
    if not rows:
        return
    present = set(rows[0].keys())
    missing = sorted({c for m in query.metrics for c in (m.value, *m.labels)} - present)
    if missing:
        raise CollectorError(f"the result has no column {', '.join(missing)} (it has {', '.join(sorted(present))})")
