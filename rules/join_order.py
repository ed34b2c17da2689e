"""``MySQLJoinOrder``: a costly join driven from a table it does not filter while the filtered table comes last.

Reads :class:`~dbwatch.model.facts.mysql_joins.MySQLJoinOrders` (collectors/mysql_advisor_joins.py). The fix
offered is the statistics the optimizer lacked for the late filter (``filtered`` 100 % in EXPLAIN): on
MariaDB ``ANALYZE TABLE ... PERSISTENT FOR COLUMNS (...) INDEXES ()`` (engine-independent statistics with a
histogram, which MariaDB 10.4+ uses by default), on MySQL 8 ``ANALYZE TABLE ... UPDATE HISTOGRAM ON ...``;
with them the optimizer can start from the filtered table. The finding also names the order to try at once
(``SELECT STRAIGHT_JOIN`` with that table first) and an index on the filter column as the other way in.
Impact: half the statement's share of time (not measured: the new order's time is not known until it runs).
"""

from __future__ import annotations

from typing import Iterable

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.mysql_joins import MySQLJoinOrders
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import TargetView

__all__ = ["MySQLJoinOrderRule"]

WARNING_SHARE = 0.05
WEIGHT = 0.5
LOCK = ("reads the whole table to build the statistics (I/O for its size; no row changes); the optimizer's "
        "estimates change, so other plans on this table may change too")


class MySQLJoinOrderRule:
    name = "MySQLJoinOrder"
    engines = ("mysql",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        out = []
        for j in view.fact(MySQLJoinOrders) or ():
            driver, late = j.steps[0], j.steps[j.filtered_step]
            columns = late.filter_columns
            table = ".".join(_q(p) for p in late.table.split(".", 1))
            quoted = ", ".join(_q(c) for c in columns)
            sql = (f"ANALYZE TABLE {table} PERSISTENT FOR COLUMNS ({quoted}) INDEXES ();" if j.mariadb
                   else f"ANALYZE TABLE {table} UPDATE HISTOGRAM ON {quoted};")
            order = " → ".join(f"{s.table} ({s.alias})" for s in j.steps)
            sent = j.rows_sent / j.calls if j.calls else 0.0
            unknown = " with no estimate for it (filtered 100 %)" if late.filtered >= 100 else ""
            evidence = {
                "digest": j.digest, "query": j.query, "sample": j.sample, "calls": j.calls,
                "mean_ms": round(1000 * j.total_time_seconds / j.calls, 3) if j.calls else 0.0,
                "time_share": round(j.time_share, 4), "total_time_seconds": round(j.total_time_seconds, 6),
                "rows_examined": j.rows_examined, "rows_sent": j.rows_sent,
                "examined_per_call": round(j.examined_per_call, 1), "estimated_rows_per_call": round(j.estimated_rows, 1),
                "join_order": [{"alias": s.alias, "table": s.table, "access_type": s.access_type, "rows": s.rows,
                                "filtered": s.filtered, "filter_columns": list(s.filter_columns)} for s in j.steps],
                "driving_table": driver.table, "driving_rows": driver.rows, "filtered_table": late.table,
                "filter_columns": list(columns), "lock": LOCK, "risk": "medium"}
            out.append(recommend(
                self.name, view, Severity.WARNING if j.time_share >= WARNING_SHARE else Severity.INFO,
                f"Join order: driven from {driver.table} ({driver.rows} rows, not filtered) while the filter on "
                f"{late.table} ({', '.join(columns)}) comes last: {j.examined_per_call:.0f} rows examined per call "
                f"for {sent:.0f} sent, {_pct(j.time_share)} of statement time",
                f"The optimizer joins {order}: it starts from {driver.table}, which the statement does not filter, "
                f"and reaches {late.table}, whose WHERE condition on {', '.join(columns)} discards most rows, only "
                f"at step {j.filtered_step + 1}{unknown}. So every joined row is read to be thrown away: "
                f"{j.examined_per_call:.0f} rows examined per call (EXPLAIN expected {j.estimated_rows:.0f}). Give "
                f"the optimizer the filter's selectivity with the statement below (then check EXPLAIN starts from "
                f"{late.table}), or an index on {late.table} ({columns[0]}); to compare the order at once, run the "
                f"statement as SELECT STRAIGHT_JOIN with {late.table} first in FROM.",
                {"digest": j.digest, "table": late.table}, evidence, sql, j.time_share * WEIGHT))
        return out


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"
