"""Which columns a statement filters, joins and sorts on, read with pglast (PostgreSQL's own parser).

The index advisor asks this module, for one normalized statement from pg_stat_statements, which columns
of which tables an index could serve: equality predicates (``=``, ``IN``, ``= ANY``, ``IS NULL``), range
predicates (``<``, ``>``, ``BETWEEN``), join keys and ``ORDER BY``. Only conjunctions are followed: an
``OR`` branch cannot be served by one b-tree index, so its columns are left out. Sub-selects (``IN
(SELECT ...)``, ``FROM (SELECT ...)``, CTEs, ``UNION``) are read as scopes of their own.

Columns are kept by table *reference* (schema and name as written); the collector resolves references
to catalog tables, and unqualified columns of a multi-table scope to the table that has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

import pglast
from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType

__all__ = ["ColumnUse", "ParsedStatement", "TableRef", "analyse", "preparable"]

TableRef = tuple[str | None, str]  # (schema or None, table) as written, case-folded by the parser


@dataclass(slots=True)
class ColumnUse:
    """How one table's columns are used by a statement, each list in order of first appearance."""

    equality: list[str] = field(default_factory=list)
    range: list[str] = field(default_factory=list)
    join: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    def add(self, kind: str, column: str) -> None:
        columns: list[str] = getattr(self, kind)
        if column not in columns:
            columns.append(column)

    def merge(self, other: "ColumnUse") -> None:
        for kind in ("equality", "range", "join", "order"):
            for column in getattr(other, kind):
                self.add(kind, column)


@dataclass(slots=True)
class ParsedStatement:
    kind: str  # "select", "update" or "delete"
    params: int  # the highest $n placeholder
    tables: dict[TableRef, ColumnUse]
    #: columns written without a table in a scope of several tables: (candidate tables, kind, column)
    unqualified: list[tuple[tuple[TableRef, ...], str, str]]


_KINDS = {ast.SelectStmt: "select", ast.UpdateStmt: "update", ast.DeleteStmt: "delete"}
_EQUALITY_OPS, _RANGE_OPS = {"="}, {"<", ">", "<=", ">="}


def analyse(query: str) -> ParsedStatement | None:
    """The statement's column uses, or None when it is not one SELECT/UPDATE/DELETE pglast can parse."""
    try:
        statements = pglast.parse_sql(preparable(query))
    except pglast.parser.ParseError:
        return None
    if len(statements) != 1 or type(statements[0].stmt) not in _KINDS:
        return None
    root = statements[0].stmt
    parsed = ParsedStatement(kind=_KINDS[type(root)], params=_max_param(root), tables={}, unqualified=[])
    _Scope(parsed).statement(root)
    return parsed


# pg_stat_statements replaces a typed literal's string with a placeholder (``interval '1 day'`` becomes
# ``interval $2``), which is no longer valid SQL; the cast form means the same and parses.
_TYPED_LITERAL = re.compile(
    r"\b(interval|date|time|timestamp|timestamptz|timetz|uuid|json|jsonb|inet|cidr|numeric|bigint|integer"
    r"|int|smallint|text|boolean|bool|real|money|(?:timestamp|time) with(?:out)? time zone)\s+(\$\d+)",
    re.IGNORECASE)


def preparable(query: str) -> str:
    """The normalized statement as text that ``PREPARE`` accepts."""
    return _TYPED_LITERAL.sub(lambda m: f"{m.group(2)}::{m.group(1)}", query)


def _children(node: ast.Node) -> Iterator[ast.Node]:
    for name in type(node).__slots__:
        value = getattr(node, name, None)
        if isinstance(value, ast.Node):
            yield value
        elif isinstance(value, tuple):
            yield from (v for v in value if isinstance(v, ast.Node))


def _walk(node: ast.Node) -> Iterator[ast.Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(_children(current))


def _max_param(node: ast.Node) -> int:
    return max((n.number for n in _walk(node) if isinstance(n, ast.ParamRef)), default=0)


def _has_column(node: ast.Node) -> bool:
    return any(isinstance(n, ast.ColumnRef) for n in _walk(node))


class _Scope:
    """One query level: the tables its FROM names (by alias) and the predicates over them."""

    def __init__(self, parsed: ParsedStatement) -> None:
        self.parsed = parsed
        self.aliases: dict[str, TableRef] = {}

    def statement(self, node: ast.Node) -> None:
        if isinstance(node, ast.SelectStmt):
            self._select(node)
        elif isinstance(node, ast.UpdateStmt):
            self._relation(node.relation)
            for item in node.fromClause or ():
                self._from(item)
            self._where(node.whereClause)
        elif isinstance(node, ast.DeleteStmt):
            self._relation(node.relation)
            for item in node.usingClause or ():
                self._from(item)
            self._where(node.whereClause)
        with_clause = getattr(node, "withClause", None)
        for cte in (with_clause.ctes if with_clause else None) or ():
            _Scope(self.parsed).statement(cte.ctequery)

    def _select(self, node: ast.SelectStmt) -> None:
        if node.larg is not None or node.rarg is not None:  # UNION / INTERSECT / EXCEPT
            for branch in (node.larg, node.rarg):
                if branch is not None:
                    _Scope(self.parsed).statement(branch)
            return
        for item in node.fromClause or ():
            self._from(item)
        self._where(node.whereClause)
        for sort in node.sortClause or ():
            if isinstance(sort.node, ast.ColumnRef):
                self._column(sort.node, "order")

    def _relation(self, rv: ast.RangeVar) -> None:
        ref: TableRef = (rv.schemaname, rv.relname)
        self.parsed.tables.setdefault(ref, ColumnUse())
        self.aliases[rv.alias.aliasname if rv.alias else rv.relname] = ref

    def _from(self, item: ast.Node) -> None:
        if isinstance(item, ast.RangeVar):
            self._relation(item)
        elif isinstance(item, ast.JoinExpr):
            self._from(item.larg)
            self._from(item.rarg)
            self._where(item.quals)
        elif isinstance(item, ast.RangeSubselect) and item.subquery is not None:
            _Scope(self.parsed).statement(item.subquery)

    def _where(self, node: ast.Node | None) -> None:
        if node is None:
            return
        if isinstance(node, ast.BoolExpr):
            if node.boolop == BoolExprType.AND_EXPR:
                for arg in node.args:
                    self._where(arg)
            self._subselects(node)
            return
        if isinstance(node, ast.A_Expr):
            self._predicate(node)
        elif isinstance(node, ast.NullTest) and isinstance(node.arg, ast.ColumnRef):
            if node.nulltesttype == NullTestType.IS_NULL:
                self._column(node.arg, "equality")
        self._subselects(node)

    def _subselects(self, node: ast.Node) -> None:
        for sub in _walk(node):
            if isinstance(sub, ast.SubLink) and sub.subselect is not None:
                _Scope(self.parsed).statement(sub.subselect)
                if isinstance(sub.testexpr, ast.ColumnRef):  # x IN (SELECT ...): an equality on x
                    self._column(sub.testexpr, "equality")

    def _predicate(self, node: ast.A_Expr) -> None:
        op = node.name[-1].sval if node.name else ""
        left, right = node.lexpr, node.rexpr
        if node.kind in (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_OP_ANY) and op == "=":
            if isinstance(left, ast.ColumnRef):
                self._column(left, "equality")
            return
        if node.kind == A_Expr_Kind.AEXPR_BETWEEN:
            if isinstance(left, ast.ColumnRef):
                self._column(left, "range")
            return
        if node.kind != A_Expr_Kind.AEXPR_OP or op not in _EQUALITY_OPS | _RANGE_OPS:
            return
        if isinstance(left, ast.ColumnRef) and isinstance(right, ast.ColumnRef):
            if op == "=":
                self._column(left, "join")
                self._column(right, "join")
            return
        kind = "equality" if op == "=" else "range"
        for column, other in ((left, right), (right, left)):
            if isinstance(column, ast.ColumnRef) and other is not None and not _has_column(other):
                self._column(column, kind)

    def _column(self, ref: ast.ColumnRef, kind: str) -> None:
        names = [f.sval for f in ref.fields if isinstance(f, ast.String)]
        if len(names) != len(ref.fields) or not names:
            return  # t.* or something that is not a plain column
        column = names[-1]
        if len(names) == 1:
            tables = tuple(dict.fromkeys(self.aliases.values()))
            if len(tables) == 1:
                self.parsed.tables[tables[0]].add(kind, column)
            elif tables:
                self.parsed.unqualified.append((tables, kind, column))
            return
        qualifier = names[-2]
        table = self.aliases.get(qualifier)
        if table is None:
            table = next((t for t in self.aliases.values() if t[1] == qualifier), None)
        if table is not None:
            self.parsed.tables[table].add(kind, column)
