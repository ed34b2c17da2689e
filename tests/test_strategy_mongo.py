"""DocumentModelCandidate on MongoDB (rules/strategy_mongo.py): collections read mostly through $lookup.

Starts: no real mongod (none can be installed on this machine). Each test starts its own MongoDB wire-protocol
test server (tests/mongowire.py) on a free loopback port, with system.profile entries in the manual's shapes
(an aggregate is op "command" with its pipeline under command) and $indexStats documents; the real profiler and
indexstats collectors read them through PyMongo, and the strategy rules judge what they left. Planted:
``orders`` read almost only by aggregates joining ``customers`` (by _id, indexed) and ``items`` (by sku, not
indexed). Near misses: ``products``, with more $lookups than the minimum but among four times as many finds;
``invoices``, read only through $lookup but fewer times than the minimum.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import bson

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mongodb import MongoSession
from dbwatch.collectors.mongodb_profiler import IndexStatsCollector, ProfilerCollector
from dbwatch.model import Finding
from dbwatch.model.facts.mongodb import MongoLookup, MongoProfileBacklog, MongoSlowOps
from tests.auditutil import by_rule, evaluate, target
from tests.helpers import collect
from tests.mongowire import UTC, Member, MongoWireServer, Scenario

NOW = dt.datetime.now(UTC).replace(microsecond=0)
CUSTOMER = {"$lookup": {"from": "customers", "localField": "customer_id", "foreignField": "_id", "as": "customer"}}
ITEMS = {"$lookup": {"from": "items", "localField": "skus", "foreignField": "sku", "as": "items"}}


class Profile:
    """system.profile entries, each a second newer than the one before."""

    def __init__(self, start: dt.datetime) -> None:
        self.at = start
        self.entries: list[dict[str, Any]] = []

    def _add(self, ns: str, op: str, command: dict[str, Any], millis: int) -> None:
        self.at += dt.timedelta(seconds=1)
        self.entries.append({
            "op": op, "ns": f"shop.{ns}", "command": {**command, "$db": "shop"}, "keysExamined": 20,
            "docsExamined": 20, "nreturned": 20, "responseLength": 4000, "protocol": "op_msg", "millis": millis,
            "planSummary": "IXSCAN { status: 1 }", "ts": self.at, "client": "10.0.0.7", "appName": "orders-api",
            "numYield": 0, "allUsers": [], "user": ""})

    def aggregate(self, coll: str, *stages: dict[str, Any], n: int = 1, millis: int = 150) -> "Profile":
        for _ in range(n):
            self._add(coll, "command", {"aggregate": coll, "pipeline": [{"$match": {"status": "A"}}, *stages],
                                        "cursor": {}}, millis)
        return self

    def find(self, coll: str, n: int = 1, millis: int = 120) -> "Profile":
        for _ in range(n):
            self._add(coll, "query", {"find": coll, "filter": {"status": "A"}}, millis)
        return self

    def update(self, coll: str, n: int = 1) -> "Profile":
        for _ in range(n):
            self._add(coll, "update", {"q": {"_id": 1}, "u": {"$set": {"name": "x"}}}, 110)
        return self


def index(name: str, key: dict[str, int]) -> dict[str, Any]:
    return {"name": name, "key": key, "host": "mongo-a:27017",
            "accesses": {"ops": bson.Int64(5), "since": NOW - dt.timedelta(days=1)}}


INDEXES = {"shop.customers": [index("_id_", {"_id": 1})],
           "shop.items": [index("_id_", {"_id": 1}), index("name_1", {"name": 1})],
           "shop.orders": [index("_id_", {"_id": 1}), index("status_1", {"status": 1})]}


def planted() -> list[dict[str, Any]]:
    """orders: 30 joining aggregates (24 of them also join items) and 4 finds; products: 100 finds and 25
    aggregates with a $lookup; invoices: 8 aggregates, all joining customers."""
    p = Profile(NOW - dt.timedelta(hours=1))
    p.aggregate("orders", CUSTOMER, n=6).aggregate("orders", CUSTOMER, {"$unwind": "$customer"}, ITEMS, n=24)
    p.find("orders", n=4).find("products", n=100).aggregate("products", CUSTOMER, n=25)
    p.aggregate("invoices", CUSTOMER, n=8)
    return p.entries


def scenario(entries: list[dict[str, Any]], level: int = 1) -> Scenario:
    return Scenario(members=[Member("mongo-a:27017", 1, NOW, self_=True)], profiling={"shop": level},
                    profile={"shop": entries}, index_stats=dict(INDEXES))


async def collections(scen: Scenario, steps: list[list[dict[str, Any]]], **options: Any
                      ) -> tuple[SnapshotStore, list[Finding]]:
    """On a server of its own: the profiler's baseline, then one collection per step after adding its entries
    (the daemon's path), then indexstats; the strategy rules over the store."""
    wire = MongoWireServer(scen).start()
    t = target("mongodb", wire.dsn(), {"profiler": options, "indexstats": {}})
    session = MongoSession(t)
    store = SnapshotStore()
    try:
        profiler = ProfilerCollector(t, session)
        await collect(profiler, store)
        for entries in steps:
            scen.profile["shop"] += entries
            await collect(profiler, store)
        await collect(IndexStatsCollector(t, session), store)
    finally:
        await session.close()
        wire.stop()
    return store, by_rule(evaluate(store, "mongodb", "strategy"), "DocumentModelCandidate")


def test_advise_section_strategy_names_the_lookup_heavy_collection_and_only_it(tmp_path: Path):
    wire = MongoWireServer(scenario(planted())).start()
    config = tmp_path / "dbwatch.yaml"
    config.write_text(f"targets: [{{name: m, engine: mongodb, dsn: '{wire.dsn()}'}}]\n")
    try:
        result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "advise", "-c", str(config), "--section",
                                 "strategy", "--format", "json"], capture_output=True, text=True, timeout=120)
    finally:
        wire.stop()
    assert result.returncode == 0, result.stderr
    found = [f for f in json.loads(result.stdout) if f["rule"] == "DocumentModelCandidate"]
    assert [f["evidence"]["ns"] for f in found] == ["shop.orders"]  # not products (25 of 125), not invoices (8)
    evidence = found[0]["evidence"]
    assert evidence["direction"] == "relational use of documents"
    assert (evidence["lookup_reads"], evidence["profiled_reads"], evidence["lookup_share"]) == (30, 34, 0.8824)
    assert evidence["lookup_ms"] == 30 * 150 and evidence["read_ms"] == 30 * 150 + 4 * 120
    joins = {j["from"]: j for j in evidence["joins"]}
    assert joins["shop.customers"]["ops"] == 30 and joins["shop.customers"]["foreign_field_indexed"] is True
    assert (joins["shop.items"]["ops"], joins["shop.items"]["local_field"], joins["shop.items"]["foreign_field"]) \
        == (24, "skus", "sku")
    assert joins["shop.items"]["foreign_field_indexed"] is False
    # Only the join field without an index gets a statement; customers' _id is indexed.
    assert found[0]["sql"] == 'db.getSiblingDB("shop").getCollection("items").createIndex({"sku": 1})'
    assert evidence["risk"] == "low" and evidence["profiling_level"] == 1
    assert evidence["confidence"] == 0.6  # level 1: only slow reads are profiled
    assert "$lookup orders.customer_id -> customers._id in 30" in evidence["observed"]
    assert "items has no index starting with sku" in evidence["observed"]
    for word in ("embed", "extended reference", "relational store"):
        assert word in evidence["action"]
    assert "16 MB" in evidence["cost"] and "updated often" in evidence["wrong_when"]


async def test_the_daemon_counts_the_backlog_once_and_the_new_entries_beside_it():
    # 12 joins before dbwatch started and 12 after: 24 reach the minimum of 20 only together.
    before = Profile(NOW - dt.timedelta(hours=2)).aggregate("orders", CUSTOMER, n=12).find("orders", n=2).entries
    after = Profile(NOW - dt.timedelta(minutes=30)).aggregate("orders", CUSTOMER, n=12).entries
    scen = scenario(before, level=2)
    store, found = await collections(scen, [after])
    [f] = found
    assert (f.evidence["lookup_reads"], f.evidence["profiled_reads"]) == (24, 26)
    assert f.evidence["confidence"] == 0.8  # level 2 (every operation) and a share of 92 %
    assert f.evidence["sql"] is None  # customers' _id has its index
    history = store.history("t", "profiler")
    assert [len(s.fact(MongoProfileBacklog)) for s in history] == [14, 0]
    assert [len(s.fact(MongoSlowOps)) for s in history] == [0, 12]  # the counters and index advice: new only


async def test_near_misses_stay_silent_until_the_thresholds_are_lowered():
    scen = scenario(planted())
    _, found = await collections(scen, [])
    assert [f.labels["collection"] for f in found] == ["orders"]
    scen = scenario(planted())
    _, found = await collections(scen, [], lookup_min_ops=5, lookup_min_share=0.2)
    assert sorted(f.labels["collection"] for f in found) == ["invoices", "orders", "products"]


async def test_a_looked_up_side_written_as_often_as_it_is_joined_lowers_the_confidence():
    entries = Profile(NOW - dt.timedelta(hours=1)).aggregate("orders", CUSTOMER, n=25).update("customers", n=30)
    scen = scenario(entries.entries, level=2)
    _, [f] = await collections(scen, [])
    assert f.evidence["confidence"] == 0.6  # 0.8 less 0.2
    assert {j["from"]: j["from_profiled_writes"] for j in f.evidence["joins"]} == {"shop.customers": 30}
    assert "shop.customers as many as the joins" in f.evidence["observed"]


async def test_join_stages_are_read_from_nested_pipelines_and_graph_lookups():
    graph = {"$graphLookup": {"from": "employees", "startWith": "$manager", "connectFromField": "manager",
                              "connectToField": "name", "as": "chain"}}
    nested = {"$lookup": {"from": "orders", "let": {"c": "$_id"}, "as": "orders", "pipeline": [
        {"$match": {"$expr": {"$eq": ["$customer_id", "$$c"]}}}, ITEMS]}}
    facet = {"$facet": {"a": [CUSTOMER], "b": [{"$lookup": {"from": {"db": "crm", "coll": "notes"},
                                                              "localField": "_id", "foreignField": "order"}}]}}
    scen = scenario(Profile(NOW - dt.timedelta(hours=1)).entries)
    later = Profile(NOW - dt.timedelta(minutes=5)).aggregate("people", graph, nested, facet).entries
    store, _ = await collections(scen, [later])
    [op] = store.history("t", "profiler")[-1].fact(MongoSlowOps) or ()
    assert op.command == "aggregate" and op.is_read
    assert op.lookups == (
        MongoLookup("$graphLookup", "employees", "manager", "name"), MongoLookup("$lookup", "orders", "", ""),
        MongoLookup("$lookup", "items", "skus", "sku"), MongoLookup("$lookup", "customers", "customer_id", "_id"),
        MongoLookup("$lookup", "crm.notes", "_id", "order"))
