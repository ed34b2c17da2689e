"""The typed facts the MongoDB collectors put on a snapshot for rules to read (``snapshot.fact(T)``).

Rules never import collectors, so they read these by attribute. Times are seconds (Unix time for points in
time), sizes bytes; a field is ``None`` when the server did not say (a standalone has no replica set, a
user without ``clusterMonitor`` gets no serverStatus). States keep MongoDB's own words (``PRIMARY``,
``SECONDARY``, ``(not reachable/healthy)``), as ``replSetGetStatus`` and mongodb_exporter's labels do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class MongoServer:
    """The server as ``hello`` and ``serverStatus`` describe it."""

    version: str
    process: str  # mongod, mongos
    role: str  # primary, secondary, standalone, arbiter, mongos, other
    uptime_seconds: float | None
    is_primary: bool
    set_name: str | None
    connections_current: int | None
    connections_available: int | None
    cache_used_bytes: int | None  # WiredTiger "bytes currently in the cache"
    cache_max_bytes: int | None  # WiredTiger "maximum bytes configured"
    cache_dirty_bytes: int | None  # WiredTiger "tracked dirty bytes in the cache"
    page_faults: int | None

    @property
    def connections_used_ratio(self) -> float | None:
        if self.connections_current is None or not self.connections_available:
            return None
        return self.connections_current / (self.connections_current + self.connections_available)

    @property
    def cache_used_ratio(self) -> float | None:
        if self.cache_used_bytes is None or not self.cache_max_bytes:
            return None
        return self.cache_used_bytes / self.cache_max_bytes


@dataclass(frozen=True, slots=True)
class MongoMember:
    """One entry of ``replSetGetStatus.members[]``."""

    name: str  # host:port
    state: int  # 1 PRIMARY, 2 SECONDARY, 8 DOWN, ...
    state_str: str
    health: int  # 1 up, 0 down (as this server's heartbeats see it)
    optime: float | None  # optimeDate, Unix time; None for a member that is down (mongod reports the epoch)
    lag_seconds: float | None  # the primary's optimeDate minus this member's; secondaries seen healthy only
    is_self: bool


@dataclass(frozen=True, slots=True)
class MongoReplSet:
    """``replSetGetStatus`` from this member's point of view."""

    set_name: str
    my_state: int
    date: float  # the server's clock when it answered
    primary: str | None  # the healthy PRIMARY's name, None during an election or when it is unreachable
    members: list[MongoMember]

    @property
    def max_lag_seconds(self) -> float | None:
        lags = [m.lag_seconds for m in self.members if m.lag_seconds is not None]
        return max(lags) if lags else None


@dataclass(frozen=True, slots=True)
class MongoOplog:
    """The span of ``local.oplog.rs`` (its first and last entry)."""

    first: float  # Unix time of the oldest entry still in the oplog
    last: float  # Unix time of the newest entry
    window_seconds: float  # how long a secondary may be cut off and still catch up without a resync


@dataclass(frozen=True, slots=True)
class MongoOperation:
    """An active operation from ``$currentOp``, running at least the collector's ``long_op_seconds``."""

    opid: str
    op: str  # query, update, command, getmore, ...
    ns: str
    seconds_running: float
    client: str
    app_name: str
    plan_summary: str
    description: str


#: commands that read their collection (the profiler records them as op "command"; a find is op "query")
READ_COMMANDS = ("aggregate", "count", "distinct")


@dataclass(frozen=True, slots=True)
class MongoLookup:
    """One join stage of an aggregation pipeline (nested ones included: inside ``$facet``, ``$unionWith`` or
    a ``$lookup``'s own pipeline): ``$lookup`` with ``from``, ``localField``, ``foreignField``, or
    ``$graphLookup`` with ``from``, ``connectFromField``, ``connectToField``."""

    stage: str  # "$lookup" or "$graphLookup"
    source: str  # the looked-up collection ("from"), in the operation's database; "db.collection" for another
    local_field: str  # "" when a $lookup joins by its own pipeline (let + $expr) instead of the two fields
    foreign_field: str


@dataclass(frozen=True, slots=True)
class MongoSlowOp:
    """One ``system.profile`` entry (an operation slower than ``slowms``), newer than the previous collection.

    ``filter_shape`` and ``sort_shape`` are the query's filter and sort with every value replaced by 1, as
    compact JSON in the query's own key order (the order matters for index design: equality, sort, range),
    e.g. ``{"status":1,"qty":{"$gt":1}}``; empty when the operation had none.
    """

    ts: float  # Unix time
    database: str
    ns: str  # database.collection
    op: str  # query, update, remove, command, getmore, insert
    duration_seconds: float
    plan_summary: str  # e.g. "COLLSCAN", "IXSCAN { status: 1 }"
    keys_examined: int
    docs_examined: int
    nreturned: int
    filter_shape: str
    sort_shape: str
    app_name: str
    command: str = ""  # the command's name (find, aggregate, count, update, ...); "" in entries before 3.6
    lookups: tuple[MongoLookup, ...] = ()  # the join stages of an aggregation's pipeline

    @property
    def is_read(self) -> bool:
        """A read of its collection: a find, or an aggregate, count or distinct command (not a getMore, which
        continues a read already counted)."""
        return self.op == "query" or (self.op == "command" and self.command in READ_COMMANDS)

    @property
    def is_write(self) -> bool:
        return self.op in ("insert", "update", "remove") or self.command.lower() == "findandmodify"

    @property
    def collscan(self) -> bool:
        return "COLLSCAN" in self.plan_summary

    @property
    def plan(self) -> str:
        """The plan's first stage: COLLSCAN, IXSCAN, IDHACK, COUNT_SCAN, ... ("" when the entry has none)."""
        return self.plan_summary.split(" ", 1)[0].rstrip(",") if self.plan_summary else ""


@dataclass(frozen=True, slots=True)
class MongoProfiler:
    """What the profiler collection found besides the operations themselves."""

    baseline: bool  # the first collection: entries already there are the starting point, not counted
    levels: dict[str, int] = field(default_factory=dict)  # database -> profiling level (0 off, 1 slow, 2 all)
    slowms: dict[str, int] = field(default_factory=dict)  # database -> slowms
    truncated: bool = False  # more new entries than max_entries: the oldest were left out
    #: DocumentModelCandidate's thresholds (the collector's options): aggregates with a join stage on one
    #: collection, and their share of the collection's profiled reads
    lookup_min_ops: int = 20
    lookup_min_share: float = 0.5


@dataclass(frozen=True, slots=True)
class MongoIndexUsage:
    """One index from ``$indexStats``: how often it was used since ``since`` (a restart resets it)."""

    database: str
    collection: str
    name: str
    key: str  # the key pattern as compact JSON, e.g. {"status":1,"created":-1}
    ops: int
    since: float | None  # Unix time the counting began


@dataclass(frozen=True, slots=True)
class MongoLongOps(FactList[MongoOperation]):
    """Operations running longer than the collector's ``long_op_seconds`` ($currentOp)."""


@dataclass(frozen=True, slots=True)
class MongoSlowOps(FactList[MongoSlowOp]):
    """The profiler's entries newer than the previous collection (the profiler collector)."""


@dataclass(frozen=True, slots=True)
class MongoProfileBacklog(FactList[MongoSlowOp]):
    """The entries already in ``system.profile`` at the profiler collector's first collection (its baseline),
    newest ``max_entries`` per database: not counted (counters, index advice), but a sample of the workload for
    the rules that judge shares (DocumentModelCandidate), so that a one-shot ``dbwatch advise`` has one."""


@dataclass(frozen=True, slots=True)
class MongoIndexUsages(FactList[MongoIndexUsage]):
    """Every index's ``$indexStats`` (the indexstats collector)."""
