"""What the MySQL/MariaDB index advisor reads from one statement: tables, the columns it filters, joins and
sorts on, and a text that can be EXPLAINed.

Statements come from performance_schema: a sample with its literals (``events_statements_history[_long]``)
or the digest text, whose literals are ``?`` (and ``IN (...)`` for lists). sqlglot (MySQL dialect) parses
either. Placeholders are replaced by a value of the compared column's type (1, 'a', '2000-01-01', ...):
the plan of a typical call, not of one chosen value. UPDATE and DELETE are turned into the SELECT of the
rows they would touch: the advisor's session is read-only, where ``EXPLAIN UPDATE`` is refused (error 1792).
The EXPLAINed text is always sqlglot's rendering of the one statement it parsed, never the raw sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from dbwatch.collectors.pg_advisor_parse import ColumnUse  # the same buckets: equality, range, join, order

__all__ = ["ColumnUse", "Parsed", "TableKey", "analyse", "explainable"]

TableKey = tuple[str, str]  # (schema, table)
_SYSTEM = {"mysql", "information_schema", "performance_schema", "sys"}
_LIST = re.compile(r"\(\s*\.\.\.\s*\)")  # a digest's IN (...)
_NUMERIC = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float", "double",
            "real", "bit", "year", "bool", "boolean"}


@dataclass(slots=True)
class Parsed:
    tree: Any  # the sqlglot expression to EXPLAIN (a SELECT), tables qualified with their schema
    kind: str  # select, update, delete
    tables: dict[str, TableKey]  # alias or name (as EXPLAIN's table_name shows it) -> table
    uses: dict[TableKey, ColumnUse]
    unqualified: list[tuple[str, str]]  # (kind, column) of columns without a table, more than one table named
    placeholders: int


def analyse(text: str, schema: str) -> Parsed | None:
    """The statement's tables and column uses, or None (not one SELECT/UPDATE/DELETE, cut off, not parsed)."""
    try:
        return _analyse(text, schema)
    except Exception:  # any parser error means "not understood": no candidate rather than a wrong one
        return None


def _analyse(text: str, schema: str) -> Parsed | None:
    import sqlglot
    from sqlglot import expressions as exp

    text = text.strip().rstrip(";")
    if not text or text.endswith("..."):  # cut by performance_schema_max_digest_length / max_sql_text_length
        return None
    statements = sqlglot.parse(_LIST.sub("(?)", text), read="mysql")
    if len(statements) != 1 or statements[0] is None:
        return None
    tree = statements[0]
    if isinstance(tree, (exp.Update, exp.Delete)):
        kind = "update" if isinstance(tree, exp.Update) else "delete"
        where = tree.args.get("where")
        target = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
        if where is None or target is None or tree.args.get("joins") or tree.args.get("from_"):
            return None  # multi-table forms: not rewritten
        select = exp.select("*").from_(target.copy()).where(where.this.copy())
        if tree.args.get("order") is not None:
            select.set("order", tree.args["order"].copy())
        tree = select
    elif isinstance(tree, exp.Select):
        kind = "select"
    else:
        return None
    if tree.find(exp.Into) is not None or tree.args.get("locks"):
        return None  # SELECT ... INTO, FOR UPDATE: not ours to plan
    tables: dict[str, TableKey] = {}
    for table in tree.find_all(exp.Table):
        if not table.name:
            continue
        if not table.db:
            if not schema:
                return None  # no default schema: the table cannot be resolved
            table.set("db", exp.to_identifier(schema))
        if table.db.lower() in _SYSTEM:
            return None  # the server's own catalogs (dbwatch's statements among them)
        tables[table.alias_or_name] = (table.db, table.name)
    if not tables:
        return None
    parsed = Parsed(tree=tree, kind=kind, tables=tables, uses={}, unqualified=[],
                    placeholders=len(list(tree.find_all(exp.Placeholder))))
    where = tree.args.get("where")
    for term in _conjuncts(where.this if where is not None else None, exp):
        _where_term(parsed, term, exp)
    for join in tree.args.get("joins") or []:
        for term in _conjuncts(join.args.get("on"), exp):
            if isinstance(term, exp.EQ) and all(isinstance(s, exp.Column) for s in (term.this, term.expression)):
                _use(parsed, "join", term.this)
                _use(parsed, "join", term.expression)
            else:
                _where_term(parsed, term, exp)
    order = tree.args.get("order")
    for ordered in (order.expressions if order is not None else []):
        if isinstance(ordered.this, exp.Column):
            _use(parsed, "order", ordered.this)
    return parsed


def _conjuncts(node: Any, exp: Any) -> list[Any]:
    if node is None:
        return []
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this, exp)
    if isinstance(node, exp.And):
        return _conjuncts(node.this, exp) + _conjuncts(node.expression, exp)
    return [node]


def _value(node: Any, exp: Any) -> bool:
    """A side a lookup can use: no column of the statement's own in it (a literal, a placeholder, NOW()...)."""
    return node is not None and not isinstance(node, exp.Column) and node.find(exp.Column) is None \
        and node.find(exp.Select) is None


def _where_term(parsed: Parsed, term: Any, exp: Any) -> None:
    if isinstance(term, (exp.EQ, exp.NullSafeEQ)):
        left, right = term.this, term.expression
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            _use(parsed, "join", left)
            _use(parsed, "join", right)
        elif isinstance(left, exp.Column) and _value(right, exp):
            _use(parsed, "equality", left)
        elif isinstance(right, exp.Column) and _value(left, exp):
            _use(parsed, "equality", right)
    elif isinstance(term, exp.In) and isinstance(term.this, exp.Column) and term.args.get("query") is None:
        _use(parsed, "equality", term.this)
    elif isinstance(term, exp.Is) and isinstance(term.this, exp.Column):
        _use(parsed, "equality", term.this)
    elif isinstance(term, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
        if isinstance(term.this, exp.Column) and _value(term.expression, exp):
            _use(parsed, "range", term.this)
        elif isinstance(term.expression, exp.Column) and _value(term.this, exp):
            _use(parsed, "range", term.expression)
    elif isinstance(term, exp.Between) and isinstance(term.this, exp.Column):
        _use(parsed, "range", term.this)
    elif isinstance(term, exp.Like) and isinstance(term.this, exp.Column):
        pattern = term.expression
        if isinstance(pattern, exp.Placeholder) or (isinstance(pattern, exp.Literal) and pattern.is_string
                                                    and not pattern.this.startswith(("%", "_"))):
            _use(parsed, "range", term.this)  # a fixed prefix is a range scan


def _use(parsed: Parsed, kind: str, column: Any) -> None:
    name = column.name
    if column.table:
        table = parsed.tables.get(column.table)
        if table is not None:
            parsed.uses.setdefault(table, ColumnUse()).add(kind, name)
    elif len(set(parsed.tables.values())) == 1:
        [table] = set(parsed.tables.values())
        parsed.uses.setdefault(table, ColumnUse()).add(kind, name)
    else:
        parsed.unqualified.append((kind, name))


def explainable(parsed: Parsed, types: Mapping[TableKey, Mapping[str, str]]) -> str:
    """The statement as MySQL text, placeholders replaced by a value of the compared column's type."""
    from sqlglot import expressions as exp

    tree = parsed.tree.copy()

    def column_type(column: Any) -> str:
        if not isinstance(column, exp.Column):
            return ""
        owners = [parsed.tables[column.table]] if column.table in parsed.tables else \
            list(dict.fromkeys(parsed.tables.values())) if not column.table else []
        found = [types.get(o, {}).get(column.name.lower()) for o in owners]
        found = [f for f in found if f]
        return found[0] if len(found) == 1 else ""

    def replace(node: Any) -> Any:
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
        return _literal(column_type(column), exp)

    return tree.transform(replace).sql(dialect="mysql", identify=True)


def _literal(data_type: str, exp: Any) -> Any:
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
