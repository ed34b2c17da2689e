"""The Neo4j collector and rules, driven through the real ``neo4j`` driver (AsyncGraphDatabase) over real
loopback sockets.

Starts: no real Neo4j (none can be installed on this machine). Each test starts its own Bolt test server
(tests/boltwire.py: the Bolt handshake, PackStream, HELLO/LOGON/RUN/PULL/BEGIN/COMMIT/RESET/GOODBYE, and the
SHOW commands' default columns as the Neo4j manuals document them), in a thread, on a free loopback port.
What is tested is the collector's reading of the documented replies and the driver's behaviour on the wire,
not a real server's behaviour.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import pytest

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.collectors.neo4j import Neo4jCollector, Neo4jOptions
from dbwatch.collectors.neo4j_cypher import normalize_query
from dbwatch.exporters.prometheus import render_families
from dbwatch.model import CollectorSettings, Finding, Snapshot, Target
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.neo4j import (
    Neo4jDatabases, Neo4jIndexes, Neo4jInstance, Neo4jLongTransactions, Neo4jServers,
)
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.neo4j_indexes import Neo4jIndexCandidate, lookups
from dbwatch.rules.spec import shipped_rules
from tests.agentproc import AgentProcess, sample_value
from tests.boltwire import BoltWireServer, Database, Index, Scenario, Transaction, default_jmx
from tests.helpers import collect, free_port, wait_for

SLOW_LOOKUP = "MATCH (p:Person {email: 'ann@example.com'})-[:BOUGHT]->(o:Order) WHERE o.total > 100 RETURN o"


def make_target(dsn: str, timeout: float = 5, **extra) -> Target:
    return Target(name="graph", engine="neo4j", dsn=dsn, labels={},
                  collectors={"neo4j": CollectorSettings(15, timeout, Neo4jOptions())}, **extra)


@pytest.fixture
def servers():
    started: list[BoltWireServer] = []

    def start(scenario: Scenario) -> BoltWireServer:
        server = BoltWireServer(scenario)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def samples(snapshot: Snapshot, name: str) -> dict[tuple[str, ...], float]:
    family = snapshot.family(name)
    assert family is not None, f"{name} missing"
    return dict(family.samples)


def alerts(name: str, snapshot: Snapshot) -> list[Finding]:
    [rule] = [r for r in shipped_rules() if r.alert == name]
    return evaluate(rule, snapshot)


def evaluate(rule, snapshot: Snapshot) -> list[Finding]:
    history = {"neo4j": [snapshot]}
    source = type("Source", (), {"collectors": lambda self, t: list(history),
                                 "history": lambda self, t, c: history.get(c, [])})()
    engine = RuleEngine([], [rule]) if isinstance(rule, Neo4jIndexCandidate) else RuleEngine([rule])
    return engine.evaluate(TargetView(source, "graph", "neo4j", {}, time.time()))


# -- a healthy server ---------------------------------------------------------------------------------------


async def test_a_healthy_neo4j_5_server_reports_databases_servers_page_cache_and_store_sizes(servers, session_for):
    server = servers(Scenario(jmx=default_jmx()))
    session = session_for(make_target(server.dsn("dbwatch")))
    snapshot = await collect(Neo4jCollector(session.target, session))

    assert snapshot.ok and snapshot.notes == [], (snapshot.error, snapshot.notes)
    assert snapshot.version == "5.26.0"
    assert snapshot.fact(Neo4jInstance) == Neo4jInstance("5.26.0", "enterprise")
    assert snapshot.family("neo4j_up").value() == 1
    assert samples(snapshot, "dbwatch_neo4j_database_unavailable") == {
        ("neo4j", "localhost:7687"): 0, ("system", "localhost:7687"): 0}
    assert samples(snapshot, "dbwatch_neo4j_server_available") == {("d2b1b6a8", "localhost:7687", "Enabled"): 1}
    assert snapshot.family("neo4j_dbms_page_cache_hits_total").value() == 98000
    assert snapshot.family("neo4j_dbms_page_cache_page_faults_total").value() == 2000
    assert snapshot.family("neo4j_dbms_page_cache_hit_ratio").value() == 0.98
    assert snapshot.family("neo4j_dbms_page_cache_usage_ratio").value() == 0.61
    assert samples(snapshot, "dbwatch_neo4j_store_size_bytes") == {
        ("neo4j", "total"): 734003200, ("neo4j", "database"): 524288000}
    assert samples(snapshot, "dbwatch_neo4j_oldest_transaction_seconds") == {("neo4j",): 0, ("system",): 0}
    assert [d.name for d in snapshot.fact(Neo4jDatabases)] == ["neo4j", "system"]
    assert len(snapshot.fact(Neo4jServers)) == 1 and len(snapshot.fact(Neo4jLongTransactions)) == 0
    assert snapshot.fact(Summary)["page cache hit ratio"] == 0.98
    # administration commands run on the system database; no index is read when no transaction is long
    assert ("system", "SHOW DATABASES") in server.queries and ("system", "SHOW SERVERS") in server.queries
    assert not any(q == "SHOW INDEXES" for _, q in server.queries)
    assert alerts("Neo4jDatabaseUnavailable", snapshot) == [] and alerts("Neo4jLongTransaction", snapshot) == []


async def test_a_4_4_server_speaks_bolt_4_4_has_no_show_servers_and_that_is_no_note(servers, session_for):
    server = servers(Scenario(version="4.4.40", bolt=((4, 4),), servers=None, jmx=default_jmx("4"),
                              databases=[Database("neo4j", role="leader")]))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))

    assert snapshot.ok and snapshot.version == "4.4.40"
    assert snapshot.fact(Neo4jServers) is None and snapshot.family("dbwatch_neo4j_server_available") is None
    assert snapshot.notes == []  # no SHOW SERVERS on 4.4 is not even a note
    # 4.x names its beans without the dbms. / database. namespaces
    assert snapshot.family("neo4j_dbms_page_cache_hits_total").value() == 98000
    assert samples(snapshot, "dbwatch_neo4j_store_size_bytes")[("neo4j", "total")] == 734003200
    assert snapshot.family("dbwatch_neo4j_database_info").value(database="neo4j") == 1
    assert snapshot.fact(Neo4jDatabases)[0].role == "leader"
    assert "LOGON" not in server.messages  # Bolt 4.4 authenticates in HELLO


async def test_a_neo4j_scheme_dsn_routes_through_the_servers_routing_table(servers, session_for):
    server = servers(Scenario())
    session = session_for(make_target(server.dsn(scheme="neo4j")))
    snapshot = await collect(Neo4jCollector(session.target, session))
    assert snapshot.ok, snapshot.error
    assert "ROUTE" in server.messages and ("system", "SHOW DATABASES") in server.queries


async def test_the_exposition_passes_promtool_check_metrics(servers, session_for):
    server = servers(Scenario(jmx=default_jmx(), transactions=[Transaction("neo4j", 1, SLOW_LOOKUP, 90.0)]))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))
    text = render_families(snapshot.families, labels={"target": "graph"})
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- rules --------------------------------------------------------------------------------------------------


async def test_a_database_requested_online_but_offline_fires_and_a_stopped_one_does_not(servers, session_for):
    server = servers(Scenario(databases=[
        Database("neo4j"), Database("sales", current="offline", message="Unable to start database"),
        Database("archive", current="offline", requested="offline"), Database("system")]))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))

    [finding] = alerts("Neo4jDatabaseUnavailable", snapshot)
    assert finding.labels["database"] == "sales" and finding.value == 1
    assert samples(snapshot, "dbwatch_neo4j_database_unavailable")[("archive", "localhost:7687")] == 0
    assert "unavailable: sales" in snapshot.fact(Summary)["databases"]


async def test_an_offline_default_database_still_lets_everything_else_be_collected(servers, session_for):
    """Neo4j refuses queries to a database that is not online; dbwatch asks the system database."""
    server = servers(Scenario(databases=[Database("neo4j", current="offline", default=True), Database("system")],
                              transactions=[Transaction("neo4j", 4, "MATCH (n:Person {name: $n}) RETURN n", 90.0)]))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))
    assert snapshot.ok and snapshot.version == "5.26.0"
    [finding] = alerts("Neo4jDatabaseUnavailable", snapshot)
    assert finding.labels["database"] == "neo4j"
    # its indexes cannot be read: a note, and no advice on a guess
    assert ("SHOW INDEXES failed (Database 'neo4j' is unavailable. (Neo.TransientError.General.DatabaseUnavailable)): "
            "the indexes of neo4j are not collected") in snapshot.notes
    assert evaluate(Neo4jIndexCandidate(), snapshot) == []


async def test_a_long_transaction_fires_a_299_second_one_does_not_and_its_query_keeps_no_literals(servers,
                                                                                               session_for):
    server = servers(Scenario(
        databases=[Database("neo4j"), Database("shop"), Database("system")],
        transactions=[Transaction("shop", 17, SLOW_LOOKUP, 612.5), Transaction("neo4j", 18, "RETURN 1", 299.0),
                      Transaction("neo4j", 19, "ALTER USER bob SET PASSWORD 'hunter2-s3cret'", 75.0)],
        indexes=[Index("shop", "order_total", ("Order",), ("total",))]))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))

    oldest = samples(snapshot, "dbwatch_neo4j_oldest_transaction_seconds")
    assert oldest[("shop",)] == 612.5 and oldest[("neo4j",)] == 299.0
    [finding] = alerts("Neo4jLongTransaction", snapshot)
    assert finding.labels["database"] == "shop"
    long_tx = snapshot.fact(Neo4jLongTransactions)
    assert [t.transaction_id for t in long_tx] == ["shop-transaction-17", "neo4j-transaction-18",
                                                   "neo4j-transaction-19"]
    assert long_tx[0].query == "MATCH (p:Person {email: ?})-[:BOUGHT]->(o:Order) WHERE o.total > ? RETURN o"
    assert "hunter2" not in repr(snapshot.facts) and "hunter2" not in repr(snapshot.families)
    # indexes are read in the databases long transactions run in, and only there
    assert sorted(d for d, q in server.queries if q == "SHOW INDEXES") == ["neo4j", "shop"]

    # the advice: :Person(email) has no index; :Order(total) has one
    [advice] = evaluate(Neo4jIndexCandidate(), snapshot)
    assert advice.labels == {"database": "shop", "label": "Person", "property": "email"}
    assert advice.evidence["sql"] == "CREATE INDEX dbwatch_person_email IF NOT EXISTS FOR (n:Person) ON (n.email)"
    assert "population is online" in advice.evidence["lock"] and advice.evidence["risk"] == "low"
    assert advice.severity == "warning"


async def test_an_index_on_the_label_and_property_silences_the_advice(servers, session_for):
    server = servers(Scenario(
        transactions=[Transaction("neo4j", 3, SLOW_LOOKUP, 120.0)],
        indexes=[Index("neo4j", "person_email", ("Person",), ("email", "name")),
                 Index("neo4j", "order_total", ("Order",), ("total",), type="TEXT")]))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))
    assert snapshot.fact(Neo4jIndexes).databases == ("neo4j",)
    assert evaluate(Neo4jIndexCandidate(), snapshot) == []
    assert alerts("Neo4jLongTransaction", snapshot) == []  # 120 s: long for the advice, not for the alert


def test_lookups_read_property_maps_and_predicates_on_bound_variables_only():
    assert lookups("MATCH (n:Person {name: $n, `e-mail`: ?})-[:KNOWS]->(m:Person) WHERE m.age >= ? "
                   "AND m.city IN $c AND x.y = ? RETURN n") == [
        ("Person", "name"), ("Person", "e-mail"), ("Person", "age"), ("Person", "city")]
    # <> and CONTAINS / ENDS WITH are no seeks a RANGE index serves
    assert lookups("MATCH (o:`Order`) WHERE o.status <> ? AND o.code CONTAINS ? RETURN o") == []
    assert normalize_query("MATCH (n) // the 'x'\nWHERE n.a = 'it\\'s' AND n.b = 1.5e3 RETURN n.c2 /* 7 */") == \
        "MATCH (n) WHERE n.a = ? AND n.b = ? RETURN n.c2"


# -- failures -----------------------------------------------------------------------------------------------


async def test_no_metrics_beans_is_a_note_naming_the_setting(servers, session_for):
    server = servers(Scenario(jmx={}))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))
    assert snapshot.ok and snapshot.notes == [
        "dbms.queryJmx shows no neo4j.metrics beans (metrics.jmx.enabled is off, or Community edition): page cache "
        "and store sizes are not collected"]


async def test_a_refused_jmx_procedure_is_a_note_and_the_rest_is_collected(servers, session_for):
    server = servers(Scenario(jmx=None))
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(Neo4jCollector(session.target, session))
    assert snapshot.ok and snapshot.family("neo4j_dbms_page_cache_hits_total") is None
    [note] = snapshot.notes
    assert note.startswith("dbms.queryJmx is not allowed to dbwatch's user (Executing procedure is not allowed")
    assert note.endswith("page cache and store sizes are not collected")
    assert snapshot.family("dbwatch_neo4j_database_unavailable") is not None


async def test_a_wrong_password_is_one_clear_line_without_the_password(servers, monkeypatch, caplog):
    server = servers(Scenario(auth=("dbwatch", "c0rrect-h0rse")))
    monkeypatch.setenv("NEO4J_PW", "wr0ng-batt3ry")
    caplog.set_level(logging.DEBUG)
    jobs = TargetJobs(make_target(server.dsn("dbwatch"), password_env="NEO4J_PW"))
    try:
        snapshot = await jobs.collect("neo4j")
    finally:
        await jobs.close()
    assert not snapshot.ok
    assert snapshot.error == (f"cannot connect to {server.address}: The client is unauthorized due to "
                              "authentication failure. (Neo.ClientError.Security.Unauthorized)")
    assert "\n" not in snapshot.error
    assert "wr0ng-batt3ry" not in caplog.text and "c0rrect-h0rse" not in caplog.text
    assert snapshot.family("neo4j_up").value() == 0 and server.queries == []


async def test_the_right_password_collects(servers, monkeypatch):
    server = servers(Scenario(auth=("dbwatch", "c0rrect-h0rse")))
    monkeypatch.setenv("NEO4J_PW", "c0rrect-h0rse")
    jobs = TargetJobs(make_target(server.dsn("dbwatch"), password_env="NEO4J_PW"))
    try:
        snapshot = await jobs.collect("neo4j")
    finally:
        await jobs.close()
    assert snapshot.ok, snapshot.error
    assert server.messages[:2] == ["HELLO", "LOGON"]


async def test_a_server_that_goes_away_is_target_down_and_the_next_collections_carry_on(servers):
    server = servers(Scenario())
    jobs = TargetJobs(make_target(server.dsn(), timeout=3))
    try:
        first = await jobs.collect("neo4j")
        server.stop()
        second = await jobs.collect("neo4j")
        third = await jobs.collect("neo4j")
    finally:
        await jobs.close()
    assert first.ok
    assert not second.ok and second.family("neo4j_up").value() == 0
    assert second.error and "\n" not in second.error and server.address in second.error
    assert not third.ok and third.family("neo4j_up").value() == 0  # no exception escapes: the job lives on


async def test_nothing_listening_is_a_clear_error_and_up_0():
    port = free_port()
    jobs = TargetJobs(make_target(f"bolt://127.0.0.1:{port}", timeout=2))
    try:
        snapshot = await jobs.collect("neo4j")
    finally:
        await jobs.close()
    assert not snapshot.ok and snapshot.error.startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert "\n" not in snapshot.error and snapshot.family("neo4j_up").value() == 0


# -- configuration ------------------------------------------------------------------------------------------


def test_a_neo4j_target_takes_a_bolt_or_neo4j_dsn_and_gets_the_neo4j_collector():
    config = parse_config(textwrap.dedent("""
        targets:
          - name: graph
            engine: neo4j
            dsn: bolt://dbwatch@127.0.0.1:7687
            password_env: NEO4J_PW
            collectors:
              neo4j: {long_tx_seconds: 30}
          - name: cluster
            engine: neo4j
            host: 10.0.0.9
            user: dbwatch
    """))
    target, cluster = config.resolved_targets()
    assert set(target.collectors) >= {"neo4j"}
    assert (target.collectors["neo4j"].interval, target.collectors["neo4j"].timeout) == (15, 10)
    assert target.collectors["neo4j"].options == Neo4jOptions(long_tx_seconds=30)
    assert cluster.dsn.startswith("bolt://dbwatch@10.0.0.9:7687")
    with pytest.raises(ConfigError) as err:
        parse_config("targets: [{name: g, engine: neo4j, dsn: 'mongodb://127.0.0.1/'}]")
    assert "dsn scheme 'mongodb' does not match engine 'neo4j'" in "\n".join(err.value.problems)
    with pytest.raises(ConfigError) as err:
        parse_config("targets: [{name: g, engine: neo4j, host: 127.0.0.1, sslmode: require}]")
    assert "sslmode is for postgres; for TLS to neo4j use a bolt+s://" in "\n".join(err.value.problems)


# -- the daemon ---------------------------------------------------------------------------------------------


def test_a_running_agent_fires_nothing_while_healthy_then_holds_the_target_down_and_lives_on(servers, tmp_path):
    """One Bolt test server with a database offline, and a real `dbwatch run` process; the server is then
    stopped under the agent."""
    server = servers(Scenario(databases=[Database("neo4j"), Database("sales", current="offline")]))
    proc = AgentProcess(tmp_path, {"targets": [{"name": "graph", "engine": "neo4j", "dsn": server.dsn(),
                                                "interval": "1s"}]}).start()
    try:
        wait_for(lambda: 'neo4j_up{target="graph"} 1' in proc.metrics(), 30, "neo4j_up 1 on /metrics")
        assert sample_value(proc.metrics(), "dbwatch_neo4j_database_unavailable", target="graph",
                            database="sales", address="localhost:7687") == 1

        def pending():
            return [a for a in proc.get("/api/v1/alerts") if a["labels"]["alertname"] == "Neo4jDatabaseUnavailable"]
        [alert] = wait_for(pending, 30, "Neo4jDatabaseUnavailable pending")
        assert alert["labels"]["database"] == "sales"

        server.stop()
        wait_for(lambda: 'neo4j_up{target="graph"} 0' in proc.metrics(), 30, "neo4j_up 0 after the server went")
        target = proc.targets()["graph"]
        assert target["up"] is False and server.address in target["last_error"], target
        assert "\n" not in target["last_error"]
        assert proc.get("/healthz", check=False) == 200  # the daemon lives on
    finally:
        assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log()


def test_the_driver_is_imported_only_when_a_neo4j_target_connects():
    code = ("import sys; from dbwatch.collectors.engines import engine; import dbwatch.agent.cli; "
            "spec = engine('neo4j'); assert 'neo4j' in spec.collectors; "
            "import dbwatch.collectors.catalog; print('neo4j' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_dbwatch_check_prints_the_summary_and_advise_offers_the_index(servers, tmp_path):
    """One Bolt test server with a 400 s transaction finding :Person nodes by email; both commands as processes."""
    server = servers(Scenario(jmx=default_jmx(), databases=[Database("neo4j"), Database("shop"), Database("system")],
                              transactions=[Transaction("shop", 17, SLOW_LOOKUP, 400.0)]))
    config = tmp_path / "dbwatch.yaml"
    config.write_text(f"targets: [{{name: graph, engine: neo4j, dsn: '{server.dsn()}'}}]\n")

    def run(*command: str) -> str:
        result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", *command, "-c", str(config)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    checked = run("check")
    assert "graph (neo4j): UP, version 5.26.0" in checked and "transactions: 1 open, 1 long" in checked
    assert "page cache hit ratio: 0.98" in checked and "1/1 target(s) up" in checked
    advised = run("advise")
    assert "CREATE INDEX dbwatch_person_email IF NOT EXISTS FOR (n:Person) ON (n.email)" in advised
    assert "ann@example.com" not in checked + advised
