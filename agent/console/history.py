"""The last hour of each target's top statements, per minute, for the target page's sparklines.

The snapshot store keeps 40 collections per collector: at the statements collector's default 60 s that is
40 minutes, short of the hour the page shows, and it keeps every statement of every collection. This keeps
less and longer: per target, the ``per_target`` statements with the most time in each collection, as a ring
of ``buckets`` minutes of (execution seconds, calls), in fixed-size arrays. Memory is bounded by
``targets x max_series x buckets x 12 bytes`` (1,400 targets x 40 x 60 x 12 ≈ 40 MB at most; a target
without a statements collector costs nothing); a statement out of the top for an hour is forgotten.
"""

from __future__ import annotations

from array import array
from typing import Any

from dbwatch.model import Snapshot
from dbwatch.model.facts.statements import Statements
from dbwatch.model.snapshot import FactError

__all__ = ["StatementHistory", "statement_key"]


def statement_key(stmt: Any) -> str:
    """One statement's identity on a target: its id, and for pg_stat_statements the user and database too."""
    return f"{stmt.queryid}:{stmt.user}:{stmt.datname}"


class _Series:
    __slots__ = ("minutes", "seconds", "calls", "last")

    def __init__(self, buckets: int) -> None:
        self.minutes = array("i", [-1]) * buckets
        self.seconds = array("f", [0.0]) * buckets
        self.calls = array("f", [0.0]) * buckets
        self.last = -1

    def add(self, minute: int, seconds: float, calls: float) -> None:
        i = minute % len(self.minutes)
        if self.minutes[i] != minute:
            self.minutes[i], self.seconds[i], self.calls[i] = minute, 0.0, 0.0
        self.seconds[i] += seconds
        self.calls[i] += calls
        self.last = max(self.last, minute)


class StatementHistory:
    def __init__(self, per_target: int = 20, buckets: int = 60, bucket_seconds: float = 60.0) -> None:
        self.per_target = per_target
        self.max_series = 2 * per_target  # the top changes: room for the ones that just left it
        self.buckets = buckets
        self.bucket_seconds = bucket_seconds
        self._series: dict[str, dict[str, _Series]] = {}

    def observe(self, snapshot: Snapshot) -> None:
        """Take a snapshot's statements (a store listener: every other snapshot is ignored at once)."""
        if not snapshot.ok or Statements not in snapshot.facts:
            return
        try:
            statements = snapshot.fact(Statements)
        except FactError:
            return
        if not statements:
            return
        minute = int(snapshot.started_at // self.bucket_seconds)
        series = self._series.setdefault(snapshot.target, {})
        top = sorted(statements, key=lambda s: s.delta_time_seconds, reverse=True)[: self.per_target]
        for stmt in top:
            key = statement_key(stmt)
            found = series.get(key)
            if found is None:
                found = series[key] = _Series(self.buckets)
            found.add(minute, stmt.delta_time_seconds, stmt.delta_calls)
        stale = minute - self.buckets
        for key in [k for k, s in series.items() if s.last <= stale]:
            del series[key]
        if len(series) > self.max_series:
            for key, _ in sorted(series.items(), key=lambda kv: kv[1].last)[: len(series) - self.max_series]:
                del series[key]

    def sparkline(self, target: str, key: str, now: float) -> list[float] | None:
        """Execution seconds per minute over the last ``buckets`` minutes, oldest first (None: not kept)."""
        found = self._series.get(target, {}).get(key)
        if found is None:
            return None
        current = int(now // self.bucket_seconds)
        out = []
        for minute in range(current - self.buckets + 1, current + 1):
            i = minute % self.buckets
            out.append(float(found.seconds[i]) if found.minutes[i] == minute else 0.0)
        return out

    def forget(self, target: str) -> None:
        self._series.pop(target, None)

    def targets(self) -> set[str]:
        return set(self._series)

    def retain(self, targets: set[str]) -> None:
        """Forget targets no longer watched (the store does not tell its listeners of removals)."""
        for name in set(self._series) - targets:
            del self._series[name]
