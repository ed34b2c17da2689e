"""Which columns a PostgreSQL statement filters, joins and sorts on, read with pglast (PostgreSQL's parser).

Equality predicates (``=``, ``IN``, ``= ANY``, ``IS NULL``), range predicates (``<``, ``>``, ``BETWEEN``),
join keys and ``ORDER BY``. Sub-selects (``IN (SELECT ...)``, ``FROM (SELECT ...)``, CTEs, ``UNION``) are
read as scopes of their own. Tables are kept as written (schema and name): the advisor resolves them to
catalog tables, and unqualified columns of a multi-table scope to the table that has them.
"""

from __future__ import annotations

import re
from typing import Iterator

import pglast
from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType

from dbwatch.sqlshape.statement import ColumnUse, Skipped, StatementUses, TableRef

__all__ = ["NOT_COVERED", "column_names", "has_column", "operator", "preparable", "uses", "walk"]

_KINDS: dict[type[ast.Node], str] = {ast.SelectStmt: "select", ast.UpdateStmt: "update", ast.DeleteStmt: "delete"}
_EQUALITY_OPS, _RANGE_OPS = {"="}, {"<", ">", "<=", ">="}
NOT_COVERED = Skipped("not one SELECT, UPDATE or DELETE")

# pg_stat_statements replaces a typed literal's string with a placeholder (``interval '1 day'`` becomes
# ``interval $2``), which is no longer valid SQL; the cast form means the same and parses.
_TYPED_LITERAL = re.compile(
    r"\b(interval|date|time|timestamp|timestamptz|timetz|uuid|json|jsonb|inet|cidr|numeric|bigint|integer"
    r"|int|smallint|text|boolean|bool|real|money|(?:timestamp|time) with(?:out)? time zone)\s+(\$\d+)",
    re.IGNORECASE)


def preparable(query: str) -> str:
    """The normalized statement as text that ``PREPARE`` accepts."""
    return _TYPED_LITERAL.sub(lambda m: f"{m.group(2)}::{m.group(1)}", query)


def uses(query: str) -> StatementUses[TableRef] | Skipped:
    """The statement's column uses; raises the parser's error when pglast cannot read it."""
    statements = pglast.parse_sql(preparable(query))
    root = statements[0].stmt if len(statements) == 1 else None
    if root is None or type(root) not in _KINDS:
        return NOT_COVERED
    parsed: StatementUses[TableRef] = StatementUses(
        kind=_KINDS[type(root)], params=_max_param(root), tables={}, names={}, unqualified=[])
    _Scope(parsed).statement(root)
    return parsed


def walk(node: ast.Node) -> Iterator[ast.Node]:
    """``node`` and every node below it."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for name in getattr(type(current), "__slots__", ()):
            value = getattr(current, name, None)
            if isinstance(value, ast.Node):
                stack.append(value)
            elif isinstance(value, tuple):
                stack.extend(v for v in value if isinstance(v, ast.Node))


def has_column(node: ast.Node | tuple[object, ...]) -> bool:
    nodes = node if isinstance(node, tuple) else (node,)  # a list (IN) is a tuple of nodes
    return any(isinstance(n, ast.ColumnRef) for top in nodes if isinstance(top, ast.Node) for n in walk(top))


def column_names(ref: ast.ColumnRef) -> list[str] | None:
    """``[qualifier..., column]`` of a plain column reference; None for ``t.*`` and the like."""
    fields = ref.fields or ()
    names = [f.sval for f in fields if isinstance(f, ast.String) and f.sval is not None]
    return names if names and len(names) == len(fields) else None


def operator(node: ast.A_Expr) -> str:
    """The operator's name (``=``, ``~~``, ...), its schema left out."""
    last = node.name[-1] if node.name else None
    return str(last.sval) if isinstance(last, ast.String) and last.sval is not None else ""


def _max_param(node: ast.Node) -> int:
    return max((n.number or 0 for n in walk(node) if isinstance(n, ast.ParamRef)), default=0)


class _Scope:
    """One query level: the tables its FROM names (by alias) and the predicates over them."""

    def __init__(self, parsed: StatementUses[TableRef]) -> None:
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
        for cte in (with_clause.ctes if isinstance(with_clause, ast.WithClause) else None) or ():
            if isinstance(cte, ast.CommonTableExpr) and cte.ctequery is not None:
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
            if isinstance(sort, ast.SortBy) and isinstance(sort.node, ast.ColumnRef):
                self._column(sort.node, "order")

    def _relation(self, rv: ast.RangeVar | None) -> None:
        if rv is None or rv.relname is None:
            return
        ref: TableRef = (rv.schemaname, rv.relname)
        self.parsed.tables.setdefault(ref, ColumnUse())
        name = rv.alias.aliasname if rv.alias and rv.alias.aliasname else rv.relname
        self.aliases[name] = ref
        self.parsed.names.setdefault(name, ref)

    def _from(self, item: ast.Node) -> None:
        if isinstance(item, ast.RangeVar):
            self._relation(item)
        elif isinstance(item, ast.JoinExpr):
            if item.larg is not None:
                self._from(item.larg)
            if item.rarg is not None:
                self._from(item.rarg)
            self._where(item.quals)
        elif isinstance(item, ast.RangeSubselect) and item.subquery is not None:
            _Scope(self.parsed).statement(item.subquery)

    def _where(self, node: ast.Node | None) -> None:
        if node is None:
            return
        if isinstance(node, ast.BoolExpr):
            if node.boolop == BoolExprType.AND_EXPR:
                for arg in node.args or ():
                    self._where(arg)
            self._subselects(node)
            return
        if isinstance(node, ast.A_Expr):
            self._predicate(node)
        elif isinstance(node, ast.NullTest) and isinstance(node.arg, ast.ColumnRef):
            self._column(node.arg, "equality")
            self._column(node.arg, "null" if node.nulltesttype == NullTestType.IS_NULL else "not_null")
        self._subselects(node)

    def _subselects(self, node: ast.Node) -> None:
        for sub in walk(node):
            if isinstance(sub, ast.SubLink) and sub.subselect is not None:
                _Scope(self.parsed).statement(sub.subselect)
                if isinstance(sub.testexpr, ast.ColumnRef):  # x IN (SELECT ...): an equality on x
                    self._column(sub.testexpr, "equality")

    def _predicate(self, node: ast.A_Expr) -> None:
        op = operator(node)
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
            if isinstance(column, ast.ColumnRef) and other is not None and not has_column(other):
                self._column(column, kind)

    def _column(self, ref: ast.ColumnRef, kind: str) -> None:
        names = column_names(ref)
        if names is None:
            return  # t.* or something that is not a plain column
        column = names[-1]
        if len(names) == 1:
            tables = tuple(dict.fromkeys(self.aliases.values()))
            if len(tables) == 1:
                self.parsed.use(tables[0], kind, column)
            elif tables:
                self.parsed.unqualified.append((tables, kind, column))
            return
        qualifier = names[-2]
        table = self.aliases.get(qualifier)
        if table is None:
            table = next((t for t in self.aliases.values() if t[1] == qualifier), None)
        if table is not None:
            self.parsed.use(table, kind, column)
