"""MySQL/MariaDB's workload profile (:class:`~dbwatch.model.facts.workload_profile.WorkloadProfile`) for the
strategy advice, where the catalog allows: statements from performance_schema's digests (busiest by calls
and by time, application schemas only), per-table row operations from table_io_waits_summary_by_table and
full-scan fetches from table_io_waits_summary_by_index_usage (INDEX_NAME NULL), sizes and self-referencing
foreign keys from information_schema, and connections from the global status (Connections over Uptime;
the average session length by Little's law: connected threads over the arrival rate).

The catalog facts the search, JSON, time-series and shard findings need (JSON columns, how a time column
follows the primary key, key cardinality and skew) come from collectors/mysql_workload_catalog.py. A note
says when performance_schema is off.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from dbwatch.collectors.base import Collector
from dbwatch.collectors.mysql import MySQLSession, QueryError
from dbwatch.collectors.mysql_workload_catalog import (
    SYSTEM_SCHEMAS as _SYSTEM, TIME_TYPES, json_checked_columns, json_indexes, primary_keys, text as _text,
    with_key_stats, with_time_order,
)
from dbwatch.collectors.pg_workload import WorkloadOptions
from dbwatch.collectors.server_process import local_server
from dbwatch.collectors.workload_common import shape
from dbwatch.model import Snapshot
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.workload_profile import Connections, TableActivity, WorkloadProfile

__all__ = ["MySQLWorkloadCollector", "MYSQLD"]

MYSQLD = ("mariadbd", "mysqld")  # the server's program, as the process table names it

_COLUMNS = """DIGEST_TEXT AS text, COUNT_STAR AS calls, SUM_ROWS_SENT + SUM_ROWS_AFFECTED AS rows_,
  SUM_TIMER_WAIT / 1e12 AS seconds, SUM_ROWS_EXAMINED AS examined"""
_WHERE = f"DIGEST_TEXT IS NOT NULL AND SCHEMA_NAME IS NOT NULL AND SCHEMA_NAME NOT IN {_SYSTEM!r}"
DIGESTS = f"""
(SELECT {_COLUMNS} FROM performance_schema.events_statements_summary_by_digest WHERE {_WHERE}
 ORDER BY COUNT_STAR DESC LIMIT %s)
UNION
(SELECT {_COLUMNS} FROM performance_schema.events_statements_summary_by_digest WHERE {_WHERE}
 ORDER BY SUM_TIMER_WAIT DESC LIMIT %s)"""
DIGESTS_SINCE = ("SELECT TIMESTAMPDIFF(SECOND, MIN(FIRST_SEEN), NOW()) AS since "
                 "FROM performance_schema.events_statements_summary_by_digest")
STATUS = """SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime', 'Connections', 'Threads_connected',
  'Threads_running', 'Com_commit', 'Com_rollback', 'Handler_write', 'Handler_update', 'Handler_delete')"""
VARIABLES = ("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('max_connections', 'read_only', 'performance_schema', "
             "'datadir')")
TABLES = f"""
SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, COALESCE(TABLE_ROWS, 0) AS rows_,
       COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS bytes_, COALESCE(ENGINE, '') AS engine,
       COALESCE(CREATE_OPTIONS, '') LIKE '%%partitioned%%' AS partitioned
FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN {_SYSTEM!r}
ORDER BY DATA_LENGTH + INDEX_LENGTH DESC LIMIT %s"""
TABLE_IO = f"""
SELECT OBJECT_SCHEMA AS s, OBJECT_NAME AS t, COUNT_FETCH AS fetches, COUNT_INSERT AS inserts,
       COUNT_UPDATE AS updates, COUNT_DELETE AS deletes
FROM performance_schema.table_io_waits_summary_by_table WHERE OBJECT_SCHEMA NOT IN {_SYSTEM!r}"""
INDEX_IO = f"""
SELECT OBJECT_SCHEMA AS s, OBJECT_NAME AS t, INDEX_NAME IS NULL AS full_scan, COUNT_FETCH AS fetches
FROM performance_schema.table_io_waits_summary_by_index_usage WHERE OBJECT_SCHEMA NOT IN {_SYSTEM!r}"""
COLUMNS = f"""
SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS type_
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN {_SYSTEM!r}
  AND (DATA_TYPE IN ('json', 'text', 'varchar', 'char', 'mediumtext', 'longtext', 'tinytext')
       OR DATA_TYPE IN {TIME_TYPES!r})"""
SELF_REFERENCES = f"""
SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE
WHERE REFERENCED_TABLE_NAME = TABLE_NAME AND REFERENCED_TABLE_SCHEMA = TABLE_SCHEMA
  AND TABLE_SCHEMA NOT IN {_SYSTEM!r}"""
FULLTEXT = f"""
SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.STATISTICS
WHERE INDEX_TYPE = 'FULLTEXT' AND TABLE_SCHEMA NOT IN {_SYSTEM!r}"""


class MySQLWorkloadCollector(Collector[MySQLSession, WorkloadOptions]):
    """The workload profile of the server's application schemas (see the module docstring)."""

    name = "workload"
    options_model = WorkloadOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            status = {_text(r[0]).lower(): float(r[1] or 0) for r in await session.run(STATUS, tuples=True)}
            started = time.time() - status.get("uptime", 0.0)  # the server's start, for server_process
            variables = {_text(r[0]).lower(): _text(r[1]) for r in await session.run(VARIABLES, tuples=True)}
            tables = await session.run(TABLES, (self.options.max_tables,))
            columns = await session.run(COLUMNS)
            selfrefs = {(_text(r["s"]), _text(r["t"])): _text(r["c"]) for r in await session.run(SELF_REFERENCES)}
            fulltext = await session.run(FULLTEXT)
            catalog = _Catalog(columns, selfrefs, fulltext, await json_checked_columns(session, server.mariadb),
                               await json_indexes(session))
            digests: list[Any] = []
            io: list[Any] = []
            index_io: list[Any] = []
            since_digests = 0.0
            available = variables.get("performance_schema", "").upper() in ("ON", "1")
            if available:
                try:
                    digests = await session.run(DIGESTS, (self.options.max_statements, self.options.max_statements))
                    [first] = await session.run(DIGESTS_SINCE)
                    since_digests = float(first["since"] or 0)
                    io = await session.run(TABLE_IO)
                    index_io = await session.run(INDEX_IO)
                except QueryError as exc:
                    available = False
                    snapshot.notes.append(f"workload profile without statements: {exc}")
            else:
                snapshot.notes.append("performance_schema is off: the workload profile has tables and connections "
                                      "but no statements; set performance_schema = ON in the server's configuration")
            activities, times = _tables(tables, io, index_io, catalog)
            known = [t.table.lower() for t in activities]
            shapes = [shape(_text(r["text"]), int(r["calls"] or 0), int(r["rows_"] or 0), float(r["seconds"] or 0),
                            int(r["examined"] or 0), known) for r in digests]
            options = self.options
            activities = await with_time_order(session, activities, times, await primary_keys(session),
                                               options.timeseries_min_inserts, options.timeseries_max_update_ratio)
            activities = await with_key_stats(session, activities, shapes, options.shard_min_table_bytes,
                                              server.mariadb)
        # mysqld/mariadbd when it runs on this machine: its CPU and data filesystem
        resources = await asyncio.to_thread(local_server, MYSQLD, started, variables.get("datadir") or None)
        if resources is not None:
            snapshot.put(resources)
        uptime = status.get("uptime", 0.0)
        connections_total = int(status.get("connections", 0))
        connected = int(status.get("threads_connected", 0))
        running = int(status.get("threads_running", 0))
        rate = connections_total / uptime if uptime > 0 else 0.0
        commits = int(status.get("com_commit", 0))
        written = status.get("handler_write", 0) + status.get("handler_update", 0) + status.get("handler_delete", 0)
        snapshot.put(WorkloadProfile(
            tuple(shapes),
            database=",".join(sorted({t.schema for t in activities})) or "(none)", since_seconds=uptime,
            statements_since_seconds=min(since_digests, uptime) if since_digests > 0 else uptime,
            tables=tuple(activities),
            connections=Connections(total=connected, active=running, idle=max(0, connected - running),
                                    idle_in_transaction=0, max_connections=int(variables.get("max_connections") or 0),
                                    sessions=connections_total, session_seconds=(connected / rate) if rate > 0 else None,
                                    commits=commits, rollbacks=int(status.get("com_rollback", 0))),
            database_bytes=sum(t.size_bytes for t in activities), growth_bytes_per_day=None,
            growth_basis="unknown: MySQL/MariaDB's row counts are estimates; sample sizes over time in the daemon",
            rows_per_transaction=written / commits if commits else None,
            read_only_replica=variables.get("read_only", "").upper() in ("ON", "1"),
            statements_available=available, thresholds=self.options.thresholds()))
        snapshot.put(Summary({"workload statements": len(digests), "workload tables": len(activities)}))


@dataclass(frozen=True)
class _Catalog:
    """The catalog rows a table's activity is built from, besides its counters."""

    columns: list[Any]
    selfrefs: dict[tuple[str, str], str]
    fulltext: list[Any]
    json_checked: dict[tuple[str, str], list[str]]  # MariaDB: LONGTEXT columns with a json_valid() check
    json_indexes: dict[tuple[str, str], list[str]]


def _tables(tables: list[Any], io: list[Any], index_io: list[Any],
            catalog: _Catalog) -> tuple[list[TableActivity], dict[tuple[str, str], list[str]]]:
    """The tables' activities, and each table's date/datetime/timestamp columns (sampled afterwards)."""
    ops = {(_text(r["s"]), _text(r["t"])): r for r in io}
    scans: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # full-scan fetches, index fetches
    for r in index_io:
        scans[(_text(r["s"]), _text(r["t"]))][0 if r["full_scan"] else 1] += int(r["fetches"] or 0)
    texts: dict[tuple[str, str], list[str]] = defaultdict(list)
    jsons: dict[tuple[str, str], list[str]] = defaultdict(list)
    times: dict[tuple[str, str], list[str]] = defaultdict(list)
    for c in catalog.columns:
        key, name, kind = (_text(c["s"]), _text(c["t"])), _text(c["c"]), _text(c["type_"]).lower()
        json = kind == "json" or name in catalog.json_checked.get(key, ())
        (jsons if json else times if kind in TIME_TYPES else texts)[key].append(name)
    searched: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in catalog.fulltext:
        searched[(_text(f["s"]), _text(f["t"]))].append(_text(f["c"]))
    out = []
    for r in tables:
        key = (_text(r["s"]), _text(r["t"]))
        o = ops.get(key)
        full, indexed = scans[key]
        out.append(TableActivity(
            schema=key[0], table=key[1], rows=int(r["rows_"] or 0), size_bytes=int(r["bytes_"] or 0),
            # no scan counts here: rows fetched by full scans and through indexes stand in for them
            seq_scans=0, seq_rows=full, idx_scans=indexed,
            inserts=int(o["inserts"] or 0) if o else 0, updates=int(o["updates"] or 0) if o else 0,
            deletes=int(o["deletes"] or 0) if o else 0, json_columns=tuple(jsons[key]),
            json_indexes=tuple(catalog.json_indexes.get(key, ())), text_columns=tuple(texts[key]),
            search_indexed=tuple(searched[key]), self_reference=catalog.selfrefs.get(key),
            partitioned=bool(r["partitioned"]), storage_engine=_text(r["engine"])))
    return out, times
