"""The :class:`Shape` of a PostgreSQL statement, read from pglast's JSON parse tree.

Normalised text (``$1`` from pg_stat_statements) has lost its literals: a hint that needs one (a ``LIKE
'%…'`` pattern, an ``OFFSET 50000``) shows only on text that has them (slow-log samples).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from pglast.parser import parse_sql_json

from dbwatch.sqlshape.statement import Shape, Skipped

__all__ = ["shape"]

_COMPARISONS = {">", ">=", "<>", "!=", "=", "<", "<="}
_KINDS = {"SelectStmt": "select", "InsertStmt": "insert", "UpdateStmt": "update", "DeleteStmt": "delete"}
_AGGREGATES = ("count", "sum", "avg", "min", "max", "bool_and", "bool_or", "array_agg", "string_agg")


def shape(text: str) -> Shape | Skipped:
    """The statement's shape; raises the parser's error when pglast cannot read it."""
    stmts = json.loads(parse_sql_json(text))["stmts"]
    if len(stmts) != 1:
        return Skipped("not one statement")
    kind, stmt = _one(stmts[0]["stmt"])
    found = Shape(kind=_KINDS.get(kind, "other"))
    nodes = list(_walk(stmts[0]["stmt"]))
    found.tables = [_qualified(b) for k, b, _ in nodes if k == "RangeVar"]
    if "relation" in stmt:  # INSERT/UPDATE/DELETE name their table without a RangeVar wrapper
        found.tables.insert(0, _qualified(stmt["relation"]))
    sublinks = [b for k, b, _ in nodes if k == "SubLink"]
    joins = any(k == "JoinExpr" for k, _, _ in nodes)
    found.single_table = len(found.tables) == 1 and not sublinks and not joins
    if kind == "InsertStmt":
        values = stmt.get("selectStmt", {}).get("SelectStmt", {}).get("valuesLists")
        found.single_row_insert = values is not None and len(values) == 1
        return found
    found.key_lookup = _key_lookup(stmt.get("whereClause"))
    if kind != "SelectStmt":
        return found
    found.has_limit = "limitCount" in stmt
    found.aggregate = bool(stmt.get("groupClause")) or any(
        k == "FuncCall" and "SubLink" not in p and _funcname(b) in _AGGREGATES
        for k, b, p in _walk(stmt.get("targetList", [])))
    found.select_star = any(k == "A_Star" for k, _, p in _walk(stmt.get("targetList", [])) if "SubLink" not in p)
    offset = stmt.get("limitOffset")
    if offset is not None:
        okind, obody = _one(offset)
        if okind == "A_Const" and "ival" in obody:
            found.offset = int(obody["ival"].get("ival", 0))
        found.offset_param = okind == "ParamRef"
    for k, b, p in nodes:
        _predicate(found, k, b, p)
    outer = _aliases(stmt.get("fromClause", []))
    found.correlated_subquery = any(_correlated(link, outer) for link in sublinks
                                    if link.get("subLinkType") == "EXPR_SUBLINK")
    return found


def _predicate(found: Shape, kind: str, body: dict[str, Any], path: tuple[str, ...]) -> None:
    if kind == "A_Expr" and body.get("kind") == "AEXPR_OP" and "havingClause" not in path:
        sides = [body.get("lexpr"), body.get("rexpr")]
        if _opname(body) in _COMPARISONS and all(sides) and any(_is_count_star(s) for s in sides) and any(
                _one(s)[0] in ("A_Const", "ParamRef") for s in sides):
            found.count_compared = True
    if kind == "A_Expr" and body.get("kind") in ("AEXPR_LIKE", "AEXPR_ILIKE"):
        value = body.get("rexpr", {}).get("A_Const", {}).get("sval", {}).get("sval")
        if isinstance(value, str) and value.startswith("%"):
            fields = body.get("lexpr", {}).get("ColumnRef", {}).get("fields", [])
            found.leading_wildcard.append(".".join(f["String"]["sval"] for f in fields if "String" in f) or "?")
    if kind == "BoolExpr" and body.get("boolop") == "NOT_EXPR":
        found.not_in_subquery |= any(_one(a)[0] == "SubLink" and _one(a)[1].get("subLinkType") == "ANY_SUBLINK"
                                     for a in body.get("args", []))


def _correlated(link: dict[str, Any], outer: set[str]) -> bool:
    """Whether a scalar subquery names a table of the outer query that it does not name itself."""
    inner = link["subselect"]["SelectStmt"]
    inner_names = _aliases(inner.get("fromClause", []))
    for k, b, _ in _walk(inner):
        fields = b.get("fields", []) if k == "ColumnRef" else []
        if len(fields) >= 2 and "String" in fields[0]:
            qualifier = fields[0]["String"]["sval"]
            if qualifier in outer and qualifier not in inner_names:
                return True
    return False


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any], tuple[str, ...]]]:
    """Every ``{"NodeType": {...}}`` below ``node`` with the chain of node types and keys above it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key[:1].isupper() and isinstance(value, dict):
                yield key, value, path
                yield from _walk(value, path + (key,))
            else:
                yield from _walk(value, path + (key,))
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, path)


def _one(node: Any) -> tuple[str, dict[str, Any]]:
    [(kind, body)] = node.items()
    return str(kind), body


def _qualified(range_var: dict[str, Any]) -> str:
    schema = range_var.get("schemaname")
    return f"{schema}.{range_var['relname']}" if schema else str(range_var["relname"])


def _funcname(body: dict[str, Any]) -> str:
    return str(body["funcname"][-1]["String"]["sval"])


def _opname(body: dict[str, Any]) -> str:
    return str(body["name"][-1]["String"]["sval"])


def _aliases(from_clause: list[Any]) -> set[str]:
    names = set()
    for kind, body, _ in _walk(from_clause):
        if kind == "RangeVar":
            names.add(body.get("alias", {}).get("aliasname") or body["relname"])
        if kind == "SelectStmt":
            break
    return names


def _is_count_star(node: Any) -> bool:
    kind, body = _one(node)
    if kind == "SubLink" and body.get("subLinkType") == "EXPR_SUBLINK":
        targets = body["subselect"]["SelectStmt"].get("targetList", [])
        return len(targets) == 1 and _is_count_star(targets[0]["ResTarget"]["val"])
    return kind == "FuncCall" and bool(body.get("agg_star", False)) and _funcname(body) == "count"


def _key_lookup(where: Any) -> bool:
    if where is None:
        return False
    kind, body = _one(where)
    if kind == "BoolExpr" and body.get("boolop") == "AND_EXPR":
        return all(_key_lookup(arg) for arg in body["args"])
    if kind == "A_Expr" and body.get("kind") == "AEXPR_OP" and _opname(body) == "=":
        sides = {_one(body["lexpr"])[0], _one(body["rexpr"])[0]}
        return "ColumnRef" in sides and bool(sides & {"ParamRef", "A_Const"})
    return False
