"""The cassandra collector, driven through the real DataStax cassandra-driver over real loopback sockets.

Starts: no real Cassandra (none can be installed on this machine). Each test starts its own CQL native
protocol v4 test server (tests/cqlwire.py: OPTIONS/STARTUP/AUTHENTICATE with PasswordAuthenticator,
REGISTER, QUERY answered with RESULT Rows carrying Cassandra 4.1's column types for system.local,
system.peers_v2 and the system_views virtual tables) in a thread, on a free loopback port. What is tested is
the collector's reading of the documented tables and the driver's behaviour on the wire, not a real
Cassandra's behaviour.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import textwrap
import time

import pytest

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.collectors.cassandra import CassandraCollector, CassandraOptions
from dbwatch.exporters.prometheus import render_families
from dbwatch.model import CollectorSettings, Snapshot, Target
from dbwatch.model.facts.cassandra import CassandraNode, CassandraPeers, CassandraSettings, CassandraTables
from dbwatch.model.facts.common import Summary
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import shipped_rules
from tests.cqlwire import CqlWireServer, Peer, Scenario, thread_pools
from tests.agentproc import AgentProcess
from tests.helpers import collect, wait_for, wait_until


def make_target(port: int, user: str = "", timeout: float = 5, password_env: str | None = None,
                **options: float) -> Target:
    userinfo = f"{user}@" if user else ""
    return Target(name="c", engine="cassandra", dsn=f"cassandra://{userinfo}127.0.0.1:{port}/", labels={},
                  collectors={"cassandra": CollectorSettings(15, timeout, CassandraOptions(**options))},
                  password_env=password_env)


@pytest.fixture
def servers():
    started: list[CqlWireServer] = []

    def start(scenario: Scenario) -> CqlWireServer:
        server = CqlWireServer(scenario)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def samples(snapshot: Snapshot, name: str) -> dict[tuple[str, ...], float]:
    family = snapshot.family(name)
    assert family is not None, f"{name} not emitted"
    return dict(family.samples)


def busy_tables() -> dict[str, list[dict]]:
    return {
        "system_views.disk_usage": [{"keyspace_name": "shop", "table_name": "orders", "mebibytes": 2048},
                                    {"keyspace_name": "system", "table_name": "local", "mebibytes": 1}],
        "system_views.max_partition_size": [{"keyspace_name": "shop", "table_name": "orders", "mebibytes": 12}],
        "system_views.tombstones_per_read": [{"keyspace_name": "shop", "table_name": "orders", "count": 5000,
                                              "50th": 3.0, "99th": 120.0, "max": 900.0}],
        "system_views.coordinator_read_latency": [{"keyspace_name": "shop", "table_name": "orders", "count": 5000,
                                                   "50th_ms": 1.5, "99th_ms": 25.0, "max_ms": 80.0,
                                                   "per_second": 2.5}],
        "system_views.clients": [{"address": "10.0.0.9", "port": 40000, "connection_stage": "ready",
                                  "driver_name": "DataStax Java Driver", "driver_version": "4.17.0",
                                  "hostname": "app1", "protocol_version": 5, "request_count": 10,
                                  "ssl_cipher_suite": None, "ssl_enabled": False, "ssl_protocol": None,
                                  "username": "app"}],
        "system_views.sstable_tasks": [{"keyspace_name": "shop", "table_name": "orders",
                                        "task_id": "5a1c3f0e-1111-4a5b-9c3d-000000000001", "kind": "compaction",
                                        "progress": 100, "total": 1000, "unit": "bytes"}],
        "system_views.internode_inbound": [{"address": "127.0.0.2", "port": 7000, "dc": "dc1", "rack": "rack1",
                                            "expired_count": 7, "error_count": 0}],
        "system_views.internode_outbound": [{"address": "127.0.0.2", "port": 7000, "dc": "dc1", "rack": "rack1",
                                             "expired_count": 3, "overload_count": 1, "active_connections": 3}],
    }


def rule_values(alert: str, snapshots: list[Snapshot]) -> list[tuple[dict, float]]:
    [rule] = [r for r in shipped_rules() if r.alert == alert]
    history = {"cassandra": snapshots}
    source = type("Source", (), {"collectors": lambda self, t: list(history),
                                 "history": lambda self, t, c: history.get(c, [])})()
    findings = RuleEngine([rule]).evaluate(TargetView(source, "c", "cassandra", {}, time.time()))
    return [(dict(f.labels), f.value) for f in findings]


async def test_a_healthy_node_reports_its_topology_pools_caches_tables_and_latency(servers, session_for):
    """One test server: a 4.1 node in dc1 with two live peers and busy user tables."""
    scenario = Scenario(peers=[Peer("127.0.0.2"), Peer("127.0.0.3", rack="rack2")], tables=busy_tables())
    server = servers(scenario)
    session = session_for(make_target(server.port))
    snapshot = await collect(CassandraCollector(session.target, session))

    assert snapshot.ok and snapshot.notes == [], snapshot.notes
    assert snapshot.version == "4.1.5"
    assert samples(snapshot, "dbwatch_cassandra_node_info") == {("4.1.5", "Test Cluster", "dc1", "rack1"): 1}
    assert snapshot.family("dbwatch_cassandra_peers").value() == 2
    assert samples(snapshot, "dbwatch_cassandra_peer_up") == {("127.0.0.2", "dc1", "rack1"): 1,
                                                              ("127.0.0.3", "dc1", "rack2"): 1}
    assert snapshot.family("dbwatch_cassandra_peers_down").value() == 0
    assert samples(snapshot, "cassandra_thread_pool_pending_tasks")[("MutationStage",)] == 0
    assert samples(snapshot, "cassandra_thread_pool_completed_tasks_total")[("ReadStage",)] == 1000
    assert samples(snapshot, "cassandra_cache_hits_total") == {("keys",): 900}
    assert samples(snapshot, "dbwatch_cassandra_cache_hit_ratio") == {("keys",): 0.9}
    assert samples(snapshot, "dbwatch_cassandra_clients") == {("app", "DataStax Java Driver"): 1}
    assert samples(snapshot, "dbwatch_cassandra_sstable_tasks") == {("compaction",): 1}
    # user tables only: system.local's disk usage is not a series
    assert samples(snapshot, "dbwatch_cassandra_table_disk_usage_bytes") == {("shop", "orders"): 2048 * 1024 ** 2}
    assert samples(snapshot, "dbwatch_cassandra_table_max_partition_bytes") == {("shop", "orders"): 12 * 1024 ** 2}
    latency = samples(snapshot, "dbwatch_cassandra_table_coordinator_latency_seconds")
    assert latency == {("shop", "orders", "read", "0.5"): 0.0015, ("shop", "orders", "read", "0.99"): 0.025}
    assert samples(snapshot, "dbwatch_cassandra_dropped_messages_total") == {
        ("127.0.0.2", "inbound", "expired"): 7, ("127.0.0.2", "outbound", "expired"): 3,
        ("127.0.0.2", "outbound", "overload"): 1}
    node = snapshot.fact(CassandraNode)
    assert (node.peers, node.peers_down, node.datacenter, node.virtual_tables) == (2, 0, "dc1", True)
    [orders] = snapshot.fact(CassandraTables)
    assert (orders.qualified, orders.tombstones_per_read_p99, orders.reads) == ("shop.orders", 120.0, 5000)
    assert snapshot.fact(CassandraSettings).large_partition_warning_bytes == 100 * 1024 ** 2
    assert snapshot.fact(Summary)["nodes"] == "3"
    assert any("system_views.thread_pools" in q for q in scenario.queries)
    for alert in ("CassandraNodeDown", "CassandraPendingCompactions", "CassandraThreadPoolBlocked"):
        assert rule_values(alert, [snapshot]) == [], alert


async def test_a_peer_that_gossips_shutdown_or_stops_beating_is_down_and_fires_the_rule(servers, session_for):
    """One test server: one peer announced shutdown, one silent (heartbeat frozen), one alive."""
    scenario = Scenario(peers=[Peer("127.0.0.2", status="shutdown"), Peer("127.0.0.3", alive=False),
                               Peer("127.0.0.4")])
    server = servers(scenario)
    session = session_for(make_target(server.port, down_after_seconds=0.5))
    collector = CassandraCollector(session.target, session)
    first = await collect(collector)
    # the shutdown peer is down at once; the silent one only once its heartbeat has stood still long enough
    assert samples(first, "dbwatch_cassandra_peer_up") == {("127.0.0.2", "dc1", "rack1"): 0,
                                                           ("127.0.0.3", "dc1", "rack1"): 1,
                                                           ("127.0.0.4", "dc1", "rack1"): 1}

    async def two_down() -> Snapshot | None:
        snapshot = await collect(collector)
        return snapshot if snapshot.fact(CassandraNode).peers_down == 2 else None
    snapshot = await wait_until(two_down, 20, "the silent peer to count as down")
    assert samples(snapshot, "dbwatch_cassandra_peer_up")[("127.0.0.4", "dc1", "rack1")] == 1
    [peer] = [p for p in snapshot.fact(CassandraPeers) if p.address == "127.0.0.3"]
    assert peer.state == "down" and peer.heartbeat_stale_seconds >= 0.5
    fired = rule_values("CassandraNodeDown", [snapshot])
    assert sorted(labels["peer"] for labels, _ in fired) == ["127.0.0.2", "127.0.0.3"]
    assert snapshot.fact(Summary)["nodes"] == "4 (2 down)"


async def test_pending_compactions_and_blocked_pools_fire_and_near_misses_stay_silent(servers, session_for):
    """One test server whose thread pools change between collections."""
    scenario = Scenario()
    server = servers(scenario)
    session = session_for(make_target(server.port))
    collector = CassandraCollector(session.target, session)

    scenario.tables["system_views.thread_pools"] = thread_pools(CompactionExecutor=20)
    busy = await collect(collector)
    assert busy.family("dbwatch_cassandra_pending_compactions").value() == 20
    assert [v for _, v in rule_values("CassandraPendingCompactions", [busy])] == [20]
    pools = thread_pools()
    pools[1]["blocked_tasks"] = 3  # MemtableFlushWriter
    scenario.tables["system_views.thread_pools"] = pools
    blocked = await collect(collector)
    assert rule_values("CassandraThreadPoolBlocked", [blocked]) == [
        ({"pool": "MemtableFlushWriter", "engine": "cassandra"}, 3)]

    # near misses: the threshold itself, and no pool blocked
    scenario.tables["system_views.thread_pools"] = thread_pools(CompactionExecutor=15)
    calm = await collect(collector)
    assert rule_values("CassandraPendingCompactions", [calm]) == []
    assert rule_values("CassandraThreadPoolBlocked", [calm]) == []


async def test_a_cassandra_40_node_lacks_gossip_info_and_says_so(servers, session_for):
    """One test server answering as Cassandra 4.0.13 (no system_views.gossip_info)."""
    server = servers(Scenario(release_version="4.0.13", peers=[Peer("127.0.0.2")]))
    session = session_for(make_target(server.port))
    snapshot = await collect(CassandraCollector(session.target, session))
    assert snapshot.ok
    assert snapshot.notes == ["peer up/down status needs system_views.gossip_info (Cassandra 4.1+)"]
    assert snapshot.family("dbwatch_cassandra_peer_up") is None
    assert snapshot.fact(CassandraNode).peers_down is None


async def test_a_311_node_gives_its_topology_and_one_note(servers, session_for):
    """One test server answering as Cassandra 3.11.16 (no system_views at all, no peers_v2 needed)."""
    server = servers(Scenario(release_version="3.11.16", peers=[Peer("127.0.0.2")]))
    session = session_for(make_target(server.port))
    snapshot = await collect(CassandraCollector(session.target, session))
    assert snapshot.ok and snapshot.family("dbwatch_cassandra_peers").value() == 1
    assert snapshot.notes == ["Cassandra 3.11.16 has no system_views (virtual tables came with 4.0): only the "
                              "node and its topology are collected"]
    assert snapshot.family("cassandra_thread_pool_pending_tasks") is None


async def test_a_virtual_table_the_user_may_not_read_is_a_note(servers, session_for):
    scenario = Scenario(refuse={"system_views.clients"})
    server = servers(scenario)
    session = session_for(make_target(server.port))
    snapshot = await collect(CassandraCollector(session.target, session))
    assert snapshot.ok
    assert snapshot.notes == ["SELECT on system_views.clients failed (User cassandra has no SELECT permission on "
                              "<table system_views.clients> or any of its parents): clients not collected"]
    assert snapshot.family("cassandra_thread_pool_active_tasks") is not None


async def test_password_authentication_collects_and_a_wrong_password_is_one_clean_line(servers, monkeypatch,
                                                                                       caplog):
    """One test server requiring PasswordAuthenticator (user dbwatch)."""
    server = servers(Scenario(user="dbwatch", password="c0rrect-h0rse"))
    monkeypatch.setenv("CASS_PW", "c0rrect-h0rse")
    jobs = TargetJobs(make_target(server.port, user="dbwatch", password_env="CASS_PW"))
    try:
        snapshot = await jobs.collect("cassandra")
    finally:
        await jobs.close()
    assert snapshot.ok, snapshot.error

    monkeypatch.setenv("CASS_PW", "wr0ng-batt3ry")
    caplog.set_level(logging.DEBUG)
    jobs = TargetJobs(make_target(server.port, user="dbwatch", password_env="CASS_PW"))
    try:
        snapshot = await jobs.collect("cassandra")
    finally:
        await jobs.close()
    assert not snapshot.ok
    assert snapshot.error == (f"cannot connect to 127.0.0.1:{server.port}: authentication failed: Provided "
                              "username dbwatch and/or password are incorrect")
    assert "\n" not in snapshot.error
    assert "wr0ng-batt3ry" not in caplog.text and "c0rrect-h0rse" not in caplog.text
    assert snapshot.family("dbwatch_cassandra_up").value() == 0


async def test_a_port_that_is_not_cassandra_fails_with_one_line_that_says_so():
    """A TCP service on a free loopback port that answers with HTTP (here: a plain socket in a thread)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(100)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    threading.Thread(target=serve, daemon=True).start()
    jobs = TargetJobs(make_target(port))
    try:
        snapshot = await jobs.collect("cassandra")
    finally:
        await jobs.close()
        listener.close()
    assert not snapshot.ok
    assert snapshot.error.startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert snapshot.error.endswith("(is this port a Cassandra native transport, 9042 by default?)")
    assert "\n" not in snapshot.error


async def test_a_server_that_goes_away_is_a_down_target_and_the_session_recovers(servers):
    """One test server, stopped after the first collection, then a new one on the same port."""
    scenario = Scenario()
    server = servers(scenario)
    port = server.port
    jobs = TargetJobs(make_target(port, timeout=3))
    try:
        assert (await jobs.collect("cassandra")).ok
        server.stop()
        down = await jobs.collect("cassandra")
        assert not down.ok and down.family("dbwatch_cassandra_up").value() == 0
        assert "\n" not in down.error and str(port) in down.error
        again = CqlWireServer(scenario)
        again.port = port
        again.start()
        try:
            async def back() -> Snapshot | None:
                snapshot = await jobs.collect("cassandra")
                return snapshot if snapshot.ok else None
            await wait_until(back, 90, "the collection to succeed again", interval=0.5)
        finally:
            again.stop()
    finally:
        await jobs.close()


def test_a_cassandra_target_takes_a_cassandra_dsn_and_its_options():
    config = parse_config(textwrap.dedent("""
        targets:
          - name: ring-a
            engine: cassandra
            dsn: cassandra://dbwatch@10.0.0.5:9042/
            password_env: CASS_PW
            collectors:
              cassandra: {down_after_seconds: 20}
          - name: ring-b
            engine: cassandra
            host: 10.0.0.6
    """))
    a, b = config.resolved_targets()
    assert set(a.collectors) >= {"cassandra"}
    assert (a.collectors["cassandra"].interval, a.collectors["cassandra"].timeout) == (15, 10)
    assert a.collectors["cassandra"].options == CassandraOptions(down_after_seconds=20.0)
    assert b.dsn == "cassandra://10.0.0.6:9042/"
    with pytest.raises(ConfigError) as err:
        parse_config("targets: [{name: c, engine: cassandra, dsn: 'mongodb://127.0.0.1/'}]")
    assert "dsn scheme 'mongodb' does not match engine 'cassandra'" in "\n".join(err.value.problems)


def test_a_running_agent_exports_the_node_holds_node_down_pending_and_outlives_the_server(tmp_path):
    """One test server (a peer that gossiped shutdown) and a real `dbwatch run` process; the server is then
    stopped: the target goes down, the agent keeps serving."""
    server = CqlWireServer(Scenario(peers=[Peer("127.0.0.2", status="shutdown")]))
    server.start()
    proc = AgentProcess(tmp_path, {"targets": [{"name": "ring-a", "engine": "cassandra", "interval": "1s",
                                                "dsn": f"cassandra://127.0.0.1:{server.port}/"}]}).start()
    try:
        peer = 'dbwatch_cassandra_peer_up{target="ring-a",peer="127.0.0.2",datacenter="dc1",rack="rack1"} 0'
        wait_for(lambda: peer in proc.metrics(), 30, "the down peer on /metrics")

        def pending():
            return [a for a in proc.get("/api/v1/alerts") if a["labels"]["alertname"] == "CassandraNodeDown"]
        [alert] = wait_for(pending, 30, "CassandraNodeDown pending")
        assert alert["state"] == "pending" and alert["labels"]["peer"] == "127.0.0.2"
        assert alert["annotations"]["summary"] == "Cassandra node 127.0.0.2 (dc1/rack1) is down as ring-a sees it"

        server.stop()
        wait_for(lambda: 'dbwatch_target_up{target="ring-a"} 0' in proc.metrics(), 60, "the target down")
        [target] = proc.get("/api/v1/targets")
        assert target["up"] is False and "\n" not in (target.get("last_error") or "")
        assert 'dbwatch_cassandra_up{target="ring-a"} 0' in proc.metrics()
    finally:
        server.stop()
        assert proc.stop() == 0, proc.log()


async def test_promtool_finds_no_format_error_in_the_cassandra_families(session_for):
    """One test server with every table filled in; Debian's promtool lints the exposition."""
    with CqlWireServer(Scenario(peers=[Peer("127.0.0.2")], tables=busy_tables())) as server:
        session = session_for(make_target(server.port))
        snapshot = await collect(CassandraCollector(session.target, session))
    body = render_families(snapshot.families, labels={"target": "c"})
    result = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=body,
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert not [p for p in problems if "error while linting" in p or "parsing error" in p], problems
    assert "cassandra_thread_pool_pending_tasks" in body and "dbwatch_cassandra_dropped_messages_total" in body
