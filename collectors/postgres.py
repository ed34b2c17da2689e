"""PostgreSQL: the session (one asyncpg connection per target) and the server-wide collector.

Metric names are postgres_exporter's where it has the metric, so its dashboards and alert rules work
unchanged; what only dbwatch has is prefixed ``dbwatch_pg_``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from typing import TYPE_CHECKING, Any, Mapping

from dbwatch.model import MetricFamily, Snapshot, Target, counter, gauge, info
from dbwatch.collectors import postgres_sql as sql
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.pg_batch import Rows, fetch_batch
from dbwatch.model.options import CollectorOptions
from dbwatch.collectors.session import DriverSession
from dbwatch.model.facts.common import PRIMARY, REPLICA, ReplicationLink, Summary
from dbwatch.model.facts.postgres import (
    Activity, Archiver, Database, Databases, Replica, Replicas, ServerInfo, Settings, Slot, Slots, Standby,
)

logger = logging.getLogger(__name__)

# Transaction IDs: the server refuses new XIDs as a database's datfrozenxid age nears 2^31 (it stops
# 3 million short), whatever autovacuum_freeze_max_age says; that setting only triggers the
# anti-wraparound vacuum. The margin is measured against the hard limit.
WRAPAROUND_LIMIT = 2**31
#: prepared statements kept per connection (asyncpg's LRU): every monitoring statement of the default collectors
STATEMENT_CACHE = 100

if TYPE_CHECKING:  # asyncpg is imported by the session when it connects: validating a config does not load it
    import asyncpg


class PostgresSession(DriverSession["asyncpg.Connection"]):
    """One long-lived connection: read-only, ``application_name=dbwatch``, bounded statements and locks."""

    default_port = 5432
    connect_errors = (Exception,)  # asyncpg raises OSError, PostgresError, InterfaceError, ValueError...

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.server: ServerInfo | None = None
        # The server cancels a statement at 80 % of the shortest collector timeout, so the usual failure
        # is a clean server-side cancel that keeps the connection, rather than the daemon's timeout
        # dropping it (and the backend possibly running on). The 20 % margin covers the round trip.
        self.statement_timeout_ms = max(100, int(self.shortest_timeout * 800))
        # A monitoring query waiting on a lock is worse than none: it queues behind an ALTER/DROP and
        # every later query on that relation then queues behind *us*. Give up within 2 s and say so.
        self.lock_timeout_ms = min(self.statement_timeout_ms, 2000)
        # The monitoring statements run every interval: prepared once per connection, each then costs one
        # round trip instead of two (Parse/Describe, then Bind/Execute), which halves the agent's and the
        # server's work per collection. The price is ~4 MiB of plans in the one backend per target. Through
        # a pooler in transaction mode prepared statements are lost between transactions: the first error
        # saying so turns them off for this target (see run).
        self.statement_cache_size = STATEMENT_CACHE

    async def connected_server(self) -> ServerInfo:
        """What the server said about itself when the (possibly new) connection was opened."""
        await self.connection()
        assert self.server is not None
        return self.server

    async def connect(self, password: str | None) -> asyncpg.Connection:
        import asyncpg

        return await asyncpg.connect(
            self.target.dsn,
            password=password,
            timeout=max(1.0, self.statement_timeout_ms / 1000),
            statement_cache_size=self.statement_cache_size,
            server_settings={
                "application_name": "dbwatch",
                "statement_timeout": str(self.statement_timeout_ms),
                "lock_timeout": str(self.lock_timeout_ms),
                "default_transaction_read_only": "on",
                "idle_in_transaction_session_timeout": "60000",
            },
        )

    async def prepare(self, conn: asyncpg.Connection) -> None:
        import asyncpg

        try:
            # numeric (LSN differences, epochs) as float: these are measurements, not money.
            await conn.set_type_codec("numeric", encoder=str, decoder=float, schema="pg_catalog", format="text")
            row = await conn.fetchrow(sql.SERVER)
        except (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError):
            self._without_prepared_statements()
            raise
        self.server = ServerInfo(**dict(row))

    def _without_prepared_statements(self) -> None:
        """A pooler between us and the server loses prepared statements between transactions: unnamed ones from
        the next connection on (the error at hand fails this collection; the next one reconnects)."""
        if self.statement_cache_size:
            logger.warning("%s: prepared statements do not survive on this connection (a pooler in transaction "
                           "mode?): reconnecting without them", self.target.name, extra={"target": self.target.name})
            self.statement_cache_size = 0

    async def disconnect(self, conn: asyncpg.Connection, graceful: bool) -> None:
        # terminate(), not close(), when not graceful: close() waits for the server, which may be what is stuck.
        if graceful:
            try:
                await conn.close(timeout=2)
                return
            except Exception:  # closing a broken connection: nothing more to do than drop it
                pass
        conn.terminate()

    def is_open(self, conn: asyncpg.Connection) -> bool:
        return not conn.is_closed()

    def describe(self, exc: BaseException) -> str:
        return _describe(exc)

    async def promote(self, timeout: float) -> tuple[bool, str]:
        """``pg_promote()`` on this standby, waiting up to ``timeout`` for it to finish (failover's ``pg_promote``
        action; the role needs superuser or ``GRANT EXECUTE ON FUNCTION pg_promote``)."""
        import asyncpg

        name = self.target.name
        async with self.lock:
            conn = await self.connection()
            try:
                if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                    return False, f"pg_promote: {name} is not in recovery any more; nothing done"
                async with conn.transaction():  # read-only, as every transaction on a standby is
                    # The promotion may take longer than the monitoring statements are allowed to.
                    await conn.execute(f"SET LOCAL statement_timeout = {int((timeout + 5) * 1000)}")
                    promoted = await conn.fetchval("SELECT pg_promote(true, $1)", max(1, int(timeout)))
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
                raise self.lost(exc) from None
            except asyncpg.PostgresError as exc:
                raise CollectorError(f"pg_promote failed on {self.endpoint}: {self.safe(_describe(exc))}") from None
        if promoted:
            return True, f"ran SELECT pg_promote() on {name}: promoted"
        return False, f"ran SELECT pg_promote() on {name}: not promoted within {timeout:g}s"

    async def run(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run a query; a lost connection is dropped (reconnect next time) and reported plainly."""
        import asyncpg  # already loaded by connect(): a dictionary look-up

        conn = await self.connection()
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
            raise self.lost(exc) from None
        except (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError) as exc:
            self._without_prepared_statements()
            raise self.lost(exc) from None
        except asyncpg.PostgresError as exc:
            raise CollectorError(f"query failed on {self.endpoint}: {self.safe(_describe(exc))}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class PostgresCollector(Collector[PostgresSession, CollectorOptions]):
    """The server as a whole: connections, locks, databases, wraparound, replication, slots, WAL archiving,
    checkpoints. Facts (see :mod:`dbwatch.model.facts.postgres`): ServerInfo, Settings, Activity, Databases,
    Replicas, Standby (in recovery only), Slots, Archiver, the neutral ReplicationLink and the Summary."""

    name = "postgres"
    up_metric = "pg_up"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            await session.connection()
            assert session.server is not None
            # One round trip (collectors/pg_batch.py). Replication is read as the role the server had when last
            # seen; a server promoted (or re-made a standby) since is read again in its new role.
            for _ in range(2):
                server = session.server
                try:
                    results = await fetch_batch(session, sql.server_batch(server.version_num, server.in_recovery),
                                                list(sql.EXPORTED_SETTINGS))
                    in_recovery = results["recovery"][0]["in_recovery"]
                except CollectorError:
                    # The role's queries raise in the other role (pg_is_wal_replay_paused() on a primary): a
                    # promotion fails the batch before it can tell. Asked alone; the same role: a real failure.
                    if not session.connected:  # the connection broke: that is the failure to report
                        raise
                    in_recovery = (await session.run(sql.IN_RECOVERY))[0]["in_recovery"]
                    if in_recovery == server.in_recovery:
                        raise
                if in_recovery == server.in_recovery:
                    break
                session.server = dataclasses.replace(server, in_recovery=in_recovery)
            else:
                raise CollectorError(f"{self.target.name} changed role twice during one collection; trying again")
            snapshot.version = server.version
        settings_families, settings = _settings(results["settings"])
        activity_families, activity = _activity(results["activity"])
        database_families, databases = _databases(results["databases"])
        snapshot.families.extend(_server_families(server))
        snapshot.families.extend(settings_families)
        snapshot.families.extend(activity_families)
        snapshot.families.extend(_locks(results["locks"]))
        snapshot.families.extend(database_families)
        replication_families, replicas, standby = _replication(server, results.get("replication", []),
                                                               results.get("standby", []))
        snapshot.families.extend(replication_families)
        slot_families, slots = _slots(results["slots"])
        snapshot.families.extend(slot_families)
        archiver_families, archiver = _archiver(results["archiver"][0])
        snapshot.families.extend(archiver_families)
        snapshot.families.extend(_bgwriter(results["bgwriter"][0]))
        snapshot.put(server, settings, activity, Databases(tuple(databases)), Replicas(tuple(replicas)),
                     Slots(tuple(slots)), archiver, replication_link(server, standby),
                     Summary(_summary(server, settings, activity, databases, replicas, standby)))
        if standby is not None:
            snapshot.put(standby)
        snapshot.notes.extend(_privilege_notes(server, databases))


def replication_link(server: ServerInfo, standby: Standby | None) -> ReplicationLink:
    """The server's role and WAL receiver in the engine-neutral words the cluster rules read."""
    if not server.in_recovery:
        return ReplicationLink(PRIMARY, writable=True)
    hint = "the server keeps no error text here; its log says why"
    if standby is None:
        return ReplicationLink(REPLICA, link_up=False, link_state="unknown", error_hint=hint)
    upstream = (standby.upstream_host, int(standby.upstream_port or 0)) if standby.upstream_host else None
    return ReplicationLink(
        REPLICA, link_up=standby.receiver_status == "streaming", link_state=standby.receiver_status,
        error_hint=hint, lag_seconds=float(standby.lag_seconds), lag_bytes=float(standby.replay_lag_bytes),
        upstream=upstream, replay_paused=bool(standby.replay_paused),
    )


def _privilege_notes(server: ServerInfo, databases: list[Database]) -> list[str]:
    notes = []
    if not server.superuser and not server.monitor:
        notes.append(
            f"role {server.role} is not a member of pg_monitor: other sessions' states and queries, "
            f"standbys' WAL positions and the WAL receiver's status are hidden; run GRANT pg_monitor TO "
            f"{server.role};"
        )
    hidden = sorted(db.datname for db in databases if db.size_bytes is None)
    if hidden:
        notes.append(
            f"role {server.role} may not connect to {', '.join(hidden)} and lacks pg_read_all_stats: their "
            f"sizes are not exported; run GRANT pg_monitor TO {server.role};"
        )
    return notes


def _server_families(server: ServerInfo) -> list[MetricFamily]:
    up = gauge("pg_up", "Whether the last collection could reach the server (1 = yes).")
    up.add((), 1)
    # postgres_exporter's labels: version() in full, and the version as semver (15.6 -> 15.6.0).
    static = info("pg_static", "Version string as reported by postgres", ("version", "short_version"))
    static.add((server.full_version, _short_version(server.version_num)), 1)
    start = gauge("pg_postmaster_start_time_seconds", "Time at which postmaster started (Unix time).")
    start.add((), server.start_time)
    replica = gauge("pg_replication_is_replica", "Indicates if the server is a replica (1 = in recovery).")
    replica.add((), int(server.in_recovery))
    return [up, static, start, replica]


def _short_version(num: int) -> str:
    if num >= 100000:
        return f"{num // 10000}.{num % 10000}.0"
    return f"{num // 10000}.{num // 100 % 100}.{num % 100}"


# postgres_exporter's conversion: sizes to bytes, durations to seconds, with the unit as a name suffix;
# -1 (disabled) is kept as is.
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNIT = re.compile(r"^(\d*)(B|kB|MB|GB|TB)$")
_SIZE_FACTORS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _setting_value(row: Any) -> tuple[str, float]:
    name, setting, unit = row["name"], row["setting"], row["unit"] or ""
    if row["vartype"] == "bool":
        return name, 1.0 if setting == "on" else 0.0
    value = float(setting)
    if unit in _TIME_UNITS:
        return f"{name}_seconds", value if value == -1 else value * _TIME_UNITS[unit]
    size = _SIZE_UNIT.match(unit)
    if size:
        factor = int(size.group(1) or 1) * _SIZE_FACTORS[size.group(2)]
        return f"{name}_bytes", value if value == -1 else value * factor
    return name, value


def _settings(rows: Rows) -> tuple[list[MetricFamily], Settings]:
    families, values = [], {}
    for row in rows:
        name, value = _setting_value(row)
        values[name] = value
        fam = gauge(f"pg_settings_{name}", f"Server Parameter: {row['name']}")
        fam.add((), value)
        families.append(fam)
    settings = Settings(
        max_connections=int(values.get("max_connections", 0)),
        superuser_reserved_connections=int(values.get("superuser_reserved_connections", 0)),
        autovacuum_freeze_max_age=int(values.get("autovacuum_freeze_max_age", 0)),
        max_wal_senders=int(values.get("max_wal_senders", 0)),
        max_replication_slots=int(values.get("max_replication_slots", 0)),
        shared_buffers_bytes=values.get("shared_buffers_bytes", 0.0),
        work_mem_bytes=values.get("work_mem_bytes", 0.0),
        track_io_timing=bool(values.get("track_io_timing", 0.0)),
    )
    return families, settings


def _activity(rows: Rows) -> tuple[list[MetricFamily], Activity]:
    count = gauge("pg_stat_activity_count", "number of connections in this state", ("datname", "state"))
    tx = gauge("pg_stat_activity_max_tx_duration", "max duration in seconds any active transaction has been running",
               ("datname", "state"))
    oldest_query = gauge("dbwatch_pg_oldest_query_seconds", "Age of the longest-running active query.")
    waiting = gauge("dbwatch_pg_waiting_sessions", "Client sessions waiting on a lock.")
    by_state: dict[str, int] = {}
    for row in rows:
        count.add((row["datname"], row["state"]), row["count"])
        tx.add((row["datname"], row["state"]), row["max_tx_duration"])
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["count"]
    activity = Activity(
        connections=sum(by_state.values()),
        by_state=by_state,
        oldest_xact_seconds=max((row["max_tx_duration"] for row in rows), default=0.0),
        oldest_query_seconds=max((row["max_query_duration"] for row in rows), default=0.0),
        oldest_idle_in_xact_seconds=max((row["max_idle_in_xact"] for row in rows), default=0.0),
        oldest_xmin_age=max((row["max_xmin_age"] for row in rows), default=0),
        waiting_on_locks=sum(row["waiting"] for row in rows),
    )
    oldest_query.add((), activity.oldest_query_seconds)
    waiting.add((), activity.waiting_on_locks)
    return [count, tx, oldest_query, waiting], activity


def _locks(rows: Rows) -> list[MetricFamily]:
    fam = gauge("pg_locks_count", "Number of locks", ("datname", "mode"))
    for row in rows:
        fam.add((row["datname"], row["mode"]), row["count"])
    return [fam]


def _databases(rows: Rows) -> tuple[list[MetricFamily], list[Database]]:
    labels = ("datid", "datname")
    backends = gauge("pg_stat_database_numbackends", "Number of backends currently connected to this database.", labels)
    counters = {
        name: counter(f"pg_stat_database_{name}", f"pg_stat_database.{name} (cumulative).", labels)
        for name in sql.DATABASE_COUNTERS
    }
    size = gauge("pg_database_size_bytes", "Disk space used by the database", ("datname",))
    age = gauge("pg_database_wraparound_age_datfrozenxid_seconds",
                "Age of the oldest transaction ID that has not been frozen (in transactions, despite the name).",
                ("datname",))
    mxid_age = gauge("pg_database_wraparound_age_datminmxid_seconds",
                     "Age of the oldest multi-transaction ID that has been replaced with a transaction ID "
                     "(in multixacts, despite the name).", ("datname",))
    margin = gauge("dbwatch_pg_wraparound_margin_ratio",
                   "Share of the transaction ID space (2^31) left before the server refuses writes (1 = all).",
                   ("datname",))
    databases = []
    for row in rows:
        key = (row["datid"], row["datname"])
        backends.add(key, row["numbackends"])
        for name, fam in counters.items():
            fam.add(key, row[name])
        size.add((row["datname"],), row["size_bytes"])
        if not row["listed"]:  # a template or the shared catalogs: statistics only, as postgres_exporter
            continue
        ratio = max(0.0, 1 - max(row["frozenxid_age"], row["minmxid_age"]) / WRAPAROUND_LIMIT)
        age.add((row["datname"],), row["frozenxid_age"])
        mxid_age.add((row["datname"],), row["minmxid_age"])
        margin.add((row["datname"],), ratio)
        databases.append(Database(
            datname=row["datname"], numbackends=row["numbackends"], size_bytes=row["size_bytes"],
            frozenxid_age=row["frozenxid_age"], minmxid_age=row["minmxid_age"], wraparound_margin_ratio=ratio,
            xact_commit=row["xact_commit"], xact_rollback=row["xact_rollback"], deadlocks=row["deadlocks"],
            temp_bytes=row["temp_bytes"],
        ))
    return [backends, *counters.values(), size, age, mxid_age, margin], databases


def _replication(server: ServerInfo, primary: Rows, standby_rows: Rows
                 ) -> tuple[list[MetricFamily], list[Replica], Standby | None]:
    # On a standby, "now - pg_last_xact_replay_timestamp()" (postgres_exporter's definition) grows while
    # the primary is idle although nothing is behind. dbwatch reports 0 once everything received has
    # been replayed, and exports the byte distance and the receiver's state beside it, so a standby cut
    # off from its primary (nothing received, nothing to replay) shows as receiver down, not as lag 0.
    lag = gauge("pg_replication_lag_seconds",
                "Replication lag behind the primary in seconds (0 on a primary and on a caught-up standby).")
    # The name postgres_exporter used before 0.11, which its mixin's dashboards and alerts still query.
    old_lag = gauge("pg_replication_lag", "Replication lag behind master in seconds (pg_replication_lag_seconds).")
    families = [lag, old_lag]
    standby = None
    if standby_rows:
        row = standby_rows[0]
        standby = Standby(
            lag_seconds=row["lag_seconds"], replay_lag_bytes=row["replay_lag_bytes"],
            replay_paused=row["replay_paused"], receiver_status=row["receiver_status"] or "stopped",
            upstream_host=row["upstream_host"], upstream_port=row["upstream_port"],
        )
        lag.add((), standby.lag_seconds)
        old_lag.add((), standby.lag_seconds)
        replay_bytes = gauge("dbwatch_pg_replay_lag_bytes", "WAL received but not yet replayed by this standby.")
        replay_bytes.add((), standby.replay_lag_bytes)
        paused = gauge("dbwatch_pg_replay_paused", "Whether WAL replay is paused on this standby.")
        paused.add((), int(standby.replay_paused))
        receiver = gauge("dbwatch_pg_wal_receiver_up", "Whether the WAL receiver is streaming from the upstream.",
                         ("status",))
        receiver.add((standby.receiver_status,), int(standby.receiver_status == "streaming"))
        families += [replay_bytes, paused, receiver]
        return families, [], standby
    lag.add((), 0)
    old_lag.add((), 0)
    labels = ("application_name", "client_addr", "state", "slot_name")
    lsn_diff = gauge("pg_stat_replication_pg_wal_lsn_diff", "Lag in bytes between master and slave", labels)
    seconds = gauge("dbwatch_pg_replication_lag_seconds",
                    "Standby lag as measured by the primary (pg_stat_replication *_lag; 0 when caught up).",
                    ("application_name", "client_addr", "kind"))
    connected = gauge("dbwatch_pg_replicas_connected", "Standbys connected to this primary.")
    replicas = []
    for row in primary:
        replica = Replica(
            application_name=row["application_name"], client_addr=row["client_addr"], state=row["state"],
            sync_state=row["sync_state"], slot_name=row["slot_name"], replay_lag_bytes=row["replay_lag_bytes"],
            flush_lag_bytes=row["flush_lag_bytes"], write_lag_seconds=row["write_lag"],
            flush_lag_seconds=row["flush_lag"], replay_lag_seconds=row["replay_lag"],
        )
        replicas.append(replica)
        lsn_diff.add((replica.application_name, replica.client_addr, replica.state, replica.slot_name),
                     replica.replay_lag_bytes)
        for kind, value in (("write", replica.write_lag_seconds), ("flush", replica.flush_lag_seconds),
                            ("replay", replica.replay_lag_seconds)):
            seconds.add((replica.application_name, replica.client_addr, kind), value)
    connected.add((), len(replicas))
    return [*families, lsn_diff, seconds, connected], replicas, None


def _slots(rows: Rows) -> tuple[list[MetricFamily], list[Slot]]:
    labels = ("slot_name", "slot_type", "database")
    active = gauge("pg_replication_slots_active", "Flag indicating if the slot is active", labels)
    retained = gauge("pg_replication_slots_pg_wal_lsn_diff", "Replication lag in bytes", labels)
    slots = []
    for row in rows:
        slot = Slot(slot_name=row["slot_name"], slot_type=row["slot_type"], database=row["database"],
                    active=row["active"], retained_bytes=row["retained_bytes"])
        slots.append(slot)
        key = (slot.slot_name, slot.slot_type, slot.database)
        active.add(key, int(slot.active))
        retained.add(key, slot.retained_bytes)
    return [active, retained], slots


def _archiver(row: Mapping[str, Any]) -> tuple[list[MetricFamily], Archiver]:
    archiver = Archiver(**dict(row))
    archived = counter("pg_stat_archiver_archived_count", "Number of WAL files that have been successfully archived")
    archived.add((), archiver.archived_count)
    failed = counter("pg_stat_archiver_failed_count", "Number of failed attempts for archiving WAL files")
    failed.add((), archiver.failed_count)
    age = gauge("pg_stat_archiver_last_archive_age", "Time in seconds since last WAL segment was successfully archived")
    # Never archived: NaN, as postgres_exporter shows it (a missing series would read as "not monitored").
    age.add((), math.nan if archiver.last_archive_age is None else archiver.last_archive_age)
    failed_age = gauge("dbwatch_pg_archiver_last_failed_age_seconds", "Seconds since the last archiving failure.")
    failed_age.add((), archiver.last_failed_age)
    failing = gauge("dbwatch_pg_archiver_failing", "Whether the last archiving attempt failed (1 = yes).")
    failing.add((), int(archiver.failing))
    return [archived, failed, age, failed_age, failing], archiver


def _bgwriter(row: Mapping[str, Any]) -> list[MetricFamily]:
    families = []
    for column, value in row.items():
        # postgres_exporter names these pg_stat_bgwriter_<column>_total, also for PostgreSQL 17.
        fam = counter(f"pg_stat_bgwriter_{column}_total", f"pg_stat_bgwriter.{column} (cumulative).")
        fam.add((), value)
        families.append(fam)
    return families


def _summary(server: ServerInfo, settings: Settings, activity: Activity, databases: list[Database],
             replicas: list[Replica], standby: Standby | None) -> dict[str, Any]:
    """What ``dbwatch check`` prints: a handful of human-readable numbers."""
    summary: dict[str, Any] = {
        "role": "standby" if server.in_recovery else "primary",
        "connections": f"{activity.connections}/{settings.max_connections}",
        "databases": len(databases),
        "longest transaction (s)": round(activity.oldest_xact_seconds, 1),
    }
    if standby is not None:
        summary["replication lag (s)"] = round(standby.lag_seconds, 3)
    else:
        summary["standbys"] = len(replicas)
    return summary
