"""Index hygiene from catalog rows: unused, duplicate, prefix-redundant and invalid indexes, foreign keys
without a supporting index, tables without a primary key, sequences near their maximum.

Pure functions over the rows of pg_advisor_sql's queries (no connection), so the comparisons are plain
Python and testable on any rows. Each fact carries the SQL that fixes it; judgement (is it worth saying,
how loudly) stays in rules/indexes.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from dbwatch.model.facts.pg_advisor import (
    IndexKeys, IndexKeysList, IndexRow, InvalidIndex, InvalidIndexes, RedundantIndex, RedundantIndexes, Sequences,
    SequenceUsage, TablesWithoutPrimaryKey, TableWithoutPrimaryKey, UnindexedForeignKey, UnindexedForeignKeys,
    UnusedIndex, UnusedIndexes,
)

__all__ = ["Table", "duplicates_sql", "hygiene", "index_name"]

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Table:
    oid: int
    schema: str
    name: str
    qualified: str  # quote_ident(schema).quote_ident(name)
    rows: int
    size_bytes: int
    writes: int
    updates_deletes: int
    index_count: int
    has_pk: bool
    heap_bytes: int = 0  # the main fork alone (size_bytes counts the TOAST table's index even when empty)


def index_name(table: str, columns: Sequence[str]) -> str:
    """A conventional name ``<table>_<columns>_idx`` that never needs quoting (at most 63 bytes)."""
    base = re.sub(r"[^a-z0-9_]+", "_", "_".join([table, *columns]).lower()).strip("_") or "dbwatch"
    return f"{base[:59]}_idx"


def hygiene(tables: Mapping[int, Table], indexes: Sequence[Row], foreign_keys: Sequence[Row],
            sequences: Sequence[Row], observed_seconds: float,
            duplicates: Mapping[int, bool | None] | None = None) -> tuple[object, ...]:
    """The hygiene facts, one of each type in :mod:`dbwatch.model.facts.pg_advisor`'s lists. ``duplicates``:
    per invalid unique index (oid), whether its table holds duplicate keys (None: unknown)."""
    duplicates = duplicates or {}
    return (
        UnusedIndexes(tuple(_unused(tables, indexes, foreign_keys, observed_seconds))),
        RedundantIndexes(tuple(_redundant(indexes))),
        InvalidIndexes(tuple(_invalid(i, duplicates.get(i["oid"])) for i in indexes if not i["is_valid"])),
        UnindexedForeignKeys(tuple(_unindexed_foreign_keys(tables, indexes, foreign_keys))),
        TablesWithoutPrimaryKey(tuple(_without_primary_key(tables, indexes))),
        Sequences(tuple(_sequence(s) for s in sequences)),
        IndexKeysList(tuple(IndexKeys(schema=i["schema"], table=i["table"], name=i["name"], method=i["method"],
                                      columns=tuple(i["columns"][:i["key_count"]]), expressions=i["expressions"],
                                      predicate=i["predicate"], valid=bool(i["is_valid"]),
                                      enforces=bool(i["is_unique"] or i["is_primary"] or i["backs_constraint"]))
                            for i in indexes)),
    )


def duplicates_sql(index: Row, limit: int | None = 100) -> str:
    """The keys that occur more than once among the rows a unique index covers (NULLs never clash)."""
    keys = list(index["key_defs"])
    where = [f"{k} IS NOT NULL" for k in keys] + ([f"({index['predicate']})"] if index["predicate"] else [])
    return (f"SELECT {', '.join(keys)}, count(*) AS copies FROM {index['table_qualified']} "
            f"WHERE {' AND '.join(where)} GROUP BY {', '.join(keys)} HAVING count(*) > 1"
            + (f" ORDER BY copies DESC LIMIT {limit}" if limit else ""))


def _invalid(index: Row, duplicates: bool | None) -> InvalidIndex:
    if not index["is_unique"]:
        return InvalidIndex(_row(index), f"REINDEX INDEX CONCURRENTLY {index['qualified']};")
    create = re.sub(r"^CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY ", index["definition"])
    recreate = f"{_drop(index)}\n{create};"
    find = duplicates_sql(index) + ";"
    # Rebuilding is offered only when the advisor saw no duplicate; otherwise the query that finds them.
    return InvalidIndex(_row(index), recreate if duplicates is False else find, unique=True, duplicates=duplicates,
                        duplicates_sql=find, recreate_sql=recreate)


def _row(index: Row) -> IndexRow:
    return IndexRow(schema=index["schema"], table=index["table"], name=index["name"],
                    definition=index["definition"], size_bytes=int(index["size_bytes"]), scans=int(index["scans"]))


def _drop(index: Row) -> str:
    return f"DROP INDEX CONCURRENTLY {index['qualified']};"


def _droppable(index: Row) -> bool:
    """An index whose removal changes nothing but speed: not unique, not a constraint's, valid."""
    return index["is_valid"] and not index["is_unique"] and not index["is_primary"] and not index["backs_constraint"]


def _unused(tables: Mapping[int, Table], indexes: Sequence[Row], foreign_keys: Sequence[Row], observed: float
            ) -> list[UnusedIndex]:
    out = []
    for index in indexes:
        if _droppable(index) and index["scans"] == 0:
            table = tables.get(index["table_oid"])
            fk = _sole_fk_index(index, indexes, foreign_keys)
            parent = tables.get(fk["referenced_oid"]) if fk else None
            out.append(UnusedIndex(_row(index), observed, table.writes if table else 0, _drop(index),
                                   foreign_key=fk["name"] if fk else None,
                                   referenced_deletes_updates=parent.updates_deletes if parent else 0))
    return out


def _serves(index: Row, fk: Row) -> bool:
    lead = index["keys"][:index["key_count"]][:len(fk["keys"])]
    return index["is_valid"] and not index["predicate"] and 0 not in lead and set(lead) == set(fk["keys"])


def _sole_fk_index(index: Row, indexes: Sequence[Row], foreign_keys: Sequence[Row]) -> Row | None:
    """The foreign key of index's table that no other index serves (dropping this one unindexes it)."""
    for fk in foreign_keys:
        if fk["table_oid"] == index["table_oid"] and _serves(index, fk) and not any(
                other["oid"] != index["oid"] and other["table_oid"] == index["table_oid"] and _serves(other, fk)
                for other in indexes):
            return fk
    return None


def _keys(index: Row) -> tuple[Any, ...]:
    """What makes two indexes interchangeable, key column by key column."""
    n = index["key_count"]
    return tuple(zip(index["keys"][:n], index["opclasses"][:n], index["collations"][:n], index["options"][:n]))


def _keeper_order(index: Row) -> tuple[Any, ...]:
    # Of identical indexes keep the one a constraint needs, then the unique one, then the most used, then the oldest.
    return (not (index["is_primary"] or index["backs_constraint"]), not index["is_unique"], -index["scans"],
            index["oid"])


def _redundant(indexes: Sequence[Row]) -> list[RedundantIndex]:
    out: list[RedundantIndex] = []
    by_table: dict[int, list[Row]] = {}
    for index in indexes:
        if index["is_valid"]:
            by_table.setdefault(index["table_oid"], []).append(index)
    for group in by_table.values():
        flagged: set[int] = set()
        same: dict[tuple[Any, ...], list[Row]] = {}
        for index in group:
            key = (index["method"], _keys(index), tuple(index["keys"][index["key_count"]:]), index["expressions"],
                   index["predicate"])
            same.setdefault(key, []).append(index)
        for twins in same.values():
            if len(twins) < 2:
                continue
            keeper, *rest = sorted(twins, key=_keeper_order)
            for index in rest:
                if not (index["is_primary"] or index["backs_constraint"]):
                    out.append(RedundantIndex(_row(index), "duplicate", _row(keeper), _drop(index)))
                    flagged.add(index["oid"])
        for index in group:
            if index["oid"] in flagged or not _droppable(index) or not _plain_btree(index):
                continue
            if index["key_count"] != len(index["keys"]):
                continue  # INCLUDE columns: it may be there to answer from the index alone
            keys = _keys(index)
            longer = [other for other in group if other["oid"] != index["oid"] and other["oid"] not in flagged
                      and _plain_btree(other) and len(_keys(other)) > len(keys) and _keys(other)[:len(keys)] == keys]
            if longer:
                cover = min(longer, key=lambda o: (len(_keys(o)), o["oid"]))
                out.append(RedundantIndex(_row(index), "prefix", _row(cover), _drop(index)))
                flagged.add(index["oid"])
    return out


def _plain_btree(index: Row) -> bool:
    return index["method"] == "btree" and not index["expressions"] and not index["predicate"]


def _unindexed_foreign_keys(tables: Mapping[int, Table], indexes: Sequence[Row], foreign_keys: Sequence[Row]
                            ) -> list[UnindexedForeignKey]:
    leading: dict[int, list[list[int]]] = {}
    for index in indexes:
        if index["is_valid"] and not index["predicate"]:
            leading.setdefault(index["table_oid"], []).append(index["keys"][:index["key_count"]])
    out = []
    for fk in foreign_keys:
        keys = list(fk["keys"])
        # Served when an index's first len(keys) columns are the key's columns, in any order.
        if any(set(lead[:len(keys)]) == set(keys) and 0 not in lead[:len(keys)]
               for lead in leading.get(fk["table_oid"], [])):
            continue
        table, referenced = tables.get(fk["table_oid"]), tables.get(fk["referenced_oid"])
        if table is None:
            continue
        name = index_name(table.name, fk["columns"])
        out.append(UnindexedForeignKey(
            schema=table.schema, table=table.name, constraint=fk["name"], columns=tuple(fk["columns"]),
            referenced_table=referenced.qualified if referenced else str(fk["referenced_oid"]),
            table_rows=table.rows, table_size_bytes=table.size_bytes,
            referenced_deletes_updates=referenced.updates_deletes if referenced else 0,
            create_sql=f"CREATE INDEX CONCURRENTLY {name} ON {table.qualified} ({', '.join(fk['quoted'])});",
        ))
    return out


def _without_primary_key(tables: Mapping[int, Table], indexes: Sequence[Row]) -> list[TableWithoutPrimaryKey]:
    unique: dict[int, Row] = {}
    for index in indexes:
        if index["is_valid"] and index["is_unique"] and _plain_btree(index):
            unique.setdefault(index["table_oid"], index)
    out = []
    for table in tables.values():
        if table.has_pk or (table.rows == 0 and table.heap_bytes == 0):
            continue  # an empty table (a partitioned parent holds no rows itself) has nothing to address yet
        candidate = unique.get(table.oid)
        if candidate is not None:
            # Makes the index the key; sets NOT NULL on its columns first if needed (a scan, no rewrite).
            sql = f"ALTER TABLE {table.qualified} ADD PRIMARY KEY USING INDEX {_bare(candidate['qualified'])};"
        else:
            sql = (f"ALTER TABLE {table.qualified} ADD COLUMN id bigint GENERATED BY DEFAULT AS IDENTITY "
                   f"PRIMARY KEY;")
        out.append(TableWithoutPrimaryKey(table.schema, table.name, table.rows, table.size_bytes,
                                          candidate["name"] if candidate is not None else None, sql))
    return out


def _bare(qualified: str) -> str:
    """ADD PRIMARY KEY USING INDEX takes the index's name without its schema (it is the table's)."""
    return qualified.split(".", 1)[1] if "." in qualified else qualified


def _sequence(row: Row) -> SequenceUsage:
    last, maximum = int(row["last_value"]), int(row["max_value"])
    if row["column_type"] in ("integer", "smallint"):
        sql = (f"ALTER SEQUENCE {row['qualified']} AS bigint; "
               f"ALTER TABLE {row['table']} ALTER COLUMN {row['quoted_column']} TYPE bigint;")
    else:
        sql = f"ALTER SEQUENCE {row['qualified']} AS bigint MAXVALUE 9223372036854775807;"
    return SequenceUsage(schema=row["schema"], sequence=row["sequence"], table=row["table"], column=row["column"],
                         column_type=row["column_type"], last_value=last, max_value=maximum,
                         used_ratio=last / maximum if maximum else 0.0, sql=sql)
