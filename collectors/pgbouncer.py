"""PgBouncer: the session (one psycopg 3 connection to the admin console per target) and the collector.

The dsn leads to the admin console, the pseudo-database ``pgbouncer`` (``postgresql://dbwatch@host:6432/
pgbouncer``), where PgBouncer answers SHOW commands. Metric names are pgbouncer_exporter's where it has the
metric, so its dashboards and alert rules work unchanged; what only dbwatch has is prefixed
``dbwatch_pgbouncer_``.

Why psycopg and not asyncpg: the console speaks only the simple query protocol and refuses Parse/Bind with
"extended query protocol not supported by admin console". asyncpg always uses the extended protocol. psycopg
3's default (server-side binding) cursor uses it too once a query has run ``prepare_threshold`` (5) times,
so a collector built on it works for five collections and then fails; an :class:`AsyncClientCursor` binds on
the client and sends every statement as a simple Query message, every time.
"""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import psycopg

from dbwatch.model import MetricFamily, MetricType, Snapshot, Target, gauge, info
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.model.options import CollectorOptions
from dbwatch.collectors.session import ConnectRefused, DriverSession
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.pgbouncer import (
    ADMIN_DATABASE, Pool, PoolerConfig, PoolerDatabase, PoolerDatabases, Pools, PoolerStats, PoolerStatsRows,
)

Row = dict[str, Any]

SHOW_VERSION = "SHOW VERSION"
SHOW_POOLS = "SHOW POOLS"
SHOW_STATS = "SHOW STATS"
SHOW_DATABASES = "SHOW DATABASES"
SHOW_LISTS = "SHOW LISTS"
SHOW_CONFIG = "SHOW CONFIG"


class PgBouncerSession(DriverSession[psycopg.AsyncConnection]):
    """One long-lived autocommit connection to the admin console, opened within a connect timeout and
    re-opened with the template's backoff."""

    default_port = 6432
    connect_errors = (psycopg.Error, OSError, ValueError, TypeError)
    timeout_errors = (TimeoutError, psycopg.errors.ConnectionTimeout)

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.version = ""
        # libpq counts connect_timeout in whole seconds and treats anything below 2 as 2.
        self.connect_timeout = max(2, int(self.shortest_timeout * 0.8))

    async def connect(self, password: str | None) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(
            self.target.dsn,
            password=password,
            connect_timeout=self.connect_timeout,
            application_name="dbwatch",
            autocommit=True,  # the console has no transactions: a BEGIN would be refused
            cursor_factory=psycopg.AsyncClientCursor,  # simple query protocol only (module docstring)
        )

    async def prepare(self, conn: psycopg.AsyncConnection) -> None:
        try:
            rows = await _show(conn, SHOW_VERSION)
        except psycopg.ProgrammingError as exc:
            # Logged in, but SHOW VERSION is not understood: a PostgreSQL with a database called pgbouncer.
            raise ConnectRefused(f"not a PgBouncer admin console (SHOW VERSION: {self.safe(_describe(exc))}); "
                                 "the dsn's database must be pgbouncer") from None
        version = str(rows[0].get("version", "")) if rows else ""
        if not version.startswith("PgBouncer"):
            raise ConnectRefused(f"not a PgBouncer admin console (SHOW VERSION said {version[:60]!r})")
        self.version = version.removeprefix("PgBouncer").strip()

    async def disconnect(self, conn: psycopg.AsyncConnection, graceful: bool) -> None:
        await _close(conn)

    def is_open(self, conn: psycopg.AsyncConnection) -> bool:
        return not conn.closed

    def describe(self, exc: BaseException) -> str:
        return _describe(exc)

    def connect_reason(self, exc: BaseException, password: str | None) -> str:
        reason = self.safe(_describe(exc), password)
        if _NOT_POSTGRES_PROTOCOL.search(reason):
            reason += " (the service on this port does not speak the PostgreSQL protocol: is it PgBouncer?)"
        if reason == "not allowed":  # PgBouncer's whole answer to a user outside its console's lists
            reason += " (the admin console admits only users in stats_users or admin_users of pgbouncer.ini)"
        return reason

    async def show(self, command: str) -> list[Row]:
        """Run a SHOW command: rows as dicts by column name (columns come and go between versions)."""
        conn = await self.connection()
        try:
            return await _show(conn, command)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self.lost(exc) from None
        except psycopg.DatabaseError as exc:
            raise CollectorError(f"{command} failed on {self.endpoint}: {self.safe(_describe(exc))}") from None


# libpq's words for a peer that answered, but not in the PostgreSQL protocol (with and without SSL negotiation)
_NOT_POSTGRES_PROTOCOL = re.compile(r"invalid response to SSL negotiation|expected authentication request")


async def _show(conn: psycopg.AsyncConnection, command: str) -> list[Row]:
    async with conn.cursor() as cur:
        await cur.execute(command)
        if cur.description is None:
            return []
        names = [column.name for column in cur.description]
        return [dict(zip(names, row)) for row in await cur.fetchall()]


async def _close(conn: psycopg.AsyncConnection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2)
    except Exception:  # closing a broken connection: nothing more to do
        pass


def _describe(exc: BaseException) -> str:
    """libpq's message without its preamble: 'connection to server at "h", port p failed: FATAL:  x' -> 'x'."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r'^connection failed: ', "", text)
    text = re.sub(r'^connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: ', "", text)
    return re.sub(r"^FATAL:\s+", "", text)


class PgBouncerCollector(Collector[PgBouncerSession, CollectorOptions]):
    """Pools (clients active and waiting, servers by state, the longest wait, utilisation), per-database
    traffic, database definitions, internal lists and connection limits. Facts: :class:`Pools`,
    :class:`PoolerDatabases`, :class:`PoolerStatsRows`, :class:`PoolerConfig` and the Summary."""

    name = "pgbouncer"
    up_metric = "pgbouncer_up"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            pools = await session.show(SHOW_POOLS)
            stats = await session.show(SHOW_STATS)
            databases = await session.show(SHOW_DATABASES)
            lists = await session.show(SHOW_LISTS)
            config_rows = await session.show(SHOW_CONFIG)
        snapshot.version = session.version
        settings = {str(row.get("key")): row.get("value") for row in config_rows}
        config = PoolerConfig(
            version=session.version,
            max_client_conn=_int_or_none(settings.get("max_client_conn")),
            default_pool_size=_int_or_none(settings.get("default_pool_size")),
            max_user_connections=_int_or_none(settings.get("max_user_connections")),
            max_db_connections=_int_or_none(settings.get("max_db_connections")),
        )
        database_facts = [_database(row) for row in databases]
        pool_facts = _pools(pools, database_facts, config)
        stats_facts = [_stats(row) for row in stats]
        up = gauge("pgbouncer_up", "Whether the last collection could reach the server (1 = yes).")
        up.add((), 1)
        version = info("pgbouncer_version_info", "The pgbouncer version info", ("version",))
        version.add((session.version,), 1)
        snapshot.families.extend([up, version])
        snapshot.families.extend(_pool_families(pools, pool_facts))
        snapshot.families.extend(_stats_families(stats))
        snapshot.families.extend(_database_families(databases))
        snapshot.families.extend(_list_families(lists))
        snapshot.families.extend(_config_families(config))
        snapshot.put(Pools(tuple(pool_facts)), PoolerDatabases(tuple(database_facts)),
                     PoolerStatsRows(tuple(stats_facts)), config, Summary(_summary(config, pool_facts, lists)))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _num(value: Any) -> float:
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return float(_int_or_none(value) or 0)


def _database(row: Row) -> PoolerDatabase:
    return PoolerDatabase(
        name=str(row["name"]), host=row.get("host"), port=_int_or_none(row.get("port")),
        database=str(row.get("database") or ""), force_user=row.get("force_user"),
        pool_size=int(_num(row.get("pool_size"))), reserve_pool=int(_num(row.get("reserve_pool"))),
        pool_mode=row.get("pool_mode"), max_connections=int(_num(row.get("max_connections"))),
        current_connections=int(_num(row.get("current_connections"))),
        paused=bool(_num(row.get("paused"))), disabled=bool(_num(row.get("disabled"))),
    )


def _maxwait(row: Row) -> float:
    # maxwait is whole seconds; maxwait_us (PgBouncer >= 1.8) the microseconds on top of them.
    return _num(row.get("maxwait")) + _num(row.get("maxwait_us")) / 1e6


def _pools(rows: list[Row], databases: list[PoolerDatabase], config: PoolerConfig) -> list[Pool]:
    sizes = {db.name: db.pool_size for db in databases}
    pools = []
    for row in rows:
        database = str(row["database"])
        size = sizes.get(database, config.default_pool_size)
        demand = _num(row.get("cl_active")) + _num(row.get("cl_waiting"))
        utilization = demand / size if size and database != ADMIN_DATABASE else None
        pools.append(Pool(
            database=database, user=str(row["user"]), pool_mode=row.get("pool_mode"),
            clients_active=int(_num(row.get("cl_active"))), clients_waiting=int(_num(row.get("cl_waiting"))),
            servers_active=int(_num(row.get("sv_active"))), servers_idle=int(_num(row.get("sv_idle"))),
            servers_used=int(_num(row.get("sv_used"))), servers_tested=int(_num(row.get("sv_tested"))),
            servers_login=int(_num(row.get("sv_login"))), maxwait_seconds=_maxwait(row),
            pool_size=size, utilization=utilization,
        ))
    return pools


def _stats(row: Row) -> PoolerStats:
    return PoolerStats(
        database=str(row["database"]),
        transactions=int(_num(row.get("total_xact_count"))), queries=int(_num(row.get("total_query_count"))),
        transaction_seconds=_num(row.get("total_xact_time")) / 1e6,
        query_seconds=_num(row.get("total_query_time")) / 1e6,
        wait_seconds=_num(row.get("total_wait_time")) / 1e6,
        transactions_per_second=_num(row.get("avg_xact_count")),
        queries_per_second=_num(row.get("avg_query_count")),
        avg_transaction_seconds=_num(row.get("avg_xact_time")) / 1e6,
        avg_query_seconds=_num(row.get("avg_query_time")) / 1e6,
    )


G, C = MetricType.GAUGE, MetricType.COUNTER

# pgbouncer_exporter's names for SHOW POOLS columns (labels database, user).
_POOL_METRICS: tuple[tuple[str, str, str], ...] = (
    ("cl_active", "pgbouncer_pools_client_active_connections",
     "Client connections linked to server connection and able to process queries, shown as connection"),
    ("cl_waiting", "pgbouncer_pools_client_waiting_connections",
     "Client connections waiting on a server connection, shown as connection"),
    ("cl_active_cancel_req", "pgbouncer_pools_client_active_cancel_connections",
     "Client connections that have forwarded query cancellations to the server and are waiting for the server "
     "response"),
    ("cl_waiting_cancel_req", "pgbouncer_pools_client_waiting_cancel_connections",
     "Client connections that have not forwarded query cancellations to the server yet"),
    ("sv_active", "pgbouncer_pools_server_active_connections",
     "Server connections linked to a client connection, shown as connection"),
    ("sv_active_cancel", "pgbouncer_pools_server_active_cancel_connections",
     "Server connections that are currently forwarding a cancel request."),
    ("sv_being_canceled", "pgbouncer_pools_server_being_canceled_connections",
     "Servers waiting to become idle until the cancel requests sent to them have completed."),
    ("sv_idle", "pgbouncer_pools_server_idle_connections",
     "Server connections idle and ready for a client query, shown as connection"),
    ("sv_used", "pgbouncer_pools_server_used_connections",
     "Server connections idle more than server_check_delay, needing server_check_query, shown as connection"),
    ("sv_tested", "pgbouncer_pools_server_testing_connections",
     "Server connections currently running either server_reset_query or server_check_query, shown as connection"),
    ("sv_login", "pgbouncer_pools_server_login_connections",
     "Server connections currently in the process of logging in, shown as connection"),
)

# SHOW STATS totals (labels database): (column, name, factor to the unit, help). Times are microseconds.
_STATS_TOTALS: tuple[tuple[str, str, float, str], ...] = (
    ("total_query_count", "pgbouncer_stats_queries_pooled_total", 1, "Total number of SQL queries pooled"),
    ("total_query_time", "pgbouncer_stats_queries_duration_seconds_total", 1e-6,
     "Total number of seconds spent by pgbouncer when actively connected to PostgreSQL, executing queries"),
    ("total_received", "pgbouncer_stats_received_bytes_total", 1,
     "Total volume in bytes of network traffic received by pgbouncer, shown as bytes"),
    ("total_sent", "pgbouncer_stats_sent_bytes_total", 1,
     "Total volume in bytes of network traffic sent by pgbouncer, shown as bytes"),
    ("total_requests", "pgbouncer_stats_queries_total", 1,
     "Total number of SQL requests pooled by pgbouncer, shown as requests"),
    ("total_wait_time", "pgbouncer_stats_client_wait_seconds_total", 1e-6,
     "Time spent by clients waiting for a server in seconds"),
    ("total_xact_count", "pgbouncer_stats_sql_transactions_pooled_total", 1, "Total number of SQL transactions pooled"),
    ("total_xact_time", "pgbouncer_stats_server_in_transaction_seconds_total", 1e-6,
     "Total number of seconds spent by pgbouncer when connected to PostgreSQL in a transaction, either idle in "
     "transaction or executing queries"),
    ("total_client_parse_count", "pgbouncer_stats_client_parses_total", 1,
     "Total number of prepared statement Parse messages received from clients"),
    ("total_server_parse_count", "pgbouncer_stats_server_parses_total", 1,
     "Total number of prepared statement Parse messages sent by pgbouncer to PostgreSQL"),
    ("total_bind_count", "pgbouncer_stats_binds_total", 1,
     "Total number of prepared statements readied for execution with a Bind message"),
)

# SHOW STATS averages over the last stats_period: dbwatch's own (pgbouncer_exporter leaves them out).
_STATS_AVERAGES: tuple[tuple[str, str, float, str], ...] = (
    ("avg_xact_count", "dbwatch_pgbouncer_stats_transactions_per_second", 1,
     "Transactions per second, averaged by PgBouncer over its last stats_period."),
    ("avg_query_count", "dbwatch_pgbouncer_stats_queries_per_second", 1,
     "Queries per second, averaged by PgBouncer over its last stats_period."),
    ("avg_xact_time", "dbwatch_pgbouncer_stats_average_transaction_duration_seconds", 1e-6,
     "Average transaction duration over PgBouncer's last stats_period."),
    ("avg_query_time", "dbwatch_pgbouncer_stats_average_query_duration_seconds", 1e-6,
     "Average query duration over PgBouncer's last stats_period."),
    ("avg_wait_time", "dbwatch_pgbouncer_stats_average_wait_seconds", 1e-6,
     "Time clients waited for a server, per second, over PgBouncer's last stats_period."),
)

# pgbouncer_exporter's names for SHOW DATABASES columns.
_DATABASE_LABELS = ("name", "host", "port", "database", "force_user", "pool_mode")
_DATABASE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("pool_size", "pgbouncer_databases_pool_size", "Maximum number of server connections"),
    ("reserve_pool", "pgbouncer_databases_reserve_pool", "Maximum number of additional connections for this database"),
    ("max_connections", "pgbouncer_databases_max_connections",
     "Maximum number of allowed connections for this database"),
    ("current_connections", "pgbouncer_databases_current_connections",
     "Current number of connections for this database"),
    ("paused", "pgbouncer_databases_paused", "1 if this database is currently paused, else 0"),
    ("disabled", "pgbouncer_databases_disabled", "1 if this database is currently disabled, else 0"),
)

# pgbouncer_exporter's names for SHOW LISTS rows (no labels).
_LISTS: dict[str, tuple[str, str]] = {
    "databases": ("pgbouncer_databases", "Count of databases"),
    "users": ("pgbouncer_users", "Count of users"),
    "pools": ("pgbouncer_pools", "Count of pools"),
    "free_clients": ("pgbouncer_free_clients", "Count of free clients"),
    "used_clients": ("pgbouncer_used_clients", "Count of used clients"),
    "login_clients": ("pgbouncer_login_clients", "Count of clients in login state"),
    "free_servers": ("pgbouncer_free_servers", "Count of free servers"),
    "used_servers": ("pgbouncer_used_servers", "Count of used servers"),
    "dns_names": ("pgbouncer_cached_dns_names", "Count of DNS names in the cache"),
    "dns_zones": ("pgbouncer_cached_dns_zones", "Count of DNS zones in the cache"),
    "dns_queries": ("pgbouncer_in_flight_dns_queries", "Count of in-flight DNS queries"),
}


def _pool_families(rows: list[Row], pools: list[Pool]) -> list[MetricFamily]:
    labels = ("database", "user")
    families = []
    for column, name, help in _POOL_METRICS:
        if rows and column not in rows[0]:
            continue  # a column this PgBouncer version does not have
        fam = gauge(name, help, labels)
        for row in rows:
            fam.add((row["database"], row["user"]), _num(row.get(column)))
        families.append(fam)
    maxwait = gauge("pgbouncer_pools_client_maxwait_seconds",
                    "Age of oldest unserved client connection, shown as second", labels)
    utilization = gauge(
        "dbwatch_pgbouncer_pool_utilization_ratio",
        "(Active + waiting clients) / pool size of each pool; above 1 when clients queue for a server.", labels)
    for row, pool in zip(rows, pools):
        maxwait.add((pool.database, pool.user), _maxwait(row))
        utilization.add((pool.database, pool.user), pool.utilization)
    return [*families, maxwait, utilization]


def _stats_families(rows: list[Row]) -> list[MetricFamily]:
    families = []
    for table, kind in ((_STATS_TOTALS, C), (_STATS_AVERAGES, G)):
        for column, name, factor, help in table:
            if not rows or column not in rows[0]:
                continue
            fam = MetricFamily(name, kind, help, ("database",))
            for row in rows:
                fam.add((row["database"],), _num(row.get(column)) * factor)
            families.append(fam)
    return families


def _database_families(rows: list[Row]) -> list[MetricFamily]:
    families = []
    for column, name, help in _DATABASE_METRICS:
        if rows and column not in rows[0]:
            continue
        fam = gauge(name, help, _DATABASE_LABELS)
        for row in rows:
            fam.add([row.get(label) for label in _DATABASE_LABELS], _num(row.get(column)))
        families.append(fam)
    return families


def _list_families(rows: list[Row]) -> list[MetricFamily]:
    families = []
    for row in rows:
        known = _LISTS.get(str(row.get("list")))
        if known is not None:
            fam = gauge(*known)
            fam.add((), _num(row.get("items")))
            families.append(fam)
    return families


def _config_families(config: PoolerConfig) -> list[MetricFamily]:
    families = []
    for name, help, value in (
        ("pgbouncer_config_max_client_connections", "Config maximum number of client connections",
         config.max_client_conn),
        ("pgbouncer_config_max_user_connections", "Config maximum number of server connections per user",
         config.max_user_connections),
        ("dbwatch_pgbouncer_config_default_pool_size",
         "default_pool_size: server connections per pool where the database sets no pool_size",
         config.default_pool_size),
    ):
        fam = gauge(name, help)
        fam.add((), value)
        families.append(fam)
    return families


def _summary(config: PoolerConfig, pools: list[Pool], lists: list[Row]) -> dict[str, Any]:
    """What ``dbwatch check`` prints."""
    counts = {str(row.get("list")): int(_num(row.get("items"))) for row in lists}
    busiest = max((p for p in pools if p.utilization is not None), key=lambda p: p.utilization or 0.0, default=None)
    summary: dict[str, Any] = {
        "version": config.version,
        "clients": f"{counts.get('used_clients', 0)}/{config.max_client_conn}",
        "pools": len([p for p in pools if p.database != ADMIN_DATABASE]),
        "clients waiting": sum(p.clients_waiting for p in pools),
    }
    if busiest is not None:
        summary["busiest pool"] = f"{busiest.database}/{busiest.user} at {busiest.utilization:.0%}"
    return summary
