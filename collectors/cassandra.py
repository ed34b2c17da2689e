"""Cassandra: the session (one DataStax ``cassandra-driver`` Cluster per target) and the node collector.

``system.local`` and ``system.peers_v2`` (``system.peers`` before 4.0) give the node and the cluster's
topology; Cassandra 4.x's virtual tables in ``system_views`` give the rest, all local to the watched node:
``thread_pools`` (nodetool tpstats), ``caches``, ``clients``, ``settings``, ``disk_usage``,
``max_partition_size``, ``sstable_tasks`` (running compactions), the per-table histograms
``coordinator_read_latency``/``coordinator_write_latency`` and ``tombstones_per_read``, the internode
message counters ``internode_inbound``/``internode_outbound`` (messages that expired or overflowed, by peer:
close to what tpstats counts as dropped, by verb), and, from 4.1, ``gossip_info`` (the STATUS and heartbeat
of every peer). A table the node lacks (an older version) or the user may not read is a note; the collection
carries on.

The driver is used from asyncio without blocking the loop: its own I/O thread (libev) runs the requests,
and each ResponseFuture's callbacks hand the rows to the loop with ``call_soon_threadsafe``; connecting and
shutting down (which block) run in a worker thread. The driver is held to the one node the target names
(``WhiteListRoundRobinPolicy``): dbwatch watches that node, as each node's virtual tables are its own.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

from cassandra import AuthenticationFailed, DriverException, RequestValidationException
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.cluster import Session as DriverCqlSession
from cassandra.connection import ConnectionException
from cassandra.policies import ConstantReconnectionPolicy, WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement, dict_factory

from dbwatch.model import Snapshot, Target
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.cassandra_families import families
from dbwatch.collectors.session import DriverSession
from dbwatch.model.facts.cassandra import (
    CassandraNode, CassandraPeer, CassandraPeers, CassandraSettings, CassandraTables, CassandraTableStats,
    CassandraThreadPool, CassandraThreadPools,
)
from dbwatch.model.facts.common import Summary
from dbwatch.model.options import CollectorOptions, Count, Number

DEFAULT_PORT = 9042
SYSTEM_KEYSPACES = frozenset({"system", "system_auth", "system_distributed", "system_schema", "system_traces",
                              "system_views", "system_virtual_schema"})
#: the virtual tables read (Cassandra 4.0+), and what is missing without each
VIEWS: dict[str, str] = {
    "thread_pools": "thread pools", "caches": "caches", "clients": "clients", "settings": "settings",
    "disk_usage": "table disk usage", "max_partition_size": "largest partitions",
    "sstable_tasks": "running compactions", "coordinator_read_latency": "read latency",
    "coordinator_write_latency": "write latency", "tombstones_per_read": "tombstones per read",
    "internode_inbound": "dropped messages (inbound)", "internode_outbound": "dropped messages (outbound)",
}


class CassandraSession(DriverSession["CqlConnection"]):
    """One driver Cluster and Session per target, held to the target's node."""

    default_port = DEFAULT_PORT
    connect_errors = (DriverException, NoHostAvailable, ConnectionException, OSError, ValueError)

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.timeout = max(0.5, self.shortest_timeout * 0.8)
        parsed = urllib.parse.urlsplit(target.dsn)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or DEFAULT_PORT
        self.user = urllib.parse.unquote(parsed.username) if parsed.username else None

    async def connect(self, password: str | None) -> "CqlConnection":
        auth = PlainTextAuthProvider(self.user or "cassandra", password or "") if self.user or password else None
        profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([self.host]),
                                   request_timeout=self.timeout, row_factory=dict_factory)
        cluster = Cluster(
            contact_points=[self.host], port=self.port, protocol_version=4, auth_provider=auth,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            reconnection_policy=ConstantReconnectionPolicy(max(1.0, self.timeout), max_attempts=1),
            schema_metadata_enabled=False, token_metadata_enabled=False, executor_threads=1,
            connect_timeout=self.timeout, control_connection_timeout=self.timeout)
        try:
            session = await asyncio.to_thread(cluster.connect)
        except BaseException:
            await asyncio.to_thread(cluster.shutdown)
            raise
        return CqlConnection(cluster, session)

    async def disconnect(self, conn: "CqlConnection", graceful: bool) -> None:
        try:
            await asyncio.to_thread(conn.cluster.shutdown)
        except Exception:  # closing a broken cluster: nothing more to do
            pass

    def is_open(self, conn: "CqlConnection") -> bool:
        return not conn.cluster.is_shutdown

    def describe(self, exc: BaseException) -> str:
        return describe(exc)

    def connect_reason(self, exc: BaseException, password: str | None) -> str:
        reason = self.safe(describe(exc), password)
        if "does not support protocol version" in reason or "Unexpected response" in reason:
            # the first bytes of another service's reply, read as a frame header
            reason += " (is this port a Cassandra native transport, 9042 by default?)"
        return reason

    async def rows(self, query: str) -> tuple[list[dict[str, Any]] | None, str | None]:
        """``(rows, None)``, or ``(None, the server's refusal)`` for a query the node rejects (no such table,
        no permission); a lost connection raises a CollectorError and the cluster is dropped."""
        return (await self.rows_of([query]))[0]

    async def rows_of(self, queries: list[str]) -> list[tuple[list[dict[str, Any]] | None, str | None]]:
        """:meth:`rows` of several queries, in flight together on the one connection."""
        conn = await self.connection()  # taken here: the lock belongs to this task, not to gather's
        answers = await asyncio.gather(*(conn.execute(q, self.timeout) for q in queries), return_exceptions=True)
        out: list[tuple[list[dict[str, Any]] | None, str | None]] = []
        for answer in answers:
            if isinstance(answer, RequestValidationException):
                out.append((None, describe(answer)))
            elif isinstance(answer, (DriverException, NoHostAvailable, ConnectionException, OSError)):
                raise self.lost(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                out.append((answer, None))
        return out


class CqlConnection:
    """A driver Cluster and its Session; queries are awaited on the caller's loop."""

    def __init__(self, cluster: Cluster, session: DriverCqlSession) -> None:
        self.cluster = cluster
        self.session = session

    async def execute(self, query: str, timeout: float) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[dict[str, Any]]] = loop.create_future()

        def settle(rows: Any = None, error: BaseException | None = None) -> None:
            if done.cancelled():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(list(rows or []))

        future = self.session.execute_async(SimpleStatement(query, fetch_size=None), timeout=timeout)
        future.add_callbacks(lambda rows: loop.call_soon_threadsafe(settle, rows),
                             lambda exc: loop.call_soon_threadsafe(settle, None, exc))
        return await done


def describe(exc: BaseException) -> str:
    """One line from a driver error: the server's message for a refusal, the first host's reason for
    NoHostAvailable (a refused connection, bad credentials), never the driver's repr soup."""
    if isinstance(exc, NoHostAvailable) and exc.errors:
        return describe(next(iter(exc.errors.values())))
    if isinstance(exc, AuthenticationFailed):
        text = str(exc)
        message = text.partition('message="')[2].rstrip('"')
        return f"authentication failed: {message or text}"
    if isinstance(exc, RequestValidationException):
        return (str(exc).partition('message="')[2].rstrip('"') or str(exc)).splitlines()[0]
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    if "Last error:" in text:  # "Tried connecting to [('127.0.0.1', 9042)]. Last error: Connection refused"
        text = text.rpartition("Last error:")[2].strip()
    return text


class CassandraOptions(CollectorOptions):
    #: a peer whose gossip heartbeat has not moved for this long counts as down (gossip's failure detector
    #: convicts a silent node within ~10-20 s)
    down_after_seconds: Number = 30.0
    max_tables: Count = 200  # per-table series for at most this many user tables (the largest on disk first)


class CassandraCollector(Collector[CassandraSession, CassandraOptions]):
    """The node, its peers and its virtual tables. Facts: :class:`CassandraNode`, :class:`CassandraPeers`,
    :class:`CassandraThreadPools`, :class:`CassandraTables`, :class:`CassandraSettings` and the Summary."""

    name = "cassandra"
    up_metric = "dbwatch_cassandra_up"
    options_model = CassandraOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._beats: dict[str, tuple[int, int, float]] = {}  # address -> (generation, heartbeat, first seen)

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            local, error = await session.rows(
                "SELECT release_version, cluster_name, data_center, rack, host_id FROM system.local WHERE key='local'")
            if local is None:
                raise CollectorError(f"SELECT on system.local failed on {session.endpoint}: {error}")
            peers, error = await session.rows("SELECT peer, data_center, rack, host_id FROM system.peers_v2")
            if peers is None:
                peers, error = await session.rows("SELECT peer, data_center, rack, host_id FROM system.peers")
            if peers is None:
                snapshot.notes.append(f"SELECT on system.peers failed ({error}): the cluster's topology is not "
                                      "collected")
            version = str((local[0] if local else {}).get("release_version") or "")
            views: dict[str, list[dict[str, Any]]] = {}
            virtual = _at_least(version, 4, 0)
            names = [*VIEWS, "gossip_info"] if _at_least(version, 4, 1) else list(VIEWS)
            if virtual:
                answers = await session.rows_of([f"SELECT * FROM system_views.{n}" for n in names])
                for name, (rows, error) in zip(names, answers):
                    if rows is not None:
                        views[name] = rows
                    else:
                        what = VIEWS.get(name, "peer status")
                        snapshot.notes.append(f"SELECT on system_views.{name} failed ({error}): {what} not "
                                              f"collected")
        if not virtual:
            snapshot.notes.append(f"Cassandra {version or '(unknown version)'} has no system_views (virtual "
                                  "tables came with 4.0): only the node and its topology are collected")
        elif "gossip_info" not in views:
            snapshot.notes.append("peer up/down status needs system_views.gossip_info (Cassandra 4.1+)")
        self.record(snapshot, (local or [{}])[0], peers or [], views, virtual)

    def record(self, snapshot: Snapshot, local: dict[str, Any], peer_rows: list[dict[str, Any]],
               views: dict[str, list[dict[str, Any]]], virtual: bool) -> None:
        peers = self._peers(peer_rows, views.get("gossip_info"))
        down = sum(p.state == "down" for p in peers) if "gossip_info" in views else None
        node = CassandraNode(
            release_version=str(local.get("release_version") or ""), cluster_name=str(local.get("cluster_name") or ""),
            datacenter=str(local.get("data_center") or ""), rack=str(local.get("rack") or ""),
            host_id=str(local.get("host_id") or ""), peers=len(peers), peers_down=down, virtual_tables=virtual)
        pools = [_pool(r) for r in views.get("thread_pools", [])]
        tables = _tables(views, self.options.max_tables)
        settings = _settings(views.get("settings", []))
        snapshot.version = node.release_version or None
        for fact in (node, CassandraPeers(tuple(peers)), CassandraThreadPools(tuple(pools)),
                     CassandraTables(tuple(tables)), settings):
            snapshot.put(fact)
        snapshot.families.extend(families(node, peers, pools, tables, views))
        summary: dict[str, Any] = {"version": node.release_version, "datacenter": node.datacenter,
                                   "nodes": f"{node.peers + 1}" + (f" ({down} down)" if down else "")}
        pending = sum(p.pending for p in pools if p.name == "CompactionExecutor")
        if pools:
            summary["pending compactions"] = pending
            summary["blocked tasks"] = sum(p.blocked for p in pools)
        snapshot.put(Summary(summary))

    def _peers(self, rows: list[dict[str, Any]], gossip: list[dict[str, Any]] | None) -> list[CassandraPeer]:
        now = time.monotonic()
        by_address = {str(g.get("address")): g for g in gossip or []}
        peers = []
        for row in rows:
            address = str(row.get("peer") or "")
            g = by_address.get(address)
            status, state, stale = "", "unknown", None
            if g is not None:
                # STATUS, or STATUS_WITH_PORT (4.0+ gossips both; a later version may drop the old one)
                status = str(g.get("status") or g.get("status_with_port") or "").partition(",")[0]
                beat = (int(g.get("generation") or 0), int(g.get("heartbeat") or 0))
                seen = self._beats.get(address)
                since = seen[2] if seen is not None and seen[:2] == beat else now
                self._beats[address] = (*beat, since)
                stale = now - since
                if status.lower() in ("shutdown", "left", "removed") or stale >= self.options.down_after_seconds:
                    state = "down"
                else:
                    state = "up"
            peers.append(CassandraPeer(address=address, datacenter=str(row.get("data_center") or ""),
                                       rack=str(row.get("rack") or ""), host_id=str(row.get("host_id") or ""),
                                       status=status, state=state, heartbeat_stale_seconds=stale))
        for gone in set(self._beats) - {p.address for p in peers}:
            del self._beats[gone]
        return peers


def _at_least(version: str, major: int, minor: int) -> bool:
    parts = [int(p) if p.isdigit() else 0 for p in version.split("-")[0].split(".")[:2]] + [0, 0]
    return (parts[0], parts[1]) >= (major, minor)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _pool(row: dict[str, Any]) -> CassandraThreadPool:
    limit = row.get("active_tasks_limit")
    return CassandraThreadPool(
        name=str(row.get("name") or ""), active=_int(row.get("active_tasks")),
        active_limit=_int(limit) if limit is not None else None, pending=_int(row.get("pending_tasks")),
        blocked=_int(row.get("blocked_tasks")), blocked_all_time=_int(row.get("blocked_tasks_all_time")),
        completed=_int(row.get("completed_tasks")))


def user_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(r.get("keyspace_name")), str(r.get("table_name"))): r for r in rows
            if r.get("keyspace_name") not in SYSTEM_KEYSPACES}


def _tables(views: dict[str, list[dict[str, Any]]], limit: int) -> list[CassandraTableStats]:
    disk = user_rows(views.get("disk_usage", []))
    largest = user_rows(views.get("max_partition_size", []))
    tombstones = user_rows(views.get("tombstones_per_read", []))
    keys = sorted(set(disk) | set(largest) | set(tombstones),
                  key=lambda k: (-_int(disk.get(k, {}).get("mebibytes")), k))[:limit]
    mib = 1024 * 1024
    out = []
    for key in keys:
        t = tombstones.get(key)
        out.append(CassandraTableStats(
            keyspace=key[0], table=key[1],
            tombstones_per_read_p99=float(t["99th"]) if t and t.get("99th") is not None else None,
            tombstones_per_read_max=float(t["max"]) if t and t.get("max") is not None else None,
            reads=_int(t.get("count")) if t else None,
            max_partition_bytes=_int(largest[key].get("mebibytes")) * mib if key in largest else None,
            disk_bytes=_int(disk[key].get("mebibytes")) * mib if key in disk else None))
    return out


_UNITS = {"b": 1, "kib": 1024, "kb": 1024, "mib": 1024 ** 2, "mb": 1024 ** 2, "gib": 1024 ** 3, "gb": 1024 ** 3}


def size_bytes(text: str, default_unit: str = "mib") -> int | None:
    """``100MiB`` (4.1's DataStorageSpec) or ``100`` (4.0's ``..._mb``) in bytes; None if unreadable."""
    text = text.strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):] or default_unit
    try:
        return int(float(number) * _UNITS[unit])
    except (ValueError, KeyError):
        return None


def _settings(rows: list[dict[str, Any]]) -> CassandraSettings:
    values = {str(r.get("name")): str(r.get("value") or "") for r in rows}
    large = (size_bytes(values["compaction_large_partition_warning_threshold"])
             if "compaction_large_partition_warning_threshold" in values
             else size_bytes(values.get("compaction_large_partition_warning_threshold_mb", "100")))
    return CassandraSettings(
        tombstone_warn_threshold=_count(values.get("tombstone_warn_threshold"), 1000),
        tombstone_failure_threshold=_count(values.get("tombstone_failure_threshold"), 100000),
        large_partition_warning_bytes=large or 100 * 1024 * 1024)


def _count(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
