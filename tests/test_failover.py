"""Replication topology and failover triggers (rules/cluster.py, rules/replication.py, agent/failover.py).

End to end, each test starts its own throwaway PostgreSQL 15 primary with streaming standbys
(tests/pgcluster.py; the session-wide pg_primary is never touched) and a real ``dbwatch run`` watching them,
then stops the primary. Rule-level tests run the cluster rules on snapshots built in the test (recorded
shapes of the postgres collector's facts) for what a real setup cannot stage here: a primary unreachable
from the agent only (its replicas still streaming) needs a network partition between two loopback processes.
The command action runs a real subprocess.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.failover import FailoverController
from dbwatch.model import CollectorSettings, Finding, FindingKind, Severity, Snapshot, Target, gauge
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.postgres import replication_link
from dbwatch.model.facts.postgres import ServerInfo, Standby
from dbwatch.rules.catalog import python_rules
from dbwatch.rules.cluster import ClusterView, discover_clusters
from dbwatch.rules.clusterconfig import ClusterConfig, FailoverConfig
from dbwatch.rules.engine import RuleEngine, TargetView
from tests.agentproc import AgentProcess, sample_value
from tests.pgcluster import PostgresServer
from tests.helpers import wait_for

# -- rules on recorded snapshots -------------------------------------------------------------------------


def pg_snapshot(target: str, at: float, ok: bool = True, standby: bool = False, receiver: str = "streaming",
                lag_bytes: float = 0.0) -> Snapshot:
    snap = Snapshot(target=target, engine="postgres", collector="postgres", started_at=at, ok=ok,
                    error=None if ok else "cannot connect to 127.0.0.1:5432: Connection refused")
    up = gauge("dbwatch_target_up", "up")
    up.add((), int(ok))
    snap.families.append(up)
    if ok:
        server = ServerInfo(version="15.6", full_version="PostgreSQL 15.6", version_num=150006,
                            in_recovery=standby, start_time=0.0, role="postgres", superuser=True, monitor=True,
                            read_all_stats=True)
        receiving = Standby(
            lag_seconds=0.0, replay_lag_bytes=lag_bytes, replay_paused=False, receiver_status=receiver,
            upstream_host="127.0.0.1" if receiver == "streaming" else None,
            upstream_port=5432 if receiver == "streaming" else None) if standby else None
        snap.put(server, replication_link(server, receiving))
    return snap


def evaluate(store: SnapshotStore, members: list[str], now: float, **settings) -> list[Finding]:
    view = ClusterView("orders", {m: TargetView(store, m, "postgres", {}, now) for m in members},
                       FailoverConfig(**settings), now)
    return RuleEngine([], python_rules()).evaluate_cluster(view)


def record(store: SnapshotStore, *snapshots: Snapshot) -> None:
    for snapshot in sorted(snapshots, key=lambda s: s.started_at):
        store.put(snapshot)


def by_rule(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.rule, []).append(f)
    return out


def test_primary_unreachable_from_the_agent_while_replicas_stream_is_not_a_failover():
    store = SnapshotStore()
    record(store, pg_snapshot("a", 100), pg_snapshot("b", 100.5, standby=True),
           *(pg_snapshot("a", 101 + i, ok=False) for i in range(3)),
           *(pg_snapshot("b", 101.5 + i, standby=True) for i in range(3)))
    found = by_rule(evaluate(store, ["a", "b"], 104))
    assert "FailoverRecommended" not in found
    [alert] = found["PrimaryUnreachableFromAgent"]
    assert alert.target == "a" and alert.labels["cluster"] == "orders" and alert.evidence["streaming"] == ["b"]


def test_failover_is_recommended_only_after_the_configured_number_of_failed_probes():
    store = SnapshotStore()
    record(store, pg_snapshot("a", 100), pg_snapshot("b", 100.5, standby=True),
           pg_snapshot("a", 101, ok=False), pg_snapshot("a", 102, ok=False),
           pg_snapshot("b", 102.5, standby=True, receiver="stopped", lag_bytes=120))
    assert evaluate(store, ["a", "b"], 103, probes=3) == []
    store.put(pg_snapshot("a", 103, ok=False))
    store.put(pg_snapshot("b", 103.5, standby=True, receiver="stopped", lag_bytes=120))
    [alert] = by_rule(evaluate(store, ["a", "b"], 104, probes=3))["FailoverRecommended"]
    assert (alert.target, alert.severity, alert.labels["candidate"]) == ("a", Severity.CRITICAL, "b")
    assert "120 bytes" in alert.summary
    assert alert.evidence["members"]["a"]["failed_probes"] == 3
    assert alert.evidence["members"]["b"]["lag_bytes"] == 120


def test_a_replica_probed_before_the_primary_failed_is_not_evidence_that_its_upstream_is_gone():
    store = SnapshotStore()
    record(store, pg_snapshot("a", 100), pg_snapshot("b", 100.5, standby=True, receiver="stopped"),
           *(pg_snapshot("a", 101 + i, ok=False) for i in range(3)))
    assert evaluate(store, ["a", "b"], 104) == []


def test_the_least_lagging_replica_under_the_maximum_lag_is_the_candidate_and_the_others_are_excluded_with_reasons():
    store = SnapshotStore()
    record(store, pg_snapshot("a", 100), *(pg_snapshot("a", 101 + i, ok=False) for i in range(3)),
           pg_snapshot("b", 103.5, standby=True, receiver="stopped", lag_bytes=5_000_000),
           pg_snapshot("c", 103.5, standby=True, receiver="stopped", lag_bytes=4096),
           pg_snapshot("d", 103.5, standby=True, receiver="stopped", lag_bytes=100))
    found = by_rule(evaluate(store, ["a", "b", "c", "d"], 104, maximum_lag_on_failover="1MB"))
    [alert] = found["FailoverRecommended"]
    assert [f.target for f in found["ReplicaLagging"]] == ["b"]
    assert alert.labels["candidate"] == "d" and alert.evidence["candidates"] == ["d", "c"]
    assert "above maximum_lag_on_failover" in alert.evidence["excluded"]["b"]
    store.put(pg_snapshot("d", 104, ok=False))
    [blocked] = by_rule(evaluate(store, ["a", "b", "c", "d"], 105, maximum_lag_on_failover="1kB"))["NoFailoverCandidate"]
    assert set(blocked.evidence["excluded"]) == {"b", "c", "d"}


def test_two_writable_primaries_are_a_suspected_split_brain_and_a_stopped_receiver_under_a_live_primary_is_broken():
    store = SnapshotStore()
    record(store, pg_snapshot("a", 100), pg_snapshot("b", 100), pg_snapshot("c", 100, standby=True, receiver="stopped"))
    found = by_rule(evaluate(store, ["a", "b", "c"], 101))
    assert {f.target for f in found["SplitBrainSuspected"]} == {"a", "b"}
    [broken] = found["ReplicationBroken"]
    assert broken.target == "c" and "stopped" in broken.summary


def test_a_replica_above_the_maximum_lag_is_lagging():
    store = SnapshotStore()
    record(store, pg_snapshot("a", 100), pg_snapshot("b", 100, standby=True, lag_bytes=3 * 1024 * 1024))
    [lagging] = evaluate(store, ["a", "b"], 101)
    assert (lagging.rule, lagging.target, lagging.value) == ("ReplicaLagging", "b", 3 * 1024 * 1024)


def test_clusters_are_named_in_the_config_or_discovered_from_upstreams_by_host_and_port():
    def target(name: str, port: int, cluster: str | None = None) -> Target:
        return Target(name, "postgres", f"postgresql://u@localhost:{port}/db", {}, {}, cluster=cluster)

    targets = {"p": target("p", 5432), "s1": target("s1", 5433), "s2": target("s2", 5434),
               "x": target("x", 6000, "billing"), "y": target("y", 6001, "billing"), "lone": target("lone", 7000)}
    clusters = discover_clusters(targets, {"s1": ("127.0.0.1", 5432), "s2": ("127.0.0.1", 5433)})
    assert clusters == {"p": ["p", "s1", "s2"], "billing": ["x", "y"]}


def test_cluster_settings_are_validated_with_their_yaml_path():
    with pytest.raises(ConfigError) as err:
        parse_config("clusters:\n  orders:\n    failover: {action: patroni, maximum_lag_on_failover: lots, "
                     "probes: 0}\n")
    problems = "\n".join(err.value.problems)
    assert "clusters.orders.failover.maximum_lag_on_failover: expected a size" in problems
    assert "clusters.orders.failover.probes" in problems
    config = parse_config("clusters:\n  orders:\n    failover: {maximum_lag_on_failover: 16MB}\n")
    assert config.clusters["orders"].failover.maximum_lag_on_failover == 16 * 1024 * 1024


def test_the_command_action_runs_once_per_cooldown_and_never_under_a_suspected_split_brain(tmp_path: Path):
    out = tmp_path / "ran"
    script = f"import sys; open({str(out)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"
    config = ClusterConfig(failover=FailoverConfig(action="command", dry_run=False, cooldown=600,
                                                   command=[sys.executable, "-c", script, "{cluster}", "{candidate}"]))
    recommended = Finding("FailoverRecommended", "a", FindingKind.ALERT, Severity.CRITICAL, "down",
                          labels={"cluster": "orders", "candidate": "b"})
    split = Finding("SplitBrainSuspected", "a", FindingKind.ALERT, Severity.CRITICAL, "two")

    async def scenario() -> None:
        controller = FailoverController({"orders": config}, tmp_path, lambda: {})
        controller.consider("orders", [recommended, split])
        assert "orders" not in controller._running
        for _ in range(3):
            controller.consider("orders", [recommended])
            while controller._running:
                await asyncio.sleep(0.01)
        [taken] = controller.findings("orders")
        assert taken.rule == "FailoverActionTaken" and taken.labels["result"] == "ok"
        await controller.stop()

    asyncio.run(scenario())
    assert out.read_text() == "orders b\n"
    rows = sqlite3.connect(tmp_path / "failover.db").execute("SELECT action, dry_run, ok FROM failover_actions")
    assert rows.fetchall() == [("command", 0, 1)]


def test_the_patroni_action_posts_the_candidate_and_a_refusal_is_a_failed_action(tmp_path: Path):
    """A stand-in for Patroni's REST API (a stdlib HTTP server on loopback): it accepts the first failover
    and refuses the second with 503, as Patroni does when the candidate is not healthy."""
    posted: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            posted.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            status, body = (200, b"Successfully failed over to \"b\"") if len(posted) == 1 else (503, b"not healthy")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = ClusterConfig(failover=FailoverConfig(action="patroni", dry_run=False, cooldown=0, patroni_url=url))
    recommended = Finding("FailoverRecommended", "a", FindingKind.ALERT, Severity.CRITICAL, "down",
                          labels={"cluster": "orders", "candidate": "b"})

    async def scenario() -> list[str]:
        controller = FailoverController({"orders": config}, tmp_path, lambda: {})
        details = []
        for _ in range(2):
            controller.consider("orders", [recommended])
            while controller._running:
                await asyncio.sleep(0.01)
            details.append(controller.findings("orders")[0].labels["result"])
        await controller.stop()
        return details

    try:
        assert asyncio.run(scenario()) == ["ok", "failed"]
    finally:
        server.shutdown()
        server.server_close()
    assert posted == [("/failover", {"candidate": "b"})] * 2
    rows = sqlite3.connect(tmp_path / "failover.db").execute("SELECT ok, detail FROM failover_actions ORDER BY id")
    assert [(ok, detail.split(": ", 1)[1]) for ok, detail in rows] == [
        (1, 'HTTP 200 Successfully failed over to "b"'), (0, "HTTP 503 not healthy")]


# -- end to end: real primary and standbys, a real agent --------------------------------------------------


@pytest.fixture
def servers():
    made: list[PostgresServer] = []

    def make(primary: PostgresServer | None = None) -> PostgresServer:
        server = PostgresServer(primary=primary, settings={"wal_retrieve_retry_interval": "'1s'"})
        made.append(server)
        return server.start()

    yield make
    for server in reversed(made):
        server.destroy()


def member(name: str, server: PostgresServer) -> dict:
    return {"name": name, "engine": "postgres", "dsn": server.dsn(), "cluster": "orders", "timeout": "2s",
            "collectors": {"statements": {"enabled": False}}}


def start_agent(tmp_path: Path, targets: list[dict], **failover) -> AgentProcess:
    config = {"targets": targets,
              "clusters": {"orders": {"failover": {"probes": 3, "probe_interval": "1s", **failover}}}}
    return AgentProcess(tmp_path, config).start()


def alerts(agent: AgentProcess, name: str, state: str = "firing") -> list[dict]:
    return [a for a in agent.get("/api/v1/alerts") if a["labels"]["alertname"] == name and a["state"] == state]


def cluster(agent: AgentProcess) -> dict:
    return next((c for c in agent.get("/api/v1/clusters") if c["name"] == "orders"), {})


def test_stopping_the_primary_recommends_the_standby_and_pg_promote_makes_it_the_new_primary(tmp_path, servers):
    primary = servers()
    standby = servers(primary)
    agent = start_agent(tmp_path, [member("pg-a", primary), member("pg-b", standby)],
                        action="pg_promote", dry_run=False, cooldown="10m")
    try:
        wait_for(lambda: cluster(agent).get("primary") == "pg-a"
                 and cluster(agent)["members"]["pg-b"]["link"] == "streaming", 15, "the cluster's topology")
        stopped = time.monotonic()
        primary.stop()
        [alert] = wait_for(lambda: alerts(agent, "FailoverRecommended", "firing")
                           or alerts(agent, "FailoverRecommended", "resolved"), 15, "FailoverRecommended")
        assert alert["labels"]["target"] == "pg-a" and alert["labels"]["candidate"] == "pg-b"
        assert "promote pg-b (" in alert["annotations"]["summary"] and " bytes" in alert["annotations"]["summary"]
        assert time.monotonic() - stopped < 3 * 1 + 8
        wait_for(lambda: standby.psql("SELECT pg_is_in_recovery()") == "f", 20, "the standby's promotion")
        wait_for(lambda: cluster(agent).get("primary") == "pg-b", 15, "the agent seeing pg-b as primary")
        wait_for(lambda: alerts(agent, "FailoverRecommended", "resolved"), 15, "FailoverRecommended to resolve")
        [taken] = wait_for(lambda: alerts(agent, "FailoverActionTaken"), 10, "FailoverActionTaken")
        assert taken["labels"]["target"] == "pg-b" and taken["labels"]["dry_run"] == "false"
        assert taken["labels"]["result"] == "ok" and taken["labels"]["severity"] == "critical"
        [action] = cluster(agent)["actions"]
        assert action["action"] == "pg_promote" and action["ok"] and "promoted" in action["detail"]
    finally:
        agent.stop()


def test_in_dry_run_nothing_changes_and_a_replica_far_behind_is_not_the_candidate(tmp_path, servers):
    primary = servers()
    behind, good = servers(primary), servers(primary)
    agent = start_agent(tmp_path, [member("pg-a", primary), member("pg-behind", behind), member("pg-good", good)],
                        action="pg_promote", maximum_lag_on_failover="1MB")
    try:
        wait_for(lambda: cluster(agent).get("primary") == "pg-a", 15, "the cluster's topology")
        behind.psql("SELECT pg_wal_replay_pause()")
        primary.psql("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 30000) g")
        wait_for(lambda: (cluster(agent)["members"]["pg-behind"]["lag_bytes"] or 0) > 1024 * 1024, 20,
                 "the paused standby to fall 1MB behind")
        # The table itself replicates too: until it has, the standby answers "relation does not exist".
        caught_up = "SELECT to_regclass('filler') IS NOT NULL AND pg_last_wal_replay_lsn() >= '{}'"
        lsn = primary.psql("SELECT pg_current_wal_lsn()")
        wait_for(lambda: good.psql(caught_up.format(lsn)) == "t", 20, "the other standby to catch up")
        assert good.psql("SELECT count(*) FROM filler") == "30000"
        primary.stop()
        [alert] = wait_for(lambda: alerts(agent, "FailoverRecommended"), 15, "FailoverRecommended")
        assert alert["labels"]["candidate"] == "pg-good"
        assert "pg-behind: lag" in alert["annotations"]["description"]
        assert "above maximum_lag_on_failover" in alert["annotations"]["description"]
        assert "dry run" in alert["annotations"]["description"]
        [taken] = wait_for(lambda: alerts(agent, "FailoverActionTaken"), 10, "the dry run's FailoverActionTaken")
        assert taken["labels"]["dry_run"] == "true" and "would run SELECT pg_promote() on pg-good" in \
            taken["annotations"]["description"]
        def runs() -> float:
            return sample_value(agent.metrics(), "dbwatch_collector_runs_total", target="pg-good",
                                collector="postgres") or 0

        seen = runs()
        wait_for(lambda: runs() >= seen + 2, 10, "two more evaluations after the dry run")
        assert good.psql("SELECT pg_is_in_recovery()") == "t" and behind.psql("SELECT pg_is_in_recovery()") == "t"
        assert len(cluster(agent)["actions"]) == 1  # once per cooldown, not once per evaluation
    finally:
        agent.stop()


def test_a_redis_replica_is_discovered_from_its_master_and_recommended_when_the_master_stops(tmp_path):
    from tests.redisserver import RedisServer

    master = RedisServer().start()
    replica = None
    try:
        replica = RedisServer("--replicaof", "127.0.0.1", str(master.port)).start()
        targets = [{"name": name, "engine": "redis", "dsn": server.dsn(), "interval": "1s", "timeout": "2s",
                    "collectors": {"slowlog": {"enabled": False}}}
                   for name, server in (("redis-a", master), ("redis-b", replica))]
        agent = AgentProcess(tmp_path, {"targets": targets}).start()  # no `cluster:`: discovered
        try:
            def redis_cluster() -> dict:
                return next((c for c in agent.get("/api/v1/clusters") if c["name"] == "redis-a"), {})

            wait_for(lambda: redis_cluster().get("primary") == "redis-a"
                     and redis_cluster()["members"]["redis-b"]["link_up"], 15, "the discovered Redis cluster")
            master.stop()
            [alert] = wait_for(lambda: alerts(agent, "FailoverRecommended"), 15, "FailoverRecommended")
            assert alert["labels"]["cluster"] == "redis-a" and alert["labels"]["candidate"] == "redis-b"
            assert "No automatic action is configured" in alert["annotations"]["description"]
            assert redis_cluster()["actions"] == []
        finally:
            agent.stop()
    finally:
        for server in (replica, master):
            if server is not None:
                server.destroy()


def test_a_mariadb_replica_that_cannot_log_in_to_its_primary_is_broken_with_the_servers_error_text(tmp_path):
    from tests.mariadbserver import MariaDBServer

    primary = MariaDBServer(server_id=11, performance_schema=False).start()
    replica = None
    try:
        replica = primary.replica(server_id=12)
        replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_PASSWORD='wrong'; START SLAVE")
        targets = [{"name": name, "engine": "mysql", "dsn": server.dsn(), "interval": "1s", "timeout": "3s",
                    "cluster": "shop", "collectors": {"statements": {"enabled": False}}}
                   for name, server in (("maria-a", primary), ("maria-b", replica))]
        agent = AgentProcess(tmp_path, {"targets": targets}).start()
        try:
            [alert] = wait_for(lambda: [a for a in agent.get("/api/v1/alerts")
                                        if a["labels"]["alertname"] == "ReplicationBroken"], 20, "ReplicationBroken")
            assert alert["labels"]["target"] == "maria-b" and alert["labels"]["cluster"] == "shop"
            assert "Slave_IO_Running: Connecting" in alert["annotations"]["summary"]
            assert "Access denied" in alert["annotations"]["description"]
            shop = next(c for c in agent.get("/api/v1/clusters") if c["name"] == "shop")
            assert shop["primary"] == "maria-a" and shop["members"]["maria-b"]["role"] == "replica"
        finally:
            agent.stop()
    finally:
        for server in (replica, primary):
            if server is not None:
                server.destroy()


def test_pg_promote_of_a_target_this_agent_does_not_watch_uses_a_session_of_its_own_and_never_promotes_twice(
        tmp_path, servers):
    """A primary and its standby; the controller has no running session for the candidate (another agent's
    shard watches it): the promotion goes through a session opened for the action, and a second action finds
    the candidate no longer in recovery and does nothing."""
    primary = servers()
    standby = servers(primary)
    candidate = Target(name="b", engine="postgres", dsn=standby.dsn(), labels={},
                       collectors={"postgres": CollectorSettings(15, 5)})
    config = ClusterConfig(failover=FailoverConfig(action="pg_promote", dry_run=False, cooldown=0, timeout=20))
    recommended = Finding("FailoverRecommended", "a", FindingKind.ALERT, Severity.CRITICAL, "down",
                          labels={"cluster": "orders", "candidate": "b"})

    async def scenario() -> list[tuple[str, bool, str]]:
        controller = FailoverController({"orders": config}, tmp_path, lambda: {"b": candidate})
        for _ in range(2):
            controller.consider("orders", [recommended])
            while controller._running:
                await asyncio.sleep(0.01)
        await controller.stop()
        return [(a.action, a.ok, a.detail) for a in reversed(controller.actions("orders"))]

    first, second = asyncio.run(scenario())
    assert first == ("pg_promote", True, "ran SELECT pg_promote() on b: promoted")
    assert second == ("pg_promote", False, "pg_promote: b is not in recovery any more; nothing done")
    assert standby.psql("SELECT pg_is_in_recovery()") == "f"
