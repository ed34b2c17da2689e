"""The metric families the cassandra collector can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, I, MetricSpec

TITLE = 'Cassandra'
ENGINES: tuple[str, ...] = ('cassandra',)
INTRO = """\
Thread pools and caches carry instaclustr cassandra-exporter's names (`cassandra_thread_pool_*` by `pool`,
`cassandra_cache_*` by `cache`), the ones its dashboards and the awesome-prometheus-alerts Cassandra rules
query; `dbwatch_cassandra_*` are dbwatch's own. Everything is as the watched node sees it (Cassandra's virtual
tables are local to each node); what needs which version, and how the collector is tested (a CQL
wire-protocol test server, not a real Cassandra): [Cassandra](cassandra.md).
"""
NOTES = ""

_T = ('keyspace', 'table')
FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_cassandra_up', G, 'Whether the last collection could reach the node (1 = yes).',
               (), 'cassandra'),
    MetricSpec('dbwatch_cassandra_node_info', I,
               "The node's release version, cluster name (`cassandra_cluster`: `cluster` is dbwatch's target "
               'label), datacenter and rack (system.local; always 1).',
               ('release_version', 'cassandra_cluster', 'datacenter', 'rack'), 'cassandra'),
    MetricSpec('dbwatch_cassandra_peers', G, 'Other nodes of the cluster this node knows (system.peers_v2).',
               (), 'cassandra'),
    MetricSpec('dbwatch_cassandra_peer_up', G,
               "Whether a peer is up as this node's gossip sees it (system_views.gossip_info, Cassandra 4.1+): 0 "
               'when its STATUS is shutdown/left or its heartbeat has not moved for `down_after_seconds`.',
               ('peer', 'datacenter', 'rack'), 'cassandra'),
    MetricSpec('dbwatch_cassandra_peers_down', G, "Peers this node's gossip sees down (Cassandra 4.1+).",
               (), 'cassandra'),
    MetricSpec('cassandra_thread_pool_active_tasks', G, 'Tasks the pool is running (system_views.thread_pools).',
               ('pool',), 'cassandra'),
    MetricSpec('cassandra_thread_pool_pending_tasks', G, 'Tasks queued for the pool.', ('pool',), 'cassandra'),
    MetricSpec('cassandra_thread_pool_blocked_tasks', G, "Tasks blocked now because the pool's queue is full.",
               ('pool',), 'cassandra'),
    MetricSpec('cassandra_thread_pool_blocked_tasks_total', C, 'Tasks ever blocked by a full queue.',
               ('pool',), 'cassandra'),
    MetricSpec('cassandra_thread_pool_completed_tasks_total', C, 'Tasks the pool has completed.',
               ('pool',), 'cassandra'),
    MetricSpec('cassandra_cache_entries', G,
               'Entries in the cache (`keys`, `rows`, `counters`, `chunks`; system_views.caches).',
               ('cache',), 'cassandra'),
    MetricSpec('cassandra_cache_estimated_size_bytes', G, 'Bytes the cache holds.', ('cache',), 'cassandra'),
    MetricSpec('cassandra_cache_capacity_bytes', G, "The cache's capacity in bytes.", ('cache',), 'cassandra'),
    MetricSpec('cassandra_cache_hits_total', C, 'Cache hits since the node started.', ('cache',), 'cassandra'),
    MetricSpec('cassandra_cache_requests_total', C, 'Cache requests since the node started.',
               ('cache',), 'cassandra'),
    MetricSpec('dbwatch_cassandra_cache_hit_ratio', G, 'Hits over requests since the node started.',
               ('cache',), 'cassandra'),
    MetricSpec('dbwatch_cassandra_clients', G,
               'Native-protocol client connections by user and driver (system_views.clients).',
               ('username', 'driver_name'), 'cassandra'),
    MetricSpec('dbwatch_cassandra_pending_compactions', G,
               "Compactions queued for a compaction thread (the CompactionExecutor pool's pending tasks).",
               (), 'cassandra'),
    MetricSpec('dbwatch_cassandra_sstable_tasks', G,
               'Running SSTable tasks (compaction, cleanup, ...) by kind (system_views.sstable_tasks).',
               ('kind',), 'cassandra'),
    MetricSpec('dbwatch_cassandra_table_disk_usage_bytes', G,
               "The table's live SSTables on disk (system_views.disk_usage, MiB precision); user tables only, "
               'the `max_tables` (200) largest.', _T, 'cassandra'),
    MetricSpec('dbwatch_cassandra_table_max_partition_bytes', G,
               "The table's largest partition (system_views.max_partition_size, MiB precision).", _T, 'cassandra'),
    MetricSpec('dbwatch_cassandra_table_tombstones_per_read_p99', G,
               'Tombstones a read of the table scans, 99th percentile (system_views.tombstones_per_read).',
               _T, 'cassandra'),
    MetricSpec('dbwatch_cassandra_table_tombstones_per_read_max', G, 'Tombstones the worst read of the table scanned.',
               _T, 'cassandra'),
    MetricSpec('dbwatch_cassandra_table_coordinator_latency_seconds', G,
               "Coordinator latency of the table's reads and writes, quantiles 0.5 and 0.99 "
               '(system_views.coordinator_read_latency / coordinator_write_latency).',
               (*_T, 'operation', 'quantile'), 'cassandra'),
    MetricSpec('dbwatch_cassandra_table_coordinator_requests_total', C,
               'Reads and writes of the table this node coordinated.', (*_T, 'operation'), 'cassandra'),
    MetricSpec('dbwatch_cassandra_dropped_messages_total', C,
               'Internode messages dropped, by peer: `expired` before they were processed (inbound) or sent '
               '(outbound), or `overload` of the outbound queue (system_views.internode_inbound/outbound).',
               ('peer', 'direction', 'reason'), 'cassandra'),
)
