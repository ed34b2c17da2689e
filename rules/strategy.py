"""The strategy engine (``dbwatch advise --section strategy``): what the observed workload says about the
architecture. Reads :class:`~dbwatch.model.facts.workload_profile.WorkloadProfile` (the ``workload``
collector of PostgreSQL and MySQL/MariaDB; on MongoDB the profiler's entries) and maps it to the design's
decision matrix (docs/architecture-advice.md):

- ``WorkloadProfile``: the numbers themselves (reads vs writes, lookups vs scans vs aggregates, append-only
  and hot tables, growth, connections, transaction sizes, JSON, search and recursive statements);
- ``CacheCandidate`` and ``TimeSeriesLayout`` (here), ``ReadReplicasAdvised`` and ``ConnectionPoolerAdvised``
  (:mod:`strategy_load`), ``SearchIndexCandidate``, ``DocumentModelCandidate`` and ``GraphQueryCandidate``
  (:mod:`strategy_access`), ``ShardKeyCandidate`` (:mod:`strategy_shard`);
- on MongoDB, ``DocumentModelCandidate`` the other way round: collections read mostly through ``$lookup``
  (:mod:`strategy_mongo`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from dbwatch.model import Finding
from dbwatch.model.facts.server_resources import ServerResources
from dbwatch.model.facts.workload_profile import AGGREGATE, POINT, SCAN, StatementShape, WorkloadProfile
from dbwatch.rules.advice_common import quote_ident
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig
from dbwatch.rules.strategy_access import DocumentModelRule, GraphQueryRule, SearchIndexRule
from dbwatch.rules.strategy_common import (
    StrategyRule, days_until_full, growth_per_day, human_bytes, measured_growth, per_second, server_cpu,
    strategy_finding, table_of,
)
from dbwatch.rules.strategy_load import ConnectionPoolerRule, ReadReplicasRule
from dbwatch.rules.strategy_mongo import MongoLookupRule
from dbwatch.rules.strategy_mysql import time_series_finding
from dbwatch.rules.strategy_shard import ShardKeyRule

__all__ = ["make_rules", "WorkloadProfileRule", "CacheCandidateRule", "TimeSeriesLayoutRule"]

HOT_UPDATES_PER_ROW = 100.0  # updates per live row since the reset: the table's rows are hot
APPEND_ONLY_MAX_UPDATES = 0.01  # updates per insert (deletes are retention, reported beside)


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [WorkloadProfileRule(), CacheCandidateRule(), TimeSeriesLayoutRule(), ReadReplicasRule(),
            ConnectionPoolerRule(), SearchIndexRule(), DocumentModelRule(), GraphQueryRule(), ShardKeyRule(),
            MongoLookupRule()]


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole > 0 else 0.0


class WorkloadProfileRule(StrategyRule):
    """The profile as one finding per target: every number the strategy findings are derived from."""

    name = "WorkloadProfile"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        # the application's statements: those naming its tables (not dbwatch's catalog reads, an admin's SET)
        mine = [s for s in profile if s.tables]
        by_kind: dict[str, list[StatementShape]] = defaultdict(list)
        for s in mine:
            by_kind[s.kind].append(s)
        calls = sum(s.calls for s in mine)
        seconds = sum(s.seconds for s in mine)
        reads = [s for s in mine if s.reads]
        kinds = {k: {"statements": len(v), "calls": sum(s.calls for s in v),
                     "call_share": _share(sum(s.calls for s in v), calls),
                     "time_share": _share(sum(s.seconds for s in v), seconds)} for k, v in sorted(by_kind.items())}
        features: dict[str, dict[str, Any]] = {}
        for s in mine:
            for f in s.features:
                entry = features.setdefault(f, {"statements": 0, "calls": 0})
                entry["statements"] += 1
                entry["calls"] += s.calls
        append_only = [t.name for t in profile.tables
                       if t.inserts >= 1000 and t.updates <= APPEND_ONLY_MAX_UPDATES * t.inserts]
        hot = sorted(profile.tables, key=lambda t: t.updates, reverse=True)
        hot_rows = [{"table": t.name, "updates": t.updates, "rows": t.rows,
                     "updates_per_row": round(t.updates / max(t.rows, 1), 1)}
                    for t in hot if t.updates >= 1000 and t.updates / max(t.rows, 1) >= HOT_UPDATES_PER_ROW][:10]
        busiest = sorted(profile.tables, key=lambda t: t.seq_scans + t.idx_scans + t.writes, reverse=True)[:10]
        growth = {t.name: round(g) for t in profile.tables if (g := growth_per_day(t, profile)) is not None and g > 0}
        database_growth, basis = profile.growth_bytes_per_day, profile.growth_basis
        measured = measured_growth(view)
        if measured is not None:  # sizes seen twice by this agent beat an estimate from counters
            database_growth, tables_measured, span = measured
            growth = {name: round(g) for name, g in tables_measured.items() if g > 0}
            basis = f"measured: size change over the last {span / 3600:.1f} h of this agent's history"
        c = profile.connections
        connections = None if c is None else {
            "total": c.total, "active": c.active, "idle": c.idle, "idle_in_transaction": c.idle_in_transaction,
            "max_connections": c.max_connections, "sessions_since_reset": c.sessions,
            "sessions_per_second": round(per_second(c.sessions, profile), 3) if c.sessions is not None else None,
            "average_session_seconds": round(c.session_seconds, 3) if c.session_seconds is not None else None,
            "commits": c.commits, "rollbacks": c.rollbacks}
        evidence = {
            "database": profile.database, "since_seconds": round(profile.since_seconds),
            "statements_available": profile.statements_available,
            "statements": len(mine), "other_statements": len(profile) - len(mine), "calls": calls,
            "statement_seconds": round(seconds, 3),
            "read_call_share": _share(sum(s.calls for s in reads), calls),
            "read_time_share": _share(sum(s.seconds for s in reads), seconds),
            "kinds": kinds, "features": features, "append_only_tables": append_only[:20], "hot_rows": hot_rows,
            "hot_tables": [{"table": t.name, "scans": t.seq_scans + t.idx_scans, "writes": t.writes}
                           for t in busiest if t.seq_scans + t.idx_scans + t.writes > 0],
            "database_bytes": profile.database_bytes,
            "growth_bytes_per_day": round(database_growth) if database_growth is not None else None,
            "growth_basis": basis, "table_growth_bytes_per_day": growth,
            "rows_written_per_transaction": round(profile.rows_per_transaction, 2)
            if profile.rows_per_transaction is not None else None,
            "connections": connections, "replica": profile.read_only_replica, "replicas": profile.replicas,
            "capacity": _capacity(view, database_growth)}
        growth_text = (f"about {human_bytes(database_growth)}/day ({basis})"
                       if database_growth is not None else f"growth unknown ({basis})")
        reads_text = (f"{evidence['read_call_share']:.0%} of calls read" if profile.statements_available and calls
                      else "no statement statistics")
        summary = (f"Workload of {profile.database}: {reads_text}, "
                   f"{len(append_only)} append-only table(s), {len(hot_rows)} with hot rows; "
                   f"{human_bytes(profile.database_bytes)}, {growth_text}")
        yield strategy_finding(
            self.name, view, summary, observed=f"statistics over the last {profile.since_seconds:.0f} s "
            f"({len(profile)} statements, {len(profile.tables)} tables).",
            action="read the numbers; the strategy findings beside this one say what they call for.",
            cost="nothing.", wrong_when="the statistics were reset recently or cover an unusual period "
            "(a batch job, a holiday): the profile is only as representative as the time it covers.",
            confidence=min(1.0, profile.since_seconds / 86400 / 7) if profile.since_seconds else 0.0,
            labels={"database": profile.database}, evidence=evidence, impact=0.0)


def _capacity(view: TargetView, growth: float | None) -> dict[str, Any] | None:
    """The data directory's filesystem and the days its free space lasts at the database's growth, when the
    server runs beside the agent (ServerResources); None otherwise."""
    r = view.fact(ServerResources)
    if r is None:
        return None
    days = days_until_full(r.filesystem_avail_bytes, growth)
    cpu = server_cpu(view)
    return {"data_path": r.data_path, "filesystem_avail_bytes": r.filesystem_avail_bytes,
            "filesystem_bytes": r.filesystem_bytes, "days_until_full": round(days, 1) if days is not None else None,
            "server_cpu_share": round(cpu[0], 4) if cpu else None, "cpus": r.cpus,
            "cpu_basis": cpu[2] if cpu else None}


class CacheCandidateRule(StrategyRule):
    """Read-mostly point lookups on a small table: a cache in front (Redis with a TTL) would take them."""

    name = "CacheCandidate"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        min_calls = profile.threshold("cache_min_calls", 1000)
        max_ratio = profile.threshold("cache_max_write_ratio", 0.1)
        lookups: dict[str, list[StatementShape]] = defaultdict(list)
        for s in profile:
            if s.kind == POINT and "for_update" not in s.features:
                table = table_of(profile, s)
                if table is not None:
                    lookups[table.name].append(s)
        for t in profile.tables:
            statements = lookups.get(t.name, [])
            reads = sum(s.calls for s in statements)
            if reads < min_calls:
                continue
            writes = t.writes
            ratio = writes / reads
            if ratio > max_ratio:
                continue
            hit_rate = max(0.0, 1.0 - ratio)  # each write invalidates at most one cached key
            row_bytes = t.size_bytes / t.rows if t.rows else 0.0
            read_seconds = sum(s.seconds for s in statements)
            evidence = {"table": t.name, "point_reads": reads, "table_writes": writes,
                        "writes_per_read": round(ratio, 4), "estimated_hit_rate": round(hit_rate, 4),
                        "reads_per_second": round(per_second(reads, profile, statements=True), 2),
                        "rows": t.rows, "table_bytes": t.size_bytes, "bytes_per_row": round(row_bytes),
                        "lookup_seconds": round(read_seconds, 3),
                        "statements": [{"query": s.query, "calls": s.calls, "key": s.key_column}
                                       for s in sorted(statements, key=lambda s: -s.calls)[:5]]}
            keys = sorted({s.key_column for s in statements if s.key_column})
            yield strategy_finding(
                self.name, view, f"{t.name}: {reads} point lookups for {writes} writes: a cache would hit "
                f"about {hit_rate:.0%}",
                observed=f"{len(statements)} statement(s) read one row of {t.name} by {', '.join(keys)} "
                f"{reads} times ({per_second(reads, profile, statements=True):.1f}/s) while the table took {writes} writes "
                f"({ratio:.3f} per read); {t.rows} rows of about {row_bytes:.0f} bytes.",
                action=f"cache these rows in the application or Redis keyed by {', '.join(keys)} with a TTL "
                "(SET key value EX seconds), and delete the key on every write to the row.",
                cost=f"a cache to run; about {human_bytes(t.size_bytes)} of memory to hold the whole table; "
                "stale reads for up to the TTL where an invalidation is missed.",
                wrong_when="the lookups are already served from shared buffers in microseconds and the "
                "application's round trip is what costs, or the readers need to see every write at once.",
                confidence=0.8 if ratio <= max_ratio / 10 else 0.6,
                labels={"table": t.name}, evidence=evidence,
                impact=min(0.5, read_seconds / max(profile.statements_since_seconds, 1.0)))


class TimeSeriesLayoutRule(StrategyRule):
    """Append-only tables whose rows follow a time column: partition by time, BRIN, retention by dropping."""

    name = "TimeSeriesLayout"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        min_inserts = profile.threshold("timeseries_min_inserts", 10000)
        max_updates = profile.threshold("timeseries_max_update_ratio", 0.01)
        min_corr = profile.threshold("timeseries_min_correlation", 0.9)
        for t in profile.tables:
            if (t.partitioned or t.time_column is None or t.time_correlation is None or t.inserts < min_inserts
                    or abs(t.time_correlation) < min_corr or t.updates > max_updates * t.inserts):
                continue
            range_deleted = t.deletes > 0
            growth = growth_per_day(t, profile)
            timescale = "timescaledb" in profile.extensions or "timescaledb" in profile.extensions_available
            brin = "brin" in t.time_indexes
            col = quote_ident(t.time_column)
            sql = None if brin else (f"CREATE INDEX CONCURRENTLY {quote_ident(t.table + '_' + t.time_column + '_brin')}"
                                     f" ON {quote_ident(t.schema)}.{quote_ident(t.table)} USING brin ({col});")
            scans = [s for s in profile if t.table.lower() in s.tables and s.kind in (SCAN, AGGREGATE)]
            if view.engine == "mysql":  # no BRIN, no TimescaleDB: partitioning to plan (rules/strategy_mysql.py)
                yield time_series_finding(self.name, view, t, growth, [s.query for s in scans[:5]])
                continue
            evidence = {"table": t.name, "time_column": t.time_column, "correlation": round(t.time_correlation, 4),
                        "inserts": t.inserts, "updates": t.updates, "deletes": t.deletes, "rows": t.rows,
                        "table_bytes": t.size_bytes, "growth_bytes_per_day": round(growth) if growth else None,
                        "time_indexes": list(t.time_indexes), "timescaledb_available": timescale,
                        "range_statements": [s.query for s in scans[:5]]}
            layout = ("a TimescaleDB hypertable (SELECT create_hypertable(...) on a copy) with a retention policy"
                      if timescale else f"range partitioning by {t.time_column} (one partition per day, week or "
                      "month, new ones made ahead of time) with retention by dropping old partitions")
            yield strategy_finding(
                self.name, view, f"{t.name} is append-only and ordered by {t.time_column}: a time-series layout",
                observed=f"{t.inserts} inserts, {t.updates} updates, {t.deletes} deletes since the reset; rows follow "
                f"{t.time_column} (correlation {t.time_correlation:.2f}); {human_bytes(t.size_bytes)}"
                + (f", growing about {human_bytes(growth)}/day." if growth else "."),
                action=f"{layout}; " + ("a BRIN index on the time column serves range scans at a fraction of a "
                                        "btree's size (the statement here, built without blocking writes)."
                                        if not brin else "it already has a BRIN index on the time column.")
                + (" Deletes seen: replace them by dropping whole partitions." if range_deleted else ""),
                cost="partitioning is a migration (copy into a partitioned table, swap names) and every unique key "
                "must include the time column; the BRIN index costs little to keep.",
                wrong_when="rows arrive far out of time order (late data makes BRIN ranges wide) or queries look "
                "rows up by key without a time range (each partition is searched).",
                confidence=0.8 if range_deleted else 0.65, labels={"table": t.name}, evidence=evidence, sql=sql,
                impact=min(0.4, t.size_bytes / 2**34))

