"""Neo4j index candidates: long transactions whose query looks nodes up by a label and property that no index
serves (a label scan, then a filter on every node of the label).

Reads :class:`~dbwatch.model.facts.neo4j.Neo4jLongTransactions` (the queries, normalized, of transactions
open at least the collector's ``long_tx_seconds``) and :class:`~dbwatch.model.facts.neo4j.Neo4jIndexes` (``SHOW
INDEXES`` of each database those transactions run in). A query's lookups are found in two shapes:

- a node pattern with a property map: ``MATCH (n:Person {email: $email})`` (also MERGE);
- a predicate on a variable bound to a label: ``MATCH (n:Person) WHERE n.email = $e`` (``=``, ``IN``,
  ``<``, ``<=``, ``>``, ``>=``, ``STARTS WITH``: what a RANGE or TEXT index serves).

A lookup is covered when the database has an index (RANGE, TEXT, or BTREE on 4.x; any state but FAILED) on
that label whose first property is that property. Uncovered, the finding offers ``CREATE INDEX ... IF NOT
EXISTS FOR (n:Label) ON (n.prop)``, only for a database whose indexes were read (never a guess). The query
text is a heuristic read, not the plan: ``EXPLAIN`` shows whether the planner uses ``NodeByLabelScan``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.neo4j import Neo4jIndex, Neo4jIndexes, Neo4jLongTransactions
from dbwatch.rules.advice_common import recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["Neo4jIndexCandidate", "lookups", "make_rules"]

SERVING_TYPES = {"RANGE", "TEXT", "BTREE"}
WARNING_SECONDS = 300.0
LOCK = ("none on the data: Neo4j builds the index in the background (population is online: reads and writes go "
        "on); until it is ONLINE the planner does not use it; it costs disk, page cache, and a little on "
        "every write to nodes of the label")

_NAME = r"(?:`(?:[^`]|``)+`|[A-Za-z_][A-Za-z0-9_]*)"
_NODE = re.compile(rf"\(\s*(?P<var>{_NAME})?\s*:\s*(?P<label>{_NAME})(?P<more>(?:\s*:\s*{_NAME})*)\s*"
                   rf"(?P<map>\{{[^{{}}]*\}})?\s*\)")
_MAP_KEY = re.compile(rf"(?P<key>{_NAME})\s*:")
_PREDICATE = re.compile(rf"(?P<var>{_NAME})\.(?P<prop>{_NAME})\s*(?:=(?!~)|<=|>=|<(?!>)|>|\bIN\b|\bSTARTS\s+WITH\b)",
                        re.IGNORECASE)


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [Neo4jIndexCandidate()]


def _bare(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def lookups(query: str) -> list[tuple[str, str]]:
    """The (label, property) pairs a query looks nodes up by, in the order written, each once."""
    found: list[tuple[str, str]] = []
    bound: dict[str, str] = {}
    for m in _NODE.finditer(query):
        label = _bare(m["label"])
        if m["var"]:
            bound.setdefault(_bare(m["var"]), label)
        if m["map"]:
            found += [(label, _bare(k["key"])) for k in _MAP_KEY.finditer(m["map"][1:-1])]
    for m in _PREDICATE.finditer(query):
        bound_label = bound.get(_bare(m["var"]))
        if bound_label is not None:
            found.append((bound_label, _bare(m["prop"])))
    return list(dict.fromkeys(found))


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else "`" + name.replace("`", "``") + "`"


def _covered(indexes: Iterable[Neo4jIndex], database: str, label: str, prop: str) -> bool:
    return any(i.database == database and i.entity_type.upper() == "NODE" and label in i.labels
               and i.properties[:1] == (prop,) and i.type.upper() in SERVING_TYPES and i.state.upper() != "FAILED"
               for i in indexes)


@dataclass(slots=True)
class _Candidate:
    database: str
    label: str
    prop: str
    transactions: list[str] = field(default_factory=list)
    longest: float = 0.0
    query: str = ""


class Neo4jIndexCandidate:
    name = "Neo4jIndexCandidate"
    engines = ("neo4j",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        long_tx = view.fact(Neo4jLongTransactions)
        indexes = view.fact(Neo4jIndexes)
        if not long_tx or indexes is None:
            return []
        candidates: dict[tuple[str, str, str], _Candidate] = {}
        for tx in long_tx:
            if tx.database not in indexes.databases:
                continue  # its indexes were not read: no advice on a guess
            for label, prop in lookups(tx.query):
                if _covered(indexes, tx.database, label, prop):
                    continue
                c = candidates.setdefault((tx.database, label, prop), _Candidate(tx.database, label, prop))
                c.transactions.append(tx.transaction_id)
                if tx.elapsed_seconds >= c.longest:
                    c.longest, c.query = tx.elapsed_seconds, tx.query
        return [self._finding(view, c) for c in candidates.values()]

    def _finding(self, view: TargetView, c: _Candidate) -> Finding:
        name = _quote(f"dbwatch_{c.label}_{c.prop}".lower())
        sql = f"CREATE INDEX {name} IF NOT EXISTS FOR (n:{_quote(c.label)}) ON (n.{_quote(c.prop)})"
        severity = Severity.WARNING if c.longest >= WARNING_SECONDS else Severity.INFO
        evidence = {
            "method": "heuristic", "database": c.database, "label": c.label, "property": c.prop,
            "transactions": c.transactions, "longest_seconds": round(c.longest, 1), "query": c.query,
            "lock": LOCK,
            "risk": "low",
        }
        return recommend(
            self.name, view, severity,
            summary=(f"Index :{c.label}({c.prop}) in {c.database}: a {round(c.longest)} s transaction looks "
                     f"{c.label} nodes up by {c.prop} with no index on it"),
            description=(f"{len(c.transactions)} long transaction(s) in database {c.database} run a query that "
                         f"finds :{c.label} nodes by {c.prop} ({c.query}), and SHOW INDEXES lists no RANGE or TEXT "
                         f"index on :{c.label}({c.prop}): Neo4j scans every {c.label} node and filters. Run the "
                         f"statement in database {c.database}; it returns at once and the index populates in "
                         f"the background (SHOW INDEXES: state ONLINE, populationPercent 100); IF NOT EXISTS "
                         f"makes it a no-op where an index of that name or schema exists. Read from the query "
                         f"text, not its plan: EXPLAIN shows NodeIndexSeek instead of NodeByLabelScan once the "
                         f"index is used."),
            labels={"database": c.database, "label": c.label, "property": c.prop},
            evidence=evidence, sql=sql, impact=min(0.5, c.longest / 3600),
        )
