"""What rules/queries.py needs to know about one statement's text: its :class:`Shape`.

PostgreSQL text is parsed with pglast (PostgreSQL's own parser, its JSON parse tree), MySQL/MariaDB digest
text and slow-log samples with sqlglot. Both produce the same :class:`Shape`, so the rules read one
vocabulary. Normalised text (``$1`` from pg_stat_statements, ``?`` from performance_schema digests) has
lost its literals: a hint that needs a literal (a ``LIKE '%…'`` pattern, an ``OFFSET 50000``) fires only on
text that has them (slow-log samples), or says where the literal is hidden.
Text that does not parse (cut off at the collector's length limit, a vendor extension) gets ``None``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Shape", "parse"]

_COMPARISONS = {">", ">=", "<>", "!=", "=", "<", "<="}


@dataclass(slots=True)
class Shape:
    kind: str  # select, insert, update, delete, other
    tables: list[str] = field(default_factory=list)  # every table named, outer query first
    single_table: bool = False  # one table, no join, no subquery
    key_lookup: bool = False  # WHERE is only ANDed equalities of a column with a parameter or literal
    aggregate: bool = False  # GROUP BY or an aggregate in the select list: rows per call say nothing of size
    select_star: bool = False
    count_compared: bool = False  # count(*) compared with a value, where EXISTS would stop at the first row
    correlated_subquery: bool = False  # a scalar subquery referring to the outer query's tables
    not_in_subquery: bool = False
    offset: int | None = None  # a literal OFFSET
    offset_param: bool = False  # OFFSET given as a parameter (value unknown)
    leading_wildcard: list[str] = field(default_factory=list)  # columns compared with LIKE '%…'
    has_limit: bool = False
    single_row_insert: bool = False

    @property
    def application(self) -> bool:
        """Whether it touches a table of the application's (not only the server's catalogs, as the agent's
        own statements and the admin's do)."""
        return any(not _catalog(t) for t in self.tables)


_CATALOG_SCHEMAS = ("pg_catalog.", "information_schema.", "performance_schema.", "mysql.", "sys.")


def _catalog(table: str) -> bool:
    return table.lower().startswith(_CATALOG_SCHEMAS) or table.split(".")[-1].startswith("pg_")


def parse(text: str, engine: str) -> Shape | None:
    try:
        return _pg(text) if engine == "postgres" else _mysql(text)
    except Exception:  # any parser error means "not understood": no hint rather than a wrong one
        return None


# -- PostgreSQL (pglast) -------------------------------------------------------------------------------------


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


def _qualified(range_var: dict[str, Any]) -> str:
    schema = range_var.get("schemaname")
    return f"{schema}.{range_var['relname']}" if schema else range_var["relname"]


def _one(node: Any) -> tuple[str, dict[str, Any]]:
    [(kind, body)] = node.items()
    return kind, body


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
    return (kind == "FuncCall" and body.get("agg_star", False)
            and body["funcname"][-1]["String"]["sval"] == "count")


def _pg(text: str) -> Shape | None:
    from pglast.parser import parse_sql_json

    stmts = json.loads(parse_sql_json(text))["stmts"]
    if len(stmts) != 1:
        return None
    kind, stmt = _one(stmts[0]["stmt"])
    shape = Shape(kind={"SelectStmt": "select", "InsertStmt": "insert", "UpdateStmt": "update",
                        "DeleteStmt": "delete"}.get(kind, "other"))
    nodes = list(_walk(stmts[0]["stmt"]))
    shape.tables = [_qualified(b) for k, b, _ in nodes if k == "RangeVar"]
    if "relation" in stmt:  # INSERT/UPDATE/DELETE name their table without a RangeVar wrapper
        shape.tables.insert(0, _qualified(stmt["relation"]))
    sublinks = [b for k, b, _ in nodes if k == "SubLink"]
    joins = any(k == "JoinExpr" for k, _, _ in nodes)
    shape.single_table = len(shape.tables) == 1 and not sublinks and not joins
    if kind == "InsertStmt":
        values = stmt.get("selectStmt", {}).get("SelectStmt", {}).get("valuesLists")
        shape.single_row_insert = values is not None and len(values) == 1
        return shape
    if kind != "SelectStmt":
        shape.key_lookup = _pg_key_lookup(stmt.get("whereClause"))
        return shape
    shape.key_lookup = _pg_key_lookup(stmt.get("whereClause"))
    shape.has_limit = "limitCount" in stmt
    shape.aggregate = bool(stmt.get("groupClause")) or any(
        k == "FuncCall" and "SubLink" not in p and b["funcname"][-1]["String"]["sval"] in
        ("count", "sum", "avg", "min", "max", "bool_and", "bool_or", "array_agg", "string_agg")
        for k, b, p in _walk(stmt.get("targetList", [])))
    shape.select_star = any(k == "A_Star" for k, _, p in _walk(stmt.get("targetList", [])) if "SubLink" not in p)
    offset = stmt.get("limitOffset")
    if offset is not None:
        okind, obody = _one(offset)
        if okind == "A_Const" and "ival" in obody:
            shape.offset = int(obody["ival"].get("ival", 0))
        shape.offset_param = okind == "ParamRef"
    outer = _aliases(stmt.get("fromClause", []))
    for k, b, p in nodes:
        if k == "A_Expr" and b.get("kind") == "AEXPR_OP" and "havingClause" not in p:
            op = b["name"][-1]["String"]["sval"]
            sides = [b.get("lexpr"), b.get("rexpr")]
            if op in _COMPARISONS and all(sides) and any(_is_count_star(s) for s in sides) and any(
                    _one(s)[0] in ("A_Const", "ParamRef") for s in sides):
                shape.count_compared = True
        if k in ("A_Expr",) and b.get("kind") in ("AEXPR_LIKE", "AEXPR_ILIKE"):
            right = b.get("rexpr", {})
            value = right.get("A_Const", {}).get("sval", {}).get("sval")
            if isinstance(value, str) and value.startswith("%"):
                fields = b.get("lexpr", {}).get("ColumnRef", {}).get("fields", [])
                shape.leading_wildcard.append(".".join(f["String"]["sval"] for f in fields if "String" in f) or "?")
        if k == "BoolExpr" and b.get("boolop") == "NOT_EXPR":
            shape.not_in_subquery |= any(_one(a) == ("SubLink", _one(a)[1]) and _one(a)[1].get("subLinkType") ==
                                         "ANY_SUBLINK" for a in b.get("args", []))
    for link in sublinks:
        if link.get("subLinkType") != "EXPR_SUBLINK":
            continue
        inner = link["subselect"]["SelectStmt"]
        inner_names = _aliases(inner.get("fromClause", []))
        for k, b, _ in _walk(inner):
            fields = b.get("fields", []) if k == "ColumnRef" else []
            if len(fields) >= 2 and "String" in fields[0]:
                qualifier = fields[0]["String"]["sval"]
                if qualifier in outer and qualifier not in inner_names:
                    shape.correlated_subquery = True
    return shape


def _pg_key_lookup(where: Any) -> bool:
    if where is None:
        return False
    kind, body = _one(where)
    if kind == "BoolExpr" and body.get("boolop") == "AND_EXPR":
        return all(_pg_key_lookup(arg) for arg in body["args"])
    if kind == "A_Expr" and body.get("kind") == "AEXPR_OP" and body["name"][-1]["String"]["sval"] == "=":
        sides = {_one(body["lexpr"])[0], _one(body["rexpr"])[0]}
        return "ColumnRef" in sides and bool(sides & {"ParamRef", "A_Const"})
    return False


# -- MySQL / MariaDB (sqlglot) ------------------------------------------------------------------------------


def _mysql(text: str) -> Shape | None:
    import sqlglot
    from sqlglot import expressions as exp

    if text.rstrip().endswith("..."):  # a digest text cut by performance_schema_max_digest_length
        return None
    tree = sqlglot.parse_one(text, read="mysql")
    kind = {exp.Select: "select", exp.Insert: "insert", exp.Update: "update", exp.Delete: "delete"}.get(
        type(tree), "other")
    shape = Shape(kind=kind)
    shape.tables = [f"{t.db}.{t.name}" if t.db else t.name for t in tree.find_all(exp.Table)]
    subqueries = list(tree.find_all(exp.Subquery)) + [s for s in tree.find_all(exp.Select) if s is not tree]
    shape.single_table = len(shape.tables) == 1 and not subqueries and not list(tree.find_all(exp.Join))
    if isinstance(tree, exp.Insert):
        values = tree.find(exp.Values)
        shape.single_row_insert = values is not None and len(values.expressions) == 1
        return shape
    where = tree.args.get("where")
    shape.key_lookup = where is not None and _my_key_lookup(where.this, exp)
    if not isinstance(tree, exp.Select):
        return shape
    shape.has_limit = tree.args.get("limit") is not None
    shape.aggregate = tree.args.get("group") is not None or any(
        e.find(exp.AggFunc) is not None and e.find(exp.Subquery) is None for e in tree.expressions)
    shape.select_star = any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star)
                            for e in tree.expressions)
    offset = tree.args.get("offset")
    if offset is not None:
        value = offset.expression
        if isinstance(value, exp.Literal) and value.is_int:
            shape.offset = int(value.this)
        shape.offset_param = isinstance(value, exp.Placeholder)
    having = tree.args.get("having")
    for cmp in tree.find_all(exp.GT, exp.GTE, exp.NEQ, exp.EQ, exp.LT, exp.LTE):
        if having is not None and cmp.find_ancestor(exp.Having) is not None:
            continue
        sides = [cmp.this, cmp.expression]
        if any(_my_count(s, exp) for s in sides) and any(isinstance(s, (exp.Literal, exp.Placeholder)) for s in sides):
            shape.count_compared = True
    for like in tree.find_all(exp.Like, exp.ILike):
        pattern = like.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string and pattern.this.startswith("%"):
            shape.leading_wildcard.append(like.this.sql(dialect="mysql") if like.this is not None else "?")
    shape.not_in_subquery = any(isinstance(n.this, exp.In) and n.this.args.get("query") is not None
                                for n in tree.find_all(exp.Not))
    outer = {t.alias_or_name for t in tree.args["from_"].find_all(exp.Table)} if tree.args.get("from_") else set()
    for sub in tree.find_all(exp.Subquery):
        if isinstance(sub.parent, (exp.Exists, exp.In)):
            continue
        inner = {t.alias_or_name for t in sub.find_all(exp.Table)}
        if any(c.table and c.table in outer and c.table not in inner for c in sub.find_all(exp.Column)):
            shape.correlated_subquery = True
    return shape


def _my_count(node: Any, exp: Any) -> bool:
    if isinstance(node, exp.Subquery):
        select = node.this
        return isinstance(select, exp.Select) and len(select.expressions) == 1 and _my_count(select.expressions[0], exp)
    return isinstance(node, exp.Count) and isinstance(node.this, exp.Star)


def _my_key_lookup(node: Any, exp: Any) -> bool:
    if isinstance(node, exp.And):
        return _my_key_lookup(node.this, exp) and _my_key_lookup(node.expression, exp)
    if isinstance(node, exp.EQ):
        sides = (node.this, node.expression)
        return any(isinstance(s, exp.Column) for s in sides) and any(
            isinstance(s, (exp.Placeholder, exp.Literal)) for s in sides)
    return False
