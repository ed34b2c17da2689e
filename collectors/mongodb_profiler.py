"""MongoDB: slow operations from the database profiler (``system.profile``) and index usage (``$indexStats``).

Two collectors beside ``mongodb``, each able to be turned off on its own (profiler entries hold query
shapes some sites will not export), and neither ever takes ``mongodb_up`` down with it: a profiler that is
off, a database the user may not read, a collection that vanished in between are notes.

The profiler collector keeps, per database, the time of the newest entry already counted and asks only for
newer ones, so each entry is counted once; the first collection is the baseline (entries already there are
not counted in the counters nor by the index rule; they are kept as a backlog fact, a sample of the workload
for the strategy rule that judges shares). Entries become facts for the rules (namespace, command, plan, keys
and documents examined, the filter and sort with their values replaced by 1, an aggregation's join stages)
and counters by namespace, operation and plan.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from dbwatch.model import MetricFamily, Snapshot, counter, gauge
from dbwatch.collectors.base import Collector
from dbwatch.collectors.mongodb import APP_NAME, Client, MongoSession, refusal_note
from dbwatch.model.options import CollectorOptions, Count, Number, Texts
from dbwatch.model.facts.mongodb import (
    MongoIndexUsage, MongoIndexUsages, MongoLookup, MongoProfileBacklog, MongoProfiler, MongoSlowOp, MongoSlowOps,
)

#: databases that hold no application data (admin, config) or only replication state (local)
SYSTEM_DATABASES = ("admin", "config", "local")
OTHER = ("other", "", "")
READ_GRANT = 'grant read on the database (or the clusterMonitor role for every database)'


async def databases(session: MongoSession, configured: tuple[str, ...], snapshot: Snapshot) -> list[str]:
    """The configured databases, or every database but admin, config and local."""
    if configured:
        return list(configured)
    reply, error = await session.command("admin", {"listDatabases": 1, "nameOnly": True})
    if error is not None:
        snapshot.notes.append(refusal_note("listDatabases", error, "databases are",
                                           "list them in the collector's databases option, or grant clusterMonitor"))
        return []
    return [d["name"] for d in (reply or {}).get("databases", []) if d.get("name") not in SYSTEM_DATABASES]


class ProfilerOptions(CollectorOptions):
    databases: Texts = ()  # the databases to read; empty: every database but admin, config and local
    max_entries: Count = 1000  # new profiler entries read per database at each collection
    max_series: Count = 200  # (ns, op, plan) series exported; later newcomers are summed as "other"
    lookup_min_ops: Count = 20  # DocumentModelCandidate: profiled aggregates with $lookup on one collection
    lookup_min_share: Number = 0.5  # ... and their share of that collection's profiled reads


class IndexStatsOptions(CollectorOptions):
    databases: Texts = ()  # as the profiler's
    max_collections: Count = 200  # collections whose $indexStats are read at each collection


class ProfilerCollector(Collector[MongoSession, ProfilerOptions]):
    """Facts: :class:`MongoSlowOps` (the entries new since the previous collection, oldest first),
    :class:`MongoProfileBacklog` (the entries there before the first collection) and :class:`MongoProfiler`."""

    name = "profiler"
    up_metric = None
    options_model = ProfilerOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._since: dict[str, dt.datetime] = {}  # database -> ts of the newest entry already seen
        self._baselined = False
        self._totals: dict[tuple[str, str, str], list[float]] = {}  # (ns, op, plan) -> count, seconds, docs, keys

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        limit = self.options.max_entries
        levels: dict[str, int] = {}
        slowms: dict[str, int] = {}
        entries: list[MongoSlowOp] = []
        truncated = False
        async with session.lock:
            for db in await databases(session, self.options.databases, snapshot):
                status, error = await session.command(db, {"profile": -1})
                if error is not None:
                    snapshot.notes.append(refusal_note(f"profile on {db}", error, "its profiling level is",
                                                       READ_GRANT))
                    continue
                levels[db] = int((status or {}).get("was", 0))
                slowms[db] = int((status or {}).get("slowms", 100))
                if levels[db] == 0:
                    snapshot.notes.append(
                        f"the profiler is off on {db}: slow operations there are not collected; turn it on for "
                        f"slow operations only with db.getSiblingDB(\"{db}\").setProfilingLevel(1, "
                        f"{{slowms: 100}})")
                    continue
                # One more than kept, to know whether entries were left out.
                docs, error = await session.query(lambda c, db=db, want=limit + 1: self._read(c, db, want))
                if error is not None:
                    snapshot.notes.append(refusal_note(f"find on {db}.system.profile", error,
                                                       "its slow operations are", READ_GRANT))
                    continue
                docs = docs or []
                if len(docs) > limit:
                    docs, truncated = docs[-limit:], True
                if docs and isinstance(docs[-1].get("ts"), dt.datetime):
                    self._since[db] = docs[-1]["ts"]
                entries.extend(_slow_op(db, doc) for doc in docs if doc.get("appName") != APP_NAME
                               and not str(doc.get("ns", "")).endswith(".system.profile"))
        baseline = not self._baselined
        self._baselined = True
        entries.sort(key=lambda e: e.ts)
        backlog: list[MongoSlowOp] = []
        if baseline:
            backlog, entries, truncated = entries, [], False
        if truncated:
            snapshot.notes.append(f"more than {limit} new profiler entries since the previous collection: the oldest "
                                  f"were left out (raise max_entries or shorten the interval)")
        snapshot.put(MongoSlowOps(tuple(entries)), MongoProfileBacklog(tuple(backlog)))
        snapshot.put(MongoProfiler(baseline=baseline, levels=levels, slowms=slowms, truncated=truncated,
                                   lookup_min_ops=self.options.lookup_min_ops,
                                   lookup_min_share=self.options.lookup_min_share))
        snapshot.families.extend(self._families(entries, levels))

    async def _read(self, client: Client, db: str, limit: int) -> list[dict[str, Any]]:
        since = self._since.get(db)
        query = {"ts": {"$gt": since}} if since is not None else {}
        # Newest first, so that a first collection or a burst keeps the latest entries; reversed below.
        cursor = client[db]["system.profile"].find(query, sort=[("ts", -1)], limit=limit, batch_size=100)
        docs = await cursor.to_list(limit)
        docs.reverse()
        return docs

    def _families(self, entries: list[MongoSlowOp], levels: dict[str, int]) -> list[MetricFamily]:
        max_series = self.options.max_series
        for entry in entries:
            key = (entry.ns, entry.op, entry.plan)
            if key not in self._totals and len(self._totals) >= max_series:
                key = OTHER  # bounded series: later newcomers share one
            total = self._totals.setdefault(key, [0, 0.0, 0, 0])
            total[0] += 1
            total[1] += entry.duration_seconds
            total[2] += entry.docs_examined
            total[3] += entry.keys_examined
        labels = ("ns", "op", "plan")
        count = counter("dbwatch_mongodb_slow_ops_total",
                        "Profiler entries (operations slower than slowms) seen since dbwatch started, each once.",
                        labels)
        seconds = counter("dbwatch_mongodb_slow_ops_seconds_total", "Duration of those operations.", labels)
        docs = counter("dbwatch_mongodb_slow_ops_docs_examined_total", "Documents those operations examined.", labels)
        keys = counter("dbwatch_mongodb_slow_ops_keys_examined_total", "Index keys those operations examined.",
                       labels)
        for key, (n, secs, d, k) in sorted(self._totals.items()):
            count.add(key, n)
            seconds.add(key, secs)
            docs.add(key, d)
            keys.add(key, k)
        level = gauge("dbwatch_mongodb_profiling_level", "The database's profiling level (0 off, 1 slow operations, "
                                                         "2 all).", ("database",))
        for db, value in sorted(levels.items()):
            level.add((db,), value)
        return [count, seconds, docs, keys, level]


def _slow_op(db: str, doc: dict[str, Any]) -> MongoSlowOp:
    command = _mapping(doc.get("command"))
    query = _mapping(doc.get("query"))  # profiler entries before 3.6
    filter_, sort = _filter_and_sort({**query, **command})
    ts = doc.get("ts")
    return MongoSlowOp(
        ts=ts.timestamp() if isinstance(ts, dt.datetime) else 0.0,
        database=db,
        ns=str(doc.get("ns", "")),
        op=str(doc.get("op", "")),
        duration_seconds=float(doc.get("millis", 0) or 0) / 1000,
        plan_summary=str(doc.get("planSummary", "")),
        keys_examined=int(doc.get("keysExamined", 0) or 0),
        docs_examined=int(doc.get("docsExamined", 0) or 0),
        nreturned=int(doc.get("nreturned", 0) or 0),
        filter_shape=shape_json(filter_),
        sort_shape=shape_json(sort),
        app_name=str(doc.get("appName", "")),
        command=next(iter(command), ""),
        lookups=_lookups(command.get("pipeline")),
    )


def _filter_and_sort(command: dict[str, Any]) -> tuple[Any, Any]:
    """Where each kind of command keeps its filter: find's ``filter``, update/delete's ``q``, count/distinct/
    findAndModify's ``query``, an aggregation's first ``$match``; the sort likewise."""
    filter_ = next((command[k] for k in ("filter", "q", "query") if isinstance(command.get(k), dict)), None)
    sort = command.get("sort") if isinstance(command.get("sort"), dict) else None
    for stage in command.get("pipeline") or []:
        if not isinstance(stage, dict):
            continue
        if filter_ is None and isinstance(stage.get("$match"), dict):
            filter_ = stage["$match"]
        if sort is None and isinstance(stage.get("$sort"), dict):
            sort = stage["$sort"]
    return filter_, sort


def _lookups(pipeline: Any) -> tuple[MongoLookup, ...]:
    """The join stages of a pipeline, those nested in ``$facet``, ``$unionWith`` and a ``$lookup``'s own
    pipeline included; a ``$lookup`` without ``from`` (a pipeline over ``$documents``) joins no collection."""
    found: list[MongoLookup] = []
    for stage in pipeline if isinstance(pipeline, list) else []:
        for name, value in _mapping(stage).items():
            spec = _mapping(value)
            if name in ("$lookup", "$graphLookup") and spec.get("from"):
                local, foreign = ("localField", "foreignField") if name == "$lookup" else \
                    ("connectFromField", "connectToField")
                found.append(MongoLookup(name, _collection(spec["from"]), str(spec.get(local) or ""),
                                         str(spec.get(foreign) or "")))
            if name in ("$lookup", "$unionWith"):
                found.extend(_lookups(spec.get("pipeline")))
            elif name == "$facet":
                for branch in spec.values():
                    found.extend(_lookups(branch))
    return tuple(found)


def _collection(source: Any) -> str:
    """A ``from``: a collection of the same database, or ``{db, coll}`` (another database, 5.1+ in places)."""
    if isinstance(source, dict):
        return f"{source.get('db', '')}.{source.get('coll', '')}"
    return str(source)


def shape(value: Any) -> Any:
    """The value with every literal replaced by 1, operators and field names kept."""
    if isinstance(value, dict):
        return {str(k): shape(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [shape(v) for v in value]  # $and, $or, $nor: each branch keeps its shape
    return 1


def shape_json(value: Any) -> str:
    if not value:
        return ""
    return json.dumps(shape(value), separators=(",", ":"))


class IndexStatsCollector(Collector[MongoSession, IndexStatsOptions]):
    """``$indexStats`` per collection: how often each index was used. Facts:
    :class:`MongoIndexUsages`."""

    name = "indexstats"
    up_metric = None
    options_model = IndexStatsOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        max_collections = self.options.max_collections
        usages: list[MongoIndexUsage] = []
        async with session.lock:
            namespaces: list[tuple[str, str]] = []
            for db in await databases(session, self.options.databases, snapshot):
                names, error = await session.query(lambda c, db=db: c[db].list_collection_names(
                    filter={"type": "collection"}, authorizedCollections=True))
                if error is not None:
                    snapshot.notes.append(refusal_note(f"listCollections on {db}", error, "its index usage is",
                                                       READ_GRANT))
                    continue
                collections = sorted(str(name) for name in names or [])  # list_collection_names: strings
                namespaces.extend((db, n) for n in collections if not n.startswith("system."))
            if len(namespaces) > max_collections:
                snapshot.notes.append(f"{len(namespaces)} collections, more than max_collections ({max_collections}): "
                                      f"index usage of the rest is not collected")
            for db, coll in namespaces[:max_collections]:
                stats, error = await session.query(lambda c, db=db, coll=coll: _index_stats(c, db, coll))
                if error is not None:
                    snapshot.notes.append(refusal_note(f"$indexStats on {db}.{coll}", error,
                                                       "its index usage is", READ_GRANT))
                    continue
                usages.extend(_usage(db, coll, doc) for doc in stats or [])
        snapshot.put(MongoIndexUsages(tuple(usages)))
        ops = counter("mongodb_indexstats_accesses_ops",
                      "Uses of the index since accesses.since ($indexStats; a restart resets it).",
                      ("database", "collection", "key_name"))
        for usage in usages:
            ops.add((usage.database, usage.collection, usage.name), usage.ops)
        snapshot.families.append(ops)


async def _index_stats(client: Client, db: str, coll: str) -> list[dict[str, Any]]:
    cursor = await client[db][coll].aggregate([{"$indexStats": {}}])
    return await cursor.to_list(1000)


def _usage(db: str, coll: str, doc: dict[str, Any]) -> MongoIndexUsage:
    accesses = _mapping(doc.get("accesses"))
    since = accesses.get("since")
    return MongoIndexUsage(
        database=db, collection=coll, name=str(doc.get("name", "")),
        key=json.dumps({str(k): v if isinstance(v, (int, float, str)) else str(v)
                        for k, v in (doc.get("key") or {}).items()}, separators=(",", ":")),
        ops=int(accesses.get("ops", 0) or 0),
        since=since.timestamp() if isinstance(since, dt.datetime) else None,
    )


def _mapping(value: Any) -> dict[str, Any]:
    """A sub-document of a profiler or $indexStats entry, or an empty one when it is absent or not a document."""
    return value if isinstance(value, dict) else {}
