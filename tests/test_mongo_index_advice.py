"""The MongoDB index rule (rules/mongo_indexes.py) over facts from the real profiler and indexstats collectors.

Starts: no real mongod (none can be installed on this machine). Each test starts its own MongoDB
wire-protocol test server (tests/mongowire.py) on a free loopback port and feeds it system.profile entries
and $indexStats documents in the manual's shapes; the collectors read them through PyMongo, and the rule
judges the snapshots the store keeps. What is tested is the rule's reading of the collectors' facts, not a
real server's planner.
"""

from __future__ import annotations

import datetime as dt

import bson
import pytest

from dbwatch.model import CollectorSettings, Finding, Severity, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mongodb import MongoSession
from dbwatch.collectors.mongodb_profiler import IndexStatsCollector, IndexStatsOptions, ProfilerCollector, ProfilerOptions
from dbwatch.rules.catalog import python_rules
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.mongo_indexes import esr_key
from tests.helpers import collect
from tests.mongowire import UTC, Member, MongoWireServer, Scenario

NOW = dt.datetime.now(UTC).replace(microsecond=0)
ESR_FILTER = {"status": "A", "qty": {"$gt": 5}}


def entry(seconds_ago: float, plan: str, command: dict, docs: int = 0, keys: int = 0, returned: int = 3) -> dict:
    return {"op": "query", "ns": "shop.orders", "command": {"find": "orders", "$db": "shop", **command},
            "keysExamined": keys, "docsExamined": docs, "nreturned": returned, "millis": 250, "planSummary": plan,
            "ts": NOW - dt.timedelta(seconds=seconds_ago), "client": "10.0.0.7", "appName": "orders-api",
            "protocol": "op_msg", "numYield": 0, "responseLength": 100}


def index(name: str, key: dict) -> dict:
    return {"name": name, "key": key, "host": "mongo-a:27017",
            "accesses": {"ops": bson.Int64(5), "since": NOW - dt.timedelta(days=1)}}


@pytest.fixture
def server():
    started = []

    def start(scenario: Scenario) -> MongoWireServer:
        wire = MongoWireServer(scenario).start()
        started.append(wire)
        return wire

    yield start
    for wire in started:
        wire.stop()


async def advise(wire: MongoWireServer, scenario: Scenario, new_entries: list[dict], with_indexstats: bool
                 ) -> list[Finding]:
    """Baseline, then the new profiler entries, through the real collectors; the rule over the store."""
    target = Target(name="m", engine="mongodb", dsn=wire.dsn(), labels={}, collectors={
        "profiler": CollectorSettings(60, 3, ProfilerOptions()),
        "indexstats": CollectorSettings(300, 3, IndexStatsOptions())})
    session = MongoSession(target)
    store = SnapshotStore()
    try:
        profiler = ProfilerCollector(target, session)
        for step in ("baseline", "new"):
            if step == "new":
                scenario.profile["shop"] += new_entries
            await collect(profiler, store)
        if with_indexstats:
            await collect(IndexStatsCollector(target, session), store)
    finally:
        await session.close()
    findings = RuleEngine([], python_rules()).evaluate(TargetView(store, "m", "mongodb"))
    return [f for f in findings if f.rule == "MongoIndexCandidate"]


def scenario(stats: dict | None = None) -> Scenario:
    return Scenario(members=[Member("mongo-a:27017", 1, NOW, self_=True)], profiling={"shop": 1},
                    profile={"shop": [entry(900, "COLLSCAN", {"filter": {"old": 1}})]}, index_stats=stats or {})


async def test_collscans_with_equality_sort_and_range_get_the_esr_index(server):
    scen = scenario()
    wire = server(scen)
    scans = [entry(60 - i, "COLLSCAN", {"filter": ESR_FILTER, "sort": {"created": -1}}, docs=50000, returned=20)
             for i in range(12)]
    findings = await advise(wire, scen, scans, with_indexstats=False)
    [found] = findings
    assert found.evidence["key"] == ["status", "created", "qty"]
    assert found.evidence["sql"] == "db.orders.createIndex({status: 1, created: 1, qty: 1})"
    assert (found.evidence["collscan_ops"], found.evidence["docs_examined"], found.evidence["nreturned"]) == \
        (12, 600000, 240)
    assert found.evidence["docs_examined_per_returned"] == 2500.0
    assert found.severity == Severity.WARNING and found.evidence["ns"] == "shop.orders"
    assert found.evidence["filter_shape"] == '{"status":1,"qty":{"$gt":1}}'  # the entry before the baseline: not counted


async def test_an_ixscan_operation_gets_nothing(server):
    scen = scenario()
    wire = server(scen)
    ixscans = [entry(30, "IXSCAN { status: 1, created: -1, qty: 1 }", {"filter": ESR_FILTER, "sort": {"created": -1}},
                     docs=20, keys=20, returned=20)]
    assert await advise(wire, scen, ixscans, with_indexstats=False) == []


async def test_an_existing_index_starting_with_the_esr_fields_covers_the_collscan(server):
    stats = {"shop.orders": [index("_id_", {"_id": 1}),
                             index("status_created_qty_x", {"status": 1, "created": -1, "qty": 1, "x": 1})]}
    scen = scenario(stats)
    wire = server(scen)
    scans = [entry(30, "COLLSCAN", {"filter": ESR_FILTER, "sort": {"created": -1}}, docs=50000)]
    assert await advise(wire, scen, scans, with_indexstats=True) == []
    # A different shape on the same collection is not covered by that index.
    scen2 = scenario(stats)
    wire2 = server(scen2)
    [found] = await advise(wire2, scen2, [entry(20, "COLLSCAN", {"filter": {"customer": 7}}, docs=50000)],
                           with_indexstats=True)
    assert found.evidence["key"] == ["customer"] and found.severity == Severity.INFO


def test_esr_ordering_of_filter_shapes():
    assert esr_key('{"a":{"$in":1},"b":{"$lt":1},"c":1}', '{"d":1}') == ["a", "c", "d", "b"]
    assert esr_key('{"$and":[{"a":1},{"b":{"$gte":1}}]}', "") == ["a", "b"]
    assert esr_key('{"$or":[{"a":1},{"b":1}]}', '{"c":1}') == []  # one index per branch: not this rule's advice
    assert esr_key("", '{"c":1}') == []
