"""The PostgreSQL collectors against real servers, driven directly (no daemon): the session's throwaway
PostgreSQL 15 primary with pg_stat_statements preloaded (``pg_primary``), its streaming standby
(``pg_standby``), and, where a test stops or restarts a server, a throwaway server of its own
(``pg_scratch``). Each test's docstring names the servers it uses.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from dbwatch.model import CollectorSettings, Snapshot, Target
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.options import StatementsOptions
from dbwatch.collectors.pg_statements import StatementsCollector
from dbwatch.collectors.postgres import PostgresCollector
from dbwatch.model.facts.statements import Statements
from dbwatch.model.facts.postgres import Replicas, Settings, Standby
from dbwatch.model.facts.common import Summary
from tests.pgcluster import BIN, PostgresServer
from tests.helpers import collect, collect_until, free_port, wait_for


def make_target(dsn: str, top_n: int = 100, timeout: float = 5, **extra) -> Target:
    return Target(
        name="t", engine="postgres", dsn=dsn, labels={},
        collectors={"postgres": CollectorSettings(15, timeout),
                    "statements": CollectorSettings(60, timeout, StatementsOptions(top_n=top_n))},
        **extra,
    )


def queryid_of(server: PostgresServer, fragment: str) -> int:
    [queryid] = {int(q) for q in server.psql(
        f"SELECT queryid FROM pg_stat_statements WHERE query LIKE '%{fragment}%' AND query NOT LIKE '%queryid%'"
    ).split()}
    return queryid


def deltas_of(snapshot: Snapshot, queryid: int) -> list:
    return [s for s in snapshot.fact(Statements) if s.queryid == queryid]


# -- pg_stat_statements: deltas and resets ------------------------------------------------------------


async def test_statement_run_n_times_between_collections_has_a_calls_delta_of_exactly_n(pg_primary, session_for):
    """pg_primary: a statement unique to this run, executed 37 times between two collections."""
    session = session_for(make_target(pg_primary.dsn()))
    collector = StatementsCollector(session.target, session)
    table = f"delta_{uuid.uuid4().hex[:8]}"
    pg_primary.psql(f"CREATE TABLE {table} (id int)")
    await collect(collector)  # baseline
    pg_primary.psql(f"SELECT count(*) FROM {table};\n" * 37)
    second = await collect(collector)
    [row] = deltas_of(second, queryid_of(pg_primary, f"count(*) FROM {table}"))
    assert row.delta_calls == 37 and row.calls == 37
    assert row.delta_time_seconds >= 0 and row.interval_seconds > 0
    assert row.user == "postgres" and row.datname == "postgres"


async def test_global_reset_between_collections_rebaselines_without_negative_deltas(pg_primary, session_for):
    """pg_primary: pg_stat_statements_reset() between two collections (stats_reset changes)."""
    session = session_for(make_target(pg_primary.dsn()))
    collector = StatementsCollector(session.target, session)
    pg_primary.psql("SELECT 1;\n" * 20)
    await collect(collector)
    pg_primary.psql("SELECT pg_stat_statements_reset()")
    pg_primary.psql("SELECT 2;\n" * 3)
    after_reset = await collect(collector)
    assert after_reset.fact(Statements) == Statements()  # a re-baseline, not deltas
    pg_primary.psql("SELECT 3;\n" * 5)
    later = await collect(collector)
    assert later.fact(Statements), "deltas resume after the re-baseline"
    assert all(s.delta_calls > 0 and s.delta_time_seconds >= 0 and s.delta_rows >= 0
               and s.delta_shared_blks_hit >= 0 and s.delta_shared_blks_read >= 0
               for s in later.fact(Statements))


async def test_one_entry_reset_rebaselines_that_row_only(pg_primary, session_for):
    """pg_primary: one statement's entry reset (its counters fall) while another keeps counting."""
    session = session_for(make_target(pg_primary.dsn()))
    collector = StatementsCollector(session.target, session)
    tag = uuid.uuid4().hex[:8]
    pg_primary.psql(f"CREATE TABLE a_{tag} (x int); CREATE TABLE b_{tag} (x int)")
    a, b = f"SELECT count(*) FROM a_{tag};\n", f"SELECT count(*) FROM b_{tag};\n"
    pg_primary.psql(a * 10 + b * 10)
    first, other = queryid_of(pg_primary, f"FROM a_{tag}"), queryid_of(pg_primary, f"FROM b_{tag}")
    await collect(collector)
    pg_primary.psql(f"SELECT pg_stat_statements_reset(0, 0, {first})")  # stats_reset stays: a partial reset
    pg_primary.psql(a * 3 + b * 4)
    after = await collect(collector)
    assert deltas_of(after, first) == []  # 10 -> 3: re-baselined, not -7
    assert [s.delta_calls for s in deltas_of(after, other)] == [4]
    pg_primary.psql(a * 2)
    assert [s.delta_calls for s in deltas_of(await collect(collector), first)] == [2]


async def test_server_restart_rebaselines_and_the_session_reconnects(pg_scratch, session_for):
    """pg_scratch (own server): restarted between collections; pg_stat_statements keeps its counters."""
    pg_scratch.psql("CREATE EXTENSION pg_stat_statements; CREATE TABLE restarted (x int)")
    session = session_for(make_target(pg_scratch.dsn()))
    collector = StatementsCollector(session.target, session)
    probe = "SELECT count(*) FROM restarted;\n"
    pg_scratch.psql(probe * 5)
    await collect(collector)
    pg_scratch.restart()
    with pytest.raises(CollectorError, match="connection to .* lost"):
        await collect(collector)  # the old connection is gone; the next collection reconnects
    pg_scratch.psql(probe * 5)
    after = await collect(collector)
    assert after.fact(Statements) == Statements()  # new postmaster start time: re-baselined
    pg_scratch.psql(probe * 2)
    assert [s.delta_calls for s in deltas_of(await collect(collector), queryid_of(pg_scratch, "FROM restarted"))] == [2]


async def test_top_n_cap_keeps_n_series_and_sums_the_rest_into_other(pg_primary, session_for):
    """pg_primary: > 5 statements, top_n=5, collected by a role whose own statements are not tracked
    (ALTER ROLE ... SET pg_stat_statements.track = none) so the server's table can be compared exactly."""
    pg_primary.psql("DROP ROLE IF EXISTS capper; CREATE ROLE capper LOGIN; GRANT pg_monitor TO capper;"
                    "ALTER ROLE capper SET pg_stat_statements.track = none")
    session = session_for(make_target(pg_primary.dsn(user="capper"), top_n=5))
    tag = uuid.uuid4().hex[:8]
    pg_primary.psql("".join(f"CREATE TABLE cap{i}_{tag} (x int); SELECT count(*) FROM cap{i}_{tag};\n"
                            for i in range(12)))  # 24 distinct statements (constants would fold into one)
    snapshot = await collect(StatementsCollector(session.target, session))
    server = {}  # (queryid, user, datname) -> calls, top-level and nested rows merged like the collector
    for line in pg_primary.psql(
            "SELECT s.queryid, r.rolname, d.datname, sum(s.calls) FROM pg_stat_statements(false) s "
            "JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid "
            "WHERE s.queryid IS NOT NULL GROUP BY 1, 2, 3").splitlines():
        queryid, user, datname, calls = line.split("|")
        server[(queryid, user, datname)] = float(calls)
    calls = {labels: value for labels, value in snapshot.family("pg_stat_statements_calls_total").samples}
    assert len(calls) == 6
    other = calls.pop(("other", "", ""))
    assert all(server[key] == value for key, value in calls.items())  # the 5 are the server's own rows
    assert other == sum(value for key, value in server.items() if key not in calls)
    texts = snapshot.family("pg_stat_statements_query_id")
    assert {labels[0] for labels, _ in texts.samples} == {key[0] for key in calls}
    assert all(len(labels[1]) <= 200 and "\n" not in labels[1] for labels, _ in texts.samples)


async def test_missing_extension_is_a_note_with_the_command_not_an_error(pg_primary, session_for):
    """pg_primary: a database without CREATE EXTENSION pg_stat_statements (the library is preloaded)."""
    pg_primary.psql("SELECT 'CREATE DATABASE noext' WHERE NOT EXISTS "
                    "(SELECT FROM pg_database WHERE datname = 'noext')\\gexec")
    session = session_for(make_target(pg_primary.dsn(database="noext")))
    snapshot = await collect(StatementsCollector(session.target, session))
    assert snapshot.ok and snapshot.fact(Statements) == Statements()
    assert snapshot.notes == ["pg_stat_statements is not installed in database noext: run "
                              "CREATE EXTENSION pg_stat_statements;"]


async def test_extension_neither_installed_nor_preloaded_note_says_both_steps(session_for):
    """An own PostgreSQL 15, started without pg_stat_statements in shared_preload_libraries."""
    server = PostgresServer(settings={"shared_preload_libraries": "''"}).start()
    try:
        session = session_for(make_target(server.dsn()))
        snapshot = await collect(StatementsCollector(session.target, session))
    finally:
        server.destroy()
    assert snapshot.ok and snapshot.notes == [
        "pg_stat_statements is not installed in database postgres: run CREATE EXTENSION pg_stat_statements; "
        "and add pg_stat_statements to shared_preload_libraries (needs a server restart)"]


# -- the server-wide collector ------------------------------------------------------------------------


async def test_primary_and_standby_both_report_replication(pg_primary, pg_standby, session_for):
    """pg_primary and pg_standby (streaming through replication slot standby1)."""
    pg_primary.psql("CREATE TABLE IF NOT EXISTS repl_probe (x int); INSERT INTO repl_probe VALUES (1)")
    primary_session = session_for(make_target(pg_primary.dsn()))
    standby_session = session_for(make_target(pg_standby.dsn()))
    primary = await collect_until(PostgresCollector(primary_session.target, primary_session),
                                  lambda s: s.fact(Replicas) and s.fact(Replicas)[0].state == "streaming", 20,
                                  "the standby in pg_stat_replication")
    [(labels, lag_bytes)] = primary.family("pg_stat_replication_pg_wal_lsn_diff").samples
    assert labels[2:] == ("streaming", "standby1") and lag_bytes >= 0
    kinds = {labels[2] for labels, _ in primary.family("dbwatch_pg_replication_lag_seconds").samples}
    assert kinds == {"write", "flush", "replay"}
    assert primary.family("pg_replication_is_replica").value() == 0
    assert primary.family("pg_replication_slots_active").value(slot_name="standby1") == 1
    assert primary.family("pg_replication_slots_pg_wal_lsn_diff").value(slot_name="standby1") >= 0
    assert primary.fact(Standby) is None

    standby = await collect(PostgresCollector(standby_session.target, standby_session))
    assert standby.family("pg_replication_is_replica").value() == 1
    assert standby.family("dbwatch_pg_wal_receiver_up").samples == [(("streaming",), 1.0)]
    assert standby.family("pg_replication_lag_seconds").value() >= 0
    assert standby.family("dbwatch_pg_replay_lag_bytes").value() >= 0
    assert standby.fact(Standby).receiver_status == "streaming" and standby.fact(Replicas) == Replicas()
    assert standby.fact(Summary)["role"] == "standby"


async def test_core_metrics_use_postgres_exporter_names_labels_and_units(pg_primary, session_for):
    """pg_primary (shared_buffers = 32MB)."""
    session = session_for(make_target(pg_primary.dsn()))
    snapshot = await collect(PostgresCollector(session.target, session))
    assert snapshot.family("pg_up").value() == 1
    assert snapshot.family("pg_settings_shared_buffers_bytes").value() == 32 * 1024**2
    assert snapshot.family("pg_settings_checkpoint_timeout_seconds").value() == 300
    assert snapshot.family("pg_settings_track_io_timing").value() == 0
    assert snapshot.family("pg_settings_max_connections").value() == snapshot.fact(Settings).max_connections
    [((version, short),  _)] = snapshot.family("pg_static").samples
    assert version.startswith("PostgreSQL 15.") and short.startswith("15.") and short.endswith(".0")
    modes = {labels[1] for labels, _ in snapshot.family("pg_locks_count").samples}
    assert "accesssharelock" in modes and len(modes) == 9  # lower case, zero-filled like postgres_exporter
    states = {labels for labels, _ in snapshot.family("pg_stat_activity_count").samples}
    assert ("postgres", "idle in transaction") in states  # zero-filled: the series exists before it matters
    assert snapshot.family("pg_stat_activity_count").value(datname="postgres", state="active") >= 1
    assert snapshot.family("pg_database_wraparound_age_datfrozenxid_seconds").value(datname="postgres") > 0
    assert 0.99 < snapshot.family("dbwatch_pg_wraparound_margin_ratio").value(datname="postgres") <= 1
    assert snapshot.family("pg_stat_bgwriter_checkpoints_timed_total") is not None
    assert snapshot.family("pg_stat_database_xact_commit").value(datname="postgres") > 0
    assert snapshot.version.startswith("15.")


async def test_pg_monitor_role_collects_everything_and_a_plain_role_is_told_what_to_grant(pg_primary, session_for):
    """pg_primary: a superuser, a role with only pg_monitor (+ CONNECT), and a role with neither."""
    pg_primary.psql("DROP ROLE IF EXISTS watcher; CREATE ROLE watcher LOGIN; GRANT pg_monitor TO watcher;"
                    "DROP ROLE IF EXISTS plain; CREATE ROLE plain LOGIN;")
    pg_primary.psql("CREATE TABLE IF NOT EXISTS watched (x int); SELECT count(*) FROM watched;")
    results = {}
    for user in ("postgres", "watcher", "plain"):
        session = session_for(make_target(pg_primary.dsn(user=user)))
        results[user] = (await collect(PostgresCollector(session.target, session)),
                         await collect(StatementsCollector(session.target, session)))

    def names(snapshot: Snapshot) -> set[str]:
        return {fam.name for fam in snapshot.families if fam.samples}

    (core, statements), (super_core, super_statements) = results["watcher"], results["postgres"]
    assert core.notes == [] and statements.notes == []
    assert names(core) == names(super_core) and names(statements) == names(super_statements)
    watched = queryid_of(pg_primary, "count(*) FROM watched")
    assert str(watched) in {labels[0] for labels, _ in statements.family("pg_stat_statements_calls_total").samples}

    limited_core, limited_statements = results["plain"]
    assert limited_core.ok and limited_statements.ok
    assert any("GRANT pg_monitor TO plain" in note and "hidden" in note for note in limited_core.notes)
    assert any("sees only its own statements" in note and "GRANT pg_monitor TO plain" in note
               for note in limited_statements.notes)


# -- failures -----------------------------------------------------------------------------------------


async def test_unreachable_server_error_never_shows_the_password_and_reconnects(pg_scratch, session_for, monkeypatch):
    """pg_scratch (own server) with a scram-sha-256 role, stopped and started again; plus a closed port."""
    pg_scratch.psql("CREATE ROLE secretive LOGIN PASSWORD 'hunter2-very-secret'")
    hba = pg_scratch.data / "pg_hba.conf"
    hba.write_text("host all secretive 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg_scratch.psql("SELECT pg_reload_conf()")
    monkeypatch.setenv("T_PGPW", "hunter2-very-secret")
    session = session_for(make_target(pg_scratch.dsn(user="secretive"), password_env="T_PGPW"))
    collector = PostgresCollector(session.target, session)
    assert (await collect(collector)).family("pg_up").value() == 1

    pg_scratch.stop()
    errors = []
    for _ in range(3):  # lost connection, refused reconnection, then the backoff itself
        with pytest.raises(CollectorError) as failed:
            await collect(collector)
        errors.append(str(failed.value))
    assert "lost" in errors[0] and "cannot connect" in errors[1] and errors[2].startswith("reconnect backoff")
    assert not any("hunter2" in error for error in errors)

    pg_scratch.start()
    session.record_success()  # skip the backoff wait
    monkeypatch.setenv("T_PGPW", "wrong-password-here")
    with pytest.raises(CollectorError, match="password authentication failed") as wrong:
        await collect(collector)
    assert "wrong-password" not in str(wrong.value)
    monkeypatch.setenv("T_PGPW", "hunter2-very-secret")  # rotated back: read again at connect
    session.record_success()
    assert (await collect(collector)).family("pg_up").value() == 1

    # A password written into the DSN by mistake is not echoed either.
    leaky = session_for(make_target(f"postgresql://secretive:hunter2-in-dsn@127.0.0.1:{free_port()}/postgres"))
    with pytest.raises(CollectorError) as refused:
        await collect(PostgresCollector(leaky.target, leaky))
    assert "hunter2" not in str(refused.value) and "cannot connect to 127.0.0.1" in str(refused.value)


async def test_statements_blocked_by_a_lock_fail_fast_with_the_lock_timeout(pg_primary, session_for):
    """pg_primary: another session holds pg_stat_statements (and its info view) in ACCESS EXCLUSIVE mode,
    as DROP/ALTER EXTENSION would. The counters are read through the function pg_stat_statements(false),
    which takes no lock; the info view is what queues behind the lock, until lock_timeout (2 s)."""
    holder = subprocess.Popen(
        [str(BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg_primary.port), "-U", "postgres"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PGAPPNAME": "lock_holder"},
    )
    holder.stdin.write("BEGIN; LOCK TABLE pg_stat_statements, pg_stat_statements_info IN ACCESS EXCLUSIVE MODE;"
                       " SELECT pg_sleep(30);\n")
    holder.stdin.flush()
    session = session_for(make_target(pg_primary.dsn(), timeout=10))
    collector = StatementsCollector(session.target, session)
    try:
        wait_for(lambda: pg_primary.psql(
            "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation IN "
            "('pg_stat_statements'::regclass, 'pg_stat_statements_info'::regclass)") == "2", 10,
            "the lock holder to get its locks")
        began = time.monotonic()
        with pytest.raises(CollectorError, match="canceling statement due to lock timeout"):
            await collect(collector)
        assert time.monotonic() - began < 4
    finally:
        # The backend sleeps on without noticing its client is gone: end it, or it keeps the locks 30 s.
        pg_primary.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lock_holder'")
        holder.kill()
        holder.wait()
    assert (await collect(collector)).ok  # the same connection carries on once the lock is gone


async def test_one_statement_run_by_two_roles_has_one_text_series(pg_scratch, session_for):
    """pg_scratch: the same statement run by two roles is two pg_stat_statements rows with one queryid; the
    text series is keyed by queryid alone, so it is exported once (twice breaks OpenMetrics' grouping)."""
    pg_scratch.psql("CREATE EXTENSION pg_stat_statements; CREATE TABLE shared_t (x int);"
                    "CREATE ROLE other_role LOGIN; GRANT SELECT ON shared_t TO other_role")
    probe = "SELECT count(*) FROM shared_t;\n"
    pg_scratch.psql(probe * 3)
    pg_scratch.psql(probe * 3, user="other_role")
    session = session_for(make_target(pg_scratch.dsn()))
    snapshot = await collect(StatementsCollector(session.target, session))
    queryid = str(queryid_of(pg_scratch, "FROM shared_t"))
    calls = [labels for labels, _ in snapshot.family("pg_stat_statements_calls_total").samples if labels[0] == queryid]
    assert len(calls) == 2  # one series per role
    texts = [labels for labels, _ in snapshot.family("pg_stat_statements_query_id").samples if labels[0] == queryid]
    assert len(texts) == 1 and "shared_t" in texts[0][1]
