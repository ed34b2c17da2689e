"""Statement totals since the statistics began, for one-shot commands (``dbwatch advise``).

The daemon judges statements by their change over an interval (:mod:`dbwatch.model.facts.statements`); a
single collection has no interval, so the advisors also put the cumulative counters with how long they
have been counting (pg_stat_statements since its reset, performance_schema digests since the first one was
seen): rates since the statistics' reset time. Entries of one normalised text are summed (a statement split
over queryids by parameter types is one). ``links`` are the foreign keys between tables, the evidence an N+1
parent must show.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

__all__ = ["StatementTotal", "WorkloadTotals"]


@dataclass(frozen=True, slots=True)
class StatementTotal:
    """One statement's counters since the statistics began."""

    queryid: str
    datname: str
    query: str | None
    calls: int
    rows: int  # returned or affected
    seconds: float  # total execution time
    blocks: int = 0  # shared blocks hit + read (PostgreSQL), rows examined (MySQL/MariaDB)


@dataclass(frozen=True, slots=True)
class WorkloadTotals(FactList[StatementTotal]):
    """The busiest statements (by calls and by time) since ``since_seconds`` ago."""

    since_seconds: float = 0.0
    #: foreign keys as (referencing table, referenced table), bare lower-case names
    links: tuple[tuple[str, str], ...] = ()
    #: the application's tables (bare lower-case names): a statement naming none of them is not the
    #: application's (dbwatch's own catalog reads through CTEs and extension views, an admin's)
    tables: tuple[str, ...] = ()
