"""Statement statistics per interval: pg_stat_statements (the PostgreSQL ``statements`` collector) and
performance_schema digests (the MySQL/MariaDB one), in one shape so the same rules read both.

Both rows have ``queryid``, ``user``, ``datname``, ``toplevel``, ``query``, ``calls``, ``total_time_seconds``,
``max_time_seconds``, ``rows``, their ``delta_*``, ``interval_seconds`` and ``mean_time_seconds``; MySQL's
have more (rows examined, no index used, ...). The first reading after a start or a reset is a baseline: an
empty :class:`Statements`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

__all__ = ["DigestStats", "StatementStats", "Statements"]


@dataclass(frozen=True, slots=True)
class StatementStats:
    """One statement's counters and, when a previous reading allows it, its change over the interval."""

    queryid: int
    user: str
    datname: str
    toplevel: bool
    query: str | None
    calls: int
    total_time_seconds: float
    max_time_seconds: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_written: int
    delta_calls: int
    delta_time_seconds: float
    delta_rows: int
    delta_shared_blks_hit: int
    delta_shared_blks_read: int
    delta_temp_blks_written: int
    interval_seconds: float

    @property
    def mean_time_seconds(self) -> float:
        """Mean execution time over the interval (not since the statistics began)."""
        return self.delta_time_seconds / self.delta_calls if self.delta_calls else 0.0


@dataclass(frozen=True, slots=True)
class DigestStats:
    """One digest's counters and, when a previous reading allows it, its change over the interval."""

    queryid: str  # the digest
    user: str  # always "": performance_schema digests are not per user
    datname: str  # the default schema the statement ran in ("" for none)
    toplevel: bool
    query: str | None  # DIGEST_TEXT, folded and cut (top N only)
    calls: int
    total_time_seconds: float
    max_time_seconds: float  # since the row was created, not per interval
    lock_time_seconds: float
    rows: int  # sent + affected, like pg_stat_statements.rows
    rows_sent: int
    rows_examined: int
    no_index_used: int
    tmp_disk_tables: int
    errors: int
    delta_calls: int
    delta_time_seconds: float
    delta_lock_time_seconds: float
    delta_rows: int
    delta_rows_sent: int
    delta_rows_examined: int
    delta_no_index_used: int
    delta_no_good_index_used: int
    delta_tmp_disk_tables: int
    delta_errors: int
    interval_seconds: float

    @property
    def mean_time_seconds(self) -> float:
        """Mean execution time over the interval (not since the statistics began)."""
        return self.delta_time_seconds / self.delta_calls if self.delta_calls else 0.0


@dataclass(frozen=True, slots=True)
class Statements(FactList["StatementStats | DigestStats"]):
    """The statements that ran during the interval (none on a baseline reading)."""
