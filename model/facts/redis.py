"""The typed facts the Redis collectors put on a snapshot for rules to read (``snapshot.fact(T)``).

Rules never import collectors, so they read these by attribute. Times are seconds, sizes bytes; a field is
``None`` when the server did not say (an older Redis, or CONFIG renamed away). Roles keep Redis's own words
(``master``/``slave``), as INFO and redis_exporter's ``role`` label do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class RedisReplica:
    """A replica as its primary sees it (INFO replication ``slaveN``)."""

    ip: str
    port: int
    state: str  # "online", "wait_bgsave", "send_bulk", ...
    offset: int
    lag_bytes: int  # the primary's master_repl_offset minus this replica's acknowledged offset
    lag_seconds: float  # seconds since the replica's last acknowledgement (1 s resolution)


@dataclass(frozen=True, slots=True)
class RedisKeyspace:
    """One database of INFO keyspace."""

    db: int
    keys: int
    expires: int
    avg_ttl_seconds: float


@dataclass(frozen=True, slots=True)
class RedisInfo:
    """The server as one INFO (and CONFIG GET, when allowed) describes it."""

    version: str
    mode: str  # standalone, cluster, sentinel
    role: str  # master or slave
    uptime_seconds: float
    connected_clients: int
    blocked_clients: int
    maxclients: int | None
    rejected_connections: int
    used_memory_bytes: int
    maxmemory_bytes: int  # 0: no limit
    maxmemory_policy: str | None
    fragmentation_ratio: float | None
    evicted_keys: int
    expired_keys: int
    keyspace_hits: int
    keyspace_misses: int
    commands_processed: int
    # replication, this server as a replica (None on a primary)
    master_host: str | None
    master_port: int | None
    master_link_status: str | None  # "up" or "down"
    master_last_io_seconds: float | None  # None while the link is down (INFO says -1)
    master_link_down_seconds: float | None
    # replication, this server as a primary
    connected_replicas: int
    replicas: list[RedisReplica]
    # persistence
    rdb_last_save_time: float  # at startup Redis counts the data as saved: see rdb_saves
    rdb_last_save_age_seconds: float
    rdb_saves: int | None  # successful RDB saves since startup (Redis >= 7)
    rdb_changes_since_last_save: int
    rdb_last_bgsave_ok: bool
    rdb_bgsave_in_progress: bool
    rdb_save_schedule: str | None  # CONFIG GET save: "" means snapshots are off; None when CONFIG is unavailable
    aof_enabled: bool
    aof_last_rewrite_ok: bool
    aof_last_write_ok: bool
    keyspace: list[RedisKeyspace] = field(default_factory=list)
    config_available: bool = True

    @property
    def memory_used_ratio(self) -> float | None:
        """used_memory over maxmemory; None when no limit is set (Redis then grows until the OS stops it)."""
        return self.used_memory_bytes / self.maxmemory_bytes if self.maxmemory_bytes else None

    @property
    def clients_used_ratio(self) -> float | None:
        return self.connected_clients / self.maxclients if self.maxclients else None

    @property
    def hit_ratio(self) -> float | None:
        """Keyspace hits over lookups since startup (or CONFIG RESETSTAT); None before the first lookup."""
        lookups = self.keyspace_hits + self.keyspace_misses
        return self.keyspace_hits / lookups if lookups else None

    @property
    def keys(self) -> int:
        return sum(db.keys for db in self.keyspace)


@dataclass(frozen=True, slots=True)
class SlowEntry:
    """One SLOWLOG entry seen for the first time."""

    id: int
    started_at: float
    duration_seconds: float
    command: str  # upper case; "CONFIG SET" for commands with a subcommand
    key_pattern: str  # the key with digits and UUIDs folded to "*"; "" for commands without a key
    client_addr: str
    client_name: str


@dataclass(frozen=True, slots=True)
class SlowGroup:
    """Slow entries of one command and key pattern, since the previous collection."""

    command: str
    key_pattern: str
    count: int
    total_seconds: float
    max_seconds: float


@dataclass(frozen=True, slots=True)
class Slowlog:
    """What the server's slow log gained since the previous collection.

    The first collection of an agent only takes the baseline (``baseline`` is True, nothing is counted), so
    entries are never counted twice across collections.
    """

    baseline: bool
    entries: list[SlowEntry]
    groups: list[SlowGroup]  # by total time, longest first
    lost: int  # entries that left the server's ring (slowlog-max-len) or were reset before dbwatch read them
    length: int  # SLOWLOG LEN
    log_slower_than_seconds: float | None  # slowlog-log-slower-than (None without CONFIG; negative = off)


@dataclass(frozen=True, slots=True)
class LatencyEvent:
    """One event of LATENCY LATEST."""

    event: str
    last_spike_at: float
    latest_seconds: float
    max_seconds: float


@dataclass(frozen=True, slots=True)
class LatencyEvents(FactList[LatencyEvent]):
    """LATENCY LATEST (the slowlog collector)."""
