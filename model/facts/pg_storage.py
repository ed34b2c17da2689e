"""PostgreSQL storage hygiene facts (the advisor collector, collectors/pg_advisor_storage.py) for
rules/pg_storage.py: table and b-tree bloat estimates, BRIN and partitioning candidates. Sizes are bytes."""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """The thresholds the storage rules judge with."""

    bloat_min_size_bytes: int
    bloat_min_ratio: float
    brin_min_size_bytes: int
    brin_min_correlation: float
    partition_min_size_bytes: int
    skipped_without_stats: int  # relations above the floor whose columns pg_stats does not fully describe


@dataclass(frozen=True, slots=True)
class TableBloat:
    """A table above the size floor, its pages against the packed estimate."""

    schema: str
    table: str
    size_bytes: int  # relpages * block size (main fork)
    expected_bytes: int
    wasted_bytes: int
    ratio: float  # wasted / size
    rows: int
    fillfactor: int
    sql: str


@dataclass(frozen=True, slots=True)
class IndexBloat:
    """A b-tree index above the size floor, its pages against the packed estimate."""

    schema: str
    table: str
    index: str
    definition: str
    size_bytes: int
    expected_bytes: int
    wasted_bytes: int
    ratio: float
    rows: int
    fillfactor: int
    sql: str


@dataclass(frozen=True, slots=True)
class RangeStatement:
    queryid: int
    query: str
    calls: int
    time_share: float


@dataclass(frozen=True, slots=True)
class BrinCandidate:
    """A large append-mostly table physically ordered by a range-filtered column."""

    schema: str
    table: str
    column: str
    correlation: float
    table_size_bytes: int
    rows: int
    inserts: int
    updates_deletes: int
    btree_index: str | None  # an existing b-tree leading with the column, which BRIN could replace
    btree_size_bytes: int  # its size, or the estimated size of the b-tree BRIN avoids
    brin_size_bytes: int  # estimated
    statements: tuple[RangeStatement, ...]
    sql: str


@dataclass(frozen=True, slots=True)
class PartitionCandidate:
    """A very large unpartitioned table filtered by a time range."""

    schema: str
    table: str
    column: str
    column_type: str
    size_bytes: int
    rows: int
    statements: tuple[RangeStatement, ...]
    sql: str  # a sketch, not a migration


@dataclass(frozen=True, slots=True)
class TableBloats(FactList[TableBloat]):
    """Tables above the size floor with their bloat estimate."""


@dataclass(frozen=True, slots=True)
class IndexBloats(FactList[IndexBloat]):
    """B-tree indexes above the size floor with their bloat estimate."""


@dataclass(frozen=True, slots=True)
class BrinCandidates(FactList[BrinCandidate]):
    pass


@dataclass(frozen=True, slots=True)
class PartitionCandidates(FactList[PartitionCandidate]):
    pass
