"""Digest totals since performance_schema began counting, for one-shot advice (``dbwatch advise``): the N+1
rule needs calls and rows per digest, and a single collection has no interval to take a difference over.

The busiest digests by calls and by time (:data:`LIMIT` each), of application schemas; ``since`` is the age
of the oldest digest (FIRST_SEEN), capped by the uptime. The foreign keys between tables
(information_schema.REFERENTIAL_CONSTRAINTS) go along: the evidence an N+1 parent must show.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model.facts.workload import StatementTotal, WorkloadTotals

__all__ = ["LIMIT", "workload_totals"]

LIMIT = 200
_SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")
_COLUMNS = """SCHEMA_NAME AS db, DIGEST AS digest, DIGEST_TEXT AS text, COUNT_STAR AS calls,
  SUM_ROWS_SENT + SUM_ROWS_AFFECTED AS rows_, SUM_TIMER_WAIT / 1e12 AS seconds, SUM_ROWS_EXAMINED AS examined"""
_WHERE = f"DIGEST IS NOT NULL AND (SCHEMA_NAME IS NULL OR SCHEMA_NAME NOT IN {_SYSTEM!r})"
_TOTALS = f"""
(SELECT {_COLUMNS} FROM performance_schema.events_statements_summary_by_digest WHERE {_WHERE}
 ORDER BY COUNT_STAR DESC LIMIT %s)
UNION
(SELECT {_COLUMNS} FROM performance_schema.events_statements_summary_by_digest WHERE {_WHERE}
 ORDER BY SUM_TIMER_WAIT DESC LIMIT %s)"""
_SINCE = "SELECT TIMESTAMPDIFF(SECOND, MIN(FIRST_SEEN), NOW()) AS since FROM performance_schema.events_statements_summary_by_digest"
_LINKS = """SELECT LOWER(TABLE_NAME) AS child, LOWER(REFERENCED_TABLE_NAME) AS parent
FROM information_schema.REFERENTIAL_CONSTRAINTS LIMIT 5000"""
_TABLES = f"""SELECT DISTINCT LOWER(TABLE_NAME) AS name FROM information_schema.TABLES
WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN {_SYSTEM!r} LIMIT 20000"""


async def workload_totals(session: Any, uptime: float) -> WorkloadTotals:
    """The totals; raises the session's QueryError when performance_schema cannot be read."""
    rows = await session.run(_TOTALS, (LIMIT, LIMIT))
    [since] = await session.run(_SINCE)
    links = tuple((str(r["child"]), str(r["parent"])) for r in await session.run(_LINKS))
    tables = tuple(str(r["name"]) for r in await session.run(_TABLES))
    seconds = float(since["since"] or 0) or uptime
    return WorkloadTotals(tuple(
        StatementTotal(queryid=str(r["digest"]), datname=str(r["db"] or ""), query=_text(r["text"]) or None,
                       calls=int(r["calls"] or 0), rows=int(r["rows_"] or 0), seconds=float(r["seconds"] or 0),
                       blocks=int(r["examined"] or 0))
        for r in rows), since_seconds=min(seconds, uptime) if uptime > 0 else seconds, links=links, tables=tables)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value or "")
