"""The typed facts the MySQL/MariaDB collectors put on a snapshot for rules to read (``snapshot.fact(T)``).

Shapes follow :mod:`dbwatch.model.facts.postgres` where the idea is the same (server, settings, activity, statements), so
a rule can read either engine by attribute. Times are seconds, sizes bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """The server and the agent's user on it, read once per connection."""

    version: str  # VERSION(), e.g. "10.11.6-MariaDB-0+deb12u1-log"
    version_tuple: tuple[int, int, int]
    flavor: str  # "mariadb" or "mysql"
    version_comment: str
    user: str  # CURRENT_USER(), e.g. "dbwatch@%"
    server_id: int
    privileges: frozenset[str]  # the user's global privileges (USER_PRIVILEGES), upper case

    @property
    def mariadb(self) -> bool:
        return self.flavor == "mariadb"


@dataclass(frozen=True, slots=True)
class Settings:
    """The global variables rules reason about."""

    max_connections: int
    innodb_buffer_pool_size: int
    read_only: bool
    performance_schema: bool
    long_query_time: float
    slow_query_log: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A few global status counters (cumulative since start) and derived ratios."""

    uptime: float
    start_time: float
    threads_connected: int
    threads_running: int
    max_used_connections: int
    connections: int
    aborted_connects: int
    aborted_clients: int
    slow_queries: int
    created_tmp_tables: int
    created_tmp_disk_tables: int
    innodb_row_lock_waits: int
    innodb_row_lock_time_seconds: float
    innodb_deadlocks: int | None  # None when neither the status nor INNODB_METRICS has it
    buffer_pool_hit_ratio: float | None  # over the last interval (since start on the first reading)
    buffer_pool_dirty_ratio: float | None
    connections_used_ratio: float  # threads_connected / max_connections


@dataclass(frozen=True, slots=True)
class LongQuery:
    """One running statement from the process list (the oldest few are kept)."""

    id: int
    user: str
    host: str
    db: str | None
    command: str
    state: str | None
    seconds: float
    query: str | None  # truncated


@dataclass(frozen=True, slots=True)
class Activity:
    """Client sessions seen in the process list (all with PROCESS, else own only)."""

    connections: int
    running: int  # sessions running a statement, dbwatch excluded
    oldest_query_seconds: float  # 0 when nothing runs
    longest: list[LongQuery]


@dataclass(frozen=True, slots=True)
class Channel:
    """This server's replication from one source (MySQL channel,
    MariaDB connection). Column names are normalised to the master/slave spelling on both syntaxes."""

    channel_name: str  # MySQL Channel_Name or MariaDB Connection_name ("" for the default)
    master_host: str
    master_port: int
    io_running: bool
    sql_running: bool
    io_state: str  # "Yes", "No", "Connecting", ...
    sql_state: str
    seconds_behind_master: float | None  # None while a thread is stopped
    sql_delay: int
    last_io_errno: int
    last_io_error: str
    last_sql_errno: int
    last_sql_error: str
    gtid_io_pos: str  # MariaDB Gtid_IO_Pos / MySQL Retrieved_Gtid_Set
    gtid_executed: str  # MariaDB @@gtid_slave_pos / MySQL Executed_Gtid_Set
    using_gtid: str  # MariaDB Using_Gtid / MySQL Auto_Position ("1" or "0")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The newest pt-heartbeat row (None when the option is off)."""

    server_id: int
    stored: float
    now: float

    @property
    def lag_seconds(self) -> float:
        return max(0.0, self.now - self.stored)


@dataclass(frozen=True, slots=True)
class Gtid:
    """The server's GTID positions as the server prints them ("" when not used)."""

    executed: str  # MariaDB @@gtid_current_pos / MySQL @@gtid_executed
    slave_pos: str  # MariaDB only
    binlog_pos: str  # MariaDB only


@dataclass(frozen=True, slots=True)
class Channels(FactList[Channel]):
    """This server's replication channels (none on a primary): SHOW ALL SLAVES / REPLICA STATUS."""
