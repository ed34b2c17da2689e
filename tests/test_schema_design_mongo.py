"""The schema designer on MongoDB, through the wire-protocol test server (no mongod here) and the real driver:
collections without a $jsonSchema validator get one derived from a sample, in warn mode; fields stored with
different types are shape drift. Near misses: a validated collection, a consistent one, a field merely
missing from some documents."""

from __future__ import annotations

import datetime as dt

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mongo_schema_design import MongoSchemaDesignCollector
from dbwatch.collectors.mongodb import MongoSession
from tests.auditutil import by_rule, collect_once, evaluate, target
from tests.mongowire import Member, MongoWireServer, Scenario

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
ORDERS = [{"_id": i, "sku": f"s{i}", "qty": i if i % 4 else str(i), "at": NOW, **({"note": "x"} if i % 2 else {})}
          for i in range(1, 41)]
USERS = [{"_id": i, "name": f"u{i}", "age": 20 + i} for i in range(1, 41)]
EVENTS = [{"_id": i, "kind": "click"} for i in range(1, 41)]


async def test_missing_validators_and_shape_drift_fire_and_near_misses_stay_silent():
    scenario = Scenario(members=[Member("a:27017", 1, NOW, self_=True)], profiling={},
                        collections={"shop.orders": ORDERS, "shop.users": USERS, "shop.events": EVENTS},
                        validators={"shop.events": {"$jsonSchema": {"required": ["kind"]}}})
    server = MongoWireServer(scenario).start()
    try:
        t = target("mongodb", server.dsn(), {"schema_design": {}})
        store = SnapshotStore()
        await collect_once(store, MongoSchemaDesignCollector, MongoSession, t)
        findings = evaluate(store, "mongodb", "schema_design")
    finally:
        server.stop()
    no_validator = {f.labels["collection"]: f for f in by_rule(findings, "MongoNoValidator")}
    assert set(no_validator) == {"orders", "users"}  # events has one
    schema = no_validator["users"].evidence["validator"]["$jsonSchema"]
    assert schema["required"] == ["_id", "age", "name"]
    assert schema["properties"]["name"] == {"bsonType": "string"}
    orders = no_validator["orders"].evidence["validator"]["$jsonSchema"]
    assert "note" not in orders["required"] and orders["properties"]["at"] == {"bsonType": "date"}
    sql = no_validator["users"].evidence["sql"]
    assert sql.startswith('db.getSiblingDB("shop").runCommand(') and '"validationAction": "warn"' in sql
    assert no_validator["users"].evidence["risk"] == "low"
    [drift] = by_rule(findings, "MongoShapeDrift")
    assert drift.labels["collection"] == "orders"
    assert drift.evidence["fields"] == {"qty": {"number": 30, "string": 10}}  # note (missing in half) is not drift
