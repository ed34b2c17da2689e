"""MongoDB index candidates from the profiler: operations that scanned a whole collection (COLLSCAN).

Reads the :class:`~dbwatch.model.facts.mongodb.MongoSlowOps` of the mongodb ``profiler`` collector
(collectors/mongodb_profiler.py): every snapshot in the history the store keeps (each holds only the entries
new since the previous collection, so the history is the window). Operations with a COLLSCAN plan are grouped by namespace, filter shape and sort shape; each
group gets the index the ESR rule gives (MongoDB's "Equality, Sort, Range" guideline): the filter's
equality fields (a plain value, ``$eq``, ``$in``), then the sort fields, then the range fields (``$gt``,
``$gte``, ``$lt``, ``$lte``, ``$ne``, ``$nin``, ``$regex``, ``$exists``), in the filter's own order. ``$or``
/ ``$nor`` branches and operators on whole documents (``$expr``, ``$text``, ``$where``) are left out: they
need one index per branch, or none helps. An index the ``indexstats`` collector reports (when it runs) that
already starts with these fields covers the group: nothing is recommended.

The profiler's shapes replace values by 1, sort directions included, so the sort fields are ascending in
the suggested key; reverse them to match the application's sort if it sorts descending on a compound key.
Severity ``warning`` from 10 operations examining at least 1000 documents per document returned, else
``info``. Evidence: the COLLSCAN count, documents examined and returned, time, the shapes, and the
``createIndex`` call as ``sql``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from dbwatch.model import Finding, FindingKind, Severity
from dbwatch.model.facts.mongodb import MongoIndexUsages, MongoSlowOps
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["MongoIndexCandidate", "esr_key", "make_rules"]

WARNING_OPS = 10
WARNING_EXAMINED_PER_RETURNED = 1000
_EQUALITY = {"$eq", "$in", "$all", "$elemMatch", "$size"}
_RANGE = {"$gt", "$gte", "$lt", "$lte", "$ne", "$nin", "$regex", "$exists", "$type", "$mod"}
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [MongoIndexCandidate()]


def esr_key(filter_shape: str, sort_shape: str) -> list[str]:
    """The fields of the ESR index for a filter and sort shape (compact JSON as the profiler collector
    leaves them), or [] when the filter names no field an index could serve."""
    filter_ = json.loads(filter_shape) if filter_shape else {}
    sort = json.loads(sort_shape) if sort_shape else {}
    equality: list[str] = []
    ranges: list[str] = []

    def visit(clause: Any) -> None:
        if not isinstance(clause, dict):
            return
        for name, value in clause.items():
            if name == "$and" and isinstance(value, list):
                for branch in value:
                    visit(branch)
            elif name.startswith("$"):
                continue  # $or, $nor, $expr, $text, $where, $comment...
            elif isinstance(value, dict) and value and all(k.startswith("$") for k in value):
                operators = set(value)
                if operators & _RANGE:
                    ranges.append(name)
                elif operators & _EQUALITY:
                    equality.append(name)
            else:
                equality.append(name)  # a value (shape 1) or an embedded document compared whole

    visit(filter_)
    key = list(dict.fromkeys(equality))
    key += [f for f in (sort if isinstance(sort, dict) else {}) if not f.startswith("$") and f not in key]
    key += [f for f in dict.fromkeys(ranges) if f not in key]
    return key if equality or ranges else []


@dataclass(slots=True)
class _Group:
    database: str
    ns: str
    filter_shape: str
    sort_shape: str
    key: list[str]
    ops: int = 0
    docs_examined: int = 0
    keys_examined: int = 0
    returned: int = 0
    seconds: float = 0.0
    operations: set[str] = field(default_factory=set)


class MongoIndexCandidate:
    name = "MongoIndexCandidate"
    engines = ("mongodb",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        groups: dict[tuple[str, str, str], _Group] = {}
        for snapshot in view.history_with(MongoSlowOps):
            if not snapshot.ok:
                continue
            for op in snapshot.fact(MongoSlowOps) or ():
                if not op.collscan:
                    continue
                try:
                    key = esr_key(op.filter_shape, op.sort_shape)
                except ValueError:
                    continue
                if not key:
                    continue
                group = groups.setdefault((op.ns, op.filter_shape, op.sort_shape),
                                          _Group(op.database, op.ns, op.filter_shape, op.sort_shape, key))
                group.ops += 1
                group.docs_examined += op.docs_examined
                group.keys_examined += op.keys_examined
                group.returned += op.nreturned
                group.seconds += op.duration_seconds
                group.operations.add(op.op)
        existing = _existing(view.fact(MongoIndexUsages) or ())
        findings = []
        for group in groups.values():
            have = existing.get(group.ns, [])
            if any(fields[:len(group.key)] == group.key for fields in have):
                continue  # an index already starts with these fields
            findings.append(self._finding(view, group))
        # One finding per index: groups (filter shapes) that give the same key are said once, the busiest kept.
        best: dict[tuple[str, tuple[str, ...]], Finding] = {}
        for f in sorted(findings, key=lambda f: -f.evidence["collscan_ops"]):
            best.setdefault((f.evidence["ns"], tuple(f.evidence["key"])), f)
        return list(best.values())

    def _finding(self, view: TargetView, g: _Group) -> Finding:
        collection = g.ns[len(g.database) + 1:] if g.ns.startswith(g.database + ".") else g.ns
        spec = "{" + ", ".join(f"{_field(k)}: 1" for k in g.key) + "}"
        target = f"db.{collection}" if _IDENTIFIER.match(collection) else f"db.getCollection({json.dumps(collection)})"
        sql = f"{target}.createIndex({spec})"
        per_returned = g.docs_examined / max(g.returned, 1)
        severity = (Severity.WARNING if g.ops >= WARNING_OPS and per_returned >= WARNING_EXAMINED_PER_RETURNED
                    else Severity.INFO)
        evidence = {
            "method": "heuristic", "ns": g.ns, "database": g.database, "collection": collection, "key": g.key,
            "filter_shape": g.filter_shape, "sort_shape": g.sort_shape, "collscan_ops": g.ops,
            "operations": sorted(g.operations), "docs_examined": g.docs_examined, "keys_examined": g.keys_examined,
            "nreturned": g.returned, "docs_examined_per_returned": round(per_returned, 1),
            "duration_seconds": round(g.seconds, 3), "sql": sql,
        }
        impact = min(0.5, 0.01 * g.ops) * (1 if per_returned >= 100 else 0.5)
        evidence["impact"] = round(impact, 6)
        return Finding(
            rule=self.name, target=view.target, kind=FindingKind.RECOMMENDATION, severity=severity,
            summary=(f"Index {g.ns} {spec}: {g.ops} collection scan(s) examined {g.docs_examined} documents to "
                     f"return {g.returned}"),
            description=(f"The profiler recorded {g.ops} operation(s) on {g.ns} with filter {g.filter_shape} "
                         f"{'and sort ' + g.sort_shape + ' ' if g.sort_shape else ''}that read the whole "
                         f"collection (COLLSCAN). An index on the equality fields, then the sort fields, then the "
                         f"range fields (ESR) serves them; run the command in database {g.database} (a rolling "
                         f"build on a replica set for a large collection). Not costed: MongoDB has no "
                         f"hypothetical indexes; check with explain() after creating it."),
            labels={**view.labels, "ns": g.ns, "key": ",".join(g.key)},
            evidence=evidence, value=round(impact, 6),
        )


def _existing(indexes: Iterable[Any]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for index in indexes:
        try:
            fields = list(json.loads(index.key))
        except (ValueError, TypeError):
            continue
        out.setdefault(f"{index.database}.{index.collection}", []).append(fields)
    return out


def _field(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)
