"""The MongoDB collectors, driven through the real PyMongo driver (AsyncMongoClient) over real loopback sockets.

Starts: no real mongod (none can be installed on this machine). Each test starts its own MongoDB
wire-protocol test server (tests/mongowire.py: OP_MSG and the OP_QUERY handshake, SCRAM-SHA-256, replies in
the documented shapes of hello, serverStatus, replSetGetStatus, system.profile, $indexStats, $currentOp),
in a thread, on a free loopback port; and, for one failure, a non-MongoDB service (NotMongoServer) on
another. What is tested is therefore the collectors' reading of the documented replies and the driver's
behaviour on the wire, not a real server's behaviour.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bson
import pytest
from bson.timestamp import Timestamp

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import CollectorSettings, Snapshot, Target
from dbwatch.collectors.mongodb import MongoCollector, MongoOptions
from dbwatch.collectors.mongodb_profiler import (
    IndexStatsCollector, IndexStatsOptions, ProfilerCollector, ProfilerOptions, shape_json,
)
from dbwatch.exporters.prometheus import render_families
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import shipped_rules
from dbwatch.model.facts.mongodb import (
    MongoIndexUsages, MongoLongOps, MongoOplog, MongoProfiler, MongoReplSet, MongoServer, MongoSlowOps,
)
from dbwatch.model.facts.common import Summary
from tests.agentproc import AgentProcess
from tests.mongowire import UTC, Member, MongoWireServer, NotMongoServer, Scenario
from tests.helpers import collect, free_port, wait_for

NOW = dt.datetime.now(UTC).replace(microsecond=0)
PRIMARY, SECONDARY, LAGGING, DOWN = "mongo-a:27017", "mongo-b:27017", "mongo-c:27017", "mongo-d:27017"


def make_target(dsn: str, timeout: float = 3, profiler: dict | None = None, **extra) -> Target:
    return Target(
        name="m", engine="mongodb", dsn=dsn, labels={},
        collectors={
            "mongodb": CollectorSettings(15, timeout, MongoOptions()),
            "profiler": CollectorSettings(60, timeout, ProfilerOptions(**(profiler or {}))),
            "indexstats": CollectorSettings(300, timeout, IndexStatsOptions()),
        },
        **extra,
    )


@pytest.fixture
def servers():
    """Start MongoWireServers (or NotMongoServers) for one test; all are stopped afterwards."""
    started: list = []

    def start(scenario: Scenario | None = None):
        server = NotMongoServer() if scenario is None else MongoWireServer(scenario)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def replica_set(*extra: Member) -> list[Member]:
    return [Member(PRIMARY, 1, NOW, self_=True), Member(SECONDARY, 2, NOW), *extra]


def samples(snapshot: Snapshot, name: str) -> dict[tuple[str, ...], float]:
    family = snapshot.family(name)
    assert family is not None, f"{name} missing"
    return dict(family.samples)


def profile_entry(seconds_ago: float, **fields) -> dict:
    """A system.profile document in the manual's shape (a find on shop.orders unless told otherwise)."""
    doc = {
        "op": "query", "ns": "shop.orders",
        "command": {"find": "orders", "filter": {"status": "A"}, "$db": "shop"},
        "keysExamined": 0, "docsExamined": 0, "cursorExhausted": True, "numYield": 0, "nreturned": 1,
        "locks": {"Global": {"acquireCount": {"r": 1}}}, "responseLength": 100, "protocol": "op_msg",
        "millis": 150, "planSummary": "IXSCAN { status: 1 }",
        "ts": NOW - dt.timedelta(seconds=seconds_ago), "client": "10.0.0.7", "appName": "orders-api",
        "allUsers": [], "user": "",
    }
    doc.update(fields)
    return doc


# -- serverStatus ---------------------------------------------------------------------------------------


async def test_server_status_carries_mongodb_exporter_names_and_the_servers_values(servers, session_for):
    """One MongoWireServer: the primary of a replica set with one healthy secondary."""
    server = servers(Scenario(members=replica_set()))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert snapshot.ok and snapshot.notes == []
    assert snapshot.version == "7.0.14"
    assert snapshot.family("mongodb_up").value() == 1
    connections = samples(snapshot, "mongodb_ss_connections")
    assert connections[("current",)] == 12 and connections[("available",)] == 838848
    assert samples(snapshot, "mongodb_ss_opcounters")[("insert",)] == 1500
    assert samples(snapshot, "mongodb_ss_opcounters")[("command",)] == 9100
    assert samples(snapshot, "mongodb_ss_asserts")[("user",)] == 41
    assert snapshot.family("mongodb_ss_extra_info_page_faults").value() == 77
    assert snapshot.family("mongodb_ss_uptime").value() == 86400
    assert snapshot.family("mongodb_ss_wt_cache_bytes_currently_in_the_cache").value() == 805306368
    assert snapshot.family("mongodb_ss_wt_cache_maximum_bytes_configured").value() == 1073741824
    assert snapshot.family("mongodb_ss_wt_cache_tracked_dirty_bytes_in_the_cache").value() == 52428800
    assert snapshot.family("dbwatch_mongodb_wt_cache_used_ratio").value() == 0.75
    server_facts = snapshot.fact(MongoServer)
    assert server_facts.is_primary and server_facts.set_name == "rs0" and server_facts.role == "primary"
    assert server_facts.connections_used_ratio == 12 / (12 + 838848)
    assert "serverStatus" in server.commands and "hello" in server.commands


async def test_the_fields_percona_rules_and_dashboards_read_carry_mongodb_exporter_names_and_labels(servers,
                                                                                                    session_for):
    """One MongoWireServer, the primary: the series awesome-prometheus-alerts' Percona MongoDB rules query."""
    server = servers(Scenario(members=replica_set()))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert snapshot.family("mongodb_ss_repl_isWritablePrimary").value() == 1
    assert samples(snapshot, "mongodb_ss_wt_concurrentTransactions_available") == {("write",): 128, ("read",): 127}
    assert snapshot.family("mongodb_ss_wt_concurrentTransactions_out").labelnames == ("txn_rw_type",)
    assert samples(snapshot, "mongodb_ss_metrics_cursor_open")[("total",)] == 2
    assert snapshot.family("mongodb_ss_metrics_cursor_timedOut").value() == 3
    assert samples(snapshot, "mongodb_ss_metrics_document")[("inserted",)] == 1500
    assert snapshot.family("mongodb_ss_metrics_ttl_deletedDocuments").value() == 7
    assert samples(snapshot, "mongodb_ss_opLatencies_latency")[("reads",)] == 250000
    assert samples(snapshot, "mongodb_ss_opLatencies_ops")[("writes",)] == 1500
    assert snapshot.family("mongodb_ss_globalLock_activeClients_readers").value() == 0
    assert snapshot.family("mongodb_ss_mem_resident").value() == 200


async def test_mongodb_exporters_compatible_mode_names_which_pmm_dashboards_read_mirror_the_new_ones(servers,
                                                                                                   session_for):
    """One MongoWireServer, the primary of rs0 (exporter/v1_compatibility.go's renames)."""
    server = servers(Scenario(members=replica_set()))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert samples(snapshot, "mongodb_op_counters_total")[("insert",)] == 1500
    assert snapshot.family("mongodb_op_counters_total").labelnames == ("type",)
    assert samples(snapshot, "mongodb_connections")[("current",)] == 12
    assert samples(snapshot, "mongodb_mongod_op_latencies_latency_total")[("read",)] == 250000
    assert samples(snapshot, "mongodb_mongod_global_lock_current_queue")[("reader",)] == 0
    assert samples(snapshot, "mongodb_mongod_global_lock_client")[("total",)] == 0
    assert samples(snapshot, "mongodb_mongod_metrics_document_total")[("inserted",)] == 1500
    assert samples(snapshot, "mongodb_memory") == {("resident",): 200, ("virtual",): 2800}
    assert samples(snapshot, "mongodb_mongod_wiredtiger_cache_bytes") == {("total",): 805306368}
    assert samples(snapshot, "mongodb_mongod_replset_my_state") == {("rs0",): 1}
    assert snapshot.family("mongodb_instance_uptime_seconds").value() == 86400


# -- replSetGetStatus -----------------------------------------------------------------------------------


async def test_a_healthy_secondary_has_no_lag_and_every_member_health_1(servers, session_for):
    """One MongoWireServer: a primary and a secondary that has applied everything."""
    server = servers(Scenario(members=replica_set()))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert samples(snapshot, "mongodb_rs_members_health") == {(PRIMARY, "PRIMARY"): 1, (SECONDARY, "SECONDARY"): 1}
    assert samples(snapshot, "mongodb_rs_members_state") == {(PRIMARY, "PRIMARY"): 1, (SECONDARY, "SECONDARY"): 2}
    assert samples(snapshot, "mongodb_rs_members_optimeDate")[(SECONDARY, "SECONDARY")] == NOW.timestamp() * 1000
    assert samples(snapshot, "dbwatch_mongodb_replication_lag_seconds") == {(SECONDARY,): 0.0}
    assert snapshot.family("mongodb_rs_myState").value() == 1
    assert snapshot.family("dbwatch_mongodb_replset_has_primary").value() == 1
    replset = snapshot.fact(MongoReplSet)
    assert replset.set_name == "rs0" and replset.primary == PRIMARY and replset.max_lag_seconds == 0.0


async def test_a_lagging_secondary_is_42_seconds_behind_and_a_down_member_has_health_0(servers, session_for):
    """One MongoWireServer: a primary, a healthy secondary, one 42 s behind and one unreachable."""
    members = replica_set(Member(LAGGING, 2, NOW - dt.timedelta(seconds=42)),
                          Member(DOWN, 2, NOW, health=0))
    server = servers(Scenario(members=members))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert samples(snapshot, "dbwatch_mongodb_replication_lag_seconds") == {(SECONDARY,): 0.0, (LAGGING,): 42.0}
    health = samples(snapshot, "mongodb_rs_members_health")
    assert health[(DOWN, "(not reachable/healthy)")] == 0 and health[(LAGGING, "SECONDARY")] == 1
    assert samples(snapshot, "mongodb_rs_members_state")[(DOWN, "(not reachable/healthy)")] == 8
    # mongod reports a down member's optime as the epoch: that is no optime, and no lag either.
    assert (DOWN, "(not reachable/healthy)") not in samples(snapshot, "mongodb_rs_members_optimeDate")
    replset = snapshot.fact(MongoReplSet)
    assert replset.max_lag_seconds == 42.0
    down = next(m for m in replset.members if m.name == DOWN)
    assert (down.health, down.state, down.optime, down.lag_seconds) == (0, 8, None, None)
    assert snapshot.fact(Summary)["replica set"] == "rs0 (3/4 members healthy)"

    # The shipped rule reads that lag: 42 s is above its 10 s threshold for the lagging member only.
    [lag_rule] = [r for r in shipped_rules() if r.alert == "MongoReplicaLagging"]
    history = {"mongodb": [snapshot]}
    source = type("Source", (), {"collectors": lambda self, t: list(history),
                                 "history": lambda self, t, c: history.get(c, [])})()
    findings = RuleEngine([lag_rule]).evaluate(TargetView(source, "m", "mongodb", {}, time.time()))
    assert [(f.labels.get("member"), f.value) for f in findings] == [(LAGGING, 42.0)]
    assert lag_rule.for_ == 60 and tuple(lag_rule.engines) == ("mongodb",)


async def test_lag_is_measured_from_the_primary_when_dbwatch_watches_a_secondary(servers, session_for):
    """One MongoWireServer answering as the lagging secondary itself (self: true on a SECONDARY)."""
    members = [Member(PRIMARY, 1, NOW), Member(LAGGING, 2, NOW - dt.timedelta(seconds=42), self_=True)]
    server = servers(Scenario(members=members))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert samples(snapshot, "dbwatch_mongodb_replication_lag_seconds") == {(LAGGING,): 42.0}
    assert snapshot.family("mongodb_rs_myState").value() == 2
    assert not snapshot.fact(MongoServer).is_primary and snapshot.fact(MongoServer).role == "secondary"
    [(labels, _)] = snapshot.family("dbwatch_mongodb_instance_info").samples
    assert labels == ("7.0.14", "mongod", "rs0", "secondary")


async def test_oplog_window_is_the_span_from_the_first_to_the_last_entry(servers, session_for):
    """One MongoWireServer: a replica set primary whose oplog spans 5 hours."""
    first = int(NOW.timestamp()) - 5 * 3600
    server = servers(Scenario(members=replica_set(), oplog=(Timestamp(first, 1), Timestamp(int(NOW.timestamp()), 3))))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert snapshot.family("dbwatch_mongodb_oplog_window_seconds").value() == 5 * 3600
    assert snapshot.family("mongodb_mongod_replset_oplog_tail_timestamp").value() == first
    assert snapshot.family("mongodb_mongod_replset_oplog_head_timestamp").value() == NOW.timestamp()
    assert snapshot.fact(MongoOplog).window_seconds == 18000
    assert snapshot.fact(Summary)["oplog window (h)"] == 5.0


async def test_a_standalone_server_has_no_replica_set_facts_and_no_note(servers, session_for):
    """One MongoWireServer without --replSet (replSetGetStatus answers NoReplicationEnabled, code 76)."""
    server = servers(Scenario(set_name=None))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert snapshot.ok and snapshot.notes == []
    assert snapshot.fact(MongoServer).role == "standalone" and snapshot.fact(MongoServer).set_name is None
    assert not snapshot.has(MongoReplSet) and not snapshot.has(MongoOplog)
    assert snapshot.family("mongodb_rs_members_health") is None
    assert snapshot.family("mongodb_ss_connections") is not None


# -- $currentOp -----------------------------------------------------------------------------------------


async def test_long_operations_report_the_oldest_age_and_skip_dbwatchs_own(servers, session_for):
    """One MongoWireServer whose $currentOp lists a 125 s COLLSCAN, a 3 s query and a 500 s op of dbwatch."""
    ops = [
        {"type": "op", "host": "mongo-a:27017", "desc": "conn41", "connectionId": 41, "client": "10.0.0.7:50122",
         "appName": "orders-api", "active": True, "opid": 9001, "secs_running": bson_long(125),
         "microsecs_running": bson_long(125_000_000), "op": "query", "ns": "shop.orders",
         "command": {"find": "orders", "filter": {"status": "A"}}, "planSummary": "COLLSCAN", "numYields": 900},
        {"type": "op", "desc": "conn42", "client": "10.0.0.8:50123", "appName": "orders-api", "active": True,
         "opid": 9002, "secs_running": bson_long(3), "microsecs_running": bson_long(3_000_000), "op": "query",
         "ns": "shop.orders"},
        {"type": "op", "desc": "conn43", "client": "127.0.0.1:50124", "appName": "dbwatch", "active": True,
         "opid": 9003, "secs_running": bson_long(500), "microsecs_running": bson_long(500_000_000),
         "op": "command", "ns": "admin.$cmd.aggregate"},
        {"type": "op", "desc": "conn44", "active": False, "opid": 9004, "op": "none", "ns": ""},
    ]
    server = servers(Scenario(members=replica_set(), current_ops=ops))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert snapshot.family("dbwatch_mongodb_oldest_operation_seconds").value() == 125.0
    assert snapshot.family("dbwatch_mongodb_long_operations").value() == 1
    assert snapshot.family("dbwatch_mongodb_active_operations").value() == 2
    [long_op] = snapshot.fact(MongoLongOps)
    assert (long_op.opid, long_op.ns, long_op.plan_summary, long_op.seconds_running) == \
        ("9001", "shop.orders", "COLLSCAN", 125.0)


def bson_long(value: int) -> bson.Int64:
    return bson.Int64(value)  # what mongod sends for its 64-bit counters


# -- privileges -----------------------------------------------------------------------------------------


async def test_commands_the_user_may_not_run_are_notes_and_the_collection_carries_on(servers, session_for):
    """One MongoWireServer refusing serverStatus, replSetGetStatus and aggregate with Unauthorized (13)."""
    scenario = Scenario(members=replica_set(), unauthorized={"serverStatus", "replSetGetStatus", "aggregate"})
    server = servers(scenario)
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(MongoCollector(session.target, session))

    assert snapshot.ok and snapshot.family("mongodb_up").value() == 1
    assert snapshot.family("mongodb_ss_connections") is None and not snapshot.has(MongoReplSet)
    assert len(snapshot.notes) == 3
    assert all("code 13 Unauthorized" in note and "clusterMonitor" in note for note in snapshot.notes)
    assert snapshot.notes[0].startswith("serverStatus is not allowed to dbwatch's user")
    assert snapshot.version == "7.0.14" and "buildInfo" in server.commands  # the version without serverStatus


# -- the profiler ---------------------------------------------------------------------------------------


async def test_profiler_entries_are_counted_once_across_collections_with_their_filter_shapes(servers, session_for):
    """One MongoWireServer with profiling level 1 on shop; system.profile grows between collections."""
    scenario = Scenario(members=replica_set(), profiling={"shop": 1},
                        profile={"shop": [profile_entry(600, millis=900)]})
    server = servers(scenario)
    session = session_for(make_target(server.dsn()))
    collector = ProfilerCollector(session.target, session)

    first = await collect(collector)
    assert first.ok and first.fact(MongoProfiler).baseline and first.fact(MongoSlowOps) == MongoSlowOps()
    assert first.family("dbwatch_mongodb_slow_ops_total").samples == []  # what was there before is not counted

    collscan = profile_entry(
        30, millis=230, planSummary="COLLSCAN", docsExamined=50000, nreturned=12,
        command={"find": "orders", "filter": {"status": "A", "qty": {"$gt": 5}, "$or": [{"a": 1}, {"b": [1, 2]}]},
                 "sort": {"created": -1}, "$db": "shop"})
    update = profile_entry(20, op="update", millis=120, planSummary="IXSCAN { _id: 1 }", keysExamined=1,
                           docsExamined=1, command={"q": {"_id": 7}, "u": {"$set": {"x": 1}}})
    own = profile_entry(10, appName="dbwatch", millis=500)
    scenario.profile["shop"] += [collscan, update, own]
    second = await collect(collector)

    ops = second.fact(MongoSlowOps)
    assert [(o.op, o.plan, o.collscan) for o in ops] == [("query", "COLLSCAN", True), ("update", "IXSCAN", False)]
    scan = ops[0]
    assert scan.filter_shape == '{"status":1,"qty":{"$gt":1},"$or":[{"a":1},{"b":1}]}'
    assert scan.sort_shape == '{"created":1}'
    assert (scan.ns, scan.docs_examined, scan.keys_examined, scan.nreturned, scan.duration_seconds) == \
        ("shop.orders", 50000, 0, 12, 0.23)
    assert ops[1].filter_shape == '{"_id":1}'
    assert samples(second, "dbwatch_mongodb_slow_ops_total") == {
        ("shop.orders", "query", "COLLSCAN"): 1, ("shop.orders", "update", "IXSCAN"): 1}
    assert samples(second, "dbwatch_mongodb_slow_ops_docs_examined_total")[("shop.orders", "query", "COLLSCAN")] \
        == 50000
    assert samples(second, "dbwatch_mongodb_slow_ops_seconds_total")[("shop.orders", "query", "COLLSCAN")] == 0.23

    third = await collect(collector)  # nothing new: nothing counted twice
    assert third.fact(MongoSlowOps) == MongoSlowOps()
    assert samples(third, "dbwatch_mongodb_slow_ops_total")[("shop.orders", "query", "COLLSCAN")] == 1

    scenario.profile["shop"].append(profile_entry(1, millis=300, planSummary="COLLSCAN", docsExamined=50000))
    fourth = await collect(collector)
    assert [o.collscan for o in fourth.fact(MongoSlowOps)] == [True]
    assert samples(fourth, "dbwatch_mongodb_slow_ops_total")[("shop.orders", "query", "COLLSCAN")] == 2
    assert samples(fourth, "dbwatch_mongodb_slow_ops_seconds_total")[("shop.orders", "query", "COLLSCAN")] == \
        pytest.approx(0.53)


async def test_a_burst_is_read_past_the_first_batch_and_bounded_by_max_entries(servers, session_for):
    """One MongoWireServer; 130 new profiler entries (more than one 100-document batch), then 60 more."""
    scenario = Scenario(members=replica_set(), profile={"shop": []})
    server = servers(scenario)
    session = session_for(make_target(server.dsn(), profiler={"max_entries": 150}))
    collector = ProfilerCollector(session.target, session)
    await collect(collector)
    scenario.profile["shop"] += [profile_entry(300 - i) for i in range(130)]
    burst = await collect(collector)
    assert len(burst.fact(MongoSlowOps)) == 130 and "getMore" in server.commands
    assert burst.notes == [] and not burst.fact(MongoProfiler).truncated

    scenario.profile["shop"] += [profile_entry(100 - i, millis=10) for i in range(90)]
    scenario.profile["shop"] += [profile_entry(9 - i * 0.01, millis=20) for i in range(70)]
    bounded = await collect(collector)
    ops = bounded.fact(MongoSlowOps)
    assert len(ops) == 150 and bounded.fact(MongoProfiler).truncated
    assert ops[-1].duration_seconds == 0.02 and ops[0].duration_seconds == 0.01  # the newest 150 were kept
    assert any("more than 150 new profiler entries" in note for note in bounded.notes)


async def test_a_database_with_the_profiler_off_is_a_note_naming_the_command_to_turn_it_on(servers, session_for):
    """One MongoWireServer with profiling level 1 on shop and 0 on analytics."""
    scenario = Scenario(members=replica_set(), profiling={"shop": 1, "analytics": 0},
                        profile={"shop": [], "analytics": [profile_entry(5)]})
    server = servers(scenario)
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(ProfilerCollector(session.target, session))

    assert snapshot.ok
    assert samples(snapshot, "dbwatch_mongodb_profiling_level") == {("analytics",): 0, ("shop",): 1}
    [note] = snapshot.notes
    assert note.startswith("the profiler is off on analytics") and 'setProfilingLevel(1, {slowms: 100})' in note
    assert snapshot.fact(MongoProfiler).levels == {"analytics": 0, "shop": 1}


def test_shapes_keep_field_names_and_operators_and_replace_values_by_1():
    assert shape_json({"a": "x", "b": {"$in": [1, 2, 3]}, "c": {"$elemMatch": {"d": 5}}}) == \
        '{"a":1,"b":{"$in":1},"c":{"$elemMatch":{"d":1}}}'
    assert shape_json(None) == "" and shape_json({}) == ""


# -- $indexStats ----------------------------------------------------------------------------------------


async def test_index_usage_per_collection_comes_from_index_stats(servers, session_for):
    """One MongoWireServer with two indexes on shop.orders (one never used) and one on shop.users."""
    since = NOW - dt.timedelta(days=3)
    stats = {
        "shop.orders": [
            {"name": "_id_", "key": {"_id": 1}, "host": "mongo-a:27017",
             "accesses": {"ops": bson_long(120), "since": since},
             "spec": {"v": 2, "key": {"_id": 1}, "name": "_id_"}},
            {"name": "status_1_created_-1", "key": {"status": 1, "created": -1}, "host": "mongo-a:27017",
             "accesses": {"ops": bson_long(0), "since": since},
             "spec": {"v": 2, "key": {"status": 1, "created": -1}, "name": "status_1_created_-1"}},
        ],
        "shop.users": [{"name": "_id_", "key": {"_id": 1}, "accesses": {"ops": bson_long(7), "since": since}}],
    }
    server = servers(Scenario(members=replica_set(), index_stats=stats))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(IndexStatsCollector(session.target, session))

    assert samples(snapshot, "mongodb_indexstats_accesses_ops") == {
        ("shop", "orders", "_id_"): 120, ("shop", "orders", "status_1_created_-1"): 0, ("shop", "users", "_id_"): 7}
    unused = [u for u in snapshot.fact(MongoIndexUsages) if u.ops == 0]
    assert [(u.collection, u.name, u.key, u.since) for u in unused] == \
        [("orders", "status_1_created_-1", '{"status":1,"created":-1}', since.timestamp())]


# -- failures, through the daemon's path ----------------------------------------------------------------


async def test_a_server_closing_the_connection_mid_reply_is_a_clear_error_and_up_0_then_recovers(servers):
    """One MongoWireServer that cuts its serverStatus reply in half, then stops doing so."""
    scenario = Scenario(members=replica_set(), close_on="serverStatus")
    server = servers(scenario)
    jobs = TargetJobs(make_target(server.dsn()))
    try:
        snapshot = await jobs.collect("mongodb")
        assert not snapshot.ok
        assert snapshot.error.startswith(f"connection to {server.address} lost: ")
        assert "closed" in snapshot.error
        assert snapshot.family("mongodb_up").value() == 0 and snapshot.family("dbwatch_target_up").value() == 0

        scenario.close_on = None
        recovered = await jobs.collect("mongodb")
        assert recovered.ok and recovered.family("mongodb_up").value() == 1
    finally:
        await jobs.close()


async def test_a_server_that_never_answers_fails_within_the_timeout_and_the_next_collection_recovers(servers):
    """One MongoWireServer that never answers serverStatus, then answers again."""
    scenario = Scenario(members=replica_set(), stall_on="serverStatus")
    server = servers(scenario)
    jobs = TargetJobs(make_target(server.dsn(), timeout=1))
    try:
        began = time.monotonic()
        snapshot = await jobs.collect("mongodb")
        assert time.monotonic() - began < 1.5
        assert not snapshot.ok and "timed out" in snapshot.error
        assert snapshot.family("mongodb_up").value() == 0

        scenario.stall_on = None
        assert (await jobs.collect("mongodb")).ok
    finally:
        await jobs.close()


async def test_a_non_mongodb_service_on_the_port_is_a_clear_error_and_up_0(servers):
    """One NotMongoServer: answers anything with an HTTP 400 and closes."""
    other = servers(None)
    jobs = TargetJobs(make_target(f"mongodb://{other.address}/", timeout=2))
    try:
        began = time.monotonic()
        snapshot = await jobs.collect("mongodb")
        assert time.monotonic() - began < 2.5
    finally:
        await jobs.close()
    assert not snapshot.ok and snapshot.error.startswith(f"cannot connect to {other.address}: ")
    assert snapshot.error.endswith("(is this port a MongoDB server?)"), snapshot.error
    assert "Topology Description" not in snapshot.error and "\n" not in snapshot.error
    assert snapshot.family("mongodb_up").value() == 0 and snapshot.family("dbwatch_target_up").value() == 0


async def test_nothing_listening_is_a_clear_error_and_up_0():
    """No server at all: a free loopback port nobody listens on."""
    port = free_port()
    jobs = TargetJobs(make_target(f"mongodb://127.0.0.1:{port}/", timeout=2))
    try:
        snapshot = await jobs.collect("mongodb")
    finally:
        await jobs.close()
    assert not snapshot.ok and snapshot.error.startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert snapshot.error.endswith("[Errno 111] Connect call failed ('127.0.0.1', %d)" % port)
    assert snapshot.family("mongodb_up").value() == 0


async def test_scram_authentication_with_the_right_password_collects(servers, monkeypatch):
    """One MongoWireServer requiring SCRAM-SHA-256 as user dbwatch."""
    server = servers(Scenario(members=replica_set(), auth=("dbwatch", "c0rrect-h0rse")))
    monkeypatch.setenv("MONGO_PW", "c0rrect-h0rse")
    jobs = TargetJobs(make_target(server.dsn("dbwatch", authSource="admin"), password_env="MONGO_PW"))
    try:
        snapshot = await jobs.collect("mongodb")
    finally:
        await jobs.close()
    assert snapshot.ok, snapshot.error
    assert server.commands.count("saslContinue") >= 1 and "serverStatus" in server.commands


async def test_a_wrong_password_fails_with_code_18_and_never_shows_the_password(servers, monkeypatch, caplog):
    """One MongoWireServer requiring SCRAM-SHA-256; dbwatch is given another password."""
    server = servers(Scenario(members=replica_set(), auth=("dbwatch", "c0rrect-h0rse")))
    monkeypatch.setenv("MONGO_PW", "wr0ng-batt3ry")
    caplog.set_level(logging.DEBUG)
    jobs = TargetJobs(make_target(server.dsn("dbwatch", authSource="admin"), password_env="MONGO_PW"))
    try:
        snapshot = await jobs.collect("mongodb")
    finally:
        await jobs.close()
    assert not snapshot.ok
    assert snapshot.error == \
        f"cannot connect to {server.address}: Authentication failed. (code 18 AuthenticationFailed)"
    assert "wr0ng-batt3ry" not in caplog.text and "c0rrect-h0rse" not in caplog.text
    assert snapshot.family("mongodb_up").value() == 0 and "serverStatus" not in server.commands


# -- configuration --------------------------------------------------------------------------------------


def test_a_mongodb_target_takes_a_mongodb_dsn_and_gets_three_collectors_with_their_defaults():
    config = parse_config(textwrap.dedent("""
        targets:
          - name: orders-mongo
            engine: mongodb
            dsn: mongodb://dbwatch@127.0.0.1:27017/?authSource=admin
            password_env: MONGO_PW
            collectors:
              profiler: {databases: [shop], max_entries: 500}
          - name: atlas
            engine: mongodb
            dsn: mongodb+srv://dbwatch@cluster0.example.net/
    """))
    target, atlas = config.resolved_targets()
    assert set(target.collectors) == {"mongodb", "profiler", "indexstats"}
    assert (target.collectors["mongodb"].interval, target.collectors["mongodb"].timeout) == (15, 10)
    assert target.collectors["profiler"].options == ProfilerOptions(databases=("shop",), max_entries=500)
    assert atlas.dsn.startswith("mongodb+srv://")
    with pytest.raises(ConfigError) as err:
        parse_config("targets: [{name: m, engine: mongodb, dsn: 'redis://127.0.0.1:6379/0'}]")
    assert "dsn scheme 'redis' does not match engine 'mongodb'" in "\n".join(err.value.problems)
    with pytest.raises(ConfigError) as err:
        parse_config("targets: [{name: m, engine: mongodb, dsn: 'mongodb://127.0.0.1/', "
                     "collectors: {profiler: {max_entries: lots}}}]")
    assert "collectors.profiler.max_entries: expected int" in "\n".join(err.value.problems)


def test_host_form_builds_a_mongodb_dsn_and_sslmode_is_refused():
    config = parse_config("targets: [{name: m, engine: mongodb, host: 127.0.0.1, user: dbwatch}]")
    [target] = config.resolved_targets()
    assert target.dsn == "mongodb://dbwatch@127.0.0.1:27017/"
    with pytest.raises(ConfigError) as err:
        parse_config("targets: [{name: m, engine: mongodb, host: 127.0.0.1, sslmode: require}]")
    assert "sslmode is for postgres; for TLS to mongodb put tls=true" in "\n".join(err.value.problems)
    with pytest.raises(ConfigError) as err:
        parse_config("targets: [{name: m, engine: mongodb, dsn: 'mongodb://127.0.0.1/', password_env: PW}]")
    assert "a password is configured but no user" in "\n".join(err.value.problems)


def test_the_commented_mongodb_example_is_a_valid_target_once_uncommented():
    text = (Path(__file__).resolve().parent.parent / "config.example.yaml").read_text()
    lines = text[text.index("  # - name: local-mongodb"):].splitlines()
    block = []
    for line in lines:
        if not line.startswith("  #"):
            break
        block.append("  " + line[4:])  # "  # - name: ..." -> "  - name: ...", inner comments stay comments
    [target] = parse_config("targets:\n" + "\n".join(block)).resolved_targets()
    assert target.engine == "mongodb" and set(target.collectors) == {"mongodb", "profiler", "indexstats"}


def test_dbwatch_check_prints_the_replica_set_and_the_lag(servers, tmp_path):
    """One MongoWireServer (a primary with a secondary 42 s behind), and `dbwatch check` run as a process."""
    server = servers(Scenario(members=replica_set(Member(LAGGING, 2, NOW - dt.timedelta(seconds=42)))))
    config = tmp_path / "dbwatch.yaml"
    config.write_text(f"targets: [{{name: rs0-a, engine: mongodb, dsn: '{server.dsn()}'}}]\n")
    result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "check", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rs0-a (mongodb): UP, version 7.0.14" in result.stdout
    assert "replica set: rs0 (3/3 members healthy)" in result.stdout and "max lag (s): 42.0" in result.stdout
    assert "1/1 target(s) up" in result.stdout


async def test_promtool_finds_no_format_error_in_the_mongodb_families(servers, session_for):
    """One MongoWireServer with every scenario part filled in; Debian's promtool checks the exposition."""
    scenario = Scenario(members=replica_set(Member(DOWN, 2, NOW, health=0)),
                        oplog=(Timestamp(int(NOW.timestamp()) - 60, 1), Timestamp(int(NOW.timestamp()), 1)),
                        profile={"shop": []}, index_stats={"shop.orders": [
                            {"name": "_id_", "key": {"_id": 1}, "accesses": {"ops": 1, "since": NOW}}]})
    server = servers(scenario)
    session = session_for(make_target(server.dsn()))
    profiler = ProfilerCollector(session.target, session)
    await collect(profiler)
    scenario.profile["shop"].append(profile_entry(1, planSummary="COLLSCAN"))
    families = []
    for collector in (MongoCollector(session.target, session), profiler, IndexStatsCollector(session.target, session)):
        families += (await collect(collector)).families
    body = render_families(families, labels={"target": "m"})
    result = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=body,
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert not [p for p in problems if "error while linting" in p or "parsing error" in p], problems
    assert not [p for p in problems if p.startswith("dbwatch_")], problems
    # The rest may only concern names kept as mongodb_exporter has them (camelCase, counters without _total).
    assert all(p.split()[0].startswith("mongodb_") for p in problems), problems
    assert "dbwatch_mongodb_slow_ops_total" in body and "mongodb_rs_members_health" in body


def test_a_running_agent_exports_the_lag_and_holds_mongo_replica_lagging_pending(servers, tmp_path):
    """One MongoWireServer (a primary with a secondary 42 s behind) and a real `dbwatch run` process."""
    server = servers(Scenario(members=replica_set(Member(LAGGING, 2, NOW - dt.timedelta(seconds=42)))))
    proc = AgentProcess(tmp_path, {"targets": [{"name": "rs0-a", "engine": "mongodb", "dsn": server.dsn(),
                                                "collectors": {"profiler": {"enabled": False},
                                                               "indexstats": {"enabled": False}}}]}).start()
    try:
        lag = 'dbwatch_mongodb_replication_lag_seconds{target="rs0-a",member="mongo-c:27017"} 42'
        wait_for(lambda: lag in proc.metrics(), 20, "the lag on /metrics")
        assert 'mongodb_up{target="rs0-a"} 1' in proc.metrics()

        def pending():
            return [a for a in proc.get("/api/v1/alerts") if a["labels"]["alertname"] == "MongoReplicaLagging"]
        [alert] = wait_for(pending, 20, "MongoReplicaLagging pending")
        assert alert["state"] == "pending" and alert["labels"]["member"] == "mongo-c:27017"
        assert alert["annotations"]["summary"] == \
            "Replica set member mongo-c:27017 is 42s behind the primary (seen from rs0-a)"
    finally:
        assert proc.stop() == 0, proc.log()
