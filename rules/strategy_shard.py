"""ShardKeyCandidate: a large table whose hot statements nearly all filter on one column by equality, with the
column's cardinality and skew from pg_stats; on MySQL/MariaDB from index statistics or MariaDB's
mysql.column_stats, where the skew may be unknown (docs/architecture-advice.md)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from dbwatch.model import Finding
from dbwatch.model.facts.workload_profile import WorkloadProfile
from dbwatch.rules.engine import TargetView
from dbwatch.rules.strategy_common import StrategyRule, growth_per_day, human_bytes, strategy_finding
from dbwatch.rules.strategy_mysql import shard_action

__all__ = ["ShardKeyRule"]

MIN_DISTINCT = 1000  # keys enough to spread over many shards and move between them
MAX_TOP_SHARE = 0.1  # the most common value's share of rows: above it, one shard gets the hot key


class ShardKeyRule(StrategyRule):
    name = "ShardKeyCandidate"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        min_bytes = profile.threshold("shard_min_table_bytes", 10 * 1024**3)
        min_share = profile.threshold("shard_min_filter_share", 0.8)
        for t in profile.tables:
            if t.size_bytes < min_bytes or not t.column_stats:
                continue
            naming = [s for s in profile if t.table.lower() in s.tables and s.kind != "other"]
            calls = sum(s.calls for s in naming)
            if not calls:
                continue
            by_column: dict[str, int] = defaultdict(int)
            for s in naming:
                if s.key_column:
                    by_column[s.key_column] += s.calls
            column, filtered = max(by_column.items(), key=lambda kv: kv[1], default=("", 0))
            share = filtered / calls
            stats = next((st for st in t.column_stats if st[0] == column), None)
            if share < min_share or stats is None:
                continue
            _, distinct, top = stats
            keys = abs(distinct) * t.rows if distinct < 0 else distinct
            if keys < MIN_DISTINCT:
                continue
            skewed = None if top is None else top > MAX_TOP_SHARE
            mysql = view.engine == "mysql"
            growth = growth_per_day(t, profile)
            evidence = {"table": t.name, "column": column, "filter_call_share": round(share, 4), "calls": calls,
                        "distinct_values": round(keys), "top_value_share": None if top is None else round(top, 4),
                        "skewed": skewed, "table_bytes": t.size_bytes, "rows": t.rows,
                        "growth_bytes_per_day": round(growth) if growth else None,
                        "statements": [{"query": s.query, "calls": s.calls, "key": s.key_column}
                                       for s in sorted(naming, key=lambda s: -s.calls)[:5]]}
            yield strategy_finding(
                self.name, view, f"{t.name}: {share:.0%} of its calls filter on {column}: the shard key if it "
                f"outgrows one server",
                observed=f"{human_bytes(t.size_bytes)}, {t.rows} rows"
                + (f", growing about {human_bytes(growth)}/day" if growth else "")
                + f"; {filtered} of {calls} calls naming it compare {column} for equality; {column} has about "
                f"{keys:.0f} distinct values, " + (
                    "its skew unknown: the catalog keeps no share of the most common value (MariaDB does in a "
                    "JSON_HB histogram: SET histogram_type = JSON_HB, then ANALYZE TABLE ... PERSISTENT FOR "
                    f"COLUMNS ({column}) INDEXES (), a full scan of the table)." if top is None else
                    f"the most common in {'at most ' if mysql else ''}{top:.1%} of rows."),
                action=shard_action(column) if mysql else
                f"when one server no longer holds it: hash-partition by {column} first (declarative "
                f"partitioning, same server), then distribute by it (Citus create_distributed_table('{t.name}', "
                f"'{column}'), or application-level shards keyed by {column}); co-locate the tables joined on it.",
                cost="statements that do not filter on the key fan out to every shard; cross-shard transactions "
                "and unique constraints without the key are lost or costly; a shard migration is a project.",
                wrong_when="the table still fits one server with room (partitioning or archiving is enough), or "
                + ("the key is skewed: its most common value would make one hot shard." if skewed else
                   "one value of the key is far more common than the rest (a hot shard): check before choosing it."
                   if skewed is None else "the statements seen are not the ones that will grow."),
                confidence=0.45 if skewed else 0.5 if skewed is None else 0.65,
                labels={"table": t.name, "column": column}, evidence=evidence, impact=min(0.3, t.size_bytes / 2**40))
