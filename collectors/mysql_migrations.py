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
- gh-ost and pt-online-schema-change runs with their progress and throttling (:mod:`~dbwatch.collectors.mysql_osc`):
  ``dbwatch_migration_osc_rows``, ``_progress_ratio``, ``_stalled_seconds``, ``_heartbeat_age_seconds``,
  ``_throttled`` and ``_throttle_lag_seconds``.
- the migration tools' version tables (:mod:`dbwatch.collectors.schema_versions`).
"""

from __future__ import annotations

import re
from typing import Any

from dbwatch.collectors.base import Collector
from dbwatch.collectors.migrations_common import DdlLock, blocking_families
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_osc import OscWatcher, osc_families
from dbwatch.collectors.schema_versions import MYSQL_DISCOVER, read_versions, version_families
from dbwatch.model import Snapshot, Target
from dbwatch.model.options import CollectorOptions, Count

__all__ = ["DDL", "MDL_INSTRUMENTED", "METADATA_LOCKS", "MySQLMigrationsCollector", "MySQLMigrationsOptions",
           "PROCESSLIST", "WAITING_FOR_MDL", "ddl_table"]

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

    def __init__(self, target: Target, session: MySQLSession) -> None:
        super().__init__(target, session)
        self._osc = OscWatcher(self.options.exact_count_below)  # remembers when each copy last grew

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
            runs = await self._osc.runs(run, _quote)
            versions, notes = await read_versions(self.session.run, MYSQL_DISCOVER, _quote)
        snapshot.families.extend(blocking_families(blocking, self.options.statement_length,
                                                   double_quoted_literals=True))
        snapshot.families.extend(osc_families(runs))
        snapshot.families.extend(version_families(versions))
        snapshot.notes.append(f"metadata locks read from {source}")
        snapshot.notes.extend(notes)


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
