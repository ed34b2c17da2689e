"""The `migrations` collector on real servers the tests start: a PostgreSQL 15 and a MariaDB 10.11.

A real lock queue: one session keeps a transaction open on a table, an ALTER TABLE waits for it, and readers
queue behind the ALTER; MigrationBlockingQueries fires with the ALTER's pid and statement. On PostgreSQL also
a CREATE INDEX CONCURRENTLY reporting its phase, and the invalid index a failed one leaves; on MariaDB the same
queue read from performance_schema and from the process list, and gh-ost / pt-online-schema-change runs.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from typing import Any, Iterator

import pytest
import yaml
from pydantic import ValidationError

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.migrations_common import DdlLock, blocking_families, statement_label
from dbwatch.collectors.mysql_migrations import MySQLMigrationsCollector, ddl_table
from dbwatch.collectors.mysql_osc import throttle_kind
from dbwatch.collectors.pg_migrations import PgMigrationsCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import Snapshot
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.promexport import export_prometheus_rules
from dbwatch.rules.spec import ThresholdRule, shipped_rules
from tests.auditutil import target
from tests.helpers import collect, collect_until, wait_for
from tests.mariadbserver import CLIENT, MariaDBServer
from tests.pgcluster import BIN, PostgresServer


def samples(snapshot: Snapshot, name: str) -> list[tuple[dict[str, str], float]]:
    family = next((f for f in snapshot.families if f.name == name), None)
    if family is None:
        return []
    return [(dict(zip(family.labelnames, key)), value) for key, value in family.samples]


def migration_alerts(snapshot: Snapshot, engine: str) -> list[Any]:
    store = SnapshotStore()
    store.put(snapshot)
    rules = [r for r in shipped_rules() if r.alert == "MigrationBlockingQueries" and engine in r.engines]
    return RuleEngine(rules).evaluate(TargetView(store, snapshot.target, engine, {}, time.time()))


def assert_alert_names_the_ddl_in_its_annotations_only(alert: Any, relation: str, pid: str, statement: str) -> None:
    """Labels target and relation (a new pid is the same alert), value the queue; the DDL in the description,
    its literals normalized."""
    assert {k: v for k, v in alert.labels.items() if k not in ("engine", "severity")} == {"relation": relation}
    assert alert.value == 2 and alert.summary.startswith("2 sessions ")
    assert f'Session {pid} runs "{statement}" (its lock on {relation}: waiting)' in alert.description
    assert f"KILL QUERY {pid}" in alert.description and "secret-ish" not in alert.description


class Background:
    """Client sessions running a script in the background, each its own process, ended at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], script: str, env: dict[str, str] | None = None) -> None:
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   text=True, env={**os.environ, **(env or {})})
        assert process.stdin is not None
        process.stdin.write(script)
        process.stdin.close()
        self.processes.append(process)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=10)
        self.processes.clear()


# -- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer(settings={"autovacuum": "off"})
    try:
        server.start()
        server.psql("CREATE DATABASE app")
        server.psql("CREATE TABLE accounts (id int PRIMARY KEY, email text);"
                    "INSERT INTO accounts SELECT g, 'user' || g FROM generate_series(1, 1000) g;", database="app")
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_sessions(pg: PostgresServer) -> Iterator[Any]:
    background = Background()

    def start(name: str, script: str) -> None:
        args = [str(BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", "app"]
        background.start(args, script, {"PGAPPNAME": name})

    try:
        yield start
    finally:
        background.stop()
        pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'test-%'")
        wait_for(lambda: pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'test-%'") == "0",
                 10, "the background sessions to end")


def pg_collector(pg: PostgresServer) -> tuple[PgMigrationsCollector, PostgresSession]:
    t = target("postgres", pg.dsn(database="app"), {"migrations": {}})
    session = PostgresSession(t)
    return PgMigrationsCollector(t, session), session


def pg_pid(pg: PostgresServer, name: str, waiting: bool | None = None) -> str:
    condition = "" if waiting is None else f" AND (wait_event_type = 'Lock') = {str(waiting).lower()}"
    return pg.psql(f"SELECT pid FROM pg_stat_activity WHERE application_name = '{name}'{condition}")


async def test_pg_alter_table_waiting_behind_a_transaction_with_readers_queued_fires_migration_blocking_queries(
        pg, pg_sessions):
    pg_sessions("test-holder", "BEGIN; SELECT count(*) FROM accounts; SELECT pg_sleep(600);")
    wait_for(lambda: pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test-holder' "
                             "AND query LIKE '%pg_sleep%'") == "1", 10, "the open transaction")
    pg_sessions("test-ddl", "ALTER TABLE accounts ADD COLUMN plan text DEFAULT 'secret-ish literal';")
    wait_for(lambda: pg_pid(pg, "test-ddl", waiting=True), 10, "the ALTER to wait for its lock")
    for n in range(2):
        pg_sessions(f"test-reader{n}", "SELECT count(*) FROM accounts;")
    wait_for(lambda: pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'test-reader%' "
                             "AND wait_event_type = 'Lock'") == "2", 10, "the readers to queue")
    collector, session = pg_collector(pg)
    try:
        snapshot = await collect_until(
            collector, lambda s: any(v == 2 for _, v in samples(s, "dbwatch_migration_blocking_queries")),
            20, "two readers queued behind the ALTER")
    finally:
        await session.close()
    ddl_pid = pg_pid(pg, "test-ddl")
    assert samples(snapshot, "dbwatch_migration_blocking_queries") == [({"relation": "accounts"}, 2.0)]
    assert samples(snapshot, "dbwatch_migration_ddl_info") == [(
        {"relation": "accounts", "pid": ddl_pid, "state": "waiting",
         "statement": "ALTER TABLE accounts ADD COLUMN plan text DEFAULT '?';"}, 1.0)]
    [(labels, seconds)] = samples(snapshot, "dbwatch_migration_ddl_seconds")
    assert labels == {"relation": "accounts"} and seconds >= 0
    [alert] = migration_alerts(snapshot, "postgres")
    assert_alert_names_the_ddl_in_its_annotations_only(alert, "accounts", ddl_pid,
                                                       "ALTER TABLE accounts ADD COLUMN plan text DEFAULT '?';")


async def test_pg_a_ddl_without_a_queue_and_plain_readers_raise_nothing(pg, pg_sessions):
    pg_sessions("test-holder", "BEGIN; SELECT count(*) FROM accounts; SELECT pg_sleep(600);")
    pg_sessions("test-reader", "BEGIN; SELECT count(*) FROM accounts; SELECT pg_sleep(600);")
    wait_for(lambda: pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'test-%' "
                             "AND query LIKE '%pg_sleep%'") == "2", 10, "the two readers")
    collector, session = pg_collector(pg)
    try:
        snapshot = await collect(collector)
    finally:
        await session.close()
    assert samples(snapshot, "dbwatch_migration_blocking_queries") == []
    assert migration_alerts(snapshot, "postgres") == []


async def test_pg_create_index_concurrently_reports_its_phase_and_a_failed_one_leaves_an_invalid_index(
        pg, pg_sessions):
    pg_sessions("test-writer", "BEGIN; UPDATE accounts SET email = email WHERE id = 1; SELECT pg_sleep(600);")
    wait_for(lambda: pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test-writer' "
                             "AND query LIKE '%pg_sleep%'") == "1", 10, "the open write transaction")
    pg_sessions("test-cic", "CREATE INDEX CONCURRENTLY accounts_email ON accounts (email);")
    collector, session = pg_collector(pg)
    try:
        # It starts in "initializing", then waits for the open write transaction.
        snapshot = await collect_until(
            collector, lambda s: any(labels["phase"] == "waiting for writers before build"
                                     for labels, _ in samples(s, "dbwatch_migration_progress_ratio")),
            20, "the concurrent build waiting for the writer")
        [(labels, ratio)] = samples(snapshot, "dbwatch_migration_progress_ratio")
        assert labels["command"] == "CREATE INDEX CONCURRENTLY" and labels["relation"] == "accounts"
        assert labels["pid"] == pg_pid(pg, "test-cic") and math.isnan(ratio)  # no measure while it waits
        assert samples(snapshot, "dbwatch_migration_invalid_index") == []  # being built: not left over

        pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'test-writer'")
        wait_for(lambda: pg.psql("SELECT count(*) FROM pg_stat_progress_create_index") == "0", 20,
                 "the concurrent build to finish")
        pg.psql("INSERT INTO accounts VALUES (1001, 'user1')", database="app")
        with pytest.raises(RuntimeError, match="could not create unique index"):
            pg.psql("CREATE UNIQUE INDEX CONCURRENTLY accounts_email_unique ON accounts (email)", database="app")
        snapshot = await collect(collector)
    finally:
        await session.close()
        pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'test-%'")
        pg.psql("DELETE FROM accounts WHERE id = 1001; DROP INDEX IF EXISTS accounts_email_unique, accounts_email",
                database="app")
    assert samples(snapshot, "dbwatch_migration_invalid_index") == [
        ({"relation": "accounts", "index": "accounts_email_unique"}, 1.0)]


# -- MariaDB ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaDBServer]:
    server = MariaDBServer(server_id=7).start()
    try:
        server.sql("CREATE DATABASE shop; USE shop; CREATE TABLE orders (id int PRIMARY KEY, note text);"
                   "INSERT INTO orders SELECT seq, 'n' FROM seq_1_to_500;")
        yield server
    finally:
        server.destroy()


@pytest.fixture
def maria_sessions(maria: MariaDBServer) -> Iterator[Any]:
    background = Background()

    def start(script: str) -> None:
        background.start([CLIENT, "--no-defaults", "-h", "127.0.0.1", "-P", str(maria.port), "-u", "root", "shop"],
                         script)

    try:
        yield start
    finally:
        background.stop()
        ids = maria.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'shop' AND ID <> CONNECTION_ID()")
        for pid in ids.split():
            maria.sql(f"KILL {pid}")
        wait_for(lambda: maria.sql("SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = 'shop'") == "0",
                 10, "the background sessions to end")


def maria_collector(maria: MariaDBServer) -> tuple[MySQLMigrationsCollector, MySQLSession]:
    t = target("mysql", maria.dsn(), {"migrations": {}})
    session = MySQLSession(t)
    return MySQLMigrationsCollector(t, session), session


@pytest.mark.parametrize("instrumented", [True, False], ids=["metadata_locks", "processlist"])
async def test_mariadb_alter_table_waiting_for_the_metadata_lock_with_readers_queued_fires_migration_blocking_queries(
        maria, maria_sessions, instrumented):
    maria.sql("UPDATE performance_schema.setup_instruments SET ENABLED = '%s', TIMED = '%s' "
              "WHERE NAME = 'wait/lock/metadata/sql/mdl'" % (("YES",) * 2 if instrumented else ("NO",) * 2))
    maria_sessions("BEGIN; SELECT count(*) FROM orders; SELECT SLEEP(600);")
    wait_for(lambda: maria.sql("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'")
             == "1", 10, "the open transaction")
    maria_sessions("ALTER TABLE orders ADD COLUMN plan varchar(20) DEFAULT 'secret-ish';")
    wait_for(lambda: maria.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'ALTER TABLE%' "
                               "AND STATE = 'Waiting for table metadata lock'"), 10, "the ALTER to wait")
    for _ in range(2):
        maria_sessions("SELECT count(*) FROM orders;")
    wait_for(lambda: maria.sql("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT count%' "
                               "AND STATE = 'Waiting for table metadata lock'") == "2", 10, "the readers to queue")
    ddl_pid = maria.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'ALTER TABLE%'")
    collector, session = maria_collector(maria)
    try:
        snapshot = await collect_until(
            collector, lambda s: any(v == 2 for _, v in samples(s, "dbwatch_migration_blocking_queries")),
            20, "two readers queued behind the ALTER")
    finally:
        await session.close()
    source = "performance_schema.metadata_locks" if instrumented else "information_schema.processlist"
    assert f"metadata locks read from {source}" in snapshot.notes
    assert samples(snapshot, "dbwatch_migration_blocking_queries") == [({"relation": "shop.orders"}, 2.0)]
    statement = "ALTER TABLE orders ADD COLUMN plan varchar(20) DEFAULT '?'"
    assert samples(snapshot, "dbwatch_migration_ddl_info") == [(
        {"relation": "shop.orders", "pid": ddl_pid, "state": "waiting", "statement": statement}, 1.0)]
    [alert] = migration_alerts(snapshot, "mysql")
    assert_alert_names_the_ddl_in_its_annotations_only(alert, "shop.orders", ddl_pid, statement)


async def test_mariadb_gh_ost_and_pt_online_schema_change_runs_are_seen_with_their_progress(maria):
    # The tables and triggers as the tools create them (gh-ost: go/logic/applier.go; pt-osc: its create_triggers).
    maria.sql("""
        CREATE TABLE shop.items (id int PRIMARY KEY, name text);
        INSERT INTO shop.items SELECT seq, 'x' FROM seq_1_to_400;
        CREATE TABLE shop._items_gho LIKE shop.items;
        INSERT INTO shop._items_gho SELECT * FROM shop.items WHERE id <= 100;
        CREATE TABLE shop._items_ghc (
          id bigint unsigned auto_increment,
          last_update timestamp not null DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
          hint varchar(64) charset ascii not null,
          value varchar(4096) charset ascii not null,
          primary key(id),
          unique key hint_uidx(hint)
        ) auto_increment=256;
        INSERT INTO shop._items_ghc (id, hint, value) VALUES (1, 'heartbeat', NOW(6))
          ON DUPLICATE KEY UPDATE last_update = NOW(), value = VALUES(value);
        CREATE TABLE shop._orders_new LIKE shop.orders;
        INSERT INTO shop._orders_new SELECT * FROM shop.orders WHERE id <= 250;
        CREATE TRIGGER shop.pt_osc_shop_orders_del AFTER DELETE ON shop.orders FOR EACH ROW
          DELETE IGNORE FROM shop._orders_new WHERE shop._orders_new.id <=> OLD.id;
        CREATE TABLE shop._orphan_new (id int);
    """, database="shop")
    collector, session = maria_collector(maria)
    try:
        snapshot = await collect(collector)
    finally:
        await session.close()
        maria.sql("DROP TABLE shop.items, shop._items_gho, shop._items_ghc, shop._orders_new, shop._orphan_new;"
                  "DROP TRIGGER shop.pt_osc_shop_orders_del")
    assert sorted(samples(snapshot, "dbwatch_migration_osc_rows"), key=str) == sorted([
        ({"tool": "gh-ost", "relation": "shop.items", "kind": "copied"}, 100.0),
        ({"tool": "gh-ost", "relation": "shop.items", "kind": "total"}, 400.0),
        ({"tool": "pt-online-schema-change", "relation": "shop.orders", "kind": "copied"}, 250.0),
        ({"tool": "pt-online-schema-change", "relation": "shop.orders", "kind": "total"}, 500.0),
    ], key=str)
    assert dict((labels["relation"], v) for labels, v in samples(snapshot, "dbwatch_migration_osc_progress_ratio")) \
        == {"shop.items": 0.25, "shop.orders": 0.5}
    [(labels, age)] = samples(snapshot, "dbwatch_migration_osc_heartbeat_age_seconds")
    assert labels == {"tool": "gh-ost", "relation": "shop.items"} and 0 <= age < 60


GHOST_CHANGELOG_WRITE = """
INSERT /* gh-ost */ INTO shop._items_ghc (id, hint, value) VALUES (NULLIF(%d, 0), '%s', '%s')
  ON DUPLICATE KEY UPDATE last_update = NOW(), value = VALUES(value);
"""


def ghost_changelog(hint: str, value: str) -> str:
    """gh-ost's Applier.WriteAndLogChangelog: the hint's own row (fixed id), and a logged copy of it."""
    fixed = {"heartbeat": 1, "state": 2, "throttle": 3}[hint]
    return (GHOST_CHANGELOG_WRITE % (fixed, hint, value)
            + GHOST_CHANGELOG_WRITE % (0, f"{hint} at {time.time_ns()}", value))


async def test_mariadb_gh_ost_throttling_is_read_from_its_changelog_table(maria):
    maria.sql("""
        CREATE TABLE shop.items (id int PRIMARY KEY, name text);
        INSERT INTO shop.items SELECT seq, 'x' FROM seq_1_to_50;
        CREATE TABLE shop._items_gho LIKE shop.items;
        CREATE TABLE shop._items_ghc (
          id bigint unsigned auto_increment,
          last_update timestamp not null DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
          hint varchar(64) charset ascii not null,
          value varchar(4096) charset ascii not null,
          primary key(id),
          unique key hint_uidx(hint)
        ) auto_increment=256;
    """ + ghost_changelog("heartbeat", "2026-12-04T20:00:00.123456789Z")
        + ghost_changelog("throttle", "127.0.0.1:3307 replica-lag=3.500000s"), database="shop")
    collector, session = maria_collector(maria)
    try:
        throttled = await collect(collector)
        maria.sql(ghost_changelog("throttle", "max-load Threads_running=31 >= 30"), database="shop")
        loaded = await collect(collector)
        maria.sql(ghost_changelog("throttle", "done throttling"), database="shop")
        copying = await collect(collector)
    finally:
        await session.close()
        maria.sql("DROP TABLE shop.items, shop._items_gho, shop._items_ghc")
    run = {"tool": "gh-ost", "relation": "shop.items"}
    assert samples(throttled, "dbwatch_migration_osc_throttled") == [({**run, "reason": "replica-lag"}, 1.0)]
    assert samples(throttled, "dbwatch_migration_osc_throttle_lag_seconds") == [(run, 3.5)]
    assert samples(loaded, "dbwatch_migration_osc_throttled") == [({**run, "reason": "max-load"}, 1.0)]
    assert samples(loaded, "dbwatch_migration_osc_throttle_lag_seconds") == []
    assert samples(copying, "dbwatch_migration_osc_throttled") == [({**run, "reason": ""}, 0.0)]
    assert samples(copying, "dbwatch_migration_osc_throttle_lag_seconds") == []


@pytest.mark.parametrize("reason, kind", [
    ("lag=2.504120s", "lag"), ("127.0.0.1:3307 replica-lag=12.000000s", "replica-lag"),
    ("max-load Threads_running=31 >= 30", "max-load"), ("commanded by user", "commanded by user"),
    ("critical-load-hibernate until 2026-12-04 20:00:00 +0000 UTC", "critical-load-hibernate until"),
    ("flag-file /tmp/ghost.throttle", "flag-file"), ("http=429", "http"), ("127.0.0.1:3307 timeout", "other"),
])
def test_gh_ost_throttle_reasons_become_kinds_without_their_figures(reason, kind):
    assert throttle_kind(reason) == kind


PT_OSC = shutil.which("pt-online-schema-change") or "/usr/bin/pt-online-schema-change"


async def test_mariadb_a_real_pt_online_schema_change_paused_by_max_load_shows_its_progress_stalled(
        maria, maria_sessions, tmp_path):
    # percona-toolkit's pt-online-schema-change against the throwaway server: 3,000 rows in chunks of 100;
    # three sleeping sessions keep Threads_running past --max-load, so it pauses after its first chunk, for real.
    maria.sql("CREATE TABLE shop.big (id int PRIMARY KEY, name varchar(20));"
              "INSERT INTO shop.big SELECT seq, 'x' FROM seq_1_to_3000; ANALYZE TABLE shop.big;", database="shop")
    for _ in range(3):
        maria_sessions("SELECT SLEEP(600);")
    wait_for(lambda: maria.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'")
             == "3", 20, "the three sleeping sessions")
    log = tmp_path / "pt-osc.log"
    with log.open("w") as out:
        tool = subprocess.Popen(
            [PT_OSC, "--alter", "ADD COLUMN note varchar(10)", "--execute", "--chunk-size", "100", "--chunk-time", "0",
             "--sleep", "0.1", "--progress", "time,1", "--recursion-method", "none", "--max-load", "Threads_running=3",
             "--critical-load", "Threads_running=1000", f"h=127.0.0.1,P={maria.port},u=root,D=shop,t=big"],
            stdout=out, stderr=subprocess.STDOUT)
    collector, session = maria_collector(maria)
    try:
        snapshot = await collect_until(
            collector, lambda s: any(v >= 2.0 for _, v in samples(s, "dbwatch_migration_osc_stalled_seconds")),
            60, "the copy to stall for 2 s")
        run = {"tool": "pt-online-schema-change", "relation": "shop.big"}
        rows = dict((labels["kind"], v) for labels, v in samples(snapshot, "dbwatch_migration_osc_rows"))
        assert 100 <= rows["copied"] < rows["total"] == 3000
        [(labels, ratio)] = samples(snapshot, "dbwatch_migration_osc_progress_ratio")
        assert labels == run and 0 < ratio < 1
        assert samples(snapshot, "dbwatch_migration_osc_throttled") == []  # pt-osc writes no throttle hint
        for pid in maria.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'").split():
            maria.sql(f"KILL {pid}")
        assert tool.wait(timeout=120) == 0, log.read_text()
        assert "Pausing because Threads_running=" in log.read_text()
        done = await collect(collector)
        assert samples(done, "dbwatch_migration_osc_rows") == []  # swapped, triggers dropped: no run
    finally:
        await session.close()
        if tool.poll() is None:
            tool.kill()
            tool.wait(timeout=10)
        maria.sql("DROP TRIGGER IF EXISTS shop.pt_osc_shop_big_ins; DROP TRIGGER IF EXISTS shop.pt_osc_shop_big_upd;"
                  "DROP TRIGGER IF EXISTS shop.pt_osc_shop_big_del; DROP TABLE IF EXISTS shop._big_new, shop.big")


@pytest.mark.parametrize("statement, mysql, label", [
    ("ALTER TABLE a ADD b text DEFAULT 'it''s'", False, "ALTER TABLE a ADD b text DEFAULT '?'"),
    ("ALTER USER u IDENTIFIED BY 'pw\\'x' ;", True, "ALTER USER u IDENTIFIED BY '?' ;"),
    ('ALTER TABLE t ADD c varchar(9) DEFAULT "s3cret"', True, "ALTER TABLE t ADD c varchar(9) DEFAULT '?'"),
    ('ALTER TABLE "T" ADD c int', False, 'ALTER TABLE "T" ADD c int'),  # an identifier in PostgreSQL
    ("CREATE USER u PASSWORD 'cut by the server", False, "CREATE USER u PASSWORD '?'"),
    ("ALTER  TABLE\n t\tADD x int", False, "ALTER TABLE t ADD x int"),
    ("ALTER TABLE t ADD COLUMN " + "x" * 300, False, "ALTER TABLE t ADD COLUMN " + "x" * 174 + "…"),
])
def test_statements_in_ddl_info_carry_no_literal_and_are_cut(statement, mysql, label):
    assert statement_label(statement, 200, double_quoted_literals=mysql) == label


def test_a_queue_is_one_series_per_relation_and_its_ddl_an_info_series_of_the_most_queued_first():
    locks = [DdlLock("shop.orders", 11, False, "ALTER TABLE orders ENGINE=InnoDB", 40.0, 1),
             DdlLock("shop.orders", 12, True, "ALTER TABLE orders ADD x int DEFAULT 'k'", 5.0, 3)]
    queued, seconds, info = blocking_families(locks, 200)
    assert queued.labelnames == seconds.labelnames == ("relation",)
    assert queued.samples == [(("shop.orders",), 3.0)] and seconds.samples == [(("shop.orders",), 40.0)]
    assert [key for key, _ in info.samples] == [
        ("shop.orders", "12", "waiting", "ALTER TABLE orders ADD x int DEFAULT '?'"),
        ("shop.orders", "11", "holding", "ALTER TABLE orders ENGINE=InnoDB")]


@pytest.mark.parametrize("statement, table", [
    ("ALTER TABLE orders ADD COLUMN x int", ("shop", "orders")),
    ("alter online ignore table `db2`.`t 1` drop x", ("db2", "t 1")),
    ("CREATE UNIQUE INDEX i ON orders (x)", ("shop", "orders")),
    ("/* gh-ost */ RENAME TABLE a.b TO a.c", ("a", "b")),
    ("DROP TABLE IF EXISTS orders", ("shop", "orders")),
    ("SELECT * FROM orders", None),
    ("INSERT INTO alter_log VALUES (1)", None),
])
def test_ddl_statements_name_their_table(statement, table):
    assert ddl_table(statement, "shop") == table


# -- the alert's info join, in dbwatch and in the exported Prometheus rule -----------------------------


def queue_snapshot(target_name: str, relation: str, queued: float, ddl: list[tuple[str, ...]]) -> Snapshot:
    snapshot = Snapshot(target=target_name, engine="postgres", collector="migrations", started_at=time.time())
    locks = [DdlLock(relation, int(pid), state == "waiting", statement, 3.0, int(queued))
             for pid, state, statement in ddl]
    snapshot.families.extend(blocking_families(locks, 200))
    return snapshot


def test_the_ddl_info_shows_in_the_annotations_only_and_prometheus_renders_the_same_text(tmp_path):
    [rule] = [r for r in shipped_rules() if r.alert == "MigrationBlockingQueries"]
    snapshot = queue_snapshot("db1", "public.orders", 3, [("4242", "waiting", "ALTER TABLE orders ADD x text")])
    [alert] = migration_alerts(snapshot, "postgres")
    assert alert.labels == {"relation": "public.orders"} and alert.value == 3
    assert 'Session 4242 runs "ALTER TABLE orders ADD x text" (its lock on public.orders: waiting)' \
        in alert.description
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (apt-get install prometheus)")
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(export_prometheus_rules([rule]))
    series = [{"series": 'dbwatch_migration_blocking_queries{target="db1",relation="public.orders"}',
               "values": "3x5"},
              {"series": 'dbwatch_migration_ddl_info{target="db1",relation="public.orders",pid="4242",'
                         'state="waiting",statement="ALTER TABLE orders ADD x text"}', "values": "1x5"},
              {"series": 'dbwatch_migration_ddl_info{target="db2",relation="public.orders",pid="7",'
                         'state="holding",statement="VACUUM FULL orders"}', "values": "1x5"}]
    tests = {"rule_files": [str(rules_file)], "evaluation_interval": "15s", "tests": [{
        "interval": "15s", "input_series": series,
        "alert_rule_test": [{"eval_time": "1m", "alertname": rule.alert, "exp_alerts": [{
            "exp_labels": {"severity": "critical", "target": "db1", "relation": "public.orders"},
            "exp_annotations": {"summary": alert.summary, "description": alert.description}}]}]}]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests.yml")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_its_info_series_the_alert_still_fires_with_the_ddl_left_blank():
    snapshot = queue_snapshot("db1", "public.orders", 2, [("9", "holding", "VACUUM FULL orders")])
    snapshot.families[:] = [f for f in snapshot.families if f.name != "dbwatch_migration_ddl_info"]
    [alert] = migration_alerts(snapshot, "postgres")
    assert alert.value == 2 and 'Session  runs ""' in alert.description


@pytest.mark.parametrize("info, problem", [
    ({"metric": "m", "join": ["relation"], "labels": []}, "labels"),
    ({"metric": "m", "join": ["target"], "labels": ["pid"]}, "join"),
    ({"metric": "not a metric", "labels": ["pid"]}, "metric"),
    ({"metric": "m", "on": ["relation"], "labels": ["pid"]}, "on"),
])
def test_a_rule_info_join_is_checked_with_the_field_named(info, problem):
    with pytest.raises(ValidationError) as error:
        ThresholdRule.model_validate({"alert": "A", "metric": "x", "op": ">", "threshold": 0, "summary": "s",
                                      "info": info})
    assert any(err["loc"][:2] == ("info", problem) for err in error.value.errors())
