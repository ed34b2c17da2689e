"""Query hint that needs the index list: a function or a cast applied to a column that leads a b-tree index.

``WHERE lower(email) = $1`` cannot use an index on ``(email)``, nor ``created_at::date = $1`` one on
``(created_at)``: the b-tree holds the column's values, not the expression's. The statements come from the
``statements`` collector (pg_stat_statements, normalized) summed over the kept snapshots, and from the slow
log's samples (:class:`~dbwatch.model.facts.slowlog.SlowClasses`); the indexes from the PostgreSQL advisor's
:class:`~dbwatch.model.facts.pg_advisor.IndexKeysList`. Predicates are read by :mod:`dbwatch.sqlshape`
(pglast): comparisons (``= < > <= >=``, ``LIKE``, ``IN``, ``BETWEEN``) of the statement's own WHERE whose
one side is a function call or a cast of exactly one column and whose other side names no column.

No hint when an expression index on the same function (or cast) of that column exists, or when the column
leads no valid b-tree index. The advice: for a function, an expression index (the SQL given) or a rewrite;
for a cast, a range predicate on the column itself (``created_at >= $1 AND created_at < $1 + 1 day``), the
cast's expression index being often impossible (``timestamptz::date`` depends on the TimeZone setting, so
it is not immutable).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.pg_advisor import IndexKeysList
from dbwatch.model.facts.slowlog import SlowClasses
from dbwatch.model.facts.statements import Statements
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig
from dbwatch.sqlshape import ExpressionUse, ParseFailures, PostgresAnalyser, Skipped

__all__ = ["make_rules", "MIN_CALLS"]

MIN_CALLS = 2  # a statement run once is not worth an index
_CACHE_SIZE = 2000


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [QueryIndexHints()]


class QueryIndexHints:
    """``QueryRewriteHint`` findings with ``hint: function_on_indexed_column`` (PostgreSQL)."""

    name = "QueryIndexHints"
    engines = ("postgres",)

    def __init__(self) -> None:
        self.failures = ParseFailures()
        self._sql = PostgresAnalyser(self.failures)
        self._parses: dict[str, list[ExpressionUse]] = {}

    def _uses(self, text: str) -> list[ExpressionUse]:
        if text not in self._parses:
            if len(self._parses) >= _CACHE_SIZE:
                self._parses.clear()
            found = self._sql.expression_uses(text)
            self._parses[text] = [] if isinstance(found, Skipped) else found  # skipped: no hint
        return self._parses[text]

    def _signatures(self, expressions: str) -> set[tuple[str, str, str]]:
        found = self._sql.index_signatures(expressions)
        return set() if isinstance(found, Skipped) else found

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        indexes = [i for i in (view.fact(IndexKeysList) or ()) if i.valid]
        if not indexes:
            return []
        out: list[Finding] = []
        for key, query, calls, extra in _statements(view):
            for use in self._uses(query):
                finding = self._judge(view, indexes, key, query, calls, extra, use)
                if finding is not None:
                    out.append(finding)
        return out

    def _judge(self, view: TargetView, indexes: list[Any], key: str, query: str, calls: int,
               extra: dict[str, Any], use: ExpressionUse) -> Finding | None:
        if use.table is None:
            return None
        schema, table = use.table
        on_table = [i for i in indexes if i.table == table and (schema is None or i.schema == schema)]
        if any(use.signature in self._signatures(i.expressions) for i in on_table):
            return None  # an expression index already serves it
        leading = [i for i in on_table if i.method == "btree" and i.columns and i.columns[0] == use.column
                   and not i.predicate]
        if not leading:
            return None
        index = leading[0]
        qualified = f"{index.schema}.{index.table}"
        evidence = {**extra, "query": query, "calls": calls, "table": qualified, "column": use.column,
                    "expression": use.expression, "kind": use.kind, "index": f"{index.schema}.{index.name}",
                    "index_columns": list(index.columns), "hint": "function_on_indexed_column"}
        if use.kind == "function":
            name = re.sub(r"[^a-z0-9_]+", "_", f"{index.table}_{use.name}_{use.column}".lower()).strip("_")[:59]
            sql = f"CREATE INDEX CONCURRENTLY {name}_idx ON {_quote(index.schema)}.{_quote(index.table)} " \
                  f"(({use.expression}));"
            text = (f"{use.expression} hides {use.column} from the b-tree index {index.name} on "
                    f"({', '.join(index.columns)}): every row's {use.expression} is computed and compared. Either "
                    f"rewrite the predicate on {use.column} itself (e.g. store the value normalized), or create an "
                    f"expression index on ({use.expression}) (the SQL given; the query must keep the same "
                    f"expression).")
        else:
            sql = None
            text = (f"The cast {use.expression} hides {use.column} from the b-tree index {index.name} on "
                    f"({', '.join(index.columns)}). Compare the column itself with a range: e.g. "
                    f"{use.column} >= $1 AND {use.column} < $1 + interval '1 day' instead of "
                    f"{use.expression} = $1. An expression index on ({use.expression}) works only when the cast "
                    f"is immutable (timestamptz to date is not: it depends on TimeZone).")
        return recommend("QueryRewriteHint", view, Severity.INFO,
                         f"Query hint: {use.kind} {use.expression} on the indexed column {qualified}.{use.column}",
                         text, {"queryid": key, "hint": "function_on_indexed_column", "column": use.column},
                         evidence, sql, 0.05)


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _statements(view: TargetView) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    """(key, text, calls, evidence) of pg_stat_statements' statements summed over the kept snapshots,
    then of the slow log's samples."""
    summed: dict[str, list[Any]] = {}
    for snapshot in view.history_with(Statements):
        if not snapshot.ok:
            continue
        for row in snapshot.fact(Statements) or ():
            entry = summed.setdefault(str(row.queryid), [row.query, 0, row.datname])
            entry[0] = row.query or entry[0]
            entry[1] += row.delta_calls
    for queryid, (query, calls, datname) in summed.items():
        if query and calls >= MIN_CALLS:
            yield queryid, query, calls, {"queryid": queryid, "datname": datname, "source": "pg_stat_statements"}
    for cls in view.fact(SlowClasses) or ():
        if cls.sample and cls.count >= MIN_CALLS:
            yield f"slow:{cls.class_id}", cls.sample, cls.count, {"class_id": cls.class_id, "source": "slowlog"}
