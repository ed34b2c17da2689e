"""gh-ost and pt-online-schema-change runs on MySQL/MariaDB, seen from what they leave in the database: their
progress, and their throttling.

A run is found by its tables: gh-ost's ghost table ``_<table>_gho`` (with its changelog ``_<table>_ghc``),
pt-online-schema-change's ``_<table>_new`` together with its ``pt_osc_*`` triggers on the table (a leftover
``_x_new`` without triggers is not a run). Rows copied are the ghost/new table's, against the original's:
counted exactly below ``exact_count_below`` estimated rows, the server's estimates above.

Throttling. gh-ost writes it into its changelog table (``Applier.WriteChangelog``): the row of hint
``heartbeat`` (id 1) every heartbeat interval, ``state`` (id 2), and ``throttle`` (id 3) whenever throttling
starts or its reason changes (``lag=2.500000s``, ``127.0.0.1:3307 replica-lag=3.1s``, ``max-load
Threads_running=30 >= 25``, ``commanded by user``, ...) and ``done throttling`` when it ends. So
``dbwatch_migration_osc_throttled{reason}`` is 1 while the last throttle hint is not ``done throttling``, the
reason reduced to its kind (``lag``, ``replica-lag``, ``max-load``, ...: the figures change every 100 ms and
would make a series each), and ``dbwatch_migration_osc_throttle_lag_seconds`` the lag figure of a lag reason:
the replication lag gh-ost is waiting out. pt-online-schema-change keeps its pauses (``--max-lag``,
``--max-load``) to itself: they show as a copy that stops growing, ``dbwatch_migration_osc_stalled_seconds``
(the time since the copied rows last grew, for both tools), beside the replicas' lag.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from dbwatch.collectors.base import CollectorError
from dbwatch.model import MetricFamily, gauge

__all__ = ["GHOST_CHANGELOG", "OSC_TABLES", "OSC_TRIGGERS", "OscRun", "OscWatcher", "osc_families",
           "throttle_kind"]

_SYSTEM = "('mysql', 'performance_schema', 'information_schema', 'sys')"

OSC_TABLES = f"""
SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, TABLE_ROWS AS estimate
FROM information_schema.TABLES
WHERE TABLE_SCHEMA NOT IN {_SYSTEM} AND TABLE_TYPE = 'BASE TABLE'
"""

OSC_TRIGGERS = f"""
SELECT TRIGGER_SCHEMA AS db, EVENT_OBJECT_TABLE AS tbl
FROM information_schema.TRIGGERS
WHERE TRIGGER_SCHEMA NOT IN {_SYSTEM} AND TRIGGER_NAME LIKE 'pt\\_osc\\_%'
"""

# {t}: the changelog table, quoted. The rows gh-ost keeps by fixed id; ages on the server's clock.
GHOST_CHANGELOG = """
SELECT hint, value, TIMESTAMPDIFF(MICROSECOND, last_update, NOW(6)) / 1e6 AS age
FROM {t} WHERE hint IN ('heartbeat', 'throttle')
"""

_LAG = re.compile(r"(?:^|\s)(?:replica-)?lag=([0-9.]+)s")
_KIND = re.compile(r"[a-z][a-z-]*(?: [a-z][a-z-]*)*")

Run = Callable[[str], Awaitable[Sequence[Any]]]


@dataclass(frozen=True, slots=True)
class OscRun:
    tool: str
    relation: str
    copied: int
    total: int
    stalled_seconds: float = 0.0  # since the copied rows last grew (0 when they grew, or at first sight)
    heartbeat_age: float | None = None  # gh-ost only
    throttle_reason: str | None = None  # gh-ost only: None unknown, "" not throttled, else the kind
    throttle_lag: float | None = None  # gh-ost only: the lag figure of a lag reason


def throttle_kind(reason: str) -> str:
    """What gh-ost throttles on, without the figures: ``lag``, ``replica-lag``, ``max-load``, ..."""
    if "replica-lag=" in reason:
        return "replica-lag"
    match = _KIND.match(reason.strip())
    return match.group(0)[:40] if match else "other"


class OscWatcher:
    """Finds the runs, counts their rows, and remembers when each copy last grew (one per collector)."""

    def __init__(self, exact_count_below: int) -> None:
        self.exact_count_below = exact_count_below
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}

    async def runs(self, run: Run, quote: Callable[[str], str]) -> list[OscRun]:
        tables = await run(OSC_TABLES)
        triggers = await run(OSC_TRIGGERS)
        estimates = {(row["db"], row["tbl"]): int(row["estimate"] or 0) for row in tables}
        pt_osc = {(row["db"], row["tbl"]) for row in triggers}
        now = time.monotonic()
        found: list[OscRun] = []
        for (db, tbl) in sorted(estimates):
            for tool, copy_suffix in (("gh-ost", "_gho"), ("pt-online-schema-change", "_new")):
                copy = (db, f"_{tbl}{copy_suffix}")
                if copy not in estimates or (tool == "pt-online-schema-change" and (db, tbl) not in pt_osc):
                    continue
                copied = await self._rows(run, quote, db, copy[1], estimates[copy])
                total = await self._rows(run, quote, db, tbl, estimates[(db, tbl)])
                stalled = self._stalled((tool, f"{db}.{tbl}"), copied, now)
                changelog = (db, f"_{tbl}_ghc")
                if tool == "gh-ost" and changelog in estimates:
                    heartbeat, reason, lag = await _changelog(run, f"{quote(db)}.{quote(changelog[1])}")
                    found.append(OscRun(tool, f"{db}.{tbl}", copied, total, stalled, heartbeat, reason, lag))
                else:
                    found.append(OscRun(tool, f"{db}.{tbl}", copied, total, stalled))
        live = {(r.tool, r.relation) for r in found}
        self._seen = {key: value for key, value in self._seen.items() if key in live}
        return found

    def _stalled(self, key: tuple[str, str], copied: int, now: float) -> float:
        before = self._seen.get(key)
        if before is None or copied != before[0]:
            self._seen[key] = (copied, now)
            return 0.0
        return now - before[1]

    async def _rows(self, run: Run, quote: Callable[[str], str], db: str, tbl: str, estimate: int) -> int:
        if estimate >= self.exact_count_below:
            return estimate
        try:
            [row] = await run(f"SELECT COUNT(*) AS n FROM {quote(db)}.{quote(tbl)}")
        except CollectorError:  # no SELECT on the table (a least-privilege user): the estimate will do
            return estimate
        return int(row["n"])


async def _changelog(run: Run, table: str) -> tuple[float | None, str | None, float | None]:
    try:
        rows = await run(GHOST_CHANGELOG.format(t=table))
    except CollectorError:  # not readable, or not gh-ost's shape after all
        return None, None, None
    hints = {str(row["hint"]): row for row in rows}
    beat = hints.get("heartbeat")
    heartbeat = float(beat["age"]) if beat is not None and beat["age"] is not None else None
    throttle = hints.get("throttle")
    if throttle is None or str(throttle["value"]) == "done throttling":
        return heartbeat, "", None
    reason = str(throttle["value"])
    lag = _LAG.search(reason)
    return heartbeat, throttle_kind(reason), float(lag.group(1)) if lag else None


def osc_families(runs: list[OscRun]) -> list[MetricFamily]:
    rows = gauge("dbwatch_migration_osc_rows",
                 "Rows of an online schema change run: copied into the ghost/new table, and in the original table",
                 ("tool", "relation", "kind"))
    ratio = gauge("dbwatch_migration_osc_progress_ratio",
                  "Rows copied by an online schema change run over the rows of the original table",
                  ("tool", "relation"))
    stalled = gauge("dbwatch_migration_osc_stalled_seconds",
                    "Seconds since the rows copied by an online schema change run last grew (a pause: throttled, "
                    "or stuck)", ("tool", "relation"))
    heartbeat = gauge("dbwatch_migration_osc_heartbeat_age_seconds",
                      "Age of gh-ost's heartbeat in its changelog table (on a replica: the lag gh-ost throttles on)",
                      ("tool", "relation"))
    throttled = gauge("dbwatch_migration_osc_throttled",
                      "1 while gh-ost's changelog says it throttles, with what on (reason: lag, replica-lag, max-load, "
                      "...); 0 with reason=\"\" while it copies", ("tool", "relation", "reason"))
    lag = gauge("dbwatch_migration_osc_throttle_lag_seconds",
                "The replication lag gh-ost is throttled on, from its changelog's throttle reason",
                ("tool", "relation"))
    for run in runs:
        rows.add((run.tool, run.relation, "copied"), float(run.copied))
        rows.add((run.tool, run.relation, "total"), float(run.total))
        ratio.add((run.tool, run.relation), min(1.0, run.copied / run.total) if run.total else 1.0)
        stalled.add((run.tool, run.relation), run.stalled_seconds)
        if run.heartbeat_age is not None:
            heartbeat.add((run.tool, run.relation), run.heartbeat_age)
        if run.throttle_reason is not None:
            throttled.add((run.tool, run.relation, run.throttle_reason), 1.0 if run.throttle_reason else 0.0)
        if run.throttle_lag is not None:
            lag.add((run.tool, run.relation), run.throttle_lag)
    return [rows, ratio, stalled, heartbeat, throttled, lag]
