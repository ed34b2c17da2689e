"""The PgBouncer collector against real servers the tests start: one throwaway PostgreSQL 15 for the module
(tests/pgcluster.py) and, per test, a real PgBouncer (Debian's ``pgbouncer``, tests/pgbouncerserver.py) in front
of it on a free loopback port; the end-to-end test runs a real ``dbwatch run`` (tests/agentproc.py), the
bad-endpoint tests a plain TCP service of the test's own. Clients that hold ``pg_sleep`` make the pool queue.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import CollectorSettings, MetricType, Snapshot, Target
from dbwatch.collectors.pgbouncer import PgBouncerCollector, PgBouncerSession, _pools
from dbwatch.model.facts.pgbouncer import Pool, PoolerConfig, Pools
from dbwatch.model.facts.common import Summary
from tests.agentproc import AgentProcess, sample_value
from tests.pgbouncerserver import PASSWORDS, PGBOUNCER, PgBouncerServer
from tests.pgcluster import PostgresServer
from tests.helpers import collect, collect_until, free_port, wait_for, wait_until

PASSWORD_ENV = "DBWATCH_TEST_PGBOUNCER_PASSWORD"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def bouncers(postgres):
    """Start PgBouncers in front of the module's PostgreSQL for one test; all are killed afterwards."""
    started: list[PgBouncerServer] = []

    def start(databases: dict[str, int | None], **options) -> PgBouncerServer:
        server = PgBouncerServer({name: (postgres.port, size) for name, size in databases.items()}, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.destroy()
    # Backends of clients that left mid-pg_sleep would sleep on; end them so the next test starts clean.
    postgres.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()")


def make_target(dsn: str, timeout: float = 3, password_env: str | None = PASSWORD_ENV) -> Target:
    return Target(name="bouncer", engine="pgbouncer", dsn=dsn, labels={},
                  collectors={"pgbouncer": CollectorSettings(15, timeout)}, password_env=password_env)


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORDS["dbwatch"])


@pytest.fixture
async def collector_for():
    sessions: list[PgBouncerSession] = []

    def make(target: Target) -> PgBouncerCollector:
        session = PgBouncerSession(target)
        sessions.append(session)
        return PgBouncerCollector(target, session)

    yield make
    for session in sessions:
        await session.close()


def value(snapshot: Snapshot, metric: str, **labels: str) -> float | None:
    family = snapshot.family(metric)
    assert family is not None, f"{metric} missing"
    return family.value(**labels)


class SleepingClients:
    """``count`` clients of database ``app``, each running ``SELECT pg_sleep(seconds)`` through PgBouncer."""

    def __init__(self, bouncer: PgBouncerServer, count: int, seconds: float) -> None:
        self.bouncer, self.count, self.seconds = bouncer, count, seconds
        self.connections: list[psycopg.AsyncConnection] = []
        self.tasks: list[asyncio.Task] = []

    async def _one(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.bouncer.conninfo(), autocommit=True)
        self.connections.append(conn)
        await conn.execute(f"SELECT pg_sleep({self.seconds})")

    async def __aenter__(self) -> "SleepingClients":
        self.tasks = [asyncio.create_task(self._one()) for _ in range(self.count)]
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for conn in self.connections:
            await conn.close()


async def test_pools_stats_databases_lists_and_config_carry_pgbouncer_exporter_names(
        bouncers, password, collector_for):
    bouncer = bouncers({"app": 2, "other": None}, default_pool_size=7, max_client_conn=50)
    async with await psycopg.AsyncConnection.connect(bouncer.conninfo(), autocommit=True) as conn:
        for _ in range(3):
            await conn.execute("SELECT 1")
    collector = collector_for(make_target(bouncer.dsn()))
    # The server connection the client left goes through "used" before it is idle again: wait for that.
    snapshot = await collect_until(collector, lambda s: value(
        s, "pgbouncer_pools_server_idle_connections", database="app", user="postgres") == 1, 10, "one idle server")

    binary_version = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True).stdout.split()[1]
    assert snapshot.version == binary_version
    assert value(snapshot, "pgbouncer_up") == 1
    assert value(snapshot, "pgbouncer_version_info", version=binary_version) == 1
    assert value(snapshot, "pgbouncer_config_max_client_connections") == 50
    assert value(snapshot, "dbwatch_pgbouncer_config_default_pool_size") == 7
    assert value(snapshot, "pgbouncer_databases_pool_size", name="app") == 2
    assert value(snapshot, "pgbouncer_databases_pool_size", name="other") == 7  # the default, as PgBouncer says
    # Three queries, each its own transaction in autocommit, counted as cumulative counters.
    for name in ("pgbouncer_stats_queries_pooled_total", "pgbouncer_stats_sql_transactions_pooled_total"):
        assert value(snapshot, name, database="app") == 3
        assert snapshot.family(name).type == MetricType.COUNTER
    assert value(snapshot, "pgbouncer_stats_queries_duration_seconds_total", database="app") > 0
    assert value(snapshot, "pgbouncer_stats_received_bytes_total", database="app") > 0
    # The client left; its server connection stays in the pool, idle.
    assert value(snapshot, "pgbouncer_pools_client_active_connections", database="app", user="postgres") == 0
    assert value(snapshot, "pgbouncer_pools_server_idle_connections", database="app", user="postgres") == 1
    assert value(snapshot, "pgbouncer_pools_server_active_connections", database="app", user="postgres") == 0
    assert value(snapshot, "dbwatch_pgbouncer_pool_utilization_ratio", database="app", user="postgres") == 0
    assert value(snapshot, "pgbouncer_databases") == 3  # app, other and the console itself
    assert value(snapshot, "pgbouncer_used_clients") == 1  # dbwatch's own console connection
    # The console is listed as a pool (as pgbouncer_exporter shows it) but has no utilisation: it pools nothing.
    assert value(snapshot, "pgbouncer_pools_client_active_connections", database="pgbouncer") == 1
    assert value(snapshot, "dbwatch_pgbouncer_pool_utilization_ratio", database="pgbouncer") is None
    [app] = [p for p in snapshot.fact(Pools) if p.database == "app"]
    assert isinstance(app, Pool) and app.pool_size == 2 and app.utilization == 0 and app.servers_idle == 1
    assert snapshot.fact(PoolerConfig).max_client_conn == 50
    assert snapshot.fact(Summary)["clients"] == "1/50"


async def test_more_clients_than_the_pool_queue_and_utilisation_counts_them(bouncers, password, collector_for):
    bouncer = bouncers({"app": 2})
    collector = collector_for(make_target(bouncer.dsn()))
    async with SleepingClients(bouncer, 5, 20):
        snapshot = await collect_until(collector, lambda s: value(
            s, "pgbouncer_pools_client_waiting_connections", database="app", user="postgres") == 3 and value(
            s, "pgbouncer_pools_client_maxwait_seconds", database="app", user="postgres") >= 0.3, 10,
            "three clients waiting for 0.3 s")
    labels = {"database": "app", "user": "postgres"}
    assert value(snapshot, "pgbouncer_pools_client_active_connections", **labels) == 2
    assert value(snapshot, "pgbouncer_pools_client_waiting_connections", **labels) == 3
    assert value(snapshot, "pgbouncer_pools_server_active_connections", **labels) == 2
    assert value(snapshot, "pgbouncer_pools_server_idle_connections", **labels) == 0
    # The oldest waiting client has waited at least 0.3 s (maxwait_us gives sub-second).
    assert value(snapshot, "pgbouncer_pools_client_maxwait_seconds", **labels) >= 0.3
    # (2 active + 3 waiting) / pool_size 2
    assert value(snapshot, "dbwatch_pgbouncer_pool_utilization_ratio", **labels) == 2.5
    [app] = [p for p in snapshot.fact(Pools) if p.database == "app"]
    assert (app.clients_active, app.clients_waiting, app.pool_size, app.utilization) == (2, 3, 2, 2.5)
    assert snapshot.fact(Summary)["busiest pool"] == "app/postgres at 250%"


async def test_the_console_needs_the_simple_query_protocol_over_many_collections(bouncers, password, collector_for):
    """psycopg's default cursor prepares a statement after 5 runs; the console then refuses it. Ours never does."""
    bouncer = bouncers({"app": 2})
    collector = collector_for(make_target(bouncer.dsn()))
    for _ in range(8):
        assert value(await collect(collector), "pgbouncer_up") == 1
    async with await psycopg.AsyncConnection.connect(bouncer.conninfo("dbwatch", "pgbouncer"),
                                                     autocommit=True) as plain:
        with pytest.raises(psycopg.errors.ProtocolViolation, match="extended query protocol not supported"):
            for _ in range(8):
                await plain.execute("SHOW POOLS")


async def test_a_restarted_pgbouncer_is_up_0_then_up_1_through_the_daemon_path(bouncers, password):
    bouncer = bouncers({"app": 2})
    jobs = TargetJobs(make_target(bouncer.dsn()))

    def up(snapshot: Snapshot) -> tuple[float | None, float | None]:
        return value(snapshot, "pgbouncer_up"), value(snapshot, "dbwatch_target_up")

    try:
        first = await jobs.collect("pgbouncer")
        assert first.ok and up(first) == (1, 1)
        bouncer.stop()
        down = await jobs.collect("pgbouncer")
        assert not down.ok and up(down) == (0, 0)
        assert f"127.0.0.1:{bouncer.port}" in down.error
        bouncer.start()
        async def reconnected() -> Snapshot | None:
            snapshot = await jobs.collect("pgbouncer")
            assert snapshot.ok or up(snapshot) == (0, 0)
            return snapshot if snapshot.ok else None

        # the reconnect backoff after one failure is 0.5-1 s
        again = await wait_until(reconnected, 15, "a collection after the restart", interval=0.2)
        assert up(again) == (1, 1) and again.error is None
    finally:
        await jobs.close()


async def test_a_wrong_password_is_a_clear_error_and_up_0_and_never_shows_the_password(
        bouncers, monkeypatch):
    bouncer = bouncers({"app": 2})
    wrong = "wr0ng-Pa55word-that-must-stay-secret"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    jobs = TargetJobs(make_target(bouncer.dsn()))
    try:
        snapshot = await jobs.collect("pgbouncer")
    finally:
        await jobs.close()
    assert not snapshot.ok and value(snapshot, "pgbouncer_up") == 0
    assert snapshot.error == f"cannot connect to 127.0.0.1:{bouncer.port}: SASL authentication failed"
    assert wrong not in snapshot.error


async def test_a_user_outside_stats_users_is_refused_by_the_console_with_a_clear_error(bouncers, monkeypatch):
    bouncer = bouncers({"app": 2})
    monkeypatch.setenv(PASSWORD_ENV, PASSWORDS["app"])
    jobs = TargetJobs(make_target(bouncer.dsn(user="app")))
    try:
        snapshot = await jobs.collect("pgbouncer")
    finally:
        await jobs.close()
    assert not snapshot.ok and value(snapshot, "pgbouncer_up") == 0
    assert snapshot.error == (f"cannot connect to 127.0.0.1:{bouncer.port}: not allowed (the admin console "
                              "admits only users in stats_users or admin_users of pgbouncer.ini)")


async def test_a_postgresql_instead_of_pgbouncer_is_named_as_such_and_up_0(postgres):
    postgres.psql("SELECT 1 FROM pg_database WHERE datname = 'pgbouncer'").strip() or postgres.psql(
        "CREATE DATABASE pgbouncer")
    jobs = TargetJobs(make_target(f"postgresql://postgres@127.0.0.1:{postgres.port}/pgbouncer", password_env=None))
    try:
        snapshot = await jobs.collect("pgbouncer")
    finally:
        await jobs.close()
    assert not snapshot.ok and value(snapshot, "pgbouncer_up") == 0
    assert snapshot.error == (f"cannot connect to 127.0.0.1:{postgres.port}: not a PgBouncer admin console "
                              '(SHOW VERSION: unrecognized configuration parameter "version"); '
                              "the dsn's database must be pgbouncer")


@pytest.fixture
def garbage_service():
    """A TCP service that answers anything with an HTTP error and hangs up, like a web server on the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


async def test_a_non_postgres_service_or_a_closed_port_is_a_clear_error_and_up_0(garbage_service, password):
    first_error = ""
    for port in (garbage_service, free_port()):
        jobs = TargetJobs(make_target(f"postgresql://dbwatch@127.0.0.1:{port}/pgbouncer"))
        try:
            began = time.monotonic()
            snapshot = await jobs.collect("pgbouncer")
        finally:
            await jobs.close()
        first_error = first_error or snapshot.error
        assert not snapshot.ok and value(snapshot, "pgbouncer_up") == 0 and value(snapshot, "dbwatch_target_up") == 0
        assert snapshot.error.startswith(f"cannot connect to 127.0.0.1:{port}: "), snapshot.error
        assert "internal error" not in snapshot.error and time.monotonic() - began < 3
    assert snapshot.error.endswith("Connection refused")
    assert first_error.endswith("does not speak the PostgreSQL protocol: is it PgBouncer?)"), first_error


def test_the_pool_saturated_rule_fires_end_to_end_in_a_real_agent(bouncers, tmp_path):
    bouncer = bouncers({"app": 2})
    agent = AgentProcess(tmp_path, {
        "targets": [{"name": "pool", "engine": "pgbouncer", "dsn": bouncer.dsn(), "password_env": PASSWORD_ENV,
                     "interval": "1s", "timeout": "3s"}],
        "rules": {"overrides": {"PoolSaturated": {"for": "0s"},
                                "PoolClientsWaiting": {"threshold": 0.5, "for": "0s"}}},
    }, env={PASSWORD_ENV: PASSWORDS["dbwatch"]})
    holders = [subprocess.Popen(
        [sys.executable, "-c", "import psycopg,sys; psycopg.connect(sys.argv[1], autocommit=True)"
                          ".execute('SELECT pg_sleep(30)')", bouncer.conninfo()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(3)]
    agent.start()
    try:
        def firing(name: str) -> list[dict]:
            return [a for a in agent.get("/api/v1/alerts")
                    if a["labels"]["alertname"] == name and a["state"] == "firing"]

        wait_for(lambda: firing("PoolSaturated"), 30, "PoolSaturated firing")
        [alert] = firing("PoolSaturated")
        assert {"target": "pool", "database": "app", "user": "postgres",
                "severity": "warning"}.items() <= alert["labels"].items()
        assert alert["value"] == 1.5  # (2 active + 1 waiting) / 2
        assert alert["annotations"]["summary"] == "Pool app/postgres on pool is at 150% of its size"
        wait_for(lambda: firing("PoolClientsWaiting"), 30, "PoolClientsWaiting firing")
        metrics = agent.metrics()
        assert sample_value(metrics, "pgbouncer_pools_client_waiting_connections", database="app") == 1
        assert sample_value(metrics, "dbwatch_pgbouncer_pool_utilization_ratio", database="app") == 1.5
    finally:
        for holder in holders:
            holder.kill()
            holder.wait(10)
        agent.stop()


def test_pgbouncer_targets_take_a_dsn_to_the_admin_console_or_its_parts():
    config = parse_config(textwrap.dedent("""
        targets:
          - {name: a, engine: pgbouncer, dsn: "postgresql://dbwatch@127.0.0.1:6432/pgbouncer", password_env: X}
          - {name: b, engine: pgbouncer, host: 127.0.0.1, user: dbwatch, database: pgbouncer}
    """))
    targets = {t.name: t.to_target() for t in config.targets}
    assert targets["b"].dsn == "postgresql://dbwatch@127.0.0.1:6432/pgbouncer"
    assert set(targets["a"].collectors) == {"pgbouncer"}
    for bad, problem in (
        ('dsn: "postgresql://dbwatch@127.0.0.1:6432/app"', "the database must be pgbouncer"),
        ('dsn: "redis://127.0.0.1:6432/0"', "does not match engine"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(f"targets:\n  - {{name: a, engine: pgbouncer, {bad}}}\n")
        assert any(problem in line for line in err.value.problems), err.value.problems


def test_the_commented_pgbouncer_target_of_the_example_config_is_valid_once_uncommented():
    text = (ROOT / "config.example.yaml").read_text()
    start = text.index("  # - name: local-pgbouncer")
    end = text.index("\n\n", start)
    block = "\n".join(line.replace("  # ", "  ", 1) for line in text[start:end].splitlines())
    config = parse_config(text[:start] + block + text[end:], "config.example.yaml", {})
    [target] = [t for t in config.resolved_targets() if t.engine == "pgbouncer"]
    assert target.dsn == "postgresql://dbwatch@127.0.0.1:6432/pgbouncer"
    assert target.password_env == "DBWATCH_PGBOUNCER_PASSWORD" and set(target.collectors) == {"pgbouncer"}


def test_a_pool_whose_database_is_not_listed_is_measured_against_default_pool_size():
    """Rows in the shape PgBouncer 1.18 returns them (recorded above): a pool of a database SHOW DATABASES
    no longer lists (dropped by a reload while clients stay) falls back to the config's default_pool_size."""
    row = {"database": "gone", "user": "app", "cl_active": 3, "cl_waiting": 1, "sv_active": 3, "sv_idle": 0,
           "sv_used": 0, "sv_tested": 0, "sv_login": 0, "maxwait": 1, "maxwait_us": 250000, "pool_mode": "session"}
    config = PoolerConfig(version="1.18.0", max_client_conn=100, default_pool_size=5, max_user_connections=0,
                          max_db_connections=0)
    [pool] = _pools([row], [], config)
    assert (pool.pool_size, pool.utilization, pool.maxwait_seconds) == (5, 0.8, 1.25)
    [unknown] = _pools([row], [], PoolerConfig("1.18.0", None, None, None, None))
    assert unknown.pool_size is None and unknown.utilization is None
