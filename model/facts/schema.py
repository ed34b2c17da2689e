"""A database's schema as the catalog describes it (tables, columns, types, indexes, constraints), its
fingerprint, and the DDL that turns one schema into another."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

__all__ = ["Column", "Constraint", "Index", "SchemaFingerprint", "SchemaShape", "Table", "diff_ddl", "quote"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None = None  # an SQL expression as the server prints it (a string default quoted)
    extra: str = ""  # MySQL/MariaDB: auto_increment, on update ..., AS (expr) STORED; empty on PostgreSQL


@dataclass(frozen=True, slots=True)
class Constraint:
    name: str
    kind: str  # p (primary key), u (unique), f (foreign key), c (check), x (exclusion)
    definition: str  # as the server prints it (pg_get_constraintdef), or built alike from information_schema
    columns: tuple[str, ...] = ()
    ref_table: str | None = None  # a foreign key's referenced table, schema-qualified
    ref_columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Index:
    """An index that backs no constraint (those are the constraint's)."""

    name: str
    definition: str  # CREATE [UNIQUE] INDEX ... as the server prints it (MySQL: built from its columns)


@dataclass(frozen=True, slots=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    constraints: tuple[Constraint, ...] = ()
    indexes: tuple[Index, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"

    @property
    def key(self) -> str:
        """``schema.name``; just ``name`` for a table of the connection's own database (MySQL), so that two
        databases of different names compare by their tables."""
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True, slots=True)
class SchemaShape:
    tables: tuple[Table, ...]
    dialect: str = "postgres"  # the engine registry's SQL dialect: which DDL describes a difference

    def fingerprint(self) -> str:
        """A digest of everything in the shape: equal for two databases exactly when their shapes are."""
        text = json.dumps([asdict(table) for table in sorted(self.tables, key=lambda t: t.key)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def table(self, key: str) -> Table | None:
        return next((t for t in self.tables if t.key == key), None)


_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote(name: str) -> str:
    """An identifier as PostgreSQL needs it written."""
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def diff_ddl(a: SchemaShape, b: SchemaShape) -> list[str]:
    """The PostgreSQL statements that make schema ``a`` look like schema ``b`` (empty: they are the same);
    :func:`dbwatch.sqlshape.schema_diff.diff_statements` picks the dialect's."""
    out: list[str] = []
    a_tables = {t.key: t for t in a.tables}
    b_tables = {t.key: t for t in b.tables}
    for key in sorted(b_tables.keys() - a_tables.keys()):
        out.extend(_create(b_tables[key]))
    for key in sorted(a_tables.keys() & b_tables.keys()):
        out.extend(_alter(a_tables[key], b_tables[key]))
    for key in sorted(a_tables.keys() - b_tables.keys()):
        out.append(f"DROP TABLE {a_tables[key].qualified};")
    return out


def _column(column: Column) -> str:
    text = f"{quote(column.name)} {column.type}"
    if column.default is not None:
        text += f" DEFAULT {column.default}"
    return text + (" NOT NULL" if column.not_null else "")


def _create(table: Table) -> list[str]:
    parts = [_column(c) for c in table.columns]
    parts += [f"CONSTRAINT {quote(k.name)} {k.definition}" for k in table.constraints]
    out = [f"CREATE TABLE {table.qualified} (\n    " + ",\n    ".join(parts) + "\n);"]
    return out + [f"{i.definition};" for i in table.indexes]


def _alter(a: Table, b: Table) -> list[str]:
    alter = f"ALTER TABLE {a.qualified}"
    out: list[str] = []
    a_cols = {c.name: c for c in a.columns}
    b_cols = {c.name: c for c in b.columns}
    a_cons = {k.name: k for k in a.constraints}
    b_cons = {k.name: k for k in b.constraints}
    for name, k in sorted(a_cons.items()):
        if name not in b_cons or b_cons[name].definition != k.definition:
            out.append(f"{alter} DROP CONSTRAINT {quote(name)};")
    for name in sorted(a_cols.keys() - b_cols.keys()):
        out.append(f"{alter} DROP COLUMN {quote(name)};")
    for column in b.columns:
        old = a_cols.get(column.name)
        if old is None:
            out.append(f"{alter} ADD COLUMN {_column(column)};")
            continue
        col = f"{alter} ALTER COLUMN {quote(column.name)}"
        if old.type != column.type:
            out.append(f"{col} TYPE {column.type};")
        if old.default != column.default:
            out.append(f"{col} SET DEFAULT {column.default};" if column.default is not None else f"{col} DROP DEFAULT;")
        if old.not_null != column.not_null:
            out.append(f"{col} {'SET' if column.not_null else 'DROP'} NOT NULL;")
    for name, k in sorted(b_cons.items()):
        if name not in a_cons or a_cons[name].definition != k.definition:
            out.append(f"{alter} ADD CONSTRAINT {quote(name)} {k.definition};")
    a_idx = {i.name: i for i in a.indexes}
    b_idx = {i.name: i for i in b.indexes}
    for name, index in sorted(a_idx.items()):
        if name not in b_idx or b_idx[name].definition != index.definition:
            out.append(f"DROP INDEX {quote(a.schema)}.{quote(name)};")
    for name, index in sorted(b_idx.items()):
        if name not in a_idx or a_idx[name].definition != index.definition:
            out.append(f"{index.definition};")
    return out


@dataclass(frozen=True, slots=True)
class SchemaFingerprint:
    """A target's schema as the ``schema`` collector read it, and the ``schema_group`` it must match."""

    group: str | None
    fingerprint: str
    shape: SchemaShape
