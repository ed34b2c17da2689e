"""Schema changes while they run on MySQL/MariaDB: DDL with a metadata-lock queue behind it, and online schema
changes by gh-ost and pt-online-schema-change with their progress.

- ``dbwatch_migration_blocking_queries{relation}``, ``dbwatch_migration_ddl_seconds{relation}`` and
  ``dbwatch_migration_ddl_info{relation, pid, state, statement}`` (:mod:`~dbwatch.collectors.migrations_common`),
  as on PostgreSQL: a DDL statement (ALTER, CREATE/DROP INDEX, TRUNCATE, OPTIMIZE, RENAME, DROP TABLE) that
  holds or waits for the table's metadata lock, and the sessions waiting for that lock behind it. A waiting
  ALTER TABLE stops every later query on the table, the ones that only read included. The locks are read
  from ``performance_schema.metadata_locks`` when the ``wait/lock/metadata/sql/mdl`` instrument is on (exact:
  which session waits for which table); otherwise from the process list (sessions in ``Waiting for table
  metadata lock`` whose statement names the DDL's table: close, not exact).
- ``dbwatch_migration_osc_rows{tool, relation, kind}``: a gh-ost run (its ``_<table>_gho`` ghost table) or
  pt-online-schema-change run (its ``_<table>_new`` table and ``pt_osc_*`` triggers on the table): rows
  copied (``kind="copied"``, the ghost/new table's) and rows of the original (``kind="total"``), counted
  exactly below ``exact_count_below`` estimated rows, estimated above; ``dbwatch_migration_osc_progress_ratio``.
- ``dbwatch_migration_osc_heartbeat_age_seconds{tool, relation}``: the age of gh-ost's heartbeat in its
  ``_<table>_ghc`` changelog table. gh-ost writes it every heartbeat interval on the primary and throttles on
  the lag it reads back: on a replica this is the replication lag gh-ost sees; a value that keeps growing on
  the primary means the run has stalled or ended without cleaning up.
- the migration tools' version tables (:mod:`dbwatch.collectors.schema_versions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dbwatch.collectors.base import Collector
from dbwatch.collectors.migrations_common import DdlLock, blocking_families
from dbwatch.collectors.mysql import MySQLSession, QueryError
from dbwatch.collectors.schema_versions import MYSQL_DISCOVER, read_versions, version_families
from dbwatch.model import MetricFamily, Snapshot, gauge
from dbwatch.model.options import CollectorOptions, Count

__all__ = ["DDL", "MDL_INSTRUMENTED", "METADATA_LOCKS", "MySQLMigrationsCollector", "MySQLMigrationsOptions",
           "OSC_TABLES", "OSC_TRIGGERS", "PROCESSLIST", "WAITING_FOR_MDL", "ddl_table"]

_SYSTEM = "('mysql', 'performance_schema', 'information_schema', 'sys')"

MDL_INSTRUMENTED = """
SELECT @@performance_schema AS on_,
       (SELECT ENABLED FROM performance_schema.setup_instruments
        WHERE NAME = 'wait/lock/metadata/sql/mdl') AS enabled
"""

METADATA_LOCKS = f"""
SELECT m.OBJECT_SCHEMA AS db, m.OBJECT_NAME AS tbl, m.LOCK_TYPE AS lock_type, m.LOCK_STATUS AS status,
       t.PROCESSLIST_ID AS id, p.INFO AS info, p.TIME AS time
FROM performance_schema.metadata_locks m
JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID
LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.PROCESSLIST_ID
WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA NOT IN {_SYSTEM} AND t.PROCESSLIST_ID <> CONNECTION_ID()
"""

PROCESSLIST = """
SELECT ID AS id, DB AS db, INFO AS info, STATE AS state, TIME AS time
FROM information_schema.PROCESSLIST
WHERE INFO IS NOT NULL AND ID <> CONNECTION_ID()
"""

WAITING_FOR_MDL = "Waiting for table metadata lock"

OSC_TABLES = f"""
SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, TABLE_ROWS AS estimate
FROM information_schema.TABLES
WHERE TABLE_SCHEMA NOT IN {_SYSTEM} AND TABLE_TYPE = 'BASE TABLE'
"""

OSC_TRIGGERS = f"""
SELECT TRIGGER_SCHEMA AS db, EVENT_OBJECT_TABLE AS tbl
FROM information_schema.TRIGGERS
WHERE TRIGGER_SCHEMA NOT IN {_SYSTEM} AND TRIGGER_NAME LIKE 'pt\\_osc\\_%'
"""

_NAME = r"(`[^`]+`|\w+)(?:\s*\.\s*(`[^`]+`|\w+))?"
#: the DDL statements that take a table's exclusive metadata lock, and where their table is named
DDL = re.compile(
    r"^\s*(?:/\*.*?\*/\s*)*(?:"
    rf"ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}"
    rf"|CREATE\s+(?:OR\s+REPLACE\s+)?(?:ONLINE\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX\s+.+?\s+ON\s+{_NAME}"
    rf"|DROP\s+INDEX\s+.+?\s+ON\s+{_NAME}"
    rf"|(?:TRUNCATE|OPTIMIZE|RENAME)\s+TABLE\s+{_NAME}"
    rf"|DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME})",
    re.I | re.S)
#: lock types a DDL holds or asks for; plain reads and writes take SHARED_READ / SHARED_WRITE
_DDL_LOCKS = {"EXCLUSIVE", "SHARED_UPGRADABLE", "SHARED_NO_WRITE", "SHARED_NO_READ_WRITE", "INTENTION_EXCLUSIVE"}


def ddl_table(statement: str, default_db: str | None) -> tuple[str, str] | None:
    """``(schema, table)`` a DDL statement changes, or None when ``statement`` is no such DDL."""
    match = DDL.match(statement or "")
    if match is None:
        return None
    first, second = next((match.group(i), match.group(i + 1)) for i in range(1, 11, 2) if match.group(i))
    if second:
        return first.strip("`"), second.strip("`")
    return default_db or "", first.strip("`")


class MySQLMigrationsOptions(CollectorOptions):
    #: characters of a DDL statement kept in its label (dbwatch_migration_ddl_info)
    statement_length: Count = 200
    #: tables estimated below this many rows are counted exactly (COUNT(*)) for online schema change progress
    exact_count_below: Count = 100_000


class MySQLMigrationsCollector(Collector[MySQLSession, MySQLMigrationsOptions]):
    """Metadata-lock queues behind DDL, and gh-ost / pt-online-schema-change runs with their progress."""

    name = "migrations"
    options_model = MySQLMigrationsOptions

    async def collect(self, snapshot: Snapshot) -> None:
        async with self.session.lock:
            run = self.session.run
            [instrumented] = await run(MDL_INSTRUMENTED)
            if instrumented["on_"] and instrumented["enabled"] == "YES":
                blocking = _from_metadata_locks(await run(METADATA_LOCKS))
                source = "performance_schema.metadata_locks"
            else:
                blocking = _from_processlist(await run(PROCESSLIST))
                source = "information_schema.processlist"
            tables = await run(OSC_TABLES)
            triggers = await run(OSC_TRIGGERS)
            runs = await self._osc_runs(tables, triggers)
            versions, notes = await read_versions(self.session.run, MYSQL_DISCOVER, _quote)
        snapshot.families.extend(blocking_families(blocking, self.options.statement_length,
                                                   double_quoted_literals=True))
        snapshot.families.extend(_osc_families(runs))
        snapshot.families.extend(version_families(versions))
        snapshot.notes.append(f"metadata locks read from {source}")
        snapshot.notes.extend(notes)

    async def _osc_runs(self, tables: list[dict[str, Any]], triggers: list[dict[str, Any]]) -> list["_OscRun"]:
        estimates = {(row["db"], row["tbl"]): int(row["estimate"] or 0) for row in tables}
        pt_osc = {(row["db"], row["tbl"]) for row in triggers}
        runs = []
        for (db, tbl) in sorted(estimates):
            for tool, copy_suffix, log_suffix in (("gh-ost", "_gho", "_ghc"), ("pt-online-schema-change", "_new", "")):
                original = (db, f"_{tbl}{copy_suffix}")
                if original not in estimates or (tool == "pt-online-schema-change" and (db, tbl) not in pt_osc):
                    continue
                copied = await self._rows(db, original[1], estimates[original])
                total = await self._rows(db, tbl, estimates[(db, tbl)])
                heartbeat = None
                if log_suffix and (db, f"_{tbl}{log_suffix}") in estimates:
                    heartbeat = await self._heartbeat_age(db, f"_{tbl}{log_suffix}")
                runs.append(_OscRun(tool, f"{db}.{tbl}", copied, total, heartbeat))
        return runs

    async def _rows(self, db: str, tbl: str, estimate: int) -> int:
        if estimate >= self.options.exact_count_below:
            return estimate
        try:
            [row] = await self.session.run(f"SELECT COUNT(*) AS n FROM {_quote(db)}.{_quote(tbl)}")
        except QueryError:  # no SELECT on the table (a least-privilege user): the estimate will do
            return estimate
        return int(row["n"])

    async def _heartbeat_age(self, db: str, tbl: str) -> float | None:
        try:
            rows = await self.session.run(
                f"SELECT TIMESTAMPDIFF(MICROSECOND, last_update, NOW(6)) / 1e6 AS age "
                f"FROM {_quote(db)}.{_quote(tbl)} WHERE hint = 'heartbeat'")
        except QueryError:  # not readable, or not gh-ost's shape after all
            return None
        return float(rows[0]["age"]) if rows and rows[0]["age"] is not None else None


@dataclass(frozen=True, slots=True)
class _OscRun:
    tool: str
    relation: str
    copied: int
    total: int
    heartbeat_age: float | None


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _from_metadata_locks(rows: list[dict[str, Any]]) -> list[DdlLock]:
    by_table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_table.setdefault((row["db"], row["tbl"]), []).append(row)
    out = []
    for (db, tbl), locks in sorted(by_table.items()):
        ddl = {row["id"]: row for row in locks
               if row["lock_type"] in _DDL_LOCKS and ddl_table(row["info"] or "", db) is not None}
        for pid, row in sorted(ddl.items()):
            waiting = any(lock["status"] == "PENDING" for lock in locks if lock["id"] == pid)
            queued = len({lock["id"] for lock in locks if lock["status"] == "PENDING" and lock["id"] != pid})
            if queued or waiting:
                out.append(DdlLock(f"{db}.{tbl}", int(pid), waiting, row["info"] or "", float(row["time"] or 0),
                                     queued))
    return out


def _from_processlist(rows: list[dict[str, Any]]) -> list[DdlLock]:
    out = []
    for row in rows:
        table = ddl_table(row["info"], row["db"])
        if table is None:
            continue
        db, tbl = table
        named = re.compile(rf"(?<![\w`]){re.escape(tbl)}(?![\w`])|`{re.escape(tbl)}`", re.I)
        queued = sum(1 for other in rows if other["id"] != row["id"] and other["state"] == WAITING_FOR_MDL
                     and named.search(other["info"] or ""))
        waiting = row["state"] == WAITING_FOR_MDL
        if queued or waiting:
            out.append(DdlLock(f"{db}.{tbl}", int(row["id"]), waiting, row["info"], float(row["time"] or 0), queued))
    return out


def _osc_families(runs: list[_OscRun]) -> list[MetricFamily]:
    rows = gauge("dbwatch_migration_osc_rows",
                 "Rows of an online schema change run: copied into the ghost/new table, and in the original table",
                 ("tool", "relation", "kind"))
    ratio = gauge("dbwatch_migration_osc_progress_ratio",
                  "Rows copied by an online schema change run over the rows of the original table",
                  ("tool", "relation"))
    heartbeat = gauge("dbwatch_migration_osc_heartbeat_age_seconds",
                      "Age of gh-ost's heartbeat in its changelog table (on a replica: the lag gh-ost throttles on)",
                      ("tool", "relation"))
    for run in runs:
        rows.add((run.tool, run.relation, "copied"), float(run.copied))
        rows.add((run.tool, run.relation, "total"), float(run.total))
        ratio.add((run.tool, run.relation), min(1.0, run.copied / run.total) if run.total else 1.0)
        if run.heartbeat_age is not None:
            heartbeat.add((run.tool, run.relation), run.heartbeat_age)
    return [rows, ratio, heartbeat]
