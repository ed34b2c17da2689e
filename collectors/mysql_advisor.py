"""The MySQL/MariaDB index advisor: statements that read whole tables, and the index that would serve them.

From performance_schema's digests (``events_statements_summary_by_digest``): digests that ran without an
index (``SUM_NO_INDEX_USED``, ``SUM_NO_GOOD_INDEX_USED``) or examined many rows per row sent, costliest
first. For each, a statement *with its literals* when performance_schema keeps one
(``events_statements_history_long`` or ``events_statements_history``: their consumers are off by default,
see :data:`CONSUMERS_NOTE`), else the digest text with each ``?`` replaced by a value of the compared
column's type. sqlglot reads which columns it filters on (equality, then range), joins on and sorts by;
``EXPLAIN FORMAT=JSON`` of the statement shows which tables it reads whole (``access_type`` ALL or index)
and how many rows per scan (and ``query_cost`` on MySQL). A table read whole, with at least
``min_table_rows`` rows, gets one candidate: its equality columns, then its first range column (or else
its ORDER BY column), or its join key; never one an existing index already leads with
(``information_schema.STATISTICS``).

Neither MySQL nor MariaDB has hypothetical indexes, so the plan *after* is not measured: candidates are
labelled ``method: explain-before`` (the plan before, the statement's own numbers, and the heuristic
above). Nothing is executed or written: only ``EXPLAIN`` (never ``ANALYZE``) of a SELECT that sqlglot
rendered from one parsed statement (UPDATE/DELETE become the SELECT of their rows: the session is
read-only), under the session's ``max_statement_time``.

Facts (:mod:`dbwatch.model.facts.mysql_advisor`): :class:`MySQLIndexCandidates` (the shape of the PostgreSQL
advisor's ``IndexCandidate``, read by rules/mysql_indexes.py) and :class:`MySQLAdviceSettings`; join-order
problems of the same digests (:mod:`mysql_advisor_joins`, :class:`~dbwatch.model.facts.mysql_joins.MySQLJoinOrders`)
and the digest totals for the N+1 check (:mod:`mysql_advisor_workload`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator

from dbwatch.model import MetricFamily, Snapshot, gauge
from dbwatch.collectors.base import Collector
from dbwatch.collectors.mysql import ACCESS_DENIED, MySQLSession, QueryError, grantee
from dbwatch.collectors.mysql_advisor_hygiene import mysql_hygiene
from dbwatch.collectors.mysql_advisor_joins import join_order
from dbwatch.collectors.mysql_advisor_workload import workload_totals
from dbwatch.collectors.pg_advisor_hygiene import index_name
from dbwatch.sqlshape import ColumnUse, MySQLAnalyser, StatementUses, TableKey
from dbwatch.model.facts.common import Summary
from dbwatch.model.options import CollectorOptions, Count, Number
from dbwatch.model.facts.mysql_joins import MySQLJoinOrder, MySQLJoinOrders
from dbwatch.model.facts.mysql_advisor import (
    MySQLAdviceSettings, MySQLIndexCandidate, MySQLIndexCandidates, MySQLStatementCost,
)

if TYPE_CHECKING:  # sqlglot loads with the first MySQL statement, not with the collector
    from dbwatch.sqlshape.mysql_uses import MySQLStatement

__all__ = ["CONSUMERS_NOTE", "MySQLAdvisorOptions", "MySQLAdvisorCollector"]


class MySQLAdvisorOptions(CollectorOptions):
    max_statements: Count = 20  # digests EXPLAINed per run, costliest first
    min_calls: Count = 1
    min_examined_per_row: Number = 100.0  # ...or digests without NO_INDEX_USED that examine this many rows per row
    min_table_rows: Count = 10000  # smaller tables are read whole faster than through an index
    unused_index_min_age: Number = 604800.0  # seconds of uptime before "never read" means unused (7 days)


CONSUMERS_NOTE = (
    "performance_schema keeps no statement samples (consumers events_statements_current and "
    "events_statements_history_long / events_statements_history are off), so index candidates are planned from "
    "digest texts with representative values: for samples with their literals run UPDATE "
    "performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ('events_statements_current', "
    "'events_statements_history_long'); (and performance-schema-consumer-events-statements-current = ON, "
    "performance-schema-consumer-events-statements-history-long = ON under [mysqld])")
_SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")
_PICO = 1e12
_SPACE = re.compile(r"\s+")

STATE = """SELECT @@performance_schema AS enabled,
  (SELECT GROUP_CONCAT(NAME) FROM performance_schema.setup_consumers WHERE ENABLED = 'YES') AS consumers"""
DIGESTS = f"""
SELECT SCHEMA_NAME AS db, DIGEST AS digest, DIGEST_TEXT AS text, COUNT_STAR AS calls, SUM_TIMER_WAIT AS time,
       SUM_ROWS_EXAMINED AS examined, SUM_ROWS_SENT AS sent, SUM_ROWS_AFFECTED AS affected,
       SUM_NO_INDEX_USED AS no_index, SUM_NO_GOOD_INDEX_USED AS no_good_index,
       SUM_TIMER_WAIT / NULLIF((SELECT SUM(SUM_TIMER_WAIT)
                                FROM performance_schema.events_statements_summary_by_digest), 0) AS share
FROM performance_schema.events_statements_summary_by_digest
WHERE DIGEST IS NOT NULL AND (SCHEMA_NAME IS NULL OR SCHEMA_NAME NOT IN {_SYSTEM!r})
  AND COUNT_STAR >= %s AND (DIGEST_TEXT LIKE 'SELECT%%' OR DIGEST_TEXT LIKE 'UPDATE%%' OR DIGEST_TEXT LIKE 'DELETE%%')
  AND (SUM_NO_INDEX_USED > 0 OR SUM_NO_GOOD_INDEX_USED > 0
       OR SUM_ROWS_EXAMINED >= %s * GREATEST(SUM_ROWS_SENT + SUM_ROWS_AFFECTED, COUNT_STAR))
ORDER BY SUM_TIMER_WAIT DESC
LIMIT %s"""
SAMPLES = """SELECT DIGEST AS digest, SQL_TEXT AS text FROM performance_schema.{table}
WHERE DIGEST IN ({placeholders}) AND SQL_TEXT IS NOT NULL ORDER BY EVENT_ID"""
TABLES = """SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, COALESCE(TABLE_ROWS, 0) AS rows_,
  COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS size FROM information_schema.TABLES
WHERE TABLE_TYPE = 'BASE TABLE' AND (TABLE_SCHEMA, TABLE_NAME) IN ({pairs})"""
COLUMNS = """SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, COLUMN_NAME AS col, DATA_TYPE AS type
FROM information_schema.COLUMNS WHERE (TABLE_SCHEMA, TABLE_NAME) IN ({pairs})"""
INDEXES = """SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, INDEX_NAME AS idx, COLUMN_NAME AS col
FROM information_schema.STATISTICS WHERE (TABLE_SCHEMA, TABLE_NAME) IN ({pairs})
ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"""
WRITES = """SELECT OBJECT_SCHEMA AS db, OBJECT_NAME AS name, COUNT_WRITE AS writes
FROM performance_schema.table_io_waits_summary_by_table WHERE (OBJECT_SCHEMA, OBJECT_NAME) IN ({pairs})"""
UPTIME = "SHOW GLOBAL STATUS LIKE 'Uptime'"


@dataclass(slots=True)
class _Table:
    rows: int
    size: int
    columns: dict[str, tuple[str, str]]  # lower-case name -> (name as defined, data type)
    indexes: dict[str, list[str]]  # index name -> lower-case columns in order
    writes: int = 0


class MySQLAdvisorCollector(Collector[MySQLSession, MySQLAdvisorOptions]):
    name = "advisor"

    @cached_property
    def sql(self) -> MySQLAnalyser:
        """This target's statement reader: its parse failures are exported with the advisor's metrics."""
        return MySQLAnalyser()
    options_model = MySQLAdvisorOptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.explains = 0
        self.failed = 0

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        self.explains = self.failed = 0
        snapshot.put(MySQLIndexCandidates())
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            [[_, uptime]] = await session.run(UPTIME, tuples=True)
            # Index hygiene needs no digests: it is judged even where the candidates below cannot be.
            snapshot.put(*await mysql_hygiene(session, float(uptime or 0)), self._settings("none", float(uptime or 0)))
            try:
                [state] = await session.run(STATE)
                if not int(state["enabled"] or 0):
                    snapshot.notes.append("performance_schema is OFF, so there are no index candidates: set "
                                          "performance_schema = ON under [mysqld] and restart the server")
                    return
                options = self.options
                digests = await session.run(DIGESTS, (options.min_calls, options.min_examined_per_row,
                                                      options.max_statements))
            except QueryError as exc:
                if exc.errno not in ACCESS_DENIED:
                    raise
                snapshot.notes.append(f"user {server.user} may not read performance_schema, so there are no index "
                                      f"candidates; run GRANT SELECT ON performance_schema.* TO "
                                      f"{grantee(server.user)};")
                return
            try:  # N+1 in one-shot advice: digest totals since performance_schema began counting
                snapshot.put(await workload_totals(session, float(uptime or 0)))
            except QueryError as exc:
                snapshot.notes.append(f"no N+1 check: {exc}")
            consumers = set(str(state["consumers"] or "").split(","))
            samples, source = await self._samples(session, consumers, [d["digest"] for d in digests])
            if source == "digest":
                snapshot.notes.append(CONSUMERS_NOTE)
            parsed: list[tuple[dict[str, Any], MySQLStatement, str, str]] = []
            for digest in digests:
                text = _text(digest["text"])
                sample = samples.get(digest["digest"])
                found = self.sql.uses(sample, digest["db"] or "") if sample else None
                used = source if isinstance(found, StatementUses) else "digest"
                if not isinstance(found, StatementUses):
                    found = self.sql.uses(text, digest["db"] or "")
                if isinstance(found, StatementUses):
                    parsed.append((digest, found, used, text))
            tables = await self._tables(session, {t for _, p, _, _ in parsed for t in p.names.values()})
            chosen: dict[tuple[TableKey, tuple[str, ...]], tuple[str, list[MySQLStatementCost]]] = {}
            joins: list[MySQLJoinOrder] = []
            for digest, found, used, text in parsed:
                types = {key: {c: t for c, (_, t) in table.columns.items()} for key, table in tables.items()}
                statement = self.sql.explainable(found, types if used == "digest" else {})
                plan = await self._explain(session, statement)
                if plan is None:
                    continue
                joined = join_order(digest, found, plan, _fold(text), _fold(statement), server.mariadb)
                if joined is not None:
                    joins.append(joined)
                for alias, access, rows, cost in _scans(plan):
                    key = found.names.get(alias)
                    if key is None:
                        continue
                    table = tables.get(key)
                    if table is None or max(rows, table.rows) < self.options.min_table_rows:
                        continue
                    best = _candidate(found.tables.get(key, ColumnUse()), found.unqualified, table)
                    if best is None:
                        continue
                    columns, reason = best
                    cost_entry = MySQLStatementCost(
                        queryid=str(digest["digest"]), query=_fold(text), sample=_fold(statement),
                        sample_source=used.replace("events_statements_", ""), calls=int(digest["calls"]),
                        total_time_seconds=float(digest["time"] or 0) / _PICO, time_share=float(digest["share"] or 0),
                        rows_examined=int(digest["examined"] or 0), rows_sent=int(digest["sent"] or 0),
                        no_index_used=int(digest["no_index"] or 0), access_type=access,
                        rows_examined_per_scan=rows, query_cost=cost, cost_before=cost)
                    chosen.setdefault((key, columns), (reason, []))[1].append(cost_entry)
        candidates = sorted((self._fact(key, columns, reason, costs, tables[key], float(uptime or 0))
                             for (key, columns), (reason, costs) in chosen.items()), key=lambda c: -c.time_share)
        snapshot.put(MySQLIndexCandidates(tuple(candidates)), MySQLJoinOrders(tuple(joins)),
                     self._settings(source, float(uptime or 0)),
                     Summary({"index candidates": len(candidates)}))
        snapshot.families.extend(self._families(len(parsed), len(candidates)))
        snapshot.families.append(self.sql.failures.family())

    def _settings(self, samples: str, uptime: float) -> MySQLAdviceSettings:
        return MySQLAdviceSettings(samples=samples, min_table_rows=self.options.min_table_rows,
                                   observed_seconds=uptime, unused_index_min_age=self.options.unused_index_min_age)

    async def _samples(self, session: MySQLSession, consumers: set[str], digests: list[str]
                       ) -> tuple[dict[str, str], str]:
        """The newest sample with literals per digest, and which table they came from."""
        if "events_statements_current" not in consumers:
            return {}, "digest"
        for table in ("events_statements_history_long", "events_statements_history"):
            if table not in consumers:
                continue
            if not digests:
                return {}, table
            query = SAMPLES.format(table=table, placeholders=", ".join(["%s"] * len(digests)))
            try:
                rows = await session.run(query, digests)
            except QueryError:
                continue
            return {r["digest"]: _text(r["text"]) for r in rows}, table  # ordered by EVENT_ID: newest wins
        return {}, "digest"

    async def _tables(self, session: MySQLSession, keys: set[TableKey]) -> dict[TableKey, _Table]:
        if not keys:
            return {}
        ordered = sorted(keys)
        pairs = ", ".join(["(%s, %s)"] * len(ordered))
        args = [part for key in ordered for part in key]
        out = {(r["db"], r["name"]): _Table(int(r["rows_"]), int(r["size"]), {}, {})
               for r in await session.run(TABLES.format(pairs=pairs), args)}
        for r in await session.run(COLUMNS.format(pairs=pairs), args):
            if (r["db"], r["name"]) in out:
                out[(r["db"], r["name"])].columns[r["col"].lower()] = (r["col"], str(r["type"]))
        for r in await session.run(INDEXES.format(pairs=pairs), args):
            if (r["db"], r["name"]) in out:
                out[(r["db"], r["name"])].indexes.setdefault(r["idx"], []).append(str(r["col"]).lower())
        try:
            for r in await session.run(WRITES.format(pairs=pairs), args):
                if (r["db"], r["name"]) in out:
                    out[(r["db"], r["name"])].writes = int(r["writes"] or 0)
        except QueryError:
            pass  # table I/O instruments unreadable: the write penalty shows 0
        return out

    async def _explain(self, session: MySQLSession, statement: str) -> dict[str, Any] | None:
        self.explains += 1
        try:
            [[raw]] = await session.run(f"EXPLAIN FORMAT=JSON {statement}", tuples=True)
            plan: dict[str, Any] = json.loads(raw)
            return plan
        except (QueryError, ValueError):  # objects gone, privileges, a type the value did not fit
            self.failed += 1
            return None

    def _fact(self, key: TableKey, columns: tuple[str, ...], reason: str, costs: list[MySQLStatementCost],
              table: _Table, uptime: float) -> MySQLIndexCandidate:
        schema, name = key
        quoted = ", ".join(_quote(c) for c in columns)
        return MySQLIndexCandidate(
            schema=schema, table=name, columns=columns, method="explain-before",
            create_sql=(f"ALTER TABLE {_quote(schema)}.{_quote(name)} ADD INDEX {_quote(index_name(name, columns))} "
                        f"({quoted}), ALGORITHM=INPLACE, LOCK=NONE;"),
            reason=reason, statements=tuple(costs), table_rows=table.rows, table_size_bytes=table.size,
            writes_total=table.writes, writes_per_second=table.writes / uptime if uptime > 0 else 0.0,
            index_count=len(table.indexes))

    def _families(self, statements: int, candidates: int) -> list[MetricFamily]:
        out = []
        for name, help_, value in (
            ("dbwatch_mysql_advisor_statements", "Digests on application tables the index advisor considered in its last run.", statements),
            ("dbwatch_mysql_advisor_explains", "EXPLAINs the index advisor ran in its last run.", self.explains),
            ("dbwatch_mysql_advisor_explain_failures", "Statements the advisor could not EXPLAIN.", self.failed),
            ("dbwatch_mysql_advisor_index_candidates", "Index candidates the advisor found in its last run.",
             candidates),
        ):
            fam = gauge(name, help_)
            fam.add((), value)
            out.append(fam)
        return out


def _candidate(use: ColumnUse, unqualified: list[tuple[tuple[TableKey, ...], str, str]], table: _Table
               ) -> tuple[tuple[str, ...], str] | None:
    """Equality columns, then one range column (or else the ORDER BY column); else a join key; else a range
    or ORDER BY column alone. None when an existing index already leads with those columns."""
    merged = ColumnUse(list(use.equality), list(use.range), list(use.join), list(use.order))
    for _, kind, column in unqualified:  # a column only this table has
        if column.lower() in table.columns:
            merged.add(kind, column)

    def known(names: list[str], skip: tuple[str, ...] = ()) -> list[str]:
        return [table.columns[n.lower()][0] for n in names if n.lower() in table.columns and n not in skip]

    eq = known(merged.equality)[:3]
    rng = known(merged.range, tuple(eq))
    order = known(merged.order, tuple(eq))
    shapes: list[tuple[tuple[str, ...], str]] = []
    if eq and rng:
        shapes.append(((*eq, rng[0]), f"equality on {', '.join(eq)}, range on {rng[0]}"))
    if eq and order and not rng:
        shapes.append(((*eq, order[0]), f"equality on {', '.join(eq)}, ORDER BY {order[0]}"))
    if eq:
        shapes.append((tuple(eq), f"equality on {', '.join(eq)}"))
    shapes += [((c,), f"join on {c}") for c in known(merged.join)[:1]]
    shapes += [((c,), f"range on {c}") for c in rng[:1]]
    shapes += [((c,), f"ORDER BY {c}") for c in order[:1] if not rng]
    for columns, reason in shapes:
        lowered = [c.lower() for c in columns]
        if not any(existing[:len(lowered)] == lowered for existing in table.indexes.values()):
            return columns, reason
    return None


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str, int, float | None]]:
    """(table alias, access_type, rows per scan, query_cost) of every table EXPLAIN reads whole."""
    block = plan.get("query_block", {})
    info = block.get("cost_info", {})
    cost = info.get("query_cost") if isinstance(info, dict) else None
    cost = cost if cost is not None else block.get("cost")
    stack: list[Any] = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            table = node.get("table")
            if isinstance(table, dict) and table.get("access_type") in ("ALL", "index") and table.get("table_name"):
                rows = table.get("rows_examined_per_scan", table.get("rows", 0))
                yield (str(table["table_name"]), str(table["access_type"]), int(rows or 0),
                       None if cost is None else float(cost))
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value or "")


def _fold(text: str) -> str:
    folded = _SPACE.sub(" ", text).strip()
    return folded[:299] + "…" if len(folded) > 300 else folded


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
