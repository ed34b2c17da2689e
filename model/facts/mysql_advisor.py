"""The MySQL/MariaDB index advisor's facts (collectors/mysql_advisor.py), in the shape of the PostgreSQL
advisor's (:mod:`dbwatch.model.facts.pg_advisor`) so rules/mysql_indexes.py reuses the index rules."""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

__all__ = ["MySQLAdviceSettings", "MySQLIndexCandidate", "MySQLIndexCandidates", "MySQLStatementCost"]


@dataclass(frozen=True, slots=True)
class MySQLAdviceSettings:
    """What the MySQL/MariaDB advisor judged with."""

    samples: str  # where statements came from: events_statements_history_long, events_statements_history, digest
    min_table_rows: int
    observed_seconds: float  # server uptime: how long the digests have been counting at most
    unused_index_min_age: float = 604800.0  # uptime before "never read" means unused (7 days)


@dataclass(frozen=True, slots=True)
class MySQLStatementCost:
    """One digest a candidate would serve: its performance_schema totals and its plan before the index."""

    queryid: str  # the digest
    query: str  # DIGEST_TEXT, folded and cut to 300 characters
    sample: str  # what was EXPLAINed: a sample with literals, or the digest text with representative values
    sample_source: str  # "history_long", "history" or "digest"
    calls: int
    total_time_seconds: float
    time_share: float
    rows_examined: int
    rows_sent: int
    no_index_used: int
    access_type: str  # the table's access in EXPLAIN: ALL (full scan) or index (full index scan)
    rows_examined_per_scan: int  # EXPLAIN's estimate of rows read from the table
    query_cost: float | None  # EXPLAIN's query_cost (MySQL; MariaDB 10.x shows none)
    cost_before: float | None  # = query_cost, for the shape the index rules share
    cost_after: None = None  # never measured: no hypothetical indexes

    @property
    def cost_reduction(self) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class MySQLIndexCandidate:
    """An index the MySQL/MariaDB advisor would create, with the digests it would serve."""

    schema: str
    table: str
    columns: tuple[str, ...]
    method: str  # "explain-before": the plan before was read, the one after was not measured
    create_sql: str
    reason: str
    statements: tuple[MySQLStatementCost, ...]
    table_rows: int
    table_size_bytes: int
    writes_total: int  # rows written since the server started (performance_schema table I/O), 0 if unknown
    writes_per_second: float
    index_count: int

    @property
    def time_share(self) -> float:
        return sum(s.time_share for s in self.statements)

    @property
    def estimated_saving_share(self) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class MySQLIndexCandidates(FactList[MySQLIndexCandidate]):
    """The indexes the advisor would create (none when performance_schema is off or unreadable)."""
