"""What the strategy rules share: the base that reads the workload profile, and how a strategy finding is
written (what was observed, what to do, what it costs, when it would be wrong, a confidence)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Mapping

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.server_resources import ServerResources
from dbwatch.model.facts.workload_profile import StatementShape, TableActivity, WorkloadProfile
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import TargetView
from dbwatch.rules.statement_risk import classify

__all__ = ["StrategyRule", "strategy_finding", "per_second", "human_bytes", "table_of", "growth_per_day",
           "measured_growth", "server_cpu", "days_until_full", "MIN_MEASURED_SECONDS"]

#: the daemon's history must span this long before sizes measured twice replace the counters' estimate
MIN_MEASURED_SECONDS = 3600.0


class StrategyRule:
    """A rule on the workload profile; subclasses set ``name`` and implement :meth:`judge`."""

    name = ""
    engines: tuple[str, ...] = ("postgres", "mysql")

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        profile = view.fact(WorkloadProfile)
        if profile is None:
            return []
        return list(self.judge(view, profile))

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        raise NotImplementedError


def strategy_finding(rule: str, view: TargetView, summary: str, *, observed: str, action: str, cost: str,
                     wrong_when: str, confidence: float, labels: Mapping[str, str], evidence: Mapping[str, Any],
                     sql: str | None = None, impact: float = 0.1,
                     lock: tuple[str, str] | None = None) -> Finding:
    """One strategy finding. ``sql`` (when given) carries its lock and risk (rules/statement_risk.py's, unless
    ``lock`` gives them as (lock, risk)); a strategy with nothing safe to run (a migration to plan) says so."""
    lock_text, risk = lock or (classify(sql) if sql else ("none (nothing to run: a change to plan)", "low"))
    confidence = round(max(0.0, min(1.0, confidence)), 2)
    label = "high" if confidence >= 0.75 else "medium" if confidence >= 0.5 else "low"
    description = (f"Observed: {observed} Do: {action} Costs: {cost} Wrong when: {wrong_when} "
                   f"Confidence: {label} ({confidence}).")
    return recommend(rule, view, Severity.INFO, summary, description, labels,
                     {**evidence, "observed": observed, "action": action, "cost": cost, "wrong_when": wrong_when,
                      "confidence": confidence, "confidence_label": label, "lock": lock_text, "risk": risk},
                     sql, impact)


def per_second(count: float, profile: WorkloadProfile, statements: bool = False) -> float:
    """A counter as a rate: table and database counters over ``since_seconds``, statement counters
    (``statements=True``) over ``statements_since_seconds``."""
    since = profile.statements_since_seconds if statements else profile.since_seconds
    return count / since if since > 0 else 0.0


def human_bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def table_of(profile: WorkloadProfile, statement: StatementShape) -> TableActivity | None:
    """The one table a statement names, when it names exactly one the profile knows."""
    if len(statement.tables) != 1:
        return None
    return next((t for t in profile.tables if t.table.lower() == statement.tables[0]), None)


def growth_per_day(table: TableActivity, profile: WorkloadProfile) -> float | None:
    """Estimated bytes per day: rows inserted minus deleted per second since the reset times the row size."""
    if profile.since_seconds < 60 or table.rows <= 0:
        return None
    return (table.inserts - table.deletes) / profile.since_seconds * 86400 * table.size_bytes / table.rows


def measured_growth(view: TargetView) -> tuple[float, dict[str, float], float] | None:
    """Growth per day measured from sizes in the agent's history (the daemon with the workload collector on):
    (database bytes/day, table name -> bytes/day, seconds spanned), or None when the history spans less than
    :data:`MIN_MEASURED_SECONDS` (one-shot advice never does)."""
    profiles = [(s.started_at, p) for s in view.history_with(WorkloadProfile)
                if (p := s.fact(WorkloadProfile)) is not None]
    if len(profiles) < 2:
        return None
    (t0, first), (t1, last) = profiles[0], profiles[-1]
    span = t1 - t0
    if span < MIN_MEASURED_SECONDS or first.database != last.database:
        return None
    per_day = 86400 / span
    before = {t.name: t.size_bytes for t in first.tables}
    tables = {t.name: (t.size_bytes - before[t.name]) * per_day for t in last.tables if t.name in before}
    return (last.database_bytes - first.database_bytes) * per_day, tables, span


def server_cpu(view: TargetView) -> tuple[float, int, str] | None:
    """The server process's CPU share of the machine (ServerResources, when it runs beside the agent): between
    the two newest readings of the same process in the agent's history, else since the server started; as
    (share, CPUs, what it covers). None when the server is not local."""
    readings = [r for s in view.history_with(ServerResources) if (r := s.fact(ServerResources)) is not None]
    if not readings:
        return None
    newest = readings[-1]
    if len(readings) >= 2 and (share := newest.cpu_share_since(readings[-2])) is not None:
        return share, newest.cpus, f"over the last {(newest.read_at - readings[-2].read_at) / 3600:.1f} h"
    share = newest.cpu_share
    return None if share is None else (share, newest.cpus, "since the server started")


def days_until_full(avail_bytes: int | None, growth_per_day: float | None) -> float | None:
    """Days until ``avail_bytes`` are used up at ``growth_per_day``; None when either is unknown or not growing."""
    if avail_bytes is None or growth_per_day is None or growth_per_day <= 0:
        return None
    return avail_bytes / growth_per_day
