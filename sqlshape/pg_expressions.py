"""Functions and casts applied to a column in a PostgreSQL statement's WHERE, read with pglast.

``WHERE lower(email) = $1`` cannot use an index on ``(email)``, nor ``created_at::date = $1`` one on
``(created_at)``. Comparisons (``= < > <= >=``, ``LIKE``, ``IN``, ``BETWEEN``) of the statement's own WHERE
whose one side is a function call or a cast of exactly one column and whose other side names no column.
"""

from __future__ import annotations

import re
from typing import Iterator

import pglast
from pglast import ast
from pglast.enums import A_Expr_Kind
from pglast.stream import RawStream

from dbwatch.sqlshape.pg_uses import NOT_COVERED, column_names, operator, walk
from dbwatch.sqlshape.statement import ExpressionUse, Skipped, TableRef

__all__ = ["expression_uses", "index_signatures"]

_OPS = {"=", "<", ">", "<=", ">=", "~~", "~~*", "<>"}
_KINDS = (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt)


def expression_uses(text: str) -> list[ExpressionUse] | Skipped:
    """The functions and casts on a column in the statement's WHERE (top query level only); raises the
    parser's error when pglast cannot read it."""
    statements = pglast.parse_sql(text)
    root = statements[0].stmt if len(statements) == 1 else None
    if not isinstance(root, _KINDS):
        return NOT_COVERED
    aliases: dict[str, TableRef] = {}
    froms = list(getattr(root, "fromClause", None) or ()) + list(getattr(root, "usingClause", None) or ())
    relation = getattr(root, "relation", None)
    for item in ([relation] if relation is not None else []) + froms:
        for rv in _range_vars(item):
            if rv.relname is not None:
                aliases[rv.alias.aliasname if rv.alias and rv.alias.aliasname else rv.relname] = (rv.schemaname,
                                                                                                  rv.relname)
    out: list[ExpressionUse] = []
    for predicate in _comparisons(root.whereClause):
        right = list(predicate.rexpr) if isinstance(predicate.rexpr, tuple) else [predicate.rexpr]
        pairs = [(predicate.lexpr, right)]
        if predicate.kind != A_Expr_Kind.AEXPR_IN and len(right) == 1:  # a comparison reads both ways
            pairs.append((right[0], [predicate.lexpr]))
        for side, others in pairs:
            use = _wrapped_column(side, aliases)
            if use is not None and not any(_columns(o) for o in others if o is not None) and use not in out:
                out.append(use)
    return out


def index_signatures(expressions: str) -> set[tuple[str, str, str]]:
    """What an index's expression keys compute, as (kind, name, column), from pg_get_expr's text; raises
    the parser's error when pglast cannot read it."""
    if not expressions:
        return set()
    [statement] = pglast.parse_sql(f"SELECT {expressions}")
    targets = statement.stmt.targetList if isinstance(statement.stmt, ast.SelectStmt) else None
    out = set()
    for target in targets or ():
        use = _wrapped_column(target.val, {}) if isinstance(target, ast.ResTarget) else None
        if use is not None:
            out.add(use.signature)
    return out


def _range_vars(item: object) -> Iterator[ast.RangeVar]:
    if isinstance(item, ast.RangeVar):
        yield item
    elif isinstance(item, ast.JoinExpr):
        yield from _range_vars(item.larg)
        yield from _range_vars(item.rarg)


def _comparisons(node: object) -> Iterator[ast.A_Expr]:
    if isinstance(node, ast.BoolExpr):
        for arg in node.args or ():
            yield from _comparisons(arg)
    elif isinstance(node, ast.A_Expr):
        if node.kind in (A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE):
            if operator(node) in _OPS:
                yield node
        elif node.kind in (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_OP_ANY):
            yield node


def _columns(node: object) -> list[ast.ColumnRef]:
    return [n for n in walk(node) if isinstance(n, ast.ColumnRef)] if isinstance(node, ast.Node) else []


def _wrapped_column(node: object, aliases: dict[str, TableRef]) -> ExpressionUse | None:
    """A function call or cast whose only column reference is one plain column, else None."""
    if isinstance(node, ast.FuncCall) and node.funcname:
        kind, name = "function", _last_name(node.funcname)
    elif isinstance(node, ast.TypeCast) and node.typeName is not None and node.typeName.names:
        kind, name = "cast", _last_name(node.typeName.names)
        if isinstance(node.arg, (ast.A_Const, ast.ParamRef)):
            return None
    else:
        return None
    columns = _columns(node)
    names = column_names(columns[0]) if len(columns) == 1 else None
    if names is None:
        return None
    table: TableRef | None
    if len(names) == 1:
        tables = set(aliases.values())
        table = next(iter(tables)) if len(tables) == 1 else None
    else:
        table = aliases.get(names[-2]) or next((t for t in aliases.values() if t[1] == names[-2]), None)
    try:
        text = str(RawStream()(node))
    except Exception:  # pglast prints what it parsed; a node it cannot print is no hint, not a failure
        return None
    if len(names) > 1:  # the expression as an index names it: the column without its table or alias
        text = re.sub(r'(?<![\w."])' + r"\.".join(re.escape(n) for n in names[:-1]) + r"\.", "", text)
    return ExpressionUse(table, names[-1], kind, name, text)


def _last_name(names: tuple[object, ...]) -> str:
    last = names[-1]
    return str(last.sval).lower() if isinstance(last, ast.String) else ""
