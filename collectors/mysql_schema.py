"""Reading a MySQL/MariaDB database's schema from ``information_schema`` into a
:class:`~dbwatch.model.facts.schema.SchemaShape` (dialect ``mysql``): for fingerprints (``SchemaDrift``),
``dbwatch schema diff`` and ``dbwatch schema erd``. Five catalog queries, whatever the number of tables.

The target's database when its DSN names one (its tables unqualified, so that ``shop_staging`` and ``shop``
compare by their tables), else every database but the system ones (tables qualified by database). Views are
left out, and so are the work tables of a running online schema change (gh-ost's ``_t_gho``, ``_t_ghc``,
``_t_del``; pt-online-schema-change's ``_t_new``, ``_t_old``): a migration in progress is not drift.

Columns carry ``COLUMN_TYPE`` (``int(11) unsigned``), nullability, the default as an SQL expression (MariaDB
prints it so; MySQL 8 prints a string default bare, quoted here) and what ``EXTRA`` says (``auto_increment``,
``on update current_timestamp()``, a generated column's ``AS (expr) STORED``). Constraints and indexes are
kept as the clauses ``SHOW CREATE TABLE`` would print (``PRIMARY KEY (`id`)``, ``UNIQUE KEY `u` (`email`)``,
``KEY `k` (`a` DESC,`b`(10))``, ``CONSTRAINT `fk` FOREIGN KEY ... ON DELETE CASCADE``, ``CONSTRAINT `c`
CHECK (...)``), so that :mod:`dbwatch.sqlshape.schema_diff` writes them back as DDL.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.schema_common import record_shape
from dbwatch.model import Snapshot
from dbwatch.model.facts.schema import Column, Constraint, Index, SchemaShape, Table
from dbwatch.model.options import CollectorOptions

if TYPE_CHECKING:  # the driver is imported by the session, not by `dbwatch schema`'s parser
    from dbwatch.collectors.mysql import MySQLSession

__all__ = ["MY_CHECKS_MARIADB", "MY_CHECKS_MYSQL", "MY_COLUMNS", "MY_CONSTRAINTS", "MY_INDEXES", "MySQLSchemaCollector",
           "OSC_WORK_TABLE", "read_mysql_shape"]

_SYSTEM = "('mysql', 'performance_schema', 'information_schema', 'sys')"
#: the tables gh-ost and pt-online-schema-change work in while they run
OSC_WORK_TABLE = re.compile(r"^_.+_(gho|ghc|del|new|old)$")

# {where} is "= %s" (the target's database) or "NOT IN (system databases)"
MY_COLUMNS = """
SELECT c.TABLE_SCHEMA AS db, c.TABLE_NAME AS tbl, c.COLUMN_NAME AS name, c.COLUMN_TYPE AS type,
       c.IS_NULLABLE AS nullable, c.COLUMN_DEFAULT AS dflt, c.EXTRA AS extra, c.GENERATION_EXPRESSION AS expr
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA {where}
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION
"""

# One row per column of an index; the primary key and unique indexes are constraints.
MY_INDEXES = """
SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, INDEX_NAME AS name, NON_UNIQUE AS non_unique,
       COLUMN_NAME AS col, SUB_PART AS sub_part, COLLATION AS coll, INDEX_TYPE AS kind
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA {where}
ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX
"""

# Foreign keys, with their referenced columns in order.
MY_CONSTRAINTS = """
SELECT k.TABLE_SCHEMA AS db, k.TABLE_NAME AS tbl, k.CONSTRAINT_NAME AS name, k.COLUMN_NAME AS col,
       k.REFERENCED_TABLE_SCHEMA AS ref_db, k.REFERENCED_TABLE_NAME AS ref_tbl, k.REFERENCED_COLUMN_NAME AS ref_col,
       r.UPDATE_RULE AS on_update, r.DELETE_RULE AS on_delete
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.REFERENTIAL_CONSTRAINTS r
  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
 AND r.TABLE_NAME = k.TABLE_NAME
WHERE k.TABLE_SCHEMA {where} AND k.REFERENCED_TABLE_NAME IS NOT NULL
ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""

# MariaDB names the table of a check (and its names are per table); MySQL 8 through TABLE_CONSTRAINTS.
MY_CHECKS_MARIADB = """
SELECT CONSTRAINT_SCHEMA AS db, TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, CHECK_CLAUSE AS clause
FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA {where}
ORDER BY 1, 2, 3
"""
MY_CHECKS_MYSQL = """
SELECT t.TABLE_SCHEMA AS db, t.TABLE_NAME AS tbl, c.CONSTRAINT_NAME AS name, c.CHECK_CLAUSE AS clause
FROM information_schema.CHECK_CONSTRAINTS c
JOIN information_schema.TABLE_CONSTRAINTS t
  ON t.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND t.CONSTRAINT_NAME = c.CONSTRAINT_NAME
 AND t.CONSTRAINT_TYPE = 'CHECK'
WHERE t.TABLE_SCHEMA {where}
ORDER BY 1, 2, 3
"""

_GENERATED = re.compile(r"\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b", re.I)


class MySQLSchemaCollector(Collector["MySQLSession", CollectorOptions]):
    """The ``schema`` collector of MySQL/MariaDB targets (on for targets with a ``schema_group``)."""

    name = "schema"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        async with self.session.lock:
            shape = await read_mysql_shape(self.session)
        record_shape(snapshot, self.target.schema_group, shape)


async def read_mysql_shape(session: MySQLSession) -> SchemaShape:
    """The schema of the session's database (or of every user database); the caller holds ``session.lock``."""
    [server] = await session.run("SELECT VERSION() AS version, DATABASE() AS db")
    own = str(server["db"] or "")
    where, args = ("= %s", (own,)) if own else (f"NOT IN {_SYSTEM}", None)

    def key(row: dict[str, Any]) -> tuple[str, str] | None:
        if OSC_WORK_TABLE.match(row["tbl"]):
            return None
        return ("" if own else str(row["db"])), str(row["tbl"])

    def ref(db: str, tbl: str) -> str:
        return tbl if own and db == own else f"{db}.{tbl}"

    mariadb = "mariadb" in str(server["version"]).lower()
    columns: dict[tuple[str, str], list[Column]] = defaultdict(list)
    for row in await session.run(MY_COLUMNS.format(where=where), args):
        if (k := key(row)) is not None:
            columns[k].append(_column(row, mariadb))
    constraints: dict[tuple[str, str], list[Constraint]] = defaultdict(list)
    indexes: dict[tuple[str, str], list[Index]] = defaultdict(list)
    for (k, name), rows in _grouped(await session.run(MY_INDEXES.format(where=where), args), key).items():
        _index(k, name, rows, constraints, indexes)
    for (k, name), rows in _grouped(await session.run(MY_CONSTRAINTS.format(where=where), args), key).items():
        cols = tuple(str(r["col"]) for r in rows)
        ref_cols = tuple(str(r["ref_col"]) for r in rows)
        ref_db, ref_tbl = str(rows[0]["ref_db"]), str(rows[0]["ref_tbl"])
        target = ref(ref_db, ref_tbl)
        target_sql = quote(ref_tbl) if target == ref_tbl else f"{quote(ref_db)}.{quote(ref_tbl)}"
        definition = (f"CONSTRAINT {quote(name)} FOREIGN KEY ({_list(cols)}) REFERENCES {target_sql} "
                      f"({_list(ref_cols)}) ON DELETE {rows[0]['on_delete']} ON UPDATE {rows[0]['on_update']}")
        constraints[k].append(Constraint(name, "f", definition, cols, target, ref_cols))
    try:
        checks = await session.run((MY_CHECKS_MARIADB if mariadb else MY_CHECKS_MYSQL).format(where=where), args)
    except CollectorError:  # before MariaDB 10.2 / MySQL 8.0.16 there are no checks to read
        checks = []
    for row in checks:
        if (k := key(row)) is not None:
            name = str(row["name"])
            constraints[k].append(Constraint(name, "c", f"CONSTRAINT {quote(name)} CHECK ({row['clause']})"))
    return SchemaShape(tuple(
        Table(schema, name, tuple(cols), tuple(sorted(constraints[(schema, name)], key=lambda c: (c.kind, c.name))),
              tuple(sorted(indexes[(schema, name)], key=lambda i: i.name)))
        for (schema, name), cols in sorted(columns.items())), dialect="mysql")


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _list(names: tuple[str, ...]) -> str:
    return ",".join(quote(n) for n in names)


def _grouped(rows: list[dict[str, Any]], key: Any) -> dict[tuple[tuple[str, str], str], list[dict[str, Any]]]:
    out: dict[tuple[tuple[str, str], str], list[dict[str, Any]]] = {}
    for row in rows:
        if (k := key(row)) is not None:
            out.setdefault((k, str(row["name"])), []).append(row)
    return out


def _column(row: dict[str, Any], mariadb: bool) -> Column:
    extra = _GENERATED.sub("", str(row["extra"] or "")).replace("DEFAULT_GENERATED", "").strip()
    generated = _GENERATED.search(str(row["extra"] or ""))
    if generated and row["expr"]:
        stored = generated.group(1).upper() in ("STORED", "PERSISTENT")
        extra = f"AS ({row['expr']}) {'STORED' if stored else 'VIRTUAL'} {extra}".strip()
    default = row["dflt"]
    if default is not None:
        default = str(default)
        if mariadb and default == "NULL":
            default = None  # MariaDB prints a nullable column's implicit default as NULL: no default
        elif not mariadb and "DEFAULT_GENERATED" not in str(row["extra"] or "") and not _number(default):
            default = "'" + default.replace("\\", "\\\\").replace("'", "''") + "'"  # MySQL 8 prints it bare
        elif not mariadb and "DEFAULT_GENERATED" in str(row["extra"] or "") \
                and not default.upper().startswith("CURRENT_TIMESTAMP"):
            default = f"({default})"
    if generated:
        default = None
    return Column(str(row["name"]), str(row["type"]), row["nullable"] == "NO", default, extra)


def _number(text: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text) is not None


def _index(k: tuple[str, str], name: str, rows: list[dict[str, Any]],
           constraints: dict[tuple[str, str], list[Constraint]], indexes: dict[tuple[str, str], list[Index]]) -> None:
    parts = []
    for r in rows:
        part = quote(str(r["col"])) + (f"({r['sub_part']})" if r["sub_part"] is not None else "")
        parts.append(part + (" DESC" if r["coll"] == "D" else ""))
    cols = ", ".join(parts)
    columns = tuple(str(r["col"]) for r in rows)
    kind = str(rows[0]["kind"] or "BTREE").upper()
    if name == "PRIMARY":
        constraints[k].append(Constraint(name, "p", f"PRIMARY KEY ({cols})", columns))
    elif not int(rows[0]["non_unique"]):
        constraints[k].append(Constraint(name, "u", f"UNIQUE KEY {quote(name)} ({cols})", columns))
    else:
        prefix = f"{kind} KEY" if kind in ("FULLTEXT", "SPATIAL") else "KEY"
        indexes[k].append(Index(name, f"{prefix} {quote(name)} ({cols})"))
