"""The schema designer (``dbwatch advise --section schema``): design findings from the schema designer's
collector (:class:`~dbwatch.model.facts.schema_design.SchemaDesignFacts`), each with the evidence it was
derived from and, where there is something to run, the statement, its lock and its risk.

A statement is offered only when the collector checked it against the data: ``MissingForeignKey`` offers
``ADD CONSTRAINT ... NOT VALID`` + ``VALIDATE CONSTRAINT`` only at zero orphan rows (it lists the orphans'
query otherwise), ``ColumnNeverNull`` offers ``SET NOT NULL`` only when a scan found no NULL, UUID-as-text
offers ``TYPE uuid`` only when every value parses. docs/architecture-advice.md, "Schema design", lists each
finding, its evidence and thresholds.
"""

from __future__ import annotations

from typing import Any, Iterable

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.schema_design import ColumnRef, SchemaDesignFacts
from dbwatch.rules.advice_common import quote_ident, quote_literal, recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.schema_design_mongo import mongo_findings
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules", "SchemaDesign"]

_REWRITE = ("ACCESS EXCLUSIVE for a full table rewrite: reads and writes wait until it commits; needs the table's "
            "size again in free disk")
_COPY = "a table copy (ALGORITHM=COPY): writes wait until it finishes; needs the table's size again in free disk"
_NOT_VALID = ("SHARE ROW EXCLUSIVE, brief, for ADD ... NOT VALID (no scan); VALIDATE takes SHARE UPDATE EXCLUSIVE "
              "and scans while reads and writes go on")


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [SchemaDesign()]


def _t(schema: str, table: str, engine: str) -> str:
    if engine == "mysql":
        return f"`{schema}`.`{table}`"
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def _c(name: str, engine: str) -> str:
    return f"`{name}`" if engine == "mysql" else quote_ident(name)


def _key_growth(view: TargetView) -> dict[str, float]:
    """Values a day each key's sequence advanced, from the oldest to the newest snapshot that show it."""
    history = [s for s in view.history_with(SchemaDesignFacts) if s.ok and s.has(SchemaDesignFacts)]
    if len(history) < 2:
        return {}
    newest = history[-1]
    latest = {k.sequence: k.last_value for k in newest.need(SchemaDesignFacts).key_overflow}
    out: dict[str, float] = {}
    for old in history[:-1]:
        elapsed = newest.started_at - old.started_at
        for k in old.need(SchemaDesignFacts).key_overflow:
            if k.sequence in latest and k.sequence not in out and elapsed > 0 and latest[k.sequence] > k.last_value:
                out[k.sequence] = (latest[k.sequence] - k.last_value) / elapsed * 86400
    return out


class SchemaDesign:
    name = "SchemaDesign"
    engines = ("postgres", "mysql", "mongodb")

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        facts = view.fact(SchemaDesignFacts)
        if facts is None:
            return []
        out: list[Finding] = []
        engine = facts.engine
        if engine == "mongodb":
            def add_mongo(rule: str, severity: Severity, summary: str, description: str, labels: dict[str, str],
                          evidence: dict[str, Any], sql: str | None, lock: str, risk: str, impact: float) -> None:
                out.append(recommend(rule, view, severity, summary, description, labels,
                                     {**evidence, "lock": lock if sql else "none (nothing to run)",
                                      "risk": risk if sql else "low"}, sql, impact))
            mongo_findings(facts, add_mongo)
            return out
        rewrite = _REWRITE if engine == "postgres" else _COPY

        def add(rule: str, severity: Severity, summary: str, description: str, ref: ColumnRef | None,
                table: str, evidence: dict[str, Any], sql: str | None, lock: str, risk: str, impact: float) -> None:
            labels = {"table": table, **({"column": ref.column} if ref else {})}
            base: dict[str, Any] = {"database": facts.database, "table": table}
            if ref is not None:
                base.update({"column": ref.column, "data_type": ref.data_type, "table_rows": ref.rows})
            out.append(recommend(rule, view, severity, summary, description, labels,
                                 {**base, **evidence, "lock": lock if sql else "none (nothing to run)",
                                  "risk": risk if sql else "low"}, sql, impact))

        sql: str | None
        for g in facts.missing_fks:
            c = g.column
            table, col = _t(c.schema, c.table, engine), _c(c.column, engine)
            ref = _t(g.ref_schema, g.ref_table, engine)
            name = _c(f"{c.table}_{c.column}_fkey"[:63], engine)
            orphan_query = (f"SELECT c.* FROM {table} c WHERE c.{col} IS NOT NULL AND NOT EXISTS "
                            f"(SELECT 1 FROM {ref} r WHERE r.{_c(g.ref_column, engine)} = c.{col}) LIMIT 100;")
            if g.orphans == 0 and engine == "postgres":
                sql, lock, risk = (f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({col}) REFERENCES "
                                   f"{ref} ({quote_ident(g.ref_column)}) NOT VALID;\n"
                                   f"ALTER TABLE {table} VALIDATE CONSTRAINT {name};"), _NOT_VALID, "low"
            elif g.orphans == 0:  # INPLACE needs foreign_key_checks off: the rows were checked, no orphans
                sql, lock, risk = (f"SET SESSION foreign_key_checks = 0;\nALTER TABLE {table} ADD CONSTRAINT {name} "
                                   f"FOREIGN KEY ({col}) REFERENCES {ref} (`{g.ref_column}`), ALGORITHM=INPLACE, "
                                   "LOCK=NONE;\nSET SESSION foreign_key_checks = 1;"), (
                    "online DDL: reads and writes go on (a brief metadata lock at the start and the end); rows "
                    "written between the orphan count and the ALTER are not checked"), "medium"
            else:
                sql, lock, risk = orphan_query, "none (read only)", "low"
            checked = ("no row lacks its parent, so the constraint validates" if g.orphans == 0 else
                       f"{g.orphans} row(s) have no parent: the query lists them; fix or delete them first"
                       if g.orphans else f"the table is over {facts.check_rows_limit} rows, so the orphans were "
                       "not counted: the query lists them")
            add("MissingForeignKey", Severity.INFO, f"{table}.{c.column} names {ref} but has no foreign key",
                f"{c.column} holds {ref}.{g.ref_column} values by its name and type, and nothing keeps them valid: a "
                f"deleted parent leaves orphans and the planner cannot use the relationship. {checked.capitalize()}."
                " NOT VALID adds the constraint without a scan; VALIDATE then checks the existing rows without "
                "blocking writes. Wrong when the column names something outside this database.",
                c, table, {"references": f"{ref}.{g.ref_column}", "orphans": g.orphans}, sql, lock, risk,
                0.3 if g.orphans == 0 else 0.15)

        for n in facts.never_null:
            c = n.column
            table, col = _t(c.schema, c.table, engine), _c(c.column, engine)
            check = _c(f"{c.table}_{c.column}_not_null"[:63], engine)
            if engine == "mysql":
                sql = f"ALTER TABLE {table} MODIFY {col} {c.data_type} NOT NULL;" if n.checked and c.plain else None
                lock, seen = ("a table copy (COPY algorithm or INPLACE with a rebuild): writes wait on MySQL < 8.0 "
                              "and MariaDB", f"A scan of the table ({c.rows} rows) found no NULL in {c.column}")
            else:
                sql = (f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID;\n"
                       f"ALTER TABLE {table} VALIDATE CONSTRAINT {check};\n"
                       f"ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;  -- PostgreSQL 12+: no scan, the "
                       f"valid CHECK proves it\nALTER TABLE {table} DROP CONSTRAINT {check};") if n.checked else None
                lock = ("SHARE ROW EXCLUSIVE, brief, for the NOT VALID CHECK; VALIDATE scans under SHARE UPDATE "
                        "EXCLUSIVE (writes go on); SET NOT NULL and DROP CONSTRAINT take ACCESS EXCLUSIVE briefly "
                        "(no scan)")
                seen = (f"pg_stats saw no NULL in {c.column} on an analyzed table of {c.rows} rows"
                        + (", and a scan of the table found none" if n.checked else
                           ", and the table was too large to scan"))
            add("ColumnNeverNull", Severity.INFO, f"{table}.{c.column} is nullable but holds no NULL",
                seen
                + ". If the application never writes NULL, NOT NULL documents it, lets the planner rely on it and "
                "stops the first bad write. Wrong when NULL means something the application just has not needed yet.",
                c, table, {"checked": n.checked}, sql, lock, "low" if engine == "postgres" else "high", 0.1)

        for money in facts.float_money:
            c = money.column
            table, col = _t(c.schema, c.table, engine), _c(c.column, engine)
            if engine == "postgres":  # numeric without a scale keeps every value as the float prints it
                sql = f"ALTER TABLE {table} ALTER COLUMN {col} TYPE numeric USING {col}::numeric;"
            else:  # DECIMAL needs a scale: offered only when a scan found no value it would round
                sql = (f"ALTER TABLE {table} MODIFY {col} DECIMAL(14,2){'' if c.nullable else ' NOT NULL'};"
                       if c.plain and money.lossy == 0 else None)
            add("FloatForMoney", Severity.WARNING, f"{table}.{c.column} stores money as {c.data_type}",
                f"{c.data_type} is binary floating point: 0.1 + 0.2 <> 0.3, sums drift by cents and equality on "
                "amounts fails. numeric/DECIMAL stores amounts exactly (or store integer cents). "
                + ("The conversion keeps every value as it prints; give it the currency's scale once the values are "
                   "clean. " if engine == "postgres" else
                   "DECIMAL(14,2) is offered only when a scan found no value with more decimals or beyond its range. "
                   if money.lossy == 0 else f"{money.lossy} value(s) have more than two decimals or exceed "
                   "DECIMAL(14,2), so no conversion is offered. " if money.lossy else
                   "The table was too large to check every value, so no conversion is offered. ")
                + "Wrong when the column is a ratio or a measurement and only named like money.", c, table,
                {"lossy_values": money.lossy}, sql, rewrite, "high", 0.3)

        for c in facts.naive_timestamps:
            table, col = _t(c.schema, c.table, engine), _c(c.column, engine)
            sql = (f"SET timezone = 'UTC';  -- the zone the application wrote the values in\n"
                   f"ALTER TABLE {table} ALTER COLUMN {col} TYPE timestamptz;") if engine == "postgres" else None
            add("TimestampWithoutTimeZone", Severity.INFO,
                f"{table}.{c.column} is timestamp without time zone but names an instant",
                f"{c.column} records when something happened, and timestamp without time zone forgets the zone it "
                "was written in: servers or sessions in another zone, and daylight saving, shift it silently. "
                "timestamptz stores the instant (UTC) and shows it in each session's zone. The conversion reads the "
                "existing values in the session's timezone: set it to the zone they were written in. Wrong for a "
                "wall-clock time with no zone (an opening hour, a birthday).", c, table, {}, sql,
                "ACCESS EXCLUSIVE; PostgreSQL 12+ skips the rewrite only when the session timezone is UTC",
                "high", 0.1)

        for j in facts.json_columns:
            table, col = _t(j.schema, j.table, engine), _c(j.column, engine)
            add("SchemaJsonNotJsonb", Severity.INFO, f"{table}.{j.column} is json, not jsonb",
                "json keeps the text as written and re-parses it on every access; jsonb is parsed once, is indexable "
                "(GIN) and compares by value. Keep json only when key order, duplicate keys or exact whitespace must "
                "survive.", j, table, {}, f"ALTER TABLE {table} ALTER COLUMN {col} TYPE jsonb USING {col}::jsonb;",
                _REWRITE, "high", 0.1)

        for u in facts.text_uuids:
            c = u.column
            table, col = _t(c.schema, c.table, engine), _c(c.column, engine)
            if u.bad != 0:
                sql = None
            elif engine == "postgres":
                sql = f"ALTER TABLE {table} ALTER COLUMN {col} TYPE uuid USING {col}::uuid;"
            elif facts.native_uuid and c.plain:  # MariaDB 10.7+: the UUID type converts the text itself
                sql = f"ALTER TABLE {table} MODIFY {col} UUID{'' if c.nullable else ' NOT NULL'};"
            else:  # MySQL: BINARY(16) needs UUID_TO_BIN in a new column; a MODIFY would truncate the text
                sql = None
            add("SchemaUuidAsText", Severity.INFO, f"{table}.{c.column} stores UUIDs as {c.data_type}",
                f"Every sampled value of {c.column} is a UUID"
                + (" and a scan found no other" if u.bad == 0 else
                   f"; {u.bad} value(s) in the table are not, so no conversion is offered" if u.bad else
                   "; the table was too large to scan every value")
                + ". As text a UUID takes 37 bytes and more in every index, compares as a string and accepts any "
                "text; uuid takes 16 bytes and rejects malformed values."
                + ("" if engine == "postgres" or facts.native_uuid else " On MySQL, add a BINARY(16) column filled "
                   "with UUID_TO_BIN(), then swap it in."), c, table, {"bad_values": u.bad}, sql, rewrite, "high", 0.1)

        for lc in facts.low_cardinality:
            c = lc.column
            table, col = _t(c.schema, c.table, engine), _c(c.column, engine)
            check = _c(f"{c.table}_{c.column}_values"[:63], engine)
            values = ", ".join(quote_literal(v) for v in lc.values)
            sql = (f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({col} IN ({values})) NOT VALID;\n"
                   f"ALTER TABLE {table} VALIDATE CONSTRAINT {check};  -- fails, changing nothing, if a value "
                   "outside the sample exists") if engine == "postgres" else None
            add("SchemaLowCardinalityText", Severity.INFO,
                f"{table}.{c.column} holds {len(lc.values)} distinct values as free text",
                f"The statistics say {c.column} takes only {', '.join(lc.values)} (covering {lc.covered:.1%} of "
                f"{c.rows} rows): a status or category kept as text accepts typos and repeats the string in every "
                "row. A lookup table with a foreign key (or an enum, or at least a CHECK) keeps the set closed. "
                "Wrong when the set is meant to grow freely.", c, table,
                {"values": list(lc.values), "covered": lc.covered}, sql, _NOT_VALID, "low", 0.05)

        for d in facts.delimited:
            c = d.column
            table = _t(c.schema, c.table, engine)
            add("SchemaDelimitedList", Severity.INFO, f"{table}.{c.column} stores lists joined by {d.delimiter!r}",
                f"{d.share:.0%} of the sampled values of {c.column} are lists ({', '.join(d.samples[:3])}): one value "
                "cannot be indexed, joined or constrained, and finding rows with one item scans with LIKE. A child "
                "table (one row per item) or an array column with a GIN index is the relational form. Wrong when "
                "the text is only ever shown, never searched.", c, table,
                {"delimiter": d.delimiter, "share": d.share, "samples": list(d.samples)}, None, "", "low", 0.1)

        for e in facts.eav_tables:
            table = _t(e.schema, e.table, engine)
            add("SchemaEntityAttributeValue", Severity.INFO,
                f"{table} is an entity-attribute-value table ({e.entity}, {e.attribute}, {e.value})",
                f"Each attribute of an entity is a row: reading one entity takes a pivot, types and constraints are "
                f"lost (every value is one type), and the planner cannot estimate. Frequently used attributes belong "
                f"in columns; truly open-ended ones in a jsonb column with a GIN index. Wrong for rarely read, "
                "genuinely sparse metadata.", None, table,
                {"entity": e.entity, "attribute": e.attribute, "value": e.value, "table_rows": e.rows},
                None, "", "low", 0.1)

        growth = _key_growth(view)
        for k in facts.key_overflow:
            c = k.column
            table, col = _t(c.schema, c.table, engine), _c(c.column, engine)
            per_day = growth.get(k.sequence)
            days_left = (k.max_value - k.last_value) / per_day if per_day else None
            soon = days_left is not None and days_left < 90
            severity = Severity.WARNING if k.used >= 0.8 or soon else Severity.INFO
            pace = (f" At the observed {per_day:.0f} a day it runs out in {days_left:.0f} days." if days_left
                    is not None else " No growth observed yet (one reading, or none since the last).")
            add("SchemaKeyOverflow", severity,
                f"{table}.{c.column} ({c.data_type}) has used {k.used:.0%} of its range"
                + (f", about {days_left:.0f} days left" if days_left is not None else ""),
                f"The sequence {k.sequence} is at {k.last_value} of {c.data_type}'s {k.max_value}: when it reaches "
                f"the end every insert fails.{pace} Move to bigint before then; on a large table do it online (a new "
                "bigint column filled in batches, then swapped) rather than with the rewrite below. Referencing "
                "columns need the same change.", c, table,
                {"sequence": k.sequence, "last_value": k.last_value, "max_value": k.max_value,
                 "used": round(k.used, 4), "per_day": round(per_day, 3) if per_day else None,
                 "days_left": round(days_left, 1) if days_left is not None else None},
                f"ALTER TABLE {table} ALTER COLUMN {col} TYPE bigint;" if engine == "postgres"
                else f"ALTER TABLE {table} MODIFY {col} BIGINT{' UNSIGNED' if 'unsigned' in c.data_type else ''} "
                "NOT NULL AUTO_INCREMENT;" if c.plain else None,
                rewrite, "high", min(1.0, 0.2 + 0.6 * k.used + (0.2 if soon else 0.0)))

        for m in facts.collation_mixes:
            c, r = m.column, m.ref
            table = _t(c.schema, c.table, engine)
            charset = m.ref_collation.split("_")[0]
            add("SchemaCollationMix", Severity.WARNING,
                f"{table}.{c.column} ({m.collation}) joins {r.table}.{r.column} ({m.ref_collation})",
                f"The columns are joined ({'a declared foreign key' if m.declared_fk else 'by their names'}) but "
                "their character sets or collations differ: every row is converted for the comparison and the index "
                "on one side cannot be used, so the join scans. Give both the same collation.", c, table,
                {"collation": m.collation, "references": f"{r.table}.{r.column}", "ref_collation": m.ref_collation,
                 "declared_fk": m.declared_fk},
                f"ALTER TABLE {table} MODIFY `{c.column}` {c.data_type} CHARACTER SET {charset} COLLATE "
                f"{m.ref_collation};", "a table copy (COPY algorithm): writes wait for it", "high", 0.2)
        return out
