"""The cassandra collector's metric families, built from its facts and the virtual tables' rows.

Thread pools and caches carry instaclustr cassandra-exporter's names (``cassandra_thread_pool_*`` with a
``pool`` label, ``cassandra_cache_*`` with ``cache``), the ones the community's dashboards and the
awesome-prometheus-alerts Cassandra rules query; everything else is dbwatch's own, ``dbwatch_cassandra_*``
(collectors/catalog_cassandra.py declares them all).
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import MetricFamily, MetricType, counter, gauge, info
from dbwatch.model.facts.cassandra import CassandraNode, CassandraPeer, CassandraTableStats, CassandraThreadPool

def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def families(node: CassandraNode, peers: list[CassandraPeer], pools: list[CassandraThreadPool],
             tables: list[CassandraTableStats], views: dict[str, list[dict[str, Any]]]) -> list[MetricFamily]:
    up = gauge("dbwatch_cassandra_up", "Whether the last collection could reach the node (1 = yes).")
    up.add((), 1)
    about = info("dbwatch_cassandra_node_info", "The node's version, cluster, datacenter, rack (always 1).",
                 ("release_version", "cassandra_cluster", "datacenter", "rack"))
    about.add((node.release_version, node.cluster_name, node.datacenter, node.rack), 1)
    count = gauge("dbwatch_cassandra_peers", "Other nodes of the cluster this node knows (system.peers_v2).")
    count.add((), node.peers)
    out = [up, about, count]
    if node.peers_down is not None:
        peer_up = gauge("dbwatch_cassandra_peer_up", "Whether a peer is up as this node's gossip sees it (1 up, "
                        "0 down: STATUS shutdown/left, or no heartbeat for down_after_seconds).",
                        ("peer", "datacenter", "rack"))
        for p in peers:
            if p.state != "unknown":
                peer_up.add((p.address, p.datacenter, p.rack), int(p.state == "up"))
        down = gauge("dbwatch_cassandra_peers_down", "Peers this node's gossip sees down.")
        down.add((), node.peers_down)
        out += [peer_up, down]
    out += _pools(pools)
    out += _caches(views.get("caches"))
    out += _clients(views.get("clients"))
    out += _compactions(pools, views.get("sstable_tasks"))
    out += _tables(tables)
    out += _latency(views, {(t.keyspace, t.table) for t in tables})
    out += _dropped(views)
    return out


def _pools(pools: list[CassandraThreadPool]) -> list[MetricFamily]:
    if not pools:
        return []
    active = gauge("cassandra_thread_pool_active_tasks", "Tasks the pool is running.", ("pool",))
    pending = gauge("cassandra_thread_pool_pending_tasks", "Tasks queued for the pool.", ("pool",))
    blocked = gauge("cassandra_thread_pool_blocked_tasks", "Tasks blocked now because the pool's queue is full.",
                    ("pool",))
    blocked_total = counter("cassandra_thread_pool_blocked_tasks_total", "Tasks ever blocked by a full queue.",
                            ("pool",))
    completed = counter("cassandra_thread_pool_completed_tasks_total", "Tasks the pool has completed.", ("pool",))
    for p in pools:
        active.add((p.name,), p.active)
        pending.add((p.name,), p.pending)
        blocked.add((p.name,), p.blocked)
        blocked_total.add((p.name,), p.blocked_all_time)
        completed.add((p.name,), p.completed)
    return [active, pending, blocked, blocked_total, completed]


def _caches(rows: list[dict[str, Any]] | None) -> list[MetricFamily]:
    if rows is None:
        return []
    specs = (("cassandra_cache_entries", "entry_count", "Entries in the cache."),
             ("cassandra_cache_estimated_size_bytes", "size_bytes", "Bytes the cache holds."),
             ("cassandra_cache_capacity_bytes", "capacity_bytes", "The cache's capacity in bytes."),
             ("cassandra_cache_hits_total", "hit_count", "Cache hits since the node started."),
             ("cassandra_cache_requests_total", "request_count", "Cache requests since the node started."))
    out = []
    for name, column, help in specs:
        kind = MetricType.COUNTER if name.endswith("_total") else MetricType.GAUGE
        fam = MetricFamily(name, kind, help, ("cache",))
        for r in rows:
            value = _num(r.get(column))
            if value is not None:
                fam.add((str(r.get("name")),), value)
        out.append(fam)
    ratio = gauge("dbwatch_cassandra_cache_hit_ratio", "Hits over requests since the node started.", ("cache",))
    for r in rows:
        value = _num(r.get("hit_ratio"))
        if value is not None and value == value:  # NaN before the first request
            ratio.add((str(r.get("name")),), value)
    return [*out, ratio]


def _clients(rows: list[dict[str, Any]] | None) -> list[MetricFamily]:
    if rows is None:
        return []
    fam = gauge("dbwatch_cassandra_clients", "Native-protocol client connections by user and driver.",
                ("username", "driver_name"))
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (str(r.get("username") or ""), str(r.get("driver_name") or ""))
        counts[key] = counts.get(key, 0) + 1
    for key, n in sorted(counts.items()):
        fam.add(key, n)
    return [fam]


def _compactions(pools: list[CassandraThreadPool], tasks: list[dict[str, Any]] | None) -> list[MetricFamily]:
    out = []
    executor = [p for p in pools if p.name == "CompactionExecutor"]
    if executor:
        pending = gauge("dbwatch_cassandra_pending_compactions",
                        "Compactions queued for a compaction thread (CompactionExecutor's pending tasks).")
        pending.add((), executor[0].pending)
        out.append(pending)
    if tasks is not None:
        running = gauge("dbwatch_cassandra_sstable_tasks", "Running SSTable tasks (compactions, cleanups, ...) "
                        "by kind (system_views.sstable_tasks).", ("kind",))
        kinds: dict[str, int] = {}
        for t in tasks:
            kinds[str(t.get("kind") or "")] = kinds.get(str(t.get("kind") or ""), 0) + 1
        for kind, n in sorted(kinds.items()):
            running.add((kind,), n)
        out.append(running)
    return out


def _tables(tables: list[CassandraTableStats]) -> list[MetricFamily]:
    if not tables:
        return []
    labels = ("keyspace", "table")
    disk = gauge("dbwatch_cassandra_table_disk_usage_bytes", "The table's live SSTables on disk (system_views."
                 "disk_usage, MiB precision).", labels)
    largest = gauge("dbwatch_cassandra_table_max_partition_bytes", "The table's largest partition (system_views."
                    "max_partition_size, MiB precision).", labels)
    p99 = gauge("dbwatch_cassandra_table_tombstones_per_read_p99", "Tombstones a read of the table scans, 99th "
                "percentile (system_views.tombstones_per_read).", labels)
    worst = gauge("dbwatch_cassandra_table_tombstones_per_read_max", "Tombstones the worst read of the table "
                  "scanned.", labels)
    for t in tables:
        key = (t.keyspace, t.table)
        if t.disk_bytes is not None:
            disk.add(key, t.disk_bytes)
        if t.max_partition_bytes is not None:
            largest.add(key, t.max_partition_bytes)
        if t.tombstones_per_read_p99 is not None:
            p99.add(key, t.tombstones_per_read_p99)
        if t.tombstones_per_read_max is not None:
            worst.add(key, t.tombstones_per_read_max)
    return [disk, largest, p99, worst]


def _latency(views: dict[str, list[dict[str, Any]]], kept: set[tuple[str, str]]) -> list[MetricFamily]:
    labels = ("keyspace", "table", "operation")
    seconds = gauge("dbwatch_cassandra_table_coordinator_latency_seconds", "Coordinator latency of the table's "
                    "requests by quantile (0.5, 0.99; system_views.coordinator_read/write_latency).",
                    (*labels, "quantile"))
    requests = counter("dbwatch_cassandra_table_coordinator_requests_total", "Requests the node coordinated for "
                       "the table.", labels)
    seen = False
    for operation in ("read", "write"):
        rows = views.get(f"coordinator_{operation}_latency")
        if rows is None:
            continue
        seen = True
        for r in rows:
            key = (str(r.get("keyspace_name")), str(r.get("table_name")))
            if key not in kept:
                continue
            for quantile, column in (("0.5", "50th_ms"), ("0.99", "99th_ms")):
                value = _num(r.get(column))
                if value is not None:
                    seconds.add((*key, operation, quantile), value / 1000)
            count = _num(r.get("count"))
            if count is not None:
                requests.add((*key, operation), count)
    return [seconds, requests] if seen else []


def _dropped(views: dict[str, list[dict[str, Any]]]) -> list[MetricFamily]:
    """Messages to and from each peer that expired before they were processed or sent, or that overflowed the
    outbound queue: close to what nodetool tpstats counts as dropped (by verb there, by peer here)."""
    if "internode_inbound" not in views and "internode_outbound" not in views:
        return []
    fam = counter("dbwatch_cassandra_dropped_messages_total", "Internode messages dropped: expired before they "
                  "were processed (inbound) or sent (outbound), or overflowing the outbound queue.",
                  ("peer", "direction", "reason"))
    for direction, reasons in (("inbound", ("expired",)), ("outbound", ("expired", "overload"))):
        for r in views.get(f"internode_{direction}", []):
            for reason in reasons:
                value = _num(r.get(f"{reason}_count"))
                if value is not None:
                    fam.add((str(r.get("address")), direction, reason), value)
    return [fam]
