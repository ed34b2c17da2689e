"""A target's workload profile, for the strategy advice (rules/strategy*.py, ``dbwatch advise --section strategy``).

Put by the ``workload`` collector (collectors/pg_workload.py, collectors/mysql_workload.py). Every number is a
counter since the statistics began (``since_seconds`` ago) or a reading taken now; nothing is sampled over
time in one collection, so growth per day is an *estimate* from insert and delete counters times the average
row size, and says so (``growth_basis``). The daemon, which keeps history, can do better from sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

__all__ = ["TableActivity", "StatementShape", "Connections", "WorkloadProfile",
           "POINT", "SCAN", "AGGREGATE", "WRITE", "OTHER"]

POINT, SCAN, AGGREGATE, WRITE, OTHER = "point", "scan", "aggregate", "write", "other"


@dataclass(frozen=True, slots=True)
class TableActivity:
    """One table's counters since the statistics began, its size, and the catalog facts the strategy rules
    read (a time column and how well the rows follow it, JSON columns, a self-referencing foreign key)."""

    schema: str
    table: str
    rows: int  # n_live_tup / table_rows
    size_bytes: int  # table + indexes + toast
    seq_scans: int
    seq_rows: int  # rows read by sequential scans
    idx_scans: int
    inserts: int
    updates: int
    deletes: int
    hot_updates: int = 0
    #: a timestamp/date column (the one best correlated with the physical order) and pg_stats' correlation
    #: (MySQL/MariaDB: Spearman's rank correlation with the primary key over a sample of rows, see below)
    time_column: str | None = None
    time_correlation: float | None = None
    #: MySQL/MariaDB: the integer primary key rows were sampled along, and how many rows the sample had
    #: (None and 0 on PostgreSQL, where the correlation is pg_stats')
    time_sampled_by: str | None = None
    time_sampled_rows: int = 0
    #: the access methods of indexes whose first key is the time column (btree, brin, ...)
    time_indexes: tuple[str, ...] = ()
    json_columns: tuple[str, ...] = ()
    json_plain: tuple[str, ...] = ()  # those of type json (not jsonb): no GIN operator class
    #: indexes on JSON columns or expressions over them (their definitions)
    json_indexes: tuple[str, ...] = ()
    #: columns of a text type (text, varchar, char, citext)
    text_columns: tuple[str, ...] = ()
    #: text columns with a trigram or full-text index (GIN/GiST)
    search_indexed: tuple[str, ...] = ()
    #: a foreign key to the table itself (parent_id -> id), its column
    self_reference: str | None = None
    partitioned: bool = False
    #: pg_stats of the columns hot statements filter on by equality (column, distinct values, share of the
    #: most common value), for ShardKeyCandidate; distinct values negative as in pg_stats (a share of the rows).
    #: MySQL/MariaDB: index cardinality or MariaDB's mysql.column_stats; the share None when unknown
    column_stats: tuple[tuple[str, float, float | None], ...] = ()
    #: MySQL/MariaDB's storage engine (InnoDB, Aria, ...); empty on PostgreSQL
    storage_engine: str = ""

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def writes(self) -> int:
        return self.inserts + self.updates + self.deletes


@dataclass(frozen=True, slots=True)
class StatementShape:
    """One normalised statement since the reset, with what its text and its counters say about it."""

    query: str  # normalised, cut to 300 characters
    calls: int
    rows: int
    seconds: float
    blocks: int  # shared blocks touched (PostgreSQL), rows examined (MySQL/MariaDB)
    kind: str  # POINT, SCAN, AGGREGATE, WRITE or OTHER
    tables: tuple[str, ...]  # bare lower-case names of the application's tables it names
    #: "like", "ilike", "regex", "fulltext", "json_key", "json_contains", "recursive", "for_update",
    #: "session_state" (SET/LISTEN/advisory locks/temp tables/prepared statements: not transaction-poolable)
    features: tuple[str, ...] = ()
    #: the column a WHERE compares for equality first (``customer_id = $1``), when the text shows one
    key_column: str | None = None

    @property
    def reads(self) -> bool:
        return self.kind in (POINT, SCAN, AGGREGATE)


@dataclass(frozen=True, slots=True)
class Connections:
    """Connections now, and sessions since the statistics began (PostgreSQL 14+: pg_stat_database.sessions;
    MySQL/MariaDB: Connections), with how long they lasted on average when the server says."""

    total: int
    active: int
    idle: int
    idle_in_transaction: int
    max_connections: int
    sessions: int | None  # opened since the statistics began; None where the server does not count them
    session_seconds: float | None  # average session length; None when unknown
    commits: int = 0
    rollbacks: int = 0


@dataclass(frozen=True, slots=True)
class WorkloadProfile(FactList[StatementShape]):
    """The profile: statements (busiest by calls and by time), tables, connections and the database size."""

    database: str = ""
    since_seconds: float = 0.0  # how long the table and database counters have been counting
    #: how long the statement counters have been counting (pg_stat_statements_info, PostgreSQL 14+; else
    #: since_seconds)
    statements_since_seconds: float = 0.0
    tables: tuple[TableActivity, ...] = ()
    connections: Connections | None = None
    database_bytes: int = 0
    #: estimated growth per day of the database (bytes); None when unknown
    growth_bytes_per_day: float | None = None
    growth_basis: str = "unknown"
    #: rows written per transaction (inserted+updated+deleted / commits), None when no commits
    rows_per_transaction: float | None = None
    read_only_replica: bool = False
    replicas: int = 0  # streaming replicas attached now
    statements_available: bool = True  # pg_stat_statements / performance_schema digests readable
    #: extensions installed in the database, and the ones the server could install (pg_trgm, ltree, ...)
    extensions: tuple[str, ...] = ()
    extensions_available: tuple[str, ...] = ()
    #: the strategy rules' thresholds as the workload collector's options set them (name, value)
    thresholds: tuple[tuple[str, float], ...] = ()

    def threshold(self, name: str, default: float) -> float:
        return next((v for k, v in self.thresholds if k == name), default)
