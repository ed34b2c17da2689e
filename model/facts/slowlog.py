"""What the slow-log collector (collectors/slowlog.py) found in one interval: query classes with their
counts, times and a sample statement, and where in the log it read. Times are seconds."""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

__all__ = ["SlowClass", "SlowClasses", "SlowLogPosition"]


@dataclass(frozen=True, slots=True)
class SlowClass:
    """One query class over one interval (or over a whole file, for an offline analysis)."""

    class_id: str
    fingerprint: str
    count: int
    query_time_total: float
    query_time_mean: float
    query_time_p95: float
    query_time_max: float
    lock_time_total: float
    rows_examined_total: int
    rows_sent_total: int
    rows_affected_total: int
    full_scans: int
    tmp_disk_tables: int
    first_seen: float | None
    last_seen: float | None
    db: str
    user: str
    sample: str


@dataclass(frozen=True, slots=True)
class SlowClasses(FactList[SlowClass]):
    """The interval's query classes, the top ``top_n`` by total time."""


@dataclass(frozen=True, slots=True)
class SlowLogPosition:
    """The file the collector follows and what the interval held."""

    path: str
    format: str
    offset: int
    classes_in_interval: int
    events_in_interval: int
