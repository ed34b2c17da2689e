"""Index candidates for the PostgreSQL advisor: which indexes are worth costing for each statement.

pglast (through :mod:`dbwatch.sqlshape`) says which columns a statement filters, joins and sorts on; the
catalog (pg_stats) says how selective each is. Candidates are single- and two-column shapes, equality
columns first with the more selective leading (null fraction for ``IS [NOT] NULL``, non-null rows over
distinct values for ``=``), then a range, join or ORDER BY column; never one an existing valid b-tree index
already leads with. The costing (:mod:`pg_advisor_costing`) then compares the column orders with HypoPG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbwatch.collectors import pg_advisor_sql as sql
from dbwatch.collectors.pg_advisor_hygiene import Table
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model.facts.pg_advisor import StatementCost
from dbwatch.sqlshape import ColumnUse, StatementUses, TableRef

__all__ = ["Candidate", "Statement", "candidates_by_statement", "existing_keys", "reference"]

_Known = dict[str, tuple[str, float | None, float | None]]  # column -> (quoted, n_distinct, null_frac)


@dataclass(slots=True)
class Statement:
    """A statement to cost: pg_stat_statements' normalised text (``$n``) or a slow-log sample."""

    queryid: int
    text: str
    calls: int
    total_ms: float
    share: float
    parsed: StatementUses[TableRef]
    literal: bool = False  # literals only: EXPLAINed as it is (custom plan), not PREPAREd
    source: str = "pg_stat_statements"

    def cost(self, before: float, after: float | None) -> StatementCost:
        folded = " ".join(self.text.split())
        return StatementCost(queryid=self.queryid, query=folded[:299] + "…" if len(folded) > 300 else folded,
                             calls=self.calls, total_time_seconds=self.total_ms / 1000, time_share=self.share,
                             cost_before=before, cost_after=after, source=self.source)


@dataclass(frozen=True, slots=True)
class Candidate:
    table: Table
    columns: tuple[str, ...]  # as named in the catalog
    quoted: tuple[str, ...]
    reason: str
    #: what the statement does with each column: "=", "null" (IS [NOT] NULL), "range", "order" or "join"
    kinds: tuple[str, ...] = ()

    @property
    def ddl(self) -> str:
        return f"CREATE INDEX ON {self.table.qualified} ({', '.join(self.quoted)})"

    def reordered(self, order: tuple[int, ...], reason: str) -> "Candidate":
        return Candidate(self.table, tuple(self.columns[i] for i in order), tuple(self.quoted[i] for i in order),
                         reason, tuple(self.kinds[i] for i in order) if self.kinds else ())

    def plausible(self, order: tuple[int, ...]) -> bool:
        """Whether another order of the columns is worth costing: a column tested by IS [NOT] NULL keeps its
        place by null fraction (the planner's correlation of its non-null values says nothing of the NULL
        rows, so its cost would mislead); the other columns may move."""
        if not self.kinds:
            return True
        for new_i, i in enumerate(order):
            for j in order[new_i + 1:]:
                if "null" in (self.kinds[i], self.kinds[j]) and i > j:
                    return False
        return True


def existing_keys(indexes: list[dict[str, Any]]) -> dict[int, list[tuple[str, ...]]]:
    """The key columns of every valid, plain (not partial) b-tree index, per table oid."""
    out: dict[int, list[tuple[str, ...]]] = {}
    for index in indexes:
        if index["is_valid"] and index["method"] == "btree" and not index["predicate"]:
            out.setdefault(index["table_oid"], []).append(tuple(index["columns"][:index["key_count"]]))
    return out


async def candidates_by_statement(session: PostgresSession, statements: list[Statement], tables: dict[int, Table],
                                  existing: dict[int, list[tuple[str, ...]]], min_table_rows: int, limit: int
                                  ) -> dict[int, list[Candidate]]:
    """Each statement's candidates (queryid -> at most ``limit``, in preference order), on tables of at least
    ``min_table_rows`` rows."""
    if not statements:
        return {}
    refs = sorted({reference(ref) for s in statements for ref in s.parsed.tables})
    oids = {r["name"]: r["oid"] for r in await session.run(sql.RESOLVE, refs)}
    wanted = sorted({oid for oid in oids.values() if oid in tables and tables[oid].rows >= min_table_rows})
    columns: dict[int, _Known] = {}
    if wanted:
        for row in await session.run(sql.COLUMNS, wanted):
            columns.setdefault(row["oid"], {})[row["name"]] = (row["quoted"], row["n_distinct"], row["null_frac"])
    out: dict[int, list[Candidate]] = {}
    for statement in statements:
        uses: dict[int, ColumnUse] = {}
        for ref, use in statement.parsed.tables.items():
            oid = oids.get(reference(ref))
            if oid in columns:
                uses.setdefault(oid, ColumnUse()).merge(use)
        for refs_, kind, column in statement.parsed.unqualified:
            owners = [oids[reference(t)] for t in refs_ if reference(t) in oids]
            owners = [o for o in owners if o in columns and column in columns[o]]
            if len(owners) == 1:
                uses.setdefault(owners[0], ColumnUse()).add(kind, column)
        found: list[Candidate] = []
        for oid, use in uses.items():
            found.extend(_for_table(tables[oid], use, columns[oid], existing.get(oid, [])))
        out[statement.queryid] = found[:limit]
    return out


def _for_table(table: Table, use: ColumnUse, known: _Known, existing: list[tuple[str, ...]]) -> list[Candidate]:
    def matched(column: str) -> float:
        """The share of rows the column's test keeps (pg_stats; 1 when unknown): the null fraction for
        IS NULL, the rest for IS NOT NULL, the non-null rows over the distinct values for =."""
        _, n, null_frac = known[column]
        nulls = null_frac or 0.0
        if column in use.null:
            return nulls if null_frac is not None else 1.0
        if column in use.not_null:
            return 1.0 - nulls
        distinct = 0.0 if n is None else (-n * table.rows if n < 0 else n)
        return (1.0 - nulls) / distinct if distinct > 0 else 1.0

    eq = sorted((c for c in use.equality if c in known), key=matched)
    rng = [c for c in use.range if c in known and c not in eq]
    join = [c for c in use.join if c in known and c not in eq]
    order = [c for c in use.order if c in known and c not in eq]
    shapes: list[tuple[tuple[str, ...], str]] = []
    for lead in eq[:3]:  # two columns: equality first, the more selective equality leading
        for second in [c for c in eq[:3] if matched(c) >= matched(lead) and c != lead][:1]:
            shapes.append(((lead, second), f"equality on {lead} and {second}"))
        for second in rng[:2]:
            shapes.append(((lead, second), f"equality on {lead}, range on {second}"))
        for second in order[:1]:
            shapes.append(((lead, second), f"equality on {lead}, ORDER BY {second}"))
    shapes += [((c,), f"equality on {c}") for c in eq[:3]]
    shapes += [((c,), f"join on {c}") for c in join[:2]]
    shapes += [((c,), f"range on {c}") for c in rng[:2]]
    shapes += [((c,), f"ORDER BY {c}") for c in order[:1] if c not in rng]
    out, seen = [], set()
    for columns, reason in shapes:
        if columns in seen or any(keys[:len(columns)] == columns for keys in existing):
            continue
        seen.add(columns)
        kinds = tuple("null" if c in use.null or c in use.not_null else "=" if c in eq else "range" if c in rng
                      else "order" if c in order else "join" for c in columns)
        out.append(Candidate(table, columns, tuple(known[c][0] for c in columns), reason, kinds))
    return out


def reference(ref: TableRef) -> str:
    """A table reference as SQL text (quoted exactly), for to_regclass() under the session's search_path."""
    schema, name = ref
    quoted = '"' + name.replace('"', '""') + '"'
    return f'"{schema.replace(chr(34), chr(34) * 2)}".{quoted}' if schema else quoted
