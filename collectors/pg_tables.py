"""Per-table and per-index statistics of every database, under postgres_exporter's names and labels.

Families (labels ``datname, schemaname, relname``, and ``indexrelname`` for indexes):
``pg_stat_user_tables_*`` (scans, tuples, vacuum/analyze times as Unix seconds and counts, table and index
sizes), ``pg_statio_user_tables_*`` (block reads and hits), ``pg_stat_user_indexes_*_total`` and
``pg_statio_user_indexes_*_total``.

Cardinality never surprises: a database with up to ``max_tables`` tables (default 1,000) exports every
one. Beyond it, the ``top_n`` largest tables and the ``top_n`` most active ones (scans plus rows written,
since the statistics were reset: cumulative, so the chosen set is stable from one collection to the next)
keep their own series; the rest are summed into one series per family with ``relname="other"`` and an
empty schema, and ``dbwatch_pg_tables_folded{datname}`` says how many tables that is. Indexes follow the
same rule with ``max_indexes``. In the ``other`` series counters and sizes are sums; the ``last_*``
times are the oldest non-zero time (so "not vacuumed for N days" still fires for the folded tables).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from dbwatch.collectors import pg_tables_sql as sql
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.pg_databases import DatabaseScope, describe_failure, discover, per_database
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import MetricFamily, Snapshot, counter, gauge
from dbwatch.model.metrics import shared_labels
from dbwatch.model.options import Count, Flag

__all__ = ["FOLDED_NAME", "TablesCollector", "TablesOptions"]

#: the relname (tables) or indexrelname (indexes) of the series that sums the folded ones
FOLDED_NAME = "other"

Row = Sequence[Any]


class TablesOptions(DatabaseScope):
    """Options of the ``tables`` collector (with the database scope: which databases to visit)."""

    max_tables: Count = 1000  # per database; beyond it, folding
    max_indexes: Count = 1000
    top_n: Count = 100  # kept by size, and as many by activity, when folding
    indexes: Flag = True  # pg_stat_user_indexes / pg_statio_user_indexes
    statio: Flag = True  # pg_statio_user_tables
    # postgres_exporter's collector says heap_blocks_read; its older queries.yaml (Debian's 0.11) said
    # heap_blks_read. Dashboards written for the latter keep working with "blks".
    statio_names: Literal["blocks", "blks"] = "blocks"


class TablesCollector(Collector[PostgresSession, TablesOptions]):
    """pg_stat_user_tables, pg_statio_user_tables, pg_stat_user_indexes, pg_statio_user_indexes."""

    name = "tables"
    options_model = TablesOptions

    #: what the last collection made, handed out again where nothing changed (see _Last)
    _last: _Last | None = None

    async def collect(self, snapshot: Snapshot) -> None:
        options, session = self.options, self.session
        own, databases = await discover(session, options)
        if len(databases) > options.max_databases:
            left = databases[options.max_databases:]
            snapshot.notes.append(f"{len(left)} database(s) beyond max_databases ({options.max_databases}) "
                                  f"not visited: {', '.join(left)}")
            databases = databases[: options.max_databases]
        out = _Families(options, self._last or _Last({}, {}))
        for database in databases:
            try:
                async with per_database(session, own, database) as db:
                    tables = await db.run(sql.TABLES)
                    indexes = await db.run(sql.INDEXES) if options.indexes else []
            except CollectorError as exc:
                if database == own:
                    raise
                snapshot.notes.append(describe_failure(database, exc))
                continue
            out.add_tables(database, tables)
            if options.indexes:
                out.add_indexes(database, indexes)
        snapshot.families.extend(out.families())
        snapshot.keep_history = False  # tens of thousands of samples; no rule reads them over time
        self._last = out.made


def _table_name(view: str, column: str, statio_names: str) -> str:
    if view == "statio" and statio_names == "blocks":
        column = column.replace("_blks_", "_blocks_")
    return f"pg_{view}_user_tables_{column}"


class _Families:
    """The families of one collection, filled database by database with pre-shaped sample tuples."""

    def __init__(self, options: TablesOptions, previous: _Last) -> None:
        self.options = options
        self.previous = previous
        self.made = _Last({}, {})
        # One float object per distinct value of the collection (most per-table counters are 0 or alike):
        # 60,000 samples would otherwise each hold a float of their own.
        self.values: dict[float, float] = {}
        columns = [c for c in sql.TABLE_COLUMNS if options.statio or c[0] == "stat"]
        labels = ("datname", "schemaname", "relname")
        self.kinds = [kind for _, _, kind, _ in columns]
        self.tables = [(counter if kind == "c" else gauge)(_table_name(view, column, options.statio_names), help,
                                                            labels)
                       for view, column, kind, help in columns]
        index_labels = ("datname", "schemaname", "relname", "indexrelname")
        self.indexes = [counter(name, help, index_labels) for name, help in sql.INDEX_COLUMNS]
        self.tables_folded = gauge("dbwatch_pg_tables_folded",
                                   'Tables beyond max_tables whose statistics are summed into relname="other".',
                                   ("datname",))
        self.indexes_folded = gauge("dbwatch_pg_indexes_folded",
                                    'Indexes beyond max_indexes summed into indexrelname="other".', ("datname",))

    def add_tables(self, datname: str, rows: Sequence[Row]) -> None:
        # Columns 0-1 are labels; 2.. values; activity = scans + rows written; size = indexes + table.
        kept, folded = _fold(rows, self.options.max_tables, self.options.top_n,
                             size=lambda r: r[21] + r[22], activity=lambda r: r[2] + r[4] + r[6] + r[7] + r[8])
        families = self.tables
        self._extend(families, datname, self._intern([(datname, row[0], row[1]) for row in kept]), kept, 2)
        if folded:
            other = (datname, "", FOLDED_NAME)
            for i, (family, kind) in enumerate(zip(families, self.kinds), start=2):
                family.samples.append((other, _combine(kind, [row[i] for row in folded])))
        self.tables_folded.samples.append(((datname,), float(len(folded))))

    def add_indexes(self, datname: str, rows: Sequence[Row]) -> None:
        kept, folded = _fold(rows, self.options.max_indexes, self.options.top_n,
                             size=lambda r: r[8], activity=lambda r: r[3])
        families = self.indexes
        self._extend(families, datname, self._intern([(datname, row[0], row[1], row[2]) for row in kept]), kept, 3)
        if folded:
            other = (datname, "", "", FOLDED_NAME)
            for i, family in enumerate(families, start=3):
                family.samples.append((other, sum(row[i] for row in folded)))
        self.indexes_folded.samples.append(((datname,), float(len(folded))))

    def _intern(self, labels: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
        previous, seen = self.previous.labels, self.made.labels
        out = [previous.get(t) or shared_labels(t) for t in labels]
        seen.update(zip(out, out))
        return out

    def _extend(self, families: Sequence[MetricFamily], datname: str, labels: list[tuple[str, ...]],
                rows: Sequence[Row], first: int) -> None:
        """Append each row's values from column ``first`` on to the families in column order: one pass per
        column over the transposed rows, so 60,000 samples cost a few C-level loops rather than a Python one
        each. Where the tables are the last collection's (in the same order), a column's samples are that
        collection's again, new only for the values that changed; new values share one float per value."""
        columns = list(zip(*rows))[first:]
        values, previous, made = self.values, self.previous.samples, self.made.samples
        for family, column in zip(families, columns):
            key = (datname, family.name)
            samples = previous.get(key)
            if samples is None or list(map(_first, samples)) != labels:
                samples = list(zip(labels, map(values.setdefault, column, column)))
            elif tuple(map(_second, samples)) != column:  # the same tables, some values changed: only theirs
                samples = [old if old[1] == v else (old[0], values.setdefault(v, v))
                           for old, v in zip(samples, column)]
            made[key] = samples
            family.samples.extend(samples)

    def families(self) -> list[MetricFamily]:
        indexes = [*self.indexes, self.indexes_folded] if self.options.indexes else []
        return [*self.tables, self.tables_folded, *indexes]


@dataclass(slots=True)
class _Last:
    """What one collection made: each table's label tuple (handed out again for the same table, so that the
    exposition sees an unchanged set of series by identity and a table's strings are not held twice), and
    the samples of each (database, family)."""

    labels: dict[tuple[str, ...], tuple[str, ...]]
    samples: dict[tuple[str, str], list[tuple[tuple[str, ...], float]]]


_first, _second = itemgetter(0), itemgetter(1)


def _fold(rows: Sequence[Row], limit: int, top_n: int, size: Callable[[Row], float],
          activity: Callable[[Row], float]) -> tuple[Sequence[Row], list[Row]]:
    """All rows up to ``limit``; beyond it the top ``top_n`` by size and by activity, and the rest.
    Rows are put in name order first, so that ties go the same way in every collection."""
    if len(rows) <= limit:
        return rows, []
    rows = sorted(rows, key=lambda r: tuple(r)[:3])
    positions = range(len(rows))
    keep = set(heapq.nlargest(top_n, positions, key=lambda i: size(rows[i])))
    keep.update(heapq.nlargest(top_n, positions, key=lambda i: activity(rows[i])))
    return [rows[i] for i in sorted(keep)], [rows[i] for i in positions if i not in keep]


def _combine(kind: str, values: list[float]) -> float:
    if kind == "t":  # a time: the oldest one that happened (0 = never, as for a single table)
        return min((v for v in values if v > 0), default=0.0)
    return float(sum(values))
