"""``DocumentModelCandidate`` on MongoDB, the reverse of the JSON one (rules/strategy_access.py): collections
read mostly through ``$lookup``, documents used relationally (docs/architecture-advice.md).

Reads the mongodb ``profiler`` collector's entries (collectors/mongodb_profiler.py): the backlog it found in
``system.profile`` at its first collection and the entries new at each later one, over the snapshots the store
keeps (one-shot ``dbwatch advise``: the backlog alone). Per collection: its profiled reads (finds, aggregates,
counts, distincts), the aggregates among them with a ``$lookup`` or ``$graphLookup`` stage, the collections
and fields they join, and their time. It fires when those aggregates are at least ``lookup_min_ops`` and at
least ``lookup_min_share`` of the collection's profiled reads (the profiler collector's options). Whether the
looked-up side has an index on the field it is joined by comes from the ``indexstats`` collector.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from dbwatch.model import Finding
from dbwatch.model.facts.mongodb import (
    MongoIndexUsages, MongoLookup, MongoProfileBacklog, MongoProfiler, MongoSlowOp, MongoSlowOps,
)
from dbwatch.rules.engine import TargetView
from dbwatch.rules.strategy_common import strategy_finding

__all__ = ["MongoLookupRule"]

DIRECTION = "relational use of documents"
UNKNOWN = "unknown"  # the indexstats collector did not report the looked-up collection


@dataclass(slots=True)
class _Join:
    lookup: MongoLookup
    ops: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class _Collection:
    database: str
    ns: str
    reads: int = 0
    read_seconds: float = 0.0
    joined: int = 0
    joined_seconds: float = 0.0
    joins: dict[MongoLookup, _Join] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.ns[len(self.database) + 1:]


class MongoLookupRule:
    """Collections whose profiled reads are mostly aggregates joining other collections."""

    name = "DocumentModelCandidate"
    engines = ("mongodb",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        profiler = view.fact(MongoProfiler)
        if profiler is None:
            return []
        ops: list[MongoSlowOp] = []
        for snapshot in view.history_with(MongoProfiler):
            if snapshot.ok:
                ops.extend(snapshot.fact(MongoProfileBacklog) or ())
                ops.extend(snapshot.fact(MongoSlowOps) or ())
        collections: dict[str, _Collection] = {}
        writes: dict[str, int] = {}
        for op in ops:
            if op.is_write:
                writes[op.ns] = writes.get(op.ns, 0) + 1
            if not op.is_read:
                continue
            c = collections.setdefault(op.ns, _Collection(op.database, op.ns))
            c.reads += 1
            c.read_seconds += op.duration_seconds
            if not op.lookups:
                continue
            c.joined += 1
            c.joined_seconds += op.duration_seconds
            for lookup in dict.fromkeys(op.lookups):  # a join repeated in one pipeline counts once per operation
                join = c.joins.setdefault(lookup, _Join(lookup))
                join.ops += 1
                join.seconds += op.duration_seconds
        span = max(op.ts for op in ops) - min(op.ts for op in ops) if ops else 0.0
        indexes = _leading_fields(view.fact(MongoIndexUsages))
        return [self._finding(view, profiler, c, writes, indexes, span) for c in collections.values()
                if c.joined >= profiler.lookup_min_ops and c.joined / c.reads >= profiler.lookup_min_share]

    def _finding(self, view: TargetView, profiler: MongoProfiler, c: _Collection, writes: dict[str, int],
                 indexes: dict[str, set[str]] | None, span: float) -> Finding:
        share = c.joined / c.reads
        level = profiler.levels.get(c.database, 0)
        slowms = profiler.slowms.get(c.database, 100)
        joins = sorted(c.joins.values(), key=lambda j: -j.ops)
        rows = []
        unindexed: list[tuple[str, str]] = []
        busy_sources = []
        for j in joins:
            source = j.lookup.source if "." in j.lookup.source else f"{c.database}.{j.lookup.source}"
            index = _index_state(indexes, source, j.lookup.foreign_field)
            if index is False:
                unindexed.append((source, j.lookup.foreign_field))
            source_writes = writes.get(source, 0)
            if source_writes >= j.ops:
                busy_sources.append(source)
            rows.append({"stage": j.lookup.stage, "from": source, "local_field": j.lookup.local_field,
                         "foreign_field": j.lookup.foreign_field, "ops": j.ops, "ms": round(j.seconds * 1000),
                         "foreign_field_indexed": index, "from_profiled_writes": source_writes})
        pairs = "; ".join(f"{j.lookup.stage} {c.name}.{j.lookup.local_field or '(pipeline)'} -> "
                          f"{j.lookup.source}.{j.lookup.foreign_field or '(pipeline)'} in {j.ops}" for j in joins)
        sampled = ("every operation is profiled (level 2)" if level == 2 else
                   f"only operations slower than {slowms} ms are profiled (level {level}): the share is of slow "
                   f"reads, and fast finds are not in it")
        observed = (f"{c.joined} of the {c.reads} profiled reads of {c.ns} ({share:.0%}) are aggregates joining "
                    f"other collections, {c.joined_seconds * 1000:.0f} ms of the {c.read_seconds * 1000:.0f} ms "
                    f"of its profiled reads ({c.joined_seconds * 1000 / c.joined:.0f} ms each), in profiler entries "
                    f"spanning {_duration(span)}: {pairs}; {sampled}."
                    + "".join(f" {s} has no index starting with {f}: every join scans it." for s, f in unindexed)
                    + (f" Profiled writes to the looked-up side: {', '.join(busy_sources)} as many as the joins "
                       f"reading it." if busy_sources else ""))
        sql = "\n".join(_create_index(s, f) for s, f in unindexed) or None
        action = (f"where the looked-up documents are read together with those of {c.name} and that side is small, "
                  "bounded and rarely changed, embed them (or the fields read, as an extended reference: the "
                  "_id plus a copy of those fields) and drop the $lookup"
                  + (f"; meanwhile index the joined field on the looked-up side ({len(unindexed)} statement(s) "
                     "here; from MongoDB 4.2 a build locks the collection only at its start and end)" if unindexed
                     else "")
                  + "; where the data is truly relational (many-to-many, joined in several directions, each "
                  "side updated on its own), a relational store fits it better than documents.")
        confidence = (0.7 if level == 2 else 0.5) + (0.1 if share >= 0.8 else 0.0) - (0.2 if busy_sources else 0.0)
        evidence = {"direction": DIRECTION, "database": c.database, "collection": c.name, "ns": c.ns,
                    "profiled_reads": c.reads, "lookup_reads": c.joined, "lookup_share": round(share, 4),
                    "lookup_ms": round(c.joined_seconds * 1000), "read_ms": round(c.read_seconds * 1000),
                    "joins": rows, "profiling_level": level, "slowms": slowms, "window_seconds": round(span),
                    "indexes_known": indexes is not None, "lookup_min_ops": profiler.lookup_min_ops,
                    "lookup_min_share": profiler.lookup_min_share}
        return strategy_finding(
            self.name, view, f"{c.ns}: {share:.0%} of its profiled reads ({c.joined} of {c.reads}) are $lookup "
            f"joins: embed what is read together, or treat the data as relational",
            observed=observed, action=action,
            cost="embedding duplicates the looked-up data: every change to it fans out to each document holding "
            "a copy (an update of many documents, not atomic across them without a transaction), and an embedded "
            "array that grows without bound runs into the 16 MB document limit; an index costs writes and memory "
            "on the looked-up collection.",
            wrong_when="the looked-up side is large, unbounded (a one-to-many that keeps growing) or updated "
            "often, or it is read on its own far more than through the join; or the profiler's sample is not "
            "the workload (level 1 sees slow operations only, and the backlog covers only what system.profile "
            "still holds).",
            confidence=confidence, labels={"database": c.database, "collection": c.name}, evidence=evidence,
            sql=sql, impact=min(0.4, c.joined_seconds / max(span, 60.0)))


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def _leading_fields(usages: MongoIndexUsages | None) -> dict[str, set[str]] | None:
    """namespace -> the first field of each of its indexes, or None when index usage was not collected."""
    if usages is None:
        return None
    out: dict[str, set[str]] = {}
    for usage in usages:
        try:
            first = next(iter(json.loads(usage.key)), None)
        except (ValueError, TypeError):
            continue
        fields = out.setdefault(f"{usage.database}.{usage.collection}", set())
        if first is not None:
            fields.add(first)
    return out


def _index_state(indexes: dict[str, set[str]] | None, source: str, foreign_field: str) -> bool | str:
    """Whether an index of ``source`` starts with the joined field: True, False, or "unknown" (not reported),
    or "n/a" for a join by pipeline (no single field)."""
    if not foreign_field:
        return "n/a"
    if indexes is None or source not in indexes:
        return UNKNOWN
    return foreign_field in indexes[source]


def _create_index(source: str, foreign_field: str) -> str:
    database, _, collection = source.partition(".")
    return (f"db.getSiblingDB({json.dumps(database)}).getCollection({json.dumps(collection)})"
            f".createIndex({json.dumps({foreign_field: 1})})")
