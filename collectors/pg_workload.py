"""PostgreSQL's workload profile (fact :class:`~dbwatch.model.facts.workload_profile.WorkloadProfile`) for the
strategy advice: the connected database's statements from pg_stat_statements (busiest by calls and by time,
summed per normalised text), its tables from pg_stat_user_tables with sizes and the catalog facts the rules
need (time columns and pg_stats' correlation, JSON columns, search and JSON indexes, self-references), and
connections from pg_stat_activity and pg_stat_database (sessions since the reset, PostgreSQL 14+).

Off in the daemon by default (catalog reads, hourly at most); ``dbwatch advise`` runs it on demand. Only
reads statistics views and catalogs, bounded by LIMITs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from typing import Any

from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.server_process import read_server
from dbwatch.collectors.workload_common import shape
from dbwatch.model import Snapshot
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.workload_profile import Connections, TableActivity, WorkloadProfile
from dbwatch.model.options import CollectorOptions, Count, Number

__all__ = ["PgWorkloadCollector", "WorkloadOptions"]

POSTMASTER = ("postgres", "postmaster")  # the server's program, as the process table names it


class WorkloadOptions(CollectorOptions):
    """Bounds of the collection, and the strategy rules' thresholds (docs/architecture-advice.md)."""

    max_statements: Count = 300  # busiest by calls, and as many by time
    max_tables: Count = 500  # largest and most active
    min_table_rows: Count = 10000  # TimeSeriesLayout, SearchIndexCandidate, DocumentModelCandidate
    cache_min_calls: Count = 1000  # CacheCandidate: point lookups of one statement since the reset
    cache_max_write_ratio: Number = 0.1  # table writes per point read
    timeseries_min_inserts: Count = 10000
    timeseries_max_update_ratio: Number = 0.01  # updates per insert
    timeseries_min_correlation: Number = 0.9
    replica_min_read_share: Number = 0.8  # of statement time
    replica_min_busy: Number = 0.5  # statement seconds per wall second (busy backends on average)
    replica_min_cpu: Number = 0.5  # the server's CPU share (when local) that raises the replica advice's confidence
    replica_idle_cpu: Number = 0.2  # ... and below which it is lowered (the reads wait on I/O or locks)
    pooler_min_sessions_per_second: Number = 1.0
    pooler_max_session_seconds: Number = 60.0
    pooler_min_idle_share: Number = 0.5  # idle connections as a share of max_connections
    shard_min_table_bytes: Count = 10 * 1024**3  # ShardKeyCandidate: tables at least this large
    shard_min_filter_share: Number = 0.8  # of the calls naming the table, those filtering on the column

    def thresholds(self) -> tuple[tuple[str, float], ...]:
        return tuple((k, float(v)) for k, v in self.model_dump().items() if k not in ("max_statements", "max_tables"))


STATE = """
SELECT current_database() AS database, pg_is_in_recovery() AS replica,
       pg_database_size(current_database()) AS bytes,
       extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time()))::float8 AS since,
       d.xact_commit, d.xact_rollback, d.tup_inserted + d.tup_updated + d.tup_deleted AS tuples_written,
       {sessions} AS sessions, {session_time} AS session_ms,
       current_setting('max_connections')::int AS max_connections,
       (SELECT count(*) FROM pg_stat_replication) AS replicas,
       (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements') AS statements,
       ARRAY(SELECT extname::text FROM pg_extension) AS extensions,
       ARRAY(SELECT name::text FROM pg_available_extensions
             WHERE name IN ('pg_trgm', 'ltree', 'timescaledb', 'btree_gin')) AS available,
       pg_backend_pid() AS pid, extract(epoch FROM pg_postmaster_start_time())::float8 AS started,
       CASE WHEN pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')
            THEN current_setting('data_directory') END AS data_directory
FROM pg_stat_database d WHERE d.datname = current_database()"""

ACTIVITY = """
SELECT count(*) AS total, count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction
FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"""

STATEMENTS = """
WITH s AS (
    SELECT query, sum(calls)::bigint AS calls, sum(rows)::bigint AS rows, sum({time})::float8 AS total_ms,
           sum(shared_blks_hit + shared_blks_read)::bigint AS blocks
    FROM pg_stat_statements(true)
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query IS NOT NULL
      AND query !~* '^\\s*explain\\y' AND query !~* 'pg_stat_statements|pg_catalog\\.|pg_stat_'
    GROUP BY query
)
(SELECT * FROM s ORDER BY calls DESC LIMIT $1) UNION (SELECT * FROM s ORDER BY total_ms DESC LIMIT $1)"""

_USER = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^(pg_toast|pg_temp|_timescaledb)'"

TABLES = f"""
SELECT c.oid, n.nspname AS schema, c.relname AS table, c.relkind = 'p' AS partitioned,
       greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint, 0) AS rows,
       pg_total_relation_size(c.oid) AS bytes,
       coalesce(s.seq_scan, 0) AS seq_scans, coalesce(s.seq_tup_read, 0) AS seq_rows,
       coalesce(s.idx_scan, 0) AS idx_scans, coalesce(s.n_tup_ins, 0) AS inserts,
       coalesce(s.n_tup_upd, 0) AS updates, coalesce(s.n_tup_del, 0) AS deletes,
       coalesce(s.n_tup_hot_upd, 0) AS hot_updates
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {_USER}
ORDER BY pg_total_relation_size(c.oid) + coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del + s.seq_scan
                                                  + s.idx_scan, 0) DESC
LIMIT $1"""

COLUMNS = """
SELECT a.attrelid AS oid, a.attname AS column, t.typname AS type, st.correlation,
       ARRAY(SELECT am.amname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_am am ON am.oid = ic.relam
             WHERE i.indrelid = a.attrelid AND i.indkey[0] = a.attnum) AS methods
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = c.relname AND st.attname = a.attname
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  AND t.typname IN ('timestamptz', 'timestamp', 'date', 'json', 'jsonb', 'text', 'varchar', 'bpchar', 'citext')"""

INDEXES = """
SELECT i.indrelid AS oid, am.amname AS method, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY($1::oid[]) AND (am.amname <> 'btree' OR i.indexprs IS NOT NULL)"""

KEY_STATS = """
SELECT n.nspname AS schema, c.relname AS table, s.attname AS column, s.n_distinct::float8 AS distinct,
       coalesce(s.most_common_freqs[1], 0)::float8 AS top
FROM pg_stats s JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
WHERE c.oid = ANY($1::oid[]) AND s.attname = ANY($2::text[])"""

SELF_REFERENCES = """
SELECT k.conrelid AS oid, a.attname AS column
FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
WHERE k.contype = 'f' AND k.conrelid = k.confrelid AND k.conrelid = ANY($1::oid[])"""


class PgWorkloadCollector(Collector[PostgresSession, WorkloadOptions]):
    """The workload profile of the connected database (see the module docstring)."""

    name = "workload"
    options_model = WorkloadOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            [probe] = await session.run("SELECT current_setting('server_version_num')::int AS v")
            new = probe["v"] >= 140000
            [state] = await session.run(STATE.format(sessions="d.sessions" if new else "NULL::bigint",
                                                     session_time="d.session_time" if new else "NULL::float8"))
            [activity] = await session.run(ACTIVITY)
            tables = await session.run(TABLES, self.options.max_tables)
            oids = [r["oid"] for r in tables]
            columns = await session.run(COLUMNS, oids)
            indexes = await session.run(INDEXES, oids)
            selfrefs = {r["oid"]: r["column"] for r in await session.run(SELF_REFERENCES, oids)}
            statements: list[Any] = []
            statements_since: float | None = None
            if state["statements"] is not None:
                old = tuple(int(p) for p in str(state["statements"]).split(".")[:2]) < (1, 8)
                try:
                    statements = await session.run(
                        STATEMENTS.format(time="total_time" if old else "total_exec_time"),
                        self.options.max_statements)
                    if not old and probe["v"] >= 140000:
                        [info] = await session.run(
                            "SELECT extract(epoch FROM now() - stats_reset)::float8 AS since FROM pg_stat_statements_info")
                        statements_since = float(info["since"] or 0.0) or None
                except CollectorError as exc:
                    snapshot.notes.append(f"workload profile without statements: {exc}")
                    state = {**state, "statements": None}
            else:
                snapshot.notes.append(
                    f"pg_stat_statements is not installed in database {state['database']}: the workload profile "
                    "has tables and connections but no statements (reads vs writes, lookups, search, JSON)")
            activities = _tables(tables, columns, indexes, selfrefs)
            known = [t.table.lower() for t in activities]
            shapes = [shape(r["query"], int(r["calls"]), int(r["rows"]), float(r["total_ms"] or 0) / 1000,
                            int(r["blocks"] or 0), known) for r in statements]
            activities = await _with_key_stats(session, activities, tables, shapes, self.options.shard_min_table_bytes)
        # the postmaster (the backend's parent) when it runs on this machine: its CPU and data filesystem
        resources = await asyncio.to_thread(read_server, int(state["pid"]), float(state["started"]), POSTMASTER,
                                            parent=True, data_path=state["data_directory"])
        if resources is not None:
            snapshot.put(resources)
        since = float(state["since"] or 0.0)
        sessions = state["sessions"]
        connections = Connections(
            total=int(activity["total"]), active=int(activity["active"]), idle=int(activity["idle"]),
            idle_in_transaction=int(activity["idle_in_transaction"]), max_connections=int(state["max_connections"]),
            sessions=int(sessions) if sessions is not None else None,
            session_seconds=(float(state["session_ms"]) / 1000 / sessions) if sessions else None,
            commits=int(state["xact_commit"] or 0), rollbacks=int(state["xact_rollback"] or 0))
        growth = _growth(activities, since)
        commits = int(state["xact_commit"] or 0)
        snapshot.put(WorkloadProfile(
            tuple(shapes),
            database=state["database"], since_seconds=since, statements_since_seconds=statements_since or since, tables=tuple(activities), connections=connections,
            database_bytes=int(state["bytes"]), growth_bytes_per_day=growth,
            growth_basis=("estimated: rows inserted minus deleted since the statistics began, times each table's "
                          "average row size" if growth is not None else "unknown"),
            rows_per_transaction=(int(state["tuples_written"] or 0) / commits) if commits else None,
            read_only_replica=bool(state["replica"]), replicas=int(state["replicas"] or 0),
            statements_available=state["statements"] is not None,
            extensions=tuple(state["extensions"] or ()), extensions_available=tuple(state["available"] or ()),
            thresholds=self.options.thresholds()))
        snapshot.put(Summary({"workload statements": len(statements), "workload tables": len(activities)}))


def _tables(tables: list[Any], columns: list[Any], indexes: list[Any], selfrefs: dict[Any, str]) -> list[TableActivity]:
    times: dict[Any, list[Any]] = defaultdict(list)
    jsons: dict[Any, list[Any]] = defaultdict(list)
    texts: dict[Any, list[str]] = defaultdict(list)
    for c in columns:
        if c["type"] in ("json", "jsonb"):
            jsons[c["oid"]].append(c)
        elif c["type"] in ("text", "varchar", "bpchar", "citext"):
            texts[c["oid"]].append(c["column"])
        else:
            times[c["oid"]].append(c)
    defs: dict[Any, list[Any]] = defaultdict(list)
    for i in indexes:
        defs[i["oid"]].append(i)
    out = []
    for r in tables:
        oid = r["oid"]
        # the time column rows follow best: |correlation| highest, unknown (no ANALYZE yet) last
        best = max(times[oid], key=lambda c: abs(c["correlation"]) if c["correlation"] is not None else -1.0,
                   default=None)
        json_columns = tuple(c["column"] for c in jsons[oid])
        json_defs = tuple(d["definition"] for d in defs[oid] if any(c in d["definition"] for c in json_columns))
        search = tuple(sorted({w for d in defs[oid] for w in _search_columns(d["definition"])}))
        out.append(TableActivity(
            schema=r["schema"], table=r["table"], rows=int(r["rows"]), size_bytes=int(r["bytes"]),
            seq_scans=int(r["seq_scans"]), seq_rows=int(r["seq_rows"]), idx_scans=int(r["idx_scans"]),
            inserts=int(r["inserts"]), updates=int(r["updates"]), deletes=int(r["deletes"]),
            hot_updates=int(r["hot_updates"]), time_column=best["column"] if best else None,
            time_correlation=float(best["correlation"]) if best and best["correlation"] is not None else None,
            time_indexes=tuple(best["methods"]) if best else (), json_columns=json_columns,
            json_indexes=json_defs, json_plain=tuple(c["column"] for c in jsons[oid] if c["type"] == "json"), search_indexed=search, text_columns=tuple(texts[oid]), self_reference=selfrefs.get(oid),
            partitioned=bool(r["partitioned"])))
    return out


async def _with_key_stats(session: Any, activities: list[TableActivity], tables: list[Any], shapes: list[Any],
                          min_bytes: int) -> list[TableActivity]:
    """The large tables with pg_stats of the columns their statements filter on by equality."""
    large = {t.table.lower(): (t, r["oid"]) for t, r in zip(activities, tables) if t.size_bytes >= min_bytes}
    keys = sorted({s.key_column for s in shapes if s.key_column and large.keys() & set(s.tables)})
    if not large or not keys:
        return activities
    stats: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for r in await session.run(KEY_STATS, [oid for _, oid in large.values()], keys):
        stats[f"{r['schema']}.{r['table']}"].append((r["column"], float(r["distinct"]), float(r["top"])))
    return [dataclasses.replace(t, column_stats=tuple(stats[t.name])) if stats.get(t.name) else t
            for t in activities]


def _search_columns(definition: str) -> list[str]:
    """The columns a trigram or full-text index serves: ``USING gin (title gin_trgm_ops)``,
    ``USING gin (to_tsvector('english', body))``."""
    lower = definition.lower()
    if "trgm_ops" not in lower and "tsvector" not in lower:
        return []
    inside = lower[lower.find("(") + 1:]
    return [w for w in (p.strip("() ,'") for p in inside.replace(",", " ").split()) if w.isidentifier()
            and w not in ("gin_trgm_ops", "gist_trgm_ops", "to_tsvector", "english", "simple", "coalesce")]


def _growth(tables: list[TableActivity], since: float) -> float | None:
    """Bytes per day, from inserts minus deletes since the reset times the average row size; None when the
    counters cover less than a minute (too short to say anything)."""
    if since < 60:
        return None
    total = 0.0
    for t in tables:
        if t.rows > 0:
            total += (t.inserts - t.deletes) / since * 86400 * t.size_bytes / t.rows
    return total
