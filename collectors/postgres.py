"""PostgreSQL: the session (one asyncpg connection per target) and the server-wide collector.

Metric names are postgres_exporter's where it has the metric, so its dashboards and alert rules work
unchanged; what only dbwatch has is prefixed ``dbwatch_pg_``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import asyncpg

from dbwatch.agent.model import MetricFamily, Snapshot, Target, counter, gauge, info
from dbwatch.collectors import postgres_sql as sql
from dbwatch.collectors.base import Collector, CollectorError, Session

logger = logging.getLogger(__name__)

WRAPAROUND_LIMIT = 2**31  # transaction IDs: the server stops accepting writes near this age


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    version_num: int
    in_recovery: bool
    start_time: float
    role: str
    superuser: bool
    monitor: bool


class PostgresSession(Session):
    """One long-lived connection: read-only, ``application_name=dbwatch``, bounded statements and locks."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._conn: asyncpg.Connection | None = None
        self.server: ServerInfo | None = None
        shortest = min((c.timeout for c in target.collectors.values()), default=10.0)
        # The server cancels a statement a little before the collector's own timeout, so the usual
        # failure is a clean server-side cancel that keeps the connection, not a dropped connection.
        self.statement_timeout_ms = max(100, int(shortest * 800))
        # Waiting on a lock is never worth it for monitoring: give up quickly and report it.
        self.lock_timeout_ms = min(self.statement_timeout_ms, 2000)
        parsed = urllib.parse.urlsplit(target.dsn)
        self.endpoint = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}"

    async def connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        wait = self.backoff_remaining(time.monotonic())
        if wait > 0:
            raise CollectorError(f"{self.endpoint} unreachable; next connection attempt in {wait:.1f}s")
        try:
            self._conn = await asyncpg.connect(
                self.target.dsn,
                password=self.target.password(),
                timeout=max(1.0, self.statement_timeout_ms / 1000),
                statement_cache_size=0,  # each statement runs once per interval; no server-side prepared plans kept
                server_settings={
                    "application_name": "dbwatch",
                    "statement_timeout": str(self.statement_timeout_ms),
                    "lock_timeout": str(self.lock_timeout_ms),
                    "default_transaction_read_only": "on",
                    "idle_in_transaction_session_timeout": "60000",
                },
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.record_failure(time.monotonic())
            raise CollectorError(f"cannot connect to {self.endpoint}: {_describe(exc)}") from None
        self.record_success()
        # numeric (LSN differences, epochs) as float: these are measurements, not money.
        await self._conn.set_type_codec("numeric", encoder=str, decoder=float, schema="pg_catalog", format="text")
        row = await self._conn.fetchrow(sql.SERVER)
        self.server = ServerInfo(**dict(row))
        return self._conn

    async def invalidate(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
        self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close(timeout=2)
            except Exception:  # closing a broken connection: nothing more to do
                self._conn.terminate()
        self._conn = None

    async def run(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run a query; a lost connection is dropped (reconnect next time) and reported plainly."""
        conn = await self.connection()
        try:
            return await conn.fetch(query, *args)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
            await self.invalidate()
            raise CollectorError(f"connection to {self.endpoint} lost: {_describe(exc)}") from None
        except asyncpg.PostgresError as exc:
            raise CollectorError(f"query failed on {self.endpoint}: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class PostgresCollector(Collector):
    name = "postgres"
    up_metric = "pg_up"

    async def collect(self, snapshot: Snapshot) -> None:
        session: PostgresSession = self.session  # type: ignore[assignment]
        async with session.lock:
            await session.connection()
            server = session.server
            assert server is not None
            snapshot.version = server.version
            results = {
                "settings": await session.run(sql.SETTINGS, list(sql.EXPORTED_SETTINGS)),
                "activity": await session.run(sql.ACTIVITY),
                "locks": await session.run(sql.LOCKS),
                "databases": await session.run(sql.DATABASES),
                "slots": await session.run(sql.SLOTS),
                "archiver": await session.run(sql.ARCHIVER),
                "bgwriter": await session.run(sql.bgwriter_sql(server.version_num)),
            }
            if server.in_recovery:
                results["standby"] = await session.run(sql.STANDBY)
            else:
                results["replication"] = await session.run(sql.REPLICATION)
        snapshot.families.extend(_server_families(server))
        snapshot.families.extend(_settings(results["settings"]))
        snapshot.families.extend(_activity(results["activity"]))
        snapshot.families.extend(_locks(results["locks"]))
        snapshot.families.extend(_databases(results["databases"]))
        snapshot.families.extend(_replication(server, results.get("replication"), results.get("standby")))
        snapshot.families.extend(_slots(results["slots"]))
        snapshot.families.extend(_archiver(results["archiver"]))
        snapshot.families.extend(_bgwriter(results["bgwriter"]))
        snapshot.facts.update(_facts(server, results))
        if not server.superuser and not server.monitor:
            snapshot.notes.append(
                f"role {server.role} is not a member of pg_monitor: other sessions' states, queries and some "
                f"statistics are hidden; run GRANT pg_monitor TO {server.role};"
            )


def _server_families(server: ServerInfo) -> list[MetricFamily]:
    up = gauge("pg_up", "Whether the last collection could reach the server (1 = yes).")
    up.add((), 1)
    static = info("pg_static", "Version string as reported by PostgreSQL.", ("version", "short_version"))
    static.add((server.version, server.version.split()[0]), 1)
    start = gauge("pg_postmaster_start_time_seconds", "Time at which postmaster started (Unix time).")
    start.add((), server.start_time)
    replica = gauge("pg_replication_is_replica", "Indicates if the server is a replica (1 = in recovery).")
    replica.add((), int(server.in_recovery))
    return [up, static, start, replica]


def _settings(rows: list[asyncpg.Record]) -> list[MetricFamily]:
    families = []
    for row in rows:
        fam = gauge(f"pg_settings_{row['name']}", f"Server Parameter: {row['name']}")
        fam.add((), row["value"])
        families.append(fam)
    return families


def _activity(rows: list[asyncpg.Record]) -> list[MetricFamily]:
    count = gauge("pg_stat_activity_count", "Number of client connections in this state.", ("datname", "state"))
    tx = gauge("pg_stat_activity_max_tx_duration", "Max duration in seconds any active transaction has been running.",
               ("datname", "state"))
    oldest_query = gauge("dbwatch_pg_oldest_query_seconds", "Age of the longest-running active query.")
    waiting = gauge("dbwatch_pg_waiting_sessions", "Client sessions waiting on a lock.")
    for row in rows:
        count.add((row["datname"], row["state"]), row["count"])
        tx.add((row["datname"], row["state"]), row["max_tx_duration"])
    oldest_query.add((), max((row["max_query_duration"] for row in rows), default=0.0))
    waiting.add((), sum(row["waiting"] for row in rows))
    return [count, tx, oldest_query, waiting]


def _locks(rows: list[asyncpg.Record]) -> list[MetricFamily]:
    fam = gauge("pg_locks_count", "Number of locks held or awaited, by database and mode.", ("datname", "mode"))
    for row in rows:
        fam.add((row["datname"], row["mode"]), row["count"])
    return [fam]


def _databases(rows: list[asyncpg.Record]) -> list[MetricFamily]:
    labels = ("datid", "datname")
    backends = gauge("pg_stat_database_numbackends", "Number of backends currently connected to this database.", labels)
    counters = {
        name: counter(f"pg_stat_database_{name}", f"pg_stat_database.{name} (cumulative).", labels)
        for name in sql.DATABASE_COUNTERS
    }
    size = gauge("pg_database_size_bytes", "Disk space used by the database.", ("datname",))
    age = gauge("dbwatch_pg_database_frozenxid_age", "Age of the database's oldest unfrozen transaction ID.",
                ("datname",))
    margin = gauge("dbwatch_pg_wraparound_margin_ratio",
                   "Share of the transaction ID space left before wraparound protection (1 = all).", ("datname",))
    for row in rows:
        key = (row["datid"], row["datname"])
        backends.add(key, row["numbackends"])
        for name, fam in counters.items():
            fam.add(key, row[name])
        size.add((row["datname"],), row["size_bytes"])
        age.add((row["datname"],), row["frozenxid_age"])
        margin.add((row["datname"],), max(0.0, 1 - row["frozenxid_age"] / WRAPAROUND_LIMIT))
    return [backends, *counters.values(), size, age, margin]


def _replication(server: ServerInfo, primary: list[asyncpg.Record] | None,
                 standby: list[asyncpg.Record] | None) -> list[MetricFamily]:
    lag = gauge("pg_replication_lag_seconds",
                "Replication lag behind the primary in seconds (0 on a primary, and on a caught-up standby).")
    families = [lag]
    if standby:
        row = standby[0]
        lag.add((), row["lag_seconds"])
        replay_bytes = gauge("dbwatch_pg_replay_lag_bytes", "WAL received but not yet replayed by this standby.")
        replay_bytes.add((), row["replay_lag_bytes"])
        paused = gauge("dbwatch_pg_replay_paused", "Whether WAL replay is paused on this standby.")
        paused.add((), int(row["replay_paused"]))
        receiver = gauge("dbwatch_pg_wal_receiver_up", "Whether the WAL receiver is streaming from the upstream.",
                         ("status",))
        receiver.add((row["receiver_status"] or "stopped",), int(row["receiver_status"] == "streaming"))
        families += [replay_bytes, paused, receiver]
    else:
        lag.add((), 0)
    labels = ("application_name", "client_addr", "state", "slot_name")
    lsn_diff = gauge("pg_stat_replication_pg_wal_lsn_diff", "Bytes of WAL the standby has yet to replay.", labels)
    seconds = gauge("dbwatch_pg_replication_lag_seconds", "Standby lag as seen by the primary, by kind.",
                    ("application_name", "client_addr", "kind"))
    replicas = gauge("dbwatch_pg_replicas_connected", "Standbys connected to this primary.")
    for row in primary or []:
        lsn_diff.add((row["application_name"], row["client_addr"], row["state"], row["slot_name"]),
                     row["replay_lag_bytes"])
        for kind in ("write", "flush", "replay"):
            seconds.add((row["application_name"], row["client_addr"], kind), row[f"{kind}_lag"])
    if not server.in_recovery:
        replicas.add((), len(primary or []))
        families += [lsn_diff, seconds, replicas]
    return families


def _slots(rows: list[asyncpg.Record]) -> list[MetricFamily]:
    labels = ("slot_name", "slot_type", "database")
    active = gauge("pg_replication_slots_active", "Whether the slot is in use (1) or inactive (0).", labels)
    retained = gauge("pg_replication_slots_pg_wal_lsn_diff", "WAL bytes the slot keeps from being removed.", labels)
    for row in rows:
        key = (row["slot_name"], row["slot_type"], row["database"])
        active.add(key, int(row["active"]))
        retained.add(key, row["retained_bytes"])
    return [active, retained]


def _archiver(rows: list[asyncpg.Record]) -> list[MetricFamily]:
    row = rows[0]
    archived = counter("pg_stat_archiver_archived_count", "Number of WAL files successfully archived.")
    archived.add((), row["archived_count"])
    failed = counter("pg_stat_archiver_failed_count", "Number of failed attempts to archive WAL files.")
    failed.add((), row["failed_count"])
    age = gauge("pg_stat_archiver_last_archive_age", "Seconds since the last WAL file was archived.")
    age.add((), row["last_archive_age"])
    failed_age = gauge("dbwatch_pg_archiver_last_failed_age_seconds", "Seconds since the last archiving failure.")
    failed_age.add((), row["last_failed_age"])
    failing = gauge("dbwatch_pg_archiver_failing", "Whether the last archiving attempt failed (1 = yes).")
    failing.add((), int(row["failing"]))
    return [archived, failed, age, failed_age, failing]


def _bgwriter(rows: list[asyncpg.Record]) -> list[MetricFamily]:
    row = dict(rows[0])
    families = []
    for column, value in row.items():
        # postgres_exporter (0.15+) names these pg_stat_bgwriter_<column>_total.
        fam = counter(f"pg_stat_bgwriter_{column}_total", f"pg_stat_bgwriter.{column} (cumulative).")
        fam.add((), value)
        families.append(fam)
    return families


def _facts(server: ServerInfo, results: dict[str, list[asyncpg.Record]]) -> dict[str, Any]:
    connections = sum(row["count"] for row in results["activity"])
    settings = {row["name"]: row["value"] for row in results["settings"]}
    facts: dict[str, Any] = {
        "server": server,
        "settings": settings,
        "databases": [dict(row) for row in results["databases"]],
        "slots": [dict(row) for row in results["slots"]],
        "archiver": dict(results["archiver"][0]),
        "replicas": [dict(row) for row in results.get("replication", [])],
        "standby": dict(results["standby"][0]) if results.get("standby") else None,
        "summary": {
            "role": "standby" if server.in_recovery else "primary",
            "connections": f"{connections}/{int(settings.get('max_connections', 0))}",
            "databases": len(results["databases"]),
            "longest transaction (s)": round(max((r["max_tx_duration"] for r in results["activity"]), default=0.0), 1),
        },
    }
    if results.get("standby"):
        facts["summary"]["replication lag (s)"] = round(results["standby"][0]["lag_seconds"], 3)
    else:
        facts["summary"]["standbys"] = len(results.get("replication", []))
    return facts
