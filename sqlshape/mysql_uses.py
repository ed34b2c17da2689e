"""What the MySQL/MariaDB index advisor reads from one statement: its tables, the columns it filters, joins
and sorts on, and a text that can be EXPLAINed.

Statements come from performance_schema: a sample with its literals (``events_statements_history[_long]``)
or the digest text, whose literals are ``?`` (and ``IN (...)`` for lists). sqlglot (MySQL dialect) parses
either. UPDATE and DELETE are turned into the SELECT of the rows they would touch: the advisor's session is
read-only, where ``EXPLAIN UPDATE`` is refused (error 1792). The EXPLAINed text is always sqlglot's rendering
of the one statement it parsed, never the raw sample: placeholders replaced by a value of the compared
column's type (1, 'a', '2000-01-01', ...), the plan of a typical call, not of one chosen value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import sqlglot
from sqlglot import expressions as exp

from dbwatch.sqlshape.statement import ColumnUse, Skipped, StatementUses, TableKey

__all__ = ["CUT_OFF", "MySQLStatement", "cut_off", "explainable", "uses"]

CUT_OFF = Skipped("cut off at the server's length limit")
_SYSTEM = {"mysql", "information_schema", "performance_schema", "sys"}
_LIST = re.compile(r"\(\s*\.\.\.\s*\)")  # a digest's IN (...)
_NUMERIC = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float", "double",
            "real", "bit", "year", "bool", "boolean"}


@dataclass(slots=True)
class MySQLStatement(StatementUses[TableKey]):
    """The column uses, and the statement as the SELECT to EXPLAIN, tables qualified with their schema."""

    tree: exp.Expression


def cut_off(text: str) -> bool:
    """A digest or sample cut by performance_schema_max_digest_length / max_sql_text_length."""
    return text.rstrip().endswith("...")


def uses(text: str, schema: str) -> MySQLStatement | Skipped:
    """The statement's tables and column uses; raises sqlglot's error when it cannot read the text."""
    text = text.strip().rstrip(";")
    if not text:
        return Skipped("empty")
    if cut_off(text):
        return CUT_OFF
    statements = sqlglot.parse(_LIST.sub("(?)", text), read="mysql")
    if len(statements) != 1 or statements[0] is None:
        return Skipped("not one statement")
    tree = statements[0]
    if isinstance(tree, (exp.Update, exp.Delete)):
        kind = "update" if isinstance(tree, exp.Update) else "delete"
        where = tree.args.get("where")
        target = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
        if where is None or target is None or tree.args.get("joins") or tree.args.get("from_"):
            return Skipped("a multi-table UPDATE or DELETE")  # not rewritten
        select = exp.select("*").from_(target.copy()).where(where.this.copy())
        if tree.args.get("order") is not None:
            select.set("order", tree.args["order"].copy())
        tree = select
    elif isinstance(tree, exp.Select):
        kind = "select"
    else:
        return Skipped("not a SELECT, UPDATE or DELETE")
    if tree.find(exp.Into) is not None or tree.args.get("locks"):
        return Skipped("SELECT ... INTO or a locking read")  # not ours to plan
    names: dict[str, TableKey] = {}
    for table in tree.find_all(exp.Table):
        if not table.name:
            continue
        if not table.db:
            if not schema:
                return Skipped("no default schema to resolve a table")
            table.set("db", exp.to_identifier(schema))
        if table.db.lower() in _SYSTEM:
            return Skipped("the server's own catalogs")  # dbwatch's statements among them
        names[table.alias_or_name] = (table.db, table.name)
    if not names:
        return Skipped("no table")
    parsed = MySQLStatement(kind=kind, params=len(list(tree.find_all(exp.Placeholder))),
                            tables={t: ColumnUse() for t in dict.fromkeys(names.values())}, names=names,
                            unqualified=[], tree=tree)
    where = tree.args.get("where")
    for term in _conjuncts(where.this if where is not None else None):
        _where_term(parsed, term)
    for join in tree.args.get("joins") or []:
        for term in _conjuncts(join.args.get("on")):
            if isinstance(term, exp.EQ) and all(isinstance(s, exp.Column) for s in (term.this, term.expression)):
                _use(parsed, "join", term.this)
                _use(parsed, "join", term.expression)
            else:
                _where_term(parsed, term)
    order = tree.args.get("order")
    for ordered in (order.expressions if order is not None else []):
        if isinstance(ordered.this, exp.Column):
            _use(parsed, "order", ordered.this)
    return parsed


def explainable(parsed: MySQLStatement, types: Mapping[TableKey, Mapping[str, str]]) -> str:
    """The statement as MySQL text, placeholders replaced by a value of the compared column's type."""
    tree = parsed.tree.copy()

    def column_type(column: object) -> str:
        if not isinstance(column, exp.Column):
            return ""
        owners = [parsed.names[column.table]] if column.table in parsed.names else \
            list(dict.fromkeys(parsed.names.values())) if not column.table else []
        found = [types.get(o, {}).get(column.name.lower()) for o in owners]
        known = [f for f in found if f]
        return known[0] if len(known) == 1 else ""

    def replace(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Placeholder):
            return node
        parent = node.parent
        if isinstance(parent, (exp.Limit, exp.Offset)) or node.find_ancestor(exp.Limit, exp.Offset) is not None:
            return exp.Literal.number(10)
        column = None
        if isinstance(parent, (exp.In, exp.Between)):
            column = parent.this
        elif isinstance(parent, exp.Binary):
            column = parent.expression if parent.this is node else parent.this
        return _literal(column_type(column))

    return tree.transform(replace).sql(dialect="mysql", identify=True)


def _conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    if node is None:
        return []
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _value(node: exp.Expression | None) -> bool:
    """A side a lookup can use: no column of the statement's own in it (a literal, a placeholder, NOW()...)."""
    return node is not None and not isinstance(node, exp.Column) and node.find(exp.Column) is None \
        and node.find(exp.Select) is None


def _where_term(parsed: MySQLStatement, term: exp.Expression) -> None:
    if isinstance(term, (exp.EQ, exp.NullSafeEQ)):
        left, right = term.this, term.expression
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            _use(parsed, "join", left)
            _use(parsed, "join", right)
        elif isinstance(left, exp.Column) and _value(right):
            _use(parsed, "equality", left)
        elif isinstance(right, exp.Column) and _value(left):
            _use(parsed, "equality", right)
    elif isinstance(term, exp.In) and isinstance(term.this, exp.Column) and term.args.get("query") is None:
        _use(parsed, "equality", term.this)
    elif isinstance(term, exp.Is) and isinstance(term.this, exp.Column):
        _use(parsed, "equality", term.this)
    elif isinstance(term, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
        if isinstance(term.this, exp.Column) and _value(term.expression):
            _use(parsed, "range", term.this)
        elif isinstance(term.expression, exp.Column) and _value(term.this):
            _use(parsed, "range", term.expression)
    elif isinstance(term, exp.Between) and isinstance(term.this, exp.Column):
        _use(parsed, "range", term.this)
    elif isinstance(term, exp.Like) and isinstance(term.this, exp.Column):
        pattern = term.expression
        if isinstance(pattern, exp.Placeholder) or (isinstance(pattern, exp.Literal) and pattern.is_string
                                                    and not pattern.this.startswith(("%", "_"))):
            _use(parsed, "range", term.this)  # a fixed prefix is a range scan


def _use(parsed: MySQLStatement, kind: str, column: exp.Column) -> None:
    name = column.name
    tables = tuple(dict.fromkeys(parsed.names.values()))
    if column.table:
        table = parsed.names.get(column.table)
        if table is not None:
            parsed.use(table, kind, name)
    elif len(tables) == 1:
        parsed.use(tables[0], kind, name)
    else:
        parsed.unqualified.append((tables, kind, name))


def _literal(data_type: str) -> exp.Expression:
    data_type = data_type.lower()
    if data_type in _NUMERIC:
        return exp.Literal.number(1)
    if data_type == "date":
        return exp.Literal.string("2000-01-01")
    if data_type in ("datetime", "timestamp"):
        return exp.Literal.string("2000-01-01 00:00:00")
    if data_type == "time":
        return exp.Literal.string("00:00:00")
    if data_type:
        return exp.Literal.string("a")
    return exp.Literal.number(1)
