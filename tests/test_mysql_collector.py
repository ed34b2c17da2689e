"""The MySQL/MariaDB collectors against real MariaDB 10.11 servers, driven directly (no daemon): the session's
throwaway primary with performance_schema ON and the binary log (``mariadb_primary``), its GTID replica
(``mariadb_replica``), and, where a test stops a server or needs performance_schema OFF, a server of its
own (``mariadb_scratch``). Each test's docstring names the servers it uses. See tests/mariadbserver.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pymysql
import pytest

from dbwatch.agent.config import parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import CollectorSettings, Snapshot, Target
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.mysql import MySQLCollector, MySQLOptions, MySQLSession, QueryError
from dbwatch.collectors import mysql_families as fams
from dbwatch.collectors import mysql_sql as sql
from dbwatch.collectors.mysql_families import gtid_positions
from dbwatch.collectors.mysql_statements import MySQLStatementsCollector
from dbwatch.collectors.options import StatementsOptions
from dbwatch.model.facts.mysql import Activity, Channels, Gtid, Heartbeat, ServerInfo, Status
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.statements import Statements
from tests.mariadbserver import MariaDBServer, mariadb_primary, mariadb_replica, mariadb_scratch  # noqa: F401
from tests.helpers import collect, collect_until, wait_until

ROOT = Path(__file__).resolve().parent.parent


def make_target(dsn: str, top_n: int = 100, timeout: float = 5, heartbeat_table: str = "", heartbeat_utc: bool = False,
                **extra) -> Target:
    return Target(
        name="t", engine="mysql", dsn=dsn, labels={},
        collectors={
            "mysql": CollectorSettings(15, timeout, MySQLOptions(heartbeat_table=heartbeat_table,
                                                                 heartbeat_utc=heartbeat_utc)),
            "statements": CollectorSettings(60, timeout, StatementsOptions(top_n=top_n)),
        },
        **extra,
    )


def connect(server: MariaDBServer, user: str = "root", password: str = "", database: str | None = None):
    return pymysql.connect(host="127.0.0.1", port=server.port, user=user, password=password, database=database,
                           autocommit=True)


def names(snapshot: Snapshot) -> set[str]:
    return {fam.name for fam in snapshot.families if fam.samples}


# -- the server-wide collector ------------------------------------------------------------------------


async def test_core_metrics_use_mysqld_exporter_names_and_values(mariadb_primary, session_for):
    """mariadb_primary (innodb_buffer_pool_size = 16M, max_connections = 60)."""
    mariadb_primary.sql("CREATE DATABASE IF NOT EXISTS t")  # a transaction in the binary log: a GTID
    session = session_for(make_target(mariadb_primary.dsn()))
    snapshot = await collect(MySQLCollector(session.target, session))
    assert snapshot.family("mysql_up").value() == 1
    assert snapshot.version.startswith("10.11.") and snapshot.fact(ServerInfo).flavor == "mariadb"
    assert snapshot.family("mysql_global_variables_innodb_buffer_pool_size").value() == 16 * 1024**2
    assert snapshot.family("mysql_global_variables_max_connections").value() == 60
    assert snapshot.family("mysql_global_variables_performance_schema").value() == 1
    assert snapshot.family("mysql_global_status_commands_total").value(command="select") > 0
    assert snapshot.family("mysql_global_status_buffer_pool_pages").value(state="data") > 0
    for name in ("threads_running", "aborted_connects", "created_tmp_disk_tables", "innodb_row_lock_waits",
                 "innodb_row_lock_time", "innodb_buffer_pool_reads", "innodb_buffer_pool_read_requests",
                 "innodb_deadlocks", "connections", "uptime"):
        assert snapshot.family(f"mysql_global_status_{name}") is not None, name
    assert snapshot.family("mysql_global_status_buffer_pool_dirty_pages").value() >= 0
    assert 0 < snapshot.family("dbwatch_mysql_buffer_pool_hit_ratio").value() <= 1
    status = snapshot.fact(Status)
    assert snapshot.family("dbwatch_mysql_connections_used_ratio").value() == status.threads_connected / 60
    [((innodb_version, version, _), _)] = snapshot.family("mysql_version_info").samples
    assert version == snapshot.version and innodb_version == ""  # MariaDB 10.10+ has no innodb_version
    assert snapshot.family("dbwatch_mysql_gtid_executed").value(domain="0") >= 1
    assert snapshot.fact(Channels) == Channels() and snapshot.fact(Summary)["role"] == "primary"
    assert snapshot.notes == []


async def test_threads_connected_rises_by_the_connections_opened(mariadb_primary, session_for):
    """mariadb_primary: five more client connections (user counter5) between two collections."""
    mariadb_primary.sql("CREATE USER IF NOT EXISTS counter5@'%'")
    session = session_for(make_target(mariadb_primary.dsn()))
    collector = MySQLCollector(session.target, session)
    before = await collect(collector)
    extra = [connect(mariadb_primary, "counter5") for _ in range(5)]
    try:
        after = await collect(collector)
    finally:
        for conn in extra:
            conn.close()
    rise = after.family("mysql_global_status_threads_connected").value() - \
        before.family("mysql_global_status_threads_connected").value()
    assert rise == 5 and after.fact(Status).threads_connected - before.fact(Status).threads_connected == 5
    assert after.family("mysql_info_schema_processlist_processes_by_user").value(mysql_user="counter5") == 5
    assert after.fact(Activity).connections - before.fact(Activity).connections == 5


async def test_row_lock_waits_and_a_deadlock_are_counted(mariadb_primary, session_for):
    """mariadb_primary: two sessions lock rows 1 and 2 in opposite orders; InnoDB kills one (a deadlock)
    after the other waited on its row lock."""
    table = f"dl_{uuid.uuid4().hex[:8]}"
    mariadb_primary.sql(f"CREATE DATABASE IF NOT EXISTS t; CREATE TABLE t.{table} (id int primary key, v int) "
                        f"ENGINE=InnoDB; INSERT INTO t.{table} VALUES (1, 0), (2, 0)")
    session = session_for(make_target(mariadb_primary.dsn()))
    collector = MySQLCollector(session.target, session)
    before = (await collect(collector)).fact(Status)
    a, b = connect(mariadb_primary), connect(mariadb_primary)
    errors: list[int] = []

    def update(conn, row: int) -> None:
        try:
            conn.cursor().execute(f"UPDATE t.{table} SET v = v + 1 WHERE id = {row}")
        except pymysql.err.OperationalError as exc:
            errors.append(exc.args[0])

    try:
        for conn, row in ((a, 1), (b, 2)):
            conn.begin()
            update(conn, row)
        waiter = threading.Thread(target=update, args=(a, 2))
        waiter.start()
        time.sleep(0.3)  # a waits for b's row lock
        update(b, 1)  # ...and b for a's: a deadlock, one of them is rolled back
        waiter.join(10)
    finally:
        a.close()
        b.close()
    assert errors == [1213]
    after = await collect(collector)
    assert after.fact(Status).innodb_deadlocks - before.innodb_deadlocks == 1
    assert after.family("dbwatch_mysql_innodb_deadlocks_total").value() == after.fact(Status).innodb_deadlocks
    assert after.fact(Status).innodb_row_lock_waits - before.innodb_row_lock_waits >= 1


async def test_long_running_query_shows_its_age_per_user_and_host(mariadb_primary, session_for):
    """mariadb_primary: user sleeper runs SELECT SLEEP(30) for over a second, then it is killed."""
    mariadb_primary.sql("CREATE USER IF NOT EXISTS sleeper@'%'")
    conn = connect(mariadb_primary, "sleeper")
    thread_id = conn.thread_id()

    def sleep() -> None:
        try:
            conn.cursor().execute("SELECT SLEEP(30) AS long_probe")
        except pymysql.err.OperationalError:
            pass  # 1317: killed below, as intended

    sleeper = threading.Thread(target=sleep)
    sleeper.start()
    try:
        time.sleep(1.3)
        session = session_for(make_target(mariadb_primary.dsn()))
        snapshot = await collect(MySQLCollector(session.target, session))
    finally:
        mariadb_primary.sql(f"KILL QUERY {thread_id}")
        sleeper.join(10)
        conn.close()
    activity = snapshot.fact(Activity)
    assert 1.2 < activity.oldest_query_seconds < 10
    assert snapshot.family("dbwatch_mysql_oldest_query_seconds").value() == activity.oldest_query_seconds
    oldest = snapshot.family("dbwatch_mysql_processlist_oldest_query_seconds")
    assert oldest.value(mysql_user="sleeper", client_host="127.0.0.1") > 1.2
    assert snapshot.family("dbwatch_mysql_processlist_running_queries").value(mysql_user="sleeper") == 1
    [longest] = [q for q in activity.longest if q.user == "sleeper"]
    assert longest.id == thread_id and "long_probe" in longest.query and longest.host == "127.0.0.1"
    assert not any("information_schema.PROCESSLIST" in (q.query or "") for q in activity.longest)  # not itself


async def test_monitoring_session_cancels_its_own_long_statements(mariadb_primary, session_for):
    """mariadb_primary: the session's max_statement_time is 80 % of the shortest collector timeout (1 s)."""
    session = session_for(make_target(mariadb_primary.dsn(), timeout=1))
    async with session.lock:  # the connection is only for the holder of the session's lock
        [row] = await session.run("SELECT @@session.max_statement_time AS limit_, @@session.lock_wait_timeout AS mdl, "
                                  "@@session.tx_read_only AS ro")
        assert float(row["limit_"]) == pytest.approx(0.8) and row["mdl"] == 1 and row["ro"] == 1
        began = time.monotonic()
        with pytest.raises(QueryError, match="max_statement_time") as cancelled:
            await session.run("SELECT SLEEP(5) FROM mysql.user LIMIT 1")
        assert cancelled.value.errno == 1969 and time.monotonic() - began < 2
        assert (await session.run("SELECT 1 AS one")) == [{"one": 1}]  # the same connection carries on


# -- replication --------------------------------------------------------------------------------------


async def test_replica_reports_threads_lag_gtid_heartbeat_and_a_broken_sql_thread(mariadb_primary, mariadb_replica,
                                                                                     session_for):
    """mariadb_primary and mariadb_replica (GTID): running, SQL thread stopped (pt-heartbeat table shows the
    true lag meanwhile), restarted, then broken by a duplicate key (Last_SQL_Error) and repaired."""
    mariadb_primary.sql("CREATE DATABASE IF NOT EXISTS percona; CREATE TABLE IF NOT EXISTS percona.heartbeat "
                        "(ts varchar(26) NOT NULL, server_id int unsigned NOT NULL PRIMARY KEY); "
                        "REPLACE INTO percona.heartbeat VALUES (NOW(6), 1); "
                        "CREATE DATABASE IF NOT EXISTS t; CREATE TABLE IF NOT EXISTS t.repl (id int primary key)")
    session = session_for(make_target(mariadb_replica.dsn(), heartbeat_table="percona.heartbeat"))
    collector = MySQLCollector(session.target, session)

    def caught_up(s: Snapshot) -> bool:
        [channel] = s.fact(Channels)
        primary_pos = gtid_positions(mariadb_primary.sql("SELECT @@gtid_current_pos"))
        return (channel.io_running and channel.sql_running and channel.seconds_behind_master == 0
                and gtid_positions(s.fact(Gtid).executed) == primary_pos)

    running = await collect_until(collector, caught_up, 15, "replica running and caught up")
    labels = {"connection_name": "", "master_host": "127.0.0.1"}
    assert running.family("mysql_slave_status_slave_io_running").value(**labels) == 1
    assert running.family("mysql_slave_status_slave_sql_running").value(**labels) == 1
    assert running.family("mysql_slave_status_seconds_behind_master").value(**labels) == 0
    assert running.family("mysql_slave_status_master_port").value() == mariadb_primary.port
    primary_seq = gtid_positions(mariadb_primary.sql("SELECT @@gtid_current_pos"))["0"]
    assert running.family("dbwatch_mysql_slave_status_gtid_received").value(domain="0") == primary_seq
    assert running.family("dbwatch_mysql_gtid_executed").value(domain="0") == primary_seq
    assert running.family("dbwatch_mysql_slave_status_last_error").samples == []
    assert running.fact(Heartbeat).lag_seconds < 15 and running.fact(Summary)["role"] == "replica"
    assert running.family("mysql_heartbeat_stored_timestamp_seconds").value(server_id="1") > 0

    mariadb_replica.sql("STOP SLAVE SQL_THREAD")
    time.sleep(1.2)
    mariadb_primary.sql("REPLACE INTO percona.heartbeat VALUES (NOW(6), 1)")  # received, not applied
    stopped = await collect_until(collector, lambda s: not s.fact(Channels)[0].sql_running, 15, "SQL thread stopped")
    assert stopped.family("mysql_slave_status_slave_sql_running").value() == 0
    assert stopped.family("mysql_slave_status_slave_io_running").value() == 1
    assert stopped.fact(Channels)[0].seconds_behind_master is None  # NULL while stopped: not exported as 0
    assert stopped.family("mysql_slave_status_seconds_behind_master") is None
    assert stopped.fact(Heartbeat).lag_seconds > 1.2  # the heartbeat shows how far behind it really is
    assert "STOPPED" in stopped.fact(Summary)["replication default"]

    mariadb_replica.sql("START SLAVE SQL_THREAD")
    await collect_until(collector, caught_up, 15, "replica caught up again")

    mariadb_replica.sql("INSERT INTO t.repl VALUES (7)")  # root bypasses read_only: a conflicting row
    mariadb_primary.sql("INSERT INTO t.repl VALUES (7)")
    broken = await collect_until(collector, lambda s: s.fact(Channels)[0].last_sql_errno != 0, 15, "Last_SQL_Error")
    channel = broken.fact(Channels)[0]
    assert channel.last_sql_errno == 1062 and "Duplicate entry" in channel.last_sql_error
    assert not channel.sql_running and broken.family("mysql_slave_status_last_sql_errno").value() == 1062
    [(error_labels, _)] = broken.family("dbwatch_mysql_slave_status_last_error").samples
    assert error_labels[4:6] == ("sql", "1062") and "Duplicate entry" in error_labels[6]

    mariadb_replica.sql("DELETE FROM t.repl WHERE id = 7; START SLAVE SQL_THREAD")
    repaired = await collect_until(collector, caught_up, 15, "replica repaired")
    assert repaired.family("dbwatch_mysql_slave_status_last_error").samples == []


async def test_heartbeat_table_option_is_checked_and_explained(mariadb_primary, session_for):
    """mariadb_primary: a heartbeat_table that is no table name, and one that does not exist."""
    bad = session_for(make_target(mariadb_primary.dsn(), heartbeat_table="x; DROP TABLE y"))
    snapshot = await collect(MySQLCollector(bad.target, bad))
    assert snapshot.ok and snapshot.fact(Heartbeat) is None
    assert any("is not a table name like percona.heartbeat" in note for note in snapshot.notes)
    missing = session_for(make_target(mariadb_primary.dsn(), heartbeat_table="nowhere.heartbeat"))
    snapshot = await collect(MySQLCollector(missing.target, missing))
    assert any("cannot read heartbeat table nowhere.heartbeat" in note for note in snapshot.notes)


async def test_heartbeat_utc_reads_a_utc_timestamp_whatever_the_server_time_zone(mariadb_scratch, session_for):
    """mariadb_scratch with time_zone = '+05:00': pt-heartbeat --utc wrote a UTC timestamp 4 s ago."""
    mariadb_scratch.sql("SET GLOBAL time_zone = '+05:00'; CREATE DATABASE percona; CREATE TABLE percona.heartbeat "
                        "(ts varchar(26) NOT NULL, server_id int unsigned NOT NULL PRIMARY KEY); INSERT INTO "
                        "percona.heartbeat VALUES (UTC_TIMESTAMP(6) - INTERVAL 4 SECOND, 1)")
    utc = session_for(make_target(mariadb_scratch.dsn(), heartbeat_table="percona.heartbeat", heartbeat_utc=True))
    assert 3.9 < (await collect(MySQLCollector(utc.target, utc))).fact(Heartbeat).lag_seconds < 6
    local = session_for(make_target(mariadb_scratch.dsn(), heartbeat_table="percona.heartbeat"))
    lag = (await collect(MySQLCollector(local.target, local))).fact(Heartbeat).lag_seconds
    assert 5 * 3600 < lag < 5 * 3600 + 6  # read as local time: off by the zone, which is what the option is for


# -- performance_schema digests -----------------------------------------------------------------------


def digest_of(server: MariaDBServer, fragment: str) -> str:
    [digest] = server.sql("SELECT DIGEST FROM performance_schema.events_statements_summary_by_digest "
                      f"WHERE DIGEST_TEXT LIKE '%{fragment}%' AND DIGEST_TEXT NOT LIKE '%DIGEST_TEXT%'").split()
    return digest


async def test_statement_run_n_times_between_collections_has_a_calls_delta_of_exactly_n(mariadb_primary,
                                                                                        session_for):
    """mariadb_primary: a statement unique to this run, executed 37 times between two collections."""
    table = f"delta_{uuid.uuid4().hex[:8]}"
    mariadb_primary.sql(f"CREATE DATABASE IF NOT EXISTS t; CREATE TABLE t.{table} (id int)")
    session = session_for(make_target(mariadb_primary.dsn()))
    collector = MySQLStatementsCollector(session.target, session)
    assert (await collect(collector)).fact(Statements) == Statements()  # the first reading is a baseline
    mariadb_primary.sql(f"SELECT COUNT(*) FROM {table};\n" * 37, database="t")
    second = await collect(collector)
    digest = digest_of(mariadb_primary, f"FROM `{table}`")
    [row] = [s for s in second.fact(Statements) if s.queryid == digest]
    assert row.delta_calls == 37 and row.calls == 37 and row.datname == "t"
    assert row.delta_rows_sent == 37 and row.delta_rows == 37
    assert row.delta_time_seconds > 0 and row.interval_seconds > 0 and row.mean_time_seconds > 0
    assert table in row.query
    assert second.family("mysql_perf_schema_events_statements_total").value(digest=digest) == 37
    assert second.family("mysql_perf_schema_events_statements_seconds_total").value(digest=digest) > 0


async def test_truncated_digest_table_counts_recreated_rows_from_zero(mariadb_primary, session_for):
    """mariadb_primary: TRUNCATE of events_statements_summary_by_digest between collections; a full scan
    (no index) is counted in no_index_used."""
    table = f"trunc_{uuid.uuid4().hex[:8]}"
    mariadb_primary.sql(f"CREATE DATABASE IF NOT EXISTS t; CREATE TABLE t.{table} (id int); "
                        f"INSERT INTO t.{table} VALUES (1), (2), (3)")
    probe = f"SELECT id FROM {table} WHERE id > 1;\n"
    mariadb_primary.sql(probe * 10, database="t")
    session = session_for(make_target(mariadb_primary.dsn()))
    collector = MySQLStatementsCollector(session.target, session)
    await collect(collector)
    time.sleep(1.1)  # FIRST_SEEN has whole seconds: the re-created row must show a new one
    mariadb_primary.sql("TRUNCATE TABLE performance_schema.events_statements_summary_by_digest")
    mariadb_primary.sql(probe * 3, database="t")
    after = await collect(collector)
    [row] = [s for s in after.fact(Statements) if s.queryid == digest_of(mariadb_primary, f"FROM `{table}`")]
    assert row.delta_calls == 3 and row.calls == 3  # 10 -> 3: a new row, not -7
    assert row.delta_no_index_used == 3 and row.delta_rows_examined == 9 and row.delta_rows_sent == 6
    assert all(s.delta_calls > 0 and s.delta_time_seconds >= 0 for s in after.fact(Statements))


async def test_top_n_cap_keeps_n_series_and_sums_the_rest_into_other(mariadb_primary, session_for):
    """mariadb_primary: three slow statement shapes (SLEEP) dominate total time; top_n = 3."""
    mariadb_primary.sql("SELECT SLEEP(0.3) AS cap_a; SELECT SLEEP(0.3) AS cap_b, 1; SELECT SLEEP(0.3) AS cap_c, 1, 2")
    session = session_for(make_target(mariadb_primary.dsn(), top_n=3))
    snapshot = await collect(MySQLStatementsCollector(session.target, session))
    calls = snapshot.family("mysql_perf_schema_events_statements_total")
    assert len(calls.samples) == 4
    by_digest = {labels[1]: (labels, value) for labels, value in calls.samples}
    other_labels, other_calls = by_digest.pop("other")
    assert other_labels == ("", "other", "") and other_calls > 0
    expected = {digest_of(mariadb_primary, f"`cap_{x}`") for x in "abc"}
    assert set(by_digest) == expected
    assert all("SLEEP" in labels[2] and len(labels[2]) <= 200 for labels, _ in by_digest.values())
    total = snapshot.family("dbwatch_mysql_perf_schema_digests").value()
    assert total > 4


async def test_performance_schema_off_is_a_note_and_the_rest_carries_on(mariadb_scratch, session_for):
    """mariadb_scratch (performance_schema OFF)."""
    session = session_for(make_target(mariadb_scratch.dsn()))
    statements = await collect(MySQLStatementsCollector(session.target, session))
    assert statements.fact(Statements) == Statements() and statements.families == []
    assert statements.notes == [
        "performance_schema is OFF, so statement digests are not collected: set performance_schema = ON under "
        "[mysqld] in the server's configuration and restart the server (it is not dynamic)"]
    core = await collect(MySQLCollector(session.target, session))
    assert core.family("mysql_up").value() == 1 and core.notes == []


# -- least privilege ----------------------------------------------------------------------------------


async def test_least_privilege_user_collects_everything_and_a_plain_user_is_told_what_to_grant(
        mariadb_primary, mariadb_replica, session_for, monkeypatch):
    """mariadb_primary and mariadb_replica (users created on the primary replicate): watcher has PROCESS,
    REPLICATION CLIENT (BINLOG MONITOR), SLAVE MONITOR and SELECT ON performance_schema.*; nomon lacks SLAVE
    MONITOR; plain has nothing."""
    mariadb_primary.sql(
        "CREATE USER IF NOT EXISTS watcher@'%' IDENTIFIED BY 'w-secret';"
        "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO watcher@'%';"
        "GRANT SELECT ON performance_schema.* TO watcher@'%';"
        "CREATE USER IF NOT EXISTS nomon@'%' IDENTIFIED BY 'w-secret';"
        "GRANT PROCESS, REPLICATION CLIENT ON *.* TO nomon@'%'; GRANT SELECT ON performance_schema.* TO nomon@'%';"
        "CREATE USER IF NOT EXISTS plain@'%' IDENTIFIED BY 'w-secret';")
    monkeypatch.setenv("T_MYPW", "w-secret")
    await _wait_for_user(mariadb_replica, "plain")
    for server in (mariadb_primary, mariadb_replica):
        results = {}
        for user in ("root", "watcher", "nomon", "plain"):
            extra = {} if user == "root" else {"password_env": "T_MYPW"}
            session = session_for(make_target(server.dsn(user), **extra))
            results[user] = (await collect(MySQLCollector(session.target, session)),
                             await collect(MySQLStatementsCollector(session.target, session)))
        (core, statements), (root_core, root_statements) = results["watcher"], results["root"]
        assert core.notes == [] and statements.notes == []
        assert names(core) == names(root_core) and names(statements) == names(root_statements)
        assert core.family("mysql_info_schema_processlist_processes_by_user").value(mysql_user="root") >= 1
        assert len(core.fact(Channels)) == (1 if server is mariadb_replica else 0)

        nomon_core, nomon_statements = results["nomon"]
        assert nomon_core.ok and nomon_statements.notes == []
        assert nomon_core.notes == [
            "user nomon@% may not read the replication status, so replication is not monitored; run GRANT "
            "SLAVE MONITOR ON *.* TO 'nomon'@'%';"]

        plain_core, plain_statements = results["plain"]
        assert plain_core.ok and plain_statements.ok and plain_statements.fact(Statements) == Statements()
        seen = {labels[0] for labels, _ in plain_core.family("mysql_info_schema_processlist_processes_by_user").samples}
        assert seen == {"plain"}  # without PROCESS, only its own session
        assert any("lacks PROCESS" in n and "GRANT PROCESS ON *.* TO 'plain'@'%';" in n for n in plain_core.notes)
        assert any("GRANT SLAVE MONITOR ON *.* TO 'plain'@'%';" in n for n in plain_core.notes)
        assert plain_statements.notes == [
            "user plain@% may not read performance_schema, so statement digests are not collected; run GRANT "
            "SELECT ON performance_schema.* TO 'plain'@'%';"]


async def _wait_for_user(server: MariaDBServer, user: str) -> None:
    await wait_until(lambda: server.sql(f"SELECT COUNT(*) FROM mysql.user WHERE user = '{user}'") == "1", 10,
                     f"user {user} on the replica", interval=0.1)


# -- failures -----------------------------------------------------------------------------------------


async def test_wrong_password_fails_without_showing_the_password(mariadb_primary, session_for, monkeypatch):
    """mariadb_primary: user watcher2 with a password; the wrong one, then the right one (read at connect)."""
    mariadb_primary.sql("CREATE USER IF NOT EXISTS watcher2@'%' IDENTIFIED BY 'hunter2-very-secret'")
    monkeypatch.setenv("T_MYPW2", "wrong-password-here")
    session = session_for(make_target(mariadb_primary.dsn("watcher2"), password_env="T_MYPW2"))
    collector = MySQLCollector(session.target, session)
    with pytest.raises(CollectorError, match=r"Access denied for user 'watcher2'.*\(error 1045\)") as wrong:
        await collect(collector)
    assert "wrong-password" not in str(wrong.value) and "hunter2" not in str(wrong.value)
    with pytest.raises(CollectorError, match="reconnect backoff"):
        await collect(collector)  # no hammering: the next attempt waits
    monkeypatch.setenv("T_MYPW2", "hunter2-very-secret")  # rotated: read again at the next connect
    session.record_success()
    assert (await collect(collector)).family("mysql_up").value() == 1
    # A password written into the DSN by mistake (the config refuses it) is not echoed either.
    leaky = session_for(make_target(f"mysql://watcher2:hunter2-in-dsn@127.0.0.1:{mariadb_primary.port}/"))
    with pytest.raises(CollectorError) as denied:
        await collect(MySQLCollector(leaky.target, leaky))
    assert "hunter2" not in str(denied.value) and "cannot connect to 127.0.0.1" in str(denied.value)


async def test_server_down_is_mysql_up_0_and_the_session_reconnects(mariadb_scratch):
    """mariadb_scratch (own server): collected through TargetJobs (as the daemon does), stopped, started."""
    config = parse_config(f"""
targets:
  - name: scratch
    engine: mysql
    host: 127.0.0.1
    port: {mariadb_scratch.port}
    user: root
    timeout: 3s
""", "t.yaml", {})
    target = config.resolved_targets()[0]
    assert target.dsn == f"mysql://root@127.0.0.1:{mariadb_scratch.port}/"
    jobs = TargetJobs(target)
    try:
        assert jobs.up_collector == "mysql"
        up = await jobs.collect("mysql")
        assert up.ok and up.family("mysql_up").value() == 1
        mariadb_scratch.stop()
        down = await jobs.collect("mysql")
        assert not down.ok and "lost" in down.error
        assert down.family("mysql_up").samples == [((), 0.0)]
        assert down.family("dbwatch_target_up").value() == 0  # what the TargetDown rule reads
        refused = await jobs.collect("statements")
        assert not refused.ok and "cannot connect" in refused.error and refused.family("mysql_up") is None
        mariadb_scratch.start()
        jobs.session.record_success()  # skip the backoff wait
        again = await jobs.collect("mysql")
        assert again.ok and again.family("mysql_up").value() == 1
    finally:
        await jobs.close()


def test_example_config_mysql_target_is_valid_once_uncommented():
    lines = (ROOT / "config.example.yaml").read_text().splitlines()
    start = lines.index("  # - name: local-mysql")
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append("  " + line[4:])
    [target] = parse_config("targets:\n" + "\n".join(block) + "\n", "example", {}).resolved_targets()
    assert target.engine == "mysql" and target.dsn == "mysql://root@127.0.0.1:3306/"
    assert set(target.collectors) == {"mysql", "statements", "migrations"}
    assert target.collectors["statements"].options == StatementsOptions(top_n=100, query_text_length=200)


def test_mysql_targets_parse_with_either_scheme_and_defaults():
    config = parse_config("""
targets:
  - name: a
    engine: mysql
    dsn: mariadb://dbwatch@db1:3307/app
    collectors: {mysql: {heartbeat_table: percona.heartbeat}, statements: {top_n: 20}}
  - name: b
    engine: mysql
    host: db2
    user: dbwatch
""", "t.yaml", {})
    a, b = config.resolved_targets()
    assert a.collectors["mysql"].options == MySQLOptions(heartbeat_table="percona.heartbeat")
    assert a.collectors["statements"].options == StatementsOptions(top_n=20) and a.collectors["statements"].interval == 60
    assert b.dsn == "mysql://dbwatch@db2:3306/"
    session = MySQLSession(a)
    assert (session.host, session.port, session.user, session.database) == ("db1", 3307, "dbwatch", "app")


# -- MySQL 8 syntax, on recorded rows -----------------------------------------------------------------
# No MySQL server can be had on this machine (Debian ships MariaDB only), so MySQL's spelling is checked on
# rows in the documented shape of MySQL 8.0's SHOW REPLICA STATUS and SHOW GLOBAL STATUS.

MYSQL8_REPLICA_ROW = {
    "Replica_IO_State": "Waiting for source to send event", "Source_Host": "10.0.0.5", "Source_User": "repl",
    "Source_Port": 3306, "Connect_Retry": 60, "Source_Log_File": "binlog.000012", "Read_Source_Log_Pos": 4711,
    "Relay_Log_File": "relay.000003", "Relay_Log_Pos": 900, "Relay_Source_Log_File": "binlog.000012",
    "Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Last_Errno": 0, "Last_Error": "",
    "Exec_Source_Log_Pos": 4500, "Relay_Log_Space": 1200, "Seconds_Behind_Source": 3, "Last_IO_Errno": 0,
    "Last_IO_Error": "", "Last_SQL_Errno": 0, "Last_SQL_Error": "", "Source_Server_Id": 1,
    "Source_UUID": "3e11fa47-71ca-11e1-9e33-c80aa9429562", "SQL_Delay": 0, "SQL_Remaining_Delay": None,
    "Replica_SQL_Running_State": "Replica has read all relay log; waiting for more updates",
    "Retrieved_Gtid_Set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42:50-60",
    "Executed_Gtid_Set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-58,\nc2c9c6ff-0000-11e1-9e33-c80aa9429562:1-5",
    "Auto_Position": 1, "Channel_Name": "", "Source_TLS_Version": "",
}


def test_mysql8_replica_status_is_exported_with_mysqld_exporter_master_slave_names():
    assert sql.replication_sql(False, (8, 0, 22)) == "SHOW REPLICA STATUS"
    assert sql.replication_sql(False, (8, 0, 21)) == "SHOW SLAVE STATUS"
    assert sql.replication_sql(True, (10, 11, 6)) == "SHOW ALL SLAVES STATUS"
    server = ServerInfo(version="8.0.36", version_tuple=(8, 0, 36), flavor="mysql", version_comment="MySQL",
                        user="dbwatch@%", server_id=2, privileges=frozenset())
    channel = fams.channel_of(MYSQL8_REPLICA_ROW, server, Gtid("", "", ""))
    assert channel.io_running and channel.sql_running and channel.seconds_behind_master == 3
    assert channel.master_host == "10.0.0.5" and channel.using_gtid == "1"
    assert "\n" not in channel.gtid_executed
    families = {f.name: f for f in fams.replication_families([MYSQL8_REPLICA_ROW], [channel])}
    labels = ("", "", "10.0.0.5", "3e11fa47-71ca-11e1-9e33-c80aa9429562")
    assert families["mysql_slave_status_seconds_behind_master"].samples == [(labels, 3.0)]
    assert families["mysql_slave_status_slave_io_running"].samples == [(labels, 1.0)]
    assert families["mysql_slave_status_exec_master_log_pos"].samples == [(labels, 4500.0)]
    assert families["dbwatch_mysql_slave_status_gtid_received"].samples == [((*labels, labels[3]), 60.0)]
    assert not any("source" in name or "replica" in name for name in families)
    assert gtid_positions(fams.clean_gtid(MYSQL8_REPLICA_ROW["Executed_Gtid_Set"])) == {
        "3e11fa47-71ca-11e1-9e33-c80aa9429562": 58, "c2c9c6ff-0000-11e1-9e33-c80aa9429562": 5}
    assert gtid_positions("0-1-42,1-3-7") == {"0": 42, "1": 7}


def test_global_status_is_grouped_like_mysqld_exporter():
    families = {f.name: f for f in fams.status_families({
        "Com_select": "12", "Handler_read_rnd_next": "5", "Innodb_rows_read": "40",
        "Innodb_buffer_pool_pages_data": "100", "Innodb_buffer_pool_pages_dirty": "3",
        "Innodb_buffer_pool_pages_total": "512", "Innodb_buffer_pool_pages_flushed": "9",
        "Connection_errors_max_connections": "2", "Threads_connected": "7", "Ssl_cipher": "",
        "Rpl_status": "AUTH_MASTER", "Slave_running": "OFF"})}
    assert families["mysql_global_status_commands_total"].samples == [(("select",), 12.0)]
    assert families["mysql_global_status_handlers_total"].samples == [(("read_rnd_next",), 5.0)]
    assert families["mysql_global_status_innodb_row_ops_total"].samples == [(("read",), 40.0)]
    assert families["mysql_global_status_buffer_pool_pages"].samples == [(("data",), 100.0)]
    assert families["mysql_global_status_buffer_pool_dirty_pages"].value() == 3
    assert families["mysql_global_status_buffer_pool_page_changes_total"].samples == [(("flushed",), 9.0)]
    assert families["mysql_global_status_connection_errors_total"].value(error="max_connections") == 2
    assert families["mysql_global_status_threads_connected"].value() == 7
    assert families["mysql_global_status_slave_running"].value() == 0
    assert "mysql_global_status_ssl_cipher" not in families and "mysql_global_status_rpl_status" not in families
