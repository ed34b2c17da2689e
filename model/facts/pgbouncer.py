"""Typed rows the PgBouncer collector hands to rules (``snapshot.fact(T)``): pools, databases, per-database
traffic and the few settings that bound them."""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

#: the admin console's own pseudo-database: listed by SHOW POOLS and SHOW DATABASES, but it pools nothing
ADMIN_DATABASE = "pgbouncer"


@dataclass(frozen=True, slots=True)
class Pool:
    """One row of SHOW POOLS (a pool is per database and user), with the pool size it is measured against."""

    database: str
    user: str
    pool_mode: str | None
    clients_active: int
    clients_waiting: int
    servers_active: int
    servers_idle: int
    servers_used: int
    servers_tested: int
    servers_login: int
    maxwait_seconds: float
    #: from SHOW DATABASES, else the config's default_pool_size; None when neither is known
    pool_size: int | None
    #: (active + waiting clients) / pool_size: demand against capacity, above 1 when clients queue
    utilization: float | None


@dataclass(frozen=True, slots=True)
class PoolerDatabase:
    """One row of SHOW DATABASES: where a PgBouncer database name leads and how big its pool may grow."""

    name: str
    host: str | None
    port: int | None
    database: str
    force_user: str | None
    pool_size: int
    reserve_pool: int
    pool_mode: str | None
    max_connections: int
    current_connections: int
    paused: bool
    disabled: bool


@dataclass(frozen=True, slots=True)
class PoolerStats:
    """One row of SHOW STATS: cumulative totals since PgBouncer started, and its averages over the last
    ``stats_period`` (60 s by default)."""

    database: str
    transactions: int
    queries: int
    transaction_seconds: float
    query_seconds: float
    wait_seconds: float
    transactions_per_second: float
    queries_per_second: float
    avg_transaction_seconds: float
    avg_query_seconds: float


@dataclass(frozen=True, slots=True)
class PoolerConfig:
    version: str
    max_client_conn: int | None
    default_pool_size: int | None
    max_user_connections: int | None
    max_db_connections: int | None


@dataclass(frozen=True, slots=True)
class Pools(FactList[Pool]):
    """SHOW POOLS."""


@dataclass(frozen=True, slots=True)
class PoolerDatabases(FactList[PoolerDatabase]):
    """SHOW DATABASES."""


@dataclass(frozen=True, slots=True)
class PoolerStatsRows(FactList[PoolerStats]):
    """SHOW STATS, one row per database."""
