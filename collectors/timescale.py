"""TimescaleDB on a PostgreSQL target, found by itself: hypertables and chunks, background jobs, continuous
aggregates, policies, and plain tables that look like time series.

The ``timescaledb`` collector visits the watched databases (the database scope of the ``tables`` collector:
every database the role may connect to, filtered) and, in each where the ``timescaledb`` extension is
installed, reads the ``timescaledb_information`` views and TimescaleDB's job statistics. A target without
TimescaleDB exports nothing and costs one query per database (another database found without the extension
is looked at again only every 10 minutes); nothing needs configuring to turn it on.

Families: ``dbwatch_timescaledb_*`` (collectors/catalog_timescale.py). Facts
(:mod:`dbwatch.model.facts.timescale`): ``TimescaleDatabases``, ``Hypertables``, ``Jobs``, ``Policies``,
``ContinuousAggregates``, ``HypertableCandidates`` and ``TimescaleSettings``, for rules/timescale.py.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from dbwatch.collectors import timescale_sql as sql
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.pg_databases import DatabaseScope, describe_failure, discover, per_database
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import MetricFamily, Snapshot, Target, counter, gauge, info as info_family
from dbwatch.model.facts.timescale import (
    ContinuousAggregate, ContinuousAggregates, Hypertable, HypertableCandidate, HypertableCandidates, Hypertables,
    Job, Jobs, Policies, Policy, TimescaleDatabase, TimescaleDatabases, TimescaleSettings,
)
from dbwatch.model.options import Count, Number

__all__ = ["POLICY_KINDS", "TimescaleCollector", "TimescaleOptions"]

GIB = 1024**3
DAY = 86400.0
#: how long another database found without the extension is left alone before it is looked at again
RECHECK_ABSENT = 600.0
#: the oldest TimescaleDB read: _timescaledb_functions, by_range() and the views' columns as used here
MIN_VERSION = (2, 13)
#: TimescaleDB's policy procedures and the kind of policy each is
POLICY_KINDS = {"policy_compression": "compression", "policy_retention": "retention",
                "policy_refresh_continuous_aggregate": "refresh", "policy_reorder": "reorder"}
_AFTER = {"compression": "compress_after", "retention": "drop_after", "refresh": "end_offset"}

Row = Any


class TimescaleOptions(DatabaseScope):
    """Options of the ``timescaledb`` collector (with the database scope: which databases to visit)."""

    max_chunks: Count = 20000  # per database, newest first; the rest are not sized (a note says so)
    # The advice's thresholds (docs/timescaledb.md#advice):
    chunk_memory_fraction: Number = 1.0  # of shared_buffers that one hypertable's recent chunk may fill
    compress_min_age_days: Number = 7.0  # without a compression policy, chunks older than this are "old"
    uncompressed_min_bytes: Count = GIB  # old uncompressed chunks of a hypertable worth advice
    hypertable_min_size_bytes: Count = GIB  # plain tables from this size may be hypertable candidates
    hypertable_max_write_ratio: Number = 0.01  # (updates + deletes) / inserts at most
    hypertable_min_correlation: Number = 0.9  # the time column's physical order (pg_stats correlation)


class TimescaleCollector(Collector[PostgresSession, TimescaleOptions]):
    """Every watched database with the timescaledb extension: hypertables, chunks, jobs, aggregates."""

    name = "timescaledb"
    options_model = TimescaleOptions

    def __init__(self, target: Target, session: PostgresSession) -> None:
        super().__init__(target, session)
        #: other databases found without the extension, and when (time.monotonic()): not reconnected to
        #: for RECHECK_ABSENT seconds, so a server of many plain databases costs no connection churn
        self.absent: dict[str, float] = {}

    async def collect(self, snapshot: Snapshot) -> None:
        options, session = self.options, self.session
        own, databases = await discover(session, options)
        if len(databases) > options.max_databases:
            left = databases[options.max_databases:]
            snapshot.notes.append(f"{len(left)} database(s) beyond max_databases ({options.max_databases}) "
                                  f"not visited: {', '.join(left)}")
            databases = databases[: options.max_databases]
        out = _Collection(options)
        for database in databases:
            if database != own and time.monotonic() - self.absent.get(database, -RECHECK_ABSENT) < RECHECK_ABSENT:
                continue
            try:
                async with per_database(session, own, database) as db:
                    found = await db.run(sql.EXTENSION)
                    if not found:
                        self.absent[database] = time.monotonic()
                        continue
                    self.absent.pop(database, None)
                    if _version(found[0]["version"]) < MIN_VERSION:
                        snapshot.notes.append(f"database {database}: TimescaleDB {found[0]['version']} is older than "
                                              f"{'.'.join(map(str, MIN_VERSION))}, whose catalog the collector reads; "
                                              f"not collected")
                        continue
                    results = {
                        "shared_buffers": await db.run(sql.SHARED_BUFFERS),
                        "hypertables": await db.run(sql.HYPERTABLES),
                        "chunks": await db.run(sql.CHUNKS, options.max_chunks + 1),
                        "jobs": await db.run(sql.JOBS),
                        "caggs": await db.run(sql.CAGGS),
                        "candidates": await db.run(sql.CANDIDATES, options.hypertable_min_size_bytes,
                                                   options.hypertable_min_correlation),
                    }
            except CollectorError as exc:
                if database == own:
                    raise
                snapshot.notes.append(describe_failure(database, exc))
                continue
            if len(results["chunks"]) > options.max_chunks:
                snapshot.notes.append(f"database {database}: more than max_chunks ({options.max_chunks}) chunks; "
                                      f"only the newest were sized")
                results["chunks"] = results["chunks"][: options.max_chunks]
            out.add(database, found[0], results)
        if not out.databases:
            return  # no TimescaleDB here: nothing to export, no facts
        snapshot.notes.extend(out.notes)
        snapshot.families.extend(out.families())
        snapshot.put(*out.facts())


class _Collection:
    """The families and facts of one collection, filled database by database."""

    def __init__(self, options: TimescaleOptions) -> None:
        self.options = options
        self.shared_buffers = 0
        self.databases: list[TimescaleDatabase] = []
        self.hypertables: list[Hypertable] = []
        self.jobs: list[Job] = []
        self.policies: list[Policy] = []
        self.caggs: list[ContinuousAggregate] = []
        self.candidates: list[HypertableCandidate] = []
        self.notes: list[str] = []

    def add(self, database: str, extension: Row, results: dict[str, list[Row]]) -> None:
        now = float(extension["now"])
        self.databases.append(TimescaleDatabase(database, extension["version"], now))
        if results["shared_buffers"]:
            self.shared_buffers = int(results["shared_buffers"][0]["bytes"])
        jobs = [_job(database, row) for row in results["jobs"]]
        self.jobs.extend(jobs)
        policies = [_policy(database, row) for row in results["jobs"] if row["proc_name"] in POLICY_KINDS]
        self.policies.extend(policies)
        chunks: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for row in results["chunks"]:  # newest first
            chunks[(row["schema"], row["name"])].append(row)
        compression = {p.relation: p for p in policies if p.kind == "compression"}
        for row in results["hypertables"]:
            qualified = f"{row['schema']}.{row['name']}"
            self.hypertables.append(self._hypertable(database, row, chunks[(row["schema"], row["name"])],
                                                     compression.get(qualified), now))
        refresh = {p.relation: p for p in policies if p.kind == "refresh"}
        unreadable = []
        for row in results["caggs"]:
            view = f"{row['schema']}.{row['view']}"
            if not row["is_time"]:
                continue  # an integer dimension: no lag against now()
            if not row["readable"]:
                unreadable.append(view)
            else:
                self.caggs.append(_cagg(database, row, refresh.get(view), now))
        if unreadable:
            self.notes.append(f"database {database}: no SELECT on continuous aggregate(s) {', '.join(unreadable)}, "
                              f"whose watermark it takes to read; GRANT SELECT ON them to the monitoring role")
        self.candidates.extend(_candidate(database, row) for row in results["candidates"])

    def _hypertable(self, database: str, row: Row, chunks: list[Row], policy: Policy | None,
                    now: float) -> Hypertable:
        if policy is not None and policy.after_seconds is not None:
            age = policy.after_seconds + 2 * policy.schedule_interval_seconds  # what it should have done by now
        else:
            age = self.options.compress_min_age_days * DAY
        uncompressed = [c for c in chunks if not c["compressed"]]
        old = [c for c in uncompressed if c["range_end"] < now - age]
        return Hypertable(
            database=database, schema=row["schema"], name=row["name"], time_column=row["time_column"],
            time_type=row["time_type"], interval_seconds=row["interval_seconds"], chunks=row["chunks"],
            compressed_chunks=row["compressed_chunks"], size_bytes=int(row["size_bytes"]),
            compression_enabled=bool(row["compression_enabled"]), before_compression_bytes=int(row["before_bytes"]),
            after_compression_bytes=int(row["after_bytes"]),
            recent_chunk_bytes=int(max((c["bytes"] for c in uncompressed[:2]), default=0)),
            old_uncompressed_chunks=len(old), old_uncompressed_bytes=int(sum(c["bytes"] for c in old)),
            oldest_uncompressed_end=min((c["range_end"] for c in old), default=None), compress_age_seconds=age)

    def facts(self) -> tuple[object, ...]:
        o = self.options
        settings = TimescaleSettings(
            shared_buffers_bytes=self.shared_buffers, chunk_memory_fraction=o.chunk_memory_fraction,
            compress_min_age_seconds=o.compress_min_age_days * DAY, uncompressed_min_bytes=o.uncompressed_min_bytes,
            hypertable_min_size_bytes=o.hypertable_min_size_bytes,
            hypertable_max_write_ratio=o.hypertable_max_write_ratio,
            hypertable_min_correlation=o.hypertable_min_correlation)
        return (settings, TimescaleDatabases(tuple(self.databases)), Hypertables(tuple(self.hypertables)),
                Jobs(tuple(self.jobs)), Policies(tuple(self.policies)), ContinuousAggregates(tuple(self.caggs)),
                HypertableCandidates(tuple(self.candidates)))

    def families(self) -> list[MetricFamily]:
        ht = ("datname", "hypertable")
        info = info_family("dbwatch_timescaledb_info", "The timescaledb extension's version in a database (always 1).",
                     ("datname", "version"))
        info.samples.extend(((d.database, d.version), 1.0) for d in self.databases)
        out = [info]

        def per_hypertable(name: str, help: str, value: Any) -> None:
            family = gauge(name, help, ht)
            for h in self.hypertables:
                v = value(h)
                if v is not None:
                    family.samples.append(((h.database, h.qualified), float(v)))
            out.append(family)

        per_hypertable("dbwatch_timescaledb_hypertable_chunks", "Chunks of the hypertable.", lambda h: h.chunks)
        per_hypertable("dbwatch_timescaledb_hypertable_compressed_chunks", "Chunks of the hypertable that are "
                       "compressed.", lambda h: h.compressed_chunks)
        per_hypertable("dbwatch_timescaledb_hypertable_size_bytes", "Total size of the hypertable.",
                       lambda h: h.size_bytes)
        per_hypertable("dbwatch_timescaledb_hypertable_chunk_interval_seconds", "The time dimension's chunk "
                       "interval.", lambda h: h.interval_seconds)
        per_hypertable("dbwatch_timescaledb_hypertable_recent_chunk_size_bytes", "Size of the larger of the two "
                       "newest uncompressed chunks.", lambda h: h.recent_chunk_bytes)
        per_hypertable("dbwatch_timescaledb_hypertable_compression_enabled", "Whether compression is enabled.",
                       lambda h: 1 if h.compression_enabled else 0)
        per_hypertable("dbwatch_timescaledb_hypertable_compression_before_bytes", "Size of the compressed chunks "
                       "before compression.", lambda h: h.before_compression_bytes if h.compression_enabled else None)
        per_hypertable("dbwatch_timescaledb_hypertable_compression_after_bytes", "Size of the compressed chunks "
                       "after compression.", lambda h: h.after_compression_bytes if h.compression_enabled else None)
        per_hypertable("dbwatch_timescaledb_hypertable_compression_ratio", "Before / after compression.",
                       lambda h: h.compression_ratio)
        per_hypertable("dbwatch_timescaledb_hypertable_old_uncompressed_chunks", "Old uncompressed chunks.",
                       lambda h: h.old_uncompressed_chunks)
        per_hypertable("dbwatch_timescaledb_hypertable_old_uncompressed_bytes", "Size of the old uncompressed "
                       "chunks.", lambda h: h.old_uncompressed_bytes)
        out.extend(self._job_families())
        out.extend(self._cagg_families())
        out.extend(self._policy_families())
        return out

    def _job_families(self) -> list[MetricFamily]:
        labels = ("datname", "job_id", "application_name", "scheduled")
        info = gauge("dbwatch_timescaledb_job_info", "A background job and what it runs (always 1).",
                     ("datname", "job_id", "application_name", "proc", "hypertable"))
        runs = counter("dbwatch_timescaledb_job_runs_total", "The job's runs.", labels)
        failures = counter("dbwatch_timescaledb_job_failures_total", "The job's failed runs.", labels)
        consecutive = gauge("dbwatch_timescaledb_job_consecutive_failures", "Failed runs since its last success.",
                            labels)
        success = gauge("dbwatch_timescaledb_job_last_run_success", "Whether its last run succeeded.", labels)
        last_success = gauge("dbwatch_timescaledb_job_last_success_timestamp_seconds", "When its last successful "
                             "run finished.", labels)
        next_start = gauge("dbwatch_timescaledb_job_next_start_timestamp_seconds", "When it starts next.", labels)
        interval = gauge("dbwatch_timescaledb_job_schedule_interval_seconds", "How often it runs.", labels)
        for j in self.jobs:
            key = (j.database, str(j.job_id), j.application_name, "true" if j.scheduled else "false")
            info.samples.append(((j.database, str(j.job_id), j.application_name, j.proc, j.hypertable), 1.0))
            runs.samples.append((key, float(j.total_runs)))
            failures.samples.append((key, float(j.total_failures)))
            consecutive.samples.append((key, float(j.consecutive_failures)))
            interval.samples.append((key, j.schedule_interval_seconds))
            if j.last_run_status:
                success.samples.append((key, 1.0 if j.last_run_status == "Success" else 0.0))
            if j.last_successful_finish is not None:
                last_success.samples.append((key, j.last_successful_finish))
            if j.next_start is not None:
                next_start.samples.append((key, j.next_start))
        return [info, runs, failures, consecutive, success, last_success, next_start, interval]

    def _cagg_families(self) -> list[MetricFamily]:
        labels = ("datname", "view")
        watermark = gauge("dbwatch_timescaledb_continuous_aggregate_watermark_timestamp_seconds",
                          "Up to when the continuous aggregate is materialized.", labels)
        lag = gauge("dbwatch_timescaledb_continuous_aggregate_lag_seconds", "now() minus the watermark.", labels)
        expected = gauge("dbwatch_timescaledb_continuous_aggregate_expected_lag_seconds",
                         "The lag its refresh policy leaves at worst while healthy.", labels)
        for c in self.caggs:
            key = (c.database, c.qualified)
            if c.watermark is not None:
                watermark.samples.append((key, c.watermark))
            lag.samples.append((key, c.lag_seconds))
            if c.expected_lag_seconds is not None:
                expected.samples.append((key, c.expected_lag_seconds))
        return [watermark, lag, expected]

    def _policy_families(self) -> list[MetricFamily]:
        info = gauge("dbwatch_timescaledb_policy_info", "A policy (always 1).",
                     ("datname", "hypertable", "policy", "job_id"))
        after = gauge("dbwatch_timescaledb_policy_after_seconds", "The policy's age threshold.",
                      ("datname", "hypertable", "policy"))
        for p in self.policies:
            info.samples.append(((p.database, p.relation, p.kind, str(p.job_id)), 1.0))
            if p.after_seconds is not None:
                after.samples.append(((p.database, p.relation, p.kind), p.after_seconds))
        return [info, after]


def _job(database: str, row: Row) -> Job:
    return Job(database=database, job_id=row["job_id"], application_name=row["application_name"], proc=row["proc"],
               hypertable=row["relation"], scheduled=bool(row["scheduled"]),
               schedule_interval_seconds=row["schedule_interval"] or 0.0, config=row["config"],
               last_run_status=row["last_run_status"], last_run_started=row["last_start"],
               last_successful_finish=row["last_success"], next_start=row["next_start"],
               total_runs=int(row["total_runs"]), total_failures=int(row["total_failures"]),
               consecutive_failures=row["consecutive_failures"])


def _policy(database: str, row: Row) -> Policy:
    kind = POLICY_KINDS[row["proc_name"]]
    key = _AFTER.get(kind)
    return Policy(database=database, kind=kind, job_id=row["job_id"], relation=row["relation"],
                  after_seconds=row[key] if key else None, schedule_interval_seconds=row["schedule_interval"] or 0.0,
                  scheduled=bool(row["scheduled"]))


def _cagg(database: str, row: Row, policy: Policy | None, now: float) -> ContinuousAggregate:
    watermark, bucket = row["watermark"], row["bucket_seconds"]
    # never refreshed: behind since its hypertable's data begins (nothing behind without data)
    since = watermark if watermark is not None else row["unmaterialized_since"]
    expected = None
    if policy is not None:
        expected = (policy.after_seconds or 0.0) + policy.schedule_interval_seconds + (bucket or 0.0)
    return ContinuousAggregate(
        database=database, schema=row["schema"], view=row["view"], hypertable=row["hypertable"],
        watermark=watermark, lag_seconds=0.0 if since is None else max(0.0, now - since),
        bucket_seconds=bucket, refresh_job_id=policy.job_id if policy else None, expected_lag_seconds=expected,
        materialized_only=bool(row["materialized_only"]))


def _candidate(database: str, row: Row) -> HypertableCandidate:
    column = row["column_name"]
    blockers = tuple(f"unique index {name} does not include {column}, and create_hypertable refuses a unique "
                     f"index without the partitioning column" for name in row["unique_without"])
    return HypertableCandidate(
        database=database, schema=row["schema"], table=row["table_name"], column=column,
        column_type=row["column_type"], column_not_null=bool(row["attnotnull"]), size_bytes=int(row["size_bytes"]),
        rows=int(max(0.0, row["rows"])), inserts=int(row["inserts"]), updates_deletes=int(row["updates_deletes"]),
        correlation=float(row["correlation"]), span_seconds=row["span_seconds"], blockers=blockers)



def _version(text: str) -> tuple[int, ...]:
    """``"2.28.3"`` as ``(2, 28, 3)``; a part that is not a number (``2.14.0-dev``) ends it."""
    parts = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if digits != part:
            break
    return tuple(parts)
