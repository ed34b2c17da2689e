"""What the live database says about the tables a migration touches, for ``dbwatch migrate lint --target``.

Read once through the target's session (:mod:`dbwatch.collectors.schema_change`), judged by
:mod:`dbwatch.rules.migration_lint`: a rewrite of a 10-row table is not an outage, of a 50 GB table it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SchemaChangeFacts", "ServerLoad", "TableLoad"]


@dataclass(frozen=True, slots=True)
class TableLoad:
    """One table as the server sees it now."""

    name: str  # as the migration wrote it
    exists: bool
    size_bytes: int = 0  # heap + TOAST (PostgreSQL), data + indexes (InnoDB): what a rewrite copies
    rows: int = 0  # the planner's estimate (reltuples / TABLE_ROWS), or live tuples when never analysed
    writes_per_second: float | None = None  # inserts + updates + deletes, from two readings; None: not readable
    key_type: str = ""  # the type of a one-column primary key (int4, bigint, int, ...); "" when none or wider


@dataclass(frozen=True, slots=True)
class ServerLoad:
    """The server around those tables."""

    engine: str  # postgres | mysql
    version: str
    version_num: tuple[int, ...] = ()  # (major, minor[, patch])
    longest_transaction_seconds: float | None = None  # the oldest open transaction a lock would queue behind
    replication_lag_seconds: float | None = None  # the worst replica (primary) or this server (replica)
    host: str = ""  # for the gh-ost / pt-online-schema-change command lines (never a password)
    port: int = 0
    database: str = ""


@dataclass(frozen=True, slots=True)
class SchemaChangeFacts:
    server: ServerLoad
    tables: tuple[TableLoad, ...] = field(default_factory=tuple)

    def table(self, name: str) -> TableLoad | None:
        """The table named as the migration wrote it (schema-qualified or not; case-insensitive)."""
        wanted = name.lower()
        for t in self.tables:
            if t.name.lower() == wanted:
                return t
        return None
