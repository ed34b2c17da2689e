"""Reading a PostgreSQL database's schema from its catalog into a :class:`~dbwatch.model.facts.schema.SchemaShape`
(user tables and partitioned tables of every schema but the system ones): for fingerprints, diffs and ER
diagrams. Three catalog queries, whatever the number of tables."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from dbwatch.model.facts.schema import Column, Constraint, Index, SchemaShape, Table

if TYPE_CHECKING:  # the driver is imported by the session, not by `dbwatch schema`'s parser
    from dbwatch.collectors.postgres import PostgresSession

__all__ = ["PG_COLUMNS", "PG_CONSTRAINTS", "PG_INDEXES", "read_pg_shape"]

_USER = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
         "AND n.nspname NOT LIKE 'pg\\_temp\\_%'")

PG_COLUMNS = f"""
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS "default"
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND {_USER}
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
ORDER BY 1, 2, a.attnum
"""

PG_CONSTRAINTS = f"""
SELECT n.nspname AS schema, c.relname AS table, k.conname AS name, k.contype::text AS kind,
       pg_get_constraintdef(k.oid) AS definition,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(num, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.i)::text[] AS columns,
       fn.nspname || '.' || fc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(num, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.i)::text[] AS ref_columns
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class fc ON fc.oid = k.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE c.relkind IN ('r', 'p') AND k.contype IN ('p', 'u', 'f', 'c', 'x') AND {_USER}
ORDER BY 1, 2, 3
"""

# Indexes that back a constraint are the constraint's: listed once, under it.
PG_INDEXES = f"""
SELECT n.nspname AS schema, c.relname AS table, ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {_USER}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2, 3
"""


async def read_pg_shape(session: PostgresSession) -> SchemaShape:
    """The schema of the session's database; the caller holds ``session.lock``."""
    columns: dict[tuple[str, str], list[Column]] = defaultdict(list)
    for row in await session.run(PG_COLUMNS):
        columns[(row["schema"], row["table"])].append(
            Column(row["column"], row["type"], bool(row["not_null"]), row["default"]))
    constraints: dict[tuple[str, str], list[Constraint]] = defaultdict(list)
    for row in await session.run(PG_CONSTRAINTS):
        constraints[(row["schema"], row["table"])].append(
            Constraint(row["name"], row["kind"], row["definition"], tuple(row["columns"]), row["ref_table"],
                       tuple(row["ref_columns"])))
    indexes: dict[tuple[str, str], list[Index]] = defaultdict(list)
    for row in await session.run(PG_INDEXES):
        indexes[(row["schema"], row["table"])].append(Index(row["name"], row["definition"]))
    return SchemaShape(tuple(
        Table(schema, name, tuple(cols), tuple(constraints[(schema, name)]), tuple(indexes[(schema, name)]))
        for (schema, name), cols in sorted(columns.items())))
