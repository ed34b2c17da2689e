"""The index plan as a whole: every recommended index together, their total size and their overlaps.

One finding per target (``PgIndexPlan``, ``MySQLIndexPlan``) once at least two indexes are recommended, or one
that is shared: what applying every ``CREATE INDEX`` of the report adds up to (HypoPG's size estimate per
index on PostgreSQL; MySQL/MariaDB have no hypothetical indexes, so the size there is estimated from the
table's average row length and the index's share of its columns, labelled so), and the redundancy across
recommendations:

- ``shared``: an index serving more than one thing (several statements, a foreign key, the statements of a
  narrower candidate through its leading columns): one index where two recommendations were;
- ``left_out``: a candidate that is a left prefix of another recommended one (the wider one serves it): not
  in the plan, so its size is not counted;
- ``replaces``: existing indexes a recommended one leads with, to drop once the new one is in use.

Its ``sql`` is the plan's statements in order, each as offered by its own finding (lock and risk are those of
the worst one: ``CREATE INDEX CONCURRENTLY`` / online DDL, low). Impact is tiny: the plan summarises the
index findings, it is not more work on top of them.
"""

from __future__ import annotations

from typing import Any, Iterable

from dbwatch.model import Finding, FindingKind, Severity
from dbwatch.model.facts.common import FactList
from dbwatch.model.facts.mysql_advisor import MySQLAdviceSettings, MySQLIndexCandidates
from dbwatch.model.facts.pg_advisor import AdviceSettings, IndexCandidates, IndexKeysList, UnindexedForeignKeys
from dbwatch.rules.engine import TargetView
from dbwatch.rules.indexes import _serves, _size, recommended, wider_prefix

__all__ = ["IndexPlanRule", "MySQLIndexPlanRule"]

PLAN_IMPACT = 0.001


class IndexPlanRule:
    name = "PgIndexPlan"
    engines: tuple[str, ...] = ("postgres",)
    fact: type[FactList[Any]] = IndexCandidates
    settings_fact: type = AdviceSettings

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        plan = recommended(view, self.fact, view.fact(self.settings_fact))
        if not plan:
            return []
        kept = [c for c in plan if not any(wider_prefix(c, o) for o in plan)]
        left_out = [{"index": _name(c), "served_by": _name(o)} for c in plan for o in kept if wider_prefix(c, o)]
        fks = list(view.fact(UnindexedForeignKeys) or ()) if self.engines == ("postgres",) else []
        existing = list(view.fact(IndexKeysList) or ()) if self.engines == ("postgres",) else []
        rows, shared, replaces, total, unknown = [], [], [], 0, 0
        for c in kept:
            serves = [fk.constraint for fk in fks if (fk.schema, fk.table) == (c.schema, c.table)
                      and _serves(c.columns, fk)]
            prefixes = [_name(o) for o in plan if wider_prefix(o, c)]
            narrower = [f"{i.schema}.{i.name}" for i in existing
                        if (i.schema, i.table) == (c.schema, c.table) and i.valid and not i.enforces
                        and i.method == "btree" and not i.predicate and not i.expressions
                        and len(i.columns) < len(c.columns) and tuple(c.columns[:len(i.columns)]) == tuple(i.columns)]
            size, estimated = self.size(c)
            if size is None:
                unknown += 1
            else:
                total += size
            row = {"index": _name(c), "size_bytes": size, "size_source": estimated,
                   "statements": [s.queryid for s in c.statements], "serves_foreign_keys": serves,
                   "serves_candidates": prefixes, "replaces": narrower, "sql": c.create_sql}
            rows.append(row)
            if len(c.statements) > 1 or serves or prefixes:
                shared.append(row["index"])
            replaces.extend(narrower)
        if len(rows) < 2 and not shared and not left_out:
            return []  # one index serving one statement: its own finding says it all
        known = "" if not unknown else f" ({unknown} of unknown size)"
        said = [f"{len(rows)} index(es), about {_size(total)} in total{known}"]
        if shared:
            said.append(f"{len(shared)} serve more than one statement, foreign key or narrower candidate "
                        f"({', '.join(shared)})")
        if left_out:
            said.append(f"{len(left_out)} candidate(s) left out as a left prefix of another "
                        f"({', '.join(x['index'] + ' → ' + x['served_by'] for x in left_out)})")
        if replaces:
            said.append(f"{len(replaces)} existing index(es) to drop once the wider one is in use ({', '.join(replaces)})")
        evidence = {"indexes": rows, "total_size_bytes": total, "unknown_sizes": unknown, "shared": shared,
                    "left_out": left_out, "replaces": replaces,
                    "time_share": round(sum(c.time_share for c in kept), 4),
                    "sql": "\n".join(r["sql"] for r in rows), "impact": PLAN_IMPACT}
        return [Finding(
            rule=self.name, target=view.target, kind=FindingKind.RECOMMENDATION, severity=Severity.INFO,
            summary=f"Index plan: {'; '.join(said)}",
            description=("Every recommended index together, as one plan: no index in it is a left prefix of another "
                         "recommended or existing one (the wider one serves those lookups), an index leading with an "
                         "unindexed foreign key's columns serves the key too, and the sizes add up to what applying "
                         "the whole plan costs in disk and cache. Apply the indexes one at a time, busiest first, "
                         "and check the plans between them."),
            labels=dict(view.labels), evidence=evidence, value=PLAN_IMPACT)]

    def size(self, c: Any) -> tuple[int | None, str]:
        """The index's size and where it comes from."""
        size = getattr(c, "size_bytes", None)
        return (int(size), "hypopg") if size else (None, "unknown")


class MySQLIndexPlanRule(IndexPlanRule):
    name = "MySQLIndexPlan"
    engines = ("mysql",)
    fact = MySQLIndexCandidates
    settings_fact = MySQLAdviceSettings

    def size(self, c: Any) -> tuple[int | None, str]:
        # No hypothetical indexes: a secondary InnoDB index holds its columns and the primary key, roughly a
        # column's share of the row each; estimated as rows × (16 bytes per column + 16 of key and overhead).
        if c.table_rows <= 0:
            return None, "unknown"
        return int(c.table_rows * (16 * len(c.columns) + 16) * 1.3), "estimate"


def _name(c: Any) -> str:
    return f"{c.schema}.{c.table} ({', '.join(c.columns)})"
