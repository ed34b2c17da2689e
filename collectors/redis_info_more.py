"""The rest of redis_exporter's INFO-derived families (issue 13): the fields community dashboards chart beyond
the core ones in redis.py (Percona's Valkey/Redis dashboards: reads/writes processed, client buffers, the
replication backlog and resyncs, I/O threads, allocator and memory breakdown), ``errorstat_*`` as
``redis_errors_total{err}`` and ``INFO latencystats`` as ``redis_latency_percentiles_usec{cmd,quantile}``.

Names, labels and units are those prometheus-redis-exporter 1.45 (Debian bookworm) exposes, checked side by
side in tests/test_compat_community.py. A field the server does not report (older Redis) is no series.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import MetricFamily, MetricType, counter, gauge
from dbwatch.model.catalog import MetricSpec

__all__ = ["SPECS", "more_families"]

G, C = MetricType.GAUGE, MetricType.COUNTER

# (INFO field, redis_exporter's name, type, help, factor to the name's unit)
_FIELDS: tuple[tuple[str, str, MetricType, str, float], ...] = (
    ("process_id", "redis_process_id", G, "Process id of the server.", 1),
    ("io_threads_active", "redis_io_threads_active", G, "Whether the I/O threads are active (1 = yes).", 1),
    ("client_recent_max_input_buffer", "redis_client_recent_max_input_buffer_bytes", G,
     "Largest input buffer among the current clients.", 1),
    ("client_recent_max_output_buffer", "redis_client_recent_max_output_buffer_bytes", G,
     "Largest output buffer among the current clients.", 1),
    ("tracking_clients", "redis_tracking_clients", G, "Clients being tracked (client-side caching).", 1),
    ("clients_in_timeout_table", "redis_clients_in_timeout_table", G, "Clients in the timeout table.", 1),
    ("used_memory_lua", "redis_memory_used_lua_bytes", G, "Memory used by the Lua engine.", 1),
    ("used_memory_scripts", "redis_memory_used_scripts_bytes", G, "Memory used by cached scripts.", 1),
    ("used_memory_overhead", "redis_memory_used_overhead_bytes", G,
     "Memory for the server's internal structures.", 1),
    ("used_memory_startup", "redis_memory_used_startup_bytes", G, "Memory used at startup.", 1),
    ("used_memory_dataset", "redis_memory_used_dataset_bytes", G, "Memory used by the data set.", 1),
    ("number_of_cached_scripts", "redis_number_of_cached_scripts", G, "Cached Lua scripts.", 1),
    ("allocator_allocated", "redis_allocator_allocated_bytes", G, "Bytes allocated by the allocator.", 1),
    ("allocator_active", "redis_allocator_active_bytes", G, "Bytes in the allocator's active pages.", 1),
    ("allocator_resident", "redis_allocator_resident_bytes", G, "Bytes resident in the allocator.", 1),
    ("allocator_frag_ratio", "redis_allocator_frag_ratio", G, "Allocator fragmentation ratio.", 1),
    ("allocator_frag_bytes", "redis_allocator_frag_bytes", G, "Allocator fragmentation in bytes.", 1),
    ("allocator_rss_ratio", "redis_allocator_rss_ratio", G, "Allocator resident over active.", 1),
    ("allocator_rss_bytes", "redis_allocator_rss_bytes", G, "Allocator resident minus active, bytes.", 1),
    ("mem_fragmentation_bytes", "redis_mem_fragmentation_bytes", G, "used_memory_rss minus used_memory.", 1),
    ("mem_not_counted_for_evict", "redis_mem_not_counted_for_eviction_bytes", G,
     "Memory not counted for maxmemory eviction.", 1),
    ("mem_clients_slaves", "redis_mem_clients_slaves", G, "Memory used by replica clients.", 1),
    ("mem_clients_normal", "redis_mem_clients_normal", G, "Memory used by normal clients.", 1),
    ("lazyfree_pending_objects", "redis_lazyfree_pending_objects", G, "Objects waiting to be freed.", 1),
    ("active_defrag_running", "redis_active_defrag_running", G, "Whether active defragmentation runs.", 1),
    ("rdb_current_bgsave_time_sec", "redis_rdb_current_bgsave_duration_sec", G,
     "Duration of the running BGSAVE (-1 if none).", 1),
    ("rdb_last_cow_size", "redis_rdb_last_cow_size_bytes", G, "Copy-on-write bytes of the last BGSAVE.", 1),
    ("aof_rewrite_scheduled", "redis_aof_rewrite_scheduled", G, "Whether an AOF rewrite is scheduled.", 1),
    ("aof_current_rewrite_time_sec", "redis_aof_current_rewrite_duration_sec", G,
     "Duration of the running AOF rewrite (-1 if none).", 1),
    ("aof_last_cow_size", "redis_aof_last_cow_size_bytes", G, "Copy-on-write bytes of the last AOF rewrite.", 1),
    ("module_fork_in_progress", "redis_module_fork_in_progress", G, "Whether a module fork runs.", 1),
    ("module_fork_last_cow_size", "redis_module_fork_last_cow_size", G,
     "Copy-on-write bytes of the last module fork.", 1),
    ("total_reads_processed", "redis_total_reads_processed", C, "Read events processed.", 1),
    ("total_writes_processed", "redis_total_writes_processed", C, "Write events processed.", 1),
    ("io_threaded_reads_processed", "redis_io_threaded_reads_processed", C,
     "Read events processed by the I/O threads.", 1),
    ("io_threaded_writes_processed", "redis_io_threaded_writes_processed", C,
     "Write events processed by the I/O threads.", 1),
    ("total_error_replies", "redis_total_error_replies", C, "Error replies sent.", 1),
    ("unexpected_error_replies", "redis_unexpected_error_replies", C, "Unexpected error replies (AOF, replication).",
     1),
    ("dump_payload_sanitizations", "redis_dump_payload_sanitizations", C, "Deep integrity checks of DUMP payloads.",
     1),
    ("expired_stale_perc", "redis_expired_stale_percentage", G, "Estimated share of expired keys still in memory.",
     1),
    ("expired_time_cap_reached_count", "redis_expired_time_cap_reached_total", G,
     "Active expire cycles that stopped at their time cap.", 1),
    ("active_defrag_hits", "redis_defrag_hits", G, "Value reallocations by active defragmentation.", 1),
    ("active_defrag_misses", "redis_defrag_misses", G, "Aborted value reallocations by active defragmentation.", 1),
    ("active_defrag_key_hits", "redis_defrag_key_hits", G, "Keys actively defragmented.", 1),
    ("active_defrag_key_misses", "redis_defrag_key_misses", G, "Keys skipped by active defragmentation.", 1),
    ("migrate_cached_sockets", "redis_migrate_cached_sockets_total", G, "Sockets open for MIGRATE.", 1),
    ("pubsub_channels", "redis_pubsub_channels", G, "Pub/sub channels with subscribers.", 1),
    ("pubsub_patterns", "redis_pubsub_patterns", G, "Pub/sub patterns with subscribers.", 1),
    ("latest_fork_usec", "redis_latest_fork_seconds", G, "Duration of the latest fork.", 1e-6),
    ("tracking_total_keys", "redis_tracking_total_keys", G, "Keys tracked for client-side caching.", 1),
    ("tracking_total_items", "redis_tracking_total_items", G, "Items tracked for client-side caching.", 1),
    ("tracking_total_prefixes", "redis_tracking_total_prefixes", G, "Prefixes tracked for client-side caching.",
     1),
    ("repl_backlog_active", "redis_repl_backlog_is_active", G, "Whether the replication backlog is on.", 1),
    ("repl_backlog_size", "redis_replication_backlog_bytes", G, "Size of the replication backlog.", 1),
    ("repl_backlog_first_byte_offset", "redis_repl_backlog_first_byte_offset", G,
     "Replication offset of the backlog's first byte.", 1),
    ("repl_backlog_histlen", "redis_repl_backlog_history_bytes", G, "Bytes of data in the backlog.", 1),
    ("second_repl_offset", "redis_second_repl_offset", G, "Offset up to which the previous replication id holds.",
     1),
    ("slave_expires_tracked_keys", "redis_slave_expires_tracked_keys", G,
     "Keys tracked for expiry on a writable replica.", 1),
    ("sync_full", "redis_replica_resyncs_full", G, "Full resynchronisations with replicas.", 1),
    ("sync_partial_ok", "redis_replica_partial_resync_accepted", G, "Partial resync requests accepted.", 1),
    ("sync_partial_err", "redis_replica_partial_resync_denied", G, "Partial resync requests denied.", 1),
    ("used_cpu_sys_children", "redis_cpu_sys_children_seconds_total", C, "System CPU used by child processes.", 1),
    ("used_cpu_user_children", "redis_cpu_user_children_seconds_total", C, "User CPU used by child processes.", 1),
    ("used_cpu_sys_main_thread", "redis_cpu_sys_main_thread_seconds_total", C, "System CPU of the main thread.",
     1),
    ("used_cpu_user_main_thread", "redis_cpu_user_main_thread_seconds_total", C, "User CPU of the main thread.",
     1),
    ("cluster_enabled", "redis_cluster_enabled", G, "Whether cluster mode is on (1 = yes).", 1),
    ("cluster_connections", "redis_cluster_connections", G, "Connections of the cluster bus.", 1),
    # Fields of Redis 7 that current redis_exporter releases map (Debian's 1.45 predates them), under their names;
    # Percona's Valkey/Redis persistence and client dashboards chart them.
    ("evicted_clients", "redis_evicted_clients_total", C, "Clients evicted because of maxmemory-clients.", 1),
    ("rdb_saves", "redis_rdb_saves_total", C, "Successful RDB saves since startup.", 1),
    ("async_loading", "redis_async_loading", G, "Whether a replica loads its dump while serving (1 = yes).", 1),
    ("aof_delayed_fsync", "redis_aof_delayed_fsync", G, "Delayed fsyncs of the append-only file.", 1),
    ("aof_current_size", "redis_aof_current_size_bytes", G, "Size of the append-only file.", 1),
    ("aof_base_size", "redis_aof_base_size_bytes", G, "Size of the append-only file at its last rewrite.", 1),
    ("mem_replication_backlog", "redis_mem_replication_backlog_bytes", G, "Memory of the replication backlog.", 1),
    ("total_net_repl_input_bytes", "redis_net_repl_input_bytes_total", C, "Bytes read for replication.", 1),
    ("total_net_repl_output_bytes", "redis_net_repl_output_bytes_total", C, "Bytes written for replication.", 1),
    ("acl_access_denied_auth", "redis_acl_access_denied_auth_total", C, "Authentications denied by ACL.", 1),
    ("acl_access_denied_cmd", "redis_acl_access_denied_cmd_total", C, "Commands denied by ACL.", 1),
    ("acl_access_denied_key", "redis_acl_access_denied_key_total", C, "Key accesses denied by ACL.", 1),
    ("acl_access_denied_channel", "redis_acl_access_denied_channel_total", C, "Channel accesses denied by ACL.", 1),
)

#: redis_exporter's ``quantile`` label values for INFO latencystats' p50, p99 and p99.9
_QUANTILES = {"p50": "50", "p99": "99", "p99.9": "99.9"}

SPECS: tuple[MetricSpec, ...] = (
    *(MetricSpec(name, kind, help, (), "redis") for _, name, kind, help, _ in _FIELDS),
    MetricSpec("redis_errors_total", C, "Error replies per error prefix (INFO errorstats).", ("err",), "redis"),
    MetricSpec("redis_latency_percentiles_usec", G,
               "Latency percentiles per command in microseconds (INFO latencystats, Redis >= 7); `quantile` is "
               "50, 99 or 99.9 as redis_exporter labels it (a summary's quantiles there, without _sum/_count "
               "here: `redis_commands_duration_seconds_total` and `redis_commands_total` carry those).",
               ("cmd", "quantile"), "redis"),
    MetricSpec("redis_config_io_threads", G, "io-threads setting (CONFIG).", (), "redis"),
)


def more_families(raw: dict[str, Any], config: dict[str, str] | None, latency: Any) -> list[MetricFamily]:
    """The families above from one INFO (``raw``), CONFIG GET * (None when unavailable) and one
    ``INFO latencystats`` reply (anything else when the server has none)."""
    families = []
    for field, name, kind, help, factor in _FIELDS:
        value = raw.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            family = MetricFamily(name, kind, help)
            family.add((), value * factor if factor != 1 else value)
            families.append(family)
    errors = counter("redis_errors_total", "Error replies per error prefix (INFO errorstats).", ("err",))
    for key, value in raw.items():
        if key.startswith("errorstat_") and isinstance(value, dict):
            errors.add((key.removeprefix("errorstat_"),), value.get("count"))
    percentiles = gauge("redis_latency_percentiles_usec", "Latency percentiles per command in microseconds",
                        ("cmd", "quantile"))
    for key, value in (latency.items() if isinstance(latency, dict) else ()):
        if key.startswith("latency_percentiles_usec_") and isinstance(value, dict):
            cmd = key.removeprefix("latency_percentiles_usec_")
            for percentile, quantile in _QUANTILES.items():
                if isinstance(value.get(percentile), (int, float)):
                    percentiles.add((cmd, quantile), value[percentile])
    families.extend(fam for fam in (errors, percentiles) if fam.samples)
    if config is not None and config.get("io-threads", "").isdigit():
        threads = gauge("redis_config_io_threads", "io-threads setting (CONFIG).")
        threads.add((), int(config["io-threads"]))
        families.append(threads)
    return families
