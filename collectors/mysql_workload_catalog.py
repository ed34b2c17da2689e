"""The catalog reads behind MySQL/MariaDB's strategy findings, beyond the counters of collectors/mysql_workload.py:

- JSON columns: ``DATA_TYPE = 'json'`` on MySQL; on MariaDB JSON is an alias of LONGTEXT with a
  ``CHECK (json_valid(col))`` constraint, read from information_schema.CHECK_CONSTRAINTS; and the indexes on
  generated columns computed from them;
- how well a time column follows the clustered primary key (MySQL has no pg_stats correlation): a bounded
  sample of primary-key lookups (:data:`TIME_SAMPLE_POINTS` evenly spaced between MIN and MAX of a one-column
  integer key, each an index dive) on at most :data:`TIME_SAMPLE_TABLES` append-only tables per collection,
  and Spearman's rank correlation of the sampled time values with the key;
- cardinality and skew of the columns hot statements filter on, for the shard key: MariaDB's
  engine-independent statistics (mysql.column_stats: rows per value, and the largest bucket of a JSON_HB
  histogram) when ANALYZE ... PERSISTENT filled them, else the CARDINALITY of an index whose first column is
  the key (InnoDB's estimate from sampled pages). Skew is unknown without a JSON_HB histogram; no GROUP BY
  ever runs over an application table to find it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from typing import Any, Iterable, Sequence

from dbwatch.collectors.mysql import MySQLSession, QueryError
from dbwatch.collectors.mysql_schema import MY_CHECKS_MARIADB, quote
from dbwatch.model.facts.workload_profile import StatementShape, TableActivity

__all__ = ["SYSTEM_SCHEMAS", "TIME_SAMPLE_TABLES", "TIME_SAMPLE_POINTS", "TIME_TYPES", "json_checked_columns",
           "json_indexes", "primary_keys", "with_time_order", "with_key_stats", "rank_correlation", "text"]

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
TIME_SAMPLE_TABLES = 5  # tables sampled per collection at most (the most inserted into first)
TIME_SAMPLE_POINTS = 20  # primary-key lookups per table
TIME_TYPES = ("date", "datetime", "timestamp")
_INTEGER = ("tinyint", "smallint", "mediumint", "int", "bigint")
_JSON_VALID = re.compile(r"json_valid\s*\(\s*`?([^`)\s]+)`?\s*\)", re.I)

GENERATED_INDEXES = f"""
SELECT c.TABLE_SCHEMA AS s, c.TABLE_NAME AS t, i.INDEX_NAME AS i, c.COLUMN_NAME AS c, c.GENERATION_EXPRESSION AS e
FROM information_schema.COLUMNS c JOIN information_schema.STATISTICS i
  ON i.TABLE_SCHEMA = c.TABLE_SCHEMA AND i.TABLE_NAME = c.TABLE_NAME AND i.COLUMN_NAME = c.COLUMN_NAME
WHERE c.GENERATION_EXPRESSION <> '' AND c.TABLE_SCHEMA NOT IN {SYSTEM_SCHEMAS!r}"""
PRIMARY_KEYS = f"""
SELECT s.TABLE_SCHEMA AS s, s.TABLE_NAME AS t, COUNT(*) AS n, MIN(s.COLUMN_NAME) AS c, MIN(c.DATA_TYPE) AS type_
FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c
  ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME
WHERE s.INDEX_NAME = 'PRIMARY' AND s.TABLE_SCHEMA NOT IN {SYSTEM_SCHEMAS!r}
GROUP BY s.TABLE_SCHEMA, s.TABLE_NAME"""
KEY_CARDINALITY = """
SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, COLUMN_NAME AS c, MAX(CARDINALITY) AS n
FROM information_schema.STATISTICS WHERE SEQ_IN_INDEX = 1 AND CARDINALITY IS NOT NULL AND COLUMN_NAME IN ({})
GROUP BY TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME"""
# MariaDB's engine-independent statistics (filled by ANALYZE TABLE ... PERSISTENT FOR ...)
COLUMN_STATS = """
SELECT db_name AS s, table_name AS t, column_name AS c, nulls_ratio AS nulls, avg_frequency AS per_value,
       hist_type AS kind, histogram AS histogram
FROM mysql.column_stats WHERE avg_frequency > 0 AND column_name IN ({})"""
BOUNDS = "SELECT MIN({pk}) AS lo, MAX({pk}) AS hi FROM {table}"
SAMPLE_ONE = "(SELECT {pk} AS k, {columns} FROM {table} WHERE {pk} >= %s ORDER BY {pk} LIMIT 1)"

Key = tuple[str, str]


def text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value or "")


async def json_checked_columns(session: MySQLSession, mariadb: bool) -> dict[Key, list[str]]:
    """MariaDB's JSON columns (LONGTEXT with a json_valid() check); MySQL's have DATA_TYPE json instead."""
    if not mariadb:
        return {}
    try:
        rows = await session.run(MY_CHECKS_MARIADB.format(where=f"NOT IN {SYSTEM_SCHEMAS!r}"))
    except QueryError:  # before MariaDB 10.2 there is no CHECK_CONSTRAINTS
        return {}
    out: dict[Key, list[str]] = defaultdict(list)
    for r in rows:
        for column in _JSON_VALID.findall(text(r["clause"])):
            out[(text(r["db"]), text(r["tbl"]))].append(column)
    return out


async def json_indexes(session: MySQLSession) -> dict[Key, list[str]]:
    """Indexes on generated columns, as ``index on column AS (expression)``: the rule looks for a JSON column's
    name in them, as it does in PostgreSQL's index definitions."""
    out: dict[Key, list[str]] = defaultdict(list)
    for r in await session.run(GENERATED_INDEXES):
        out[(text(r["s"]), text(r["t"]))].append(f"{text(r['i'])} on {text(r['c'])} AS ({text(r['e'])})")
    return out


async def primary_keys(session: MySQLSession) -> dict[Key, str]:
    """Tables whose primary key is one integer column, and that column."""
    return {(text(r["s"]), text(r["t"])): text(r["c"]) for r in await session.run(PRIMARY_KEYS)
            if int(r["n"]) == 1 and text(r["type_"]).lower() in _INTEGER}


async def with_time_order(session: MySQLSession, tables: list[TableActivity], times: dict[Key, list[str]],
                          keys: dict[Key, str], min_inserts: float, max_update_ratio: float) -> list[TableActivity]:
    """The append-only tables (as TimeSeriesLayout judges them) with the time column that best follows their
    primary key, by a sample of primary-key lookups; the others unchanged."""
    candidates = sorted((t for t in tables if not t.partitioned and times.get((t.schema, t.table))
                         and (t.schema, t.table) in keys and t.inserts >= min_inserts
                         and t.updates <= max_update_ratio * t.inserts), key=lambda t: -t.inserts)[:TIME_SAMPLE_TABLES]
    found: dict[Key, TableActivity] = {}
    for t in candidates:
        key = (t.schema, t.table)
        pk, columns = keys[key], times[key]
        table = f"{quote(t.schema)}.{quote(t.table)}"
        [bounds] = await session.run(BOUNDS.format(pk=quote(pk), table=table))
        if bounds["lo"] is None:
            continue
        lo, hi = int(bounds["lo"]), int(bounds["hi"])
        points = sorted({lo + (hi - lo) * i // (TIME_SAMPLE_POINTS - 1) for i in range(TIME_SAMPLE_POINTS)})
        one = SAMPLE_ONE.format(pk=quote(pk), table=table, columns=", ".join(quote(c) for c in columns))
        rows = {r["k"]: r for r in await session.run(" UNION ALL ".join([one] * len(points)), points)}
        ordered = [rows[k] for k in sorted(rows)]
        best: tuple[str, float, int] | None = None
        for column in columns:
            # as text: zero dates come back as strings; ISO text sorts as the times do
            values = [str(r[column]) for r in ordered if r[column] is not None]
            rho = rank_correlation(values)
            if rho is not None and (best is None or abs(rho) > abs(best[1])):
                best = (column, rho, len(values))
        if best is not None:
            found[key] = dataclasses.replace(t, time_column=best[0], time_correlation=best[1], time_sampled_by=pk,
                                             time_sampled_rows=best[2])
    return [found.get((t.schema, t.table), t) for t in tables]


async def with_key_stats(session: MySQLSession, tables: list[TableActivity], shapes: Iterable[StatementShape],
                         min_bytes: float, mariadb: bool) -> list[TableActivity]:
    """The large tables with the cardinality (and on MariaDB with a JSON_HB histogram, the skew) of the columns
    their statements filter on by equality."""
    large = {t.table.lower(): t for t in tables if t.size_bytes >= min_bytes}
    keys = sorted({s.key_column for s in shapes if s.key_column and large.keys() & set(s.tables)})
    if not large or not keys:
        return tables
    names = {(t.schema, t.table) for t in large.values()}
    marks = ", ".join(["%s"] * len(keys))
    stats: dict[Key, dict[str, tuple[str, float, float | None]]] = defaultdict(dict)
    for r in await session.run(KEY_CARDINALITY.format(marks), keys):
        if (k := (text(r["s"]), text(r["t"]))) in names:
            column = text(r["c"]).lower()
            stats[k][column] = (column, float(r["n"]), None)
    if mariadb:
        try:
            rows = await session.run(COLUMN_STATS.format(marks), keys)
        except QueryError:  # no SELECT on mysql.* for the monitoring user: the index statistics stand
            rows = []
        rows_of = {(t.schema, t.table): t.rows for t in large.values()}
        for r in rows:
            if (k := (text(r["s"]), text(r["t"]))) in names:
                column = text(r["c"]).lower()
                distinct = rows_of[k] * (1 - float(r["nulls"] or 0)) / float(r["per_value"])
                stats[k][column] = (column, distinct, _top_share(text(r["kind"]), r["histogram"]))
    return [dataclasses.replace(t, column_stats=tuple(stats[k].values())) if (k := (t.schema, t.table)) in stats
            else t for t in tables]


def rank_correlation(values: Sequence[Any]) -> float | None:
    """Spearman's rank correlation of ``values`` with their position (ties share their mean rank); None for
    fewer than five values or when they are all equal."""
    n = len(values)
    if n < 5:
        return None
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2
        i = j + 1
    mean = (n - 1) / 2
    spread = sum((r - mean) ** 2 for r in ranks)
    if spread == 0:
        return None
    covariance = sum((p - mean) * (r - mean) for p, r in enumerate(ranks))
    return float(covariance / (sum((p - mean) ** 2 for p in range(n)) * spread) ** 0.5)


def _top_share(kind: str, histogram: Any) -> float | None:
    """The most common value's share of rows, at most: the largest bucket of a JSON_HB histogram (exact when the
    bucket holds one value). The binary histograms (SINGLE/DOUBLE_PREC_HB) store positions in the column's
    range, where one outlier makes distinct values look equal: they give no skew."""
    if kind.upper() != "JSON_HB" or not histogram:
        return None
    try:
        buckets = json.loads(text(histogram))["histogram_hb"]
        return max(float(b["size"]) for b in buckets)
    except (ValueError, KeyError, TypeError):
        return None
