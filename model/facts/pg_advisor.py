"""The typed facts the index advisor puts on a snapshot for rules/indexes.py to judge.

Rules never import collectors, so they read these by attribute. Every fact carries the numbers a
recommendation shows as evidence and the exact SQL to apply. Costs are the planner's units; times
seconds; sizes bytes; ``*_share`` are fractions (0..1) of the total execution time pg_stat_statements
recorded on the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class AdviceSettings:
    """The advisor's options that rules judge with."""

    min_cost_reduction: float
    unused_index_min_age: float  # seconds the statistics must cover before "never scanned" means unused
    hypopg: str | None  # HypoPG's version in this database, None when it is not installed
    database: str
    observed_seconds: float  # how long the statistics have been counting (since stats reset / start)
    # Noise floor of foreign keys without an index: the referencing table has at least this many rows or
    # bytes, or its referenced table sees deletes/updates.
    fk_min_rows: int = 10_000
    fk_min_bytes: int = 64 * 1024**2
    # A costed index is recommended only when it saves at least this share of all statement time.
    min_saving_share: float = 0.02


@dataclass(frozen=True, slots=True)
class StatementCost:
    """One statement an index candidate helps, with the plan's total cost without and with the index."""

    queryid: int
    query: str  # normalized ($1 placeholders), folded and cut to 300 characters
    calls: int
    total_time_seconds: float
    time_share: float
    cost_before: float
    cost_after: float | None  # None for heuristic candidates (nothing was costed)
    #: "pg_stat_statements" (the normalized text, generic plan) or "slowlog" (the slow log's sample, literals
    #: kept, custom plan: ``query`` then holds the literals; the numbers are pg_stat_statements' when the
    #: sample's class is also there, else the slow log's)
    source: str = "pg_stat_statements"

    @property
    def cost_reduction(self) -> float | None:
        if self.cost_after is None or self.cost_before <= 0:
            return None
        return max(0.0, 1 - self.cost_after / self.cost_before)


@dataclass(frozen=True, slots=True)
class IndexCandidate:
    """An index that would serve the statements listed."""

    schema: str
    table: str
    columns: tuple[str, ...]
    method: str  # "hypopg" (costed with a hypothetical index) or "heuristic" (HypoPG missing)
    create_sql: str
    reason: str  # e.g. "equality on customer_id, range on created_at"
    statements: tuple[StatementCost, ...]
    table_rows: int
    table_size_bytes: int
    writes_total: int  # n_tup_ins + n_tup_upd + n_tup_del since the statistics began
    writes_per_second: float
    index_count: int  # indexes the table already has (each one more makes every write dearer)
    size_bytes: int | None = None  # HypoPG's estimate of the index's size (hypopg_relation_size), None if unknown
    #: the column orders compared with HypoPG: (columns, the main statement's cost with that order, None where
    #: the plan did not use the index); the chosen order is ``columns``
    orders: tuple[tuple[tuple[str, ...], float | None], ...] = ()

    @property
    def time_share(self) -> float:
        return sum(s.time_share for s in self.statements)

    @property
    def source(self) -> str:
        """"slowlog" when a slow-log sample (literals kept) was costed for it, else "pg_stat_statements"."""
        return "slowlog" if any(s.source == "slowlog" for s in self.statements) else "pg_stat_statements"

    @property
    def estimated_saving_share(self) -> float | None:
        """Share of all statement time the index would save, if execution time follows the plan's cost."""
        if self.method != "hypopg":
            return None
        return sum(s.time_share * (s.cost_reduction or 0.0) for s in self.statements)


@dataclass(frozen=True, slots=True)
class IndexKeys:
    """Every index's table and keys, for rules that need to know what is indexed
    (e.g. the query hint on functions or casts applied to an indexed column)."""

    schema: str
    table: str
    name: str
    method: str  # btree, hash, gin, ...
    columns: tuple[str, ...]  # key columns in order; "(expression)" where the key is an expression
    expressions: str  # pg_get_expr of the expression keys ("lower(email)"), "" when none
    predicate: str  # a partial index's WHERE, "" when none
    valid: bool
    enforces: bool = False  # unique, primary or a constraint's: never redundant, whatever leads it


@dataclass(frozen=True, slots=True)
class IndexRow:
    """An existing index, as the hygiene facts describe it."""

    schema: str
    table: str
    name: str
    definition: str
    size_bytes: int
    scans: int


@dataclass(frozen=True, slots=True)
class UnusedIndex:
    """Never scanned since the statistics began; not unique, primary or a constraint's."""

    index: IndexRow
    observed_seconds: float
    table_writes_total: int
    drop_sql: str
    # The foreign key this index is the only one to serve (its leading columns are the key's), with the
    # referenced table's deletes + updates: DELETEs there look rows up through it even if no query does.
    foreign_key: str | None = None
    referenced_deletes_updates: int = 0


@dataclass(frozen=True, slots=True)
class RedundantIndex:
    """``kind`` "duplicate" (same definition) or "prefix" (its keys lead another)."""

    index: IndexRow
    kind: str
    covered_by: IndexRow
    drop_sql: str


@dataclass(frozen=True, slots=True)
class InvalidIndex:
    """Left behind by a failed CREATE/REINDEX CONCURRENTLY (not one in progress)."""

    index: IndexRow
    fix_sql: str
    unique: bool = False
    # A unique index is invalid because of duplicate keys more often than not; rebuilding it fails again
    # (and REINDEX CONCURRENTLY leaves a second invalid index). True: the advisor found duplicates; None: it
    # could not tell in time; False: none (the drop and recreate in ``fix_sql`` is then safe to try).
    duplicates: bool | None = None
    duplicates_sql: str = ""  # the query that lists the duplicate keys
    recreate_sql: str = ""  # DROP INDEX CONCURRENTLY + CREATE UNIQUE INDEX CONCURRENTLY, once they are gone


@dataclass(frozen=True, slots=True)
class UnindexedForeignKey:
    """A foreign key no index leads with the key's columns, so every DELETE or key
    UPDATE on the referenced table scans the referencing one."""

    schema: str
    table: str
    constraint: str
    columns: tuple[str, ...]
    referenced_table: str  # schema-qualified
    table_rows: int
    table_size_bytes: int
    referenced_deletes_updates: int  # n_tup_del + n_tup_upd of the referenced table
    create_sql: str


@dataclass(frozen=True, slots=True)
class TableWithoutPrimaryKey:
    """A table without a primary key."""

    schema: str
    table: str
    rows: int
    size_bytes: int
    unique_index: str | None  # a unique index on NOT NULL columns that could become the key
    sql: str


@dataclass(frozen=True, slots=True)
class SequenceUsage:
    """A sequence owned by a column, and how much of its range is used up."""

    schema: str
    sequence: str
    table: str
    column: str
    column_type: str
    last_value: int
    max_value: int  # the lower of the sequence's maximum and the column type's
    used_ratio: float
    sql: str


@dataclass(frozen=True, slots=True)
class IndexCandidates(FactList[IndexCandidate]):
    """The indexes the advisor would create, costed with HypoPG where installed."""


@dataclass(frozen=True, slots=True)
class IndexKeysList(FactList[IndexKeys]):
    """Every index of the advisor's database, by its keys."""


@dataclass(frozen=True, slots=True)
class UnusedIndexes(FactList[UnusedIndex]):
    pass


@dataclass(frozen=True, slots=True)
class RedundantIndexes(FactList[RedundantIndex]):
    pass


@dataclass(frozen=True, slots=True)
class InvalidIndexes(FactList[InvalidIndex]):
    pass


@dataclass(frozen=True, slots=True)
class UnindexedForeignKeys(FactList[UnindexedForeignKey]):
    pass


@dataclass(frozen=True, slots=True)
class TablesWithoutPrimaryKey(FactList[TableWithoutPrimaryKey]):
    pass


@dataclass(frozen=True, slots=True)
class Sequences(FactList[SequenceUsage]):
    pass
