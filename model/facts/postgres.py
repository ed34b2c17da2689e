"""The typed facts the PostgreSQL collector puts on a snapshot for rules to read.

Rules never import collectors (imports follow the flow), so they read these by attribute; the types
live here to keep each fact's shape in one place and small. Times are seconds, sizes bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """The server and the agent's role on it, read once per connection."""

    version: str  # server_version, e.g. "15.6 (Debian 15.6-0+deb12u1)"
    full_version: str  # version(), e.g. "PostgreSQL 15.6 (Debian ...) on x86_64-pc-linux-gnu, ..."
    version_num: int
    in_recovery: bool
    start_time: float
    role: str
    superuser: bool
    monitor: bool  # member of pg_monitor
    read_all_stats: bool  # member of pg_read_all_stats (pg_monitor includes it)


@dataclass(frozen=True, slots=True)
class Settings:
    """The settings rules reason about, in base units (-1 kept as "disabled")."""

    max_connections: int
    superuser_reserved_connections: int
    autovacuum_freeze_max_age: int
    max_wal_senders: int
    max_replication_slots: int
    shared_buffers_bytes: float
    work_mem_bytes: float
    track_io_timing: bool

    @property
    def usable_connections(self) -> int:
        """Connections left to ordinary roles (what postgres_exporter's mixin alerts against)."""
        return self.max_connections - self.superuser_reserved_connections


@dataclass(frozen=True, slots=True)
class Activity:
    """Client sessions, over all databases."""

    connections: int
    by_state: dict[str, int]
    oldest_xact_seconds: float  # 0 when no transaction is open
    oldest_query_seconds: float  # among active queries
    oldest_idle_in_xact_seconds: float
    oldest_xmin_age: int  # transactions; what holds back vacuum, 0 when none
    waiting_on_locks: int


@dataclass(frozen=True, slots=True)
class Database:
    """One database of pg_stat_database."""

    datname: str
    numbackends: int
    size_bytes: int | None  # None when the role may not connect to it (and lacks pg_read_all_stats)
    frozenxid_age: int
    minmxid_age: int
    wraparound_margin_ratio: float
    xact_commit: int
    xact_rollback: int
    deadlocks: int
    temp_bytes: int


@dataclass(frozen=True, slots=True)
class Replica:
    """One row: a standby as seen from its primary (pg_stat_replication)."""

    application_name: str
    client_addr: str
    state: str
    sync_state: str
    slot_name: str
    replay_lag_bytes: float | None
    flush_lag_bytes: float | None
    write_lag_seconds: float
    flush_lag_seconds: float
    replay_lag_seconds: float


@dataclass(frozen=True, slots=True)
class Standby:
    """The WAL receiver and replay, on a server in recovery only."""

    lag_seconds: float
    replay_lag_bytes: float
    replay_paused: bool
    receiver_status: str  # "streaming", "catchup", ... or "stopped" when no WAL receiver runs
    upstream_host: str | None
    upstream_port: int | None


@dataclass(frozen=True, slots=True)
class Slot:
    """One replication slot."""

    slot_name: str
    slot_type: str
    database: str
    active: bool
    retained_bytes: float


@dataclass(frozen=True, slots=True)
class Archiver:
    """The WAL archiver (pg_stat_archiver)."""

    archived_count: int
    failed_count: int
    last_archive_age: float | None
    last_failed_age: float | None
    failing: bool


@dataclass(frozen=True, slots=True)
class Databases(FactList[Database]):
    """pg_stat_database, one row per database (the postgres collector)."""


@dataclass(frozen=True, slots=True)
class Replicas(FactList[Replica]):
    """pg_stat_replication: the standbys streaming from this server (none on a standby)."""


@dataclass(frozen=True, slots=True)
class Slots(FactList[Slot]):
    """pg_replication_slots."""
