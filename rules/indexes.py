"""Index recommendations: candidates costed by the advisor, and index hygiene.

The rules read the advisor's facts by type (:mod:`dbwatch.model.facts.pg_advisor`, put by
collectors/pg_advisor.py) and never touch a connection. An advisor of another engine that leaves facts of the
same shape reuses a rule by subclassing it with its own ``name``, ``engines`` and fact types. Every finding
is a ``recommendation`` (never paged) whose evidence holds the numbers behind it, ``sql`` (the exact statement to apply) and ``impact``: a rough
0..1 score that ranks recommendations of different kinds in a report (for a costed index: the share of all
statement time it would save).

Severity: ``warning`` when acting on it clearly pays (an index saving at least 5 % of all statement time,
a duplicate index, an invalid index, a large unindexed foreign key whose parent sees deletes, a sequence
past 80 % of its range), ``info`` otherwise.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from dbwatch.model import Finding, FindingKind, Severity
from dbwatch.model.facts.common import FactList
from dbwatch.model.facts.pg_advisor import (
    AdviceSettings, IndexCandidates, IndexKeysList, InvalidIndexes, RedundantIndexes, Sequences, TablesWithoutPrimaryKey,
    UnindexedForeignKeys, UnusedIndexes,
)
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules"]

GIB = 1024**3
SAVING_WARNING = 0.05  # share of all statement time
HEURISTIC_WEIGHT = 0.5  # an uncosted candidate is assumed to save half its statements' time, for ranking only
FK_ROWS_WARNING = 100_000
DEFAULT_FK_MIN_ROWS, DEFAULT_FK_MIN_BYTES = 10_000, 64 * 1024**2  # the advisor's fk_min_rows / fk_min_bytes
SEQUENCE_INFO, SEQUENCE_WARNING = 0.5, 0.8
DEFAULT_MIN_COST_REDUCTION = 0.5
DEFAULT_MIN_SAVING_SHARE = 0.02  # the advisor's min_saving_share
DEFAULT_UNUSED_MIN_AGE = 7 * 86400.0


def make_rules(config: RulesConfig) -> list[PythonRule]:
    from dbwatch.rules.index_plan import IndexPlanRule  # it builds on this module's rules

    return [IndexCandidateRule(), UnusedIndexRule(), RedundantIndexRule(), InvalidIndexRule(),
            ForeignKeyWithoutIndexRule(), TableWithoutPrimaryKeyRule(), SequenceNearMaxRule(), IndexPlanRule()]


class _AdvisorRule:
    name = ""
    engines: tuple[str, ...] = ("postgres",)
    #: the list fact judged row by row, and the settings fact judged with (both None while the advisor,
    #: an optional collector, is not configured or has not run yet)
    fact: type[FactList[Any]] = FactList
    settings_fact: type = AdviceSettings

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        rows = view.fact(self.fact)
        if not rows:
            return []
        settings = view.fact(self.settings_fact)
        return [f for row in rows if (f := self.judge(view, row, settings)) is not None]

    def judge(self, view: TargetView, row: Any, settings: Any) -> Finding | None:
        raise NotImplementedError

    def finding(self, view: TargetView, severity: Severity, summary: str, description: str,
                labels: Mapping[str, str], evidence: Mapping[str, Any], sql: str | None, impact: float) -> Finding:
        return Finding(
            rule=self.name, target=view.target, kind=FindingKind.RECOMMENDATION, severity=severity,
            summary=summary, description=description, labels={**view.labels, **labels},
            evidence={**evidence, "sql": sql, "impact": round(impact, 6)}, value=round(impact, 6),
        )


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def recommended(view: TargetView, fact: type[FactList[Any]], settings: Any) -> list[Any]:
    """The index candidates IndexCandidateRule recommends (costed ones only past min_cost_reduction)."""
    minimum = getattr(settings, "min_cost_reduction", DEFAULT_MIN_COST_REDUCTION)
    saving = getattr(settings, "min_saving_share", DEFAULT_MIN_SAVING_SHARE)
    return [c for c in view.fact(fact) or () if c.method != "hypopg"
            or (max((s.cost_reduction or 0 for s in c.statements), default=0) >= minimum
                and (c.estimated_saving_share or 0.0) >= saving)]


def wider_prefix(narrow: Any, wide: Any) -> bool:
    """``narrow`` is a left prefix of ``wide``, another candidate on the same table."""
    return ((narrow.schema, narrow.table) == (wide.schema, wide.table) and len(narrow.columns) < len(wide.columns)
            and tuple(wide.columns[:len(narrow.columns)]) == tuple(narrow.columns))


def _serves(columns: tuple[str, ...], fk: Any) -> bool:
    """An index on ``columns`` serves the foreign key: it leads with the key's columns, in any order."""
    return set(columns[:len(fk.columns)]) == set(fk.columns)


class IndexCandidateRule(_AdvisorRule):
    name = "PgIndexCandidate"
    fact: type[FactList[Any]] = IndexCandidates

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        postgres = self.engines == ("postgres",)
        self._foreign_keys = list(view.fact(UnindexedForeignKeys) or ()) if postgres else []
        self._indexes = list(view.fact(IndexKeysList) or ()) if postgres else []
        return super().evaluate(view)

    def judge(self, view: TargetView, c: Any, settings: Any) -> Finding | None:
        table = f"{c.schema}.{c.table}"
        # One index plan: a candidate that is a left prefix of another recommended one on its table is served
        # by that one's leading columns; it is said there (covers_prefix_of), not offered as a second index.
        plan = recommended(view, self.fact, settings)
        if any(wider_prefix(c, other) for other in plan):
            return None
        covered = [{"columns": list(o.columns), "queryids": [s.queryid for s in o.statements]}
                   for o in plan if wider_prefix(o, c)]
        # One index plan: a candidate leading with an unindexed foreign key's columns serves the key too (the
        # foreign-key rule then stays silent), said here rather than as a second, narrower index.
        serves = [fk.constraint for fk in getattr(self, "_foreign_keys", ())
                  if (fk.schema, fk.table) == (c.schema, c.table) and _serves(c.columns, fk)]
        # ... and an existing plain index it leads with becomes a prefix of it: dropped after, not kept twice.
        narrower = [f"{i.schema}.{i.name}" for i in getattr(self, "_indexes", ())
                    if (i.schema, i.table) == (c.schema, c.table) and i.valid and not i.enforces
                    and i.method == "btree" and not i.predicate and not i.expressions
                    and len(i.columns) < len(c.columns) and tuple(c.columns[:len(i.columns)]) == tuple(i.columns)]
        statements = [
            {"queryid": s.queryid, "query": s.query, "calls": s.calls, "time_share": round(s.time_share, 4),
             "total_time_seconds": round(s.total_time_seconds, 6), "mean_ms": _mean_ms(s),
             "cost_before": s.cost_before, "cost_after": s.cost_after,
             "cost_reduction": None if s.cost_reduction is None else round(s.cost_reduction, 4),
             "source": getattr(s, "source", "pg_stat_statements")}
            for s in c.statements]
        main = max(c.statements, key=lambda s: s.time_share)
        evidence = {
            "method": c.method, "table": table, "columns": list(c.columns), "reason": c.reason,
            "calls": sum(s.calls for s in c.statements), "mean_ms": _mean_ms(main),
            "cost_before": main.cost_before, "cost_after": main.cost_after,
            "cost_reduction": None if main.cost_reduction is None else round(main.cost_reduction, 4),
            "statements": statements, "time_share": round(c.time_share, 4),
            "source": getattr(c, "source", "pg_stat_statements"),
            "table_rows": c.table_rows, "table_size_bytes": c.table_size_bytes, "writes_total": c.writes_total,
            "writes_per_second": round(c.writes_per_second, 3), "index_count": c.index_count,
            "serves_foreign_keys": serves, "makes_redundant": narrower, "covers_prefix_candidates": covered,
            "size_bytes": getattr(c, "size_bytes", None),
            "column_orders": [{"columns": list(cols), "cost": cost} for cols, cost in getattr(c, "orders", ())],
        }
        penalty = (f"Write penalty: {table} takes {c.writes_per_second:.1f} row writes/s and already has "
                   f"{c.index_count} index(es); every INSERT, and every UPDATE of an indexed column, maintains "
                   f"one more.") + (f" It also serves foreign key {', '.join(serves)} (no separate index needed)."
                                    if serves else "") + (
            f" Once it is built, {', '.join(narrower)} leads it and only costs writes: drop it then "
            f"(DROP INDEX CONCURRENTLY), after checking the plans still use the new index." if narrower else "") + (
            f" It also serves the statements of {len(covered)} narrower candidate(s) through its leading columns "
            f"({'; '.join(', '.join(x['columns']) for x in covered)}): one index, not two." if covered else "")
        orders = list(getattr(c, "orders", ()))
        if len(orders) > 1:  # the chosen order first, then the others, each with its HypoPG cost
            penalty += " Column orders costed with HypoPG: " + "; ".join(
                f"({', '.join(cols)}) {'not used by the plan' if cost is None else f'{cost:.0f}'}"
                for cols, cost in orders) + "."
        if getattr(c, "size_bytes", None):
            penalty += f" Estimated size (HypoPG): {_size(c.size_bytes)}."

        labels = {"table": table, "columns": ",".join(c.columns)}
        if c.method == "hypopg":
            minimum = getattr(settings, "min_cost_reduction", DEFAULT_MIN_COST_REDUCTION)
            saving = c.estimated_saving_share or 0.0
            if (main.cost_reduction is None or max(s.cost_reduction or 0 for s in c.statements) < minimum
                    or saving < getattr(settings, "min_saving_share", DEFAULT_MIN_SAVING_SHARE)):
                return None
            evidence["estimated_saving_share"] = round(saving, 4)
            severity = Severity.WARNING if saving >= SAVING_WARNING else Severity.INFO
            summary = (f"Index {table} ({', '.join(c.columns)}): plan cost {main.cost_before:.0f} → "
                       f"{main.cost_after:.0f} (-{_pct(main.cost_reduction)}) for {len(c.statements)} statement(s) "
                       f"taking {_pct(c.time_share)} of statement time")
            description = (f"A hypothetical index (HypoPG) on {table} ({c.reason}) lowers the planner's cost of the "
                           f"statements below by at least {_pct(minimum)}; if time follows cost it saves about "
                           f"{_pct(saving)} of all statement time. {penalty}")
            return self.finding(view, severity, summary, description, labels, evidence, c.create_sql, saving)
        summary = (f"Heuristic index candidate {table} ({', '.join(c.columns)}): sequential scan with a filter in "
                   f"{len(c.statements)} statement(s) taking {_pct(c.time_share)} of statement time (not costed)")
        description = (f"Not costed: HypoPG is not installed, so this comes from the plan's sequential scan and the "
                       f"statement's predicates ({c.reason}), not from a measured cost reduction. Install HypoPG for "
                       f"costed advice. {penalty}")
        return self.finding(view, Severity.INFO, summary, description, labels, evidence, c.create_sql,
                            c.time_share * HEURISTIC_WEIGHT)


def _mean_ms(statement: Any) -> float:
    """Milliseconds per call of a statement's measured time."""
    return round(1000 * statement.total_time_seconds / statement.calls, 3) if statement.calls else 0.0


def _index_evidence(index: Any) -> dict[str, Any]:
    return {"table": f"{index.schema}.{index.table}", "index": f"{index.schema}.{index.name}",
            "definition": index.definition, "size_bytes": index.size_bytes, "scans": index.scans}


class UnusedIndexRule(_AdvisorRule):
    name = "PgUnusedIndex"
    fact = UnusedIndexes

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        # An index reported as a duplicate or a prefix of another is said once, there.
        self._redundant = {(r.index.schema, r.index.name) for r in view.fact(RedundantIndexes) or ()}
        return super().evaluate(view)

    def judge(self, view: TargetView, u: Any, settings: Any) -> Finding | None:
        min_age = getattr(settings, "unused_index_min_age", DEFAULT_UNUSED_MIN_AGE)
        if u.observed_seconds < min_age or (u.index.schema, u.index.name) in self._redundant:
            return None
        days = u.observed_seconds / 86400
        evidence = {**_index_evidence(u.index), "observed_seconds": round(u.observed_seconds),
                    "table_writes_total": u.table_writes_total}
        fk = getattr(u, "foreign_key", None)
        if fk is not None:
            return self._backs_foreign_key(view, u, fk, days, evidence)
        severity = Severity.WARNING if u.index.size_bytes >= GIB else Severity.INFO
        return self.finding(
            view, severity,
            f"Unused index {u.index.schema}.{u.index.name} ({_size(u.index.size_bytes)}): no scan in {days:.1f} days",
            f"{u.index.definition} has not been scanned since the statistics began {days:.1f} days ago; it costs "
            f"disk, cache and work on every write to {u.index.schema}.{u.index.table} "
            f"({u.table_writes_total} row writes counted). Check the standbys too: scans there are not counted here.",
            {"index": f"{u.index.schema}.{u.index.name}"}, evidence, u.drop_sql,
            0.02 + min(0.3, u.index.size_bytes / (10 * GIB)))


    def _backs_foreign_key(self, view: TargetView, u: Any, fk: str, days: float, evidence: dict[str, Any]
                           ) -> Finding | None:
        # Dropping the only index of a foreign key makes every DELETE on the referenced table scan this one, and
        # the foreign-key rule would ask for it back: never offered as a DROP.
        if u.referenced_deletes_updates:
            return None  # the referenced table sees deletes/updates: the index is doing its job
        return self.finding(
            view, Severity.INFO,
            f"Index {u.index.schema}.{u.index.name} ({_size(u.index.size_bytes)}) is unscanned but backs "
            f"foreign key {fk}: keep it",
            f"{u.index.definition} has not been scanned in {days:.1f} days, but it is the only index serving "
            f"foreign key {fk}: a DELETE on the referenced table (none counted yet) looks rows up through it. "
            f"Keep it unless that table is never deleted from nor its key updated; dropping it would bring back "
            f"a foreign key without an index. Nothing to run.",
            {"index": f"{u.index.schema}.{u.index.name}"},
            {**evidence, "foreign_key": fk, "keep": True}, None, 0.005)


class RedundantIndexRule(_AdvisorRule):
    name = "PgRedundantIndex"
    fact = RedundantIndexes

    def judge(self, view: TargetView, r: Any, settings: Any) -> Finding | None:
        duplicate = r.kind == "duplicate"
        what = "a duplicate of" if duplicate else "a prefix of"
        evidence = {**_index_evidence(r.index), "kind": r.kind,
                    "covered_by": f"{r.covered_by.schema}.{r.covered_by.name}",
                    "covered_by_definition": r.covered_by.definition}
        return self.finding(
            view, Severity.WARNING if duplicate else Severity.INFO,
            f"Index {r.index.schema}.{r.index.name} ({_size(r.index.size_bytes)}) is {what} "
            f"{r.covered_by.schema}.{r.covered_by.name}",
            f"{r.index.definition} is {what} {r.covered_by.definition}; the other index answers the same lookups, "
            f"so this one only costs disk, cache and write work.",
            {"index": f"{r.index.schema}.{r.index.name}"}, evidence, r.drop_sql,
            (0.1 if duplicate else 0.04) + min(0.3, r.index.size_bytes / (10 * GIB)))


class InvalidIndexRule(_AdvisorRule):
    name = "PgInvalidIndex"
    fact = InvalidIndexes

    def judge(self, view: TargetView, i: Any, settings: Any) -> Finding | None:
        if getattr(i, "unique", False):
            return self._unique(view, i)
        return self.finding(
            view, Severity.WARNING,
            f"Invalid index {i.index.schema}.{i.index.name}: never used by queries, still maintained on writes",
            f"{i.index.definition} is marked invalid (a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY that "
            f"failed). The planner ignores it but every write still updates it. Rebuild it, or drop it with "
            f"DROP INDEX CONCURRENTLY and create it again.",
            {"index": f"{i.index.schema}.{i.index.name}"}, _index_evidence(i.index), i.fix_sql, 0.15)


    def _unique(self, view: TargetView, i: Any) -> Finding:
        # Rebuilding a unique index over duplicate keys fails again (REINDEX CONCURRENTLY even leaves a second
        # invalid index): the rebuild is offered only when the advisor saw none, else the query that finds them.
        evidence = {**_index_evidence(i.index), "unique": True, "duplicates": i.duplicates,
                    "duplicates_sql": i.duplicates_sql, "then_sql": i.recreate_sql}
        name = f"{i.index.schema}.{i.index.name}"
        if i.duplicates is False:
            return self.finding(
                view, Severity.WARNING, f"Invalid unique index {name}: uniqueness is not guaranteed",
                f"{i.index.definition} is marked invalid (a failed CREATE/REINDEX CONCURRENTLY); the planner "
                f"ignores it and it may not enforce uniqueness. The table holds no duplicate key now, so drop it "
                f"and build it again concurrently (if the build fails, it leaves one invalid index, not two).",
                {"index": name}, evidence, i.fix_sql, 0.2)
        found = ("holds duplicate keys" if i.duplicates else
                 "could not be checked for duplicate keys within the statement timeout")
        return self.finding(
            view, Severity.WARNING, f"Invalid unique index {name}: its table {found}",
            f"{i.index.definition} is marked invalid, most likely because the rows it covers are not unique. "
            f"Rebuilding it now (REINDEX or a new CREATE UNIQUE INDEX) would fail on the same duplicates and "
            f"REINDEX CONCURRENTLY would leave a second invalid index. Run the query below to list the "
            f"duplicate keys, resolve them with the application's owners, and only then: {i.recreate_sql}",
            {"index": name}, evidence, i.fix_sql, 0.2)


class ForeignKeyWithoutIndexRule(_AdvisorRule):
    name = "PgForeignKeyWithoutIndex"
    fact = UnindexedForeignKeys

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        self._candidates = recommended(view, IndexCandidates, view.fact(AdviceSettings))
        return super().evaluate(view)

    def judge(self, view: TargetView, fk: Any, settings: Any) -> Finding | None:
        table = f"{fk.schema}.{fk.table}"
        if any((c.schema, c.table) == (fk.schema, fk.table) and _serves(c.columns, fk) for c in self._candidates):
            return None  # a recommended index candidate leads with the key: one index, said there
        min_rows = getattr(settings, "fk_min_rows", DEFAULT_FK_MIN_ROWS)
        min_bytes = getattr(settings, "fk_min_bytes", DEFAULT_FK_MIN_BYTES)
        if fk.table_rows < min_rows and fk.table_size_bytes < min_bytes and not fk.referenced_deletes_updates:
            return None  # small, and nothing deletes from the parent: the scan is cheaper than the index
        large = fk.table_rows >= FK_ROWS_WARNING and fk.referenced_deletes_updates > 0
        evidence = {"table": table, "constraint": fk.constraint, "columns": list(fk.columns),
                    "referenced_table": fk.referenced_table, "table_rows": fk.table_rows,
                    "table_size_bytes": fk.table_size_bytes,
                    "referenced_deletes_updates": fk.referenced_deletes_updates}
        return self.finding(
            view, Severity.WARNING if large else Severity.INFO,
            f"Foreign key {fk.constraint} on {table} ({', '.join(fk.columns)}) has no supporting index",
            f"Every DELETE on {fk.referenced_table}, and every UPDATE of its key, looks up {table} by "
            f"({', '.join(fk.columns)}): without an index that is a scan of {fk.table_rows} rows under a lock, "
            f"and joins on the key cannot use an index either ({fk.referenced_deletes_updates} deletes/updates "
            f"of {fk.referenced_table} counted).",
            {"table": table, "constraint": fk.constraint}, evidence, fk.create_sql,
            0.03 + min(0.3, fk.table_rows / 1e7) * (1 if fk.referenced_deletes_updates else 0.3))


class TableWithoutPrimaryKeyRule(_AdvisorRule):
    name = "PgTableWithoutPrimaryKey"
    fact = TablesWithoutPrimaryKey

    def judge(self, view: TargetView, t: Any, settings: Any) -> Finding | None:
        table = f"{t.schema}.{t.table}"
        hint = (f"The unique index {t.unique_index} can become the key." if t.unique_index else
                "Add a key on the natural key columns if the table has one; the SQL adds an identity column "
                "(a table rewrite under an ACCESS EXCLUSIVE lock).")
        return self.finding(
            view, Severity.INFO, f"Table {table} has no primary key ({t.rows} rows)",
            f"Without a primary key, rows cannot be addressed reliably, duplicates go unnoticed, and logical "
            f"replication cannot replicate its UPDATEs and DELETEs. {hint}",
            {"table": table},
            {"table": table, "rows": t.rows, "size_bytes": t.size_bytes, "unique_index": t.unique_index},
            t.sql, 0.01 + min(0.1, t.rows / 1e8))


class SequenceNearMaxRule(_AdvisorRule):
    name = "PgSequenceNearMax"
    fact = Sequences

    def judge(self, view: TargetView, s: Any, settings: Any) -> Finding | None:
        if s.used_ratio < SEQUENCE_INFO:
            return None
        return self.finding(
            view, Severity.WARNING if s.used_ratio >= SEQUENCE_WARNING else Severity.INFO,
            f"Sequence {s.schema}.{s.sequence} of {s.table}.{s.column} ({s.column_type}) has used "
            f"{_pct(s.used_ratio)} of its range",
            f"{s.last_value} of at most {s.max_value}: when it runs out, every INSERT into {s.table} fails. "
            f"Widening an integer column rewrites the table; plan it before it is urgent.",
            {"sequence": f"{s.schema}.{s.sequence}"},
            {"sequence": f"{s.schema}.{s.sequence}", "table": s.table, "column": s.column,
             "column_type": s.column_type, "last_value": s.last_value, "max_value": s.max_value,
             "used_ratio": round(s.used_ratio, 6)},
            s.sql, s.used_ratio)
