"""Cassandra advice (rules/cassandra.py) from real collections: the cassandra collector over the real
cassandra-driver against the CQL wire-protocol test server (tests/cqlwire.py; not a real Cassandra), its
per-table virtual tables filled in as Cassandra 4.1 shapes them."""

from __future__ import annotations

import time

from dbwatch.collectors.cassandra import CassandraCollector
from dbwatch.model import Severity, Snapshot
from dbwatch.rules.cassandra import LargePartitionRule, TombstoneHeavyReadsRule
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.catalog import python_rules
from tests.cqlwire import CqlWireServer, Scenario
from tests.helpers import collect
from tests.test_cassandra_collector import make_target


def findings(rule: object, snapshot: Snapshot) -> list:
    history = {"cassandra": [snapshot]}
    source = type("Source", (), {"collectors": lambda self, t: list(history),
                                 "history": lambda self, t, c: history.get(c, [])})()
    return RuleEngine([], [rule]).evaluate(TargetView(source, "c", "cassandra", {}, time.time()))


def tombstones(table: str, p99: float, worst: float, count: int = 5000) -> dict:
    return {"keyspace_name": "shop", "table_name": table, "count": count, "50th": 1.0, "99th": p99, "max": worst}


async def test_tombstone_heavy_reads_are_advised_and_light_or_rare_ones_are_not(session_for):
    """One test server: four user tables (heavy, just under the floor, heavy but rarely read, past the warning)
    and a system table with many tombstones (never advised)."""
    scenario = Scenario(tables={"system_views.tombstones_per_read": [
        tombstones("queue", 600, 1500), tombstones("events", 99, 999), tombstones("rare", 900, 900, count=10),
        tombstones("carts", 150, 400),
        {"keyspace_name": "system", "table_name": "paxos", "count": 9000, "50th": 1.0, "99th": 5000.0,
         "max": 9000.0}]})
    with CqlWireServer(scenario) as server:
        session = session_for(make_target(server.port))
        snapshot = await collect(CassandraCollector(session.target, session))
    found = {f.labels["table"]: f for f in findings(TombstoneHeavyReadsRule(), snapshot)}
    assert sorted(found) == ["carts", "queue"]
    queue = found["queue"]
    assert queue.severity == Severity.WARNING and found["carts"].severity == Severity.INFO
    assert queue.summary == ("Reads of shop.queue scan 600 tombstones at the 99th percentile (worst 1,500; "
                             "Cassandra warns at 1,000)")
    assert queue.evidence["sql"] is None and queue.evidence["risk"] == "none"
    assert "Do not lower gc_grace_seconds below the interval between repairs" in queue.description
    # the shipped rule set includes it
    assert {"CassandraTombstoneHeavyReads", "CassandraLargePartition"} <= {r.name for r in python_rules()}


async def test_partitions_past_the_nodes_own_warning_threshold_are_advised(session_for):
    """One test server whose settings say 4.1's compaction_large_partition_warning_threshold is 64MiB."""
    scenario = Scenario(tables={
        "system_views.max_partition_size": [{"keyspace_name": "shop", "table_name": "orders", "mebibytes": 200},
                                            {"keyspace_name": "shop", "table_name": "carts", "mebibytes": 63},
                                            {"keyspace_name": "shop", "table_name": "users", "mebibytes": 64}],
        "system_views.settings": [{"name": "compaction_large_partition_warning_threshold", "value": "64MiB"}]})
    with CqlWireServer(scenario) as server:
        session = session_for(make_target(server.port))
        snapshot = await collect(CassandraCollector(session.target, session))
    found = {f.labels["table"]: f for f in findings(LargePartitionRule(), snapshot)}
    assert sorted(found) == ["orders", "users"]  # carts (63 MiB) is a near miss
    assert found["orders"].severity == Severity.WARNING and found["users"].severity == Severity.INFO
    assert found["orders"].summary == ("The largest partition of shop.orders is 200 MiB, past the 64 MiB Cassandra "
                                       "warns about")
    assert found["orders"].evidence["warning_threshold_bytes"] == 64 * 1024 * 1024


async def test_a_40_node_threshold_in_megabytes_is_read_too(session_for):
    """Cassandra 4.0 names the setting compaction_large_partition_warning_threshold_mb (a number of MB)."""
    scenario = Scenario(release_version="4.0.13", tables={
        "system_views.max_partition_size": [{"keyspace_name": "shop", "table_name": "orders", "mebibytes": 30}],
        "system_views.settings": [{"name": "compaction_large_partition_warning_threshold_mb", "value": "20"}]})
    with CqlWireServer(scenario) as server:
        session = session_for(make_target(server.port))
        snapshot = await collect(CassandraCollector(session.target, session))
    assert [f.labels["table"] for f in findings(LargePartitionRule(), snapshot)] == ["orders"]
