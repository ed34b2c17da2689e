"""``QueryNPlusOne``: a lookup by key run once per row of another statement (the N+1 of an ORM loop).

A single-table lookup by key, about one row per call, called at least ``NPLUSONE_MIN_CALLS`` times and
``NPLUSONE_FANOUT`` times more often than the median of its neighbours (the other statements of the same
database that touch an application table: one the advisor listed when it ran, so dbwatch's own catalog
reads through CTEs and extension views such as pg_stat_statements are not neighbours). The daemon reads the statements' change over the snapshots it
keeps; ``dbwatch advise`` reads the totals since the statistics' reset
(:class:`~dbwatch.model.facts.workload.WorkloadTotals`), so the same loop is found by one collection.

A parent is named only on evidence, never for a matching row count alone: its rows must match the lookup's
calls (within 20 %) *and* it must be tied to the lookup's table by a foreign key between their tables (when
the advisor read them) or by the key itself (its text names the lookup's key column, or ``<table>_id`` for a
lookup by ``id``). Otherwise the finding says no parent was found.
"""

from __future__ import annotations

import re
import statistics
from typing import Any, Iterable, Mapping

from dbwatch.model import Finding, Severity
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import TargetView
from dbwatch.sqlshape import Shape

__all__ = ["NPLUSONE_FANOUT", "NPLUSONE_MIN_CALLS", "n_plus_one"]

NPLUSONE_MIN_CALLS = 100
NPLUSONE_FANOUT = 10.0
NPLUSONE_MAX_ROWS_PER_CALL = 1.5
PARENT_TOLERANCE = 0.2  # parent's rows within 20 % of the lookup's calls
_KEY = re.compile(r"[`\"]?(\w+)[`\"]?\s*=\s*(?:\$\d+|\?|'[^']*'|-?\d+)", re.I)
_WORD = re.compile(r"\w+")


def n_plus_one(view: TargetView, stats: Mapping[Any, Any], shapes: Mapping[Any, Shape | None],
               links: tuple[tuple[str, str], ...] | None, measured: Any, tables: tuple[str, ...] = ()
               ) -> Iterable[Finding]:
    """``stats`` holds per statement ``queryid, datname, query, calls, rows, seconds``; ``measured(agg, total)``
    gives mean_ms and time_share; ``links`` the foreign keys (None when unknown); ``tables`` the application's
    tables (empty when unknown: then any statement naming a table outside the catalogs counts)."""
    total = sum(a.seconds for a in stats.values())
    known = frozenset(tables)

    def application(shape: Shape | None) -> bool:
        if shape is None:
            return False
        return any(_bare(t) in known for t in shape.tables) if known else shape.application

    for k, child in stats.items():
        shape = shapes[k]
        if (shape is None or not application(shape) or shape.kind != "select" or not shape.single_table
                or not shape.key_lookup
                or shape.aggregate or child.calls < NPLUSONE_MIN_CALLS
                or child.rows > NPLUSONE_MAX_ROWS_PER_CALL * child.calls):
            continue
        neighbours = [a for j, a in stats.items() if j != k and a.datname == child.datname and application(shapes[j])]
        if not neighbours:
            continue
        median = statistics.median(a.calls for a in neighbours)
        if child.calls < NPLUSONE_FANOUT * max(median, 1):
            continue
        parents = []
        for j, a in stats.items():
            shape_j = shapes[j]
            if (j == k or a.datname != child.datname or shape_j is None or shape_j.kind != "select"
                    or a.rows < 2 * a.calls or child.calls < 2 * a.calls
                    or abs(a.rows - child.calls) > PARENT_TOLERANCE * child.calls):
                continue
            tie = _tie(shape, child.query or "", shape_j, a.query or "", links)
            if tie:
                parents.append((a, tie))
        parent, tie = min(parents, key=lambda p: (abs(p[0].rows - child.calls), p[0].calls), default=(None, ""))
        evidence: dict[str, Any] = {
            "queryid": child.queryid, "query": child.query, "table": shape.tables[0], "calls": child.calls,
            "rows": child.rows, "rows_per_call": round(child.rows / child.calls, 3),
            "total_time_seconds": round(child.seconds, 6), "neighbour_median_calls": median,
            "datname": child.datname, "parent": None, **measured(child, total)}
        said = " No parent statement shows evidence of driving the loop (rows matching these calls and a key or " \
               "foreign key to this table)."
        if parent is not None:
            evidence["parent"] = {"queryid": parent.queryid, "query": parent.query, "calls": parent.calls,
                                  "rows": parent.rows, "evidence": tie}
            said = (f" Likely parent: {parent.query!r} ({parent.calls} calls returned {parent.rows} rows, one lookup "
                    f"per row; {tie}).")
        yield recommend(
            "QueryNPlusOne", view, Severity.WARNING if child.calls >= 10 * NPLUSONE_MIN_CALLS else Severity.INFO,
            f"N+1 pattern: {child.calls} lookups by key on {shape.tables[0]}, {child.calls / max(median, 1):.0f}× "
            f"its neighbours' calls", f"{child.query!r} returns about one row per call and runs far more often "
            f"than the other statements of {child.datname or 'its database'}: the application fetches rows one "
            f"at a time in a loop.{said} Fetch them in one statement (a JOIN with the parent, or WHERE key = "
            f"ANY($1) / IN (...) with all the keys).", {"queryid": child.queryid},
            evidence, None, min(1.0, child.seconds / max(total, 1e-9)))


def _bare(table: str) -> str:
    return table.replace("`", "").replace('"', "").rsplit(".", 1)[-1].lower()


def _tie(child: Shape, child_query: str, parent: Shape, parent_query: str,
         links: tuple[tuple[str, str], ...] | None) -> str:
    """What ties the parent to the lookup ("" for nothing): a foreign key between their tables, or the key."""
    table = _bare(child.tables[0])
    tables = {_bare(t) for t in parent.tables}
    for a, b in links or ():
        if (a == table and b in tables) or (b == table and a in tables):
            return f"foreign key from {a} to {b}"
    where = child_query.lower().find("where")
    keys = {m.group(1).lower() for m in _KEY.finditer(child_query[where:] if where >= 0 else "")}
    words = {w.lower() for w in _WORD.findall(parent_query)}
    for key in sorted(keys - {"id"}):
        if key in words and table not in tables:
            return f"its rows carry {key}, the lookup's key"
    if "id" in keys:
        for name in {table, table.rstrip("s"), table[:-3] + "y" if table.endswith("ies") else table}:
            if f"{name}_id" in words:
                return f"its rows carry {name}_id, the key of {table}"
    return ""
