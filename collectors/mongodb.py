"""MongoDB: the session (one PyMongo AsyncMongoClient per target) and the server-wide collector.

``serverStatus``, ``replSetGetStatus``, the first and last entry of ``local.oplog.rs`` and ``$currentOp``,
under percona mongodb_exporter's names where it has the metric (``mongodb_ss_*`` flattened from
serverStatus, ``mongodb_rs_*`` from replSetGetStatus with ``member_idx`` labels, the oplog timestamps of its
compatible mode), so its dashboards work unchanged; what only dbwatch has is prefixed ``dbwatch_mongodb_``.
A command the user may not run (no ``clusterMonitor`` role) or a server that is no replica set member is a
note, and the collection carries on with what it could read.

PyMongo's AsyncMongoClient, not Motor: Motor is deprecated in favour of PyMongo's own async API.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
from typing import Any

from bson.timestamp import Timestamp
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, NetworkTimeout, OperationFailure, PyMongoError

from dbwatch.model import MetricFamily, MetricType, Snapshot, Target, gauge, info
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.mongodb_compat import compat_families
from dbwatch.collectors.mongodb_status_more import more_status_families
from dbwatch.collectors.session import DriverSession
from dbwatch.model.facts.common import Summary
from dbwatch.model.options import CollectorOptions, Number
from dbwatch.model.facts.mongodb import (
    MongoLongOps, MongoMember, MongoOperation, MongoOplog, MongoReplSet, MongoServer,
)

#: the driver's appname: the server logs it, $currentOp and the profiler show it, and dbwatch skips its own
#: operations by it
APP_NAME = "dbwatch"

UNAUTHORIZED = 13
NO_REPLICATION = (76, 94)  # NoReplicationEnabled, NotYetInitialized


#: the driver's client, documents as dicts
Client = AsyncMongoClient[dict[str, Any]]


class MongoSession(DriverSession[Client]):
    """One AsyncMongoClient per target, bounded by the driver's timeouts.

    A single host is connected to directly (``directConnection=true``, unless the DSN says otherwise): dbwatch
    watches that member, not whichever one the driver would choose. Reads and writes are never retried by the
    driver; reconnection waits for the template's backoff.
    """

    default_port = 27017
    connect_errors = (PyMongoError, OSError, ValueError, TypeError)
    timeout_errors = (TimeoutError, NetworkTimeout)  # a socket timeout, not a server that cannot be found

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        # The driver gives up at 80 % of the shortest collector timeout, so the usual failure is its clean
        # error rather than the daemon cancelling the collection mid-reply. Server selection gets half: it
        # only notices its deadline at the monitor's next check (every 500 ms at most).
        self.timeout_ms = int(max(0.5, self.shortest_timeout * 0.8) * 1000)
        self.selection_timeout_ms = int(max(0.5, self.shortest_timeout * 0.5) * 1000)
        parsed = urllib.parse.urlsplit(target.dsn)
        query = urllib.parse.parse_qs(parsed.query)
        keys = {k.lower() for k in query}
        self._direct = (parsed.scheme == "mongodb" and "," not in self.endpoint
                        and "directconnection" not in keys and "replicaset" not in keys)

    def endpoint_of(self, dsn: str) -> str:
        # the hosts as written (a replica set DSN names several), without the user
        return urllib.parse.urlsplit(dsn).netloc.rpartition("@")[2] or "localhost:27017"

    async def connect(self, password: str | None) -> Client:
        options: dict[str, Any] = {
            "appname": APP_NAME, "serverSelectionTimeoutMS": self.selection_timeout_ms,
            "connectTimeoutMS": self.timeout_ms, "socketTimeoutMS": self.timeout_ms,
            "retryReads": False, "retryWrites": False, "maxPoolSize": 4, "tz_aware": True,
        }
        if self._direct:
            options["directConnection"] = True
        if password is not None:
            options["password"] = password
        return AsyncMongoClient(self.target.dsn, **options)

    async def prepare(self, client: Client) -> None:
        await client.admin.command("ping")  # connects and authenticates, or says why not

    async def disconnect(self, client: Client, graceful: bool) -> None:
        await _close(client)

    def describe(self, exc: BaseException) -> str:
        return describe(exc)

    def connect_reason(self, exc: BaseException, password: str | None) -> str:
        reason = self.safe(describe(exc), password)
        if "closed" in reason and "?" not in reason:
            # The driver reports a reply it cannot parse as a protocol error or, when it read the reply
            # before it waited for it, as a closed connection: either way the handshake never completed.
            reason += " during the handshake (is this port a MongoDB server?)"
        return reason

    def safe(self, text: str, password: str | None = None) -> str:
        return super().safe(text.removeprefix(f"{self.endpoint}: "), password)

    async def command(self, db: str, command: dict[str, Any]) -> tuple[dict[str, Any] | None, OperationFailure | None]:
        """Run a command the server may refuse: ``(reply, None)`` or ``(None, the refusal)``. A lost connection
        raises a CollectorError, and the client is dropped to be reopened next time."""
        client = await self.connection()
        try:
            return await client[db].command(command), None
        except OperationFailure as exc:
            return None, exc
        except (PyMongoError, OSError) as exc:
            raise self.lost(exc) from None

    async def query(self, coro_factory: Any) -> tuple[list[dict[str, Any]] | None, OperationFailure | None]:
        """Run ``coro_factory(client)`` (a find or aggregate to a list) with :meth:`command`'s error handling."""
        client = await self.connection()
        try:
            return await coro_factory(client), None
        except OperationFailure as exc:
            return None, exc
        except (PyMongoError, OSError) as exc:
            raise self.lost(exc) from None


async def _close(client: Client) -> None:
    try:
        await client.close()
    except Exception:  # closing a broken client: nothing more to do
        pass


_TIMEOUTS = re.compile(r" \(configured timeouts: [^)]*\)")


def describe(exc: BaseException) -> str:
    """One line for the user: the server's message and code, or the driver's first words without the
    topology description it appends to server selection errors."""
    if isinstance(exc, OperationFailure):
        details = exc.details or {}
        message = details.get("errmsg") or str(exc).split(", full error:")[0]
        name = f" {details['codeName']}" if details.get("codeName") else ""
        return f"{message} (code {exc.code}{name})" if exc.code is not None else message
    if isinstance(exc, ConfigurationError):
        return f"configuration: {exc}"
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    text = text.split(", Timeout: ")[0]
    text = _TIMEOUTS.sub("", text)
    if "message length" in text.lower() or "opcode" in text.lower():
        text += " (is this port a MongoDB server?)"
    return text


def refusal_note(command: str, exc: OperationFailure, what: str, grant: str) -> str:
    if exc.code == UNAUTHORIZED:
        return f"{command} is not allowed to dbwatch's user ({describe(exc)}): {what} not collected; {grant}"
    return f"{command} failed ({describe(exc)}): {what} not collected"


CLUSTER_MONITOR = ('grant the clusterMonitor role: db.getSiblingDB("admin").grantRolesToUser("<user>", '
                   '[{role: "clusterMonitor", db: "admin"}])')


class MongoOptions(CollectorOptions):
    long_op_seconds: Number = 60.0  # operations running this long count as long


class MongoCollector(Collector[MongoSession, MongoOptions]):
    """The server as a whole: connections, operations, WiredTiger cache, asserts, the replica set and its
    lag, the oplog window, long-running operations. Facts: :class:`MongoServer`, :class:`MongoReplSet` (replica
    set members only), :class:`MongoOplog`, :class:`MongoLongOps` and the Summary."""

    name = "mongodb"
    up_metric = "mongodb_up"
    options_model = MongoOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        long_op_seconds = self.options.long_op_seconds
        async with session.lock:
            hello = (await session.command("admin", {"hello": 1}))[0] or {}
            status, status_error = await session.command("admin", {"serverStatus": 1})
            build = (await session.command("admin", {"buildInfo": 1}))[0] if status is None else None
            rs, rs_error = None, None
            if hello.get("msg") != "isdbgrid":  # a mongos has no replica set of its own
                rs, rs_error = await session.command("admin", {"replSetGetStatus": 1})
            oplog, oplog_error = (await _oplog(session)) if rs is not None else (None, None)
            ops, ops_error = await session.query(_current_ops)
        if status_error is not None:
            snapshot.notes.append(refusal_note("serverStatus", status_error,
                                               "connections, opcounters, cache and asserts are", CLUSTER_MONITOR))
        if rs_error is not None and rs_error.code not in NO_REPLICATION:
            snapshot.notes.append(refusal_note("replSetGetStatus", rs_error, "replica set status is",
                                               CLUSTER_MONITOR))
        if oplog_error is not None:
            snapshot.notes.append(refusal_note("find on local.oplog.rs", oplog_error, "the oplog window is",
                                               CLUSTER_MONITOR))
        if ops_error is not None:
            snapshot.notes.append(refusal_note("$currentOp", ops_error, "long-running operations are",
                                               'grant the clusterMonitor role (it includes the inprog action)'))
        server = _server(hello, status, build)
        snapshot.version = server.version or None
        snapshot.families.extend(_server_families(server, status))
        if status is not None:
            snapshot.families.extend(more_status_families(status))
        snapshot.put(server)
        summary: dict[str, Any] = {"version": server.version, "role": server.role}
        if server.connections_current is not None:
            summary["connections"] = f"{server.connections_current}/" \
                                     f"{server.connections_current + (server.connections_available or 0)}"
        if rs is not None:
            replset = _replset(rs)
            snapshot.put(replset)
            snapshot.families.extend(_replset_families(replset))
            summary["replica set"] = f"{replset.set_name} ({sum(m.health for m in replset.members)}/" \
                                     f"{len(replset.members)} members healthy)"
            if replset.max_lag_seconds is not None:
                summary["max lag (s)"] = round(replset.max_lag_seconds, 1)
        if oplog is not None:
            snapshot.put(oplog)
            snapshot.families.extend(_oplog_families(oplog))
            summary["oplog window (h)"] = round(oplog.window_seconds / 3600, 1)
        if ops is not None:
            long_ops = _long_ops(ops, long_op_seconds)
            snapshot.put(MongoLongOps(tuple(long_ops)))
            snapshot.families.extend(_ops_families(ops, long_ops))
        snapshot.families.extend(compat_families(snapshot.families, server.set_name))  # PMM's dashboards
        snapshot.put(Summary(summary))


async def _current_ops(client: Client) -> list[dict[str, Any]]:
    cursor = await client.admin.aggregate([
        {"$currentOp": {"allUsers": True, "idleConnections": False}},
        {"$match": {"active": True}},
    ])
    return await cursor.to_list(1000)


async def _oplog(session: MongoSession) -> tuple[MongoOplog | None, OperationFailure | None]:
    async def ends(client: Client) -> list[dict[str, Any]]:
        oplog = client.local["oplog.rs"]
        first = await oplog.find_one({}, {"ts": 1, "_id": 0}, sort=[("$natural", 1)])
        last = await oplog.find_one({}, {"ts": 1, "_id": 0}, sort=[("$natural", -1)])
        return [doc for doc in (first, last) if doc]

    docs, error = await session.query(ends)
    if error is not None or not docs or len(docs) < 2:
        return None, error
    first, last = (_ts_seconds(d.get("ts")) for d in docs)
    if first is None or last is None:
        return None, None
    return MongoOplog(first=first, last=last, window_seconds=max(0.0, last - first)), None


def _ts_seconds(value: Any) -> float | None:
    if isinstance(value, Timestamp):
        return float(value.time)
    if isinstance(value, dt.datetime):
        return _epoch(value)
    return None


def _epoch(value: Any) -> float | None:
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return float(value.timestamp())


def _num(doc: dict[str, Any] | None, *path: str) -> Any:
    node: Any = doc or {}
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool):
        return int(node)
    return node if isinstance(node, (int, float)) else None


def _role(hello: dict[str, Any]) -> str:
    if hello.get("msg") == "isdbgrid":
        return "mongos"
    if hello.get("isWritablePrimary", hello.get("ismaster")):
        return "primary" if hello.get("setName") else "standalone"
    if hello.get("secondary"):
        return "secondary"
    return "arbiter" if hello.get("arbiterOnly") else "other"


def _server(hello: dict[str, Any], status: dict[str, Any] | None, build: dict[str, Any] | None) -> MongoServer:
    cache = ("wiredTiger", "cache")
    return MongoServer(
        version=str((status or build or {}).get("version", "")),
        process=str((status or {}).get("process", "mongos" if hello.get("msg") == "isdbgrid" else "mongod")),
        role=_role(hello),
        uptime_seconds=_num(status, "uptime"),
        is_primary=bool(hello.get("isWritablePrimary", hello.get("ismaster", False))),
        set_name=hello.get("setName"),
        connections_current=_num(status, "connections", "current"),
        connections_available=_num(status, "connections", "available"),
        cache_used_bytes=_num(status, *cache, "bytes currently in the cache"),
        cache_max_bytes=_num(status, *cache, "maximum bytes configured"),
        cache_dirty_bytes=_num(status, *cache, "tracked dirty bytes in the cache"),
        page_faults=_num(status, "extra_info", "page_faults"),
    )


G, C = MetricType.GAUGE, MetricType.COUNTER

# serverStatus sub-documents mongodb_exporter turns into one metric with a label per key (exporter/metrics.go).
_LABELLED: tuple[tuple[tuple[str, ...], str, str, MetricType, str], ...] = (
    (("connections",), "mongodb_ss_connections", "conn_type", G,
     "serverStatus.connections: current, available, totalCreated, active."),
    (("opcounters",), "mongodb_ss_opcounters", "legacy_op_type", C, "Operations by type since the server started."),
    (("opcountersRepl",), "mongodb_ss_opcountersRepl", "legacy_op_type", C,
     "Replicated operations applied by type since the server started."),
    (("asserts",), "mongodb_ss_asserts", "assert_type", C, "Asserts raised by type since the server started."),
    (("globalLock", "currentQueue"), "mongodb_ss_globalLock_currentQueue", "count_type", G,
     "Operations queued waiting for a lock."),
)

# Single values, flattened as mongodb_exporter names them (spaces and dots become underscores).
_SINGLE: tuple[tuple[tuple[str, ...], str, MetricType, str], ...] = (
    (("uptime",), "mongodb_ss_uptime", G, "Seconds since the server started."),
    (("extra_info", "page_faults"), "mongodb_ss_extra_info_page_faults", C, "Page faults since the server started."),
    (("wiredTiger", "cache", "bytes currently in the cache"), "mongodb_ss_wt_cache_bytes_currently_in_the_cache", G,
     "Bytes in the WiredTiger cache."),
    (("wiredTiger", "cache", "maximum bytes configured"), "mongodb_ss_wt_cache_maximum_bytes_configured", G,
     "Size of the WiredTiger cache."),
    (("wiredTiger", "cache", "tracked dirty bytes in the cache"),
     "mongodb_ss_wt_cache_tracked_dirty_bytes_in_the_cache", G, "Modified bytes in the WiredTiger cache."),
)


def _server_families(server: MongoServer, status: dict[str, Any] | None) -> list[MetricFamily]:
    up = gauge("mongodb_up", "Whether the last collection could reach the server (1 = yes).")
    up.add((), 1)
    instance = info("dbwatch_mongodb_instance_info", "Information about the MongoDB server (always 1).",
                    ("version", "process", "replset", "role"))
    instance.add((server.version, server.process, server.set_name or "", server.role), 1)
    families = [up, instance]
    if status is None:
        return families
    for path, name, label, kind, help in _LABELLED:
        node: Any = status
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        fam = MetricFamily(name, kind, help, (label,))
        for key, value in node.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                fam.add((key,), value)
        families.append(fam)
    for path, name, kind, help in _SINGLE:
        value = _num(status, *path)
        if value is not None:
            fam = MetricFamily(name, kind, help)
            fam.add((), value)
            families.append(fam)
    if server.cache_used_ratio is not None:
        ratio = gauge("dbwatch_mongodb_wt_cache_used_ratio", "WiredTiger cache bytes in use over its size.")
        ratio.add((), server.cache_used_ratio)
        dirty = gauge("dbwatch_mongodb_wt_cache_dirty_ratio", "Modified WiredTiger cache bytes over its size.")
        dirty.add((), (server.cache_dirty_bytes or 0) / (server.cache_max_bytes or 1))
        families += [ratio, dirty]
    if server.connections_used_ratio is not None:
        used = gauge("dbwatch_mongodb_connections_used_ratio",
                     "Incoming connections in use over the most the server accepts (current + available).")
        used.add((), server.connections_used_ratio)
        families.append(used)
    return families


def _replset(rs: dict[str, Any]) -> MongoReplSet:
    raw = [m for m in rs.get("members", []) if isinstance(m, dict)]
    primary = next((m for m in raw if m.get("state") == 1 and _num(m, "health") == 1), None)
    primary_optime = _epoch(primary.get("optimeDate")) if primary else None
    members = []
    for m in raw:
        health = int(_num(m, "health") or 0)
        optime = _epoch(m.get("optimeDate")) if health else None
        lag = None
        if m.get("state") == 2 and health and optime is not None and primary_optime is not None:
            lag = max(0.0, primary_optime - optime)
        members.append(MongoMember(
            name=str(m.get("name", "")), state=int(_num(m, "state") or 0), state_str=str(m.get("stateStr", "")),
            health=health, optime=optime, lag_seconds=lag, is_self=bool(m.get("self")),
        ))
    return MongoReplSet(set_name=str(rs.get("set", "")), my_state=int(_num(rs, "myState") or 0),
                        date=_epoch(rs.get("date")) or time.time(),
                        primary=str(primary["name"]) if primary else None, members=members)


def _replset_families(replset: MongoReplSet) -> list[MetricFamily]:
    my_state = gauge("mongodb_rs_myState", "This member's replica set state (1 PRIMARY, 2 SECONDARY, ...).")
    my_state.add((), replset.my_state)
    labels = ("member_idx", "member_state")
    health = gauge("mongodb_rs_members_health", "Whether the member is up (1) or down (0), as this member sees it.",
                   labels)
    state = gauge("mongodb_rs_members_state", "The member's replica set state (1 PRIMARY, 2 SECONDARY, 8 DOWN, ...).",
                  labels)
    optime = gauge("mongodb_rs_members_optimeDate",
                   "The member's last applied operation (milliseconds since the epoch, as mongodb_exporter has it).",
                   labels)
    lag = gauge("dbwatch_mongodb_replication_lag_seconds",
                "Seconds the secondary's last applied operation is behind the primary's (healthy secondaries).",
                ("member",))
    for m in replset.members:
        key = (m.name, m.state_str)
        health.add(key, m.health)
        state.add(key, m.state)
        if m.optime is not None:
            optime.add(key, m.optime * 1000)
        if m.lag_seconds is not None:
            lag.add((m.name,), m.lag_seconds)
    primary = gauge("dbwatch_mongodb_replset_has_primary", "Whether this member sees a healthy PRIMARY (1 = yes).")
    primary.add((), int(replset.primary is not None))
    return [my_state, health, state, optime, lag, primary]


def _oplog_families(oplog: MongoOplog) -> list[MetricFamily]:
    head = gauge("mongodb_mongod_replset_oplog_head_timestamp", "Time of the newest oplog entry (Unix time).")
    head.add((), oplog.last)
    tail = gauge("mongodb_mongod_replset_oplog_tail_timestamp", "Time of the oldest oplog entry (Unix time).")
    tail.add((), oplog.first)
    window = gauge("dbwatch_mongodb_oplog_window_seconds",
                   "Span of the oplog (newest - oldest entry): how long a secondary may lag and still catch up.")
    window.add((), oplog.window_seconds)
    return [head, tail, window]


def _seconds_running(op: dict[str, Any]) -> float:
    micros = _num(op, "microsecs_running")
    if micros is not None:
        return float(micros) / 1e6
    return float(_num(op, "secs_running") or 0)


def _long_ops(ops: list[dict[str, Any]], threshold: float) -> list[MongoOperation]:
    found = []
    for op in ops:
        if op.get("appName") == APP_NAME or op.get("op") == "none":
            continue
        seconds = _seconds_running(op)
        if seconds < threshold:
            continue
        found.append(MongoOperation(
            opid=str(op.get("opid", "")), op=str(op.get("op", "")), ns=str(op.get("ns", "")),
            seconds_running=seconds, client=str(op.get("client", "")), app_name=str(op.get("appName", "")),
            plan_summary=str(op.get("planSummary", "")), description=str(op.get("desc", "")),
        ))
    return sorted(found, key=lambda o: -o.seconds_running)


def _ops_families(ops: list[dict[str, Any]], long_ops: list[MongoOperation]) -> list[MetricFamily]:
    theirs = [op for op in ops if op.get("appName") != APP_NAME and op.get("op") != "none"]
    oldest = gauge("dbwatch_mongodb_oldest_operation_seconds",
                   "Age of the longest-running active operation (0 when none runs; dbwatch's own are skipped).")
    oldest.add((), max((_seconds_running(op) for op in theirs), default=0.0))
    count = gauge("dbwatch_mongodb_long_operations",
                  "Active operations running at least long_op_seconds (60 s by default).")
    count.add((), len(long_ops))
    active = gauge("dbwatch_mongodb_active_operations", "Active operations ($currentOp, dbwatch's own skipped).")
    active.add((), len(theirs))
    return [oldest, count, active]
