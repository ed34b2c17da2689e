"""The schema designer's PostgreSQL collector: the catalog and pg_stats read for design smells, and each
statement the rules will offer checked against the data first (facts: :class:`SchemaDesignFacts`).

Catalog reads are cheap; the checks scan tables, so they run only on tables of at most ``check_rows_limit``
estimated rows (1,000,000), at most ``max_checks`` (40) per collection, under the session's statement
timeout; a check that fails or is skipped leaves ``None`` and the rule then offers no statement. It runs on
demand (``dbwatch advise``) and, when enabled, hourly in the daemon.

- ``*_id`` columns without a foreign key, where a table the name names has a unique key of a compatible
  type: the orphan rows are counted (``NOT VALID`` + ``VALIDATE`` is offered only at zero).
- nullable columns pg_stats saw no NULL in (analyzed tables): a scan confirms there is none.
- float/real named like money, ``timestamp without time zone`` named like an instant, ``json``.
- text columns with a handful of values (enum/lookup), lists joined by a delimiter, UUIDs stored as text.
- entity-attribute-value tables; integer keys whose sequence has used half of the type's range.
"""

from __future__ import annotations

import re
from typing import Any

from dbwatch.model import Snapshot
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.schema_design import (
    ColumnRef, DelimitedList, EavTable, ForeignKeyGap, KeyOverflow, LowCardinality, MoneyColumn, NeverNull,
    SchemaDesignFacts, TextUuid,
)
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.pg_scope import USER_SCHEMA, not_extension_member
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.schema_design_common import (
    AMOUNT_NAME, INSTANT_NAME, delimited, eav_columns, fk_targets, low_cardinality, looks_uuid,
)
from dbwatch.model.options import CollectorOptions, Count, Number

__all__ = ["PgSchemaDesignOptions", "PgSchemaDesignCollector"]


class PgSchemaDesignOptions(CollectorOptions):
    check_rows_limit: Count = 1_000_000  # the largest table a check scans (estimated rows)
    max_checks: Count = 40  # scans per collection at most
    min_rows: Count = 100  # statistics-based findings need at least this many rows
    overflow_share: Number = 0.5  # an integer key's sequence past this share of the type's range


_USER = f"{USER_SCHEMA} AND {not_extension_member('c')}"

COLUMNS = f"""
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS notnull, greatest(c.reltuples, 0)::bigint AS rows,
       coalesce(st.last_analyze, st.last_autoanalyze) IS NOT NULL AS analyzed,
       s.null_frac, s.n_distinct, s.most_common_freqs AS mcf,
       CASE WHEN a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
            THEN s.most_common_vals::text::text[] END AS mcv,
       CASE WHEN a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
            THEN s.histogram_bounds::text::text[] END AS hist,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f'
               AND a.attnum = ANY(k.conkey)) AS has_fk,
       (SELECT count(*) FROM pg_attribute x WHERE x.attrelid = c.oid AND x.attnum > 0 AND NOT x.attisdropped)
         AS table_columns
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables st ON st.relid = c.oid
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
                    AND NOT s.inherited
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped AND {_USER}
ORDER BY 1, 2, a.attnum LIMIT 20000"""

UNIQUE_KEYS = f"""
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
WHERE (i.indisprimary OR i.indisunique) AND i.indnatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indisvalid AND {_USER}"""

SEQUENCES = f"""
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
       greatest(c.reltuples, 0)::bigint AS rows, sn.nspname || '.' || sc.relname AS sequence,
       s.last_value, CASE a.atttypid WHEN 'int2'::regtype THEN 32767 ELSE 2147483647 END AS max_value
FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_sequences s ON s.schemaname = sn.nspname AND s.sequencename = sc.relname
JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  AND a.atttypid IN ('int2'::regtype, 'int4'::regtype) AND s.last_value IS NOT NULL AND {_USER}"""

_INTEGER = re.compile(r"^(smallint|integer|bigint)$")


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _compatible(a: str, b: str) -> bool:
    return a == b or bool(_INTEGER.match(a) and _INTEGER.match(b))


class PgSchemaDesignCollector(Collector[PostgresSession, PgSchemaDesignOptions]):
    name = "schema_design"
    options_model = PgSchemaDesignOptions
    _budget = 0  # bounded checks left in this collection

    async def collect(self, snapshot: Snapshot) -> None:
        session, opts = self.session, self.options
        async with session.lock:
            [db] = await session.run("SELECT current_database() AS name")
            columns = await session.run(COLUMNS)
            keys = await session.run(UNIQUE_KEYS)
            sequences = await session.run(SEQUENCES)
            facts = self._facts(db["name"], columns, keys, sequences)
            self._budget = opts.max_checks
            facts = await self._check(session, facts)
        snapshot.put(facts, Summary({"missing_fks": len(facts.missing_fks), "never_null": len(facts.never_null)}))

    def _facts(self, database: str, columns: list[Any], keys: list[Any], sequences: list[Any]) -> SchemaDesignFacts:
        opts = self.options
        facts = SchemaDesignFacts(engine="postgres", database=database, check_rows_limit=opts.check_rows_limit)
        unique: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for k in keys:
            unique.setdefault((k["schema"], k["table"]), []).append((k["column"], k["type"]))
        tables: dict[tuple[str, str], list[Any]] = {}
        for c in columns:
            tables.setdefault((c["schema"], c["table"]), []).append(c)
        for (schema, table), cols in tables.items():
            if (eav := eav_columns([c["column"] for c in cols])) is not None:
                facts.eav_tables.append(EavTable(schema, table, *eav, rows=int(cols[0]["rows"])))
        for c in columns:
            ref = ColumnRef(c["schema"], c["table"], c["column"], c["type"], int(c["rows"]))
            name, data_type = c["column"].lower(), c["type"]
            stats = c["null_frac"] is not None and bool(c["analyzed"]) and ref.rows >= opts.min_rows
            if data_type in ("real", "double precision") and AMOUNT_NAME.search(name):
                facts.float_money.append(MoneyColumn(ref))
            if data_type == "timestamp without time zone" and INSTANT_NAME.search(name):
                facts.naive_timestamps.append(ref)
            if data_type == "json":
                facts.json_columns.append(ref)
            if not c["has_fk"] and name.endswith("_id") and (gap := self._fk(ref, unique)) is not None:
                facts.missing_fks.append(gap)
            if stats and not c["notnull"] and c["null_frac"] == 0:
                facts.never_null.append(NeverNull(ref, None))
            samples = [v for v in (c["mcv"] or []) + (c["hist"] or []) if v is not None]
            if not samples or c["has_fk"]:
                continue
            if len(samples) >= 5 and all(looks_uuid(v) for v in samples):
                facts.text_uuids.append(TextUuid(ref, None))
                continue
            if (found := delimited(samples)) is not None:
                facts.delimited.append(DelimitedList(ref, found[0], found[1], tuple(samples[:5])))
                continue
            if stats and (low := low_cardinality(c["mcv"], c["mcf"], c["null_frac"], c["n_distinct"])) is not None:
                facts.low_cardinality.append(LowCardinality(ref, *low))
        for s in sequences:
            ref = ColumnRef(s["schema"], s["table"], s["column"], s["type"], int(s["rows"]))
            if int(s["last_value"]) >= opts.overflow_share * int(s["max_value"]):
                facts.key_overflow.append(KeyOverflow(ref, s["sequence"], int(s["last_value"]), int(s["max_value"])))
        return facts

    @staticmethod
    def _fk(ref: ColumnRef, unique: dict[tuple[str, str], list[tuple[str, str]]]) -> ForeignKeyGap | None:
        stem = ref.column.lower()[:-3]
        for table in fk_targets(stem):
            if (ref.schema, table) == (ref.schema, ref.table):
                continue
            keys = unique.get((ref.schema, table), [])
            for preferred in ("id", ref.column):
                for column, data_type in keys:
                    if column == preferred and _compatible(ref.data_type, data_type):
                        return ForeignKeyGap(ref, ref.schema, table, column, None)
        return None

    async def _scan(self, session: PostgresSession, ref: ColumnRef, query: str) -> int | None:
        """One bounded check: ``None`` when the table is over the limit, the budget is spent or it failed."""
        if ref.rows > self.options.check_rows_limit or self._budget <= 0:
            return None
        self._budget -= 1
        try:
            [row] = await session.run(query)
        except CollectorError:
            return None
        return int(row["n"])

    async def _check(self, session: PostgresSession, facts: SchemaDesignFacts) -> SchemaDesignFacts:
        def table(r: ColumnRef) -> str:
            return f"{q(r.schema)}.{q(r.table)}"

        gaps = []
        for g in facts.missing_fks:
            c = g.column
            orphans = await self._scan(session, c, (
                f"SELECT count(*) AS n FROM (SELECT 1 FROM {table(c)} c WHERE c.{q(c.column)} IS NOT NULL AND NOT "
                f"EXISTS (SELECT 1 FROM {q(g.ref_schema)}.{q(g.ref_table)} r WHERE r.{q(g.ref_column)} = "
                f"c.{q(c.column)}) LIMIT 100000) o"))
            gaps.append(ForeignKeyGap(c, g.ref_schema, g.ref_table, g.ref_column, orphans))
        never = []
        for n in facts.never_null:
            nulls = await self._scan(session, n.column, (
                f"SELECT count(*) AS n FROM (SELECT 1 FROM {table(n.column)} WHERE {q(n.column.column)} IS NULL "
                f"LIMIT 1) o"))
            if nulls is None or nulls == 0:  # the statistics were stale when a scan finds one: no finding
                never.append(NeverNull(n.column, None if nulls is None else True))
        uuids = []
        for u in facts.text_uuids:
            bad = await self._scan(session, u.column, (
                f"SELECT count(*) AS n FROM {table(u.column)} WHERE {q(u.column.column)} !~* "
                "'^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'"))
            uuids.append(TextUuid(u.column, bad))
        return SchemaDesignFacts(**{**{f: getattr(facts, f) for f in facts.__dataclass_fields__},
                                    "missing_fks": gaps, "never_null": never, "text_uuids": uuids})
