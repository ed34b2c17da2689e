"""Schema changes while they run on PostgreSQL: DDL with a lock queue behind it, the progress of the long
maintenance commands a migration runs, and the invalid indexes a failed concurrent build leaves behind.

- ``dbwatch_migration_blocking_queries{relation}``: sessions queued behind a session
  that holds or waits for a lock on ``relation`` strong enough to stop reads or writes (the modes ALTER TABLE,
  CREATE INDEX, CLUSTER, REFRESH, LOCK TABLE take). PostgreSQL queues a lock request behind a *waiting*
  conflicting request too, so an ALTER TABLE waiting for one long transaction stops every later query on the
  table: those are counted (``pg_blocking_pids`` names the sessions ahead in the queue). Only DDL with a
  queue, or waiting, is shown.
- ``dbwatch_migration_ddl_seconds{relation}``: how long that statement has been running.
- ``dbwatch_migration_ddl_info{relation, pid, state, statement}`` 1: which DDL it is; ``state`` is ``waiting``
  (the DDL has not got its lock yet) or ``holding`` (:mod:`~dbwatch.collectors.migrations_common`).
- ``dbwatch_migration_progress_ratio{pid, command, relation, phase}``: the fraction done of CREATE INDEX
  [CONCURRENTLY], REINDEX, VACUUM, CLUSTER and VACUUM FULL (from ``pg_stat_progress_*``; NaN in a phase
  with no measure, e.g. ``waiting for writers before build``). The raw counters of create index and vacuum
  are the ``stats`` collector's; CLUSTER's raw counters are here (``dbwatch_pg_progress_cluster_*``).
- ``dbwatch_migration_invalid_index{relation, index}``: an index that is not valid and no build is running
  for: left by a failed or cancelled CREATE INDEX CONCURRENTLY, it costs every write and serves no read.
- the migration tools' version tables (:mod:`dbwatch.collectors.schema_versions`).

Statements in labels have their string literals replaced by ``'?'`` and are cut to ``statement_length``.
"""

from __future__ import annotations

import math
from typing import Any

from dbwatch.collectors.base import Collector
from dbwatch.collectors.migrations_common import DdlLock, blocking_families
from dbwatch.collectors.pg_batch import fetch_batch
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.schema_versions import PG_DISCOVER, read_versions, version_families
from dbwatch.model import MetricFamily, Snapshot, gauge
from dbwatch.model.options import CollectorOptions, Count

__all__ = ["BLOCKING_DDL", "CLUSTER_PROGRESS", "INVALID_INDEXES", "PgMigrationsCollector", "PgMigrationsOptions",
           "PROGRESS_12", "STRONG_MODES"]

#: the lock modes that stop writes (ShareLock: CREATE INDEX) or reads too; weaker ones queue nobody's DML
STRONG_MODES = ("AccessExclusiveLock", "ExclusiveLock", "ShareRowExclusiveLock", "ShareLock")

# Lock requests on a relation of this database, by their holder or waiter; for each, the waiting requests on
# the same relation that name it in pg_blocking_pids (ahead of them in the queue, or holding).
BLOCKING_DDL = """
WITH here AS (SELECT oid FROM pg_database WHERE datname = current_database()),
strong AS (
    SELECT l.pid, l.relation, bool_and(l.granted) AS granted
    FROM pg_locks l
    WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM here)
      AND l.mode = ANY($1::text[]) AND l.pid <> pg_backend_pid()
    GROUP BY l.pid, l.relation
),
waiting AS (
    SELECT l.pid, l.relation, pg_blocking_pids(l.pid) AS blockers
    FROM pg_locks l
    WHERE NOT l.granted AND l.locktype = 'relation' AND l.database = (SELECT oid FROM here)
)
SELECT s.pid, s.relation::regclass::text AS relation, s.granted, coalesce(a.query, '') AS query,
       extract(epoch FROM clock_timestamp() - coalesce(a.query_start, clock_timestamp()))::float8 AS seconds,
       (SELECT count(*) FROM waiting w WHERE w.relation = s.relation AND w.pid <> s.pid
                                       AND s.pid = ANY(w.blockers))::int AS queued
FROM strong s LEFT JOIN pg_stat_activity a ON a.pid = s.pid
ORDER BY s.pid, relation
"""

# One row per running command of this database with a measure of its progress (NULL when its phase has none).
PROGRESS_12 = """
SELECT p.pid, p.command, p.phase, p.relid::regclass::text AS relation,
       CASE WHEN p.blocks_total > 0 THEN p.blocks_done::float8 / p.blocks_total
            WHEN p.tuples_total > 0 THEN p.tuples_done::float8 / p.tuples_total END AS ratio
FROM pg_stat_progress_create_index p WHERE p.datname = current_database()
UNION ALL
SELECT p.pid, 'VACUUM', p.phase, p.relid::regclass::text,
       CASE WHEN p.heap_blks_total > 0 THEN p.heap_blks_scanned::float8 / p.heap_blks_total END
FROM pg_stat_progress_vacuum p WHERE p.datname = current_database()
UNION ALL
SELECT p.pid, p.command, p.phase, p.relid::regclass::text,
       CASE WHEN p.heap_blks_total > 0 THEN p.heap_blks_scanned::float8 / p.heap_blks_total END
FROM pg_stat_progress_cluster p WHERE p.datname = current_database()
ORDER BY 1
"""

CLUSTER_PROGRESS = """
SELECT p.pid, p.command, p.phase, p.relid::regclass::text AS relation, p.heap_tuples_scanned,
       p.heap_tuples_written, p.heap_blks_total, p.heap_blks_scanned, p.index_rebuild_count
FROM pg_stat_progress_cluster p WHERE p.datname = current_database()
"""

# An index being built concurrently is invalid until its build ends: those are running, not left over.
INVALID_INDEXES = """
SELECT i.indrelid::regclass::text AS relation, i.indexrelid::regclass::text AS index
FROM pg_index i
WHERE NOT i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                  WHERE p.index_relid = i.indexrelid OR (p.relid = i.indrelid AND p.index_relid = 0))
ORDER BY 1, 2
"""

_CLUSTER_COLUMNS = ("heap_tuples_scanned", "heap_tuples_written", "heap_blks_total", "heap_blks_scanned",
                    "index_rebuild_count")


class PgMigrationsOptions(CollectorOptions):
    #: characters of a DDL statement kept in its label (dbwatch_migration_ddl_info)
    statement_length: Count = 200


class PgMigrationsCollector(Collector[PostgresSession, PgMigrationsOptions]):
    """DDL lock queues, progress of index builds, VACUUM and CLUSTER, invalid indexes (the target's database)."""

    name = "migrations"
    options_model = PgMigrationsOptions

    async def collect(self, snapshot: Snapshot) -> None:
        async with self.session.lock:
            version = (await self.session.connected_server()).version_num
            queries = {"locks": BLOCKING_DDL, **({"progress": PROGRESS_12, "cluster": CLUSTER_PROGRESS}
                                                 if version >= 120000 else {}),
                       "invalid": INVALID_INDEXES, "tables": PG_DISCOVER}
            rows = await fetch_batch(self.session, queries, list(STRONG_MODES))  # one round trip
            locks, progress, cluster = rows["locks"], rows.get("progress", []), rows.get("cluster", [])
            invalid = rows["invalid"]
            versions, notes = await read_versions(self.session.run, rows["tables"], _quote)
        snapshot.families.extend(self._blocking(locks))
        snapshot.families.extend(_progress(progress, cluster))
        family = gauge("dbwatch_migration_invalid_index",
                       "An invalid index no build is running for (left by a failed CREATE INDEX CONCURRENTLY)",
                       ("relation", "index"))
        for row in invalid:
            family.add((row["relation"], row["index"]), 1.0)
        snapshot.families.append(family)
        snapshot.families.extend(version_families(versions))
        snapshot.notes.extend(notes)

    def _blocking(self, rows: list[Any]) -> list[MetricFamily]:
        locks = [DdlLock(row["relation"], int(row["pid"]), not row["granted"], row["query"], float(row["seconds"]),
                         int(row["queued"]))
                 for row in rows if not row["granted"] or row["queued"]]
        return blocking_families(locks, self.options.statement_length)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _progress(rows: list[Any], cluster: list[Any]) -> list[MetricFamily]:
    ratio = gauge("dbwatch_migration_progress_ratio",
                  "Fraction done of a running CREATE INDEX, REINDEX, VACUUM, CLUSTER or VACUUM FULL (NaN in a phase "
                  "with no measure)", ("pid", "command", "relation", "phase"))
    for row in rows:
        value = math.nan if row["ratio"] is None else float(row["ratio"])
        ratio.add((str(row["pid"]), row["command"], row["relation"] or "", row["phase"]), value)
    families = [ratio]
    for column in _CLUSTER_COLUMNS:
        family = gauge(f"dbwatch_pg_progress_cluster_{column}", f"pg_stat_progress_cluster.{column}",
                       ("pid", "command", "relation", "phase"))
        for row in cluster:
            family.add((str(row["pid"]), row["command"], row["relation"] or "", row["phase"]), float(row[column]))
        families.append(family)
    return families
