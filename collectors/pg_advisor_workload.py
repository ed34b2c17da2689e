"""Statement totals since pg_stat_statements' reset, for one-shot advice (``dbwatch advise``): the N+1 rule
needs calls and rows per statement, and a single collection has no interval to take a difference over.

Entries of one normalised text are summed across queryids (the driver's int2/int4 split is one statement);
the busiest by calls and by time are kept (:data:`LIMIT` each, texts cut at 2,000 characters: the daemon
keeps a day or two of advisor snapshots). ``since`` is pg_stat_statements_info's
reset time (PostgreSQL 14+), else the database statistics' age. The foreign keys between tables go along:
the evidence an N+1 parent must show.
"""

from __future__ import annotations

from typing import Any

from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.pg_scope import USER_SCHEMA, not_extension_member
from dbwatch.model.facts.workload import StatementTotal, WorkloadTotals

__all__ = ["LIMIT", "workload_totals"]

LIMIT = 200
_TOTALS = """
WITH s AS (
    SELECT min(queryid)::text AS queryid, query, sum(calls)::bigint AS calls, sum(rows)::bigint AS rows,
           sum({time}) AS total_ms, sum(shared_blks_hit + shared_blks_read)::bigint AS blocks
    FROM pg_stat_statements(true)
    WHERE queryid IS NOT NULL AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query !~* '^\\s*explain\\y'
    GROUP BY query
)
SELECT queryid, left(query, 2000) AS query, calls, rows, total_ms, blocks
FROM ((SELECT * FROM s ORDER BY calls DESC LIMIT $1) UNION (SELECT * FROM s ORDER BY total_ms DESC LIMIT $1)) AS busiest
"""
_SINCE = "SELECT extract(epoch FROM now() - stats_reset)::float8 AS since FROM pg_stat_statements_info"
_LINKS = """
SELECT lower(c.relname) AS child, lower(p.relname) AS parent
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
WHERE k.contype = 'f' LIMIT 5000
"""
_TABLES = f"""
SELECT DISTINCT lower(c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} AND {not_extension_member("c")} LIMIT 20000
"""


async def workload_totals(session: Any, database: str, extversion: tuple[int, ...], observed: float) -> WorkloadTotals:
    """The totals; raises CollectorError when pg_stat_statements cannot be read (the caller notes it)."""
    rows = await session.run(_TOTALS.format(time="total_exec_time" if extversion >= (1, 8) else "total_time"), LIMIT)
    since = observed
    if extversion >= (1, 9):
        try:
            [row] = await session.run(_SINCE)
            since = float(row["since"] or observed)
        except CollectorError:
            pass
    links = tuple((r["child"], r["parent"]) for r in await session.run(_LINKS))
    tables = tuple(r["name"] for r in await session.run(_TABLES))
    return WorkloadTotals(tuple(
        StatementTotal(queryid=str(r["queryid"]), datname=database, query=r["query"], calls=int(r["calls"]),
                       rows=int(r["rows"]), seconds=float(r["total_ms"] or 0) / 1000, blocks=int(r["blocks"] or 0))
        for r in rows), since_seconds=since, links=links, tables=tables)
