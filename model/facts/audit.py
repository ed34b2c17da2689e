"""The typed facts the audit collectors (pg_audit, mysql_audit, redis_audit) put on a snapshot.

Rules (rules/tuning.py, rules/security.py, rules/schema.py) read them by attribute and never import this
module. Sizes are bytes, times seconds. A fact the agent was not allowed to read is ``None`` and the
snapshot carries a note saying what to grant; a rule then says nothing rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HostFacts:
    """The machine the database runs on, when the agent can tell (local target or
    configured ``ram``/``cpus``/``disk`` options); a field is ``None`` when unknown."""

    ram_bytes: int | None
    cpus: int | None
    rotational: bool | None  # the data directory's block device: True = spinning disk, False = SSD/NVMe
    source: str  # "local" (read from this machine), "configured" (options) or "unknown"


@dataclass(frozen=True, slots=True)
class PgRole:
    name: str
    superuser: bool
    replication: bool
    can_login: bool
    create_role: bool
    bypass_rls: bool


@dataclass(frozen=True, slots=True)
class HbaRule:
    """One line of pg_hba_file_rules."""

    line_number: int
    type: str  # local, host, hostssl, hostnossl, ...
    databases: tuple[str, ...]
    users: tuple[str, ...]
    address: str | None
    auth_method: str
    error: str | None


@dataclass(frozen=True, slots=True)
class WideTable:
    schema: str
    table: str
    columns: int


@dataclass(frozen=True, slots=True)
class TypedColumn:
    """A column whose name says one thing and whose type another (``kind``: "timestamp" or "amount")."""

    schema: str
    table: str
    column: str
    data_type: str
    kind: str


@dataclass(frozen=True, slots=True)
class RepeatedColumns:
    """Columns ``stem1, stem2, stem3...`` of one table: a repeating group that wants a child table."""

    schema: str
    table: str
    stem: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JsonColumn:
    schema: str
    table: str
    column: str
    data_type: str  # json or jsonb
    gin_indexed: bool  # a GIN index (or an expression index) covers the column
    filtering_statements: int  # pg_stat_statements entries that filter it by key (->>, ->, @>, ?)
    table_rows: int


@dataclass(frozen=True, slots=True)
class SchemaFacts:
    """What the catalog says about the current database's own tables."""

    database: str
    wide_tables: list[WideTable] = field(default_factory=list)
    typed_columns: list[TypedColumn] = field(default_factory=list)
    repeated_columns: list[RepeatedColumns] = field(default_factory=list)
    json_columns: list[JsonColumn] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PgAudit:
    """The PostgreSQL audit: roles, pg_hba, SSL, the settings tuning reads, the host."""

    database: str
    agent_role: str
    agent_superuser: bool
    agent_memberships: tuple[str, ...]  # roles the agent's role is a member of, directly or not
    roles: list[PgRole]
    hba: list[HbaRule] | None  # None when pg_hba_file_rules is not readable by the agent
    ssl: bool
    password_encryption: str
    public_schema_create: bool  # PUBLIC may CREATE in schema public (the pre-15 default)
    settings: dict[str, float]  # tuning settings in base units: bytes for memory, seconds for time
    checkpoints_timed: int
    checkpoints_requested: int
    host: HostFacts
    expected_superusers: tuple[str, ...]
    expected_replication: tuple[str, ...]
    bootstrap_superuser: str = ""  # the role with oid 10 (ran initdb, owns the catalogs): never demoted
    durability: dict[str, str] = field(default_factory=dict)  # fsync, full_page_writes, synchronous_commit: on/off/..
    listen_addresses: str | None = None  # as set: '*', 'localhost', '' (Unix socket only); None when unknown


@dataclass(frozen=True, slots=True)
class MySQLAccount:
    user: str
    host: str
    plugin: str
    empty_password: bool


@dataclass(frozen=True, slots=True)
class MySQLAudit:
    """The MySQL/MariaDB audit: accounts, transport, the figures tuning reads, the host."""

    agent_user: str
    agent_privileges: tuple[str, ...]  # the agent's global privileges (USER_PRIVILEGES), upper case
    accounts: list[MySQLAccount] | None  # None when mysql.user is not readable by the agent
    require_secure_transport: bool | None  # None: the server has no such variable
    have_ssl: str | None
    innodb_buffer_pool_size: int
    innodb_data_bytes: int  # data + indexes of InnoDB tables
    max_connections: int
    max_used_connections: int
    created_tmp_tables: int
    created_tmp_disk_tables: int
    tmp_table_size: int
    max_heap_table_size: int
    uptime: float
    host: HostFacts
    ssl_cert: str | None = None  # the server's certificate file; empty or None: TLS is not configured
    bind_address: str | None = None  # None when unknown (MySQL < 8.0 and MariaDB < 10.3 do not show it)
    skip_networking: bool = False  # Unix socket / named pipe only


@dataclass(frozen=True, slots=True)
class RedisAudit:
    """The Redis audit (CONFIG GET and ACL; ``None`` where they are denied or renamed)."""

    bind: tuple[str, ...] | None
    protected_mode: bool | None
    default_user_nopass: bool | None  # the default user needs no password (no requirepass, ACL nopass)
    default_user_enabled: bool | None
    maxmemory_bytes: int | None
    maxmemory_policy: str | None
    used_memory_bytes: int
    host: HostFacts
