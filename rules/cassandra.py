"""Cassandra advice: tables whose reads scan many tombstones, and tables with partitions that are too large.

The rules read the cassandra collector's facts (:mod:`dbwatch.model.facts.cassandra`): the per-table
histograms of the node's virtual tables (``system_views.tombstones_per_read``, ``max_partition_size``,
Cassandra 4.0+) and the thresholds in its ``system_views.settings``. They never touch a connection.

Both are data-model problems, and no single statement fixes either: the findings offer no statement
(``sql`` is None), only what was measured and what to change. A ``gc_grace_seconds`` lower than the
interval between repairs brings deleted data back, and a compaction strategy change rewrites every SSTable
of the table, so neither is offered blindly; docs/cassandra.md#advice says what the virtual tables cannot
show (which partition key, which query).
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.cassandra import CassandraSettings, CassandraTables, CassandraTableStats
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["LargePartitionRule", "TombstoneHeavyReadsRule", "make_rules"]

#: reads the tombstone histogram must have counted before a table is judged (a few reads prove nothing)
MIN_READS = 100
#: a table is advised on when its 99th percentile scans this share of tombstone_warn_threshold
P99_SHARE = 0.1
MIB = 1024 * 1024


def make_rules(config: RulesConfig) -> list[Any]:
    return [TombstoneHeavyReadsRule(), LargePartitionRule()]


def _mib(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


class _CassandraRule:
    name = ""
    engines: tuple[str, ...] = ("cassandra",)

    def evaluate(self, view: TargetView) -> list[Finding]:
        settings = view.fact(CassandraSettings)
        tables = view.fact(CassandraTables)
        if settings is None or not tables:
            return []
        return [f for t in tables if (f := self.one(view, t, settings)) is not None]

    def one(self, view: TargetView, t: CassandraTableStats, settings: CassandraSettings) -> Finding | None:
        raise NotImplementedError


class TombstoneHeavyReadsRule(_CassandraRule):
    """Reads of a table that scan many tombstones: deletes, TTLs or null writes in the partitions read."""

    name = "CassandraTombstoneHeavyReads"

    def one(self, view: TargetView, t: CassandraTableStats, settings: CassandraSettings) -> Finding | None:
        p99, worst = t.tombstones_per_read_p99, t.tombstones_per_read_max
        warn = settings.tombstone_warn_threshold
        if p99 is None or (t.reads or 0) < MIN_READS or warn <= 0:
            return None
        if p99 < warn * P99_SHARE and (worst or 0) < warn:
            return None
        severity = Severity.WARNING if (worst or 0) >= warn or p99 >= warn / 2 else Severity.INFO
        return recommend(
            self.name, view, severity,
            f"Reads of {t.qualified} scan {p99:,.0f} tombstones at the 99th percentile (worst {worst or 0:,.0f}; "
            f"Cassandra warns at {warn:,})",
            f"Every read of {t.qualified} that touches deleted or expired cells must skip their tombstones: "
            f"{p99:,.0f} per read at the 99th percentile over {t.reads:,} reads, {worst or 0:,.0f} at worst "
            f"(system_views.tombstones_per_read). Past tombstone_warn_threshold ({warn:,}) the node logs a warning "
            f"per query; past tombstone_failure_threshold ({settings.tombstone_failure_threshold:,}) it aborts the "
            f"read. Usual causes: a table used as a queue (rows deleted as they are consumed, then read again), "
            f"range deletes or TTLs in partitions that are read as a whole, and prepared statements binding null "
            f"(each null written is a tombstone; leave the value unset instead). Remedies are in the data model: "
            f"time-bucketed partition keys so reads skip old buckets, TimeWindowCompactionStrategy for data that "
            f"only expires by TTL, and regular repairs so tombstones older than gc_grace_seconds can be purged. "
            f"Do not lower gc_grace_seconds below the interval between repairs: deleted data would come back.",
            {"keyspace": t.keyspace, "table": t.table},
            {"keyspace": t.keyspace, "table": t.table, "tombstones_per_read_p99": p99,
             "tombstones_per_read_max": worst, "reads": t.reads, "tombstone_warn_threshold": warn,
             "tombstone_failure_threshold": settings.tombstone_failure_threshold,
             "lock": "none (no statement is offered: the fix is a data-model change)", "risk": "none"},
            None, min(0.5, 0.05 + 0.4 * p99 / warn))


class LargePartitionRule(_CassandraRule):
    """A table whose largest partition is past the size Cassandra warns about."""

    name = "CassandraLargePartition"

    def one(self, view: TargetView, t: CassandraTableStats, settings: CassandraSettings) -> Finding | None:
        limit = settings.large_partition_warning_bytes
        if t.max_partition_bytes is None or limit <= 0 or t.max_partition_bytes < limit:
            return None
        ratio = t.max_partition_bytes / limit
        return recommend(
            self.name, view, Severity.WARNING if ratio >= 2 else Severity.INFO,
            f"The largest partition of {t.qualified} is {_mib(t.max_partition_bytes)}, past the {_mib(limit)} "
            f"Cassandra warns about",
            f"One partition of {t.qualified} holds {_mib(t.max_partition_bytes)} (system_views.max_partition_size; "
            f"compaction_large_partition_warning_threshold is {_mib(limit)}). A partition lives on one set of "
            f"replicas and is compacted, repaired and streamed as a unit: large ones cause heap pressure and long "
            f"GC pauses during compaction and repair, hot spots on their replicas, and slow reads of the whole "
            f"partition. The node's system.log names the partition key (\"Writing large partition ...\" during "
            f"compaction); nodetool tablehistograms shows how sizes are spread. The fix is a partition key with "
            f"an added bucket (a time window, a hash of another column) so no partition grows without bound; that "
            f"is a new table and a migration of the data, not an ALTER.",
            {"keyspace": t.keyspace, "table": t.table},
            {"keyspace": t.keyspace, "table": t.table, "max_partition_bytes": t.max_partition_bytes,
             "warning_threshold_bytes": limit, "disk_bytes": t.disk_bytes,
             "lock": "none (no statement is offered: the fix is a new partition key)", "risk": "none"},
            None, min(0.5, 0.1 * ratio))
