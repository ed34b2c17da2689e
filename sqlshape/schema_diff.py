"""The DDL that turns one live schema into another, in the schema's own SQL dialect.

:func:`diff_statements` picks the writer by the shapes' ``dialect``: PostgreSQL's is
:func:`dbwatch.model.facts.schema.diff_ddl`; MySQL/MariaDB's is here. MySQL copies a table for many ALTERs, so
each table's changes are one ``ALTER TABLE`` (one copy, not one per column), in the order MySQL needs them:

1. foreign keys that go or change are dropped first (a table they point to may be dropped or rebuilt);
2. new tables are created (without their foreign keys: the tables they reference may come later);
3. one ``ALTER TABLE`` per changed table: checks, indexes and the primary key that go, columns dropped, added
   (``AFTER`` the column before them, so the order matches) and modified, then the new keys and checks;
4. tables that go are dropped;
5. foreign keys that are new or changed are added last, when every table and index they need is there.
"""

from __future__ import annotations

from dbwatch.model.facts.schema import Column, Constraint, SchemaShape, Table, diff_ddl

__all__ = ["diff_statements", "mysql_diff_ddl", "mysql_quote"]


def diff_statements(a: SchemaShape, b: SchemaShape) -> list[str]:
    """The statements that make schema ``a`` look like schema ``b``, in their dialect (empty: the same)."""
    if a.dialect != b.dialect:
        raise ValueError(f"a {a.dialect} schema cannot be compared with a {b.dialect} one")
    return mysql_diff_ddl(a, b) if a.dialect == "mysql" else diff_ddl(a, b)


def mysql_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def mysql_diff_ddl(a: SchemaShape, b: SchemaShape) -> list[str]:
    a_tables = {t.key: t for t in a.tables}
    b_tables = {t.key: t for t in b.tables}
    kept = sorted(a_tables.keys() & b_tables.keys())
    out: list[str] = []
    for key in kept:
        gone = _changed(_fks(a_tables[key]), _fks(b_tables[key]))
        out.extend(f"ALTER TABLE {_name(a_tables[key])} DROP FOREIGN KEY {mysql_quote(k.name)};" for k in gone)
    for key in sorted(a_tables.keys() - b_tables.keys()):
        for k in _fks(a_tables[key]).values():
            out.append(f"ALTER TABLE {_name(a_tables[key])} DROP FOREIGN KEY {mysql_quote(k.name)};")
    for key in sorted(b_tables.keys() - a_tables.keys()):
        out.append(_create(b_tables[key]))
    for key in kept:
        if clauses := _alter(a_tables[key], b_tables[key]):
            out.append(f"ALTER TABLE {_name(a_tables[key])}\n  " + ",\n  ".join(clauses) + ";")
    out.extend(f"DROP TABLE {_name(a_tables[key])};" for key in sorted(a_tables.keys() - b_tables.keys()))
    for key in sorted(b_tables):
        new = _fks(b_tables[key])
        added = _changed(new, _fks(a_tables[key])) if key in a_tables else list(new.values())
        out.extend(f"ALTER TABLE {_name(b_tables[key])} ADD {k.definition};" for k in added)
    return out


def _name(table: Table) -> str:
    return f"{mysql_quote(table.schema)}.{mysql_quote(table.name)}" if table.schema else mysql_quote(table.name)


def _fks(table: Table) -> dict[str, Constraint]:
    return {k.name: k for k in table.constraints if k.kind == "f"}


def _changed(old: dict[str, Constraint], new: dict[str, Constraint]) -> list[Constraint]:
    """What of ``old`` is not in ``new`` as it is."""
    return [k for name, k in sorted(old.items()) if name not in new or new[name].definition != k.definition]


def _column(column: Column) -> str:
    generated = column.extra.startswith("AS (")
    text = f"{mysql_quote(column.name)} {column.type}"
    if generated:
        return f"{text} {column.extra}"
    text += " NOT NULL" if column.not_null else " NULL"
    if column.default is not None:
        text += f" DEFAULT {column.default}"
    return f"{text} {column.extra}" if column.extra else text


def _create(table: Table) -> str:
    parts = [_column(c) for c in table.columns]
    parts += [k.definition for k in table.constraints if k.kind in ("p", "u", "c")]
    parts += [i.definition for i in table.indexes]
    return f"CREATE TABLE {_name(table)} (\n  " + ",\n  ".join(parts) + "\n);"


def _drop(k: Constraint) -> str:
    if k.kind == "p":
        return "DROP PRIMARY KEY"
    if k.kind == "u":
        return f"DROP INDEX {mysql_quote(k.name)}"
    return f"DROP CONSTRAINT {mysql_quote(k.name)}"  # a check (MariaDB 10.2+, MySQL 8.0.19+)


def _alter(a: Table, b: Table) -> list[str]:
    a_keys = {k.name: k for k in a.constraints if k.kind != "f"}
    b_keys = {k.name: k for k in b.constraints if k.kind != "f"}
    a_idx = {i.name: i for i in a.indexes}
    b_idx = {i.name: i for i in b.indexes}
    clauses = [_drop(k) for k in _changed(a_keys, b_keys) if k.kind == "c"]
    clauses += [f"DROP INDEX {mysql_quote(name)}" for name, i in sorted(a_idx.items())
                if name not in b_idx or b_idx[name].definition != i.definition]
    clauses += [_drop(k) for k in _changed(a_keys, b_keys) if k.kind != "c"]
    a_cols = {c.name: c for c in a.columns}
    b_names = [c.name for c in b.columns]
    clauses += [f"DROP COLUMN {mysql_quote(name)}" for name in a_cols if name not in b_names]
    reordered = [n for n in a_cols if n in b_names] != [n for n in b_names if n in a_cols]
    for position, column in enumerate(b.columns):
        place = " FIRST" if position == 0 else f" AFTER {mysql_quote(b_names[position - 1])}"
        old = a_cols.get(column.name)
        if old is None:
            clauses.append(f"ADD COLUMN {_column(column)}{place}")
        elif old != column or reordered:
            clauses.append(f"MODIFY COLUMN {_column(column)}{place if reordered else ''}")
    added = _changed(b_keys, a_keys)
    clauses += [f"ADD {k.definition}" for k in added if k.kind != "c"]
    clauses += [f"ADD {i.definition}" for name, i in sorted(b_idx.items())
                if name not in a_idx or a_idx[name].definition != i.definition]
    clauses += [f"ADD {k.definition}" for k in added if k.kind == "c"]
    return clauses
