"""Join-order problems on the MySQL/MariaDB advisor's costliest digests.

The pattern (issue 16's costliest MariaDB statement, 10 s → 0.4 s with the right order): a join driven from
a small table the statement does not filter (16 categories), fanning out through the joins, while the table
the WHERE clause does filter (rentals of the last hours) comes last: every joined row is read to be thrown
away there. The optimizer chose that order because it had no estimate of the filter (``filtered`` 100 in
EXPLAIN: no index and no histogram on the column).

Found from what the advisor already has, nothing executed: the digest's measured rows examined per call
and rows sent, and ``EXPLAIN FORMAT=JSON`` of its sample (the nested loop's order, rows and filtered per
table), with sqlglot's reading of which columns the WHERE compares with constants. A digest qualifies when
it examined at least :data:`MIN_EXAMINED_PER_CALL` rows per call and :data:`MIN_EXAMINED_PER_ROW` per row
sent, its driving table has no such filter, and a later table has one.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model.facts.mysql_joins import JoinStep, MySQLJoinOrder
from dbwatch.sqlshape import StatementUses, TableKey

__all__ = ["MIN_EXAMINED_PER_CALL", "MIN_EXAMINED_PER_ROW", "join_order"]

MIN_EXAMINED_PER_CALL = 10_000
MIN_EXAMINED_PER_ROW = 100.0


def join_order(digest: dict[str, Any], found: StatementUses[TableKey], plan: dict[str, Any], query: str, sample: str,
               mariadb: bool) -> MySQLJoinOrder | None:
    calls = int(digest["calls"] or 0)
    examined, sent = int(digest["examined"] or 0), int(digest["sent"] or 0)
    if not calls or examined / calls < MIN_EXAMINED_PER_CALL or examined < MIN_EXAMINED_PER_ROW * max(sent, calls):
        return None
    loop = _nested_loop(plan)
    if len(loop) < 2:
        return None
    steps = []
    for node in loop:
        alias = str(node.get("table_name", ""))
        key = found.names.get(alias)
        if key is None:
            return None  # a derived table or a name sqlglot did not resolve: the order cannot be judged
        use = found.tables.get(key)
        filters = tuple(dict.fromkeys([*use.equality, *use.range, *use.null, *use.not_null])) if use else ()
        steps.append(JoinStep(alias=alias, table=".".join(key), access_type=str(node.get("access_type", "")),
                              rows=int(node.get("rows_examined_per_scan", node.get("rows", 0)) or 0),  # MySQL, MariaDB
                              filtered=float(node.get("filtered", 100) or 100),  # MySQL 8 writes "100.00"
                              filter_columns=filters))
    if steps[0].filter_columns:
        return None  # the driving table is filtered: the order follows the statement's own predicate
    later = [n for n, s in enumerate(steps[1:], 1) if s.filter_columns]
    if not later:
        return None
    filtered_step = min(later, key=lambda n: (steps[n].filtered, -n))  # the least-estimated filter, latest first
    estimated, prefix = 0.0, 1.0
    for s in steps:
        prefix *= max(s.rows, 1)
        estimated += prefix
        prefix *= s.filtered / 100
    schema = found.names[steps[filtered_step].alias][0]
    return MySQLJoinOrder(
        schema=schema, digest=str(digest["digest"]), query=query, sample=sample, calls=calls,
        total_time_seconds=float(digest["time"] or 0) / 1e12, time_share=float(digest["share"] or 0),
        rows_examined=examined, rows_sent=sent, steps=tuple(steps), filtered_step=filtered_step,
        estimated_rows=estimated, mariadb=mariadb)


def _nested_loop(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The outermost nested loop's tables in order (a single table has none)."""
    queue: list[Any] = [plan.get("query_block", {})]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            loop = node.get("nested_loop")
            if isinstance(loop, list):
                return [item["table"] for item in loop if isinstance(item, dict) and isinstance(item.get("table"), dict)]
            queue.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            queue.extend(node)
    return []
