"""The metric families the MongoDB collectors (mongodb, profiler, indexstats) can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.collectors.mongodb_compat import compat_specs
from dbwatch.collectors.mongodb_status_more import SPECS as MORE_STATUS
from dbwatch.model.catalog import C, G, I, MetricSpec

TITLE = 'MongoDB'
ENGINES: tuple[str, ...] = ('mongodb',)
INTRO = """\
Names are percona mongodb_exporter's where it has the metric (serverStatus flattened to `mongodb_ss_*`,
replSetGetStatus to `mongodb_rs_*` with `member_idx`, the oplog timestamps of its compatible mode,
`mongodb_indexstats_accesses_ops`); `dbwatch_mongodb_*` are dbwatch's own. How the MongoDB collectors are
tested (a wire-protocol server replaying documented responses, not a real `mongod`):
[configuration](configuration.md#mongodb).
"""
NOTES = ""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('mongodb_up', G,
               'Whether the last collection could reach the server (1 = yes).',
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_instance_info', I,
               "The server's version, process (mongod, mongos), replica set and role (primary, secondary, "
               'standalone, arbiter, mongos, other; always 1).',
               ('version', 'process', 'replset', 'role'), 'mongodb'),
    MetricSpec('mongodb_ss_uptime', G,
               'Seconds since the server started.',
               (), 'mongodb'),
    MetricSpec('mongodb_ss_connections', G,
               'serverStatus connections: `current`, `available`, `totalCreated`, `active`, ...',
               ('conn_type',), 'mongodb'),
    MetricSpec('dbwatch_mongodb_connections_used_ratio', G,
               'current / (current + available).',
               (), 'mongodb'),
    MetricSpec('mongodb_ss_opcounters', C,
               'Operations (insert, query, update, delete, getmore, command) since start; replicated ones '
               'applied.',
               ('legacy_op_type',), 'mongodb'),
    MetricSpec('mongodb_ss_opcountersRepl', C,
               'Operations (insert, query, update, delete, getmore, command) since start; replicated ones '
               'applied.',
               ('legacy_op_type',), 'mongodb'),
    MetricSpec('mongodb_ss_asserts', C,
               'Asserts raised (regular, warning, msg, user, tripwire, rollovers).',
               ('assert_type',), 'mongodb'),
    MetricSpec('mongodb_ss_extra_info_page_faults', C,
               'Page faults since start.',
               (), 'mongodb'),
    MetricSpec('mongodb_ss_globalLock_currentQueue', G,
               'Operations queued for a lock (total, readers, writers).',
               ('count_type',), 'mongodb'),
    MetricSpec('mongodb_ss_wt_cache_bytes_currently_in_the_cache', G,
               'Bytes in the WiredTiger cache.',
               (), 'mongodb'),
    MetricSpec('mongodb_ss_wt_cache_maximum_bytes_configured', G,
               'Size of the WiredTiger cache.',
               (), 'mongodb'),
    MetricSpec('mongodb_ss_wt_cache_tracked_dirty_bytes_in_the_cache', G,
               'Modified bytes in the cache.',
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_wt_cache_used_ratio', G,
               'Cache bytes in use / modified over its size.',
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_wt_cache_dirty_ratio', G,
               'Cache bytes in use / modified over its size.',
               (), 'mongodb'),
    MetricSpec('mongodb_rs_myState', G,
               "This member's state (1 PRIMARY, 2 SECONDARY, ...); absent on a standalone.",
               (), 'mongodb'),
    MetricSpec('mongodb_rs_members_health', G,
               "Each member up (1) or down (0) as this member's heartbeats see it; `member_state` is its "
               '`stateStr`, e.g. `(not reachable/healthy)`.',
               ('member_idx', 'member_state'), 'mongodb'),
    MetricSpec('mongodb_rs_members_state', G,
               "Each member's state number (8 DOWN for an unreachable one).",
               ('member_idx', 'member_state'), 'mongodb'),
    MetricSpec('mongodb_rs_members_optimeDate', G,
               "Each reachable member's last applied operation (milliseconds since the epoch).",
               ('member_idx', 'member_state'), 'mongodb'),
    MetricSpec('dbwatch_mongodb_replication_lag_seconds', G,
               "Per healthy secondary: the primary's optimeDate minus its own. `MongoReplicaLagging` reads it.",
               ('member',), 'mongodb'),
    MetricSpec('dbwatch_mongodb_replset_has_primary', G,
               'Whether this member sees a healthy PRIMARY (1 = yes).',
               (), 'mongodb'),
    MetricSpec('mongodb_mongod_replset_oplog_head_timestamp', G,
               'Time of the newest and the oldest oplog entry (Unix time).',
               (), 'mongodb'),
    MetricSpec('mongodb_mongod_replset_oplog_tail_timestamp', G,
               'Time of the newest and the oldest oplog entry (Unix time).',
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_oplog_window_seconds', G,
               'Their difference: how long a secondary may be cut off and still catch up without a resync.',
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_active_operations', G,
               "Active operations (`$currentOp`, dbwatch's own skipped).",
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_long_operations', G,
               'Those running at least `long_op_seconds`.',
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_oldest_operation_seconds', G,
               'Age of the longest-running one (0 when none runs).',
               (), 'mongodb'),
    MetricSpec('dbwatch_mongodb_slow_ops_total', C,
               "Profiler entries seen since dbwatch started, each once, by namespace, operation and the plan's "
               'first stage (`COLLSCAN`, `IXSCAN`, ...); at most `max_series` series, later ones sum into '
               '`ns="other"`.',
               ('ns', 'op', 'plan'), 'profiler'),
    MetricSpec('dbwatch_mongodb_slow_ops_seconds_total', C,
               'Their duration.',
               ('ns', 'op', 'plan'), 'profiler'),
    MetricSpec('dbwatch_mongodb_slow_ops_docs_examined_total', C,
               'Documents and index keys they examined.',
               ('ns', 'op', 'plan'), 'profiler'),
    MetricSpec('dbwatch_mongodb_slow_ops_keys_examined_total', C,
               'Documents and index keys they examined.',
               ('ns', 'op', 'plan'), 'profiler'),
    MetricSpec('dbwatch_mongodb_profiling_level', G,
               "The database's profiling level (0 off, 1 slow operations, 2 all).",
               ('database',), 'profiler'),
    MetricSpec('mongodb_indexstats_accesses_ops', C,
               'Uses of each index since `accesses.since` (a restart resets it).',
               ('database', 'collection', 'key_name'), 'indexstats'),
) + MORE_STATUS
FAMILIES += compat_specs(FAMILIES)
