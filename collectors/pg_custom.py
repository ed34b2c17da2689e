"""Custom queries from a postgres_exporter ``queries.yaml`` file, moved over unchanged.

Each query's columns become ``<namespace>_<column>`` as the exporter names them: COUNTER and GAUGE columns
are exported as such, LABEL columns label them, MAPPEDMETRIC maps a text column to numbers (unmapped
values are skipped), DURATION parses a duration (Go's ``1m30s`` form, or a PostgreSQL interval) into
``<namespace>_<column>_milliseconds``, HISTOGRAM reads ``<column>`` (the bucket bounds), ``<column>_bucket``,
``<column>_sum`` and ``<column>_count`` into ``_bucket{le=...}``/``_sum``/``_count`` series, DISCARD drops
the column, and a column the file does not list is exported untyped when it holds a number. NULL is NaN,
a timestamp is Unix seconds, a boolean 1 or 0.

``master: true`` runs a query on the target's own database only; otherwise it runs on every database the
scope visits (``auto_discover_databases``, off by default here, as in the exporter). When a query runs on
several databases and has no ``datname`` label of its own, dbwatch adds one, so the databases' rows never
collide (the exporter would fail the whole scrape). A family another enabled collector of the target
exports (the tables collector's per-table statistics, often in files written for the exporter) is left out,
with a note. ``cache_seconds`` serves the last result until it is that old; ``runonserver`` skips the query
on other server versions. A query that fails is reported in the snapshot's notes and by
``dbwatch_pg_custom_query_success{query,datname}``; the others still run.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Sequence
from typing import Any

from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.custom_queries import QueryFile, not_built_in
from dbwatch.collectors.pg_custom_parse import Column, CustomQuery, QueryFileError, load_queries, sample_value
from dbwatch.collectors.pg_databases import DatabaseScope, describe_failure, discover, per_database
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import MetricFamily, MetricType, Snapshot, gauge
from dbwatch.model.options import Flag, Text

__all__ = ["CustomOptions", "CustomQueriesCollector"]


class CustomOptions(DatabaseScope):
    """Options of the ``custom`` collector: the queries file, and the databases non-master queries visit."""

    queries_file: Text = ""  # postgres_exporter's queries.yaml (its --extend.query-path)
    auto_discover_databases: Flag = False

    def file_problems(self) -> list[tuple[str, str]]:
        """What the configuration check reports about the queries file: ``(option, line)``, one per problem,
        each naming the query and its field."""
        if not self.queries_file:
            return []
        try:
            load_queries(self.queries_file)
        except QueryFileError as exc:
            return [("queries_file", f"{exc.source}: {problem}") for problem in exc.problems]
        return []


class CustomQueriesCollector(Collector[PostgresSession, CustomOptions]):
    """The queries of a postgres_exporter queries.yaml, on the target's databases."""

    name = "custom"
    options_model = CustomOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._file = QueryFile(load_queries)
        # (namespace, database) -> (when, rows or the error's text)
        self._cache: dict[tuple[str, str], tuple[float, list[Any] | str]] = {}

    async def collect(self, snapshot: Snapshot) -> None:
        queries = self._queries()
        session = self.session
        async with session.lock:
            version = _semver((await session.connected_server()).version_num)
        queries = tuple(q for q in queries if q.runonserver.matches(version))
        own, databases = await discover(session, self.options)
        databases = databases[: self.options.max_databases]
        out = _Families()
        success = gauge("dbwatch_pg_custom_query_success", "Whether the custom query ran (1) or failed (0).",
                        ("query", "datname"))
        now = time.monotonic()
        # master queries run on the target's own database whatever the include and exclude lists say
        visits = databases if own in databases or not any(q.master for q in queries) else [own, *databases]
        for database in visits:
            wanted = [q for q in queries if (q.master and database == own) or (not q.master and database in databases)]
            due = [q for q in wanted if self._stale(q, database, now)]
            try:
                if due:
                    async with per_database(session, own, database) as db:
                        for query in due:
                            self._cache[(query.namespace, database)] = (now, await _run(db, query))
            except CollectorError as exc:
                if database == own:
                    raise
                snapshot.notes.append(describe_failure(database, exc))
                continue
            for query in wanted:
                cached = self._cache.get((query.namespace, database))
                ok = cached is not None and not isinstance(cached[1], str)
                success.add((query.namespace, database), int(ok))
                if cached is None:
                    continue
                if isinstance(cached[1], str):
                    snapshot.notes.append(f"custom query {query.namespace} on {database}: {cached[1]}")
                    continue
                out.add(query, cached[1], database if len(databases) > 1 and not query.master else None)
        families, shadowed = not_built_in(self.target, self.name, out.families())
        if shadowed:
            snapshot.notes.append(f"custom queries: {', '.join(shadowed)} left out: dbwatch's own collectors of this "
                                  "target export these names (disable them to export the file's instead)")
        snapshot.families.extend([*families, success])
        snapshot.keep_history = False  # the user's series, as many as the queries return; no rule reads them

    def _queries(self) -> tuple[CustomQuery, ...]:
        queries, changed = self._file.read(self.options.queries_file)
        if changed:
            self._cache.clear()
        return queries or ()

    def _stale(self, query: CustomQuery, database: str, now: float) -> bool:
        cached = self._cache.get((query.namespace, database))
        return cached is None or now - cached[0] >= query.cache_seconds


async def _run(db: PostgresSession, query: CustomQuery) -> list[Any] | str:
    """The rows, or the error's text: one query failing does not fail the others (a lost connection is
    reopened by the next query's ``run``)."""
    try:
        return await db.run(query.query)
    except CollectorError as exc:
        return str(exc)


def _semver(version_num: int) -> tuple[int, int, int]:
    if version_num >= 100000:
        return version_num // 10000, version_num % 10000, 0
    return version_num // 10000, version_num // 100 % 100, version_num % 100


class _Families:
    def __init__(self) -> None:
        self._by_name: dict[str, MetricFamily] = {}

    def _family(self, name: str, kind: MetricType, help: str, labels: Sequence[str]) -> MetricFamily:
        family = self._by_name.get(name)
        if family is None:
            family = self._by_name[name] = MetricFamily(name, kind, help, tuple(labels))
        return family

    def add(self, query: CustomQuery, rows: list[Any], datname: str | None) -> None:
        ns = query.namespace
        label_columns = [c.name for c in query.columns if c.usage == "LABEL"]
        own_datname = datname is not None and "datname" not in label_columns
        labels = [*label_columns, "datname"] if own_datname else label_columns
        listed = {c.name: c for c in query.columns}
        histograms = {f"{c.name}{suffix}" for c in query.columns if c.usage == "HISTOGRAM"
                      for suffix in ("_bucket", "_sum", "_count")}
        for row in rows:
            key = tuple("" if row[c] is None else str(row[c]) for c in label_columns)
            if len(labels) > len(label_columns):
                key = (*key, datname or "")
            for column_name, raw in row.items():
                column = listed.get(column_name)
                if column is None:
                    if column_name in histograms:
                        continue
                    value = sample_value(raw)
                    if value is not None:
                        self._family(f"{ns}_{column_name}", MetricType.UNTYPED, f"Unknown metric from {ns}",
                                     labels).samples.append((key, value))
                    continue
                self._column(ns, column, raw, row, labels, key)

    def _column(self, ns: str, column: Column, raw: Any, row: Any, labels: Sequence[str],
                key: tuple[str, ...]) -> None:
        name, help = f"{ns}_{column.name}", column.description or f"{ns}.{column.name}"
        if column.usage in ("COUNTER", "GAUGE"):
            value = sample_value(raw)
            if value is not None:
                kind = MetricType.COUNTER if column.usage == "COUNTER" else MetricType.GAUGE
                self._family(name, kind, help, labels).samples.append((key, value))
        elif column.usage == "MAPPEDMETRIC":
            mapped = column.mapping.get("" if raw is None else str(raw))
            if mapped is not None:
                self._family(name, MetricType.GAUGE, help, labels).samples.append((key, mapped))
        elif column.usage == "DURATION":
            ms = _milliseconds(raw)
            if ms is not None:
                self._family(f"{name}_milliseconds", MetricType.GAUGE, help, labels).samples.append((key, ms))
        elif column.usage == "HISTOGRAM":
            self._histogram(name, help, row, column.name, labels, key)

    def _histogram(self, name: str, help: str, row: Any, column: str, labels: Sequence[str],
                   key: tuple[str, ...]) -> None:
        bounds, counts = row[column] or [], row.get(f"{column}_bucket") or []
        bucket = self._family(f"{name}_bucket", MetricType.COUNTER, help, (*labels, "le"))
        for bound, count in zip(bounds, counts):
            bucket.samples.append(((*key, _le(float(bound))), float(count)))
        total = sample_value(row.get(f"{column}_count"))
        bucket.samples.append(((*key, "+Inf"), total if total is not None else float(sum(counts))))
        for suffix in ("_sum", "_count"):
            value = sample_value(row.get(f"{column}{suffix}"))
            if value is not None:
                self._family(f"{name}{suffix}", MetricType.COUNTER, help, labels).samples.append((key, value))

    def families(self) -> list[MetricFamily]:
        return list(self._by_name.values())


def _le(bound: float) -> str:
    return str(int(bound)) if bound.is_integer() else repr(bound)


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _milliseconds(raw: Any) -> float | None:
    """A DURATION column: a PostgreSQL interval, or Go's duration text (``1h2m3.5s``); "-1" is no value."""
    if isinstance(raw, datetime.timedelta):
        return raw.total_seconds() * 1000
    if not isinstance(raw, str) or raw.strip() in ("", "-1"):
        return None
    text = raw.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    parts = _GO_DURATION.findall(body)
    if not parts or _GO_DURATION.sub("", body):
        return None
    return sign * sum(float(n) * _GO_UNITS[u] for n, u in parts)
