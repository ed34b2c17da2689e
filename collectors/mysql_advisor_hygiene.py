"""MySQL/MariaDB index hygiene: duplicate, prefix-redundant and unused indexes, in the manner of
``sys.schema_redundant_indexes`` and ``sys.schema_unused_indexes`` but computed here, so they work where the
sys schema is missing or not readable.

Indexes come from ``information_schema.STATISTICS`` (every index of the application's schemas, column by
column with its prefix length); use from ``performance_schema.table_io_waits_summary_by_index_usage``
(``COUNT_STAR = 0`` since the server started: never read, which needs the uptime to cover a full business
cycle, judged by the rule); foreign keys from ``information_schema.KEY_COLUMN_USAGE``; sizes from
``mysql.innodb_index_stats`` where readable (else 0). Facts are those of the PostgreSQL advisor
(:class:`RedundantIndexes`, :class:`UnusedIndexes`), judged by the MySQL subclasses in rules/mysql_indexes.py.

- duplicate: the same columns (and prefix lengths) in the same order, same index type; the one kept is the
  PRIMARY, then a UNIQUE one, then the first by name. A UNIQUE index is reported only when the one kept is
  unique too (dropping it then loses no constraint).
- prefix: a non-unique B-tree index whose columns lead another B-tree index's columns (a column prefix such
  as ``city(10)`` is led by the whole column or a longer prefix).
- unused: never read, not PRIMARY or UNIQUE; an index that is the only one leading with a foreign key's
  columns carries the key's name (InnoDB looks rows up through it on the referenced table's deletes).

Drops are online: ``ALTER TABLE ... DROP INDEX ..., ALGORITHM=INPLACE, LOCK=NONE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbwatch.collectors.mysql import ACCESS_DENIED, MySQLSession, QueryError
from dbwatch.model.facts.pg_advisor import IndexRow, RedundantIndex, RedundantIndexes, UnusedIndex, UnusedIndexes

__all__ = ["mysql_hygiene"]

_SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")
_NO_SUCH_TABLE = 1146

INDEX_COLUMNS = f"""SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, INDEX_NAME AS idx, NON_UNIQUE AS non_unique,
  COLUMN_NAME AS col, SUB_PART AS sub_part, INDEX_TYPE AS type
FROM information_schema.STATISTICS WHERE TABLE_SCHEMA NOT IN {_SYSTEM!r}
ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"""
FOREIGN_KEYS = f"""SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, CONSTRAINT_NAME AS fk, COLUMN_NAME AS col,
  REFERENCED_TABLE_SCHEMA AS ref_db, REFERENCED_TABLE_NAME AS ref_name
FROM information_schema.KEY_COLUMN_USAGE
WHERE REFERENCED_TABLE_NAME IS NOT NULL AND TABLE_SCHEMA NOT IN {_SYSTEM!r}
ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"""
INDEX_USAGE = f"""SELECT OBJECT_SCHEMA AS db, OBJECT_NAME AS name, INDEX_NAME AS idx, COUNT_STAR AS index_reads
FROM performance_schema.table_io_waits_summary_by_index_usage
WHERE INDEX_NAME IS NOT NULL AND OBJECT_TYPE = 'TABLE' AND OBJECT_SCHEMA NOT IN {_SYSTEM!r}"""
TABLE_WRITES = f"""SELECT OBJECT_SCHEMA AS db, OBJECT_NAME AS name, COUNT_WRITE AS writes,
  COUNT_UPDATE + COUNT_DELETE AS updates_deletes
FROM performance_schema.table_io_waits_summary_by_table WHERE OBJECT_SCHEMA NOT IN {_SYSTEM!r}"""
INDEX_SIZES = """SELECT database_name AS db, table_name AS name, index_name AS idx,
  stat_value * @@innodb_page_size AS bytes FROM mysql.innodb_index_stats WHERE stat_name = 'size'"""


async def mysql_hygiene(session: MySQLSession, observed_seconds: float) -> tuple[RedundantIndexes, UnusedIndexes]:
    """The redundant and unused indexes of the server's application schemas (call under ``session.lock``)."""
    tables: dict[tuple[str, str], dict[str, _Index]] = {}
    for r in await session.run(INDEX_COLUMNS):
        key = (_text(r["db"]), _text(r["name"]))
        name = _text(r["idx"])
        index = tables.setdefault(key, {}).setdefault(
            name, _Index(key[0], key[1], name, not int(r["non_unique"]), _text(r["type"]).upper()))
        index.columns.append((_text(r["col"]).lower(), None if r["sub_part"] is None else int(r["sub_part"])))
    foreign: dict[tuple[str, str], dict[str, tuple[list[str], tuple[str, str]]]] = {}
    for r in await session.run(FOREIGN_KEYS):
        fks = foreign.setdefault((_text(r["db"]), _text(r["name"])), {})
        cols, _ = fks.setdefault(_text(r["fk"]), ([], (_text(r["ref_db"]), _text(r["ref_name"]))))
        cols.append(_text(r["col"]).lower())
    reads = await _optional(session, INDEX_USAGE)
    usage = {(_text(r["db"]), _text(r["name"]), _text(r["idx"])): int(r["index_reads"] or 0) for r in reads or ()}
    writes = {(_text(r["db"]), _text(r["name"])): (int(r["writes"] or 0), int(r["updates_deletes"] or 0))
              for r in await _optional(session, TABLE_WRITES) or ()}
    sizes = {(_text(r["db"]), _text(r["name"]), _text(r["idx"])): int(r["bytes"] or 0)
             for r in await _optional(session, INDEX_SIZES) or ()}

    def row(i: _Index) -> IndexRow:
        return IndexRow(schema=i.db, table=i.table, name=i.name, definition=i.definition,
                        size_bytes=sizes.get((i.db, i.table, i.name), 0), scans=usage.get((i.db, i.table, i.name), 0))

    redundant: list[RedundantIndex] = []
    unused: list[UnusedIndex] = []
    for key, indexes in tables.items():
        flagged = set()
        for index, keeper, kind in _redundant(list(indexes.values())):
            flagged.add(index.name)
            redundant.append(RedundantIndex(row(index), kind, row(keeper), index.drop_sql))
        if reads is None:
            continue  # performance_schema off or not readable: "never read" cannot be told
        for index in indexes.values():
            if index.unique or index.name in flagged or (key[0], key[1], index.name) not in usage:
                continue
            if usage[(key[0], key[1], index.name)]:
                continue
            fk = _sole_fk(index, list(indexes.values()), foreign.get(key, {}))
            parent = writes.get(fk[1], (0, 0)) if fk else (0, 0)
            unused.append(UnusedIndex(row(index), observed_seconds, writes.get(key, (0, 0))[0], index.drop_sql,
                                      foreign_key=fk[0] if fk else None, referenced_deletes_updates=parent[1]))
    return RedundantIndexes(tuple(redundant)), UnusedIndexes(tuple(unused))


@dataclass(slots=True)
class _Index:
    db: str
    table: str
    name: str
    unique: bool
    type: str
    columns: list[tuple[str, int | None]] = field(default_factory=list)  # (lower-case column, prefix length)

    @property
    def primary(self) -> bool:
        return self.name == "PRIMARY"

    @property
    def definition(self) -> str:
        cols = ", ".join(_quote(c) + (f"({n})" if n else "") for c, n in self.columns)
        kind = "PRIMARY KEY" if self.primary else ("UNIQUE INDEX " if self.unique else "INDEX ") + _quote(self.name)
        return f"{kind} ON {_quote(self.db)}.{_quote(self.table)} ({cols}) USING {self.type}"

    @property
    def drop_sql(self) -> str:
        return (f"ALTER TABLE {_quote(self.db)}.{_quote(self.table)} DROP INDEX {_quote(self.name)}, "
                f"ALGORITHM=INPLACE, LOCK=NONE;")


def _keep_order(index: _Index) -> tuple[bool, bool, str]:
    return not index.primary, not index.unique, index.name


def _redundant(indexes: list[_Index]) -> list[tuple[_Index, _Index, str]]:
    out: list[tuple[_Index, _Index, str]] = []
    flagged: set[str] = set()
    same: dict[tuple[Any, ...], list[_Index]] = {}
    for index in indexes:
        same.setdefault((index.type, tuple(index.columns)), []).append(index)
    for twins in same.values():
        keeper, *rest = sorted(twins, key=_keep_order)
        for index in rest:
            if not index.primary and (not index.unique or keeper.unique):
                out.append((index, keeper, "duplicate"))
                flagged.add(index.name)
    for index in indexes:
        if index.name in flagged or index.unique or index.type != "BTREE":
            continue
        n = len(index.columns)
        longer = [o for o in indexes if o.name not in flagged and o.name != index.name and o.type == "BTREE"
                  and len(o.columns) > n and all(_covers(w, c) for w, c in zip(o.columns, index.columns))]
        if longer:
            out.append((index, min(longer, key=lambda o: (len(o.columns), o.name)), "prefix"))
            flagged.add(index.name)
    return out


def _covers(wide: tuple[str, int | None], narrow: tuple[str, int | None]) -> bool:
    """A key column serves another: same column, and all of it or at least as long a prefix."""
    return wide[0] == narrow[0] and (wide[1] is None or (narrow[1] is not None and narrow[1] <= wide[1]))


def _sole_fk(index: _Index, indexes: list[_Index], fks: dict[str, tuple[list[str], tuple[str, str]]]
             ) -> tuple[str, tuple[str, str]] | None:
    """The foreign key whose columns this index alone leads with (InnoDB needs one such index per key)."""
    def leads(i: _Index, cols: list[str]) -> bool:
        return [c for c, _ in i.columns[:len(cols)]] == cols

    for name, (cols, parent) in fks.items():
        if leads(index, cols) and not any(o.name != index.name and leads(o, cols) for o in indexes):
            return name, parent
    return None


async def _optional(session: MySQLSession, query: str) -> list[dict[str, Any]] | None:
    try:
        rows: list[dict[str, Any]] = await session.run(query)
        return rows
    except QueryError as exc:
        if exc.errno not in ACCESS_DENIED and exc.errno != _NO_SUCH_TABLE:
            raise
        return None  # not readable (no SELECT on performance_schema or mysql.innodb_index_stats)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value or "")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
