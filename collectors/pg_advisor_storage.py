"""Storage hygiene for the PostgreSQL advisor: table and b-tree index bloat estimates, BRIN and
partitioning candidates. Facts for rules/pg_storage.py.

Bloat is *estimated* from the catalog, in the manner of the well-known ioguide/pgexperts queries: the
size a relation would have if packed (rows from ``reltuples``, the row width from pg_stats' ``avg_width``
and ``null_frac``, tuple and page overheads, the fill factor) against the pages it has (``relpages``).
Cheap (catalog reads only) but approximate: it ignores per-column alignment padding (tables look a little
more bloated than they are) and b-tree deduplication (indexes on repeated values look less bloated).
Relations with columns pg_stats does not describe (never analyzed, or not readable by the role) are
skipped; pgstattuple would be exact but reads the whole relation, so it is never used.

BRIN and partitioning candidates start from the range predicates (``<``, ``>``, ``BETWEEN``) of the
statements the advisor already parsed (pg_stat_statements, pglast): a BRIN index where a large table is
append-mostly and physically ordered by the column (``|pg_stats.correlation|`` high), a partitioning
hint where a very large, unpartitioned table is filtered by a date/timestamp range.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Mapping, Sequence

from dbwatch.collectors import pg_advisor_sql as advisor_sql
from dbwatch.collectors.pg_advisor_hygiene import index_name
from dbwatch.collectors.pg_scope import USER_SCHEMA, not_extension_member
from dbwatch.model.options import CollectorOptions, Count, Number
from dbwatch.model.facts.pg_storage import (
    BrinCandidate, BrinCandidates, IndexBloat, IndexBloats, PartitionCandidate, PartitionCandidates, RangeStatement,
    StorageSettings, TableBloat, TableBloats,
)

__all__ = ["StorageOptions", "estimate_index_pages", "estimate_table_pages", "storage_facts"]

MIB, GIB = 1024**2, 1024**3


class StorageOptions(CollectorOptions):
    """The PostgreSQL advisor's storage options (bloat, BRIN and partitioning)."""

    bloat_min_size_bytes: Count = 10 * MIB  # relations smaller than this are never estimated (nor reported)
    bloat_min_ratio: Number = 0.3  # report when at least this share of the relation is estimated wasted
    brin_min_size_bytes: Count = GIB
    brin_min_correlation: Number = 0.9  # |pg_stats.correlation| of the filtered column
    brin_max_update_delete_ratio: Number = 0.05  # (n_tup_upd + n_tup_del) / n_tup_ins: "append-mostly"
    partition_min_size_bytes: Count = 100 * GIB

MAXALIGN = 8
PAGE_HEADER = 24
ITEM_POINTER = 4
HEAP_TUPLE_HEADER = 23
INDEX_TUPLE_HEADER = 8
INDEX_NULL_BITMAP = 4  # IndexAttributeBitMapData: INDEX_MAX_KEYS / 8
BTREE_SPECIAL = 16  # BTPageOpaqueData
BTREE_FILLFACTOR = 90
TIME_TYPES = ("timestamp without time zone", "timestamp with time zone", "date")
MAX_ROWS = 500


def _align(n: float, to: int = MAXALIGN) -> int:
    return int(math.ceil(n / to) * to)


def estimate_table_pages(rows: float, columns: int, data_bytes: float, nullable: bool, fillfactor: int,
                         block_size: int) -> int:
    """Heap pages the rows need when packed: header (+ null bitmap) and data, each MAXALIGNed, a line
    pointer each, pages filled to the fill factor."""
    header = _align(HEAP_TUPLE_HEADER + (math.ceil(columns / 8) if nullable else 0))
    tuple_bytes = header + _align(data_bytes) + ITEM_POINTER
    per_page = max(1, int((block_size - PAGE_HEADER) * fillfactor / 100 // tuple_bytes))
    return math.ceil(max(rows, 0) / per_page)


def estimate_index_pages(rows: float, data_bytes: float, nullable: bool, fillfactor: int, block_size: int) -> int:
    """B-tree leaf pages the entries need when packed, plus the metapage (inner pages are ignored)."""
    tuple_bytes = _align(INDEX_TUPLE_HEADER + (INDEX_NULL_BITMAP if nullable else 0) + data_bytes) + ITEM_POINTER
    per_page = max(1, int((block_size - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100 // tuple_bytes))
    return math.ceil(max(rows, 0) / per_page) + 1


def _brin_bytes(pages: int, width: float, block_size: int) -> int:
    ranges = math.ceil(pages / 128)  # pages_per_range default
    per_page = max(1, (block_size - PAGE_HEADER) // (_align(INDEX_TUPLE_HEADER + 2 * width) + ITEM_POINTER))
    return (2 + math.ceil(ranges / per_page) + math.ceil(ranges / 1360)) * block_size


# Inputs of the estimates; the arithmetic is in Python (estimate_*_pages). ``with_stats`` < ``columns``
# means pg_stats does not describe every column, and the estimate would be meaningless.
TABLE_BLOAT = f"""
WITH rel AS (
    SELECT c.oid, n.nspname AS schema, c.relname AS name,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
           c.reltuples::float8 AS reltuples, c.relpages::bigint AS pages,
           coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) AS o
                     WHERE o LIKE 'fillfactor=%'), 100) AS fillfactor,
           (SELECT count(*) FROM pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm') AND c.reltuples >= 0
      AND c.relpages::bigint * current_setting('block_size')::bigint >= $1
      AND {USER_SCHEMA} AND {not_extension_member("c")}
)
SELECT r.oid, r.schema, r.name, r.qualified, r.reltuples, r.pages, r.fillfactor, r.columns,
       count(s.attname) AS with_stats, coalesce(sum((1 - s.null_frac) * s.avg_width), 0)::float8 AS data_bytes,
       coalesce(bool_or(s.null_frac > 0), false) AS nullable, current_setting('block_size')::int AS block_size
FROM rel r
LEFT JOIN pg_stats s ON s.schemaname = r.schema AND s.tablename = r.name AND NOT s.inherited
GROUP BY r.oid, r.schema, r.name, r.qualified, r.reltuples, r.pages, r.fillfactor, r.columns
ORDER BY r.pages DESC
LIMIT {MAX_ROWS}
"""

# Valid b-tree indexes on plain columns (an expression's width is not in the table's pg_stats).
INDEX_BLOAT = f"""
SELECT i.indexrelid AS oid, n.nspname AS schema, t.relname AS table, c.relname AS name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       pg_get_indexdef(i.indexrelid) AS definition,
       c.reltuples::float8 AS reltuples, c.relpages::bigint AS pages,
       coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) AS o
                 WHERE o LIKE 'fillfactor=%'), {BTREE_FILLFACTOR}) AS fillfactor,
       i.indnatts AS columns, count(s.attname) AS with_stats,
       coalesce(sum((1 - s.null_frac) * s.avg_width), 0)::float8 AS data_bytes,
       coalesce(bool_or(s.null_frac > 0), false) AS nullable, current_setting('block_size')::int AS block_size
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
                    AND NOT s.inherited
WHERE am.amname = 'btree' AND i.indisvalid AND i.indexprs IS NULL AND c.reltuples >= 0
  AND c.relpages::bigint * current_setting('block_size')::bigint >= $1
  AND {USER_SCHEMA} AND {not_extension_member("t")}
GROUP BY i.indexrelid, n.nspname, t.relname, c.relname, c.reltuples, c.relpages, c.reloptions, i.indnatts
ORDER BY c.relpages DESC
LIMIT {MAX_ROWS}
"""

TABLES = """
SELECT c.oid, n.nspname AS schema, c.relname AS name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       c.relkind::text AS kind, c.relispartition AS is_partition, pg_table_size(c.oid) AS size_bytes,
       greatest(c.reltuples, 0)::bigint AS rows, c.relpages::bigint AS pages,
       coalesce(s.n_tup_ins, 0) AS inserts, coalesce(s.n_tup_upd + s.n_tup_del, 0) AS updates_deletes,
       current_setting('block_size')::int AS block_size
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.oid = ANY($1::oid[])
"""

COLUMNS = """
SELECT a.attrelid AS oid, a.attname AS name, quote_ident(a.attname) AS quoted,
       format_type(a.atttypid, NULL) AS type, s.correlation::float8 AS correlation,
       s.avg_width, s.null_frac::float8 AS null_frac
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
                    AND NOT s.inherited
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
"""

# Valid indexes by their leading column (``indkey[0]`` is 0 for an expression: no attribute matches).
LEADING = """
SELECT i.indrelid AS oid, a.attname AS column, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       am.amname AS method, pg_relation_size(i.indexrelid) AS size_bytes
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = ANY($1::oid[]) AND i.indisvalid AND i.indexprs IS NULL
"""


async def storage_facts(session: Any, statements: Sequence[Any], o: StorageOptions) -> tuple[object, ...]:
    """All storage facts, from the session (``run(query, *args)``) and the advisor's parsed statements
    (objects with ``queryid``, ``text``, ``calls``, ``share`` and ``parsed``)."""
    skipped = [0]
    tables = [f for r in await session.run(TABLE_BLOAT, o.bloat_min_size_bytes)
              if (f := _table_bloat(r, skipped)) is not None]
    indexes = [i for r in await session.run(INDEX_BLOAT, o.bloat_min_size_bytes)
               if (i := _index_bloat(r, skipped)) is not None]
    brin, partition = await _range_candidates(session, statements, o)
    return (
        StorageSettings(
            bloat_min_size_bytes=o.bloat_min_size_bytes, bloat_min_ratio=o.bloat_min_ratio,
            brin_min_size_bytes=o.brin_min_size_bytes, brin_min_correlation=o.brin_min_correlation,
            partition_min_size_bytes=o.partition_min_size_bytes, skipped_without_stats=skipped[0]),
        TableBloats(tuple(tables)), IndexBloats(tuple(indexes)), BrinCandidates(tuple(brin)),
        PartitionCandidates(tuple(partition)),
    )


def _wasted(pages: int, expected: int, block_size: int) -> tuple[int, int, int, float]:
    size, packed = pages * block_size, min(pages, expected) * block_size
    wasted = size - packed
    return size, packed, wasted, wasted / size if size else 0.0


def _table_bloat(r: Mapping[str, Any], skipped: list[int]) -> TableBloat | None:
    if r["with_stats"] < r["columns"]:
        skipped[0] += 1
        return None
    expected = estimate_table_pages(r["reltuples"], r["columns"], r["data_bytes"], r["nullable"], r["fillfactor"],
                                    r["block_size"])
    size, packed, wasted, ratio = _wasted(r["pages"], expected, r["block_size"])
    return TableBloat(schema=r["schema"], table=r["name"], size_bytes=size, expected_bytes=packed, wasted_bytes=wasted,
                      ratio=ratio, rows=int(r["reltuples"]), fillfactor=r["fillfactor"],
                      sql=f"VACUUM FULL {r['qualified']};  -- or, without the exclusive lock: "
                          f"pg_repack --table={r['qualified']}")


def _index_bloat(r: Mapping[str, Any], skipped: list[int]) -> IndexBloat | None:
    if r["with_stats"] < r["columns"]:
        skipped[0] += 1
        return None
    expected = estimate_index_pages(r["reltuples"], r["data_bytes"], r["nullable"], r["fillfactor"], r["block_size"])
    size, packed, wasted, ratio = _wasted(r["pages"], expected, r["block_size"])
    return IndexBloat(schema=r["schema"], table=r["table"], index=r["name"], definition=r["definition"],
                      size_bytes=size, expected_bytes=packed, wasted_bytes=wasted, ratio=ratio,
                      rows=int(r["reltuples"]), fillfactor=r["fillfactor"],
                      sql=f"REINDEX INDEX CONCURRENTLY {r['qualified']};")


def _reference(ref: tuple[str | None, str]) -> str:
    schema, name = ref
    quoted = '"' + name.replace('"', '""') + '"'
    return '"' + schema.replace('"', '""') + '".' + quoted if schema else quoted


def _statement(s: Any) -> RangeStatement:
    folded = " ".join(s.text.split())
    return RangeStatement(queryid=s.queryid, query=folded[:299] + "…" if len(folded) > 300 else folded,
                          calls=s.calls, time_share=s.share)


async def _range_candidates(session: Any, statements: Sequence[Any], o: StorageOptions
                            ) -> tuple[list[BrinCandidate], list[PartitionCandidate]]:
    refs = sorted({_reference(ref) for s in statements for ref, use in s.parsed.tables.items() if use.range})
    if not refs:
        return [], []
    oids = {r["name"]: r["oid"] for r in await session.run(advisor_sql.RESOLVE, refs) if r["oid"] is not None}
    ranged: dict[tuple[int, str], list[Any]] = {}  # (table oid, column) -> statements filtering it by range
    for s in statements:
        for ref, use in s.parsed.tables.items():
            oid = oids.get(_reference(ref))
            if oid is None:
                continue
            for column in use.range:
                ranged.setdefault((oid, column), []).append(s)
    wanted = sorted({oid for oid, _ in ranged})
    tables = {r["oid"]: r for r in await session.run(TABLES, wanted)}
    # Plain tables only (a leaf partition may want BRIN; a partitioned parent has no storage of its own).
    wanted = [oid for oid in wanted if oid in tables and tables[oid]["kind"] == "r"
              and tables[oid]["size_bytes"] >= min(o.brin_min_size_bytes, o.partition_min_size_bytes)]
    if not wanted:
        return [], []
    columns = {(r["oid"], r["name"]): r for r in await session.run(COLUMNS, wanted)}
    leading: dict[tuple[int, str], list[Any]] = {}
    for r in await session.run(LEADING, wanted):
        leading.setdefault((r["oid"], r["column"]), []).append(r)
    brin, partition = [], []
    for (oid, name), users in sorted(ranged.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        table, column = tables.get(oid), columns.get((oid, name))
        if oid not in wanted or table is None or column is None:
            continue
        used = tuple(_statement(s) for s in sorted(users, key=lambda s: -s.share))
        if (candidate := _brin(table, column, leading.get((oid, name), []), used, o)) is not None:
            brin.append(candidate)
        if (table["size_bytes"] >= o.partition_min_size_bytes and column["type"] in TIME_TYPES
                and not table["is_partition"]):
            partition.append(PartitionCandidate(
                schema=table["schema"], table=table["name"], column=name, column_type=column["type"],
                size_bytes=table["size_bytes"], rows=table["rows"], statements=used,
                sql=partition_sketch(table["qualified"], table["name"], column["quoted"])))
    return brin, partition


def _brin(table: Mapping[str, Any], column: Mapping[str, Any], leading: list[Any], used: tuple[RangeStatement, ...],
          o: StorageOptions) -> BrinCandidate | None:
    correlation = column["correlation"]
    inserts, changed = int(table["inserts"]), int(table["updates_deletes"])
    if (table["size_bytes"] < o.brin_min_size_bytes or correlation is None
            or abs(correlation) < o.brin_min_correlation or inserts <= 0
            or changed > o.brin_max_update_delete_ratio * inserts
            or any(i["method"] == "brin" for i in leading)):
        return None
    btree = max((i for i in leading if i["method"] == "btree"), key=lambda i: i["size_bytes"], default=None)
    width = float(column["avg_width"] or 8)
    null_frac = float(column["null_frac"] or 0.0)
    if btree is not None:
        btree_size = int(btree["size_bytes"])
    else:
        btree_size = estimate_index_pages(table["rows"] * (1 - null_frac), width, null_frac > 0, BTREE_FILLFACTOR,
                                          table["block_size"]) * table["block_size"]
    name = index_name(table["name"], [column["name"], "brin"])
    return BrinCandidate(
        schema=table["schema"], table=table["name"], column=column["name"], correlation=float(correlation),
        table_size_bytes=int(table["size_bytes"]), rows=int(table["rows"]), inserts=inserts, updates_deletes=changed,
        btree_index=btree["qualified"] if btree is not None else None, btree_size_bytes=btree_size,
        brin_size_bytes=_brin_bytes(int(table["pages"]), width, table["block_size"]), statements=used,
        sql=f"CREATE INDEX CONCURRENTLY {name} ON {table['qualified']} USING brin ({column['quoted']});")


def partition_sketch(qualified: str, name: str, column: str, today: datetime.date | None = None) -> str:
    """Monthly range partitions of a copy of the table: a starting point, to be adapted and rehearsed."""
    today = today or datetime.date.today()
    first = today.replace(day=1)
    months = [first]
    for _ in range(2):
        months.append((months[-1] + datetime.timedelta(days=32)).replace(day=1))
    new = f"{qualified}_partitioned" if not qualified.endswith('"') else qualified[:-1] + '_partitioned"'
    lines = [f"CREATE TABLE {new} (LIKE {qualified} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
             f"PARTITION BY RANGE ({column});"]
    schema = qualified.rsplit(".", 1)[0]
    for start, end in zip(months, months[1:]):
        part = index_name(name, [f"p{start:%Y_%m}"])[:-4]
        lines.append(f"CREATE TABLE {schema}.{part} PARTITION OF {new} FOR VALUES FROM ('{start:%Y-%m-%d}') "
                     f"TO ('{end:%Y-%m-%d}');")
    lines.append(f"-- one partition per month back to min({column}) (or a DEFAULT partition for the old rows); "
                 f"primary keys and unique indexes must include {column}; copy the rows in batches, "
                 f"then swap the names in one transaction")
    return "\n".join(lines)
