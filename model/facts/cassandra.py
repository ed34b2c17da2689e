"""The typed facts the cassandra collector puts on a snapshot for rules to read (``snapshot.fact(T)``).

Everything is as the watched node sees it: Cassandra's virtual tables (``system_views``) are local to each
node, and a peer's state is what this node's gossip says of it. Sizes are bytes, latencies seconds; a field
is ``None`` where the node's version does not expose it (``gossip_info`` came with 4.1, ``system_views``
with 4.0).
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class CassandraNode:
    """The watched node (``system.local``) and what it says of the cluster."""

    release_version: str
    cluster_name: str
    datacenter: str
    rack: str
    host_id: str
    peers: int  # rows of system.peers_v2 (or system.peers)
    #: peers gossip calls down (None: not visible, Cassandra < 4.1 has no gossip_info)
    peers_down: int | None
    virtual_tables: bool  # whether system_views exists (Cassandra 4.0+)


@dataclass(frozen=True, slots=True)
class CassandraPeer:
    """Another node of the cluster as this node's ``system.peers_v2`` and ``system_views.gossip_info`` show it."""

    address: str
    datacenter: str
    rack: str
    host_id: str
    #: the first word of the STATUS gossip state (NORMAL, LEAVING, JOINING, shutdown, ...), "" when unknown
    status: str
    #: up, down (status shutdown, or its gossip heartbeat has not moved for down_after_seconds), or unknown
    state: str
    heartbeat_stale_seconds: float | None


class CassandraPeers(FactList[CassandraPeer]):
    """Every peer the node knows."""


@dataclass(frozen=True, slots=True)
class CassandraThreadPool:
    """One row of ``system_views.thread_pools`` (nodetool tpstats)."""

    name: str
    active: int
    active_limit: int | None
    pending: int
    blocked: int  # currently blocked (the queue is full)
    blocked_all_time: int
    completed: int


class CassandraThreadPools(FactList[CassandraThreadPool]):
    """Every thread pool of the node."""


@dataclass(frozen=True, slots=True)
class CassandraTableStats:
    """One table's histograms and sizes from the per-table virtual tables (Cassandra 4.0+): what reads scan
    and how big its largest partition is. ``None`` where the table did not appear in that virtual table."""

    keyspace: str
    table: str
    tombstones_per_read_p99: float | None
    tombstones_per_read_max: float | None
    reads: int | None  # reads the tombstone histogram counted
    max_partition_bytes: int | None
    disk_bytes: int | None

    @property
    def qualified(self) -> str:
        return f"{self.keyspace}.{self.table}"


class CassandraTables(FactList[CassandraTableStats]):
    """The user tables the node reported (system keyspaces left out)."""


@dataclass(frozen=True, slots=True)
class CassandraSettings:
    """The thresholds the advice compares with, from ``system_views.settings`` (Cassandra's defaults when the
    node did not say)."""

    tombstone_warn_threshold: int
    tombstone_failure_threshold: int
    large_partition_warning_bytes: int
