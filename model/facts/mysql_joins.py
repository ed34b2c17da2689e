"""Join-order problems the MySQL/MariaDB advisor found on the costliest digests (collectors/mysql_advisor_joins.py),
judged by rules/join_order.py."""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

__all__ = ["JoinStep", "MySQLJoinOrder", "MySQLJoinOrders"]


@dataclass(frozen=True, slots=True)
class JoinStep:
    """One table of the plan's nested loop, in the optimizer's order."""

    alias: str
    table: str  # schema.table
    access_type: str
    rows: int  # EXPLAIN's rows per lookup
    filtered: float  # EXPLAIN's percentage kept by the conditions attached to it (100 when it has no estimate)
    filter_columns: tuple[str, ...]  # columns the statement's WHERE compares with a constant on this table


@dataclass(frozen=True, slots=True)
class MySQLJoinOrder:
    """A join driven from a table without a filter while another table's filter is applied late."""

    schema: str
    digest: str
    query: str  # DIGEST_TEXT, folded and cut
    sample: str  # the statement EXPLAINed
    calls: int
    total_time_seconds: float
    time_share: float
    rows_examined: int
    rows_sent: int
    steps: tuple[JoinStep, ...]  # the optimizer's order
    filtered_step: int  # index in ``steps`` of the table whose filter should drive the join
    estimated_rows: float  # rows the plan expects to read per call (sum over the loop's prefixes)
    mariadb: bool

    @property
    def examined_per_call(self) -> float:
        return self.rows_examined / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class MySQLJoinOrders(FactList[MySQLJoinOrder]):
    """Join-order problems among the digests the advisor EXPLAINed."""
