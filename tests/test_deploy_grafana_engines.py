"""Every dashboard in deploy/grafana/ (the fleet overview and one per engine) against a real Prometheus scraping
a real `dbwatch run` that watches one server of every engine at once.

Starts: the session's PostgreSQL 15 (pg_primary, with pg_stat_statements) and MariaDB (mariadb_primary, with
performance_schema; its slow query log is switched on into a file of its own for the test and switched back
off after), a throwaway redis-server (SLOWLOG logging every command), a real PgBouncer in front of
pg_primary, the MongoDB wire-protocol test server (tests/mongowire.py: a replica-set primary with a healthy
secondary, the profiler on and index statistics; not a real mongod, none can be installed here), the agent
watching those and its host (with a `files` backup source), and a Prometheus (Debian package) scraping the
agent every second.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import psycopg
import pytest
import yaml
from bson.timestamp import Timestamp
from tests.agentproc import AgentProcess
from tests.mariadbserver import mariadb_primary  # noqa: F401  (fixture)
from tests.mongowire import UTC, Member, MongoWireServer, Scenario
from tests import boltwire
from tests.pgbouncerserver import PASSWORDS, PgBouncerServer
from tests.cqlwire import CqlWireServer, Peer, Scenario as CqlScenario
from tests.test_cassandra_collector import busy_tables
from tests.redisserver import RedisServer
from tests.test_deploy_grafana import DASHBOARDS, dashboard_queries
from tests.test_deploy_grafana import EMPTY_WHILE_HEALTHY as POSTGRES_EMPTY_WHILE_HEALTHY
from tests.helpers import free_port, wait_for

PGBOUNCER_PASSWORD_ENV = "DBWATCH_TEST_GRAFANA_PGBOUNCER_PASSWORD"

# Panels that are empty while all is well here, with the reason; their queries must still parse and run.
EMPTY_WHILE_HEALTHY = {
    ("overview.json", "Targets down"): "every target is up",
    ("overview.json", "Alerts firing"): "nothing is wrong",
    ("overview.json", "Oldest WAL archive (backup freshness)"): "PostgreSQL archives no WAL here",
    ("overview.json", "Notifications"): "no receivers are configured",
    ("overview.json", "Oldest undelivered notification"): "no receivers are configured",
    ("overview.json", "Recommendations"): "advice in force depends on the servers' state; none need be",
    ("mysql.json", "Replica delay (Seconds_Behind_Master)"): "the MariaDB watched is a primary",
    ("mysql.json", "Replication threads running"): "the MariaDB watched is a primary",
    ("mysql.json", "Heartbeat delay (pt-heartbeat)"): "no heartbeat_table is configured",
    ("redis.json", "Replica lag (primary side)"): "the Redis has no replicas",
    ("redis.json", "Replica link up (replica side)"): "the Redis is a primary",
    ("redis.json", "Latency spikes (LATENCY LATEST)"): "no latency spike is recorded on an idle server",
    ("cassandra.json", "Pending tasks"): "no thread pool has a queue on the idle test node",
    # PostgreSQL's (tests/test_deploy_grafana.py gives the reasons: a lone primary without archiving)
    **{panel: "see tests/test_deploy_grafana.py" for panel in POSTGRES_EMPTY_WHILE_HEALTHY
       if panel[0] == "postgres.json"},
}
TIMEOUT = 50.0  # passes in about 10 s; bounded so a failure stays under 90 s


def profile_entry(ns: str = "shop.orders", millis: int = 150) -> dict[str, Any]:
    """A system.profile document in the manual's shape, timestamped now (so the profiler sees it as new)."""
    db, coll = ns.split(".", 1)
    return {"op": "query", "ns": ns, "command": {"find": coll, "filter": {"status": "A"}, "$db": db},
            "keysExamined": 3, "docsExamined": 3, "cursorExhausted": True, "numYield": 0, "nreturned": 1,
            "locks": {}, "responseLength": 100, "protocol": "op_msg", "millis": millis,
            "planSummary": "IXSCAN { status: 1 }", "ts": dt.datetime.now(UTC), "client": "127.0.0.1",
            "appName": "orders-api", "allUsers": [], "user": ""}


class PrometheusAPI:
    def __init__(self, port: int) -> None:
        self.port = port

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The series an instant query returns; a query Prometheus rejects fails the test."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)["data"]["result"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode()}") from None


def label_values(api: PrometheusAPI, query: str, values: dict[str, str]) -> list[str]:
    """A Grafana `label_values(<selector>, <label>)` variable, the earlier variables substituted."""
    inner, label = re.fullmatch(r"label_values\((.*), *(\w+)\)", query).groups()
    return sorted({s["metric"][label] for s in api.query(substitute(inner, values)) if label in s["metric"]})


def substitute(expr: str, values: dict[str, str]) -> str:
    for variable in sorted(values, key=len, reverse=True):
        expr = expr.replace(variable, values[variable])
    assert "$" not in expr, expr
    return expr


def resolve_variables(api: PrometheusAPI, dashboard: dict[str, Any]) -> dict[str, str]:
    """Select every value each query variable offers, as Grafana formats a multi-value regex: `(a|b)`."""
    values = {"$__rate_interval": "10s", "$__range": "30s", "$__interval": "2s"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        offered = label_values(api, variable["query"]["query"], values)
        if not offered:
            return {}
        # Grafana escapes regex metacharacters with a doubled backslash (a PromQL string holds one).
        escaped = (re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", v) for v in offered)
        values["$" + variable["name"]] = "(" + "|".join(escaped) + ")"
    return values


def test_every_panel_listed_as_empty_while_healthy_exists():
    titles = {(path.name, panel["title"]) for path in DASHBOARDS for panel in json.loads(path.read_text())["panels"]}
    assert set(EMPTY_WHILE_HEALTHY) <= titles, set(EMPTY_WHILE_HEALTHY) - titles


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed (Debian package prometheus)")
def test_every_dashboard_query_returns_data_from_a_real_prometheus_scraping_an_agent_watching_every_engine(
        tmp_path, pg_primary, mariadb_primary):  # noqa: F811
    started: list[Any] = []
    mariadb_settings = mariadb_primary.sql("SELECT @@global.slow_query_log, @@global.long_query_time, "
                                           "@@global.slow_query_log_file").split("\t")
    slow_log = mariadb_primary.root / "grafana-slow.log"
    prometheus = agent = None
    try:
        redis = RedisServer("--slowlog-log-slower-than", "0", "--slowlog-max-len", "1024").start()
        started.append(redis)
        bouncer = PgBouncerServer({"app": (pg_primary.port, 5)}).start()
        started.append(bouncer)
        now = dt.datetime.now(UTC).replace(microsecond=0)
        scenario = Scenario(
            members=[Member("mongo-a:27017", 1, now, self_=True), Member("mongo-b:27017", 2, now)],
            profile={"shop": []},
            index_stats={"shop.orders": [{"name": "_id_", "key": {"_id": 1}, "accesses": {"ops": 7, "since": now}}]},
            oplog=(Timestamp(int(now.timestamp()) - 7200, 1), Timestamp(int(now.timestamp()), 1)),
        )
        mongo = MongoWireServer(scenario).start()
        started.append(mongo)
        # the Bolt test server (not Neo4j): one open transaction, the page cache and store size beans
        graph = boltwire.BoltWireServer(boltwire.Scenario(jmx=boltwire.default_jmx(), transactions=[
            boltwire.Transaction("neo4j", 7, "MATCH (n:Person {name: $name}) RETURN n", 12.0)])).start()
        started.append(graph)
        # the CQL test server (not Cassandra): a 4.1 node with a live peer and one busy user table
        cql = CqlWireServer(CqlScenario(peers=[Peer("127.0.0.2")], tables={
            **busy_tables(), "system_views.coordinator_write_latency": [
                {"keyspace_name": "shop", "table_name": "orders", "count": 900, "50th_ms": 0.5, "99th_ms": 4.0,
                 "max_ms": 9.0, "per_second": 1.0}]}))
        cql.start()
        started.append(cql)
        mariadb_primary.sql(f"SET GLOBAL slow_query_log_file = '{slow_log}'; SET GLOBAL long_query_time = 0; "
                            "SET GLOBAL slow_query_log = ON")
        backups = tmp_path / "backups"
        backups.mkdir()
        (backups / "nightly.sql").write_text("-- a dump\n")

        fast = {"interval": "1s"}
        agent = AgentProcess(tmp_path, {"targets": [
            {"name": "pg", "engine": "postgres", "dsn": pg_primary.dsn(), "interval": "1s",
             "labels": {"cluster": "c1"}, "collectors": {"statements": {"interval": "2s"}, "backup": fast},
             "backups": [{"type": "files", "path": str(backups / "*.sql"), "rpo": "26h"}]},
            {"name": "host", "engine": "host", "interval": "1s", "labels": {"cluster": "c1"}},
            {"name": "maria", "engine": "mysql", "dsn": mariadb_primary.dsn(), "interval": "1s",
             "labels": {"cluster": "c2"},
             "collectors": {"statements": fast, "slowlog": {"enabled": True, "interval": "1s", "path": str(slow_log),
                                                             "format": "mysql", "from_beginning": True}}},
            {"name": "cache", "engine": "redis", "dsn": redis.dsn(), "interval": "1s", "labels": {"cluster": "c3"},
             "collectors": {"slowlog": fast}},
            {"name": "bouncer", "engine": "pgbouncer", "dsn": bouncer.dsn(), "interval": "1s",
             "password_env": PGBOUNCER_PASSWORD_ENV, "labels": {"cluster": "c1"}},
            {"name": "rs0-a", "engine": "mongodb", "dsn": mongo.dsn(), "interval": "1s", "labels": {"cluster": "rs0"},
             "collectors": {"profiler": fast, "indexstats": fast}},
            {"name": "graph", "engine": "neo4j", "dsn": graph.dsn(), "interval": "1s", "labels": {"cluster": "g1"}},
            {"name": "ring-a", "engine": "cassandra", "dsn": f"cassandra://127.0.0.1:{cql.port}/", "interval": "1s",
             "labels": {"cluster": "ring"}},
        ]}, env={PGBOUNCER_PASSWORD_ENV: PASSWORDS["dbwatch"]}).start()
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "dbwatch", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{agent.port}"]}]}],
        }))
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = PrometheusAPI(port)

        def scraped() -> bool:
            assert prometheus.poll() is None, "prometheus exited"
            try:
                return bool(api.query("up"))
            except urllib.error.URLError:  # not listening yet
                return False

        client = redis.client()

        def traffic() -> None:
            """Something for every rate and every top-query-class panel to count."""
            pg_primary.psql("SELECT count(*) FROM pg_class")
            mariadb_primary.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'mysql'")
            client.set("user:42", "x")
            client.get("user:42")
            with psycopg.connect(bouncer.conninfo(), autocommit=True) as conn:
                conn.execute("SELECT 1")
            scenario.profile["shop"].append(profile_entry())

        without_data: list[str] = []
        variables: dict[str, dict[str, str]] = {}

        def every_panel_has_data() -> bool:
            traffic()
            without_data.clear()
            for path in DASHBOARDS:
                if path.name == "timescaledb.json":
                    continue  # needs a TimescaleDB: tests/test_timescale_dashboard.py runs it against one
                dashboard = json.loads(path.read_text())
                values = resolve_variables(api, dashboard)
                if not values:
                    without_data.append(f"{path.name}: a variable offers no value")
                    continue
                variables[path.name] = values
                for where, expr in dashboard_queries(dashboard):
                    title = re.match(r"panel '(.*)' [A-Z]$", where)
                    if not api.query(substitute(expr, values)) and \
                            not (title and (path.name, title.group(1)) in EMPTY_WHILE_HEALTHY):
                        without_data.append(f"{path.name} {where}")
            return not without_data

        wait_for(scraped, 20, "Prometheus to scrape the agent", interval=0.5)
        try:
            wait_for(every_panel_has_data, TIMEOUT, "every panel to return data", interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still without data: {without_data}\n{agent.log()[-3000:]}") from None

        # The variables offered what each dashboard is about: its engine's clusters and targets, and All.
        assert variables["overview.json"]["$target"] == "(bouncer|cache|graph|host|maria|pg|ring-a|rs0-a)"
        assert variables["overview.json"]["$cluster"] == "(c1|c2|c3|g1|ring|rs0)"
        assert variables["mysql.json"]["$target"] == "(maria)" and variables["mysql.json"]["$cluster"] == "(c2)"
        assert variables["redis.json"]["$target"] == "(cache)"
        assert variables["pgbouncer.json"]["$target"] == "(bouncer)"
        assert variables["mongodb.json"]["$target"] == "(rs0-a)" and variables["mongodb.json"]["$cluster"] == "(rs0)"
        assert variables["neo4j.json"]["$target"] == "(graph)" and variables["neo4j.json"]["$cluster"] == "(g1)"
        assert variables["cassandra.json"]["$target"] == "(ring-a)"
        assert variables["cassandra.json"]["$cluster"] == "(ring)"
        # The top-query-class tables name real classes.
        assert any("information_schema" in s["metric"].get("digest_text", "").lower() for s in api.query(
            'mysql_perf_schema_events_statements_total{target="maria"}'))
        assert api.query('dbwatch_redis_slowlog_entries_total{target="cache", command="GET", key_pattern="user:*"}')
        assert api.query('dbwatch_mongodb_slow_ops_total{target="rs0-a", ns="shop.orders", op="query"}')
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(15)
        if agent is not None:
            agent.stop()
        mariadb_primary.sql(f"SET GLOBAL slow_query_log = {mariadb_settings[0]}; "
                            f"SET GLOBAL long_query_time = {mariadb_settings[1]}; "
                            f"SET GLOBAL slow_query_log_file = '{mariadb_settings[2]}'")
        for server in reversed(started):
            server.stop() if isinstance(server, (MongoWireServer, boltwire.BoltWireServer, CqlWireServer)) \
                else server.destroy()
