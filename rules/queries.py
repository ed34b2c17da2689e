"""Query recommendations from the statement statistics: N+1 patterns, rewrite hints and batch hints.

The rules read the :class:`~dbwatch.model.facts.statements.Statements` facts (pg_stat_statements on
PostgreSQL, performance_schema digests on MySQL/MariaDB; the same field names) summed over the snapshots the
agent keeps (about 40 collections), so a statement idle for a minute does not make its advice blink; and the
slow log's samples (:class:`~dbwatch.model.facts.slowlog.SlowClasses`, literals and all) for the hints that
need a literal.

- ``QueryNPlusOne`` (rules/nplusone.py): a lookup by key run once per row of another statement; in
  ``dbwatch advise`` (one collection, no interval) from the advisors' totals since the statistics' reset
  (:class:`~dbwatch.model.facts.workload.WorkloadTotals`); the parent is named only on evidence.
- ``QueryRewriteHint``: ``SELECT *``; ``count(*)`` compared with a value where ``EXISTS`` stops at the first
  row; a correlated scalar subquery (run once per outer row); ``NOT IN (subquery)`` (NULL semantics, no
  anti-join); deep ``OFFSET`` (a literal ≥ 1000, or a parameter while the statement touches ≥ 50 blocks per
  row returned); a leading-wildcard ``LIKE`` (literals only); no ``LIMIT`` while returning ≥ 1000 rows a call.
- ``QueryBatchHint``: the same single-row INSERT at least 1000 times a minute.

Functions or casts on an indexed column need the full index list, which no collector gives yet: that hint
is not made. Parses are cached per statement (evaluation runs every 5 s), findings per newest snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from dbwatch.model import Finding, Severity, Snapshot
from dbwatch.model.facts.slowlog import SlowClass, SlowClasses
from dbwatch.model.facts.statements import Statements
from dbwatch.model.facts.workload import WorkloadTotals
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.nplusone import NPLUSONE_FANOUT, NPLUSONE_MIN_CALLS, n_plus_one
from dbwatch.rules.spec import RulesConfig
from dbwatch.sqlshape import Analyser, ParseFailures, Shape, analyser

__all__ = ["make_rules", "NPLUSONE_MIN_CALLS", "NPLUSONE_FANOUT"]

HINT_MIN_CALLS = 10
DEEP_OFFSET = 1000
OFFSET_BLOCKS_PER_ROW = 50.0
LARGE_RESULT_ROWS = 1000.0
BATCH_PER_MINUTE = 1000.0
_PARSE_CACHE_SIZE = 2000


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [QueryRules()]


@dataclass(slots=True)
class _Agg:
    """One statement summed over the kept snapshots."""

    queryid: str
    user: str
    datname: str
    query: str | None
    calls: int = 0
    rows: int = 0
    seconds: float = 0.0
    blocks: int = 0


class QueryRules:
    """All three query rules in one pass: they share the summed statements and the parses."""

    name = "QueryRules"
    engines = ("postgres", "mysql")

    def __init__(self) -> None:
        self._parses: dict[tuple[str, str], Shape | None] = {}
        self.failures = ParseFailures()  # statements of either dialect that did not parse
        self._analysers: dict[str, Analyser] = {}
        self._findings: dict[str, tuple[tuple[Any, ...], list[Finding]]] = {}

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        history = [s for s in view.history_with(Statements) if s.ok]
        newest_slow = view.snapshot_with(SlowClasses)
        slow = list(newest_slow.fact(SlowClasses) or ()) if newest_slow is not None else []
        totals_at = view.snapshot_with(WorkloadTotals)
        totals = totals_at.fact(WorkloadTotals) if totals_at is not None else None
        key = (view.engine, history[-1].started_at if history else None, len(history),
               newest_slow.started_at if newest_slow is not None else None, tuple(view.labels.items()),
               totals_at.started_at if totals_at is not None else None)
        cached = self._findings.get(view.target)
        if cached is not None and cached[0] == key:
            return cached[1]
        findings = self._judge(view, history, slow, totals)
        self._findings[view.target] = (key, findings)
        return findings

    def _shape(self, engine: str, queryid: str, text: str | None) -> Shape | None:
        if not text:
            return None
        cache_key = (queryid, text)
        if cache_key not in self._parses:
            if len(self._parses) >= _PARSE_CACHE_SIZE:
                self._parses.clear()
            if engine not in self._analysers:
                self._analysers[engine] = analyser(engine, self.failures)
            found = self._analysers[engine].shape(text)
            self._parses[cache_key] = found if isinstance(found, Shape) else None  # skipped: no hint
        return self._parses[cache_key]

    def _judge(self, view: TargetView, history: list[Snapshot], slow: list[SlowClass],
               totals: WorkloadTotals | None) -> list[Finding]:
        stats, window = _summed(history)
        links = totals.links if totals is not None else None
        if not any(a.calls for a in stats.values()) and totals is not None:
            # One collection (dbwatch advise): no interval to take a difference over, so the N+1 check reads
            # the totals since the statistics' reset; the hints keep to the daemon's windows.
            since = {k: _Agg(t.queryid, "", t.datname, t.query, t.calls, t.rows, t.seconds, t.blocks)
                     for t in totals for k in [(t.queryid, "", t.datname)]}
            shapes = {k: self._shape(view.engine, a.queryid, a.query) for k, a in since.items()}
            return list(n_plus_one(view, since, shapes, links, _measured, totals.tables))
        shapes = {k: self._shape(view.engine, a.queryid, a.query) for k, a in stats.items()}
        out = list(n_plus_one(view, stats, shapes, links, _measured, totals.tables if totals is not None else ()))
        total = _total_seconds(stats)
        for k, agg in stats.items():
            shape = shapes[k]
            # Statements on the server's catalogs only are dbwatch's own (its audit reads SELECT * FROM
            # mysql.user) or an admin's: no advice for the application in them.
            if shape is None or not shape.application:
                continue
            out.extend(self._hints(view, agg, shape, window, total))
        for cls in slow:
            shape = self._shape(view.engine, f"slow:{cls.class_id}", cls.sample)
            if shape is not None and shape.application:
                out.extend(self._literal_hints(view, cls, shape))
        return out

    def _hints(self, view: TargetView, agg: _Agg, shape: Shape, window: float, total: float) -> Iterable[Finding]:
        if agg.calls < HINT_MIN_CALLS:
            return
        base = {"queryid": agg.queryid, "query": agg.query, "calls": agg.calls, "rows": agg.rows,
                "total_time_seconds": round(agg.seconds, 6), "datname": agg.datname, **_measured(agg, total)}
        rows_per_call = agg.rows / agg.calls
        hints: list[tuple[str, str, str, dict[str, Any]]] = []
        if shape.select_star:
            hints.append(("select_star", "SELECT * fetches every column",
                          "Name the columns the code uses: fewer bytes, index-only scans become possible, and a new "
                          "column does not change what the application receives.", {}))
        if shape.count_compared:
            hints.append(("count_instead_of_exists", "count(*) compared with a value where EXISTS would do",
                          "count(*) visits every matching row; EXISTS (SELECT 1 ...) stops at the first. If the "
                          "comparison is with 0, write EXISTS / NOT EXISTS.", {}))
        if shape.correlated_subquery:
            hints.append(("correlated_subquery", "a correlated scalar subquery runs once per outer row",
                          "Rewrite it as a JOIN (with GROUP BY for an aggregate) or a LATERAL join, which the "
                          "planner can run as one hash or merge join.", {}))
        if shape.not_in_subquery:
            hints.append(("not_in_subquery", "NOT IN (subquery)",
                          "NOT IN returns no row at all when the subquery yields a NULL, and cannot be planned as "
                          "an anti-join; NOT EXISTS (SELECT 1 ... WHERE ...) is both correct and fast.", {}))
        blocks_per_row = agg.blocks / agg.rows if agg.rows else 0.0
        if shape.offset is not None and shape.offset >= DEEP_OFFSET:
            hints.append(("deep_offset", f"OFFSET {shape.offset}: pagination by skipping rows",
                          "Every skipped row is read and thrown away. Page by key instead (WHERE id > $last ORDER BY "
                          "id LIMIT n).", {"offset": shape.offset}))
        elif shape.offset_param and blocks_per_row >= OFFSET_BLOCKS_PER_ROW:
            hints.append(("deep_offset", f"OFFSET pagination touching {blocks_per_row:.0f} blocks per row returned",
                          "The statement pages with OFFSET and reads far more than it returns: the offsets are "
                          "deep. Page by key instead (WHERE id > $last ORDER BY id LIMIT n).",
                          {"blocks_per_row": round(blocks_per_row, 1)}))
        for column in shape.leading_wildcard:
            hints.append(("leading_wildcard_like", f"LIKE '%…' on {column} cannot use a b-tree index",
                          "A pattern starting with a wildcard scans every row; a trigram GIN index (pg_trgm) or "
                          "full-text search serves it.", {"column": column}))
        if (shape.kind == "select" and not shape.has_limit and not shape.aggregate
                and rows_per_call >= LARGE_RESULT_ROWS):
            hints.append(("missing_limit", f"no LIMIT while returning {rows_per_call:.0f} rows per call",
                          "Large unbounded results cost the server, the network and the client's memory; page them "
                          "(LIMIT with keyset pagination) or aggregate in SQL.",
                          {"rows_per_call": round(rows_per_call, 1)}))
        for hint, summary, text, extra in hints:
            yield recommend("QueryRewriteHint", view, Severity.INFO, f"Query hint: {summary}", text,
                            {"queryid": agg.queryid, "hint": hint}, {**base, "hint": hint, **extra}, None,
                            0.02 + 0.5 * agg.seconds / max(total, 1e-9))
        per_minute = agg.calls / window * 60 if window > 0 else 0.0
        if shape.kind == "insert" and shape.single_row_insert and per_minute >= BATCH_PER_MINUTE:
            table = shape.tables[0] if shape.tables else "?"
            yield recommend(
                "QueryBatchHint", view, Severity.INFO,
                f"Single-row INSERT into {table} {per_minute:.0f} times a minute: batch it",
                "Each single-row INSERT pays a round trip, a parse and (outside a transaction) a commit. Send many "
                "rows per statement (multi-row VALUES, or COPY / LOAD DATA for bulk loads), in one transaction.",
                {"queryid": agg.queryid}, {**base, "table": table, "calls_per_minute": round(per_minute, 1),
                                           "window_seconds": round(window, 1)}, None, 0.1)

    def _literal_hints(self, view: TargetView, cls: Any, shape: Shape) -> Iterable[Finding]:
        base = {"class_id": cls.class_id, "sample": cls.sample, "count": cls.count, "source": "slowlog"}
        for column in shape.leading_wildcard:
            yield recommend("QueryRewriteHint", view, Severity.INFO,
                            f"Query hint: LIKE '%…' on {column} cannot use a b-tree index (slow log)",
                            "A pattern starting with a wildcard scans every row; a trigram GIN index (pg_trgm) or "
                            "full-text search serves it.", {"queryid": f"slow:{cls.class_id}",
                                                             "hint": "leading_wildcard_like"},
                            {**base, "hint": "leading_wildcard_like", "column": column}, None, 0.05)
        if shape.offset is not None and shape.offset >= DEEP_OFFSET:
            yield recommend("QueryRewriteHint", view, Severity.INFO,
                            f"Query hint: OFFSET {shape.offset}: pagination by skipping rows (slow log)",
                            "Every skipped row is read and thrown away. Page by key instead (WHERE id > $last "
                            "ORDER BY id LIMIT n).", {"queryid": f"slow:{cls.class_id}", "hint": "deep_offset"},
                            {**base, "hint": "deep_offset", "offset": shape.offset}, None, 0.05)


def _summed(history: list[Snapshot]) -> tuple[dict[tuple[str, str, str], _Agg], float]:
    stats: dict[tuple[str, str, str], _Agg] = {}
    window = 0.0
    for snapshot in history:
        rows = snapshot.fact(Statements) or Statements()
        window += max((r.interval_seconds for r in rows), default=0.0)
        for r in rows:
            key = (str(r.queryid), r.user, r.datname)
            agg = stats.get(key)
            if agg is None:
                agg = stats[key] = _Agg(str(r.queryid), r.user, r.datname, r.query)
            agg.query = r.query or agg.query
            agg.calls += r.delta_calls
            agg.rows += r.delta_rows
            agg.seconds += r.delta_time_seconds
            agg.blocks += (getattr(r, "delta_shared_blks_hit", 0) + getattr(r, "delta_shared_blks_read", 0)
                           or getattr(r, "delta_rows_examined", 0))
    return stats, window


def _measured(agg: _Agg, total: float) -> dict[str, float]:
    """Milliseconds per call and share of all statement time over the window."""
    return {"mean_ms": round(1000 * agg.seconds / agg.calls, 3) if agg.calls else 0.0,
            "time_share": round(agg.seconds / total, 4) if total > 0 else 0.0}


def _total_seconds(stats: dict[tuple[str, str, str], _Agg]) -> float:
    return sum(a.seconds for a in stats.values())
