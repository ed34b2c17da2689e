"""The :class:`Shape` of a MySQL/MariaDB statement (digest text or slow-log sample), read with sqlglot."""

from __future__ import annotations

import sqlglot
from sqlglot import expressions as exp

from dbwatch.sqlshape.mysql_uses import CUT_OFF, cut_off
from dbwatch.sqlshape.statement import Shape, Skipped

__all__ = ["shape"]

_KINDS: dict[type[object], str] = {exp.Select: "select", exp.Insert: "insert", exp.Update: "update",
                                           exp.Delete: "delete"}


def shape(text: str) -> Shape | Skipped:
    """The statement's shape; raises sqlglot's error when it cannot read the text."""
    if cut_off(text):
        return CUT_OFF
    tree = sqlglot.parse_one(text, read="mysql")
    found = Shape(kind=_KINDS.get(type(tree), "other"))
    found.tables = [f"{t.db}.{t.name}" if t.db else t.name for t in tree.find_all(exp.Table)]
    subqueries = list(tree.find_all(exp.Subquery)) + [s for s in tree.find_all(exp.Select) if s is not tree]
    found.single_table = len(found.tables) == 1 and not subqueries and not list(tree.find_all(exp.Join))
    if isinstance(tree, exp.Insert):
        values = tree.find(exp.Values)
        found.single_row_insert = values is not None and len(values.expressions) == 1
        return found
    where = tree.args.get("where")
    found.key_lookup = where is not None and _key_lookup(where.this)
    if not isinstance(tree, exp.Select):
        return found
    found.has_limit = tree.args.get("limit") is not None
    found.aggregate = tree.args.get("group") is not None or any(
        e.find(exp.AggFunc) is not None and e.find(exp.Subquery) is None for e in tree.expressions)
    found.select_star = any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star)
                            for e in tree.expressions)
    offset = tree.args.get("offset")
    if offset is not None:
        value = offset.expression
        if isinstance(value, exp.Literal) and value.is_int:
            found.offset = int(value.this)
        found.offset_param = isinstance(value, exp.Placeholder)
    having = tree.args.get("having")
    for cmp in tree.find_all(exp.GT, exp.GTE, exp.NEQ, exp.EQ, exp.LT, exp.LTE):
        if having is not None and cmp.find_ancestor(exp.Having) is not None:
            continue
        sides = [cmp.this, cmp.expression]
        if any(_count_star(s) for s in sides) and any(isinstance(s, (exp.Literal, exp.Placeholder)) for s in sides):
            found.count_compared = True
    for like in tree.find_all(exp.Like, exp.ILike):
        pattern = like.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string and pattern.this.startswith("%"):
            found.leading_wildcard.append(like.this.sql(dialect="mysql") if like.this is not None else "?")
    found.not_in_subquery = any(isinstance(n.this, exp.In) and n.this.args.get("query") is not None
                                for n in tree.find_all(exp.Not))
    found.correlated_subquery = _correlated(tree)
    return found


def _correlated(tree: exp.Select) -> bool:
    """Whether a scalar subquery names a table of the outer query that it does not name itself."""
    from_ = tree.args.get("from_")
    outer = {t.alias_or_name for t in from_.find_all(exp.Table)} if from_ else set()
    for sub in tree.find_all(exp.Subquery):
        if isinstance(sub.parent, (exp.Exists, exp.In)):
            continue
        inner = {t.alias_or_name for t in sub.find_all(exp.Table)}
        if any(c.table and c.table in outer and c.table not in inner for c in sub.find_all(exp.Column)):
            return True
    return False


def _count_star(node: object) -> bool:
    if isinstance(node, exp.Subquery):
        select = node.this
        return isinstance(select, exp.Select) and len(select.expressions) == 1 and _count_star(select.expressions[0])
    return isinstance(node, exp.Count) and isinstance(node.this, exp.Star)


def _key_lookup(node: object) -> bool:
    if isinstance(node, exp.And):
        return _key_lookup(node.this) and _key_lookup(node.expression)
    if isinstance(node, exp.EQ):
        sides = (node.this, node.expression)
        return any(isinstance(s, exp.Column) for s in sides) and any(
            isinstance(s, (exp.Placeholder, exp.Literal)) for s in sides)
    return False
