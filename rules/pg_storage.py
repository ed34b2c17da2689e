"""Storage recommendations for PostgreSQL: table and index bloat, BRIN and partitioning candidates.

The rules read the facts collectors/pg_advisor_storage.py produces (:mod:`dbwatch.model.facts.pg_storage`)
and never touch a connection. Every finding is a ``recommendation`` whose evidence holds the numbers, ``sql``
and ``impact`` (0..1, for ranking). Bloat figures are statistical *estimates* (``evidence.estimate: true``);
partitioning is a *hint* (``evidence.hint: true``) with a sketch, not a migration.

Severity: ``warning`` for bloat of at least half the relation and 1 GiB wasted, ``info`` otherwise.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.pg_storage import (
    BrinCandidates, IndexBloats, PartitionCandidates, StorageSettings, TableBloats,
)
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.indexes import _AdvisorRule, _pct, _size
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules"]

GIB = 1024**3
DEFAULT_MIN_RATIO = 0.3
WARNING_RATIO, WARNING_BYTES = 0.5, GIB


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [TableBloatRule(), IndexBloatRule(), BrinCandidateRule(), PartitionCandidateRule()]


class _StorageRule(_AdvisorRule):
    settings_fact = StorageSettings


def _statements(rows: Any) -> list[dict[str, Any]]:
    return [{"queryid": s.queryid, "query": s.query, "calls": s.calls, "time_share": round(s.time_share, 4)}
            for s in rows]


class _BloatRule(_StorageRule):
    def bloated(self, row: Any, settings: Any) -> Severity | None:
        if row.ratio < getattr(settings, "bloat_min_ratio", DEFAULT_MIN_RATIO):
            return None
        return Severity.WARNING if row.ratio >= WARNING_RATIO and row.wasted_bytes >= WARNING_BYTES else Severity.INFO


class TableBloatRule(_BloatRule):
    name = "PgTableBloat"
    fact = TableBloats

    def judge(self, view: TargetView, t: Any, settings: Any) -> Finding | None:
        severity = self.bloated(t, settings)
        if severity is None:
            return None
        table = f"{t.schema}.{t.table}"
        return recommend(
            self.name, view, severity,
            f"Table {table} is an estimated {_pct(t.ratio)} bloat: about {_size(t.wasted_bytes)} of "
            f"{_size(t.size_bytes)} (estimate)",
            f"From the catalog statistics ({t.rows} rows, their average width in pg_stats, fill factor "
            f"{t.fillfactor}), {table} would fit in about {_size(t.expected_bytes)}; the rest is dead or free "
            f"space that VACUUM can reuse but not give back. This is an estimate (pgstattuple gives the exact "
            f"figure but reads the whole table). VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock; "
            f"pg_repack does it online. Find the cause too (long transactions, mass deletes, autovacuum lagging).",
            {"table": table},
            {"estimate": True, "table": table, "size_bytes": t.size_bytes, "expected_bytes": t.expected_bytes,
             "wasted_bytes": t.wasted_bytes, "ratio": round(t.ratio, 4), "rows": t.rows, "fillfactor": t.fillfactor},
            t.sql, min(0.5, 0.02 + t.ratio * min(1.0, t.wasted_bytes / (10 * GIB))))


class IndexBloatRule(_BloatRule):
    name = "PgIndexBloat"
    fact = IndexBloats

    def judge(self, view: TargetView, i: Any, settings: Any) -> Finding | None:
        severity = self.bloated(i, settings)
        if severity is None:
            return None
        index = f"{i.schema}.{i.index}"
        return recommend(
            self.name, view, severity,
            f"Index {index} is an estimated {_pct(i.ratio)} bloat: about {_size(i.wasted_bytes)} of "
            f"{_size(i.size_bytes)} (estimate)",
            f"{i.definition}: {i.rows} entries of the average width in pg_stats would fill about "
            f"{_size(i.expected_bytes)} at fill factor {i.fillfactor}. This is an estimate (pgstattuple's "
            f"pgstatindex is exact but reads the whole index; b-tree deduplication makes indexes on repeated "
            f"values smaller than estimated). REINDEX CONCURRENTLY rebuilds it without blocking writes.",
            {"index": index},
            {"estimate": True, "table": f"{i.schema}.{i.table}", "index": index, "definition": i.definition,
             "size_bytes": i.size_bytes, "expected_bytes": i.expected_bytes, "wasted_bytes": i.wasted_bytes,
             "ratio": round(i.ratio, 4), "rows": i.rows, "fillfactor": i.fillfactor},
            i.sql, min(0.5, 0.02 + i.ratio * min(1.0, i.wasted_bytes / (10 * GIB))))


class BrinCandidateRule(_StorageRule):
    name = "PgBrinCandidate"
    fact = BrinCandidates

    def judge(self, view: TargetView, b: Any, settings: Any) -> Finding | None:
        table = f"{b.schema}.{b.table}"
        if b.btree_index:
            versus = (f"It could replace the b-tree {b.btree_index} ({_size(b.btree_size_bytes)}) once the plans "
                      f"are checked (a BRIN index suits ranges, not single-row lookups).")
        else:
            versus = f"A b-tree on {b.column} would take about {_size(b.btree_size_bytes)} (estimate)."
        return recommend(
            self.name, view, Severity.INFO,
            f"BRIN index on {table} ({b.column}): {_size(b.table_size_bytes)}, append-mostly, correlation "
            f"{b.correlation:.2f}",
            f"{table} is filtered by ranges of {b.column} in {len(b.statements)} statement(s); its rows are stored "
            f"in {b.column} order (pg_stats correlation {b.correlation:.3f}) and it is append-mostly "
            f"({b.updates_deletes} updates/deletes against {b.inserts} inserts), so a BRIN index of about "
            f"{_size(b.brin_size_bytes)} (estimate) skips the block ranges outside the filter. {versus}",
            {"table": table, "column": b.column},
            {"table": table, "column": b.column, "correlation": round(b.correlation, 4),
             "table_size_bytes": b.table_size_bytes, "rows": b.rows, "inserts": b.inserts,
             "updates_deletes": b.updates_deletes, "btree_index": b.btree_index,
             "btree_size_bytes": b.btree_size_bytes, "btree_estimated": b.btree_index is None,
             "brin_size_bytes": b.brin_size_bytes, "statements": _statements(b.statements),
             "time_share": round(sum(s.time_share for s in b.statements), 4)},
            b.sql, min(0.3, 0.02 + sum(s.time_share for s in b.statements) * 0.3))


class PartitionCandidateRule(_StorageRule):
    name = "PgPartitionCandidate"
    fact = PartitionCandidates

    def judge(self, view: TargetView, p: Any, settings: Any) -> Finding | None:
        table = f"{p.schema}.{p.table}"
        return recommend(
            self.name, view, Severity.INFO,
            f"Hint: partition {table} ({_size(p.size_bytes)}) by range of {p.column}",
            f"{table} is {_size(p.size_bytes)} and not partitioned, and {len(p.statements)} statement(s) filter it by "
            f"a range of {p.column} ({p.column_type}). Monthly range partitions let those statements skip old "
            f"months (partition pruning) and make retention a DROP of a partition instead of a mass DELETE. A "
            f"hint, not a plan: the SQL is a sketch; keys must include {p.column}, and the move needs rehearsal.",
            {"table": table, "column": p.column},
            {"hint": True, "table": table, "column": p.column, "column_type": p.column_type,
             "size_bytes": p.size_bytes, "rows": p.rows, "statements": _statements(p.statements),
             "time_share": round(sum(s.time_share for s in p.statements), 4)},
            p.sql, min(0.2, 0.01 + sum(s.time_share for s in p.statements) * 0.1))
