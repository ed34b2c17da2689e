"""Schema hints the catalog supports (the audit collector's :class:`~dbwatch.model.facts.audit.SchemaFacts`),
labelled as hints: the catalog shows the shape, not the intent, so each says what it saw and what it would
usually mean.

- ``SchemaWideTable``: a table of more columns than the collector's ``wide_table_columns`` (50).
- ``SchemaRepeatedColumns``: ``phone1, phone2, phone3``: a repeating group that wants a child table.
- ``SchemaTypedAsText``: a column named like a timestamp stored as text, or an amount stored as text or
  floating point (rounding errors on money; left to the schema designer's ``FloatForMoney`` when its
  collector ran too).
- ``SchemaJsonWithoutGin``: a JSON column filtered by key (``->>``, ``->``, ``@>``, ``?`` in
  pg_stat_statements) with no GIN or expression index on it.
"""

from __future__ import annotations

from typing import Any, Iterable

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.audit import SchemaFacts
from dbwatch.model.facts.schema_design import SchemaDesignFacts
from dbwatch.rules.advice_common import quote_ident, recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules"]


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [SchemaHints()]


def _table(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


class SchemaHints:
    name = "SchemaHint"
    engines = ("postgres",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        facts = view.fact(SchemaFacts)
        if facts is None:
            return []
        out = []
        # The schema designer (rules/schema_design.py) says FloatForMoney for a float amount, with its statement.
        designed = view.fact(SchemaDesignFacts) is not None

        def hint(kind: str, summary: str, description: str, table: str, column: str, evidence: dict[str, Any],
                 sql: str | None, impact: float) -> None:
            out.append(recommend(
                f"Schema{kind}", view, Severity.INFO, f"Hint: {summary}", description,
                {"table": table, **({"column": column} if column else {})},
                {"hint": True, "database": facts.database, "table": table, **evidence}, sql, impact))

        for t in facts.wide_tables:
            name = _table(t.schema, t.table)
            hint("WideTable", f"{name} has {t.columns} columns", "Very wide rows make every read fetch columns the "
                 "query does not need, and often mean several entities share one table; consider splitting rarely "
                 "used or optional columns into a 1:1 side table.", name, "", {"columns": t.columns}, None, 0.05)
        for r in facts.repeated_columns:
            name = _table(r.schema, r.table)
            hint("RepeatedColumns", f"{name} repeats a column group {r.stem}: {', '.join(r.columns)}",
                 "Numbered columns are a repeating group: queries must OR over each, and a fourth value needs a "
                 "schema change. A child table with one row per value is the relational form.", name, r.stem,
                 {"columns": list(r.columns)},
                 f"CREATE TABLE {quote_ident(r.table + '_' + r.stem)} (\n  {quote_ident(r.table)}_id bigint "
                 f"NOT NULL,  -- references {name}'s key\n  position int NOT NULL,\n  value text,\n"
                 f"  PRIMARY KEY ({quote_ident(r.table)}_id, position)\n);", 0.05)
        for c in facts.typed_columns:
            if designed and c.kind == "amount" and c.data_type in ("real", "double precision"):
                continue
            name, col = _table(c.schema, c.table), quote_ident(c.column)
            if c.kind == "timestamp":
                target, why = "timestamptz", ("a timestamp stored as text cannot be compared, ranged or indexed as "
                                              "time, and accepts any string")
            else:
                target, why = "numeric(12,2)", (f"an amount stored as {c.data_type} "
                                                + ("rounds (0.1 + 0.2 <> 0.3)" if "double" in c.data_type
                                                   or c.data_type == "real" else "cannot be summed or checked"))
            hint("TypedAsText", f"{name}.{c.column} is {c.data_type}; its name says {c.kind}", f"{why.capitalize()}.",
                 name, c.column, {"column": c.column, "data_type": c.data_type, "kind": c.kind},
                 f"ALTER TABLE {name} ALTER COLUMN {col} TYPE {target} USING {col}::{target};", 0.1)
        for j in facts.json_columns:
            if j.gin_indexed or j.filtering_statements == 0:
                continue
            name, col = _table(j.schema, j.table), quote_ident(j.column)
            sql = (f"CREATE INDEX CONCURRENTLY ON {name} USING gin ({col});" if j.data_type == "jsonb" else
                   f"ALTER TABLE {name} ALTER COLUMN {col} TYPE jsonb;  -- json has no GIN operator class\n"
                   f"CREATE INDEX CONCURRENTLY ON {name} USING gin ({col});")
            hint("JsonWithoutGin", f"{name}.{j.column} ({j.data_type}) is filtered by key without a GIN index",
                 f"{j.filtering_statements} statement(s) in pg_stat_statements filter {j.column} by key, and no GIN "
                 f"or expression index covers it, so each scans {name} ({j.table_rows} rows). A GIN index serves @>, "
                 f"? and ?|; for ->> equality on one key an expression index on ({col}->>'key') is smaller.",
                 name, j.column, {"column": j.column, "data_type": j.data_type,
                                  "filtering_statements": j.filtering_statements, "table_rows": j.table_rows},
                 sql, 0.2)
        return out
