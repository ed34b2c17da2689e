"""MySQL/MariaDB index candidates: the PostgreSQL rule (rules/indexes.py) over the facts of the
MySQL/MariaDB advisor (collectors/mysql_advisor.py, :mod:`dbwatch.model.facts.mysql_advisor`), which have the
same shape.

Neither server has hypothetical indexes, so nothing is costed *after*: every candidate is
``method: explain-before`` (the plan before: a full scan of the table, its rows per scan, and the digest's own
totals) and the recommendation says so. Severity ``info``, or ``warning`` when the statements take at least
20 % of all statement time and examine at least 1000 rows per row they return (a full scan that clearly
dominates). The SQL is an online ``ALTER TABLE ... ADD INDEX ..., ALGORITHM=INPLACE, LOCK=NONE``.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.mysql_advisor import MySQLAdviceSettings, MySQLIndexCandidates
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.indexes import (
    HEURISTIC_WEIGHT, IndexCandidateRule, RedundantIndexRule, UnusedIndexRule, _mean_ms, recommended, wider_prefix,
)
from dbwatch.rules.spec import RulesConfig

__all__ = ["MySQLIndexCandidate", "MySQLRedundantIndex", "MySQLUnusedIndex", "make_rules"]

WARNING_SHARE = 0.2
WARNING_EXAMINED_PER_ROW = 1000


def make_rules(config: RulesConfig) -> list[PythonRule]:
    from dbwatch.rules.index_plan import MySQLIndexPlanRule
    from dbwatch.rules.join_order import MySQLJoinOrderRule

    return [MySQLIndexCandidate(), MySQLRedundantIndex(), MySQLUnusedIndex(), MySQLIndexPlanRule(),
            MySQLJoinOrderRule()]


class MySQLRedundantIndex(RedundantIndexRule):
    """Duplicate and prefix-redundant indexes (collectors/mysql_advisor_hygiene.py), as sys.schema_redundant_indexes."""

    name = "MySQLRedundantIndex"
    engines = ("mysql",)
    settings_fact = MySQLAdviceSettings


class MySQLUnusedIndex(UnusedIndexRule):
    """Indexes never read since the server started (performance_schema), as sys.schema_unused_indexes, once the
    uptime covers the advisor's unused_index_min_age."""

    name = "MySQLUnusedIndex"
    engines = ("mysql",)
    settings_fact = MySQLAdviceSettings


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


class MySQLIndexCandidate(IndexCandidateRule):
    name = "MySQLIndexCandidate"
    engines = ("mysql",)
    fact = MySQLIndexCandidates
    settings_fact = MySQLAdviceSettings

    def judge(self, view: TargetView, c: Any, settings: Any) -> Finding | None:
        table = f"{c.schema}.{c.table}"
        if any(wider_prefix(c, other) for other in recommended(view, self.fact, settings)):
            return None  # the wider candidate serves it: one index plan (rules/index_plan.py)
        main = max(c.statements, key=lambda s: s.time_share)
        examined = sum(s.rows_examined for s in c.statements)
        returned = sum(s.rows_sent for s in c.statements)
        per_row = examined / max(returned, sum(s.calls for s in c.statements), 1)
        statements = [
            {"queryid": s.queryid, "query": s.query, "sample": s.sample, "sample_source": s.sample_source,
             "calls": s.calls, "time_share": round(s.time_share, 4),
             "total_time_seconds": round(s.total_time_seconds, 6), "mean_ms": _mean_ms(s),
             "rows_examined": s.rows_examined,
             "rows_sent": s.rows_sent, "no_index_used": s.no_index_used, "access_type": s.access_type,
             "rows_examined_per_scan": s.rows_examined_per_scan, "query_cost": s.query_cost}
            for s in c.statements]
        evidence = {
            "method": c.method, "table": table, "columns": list(c.columns), "reason": c.reason,
            "calls": sum(s.calls for s in c.statements), "mean_ms": _mean_ms(main),
            "access_type": main.access_type, "rows_examined_per_scan": main.rows_examined_per_scan,
            "query_cost": main.query_cost, "cost_before": main.cost_before, "cost_after": None,
            "rows_examined": examined, "rows_sent": returned, "rows_examined_per_row": round(per_row, 1),
            "statements": statements, "time_share": round(c.time_share, 4),
            "table_rows": c.table_rows, "table_size_bytes": c.table_size_bytes, "writes_total": c.writes_total,
            "writes_per_second": round(c.writes_per_second, 3), "index_count": c.index_count,
        }
        scan = "full table scan" if main.access_type == "ALL" else "full index scan"
        severity = (Severity.WARNING if c.time_share >= WARNING_SHARE and per_row >= WARNING_EXAMINED_PER_ROW
                    else Severity.INFO)
        summary = (f"Index {table} ({', '.join(c.columns)}): {scan} of ~{main.rows_examined_per_scan} rows in "
                   f"{len(c.statements)} statement(s) taking {_pct(c.time_share)} of statement time, "
                   f"{per_row:.0f} rows examined per row returned")
        description = (
            f"EXPLAIN shows a {scan} (access_type {main.access_type}) of {table} for the statement(s) below, which "
            f"filter or sort on it ({c.reason}). Not measured after: MySQL and MariaDB have no hypothetical "
            f"indexes, so this comes from the plan before and the digests' own numbers, not from a costed plan "
            f"with the index (method explain-before); check with EXPLAIN after creating it. Write penalty: {table} "
            f"takes {c.writes_per_second:.1f} row writes/s and already has {c.index_count} index(es).")
        labels = {"table": table, "columns": ",".join(c.columns)}
        return self.finding(view, severity, summary, description, labels, evidence, c.create_sql,
                            c.time_share * HEURISTIC_WEIGHT)
