"""Query hint that needs the index list: a function or a cast applied to a column that leads a b-tree index.

``WHERE lower(email) = $1`` cannot use an index on ``(email)``, nor ``created_at::date = $1`` one on
``(created_at)``: the b-tree holds the column's values, not the expression's. The statements come from the
``statements`` collector (pg_stat_statements, normalized) summed over the kept snapshots, and from the slow
log's samples (:class:`~dbwatch.model.facts.slowlog.SlowClasses`); the indexes from the PostgreSQL advisor's
:class:`~dbwatch.model.facts.pg_advisor.IndexKeysList`. Predicates are read with
pglast: comparisons (``= < > <= >=``, ``LIKE``, ``IN``, ``BETWEEN``) of the statement's own WHERE whose one
side is a function call or a cast of exactly one column and whose other side names no column.

No hint when an expression index on the same function (or cast) of that column exists, or when the column
leads no valid b-tree index. The advice: for a function, an expression index (the SQL given) or a rewrite;
for a cast, a range predicate on the column itself (``created_at >= $1 AND created_at < $1 + 1 day``), the
cast's expression index being often impossible (``timestamptz::date`` depends on the TimeZone setting, so
it is not immutable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import pglast
from pglast import ast
from pglast.enums import A_Expr_Kind
from pglast.stream import RawStream

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.pg_advisor import IndexKeysList
from dbwatch.model.facts.slowlog import SlowClasses
from dbwatch.model.facts.statements import Statements
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules", "ExpressionUse", "expression_uses", "MIN_CALLS"]

MIN_CALLS = 2  # a statement run once is not worth an index
_CACHE_SIZE = 2000
_OPS = {"=", "<", ">", "<=", ">=", "~~", "~~*", "<>"}
_KINDS = (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt)


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [QueryIndexHints()]


@dataclass(frozen=True, slots=True)
class ExpressionUse:
    """A function or a cast applied to one column in a WHERE comparison."""

    table: tuple[str | None, str] | None  # (schema as written or None, table); None when it cannot be told
    column: str
    kind: str  # "function" or "cast"
    name: str  # the function's name (last part) or the cast's type name
    expression: str  # as pglast prints it: "lower(email)", "created_at::date"


def expression_uses(text: str) -> list[ExpressionUse]:
    """The functions and casts on a column in the statement's WHERE (top query level only)."""
    try:
        statements = pglast.parse_sql(text)
    except Exception:  # ParseError, or a normalized text pglast does not take
        return []
    if len(statements) != 1 or not isinstance(statements[0].stmt, _KINDS):
        return []
    root = statements[0].stmt
    aliases: dict[str, tuple[str | None, str]] = {}
    froms = list(getattr(root, "fromClause", None) or ()) + list(getattr(root, "usingClause", None) or ())
    relation = getattr(root, "relation", None)
    for item in ([relation] if relation is not None else []) + froms:
        for rv in _range_vars(item):
            aliases[rv.alias.aliasname if rv.alias else rv.relname] = (rv.schemaname, rv.relname)
    out: list[ExpressionUse] = []
    for predicate in _comparisons(root.whereClause):
        right = list(predicate.rexpr) if isinstance(predicate.rexpr, tuple) else [predicate.rexpr]
        pairs = [(predicate.lexpr, right)]
        if predicate.kind != A_Expr_Kind.AEXPR_IN and len(right) == 1:  # a comparison reads both ways
            pairs.append((right[0], [predicate.lexpr]))
        for side, others in pairs:
            use = _wrapped_column(side, aliases)
            if use is not None and not any(o is not None and _columns(o) for o in others) and use not in out:
                out.append(use)
    return out


def signature(use: ExpressionUse) -> tuple[str, str, str]:
    return (use.kind, use.name, use.column)


def index_signatures(expressions: str) -> set[tuple[str, str, str]]:
    """What an index's expression keys compute, as (kind, name, column), from pg_get_expr's text."""
    if not expressions:
        return set()
    try:
        [statement] = pglast.parse_sql(f"SELECT {expressions}")
    except Exception:
        return set()
    out = set()
    for target in statement.stmt.targetList or ():
        use = _wrapped_column(target.val, {})
        if use is not None:
            out.add(signature(use))
    return out


def _range_vars(item: Any) -> Iterator[ast.RangeVar]:
    if isinstance(item, ast.RangeVar):
        yield item
    elif isinstance(item, ast.JoinExpr):
        yield from _range_vars(item.larg)
        yield from _range_vars(item.rarg)


def _comparisons(node: Any) -> Iterator[ast.A_Expr]:
    if isinstance(node, ast.BoolExpr):
        for arg in node.args:
            yield from _comparisons(arg)
    elif isinstance(node, ast.A_Expr):
        op = node.name[-1].sval if node.name else ""
        if node.kind in (A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE) and op in _OPS:
            yield node
        elif node.kind in (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_OP_ANY):
            yield node


def _columns(node: Any) -> list[ast.ColumnRef]:
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.ColumnRef):
            out.append(current)
        elif isinstance(current, ast.Node):
            for name in type(current).__slots__:
                value = getattr(current, name, None)
                if isinstance(value, ast.Node):
                    stack.append(value)
                elif isinstance(value, tuple):
                    stack.extend(v for v in value if isinstance(v, ast.Node))
    return out


def _wrapped_column(node: Any, aliases: dict[str, tuple[str | None, str]]) -> ExpressionUse | None:
    """A function call or cast whose only column reference is one plain column, else None."""
    if isinstance(node, ast.FuncCall):
        kind, name = "function", node.funcname[-1].sval.lower()
    elif isinstance(node, ast.TypeCast):
        kind, name = "cast", node.typeName.names[-1].sval.lower()
        if isinstance(node.arg, (ast.A_Const, ast.ParamRef)):
            return None
    else:
        return None
    columns = _columns(node)
    if len(columns) != 1:
        return None
    names = [f.sval for f in columns[0].fields if isinstance(f, ast.String)]
    if not names or len(names) != len(columns[0].fields):
        return None
    if len(names) == 1:
        tables = set(aliases.values())
        table = next(iter(tables)) if len(tables) == 1 else None
    else:
        table = aliases.get(names[-2]) or next((t for t in aliases.values() if t[1] == names[-2]), None)
    try:
        text = RawStream()(node)
    except Exception:
        return None
    if len(names) > 1:  # the expression as an index names it: the column without its table or alias
        text = re.sub(r'(?<![\w."])' + r"\.".join(re.escape(n) for n in names[:-1]) + r"\.", "", text)
    return ExpressionUse(table, names[-1], kind, name, text)


class QueryIndexHints:
    """``QueryRewriteHint`` findings with ``hint: function_on_indexed_column`` (PostgreSQL)."""

    name = "QueryIndexHints"
    engines = ("postgres",)

    def __init__(self) -> None:
        self._parses: dict[str, list[ExpressionUse]] = {}

    def _uses(self, text: str) -> list[ExpressionUse]:
        if text not in self._parses:
            if len(self._parses) >= _CACHE_SIZE:
                self._parses.clear()
            self._parses[text] = expression_uses(text)
        return self._parses[text]

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
        if any(signature(use) in index_signatures(i.expressions) for i in on_table):
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
