"""The schema designer's MySQL/MariaDB collector: what ``information_schema`` allows of the PostgreSQL
designer (there are no pg_stats samples, so no value-based findings but the bounded checks), plus character
set and collation mixes between joined columns. Facts: :class:`SchemaDesignFacts` (engine ``mysql``).

The target's database when its DSN names one, else every database but the system ones. Checks (orphans of a
missing foreign key, NULLs in a nullable column) scan tables of at most ``check_rows_limit`` rows
(TABLE_ROWS), at most ``max_checks`` per collection, under the session's statement time limit.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import Snapshot
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.schema_design import (
    CollationMix, ColumnRef, EavTable, ForeignKeyGap, KeyOverflow, MoneyColumn, NeverNull, SchemaDesignFacts,
    TextUuid,
)
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.schema_design_common import AMOUNT_NAME, eav_columns, fk_targets, looks_uuid
from dbwatch.model.options import CollectorOptions, Count, Number

__all__ = ["MySQLSchemaDesignOptions", "MySQLSchemaDesignCollector"]

_SYSTEM = "('mysql', 'performance_schema', 'information_schema', 'sys')"

COLUMNS = """
SELECT c.TABLE_SCHEMA AS db, c.TABLE_NAME AS tbl, c.COLUMN_NAME AS col, c.DATA_TYPE AS data_type,
       c.COLUMN_TYPE AS column_type, c.IS_NULLABLE = 'YES' AS nullable, c.COLUMN_DEFAULT AS dflt,
       c.COLUMN_COMMENT AS comment, c.EXTRA AS extra, c.CHARACTER_MAXIMUM_LENGTH AS char_length,
       c.COLLATION_NAME AS collation, c.COLUMN_KEY AS ckey,
       COALESCE(t.TABLE_ROWS, 0) AS table_rows, t.AUTO_INCREMENT AS auto_increment,
       EXISTS (SELECT 1 FROM information_schema.KEY_COLUMN_USAGE k WHERE k.TABLE_SCHEMA = c.TABLE_SCHEMA
               AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME
               AND k.REFERENCED_TABLE_NAME IS NOT NULL) AS has_fk
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA {where}
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION LIMIT 20000"""

UNIQUE = """
SELECT s.TABLE_SCHEMA AS db, s.TABLE_NAME AS tbl, s.COLUMN_NAME AS col
FROM information_schema.STATISTICS s
WHERE s.NON_UNIQUE = 0 AND s.TABLE_SCHEMA {where}
GROUP BY s.TABLE_SCHEMA, s.TABLE_NAME, s.INDEX_NAME HAVING COUNT(*) = 1"""

FOREIGN_KEYS = """
SELECT k.TABLE_SCHEMA AS db, k.TABLE_NAME AS tbl, k.COLUMN_NAME AS col, k.REFERENCED_TABLE_SCHEMA AS ref_db,
       k.REFERENCED_TABLE_NAME AS ref_tbl, k.REFERENCED_COLUMN_NAME AS ref_col
FROM information_schema.KEY_COLUMN_USAGE k
WHERE k.REFERENCED_TABLE_NAME IS NOT NULL AND k.TABLE_SCHEMA {where}"""

_INT_MAX = {"tinyint": 127, "smallint": 32767, "mediumint": 8388607, "int": 2147483647}
_TEXT = ("char", "varchar")


def _no_default(value: Any) -> bool:
    """MariaDB prints a nullable column's absent default as the expression NULL, MySQL as SQL NULL."""
    return value is None or str(value).upper() == "NULL"


def _native_uuid(version: str) -> bool:
    """MariaDB 10.7 added the UUID column type."""
    if "mariadb" not in version.lower():
        return False
    parts = version.split("-")[0].split(".")
    return tuple(int(p) for p in parts[:2] if p.isdigit()) >= (10, 7)


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MySQLSchemaDesignOptions(CollectorOptions):
    check_rows_limit: Count = 1_000_000
    max_checks: Count = 40
    min_rows: Count = 100
    overflow_share: Number = 0.5


class MySQLSchemaDesignCollector(Collector[MySQLSession, MySQLSchemaDesignOptions]):
    name = "schema_design"
    options_model = MySQLSchemaDesignOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session, opts = self.session, self.options
        async with session.lock:
            [db] = await session.run("SELECT DATABASE() AS name, VERSION() AS version")
            where, args = ("= %s", (db["name"],)) if db["name"] else (f"NOT IN {_SYSTEM}", None)
            columns = await session.run(COLUMNS.format(where=where), args)
            unique = await session.run(UNIQUE.format(where=where), args)
            fks = await session.run(FOREIGN_KEYS.format(where=where), args)
            facts = self._facts(db["name"] or "", columns, unique, fks)
            budget = [opts.max_checks]
            uuids = []
            for c in self._uuid_candidates(columns):
                uuids.extend(await self._uuid(session, budget, c))
            gaps = [ForeignKeyGap(g.column, g.ref_schema, g.ref_table, g.ref_column, await self._scan(
                session, budget, g.column,
                f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM {q(g.column.schema)}.{q(g.column.table)} c WHERE "
                f"c.{q(g.column.column)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(g.ref_schema)}."
                f"{q(g.ref_table)} r WHERE r.{q(g.ref_column)} = c.{q(g.column.column)}) LIMIT 100000) o"))
                for g in facts.missing_fks]
            never = []
            for n in facts.never_null:
                c = n.column
                found = await self._scan(session, budget, c, f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM "
                                         f"{q(c.schema)}.{q(c.table)} WHERE {q(c.column)} IS NULL LIMIT 1) o")
                if found == 0:  # without statistics only a scan can say "never null"
                    never.append(NeverNull(c, True))
            money = []
            for m in facts.float_money:  # DECIMAL(14,2) rounds what has more decimals: count before offering it
                c = m.column
                money.append(MoneyColumn(c, await self._scan(
                    session, budget, c, f"SELECT COUNT(*) AS n FROM {q(c.schema)}.{q(c.table)} WHERE "
                    f"{q(c.column)} <> ROUND({q(c.column)}, 2) OR ABS({q(c.column)}) >= 1e12")))
        facts = SchemaDesignFacts(**{**{f: getattr(facts, f) for f in facts.__dataclass_fields__},
                                     "missing_fks": gaps, "never_null": never, "float_money": money,
                                     "text_uuids": uuids, "native_uuid": _native_uuid(str(db["version"]))})
        snapshot.put(facts, Summary({"missing_fks": len(facts.missing_fks), "never_null": len(facts.never_null)}))

    async def _scan(self, session: MySQLSession, budget: list[int], ref: ColumnRef, query: str) -> int | None:
        if ref.rows > self.options.check_rows_limit or budget[0] <= 0:
            return None
        budget[0] -= 1
        try:
            [row] = await session.run(query)
        except CollectorError:
            return None
        return int(row["n"])

    def _uuid_candidates(self, columns: list[Any]) -> list[ColumnRef]:
        return [ColumnRef(c["db"], c["tbl"], c["col"], c["column_type"], int(c["table_rows"]),
                          nullable=bool(c["nullable"]), plain=_no_default(c["dflt"]) and not c["comment"]
                          and not c["extra"])
                for c in columns if c["data_type"].lower() in _TEXT and c["char_length"] in (32, 36)
                and not c["has_fk"] and int(c["table_rows"]) >= self.options.min_rows]

    async def _uuid(self, session: MySQLSession, budget: list[int], c: ColumnRef) -> list[TextUuid]:
        """Sampled values all UUIDs (the first 50 that are not NULL), then the values that are not counted."""
        table = f"{q(c.schema)}.{q(c.table)}"
        if budget[0] <= 0:
            return []
        budget[0] -= 1
        try:
            sample = [r["v"] for r in await session.run(
                f"SELECT {q(c.column)} AS v FROM {table} WHERE {q(c.column)} IS NOT NULL LIMIT 50")]
        except CollectorError:
            return []
        if len(sample) < 5 or not all(looks_uuid(str(v)) for v in sample):
            return []
        bad = await self._scan(session, budget, c, f"SELECT COUNT(*) AS n FROM {table} WHERE {q(c.column)} NOT "
                               "REGEXP '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                               "[0-9a-fA-F]{12}$'")
        return [TextUuid(c, bad)]

    def _facts(self, database: str, columns: list[Any], unique: list[Any], fks: list[Any]) -> SchemaDesignFacts:
        opts = self.options
        facts = SchemaDesignFacts(engine="mysql", database=database, check_rows_limit=opts.check_rows_limit)
        by_col = {(c["db"], c["tbl"], c["col"]): c for c in columns}
        keys: dict[tuple[str, str], list[str]] = {}
        for u in unique:
            keys.setdefault((u["db"], u["tbl"]), []).append(u["col"])
        tables: dict[tuple[str, str], list[Any]] = {}
        for c in columns:
            tables.setdefault((c["db"], c["tbl"]), []).append(c)
        for (schema, table), cols in tables.items():
            if (eav := eav_columns([c["col"] for c in cols])) is not None:
                facts.eav_tables.append(EavTable(schema, table, *eav, rows=int(cols[0]["table_rows"])))

        def ref(c: Any) -> ColumnRef:
            extra = (c["extra"] or "").lower().replace("auto_increment", "").strip()
            return ColumnRef(c["db"], c["tbl"], c["col"], c["column_type"], int(c["table_rows"]),
                             nullable=bool(c["nullable"]),
                             plain=_no_default(c["dflt"]) and not c["comment"] and not extra)

        for fk in fks:  # declared foreign keys between string columns of different collations
            child, parent = by_col.get((fk["db"], fk["tbl"], fk["col"])), \
                by_col.get((fk["ref_db"], fk["ref_tbl"], fk["ref_col"]))
            if child and parent and child["collation"] and parent["collation"] \
                    and child["collation"] != parent["collation"]:
                facts.collation_mixes.append(CollationMix(ref(child), child["collation"], ref(parent),
                                                          parent["collation"], True))
        for c in columns:
            r, name, data_type = ref(c), c["col"].lower(), c["data_type"].lower()
            if data_type in ("float", "double", "real") and AMOUNT_NAME.search(name):
                facts.float_money.append(MoneyColumn(r))
            if r.nullable and r.rows >= opts.min_rows and c["ckey"] != "PRI":
                facts.never_null.append(NeverNull(r, None))
            if c["auto_increment"] and "auto_increment" in (c["extra"] or "").lower() and data_type in _INT_MAX:
                top = _INT_MAX[data_type] * (2 if "unsigned" in c["column_type"].lower() else 1) + (
                    1 if "unsigned" in c["column_type"].lower() else 0)
                last = int(c["auto_increment"]) - 1
                if last >= opts.overflow_share * top:
                    facts.key_overflow.append(KeyOverflow(r, f"{c['tbl']}.AUTO_INCREMENT", last, top))
            if c["has_fk"] or not name.endswith("_id"):
                continue
            for table in fk_targets(name[:-3]):
                if table == c["tbl"]:
                    continue
                target = next((by_col[(c["db"], table, k)] for k in (keys.get((c["db"], table)) or [])
                               if k in ("id", c["col"])), None)
                if target is None:
                    continue
                if data_type in _TEXT and target["data_type"].lower() in _TEXT \
                        and c["collation"] != target["collation"]:
                    facts.collation_mixes.append(CollationMix(r, c["collation"], ref(target), target["collation"],
                                                              False))
                elif data_type == target["data_type"].lower() and c["collation"] == target["collation"] and (
                        ("unsigned" in c["column_type"].lower()) == ("unsigned" in target["column_type"].lower())):
                    facts.missing_fks.append(ForeignKeyGap(r, c["db"], table, target["col"], None))
                break
        return facts
