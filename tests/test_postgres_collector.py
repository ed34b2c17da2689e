"""The PostgreSQL collectors against real servers: the session's throwaway PostgreSQL 15 primary with
pg_stat_statements preloaded, its streaming standby, and, where a test breaks a server, one of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest

from dbwatch.agent.jobs import TargetJobs
from dbwatch.agent.model import CollectorSettings, Snapshot, Target
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.pg_statements import StatementsCollector
from dbwatch.collectors.postgres import PostgresCollector, PostgresSession
from tests.pgcluster import BIN


def make_target(dsn: str, top_n: int = 100, timeout: float = 5, **extra) -> Target:
    return Target(
        name="t", engine="postgres", dsn=dsn, labels={},
        collectors={"postgres": CollectorSettings(15, timeout),
                    "statements": CollectorSettings(60, timeout, {"top_n": top_n, "query_text_length": 200})},
        **extra,
    )


async def collect(collector) -> Snapshot:
    snapshot = Snapshot(target="t", engine="postgres", collector=collector.name, started_at=time.time())
    await collector.collect(snapshot)
    return snapshot


@pytest.fixture
async def session_for():
    sessions = []

    def make(target: Target) -> PostgresSession:
        session = PostgresSession(target)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


def calls_of(snapshot: Snapshot, marker: str) -> list:
    return [s for s in snapshot.facts["statements"] if s.query and marker in s.query]


async def test_statement_run_n_times_between_collections_has_a_calls_delta_of_exactly_n(pg_primary, session_for):
    session = session_for(make_target(pg_primary.dsn()))
    collector = StatementsCollector(session.target, session)
    table = f"delta_{uuid.uuid4().hex[:8]}"
    pg_primary.psql(f"CREATE TABLE {table} (id int)")
    await collect(collector)  # baseline
    pg_primary.psql(f"SELECT count(*) FROM {table};\n" * 37)
    second = await collect(collector)
    [row] = [s for s in second.facts["statements"] if table in (s.query or "") and s.query.startswith("SELECT")]
    assert row.delta_calls == 37
    assert row.delta_time_seconds >= 0 and row.interval_seconds > 0


async def test_reset_between_collections_gives_no_negative_delta(pg_primary, session_for):
    session = session_for(make_target(pg_primary.dsn()))
    collector = StatementsCollector(session.target, session)
    pg_primary.psql("SELECT 1;\n" * 20)
    await collect(collector)
    pg_primary.psql("SELECT pg_stat_statements_reset()")
    pg_primary.psql("SELECT 2;\n" * 3)
    after_reset = await collect(collector)
    assert after_reset.facts["statements"] == []  # stats_reset changed: a re-baseline, not deltas
    pg_primary.psql("SELECT 3;\n" * 5)
    later = await collect(collector)
    assert later.facts["statements"], "deltas resume after the re-baseline"
    assert all(s.delta_calls > 0 and s.delta_time_seconds >= 0 and s.delta_rows >= 0
               for s in later.facts["statements"])


async def test_top_n_cap_keeps_n_series_and_sums_the_rest_into_other(pg_primary, session_for):
    session = session_for(make_target(pg_primary.dsn(), top_n=5))
    collector = StatementsCollector(session.target, session)
    pg_primary.psql("".join(f"SELECT {i} AS c{i};\n" for i in range(12)))
    total = "SELECT sum(calls) FROM pg_stat_statements(false)"
    before = float(pg_primary.psql(total))
    snapshot = await collect(collector)
    after = float(pg_primary.psql(total))
    calls = snapshot.family("pg_stat_statements_calls_total")
    queryids = [labels[0] for labels, _ in calls.samples]
    assert len(queryids) == 6 and queryids.count("other") == 1
    # Nothing is lost in the cap: the top 5 plus "other" add up to every call the server had counted.
    assert before <= sum(v for _, v in calls.samples) <= after
    texts = snapshot.family("pg_stat_statements_query_id")
    assert {labels[0] for labels, _ in texts.samples} == set(queryids) - {"other"}


async def test_missing_extension_is_a_note_with_the_command_not_an_error(pg_primary, session_for):
    pg_primary.psql("CREATE DATABASE IF NOT EXISTS noext" if False else
                    "SELECT 'CREATE DATABASE noext' WHERE NOT EXISTS "
                    "(SELECT FROM pg_database WHERE datname = 'noext')\\gexec")
    session = session_for(make_target(pg_primary.dsn(database="noext")))
    snapshot = await collect(StatementsCollector(session.target, session))
    assert snapshot.ok and snapshot.facts["statements"] == []
    assert snapshot.notes == ["pg_stat_statements is not installed in database noext: run "
                              "CREATE EXTENSION pg_stat_statements;"]


async def test_primary_and_standby_both_report_replication(pg_primary, pg_standby, session_for):
    pg_primary.psql("CREATE TABLE IF NOT EXISTS repl_probe (x int); INSERT INTO repl_probe VALUES (1)")
    primary_session = session_for(make_target(pg_primary.dsn()))
    standby_session = session_for(make_target(pg_standby.dsn()))
    deadline = time.monotonic() + 20
    while True:
        primary = await collect(PostgresCollector(primary_session.target, primary_session))
        if primary.family("pg_stat_replication_pg_wal_lsn_diff").samples or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    [(labels, lag_bytes)] = primary.family("pg_stat_replication_pg_wal_lsn_diff").samples
    assert labels[2] == "streaming" and lag_bytes >= 0
    kinds = {labels[2] for labels, _ in primary.family("dbwatch_pg_replication_lag_seconds").samples}
    assert kinds == {"write", "flush", "replay"}
    assert primary.family("pg_replication_is_replica").samples[0][1] == 0

    standby = await collect(PostgresCollector(standby_session.target, standby_session))
    assert standby.family("pg_replication_is_replica").samples[0][1] == 1
    assert standby.family("dbwatch_pg_wal_receiver_up").samples == [(("streaming",), 1.0)]
    assert standby.family("pg_replication_lag_seconds").samples[0][1] >= 0
    assert standby.facts["summary"]["role"] == "standby"


async def test_pg_monitor_role_collects_everything_and_a_plain_role_is_told_what_to_grant(pg_primary, session_for):
    pg_primary.psql("DROP ROLE IF EXISTS watcher; CREATE ROLE watcher LOGIN; GRANT pg_monitor TO watcher;"
                    "DROP ROLE IF EXISTS plain; CREATE ROLE plain LOGIN;")
    monitor = session_for(make_target(pg_primary.dsn(user="watcher")))
    core = await collect(PostgresCollector(monitor.target, monitor))
    statements = await collect(StatementsCollector(monitor.target, monitor))
    assert core.notes == [] and statements.notes == []
    assert core.family("pg_database_size_bytes").samples
    assert core.family("pg_stat_activity_count").samples
    assert statements.family("pg_stat_statements_query_id").samples

    plain = session_for(make_target(pg_primary.dsn(user="plain")))
    limited = await collect(PostgresCollector(plain.target, plain))
    assert any("GRANT pg_monitor TO plain" in note for note in limited.notes)


async def test_unreachable_server_error_never_shows_the_password_and_reconnects(pg_scratch, session_for, monkeypatch):
    pg_scratch.psql("CREATE ROLE secretive LOGIN PASSWORD 'hunter2-very-secret'")
    hba = pg_scratch.data / "pg_hba.conf"
    hba.write_text("host all secretive 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg_scratch.psql("SELECT pg_reload_conf()")
    monkeypatch.setenv("T_PGPW", "hunter2-very-secret")
    target = make_target(pg_scratch.dsn(user="secretive"), password_env="T_PGPW")
    jobs = TargetJobs(target)
    try:
        assert (await jobs.collect("postgres")).ok
        pg_scratch.stop()
        failed = await jobs.collect("postgres")
        assert not failed.ok and "hunter2" not in failed.error
        assert failed.families[0].name == "pg_up" and failed.families[0].samples[0][1] == 0
        monkeypatch.setenv("T_PGPW", "wrong-password-here")
        pg_scratch.start()
        jobs.session.record_success()  # skip the backoff wait
        wrong = await jobs.collect("postgres")
        assert "password authentication failed" in wrong.error and "wrong-password" not in wrong.error
        monkeypatch.setenv("T_PGPW", "hunter2-very-secret")  # rotated back: read again at connect
        jobs.session.record_success()
        assert (await jobs.collect("postgres")).ok
    finally:
        await jobs.close()


async def test_statements_blocked_by_a_lock_fail_fast_with_the_lock_timeout(pg_primary, session_for):
    holder = subprocess.Popen(
        [str(BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg_primary.port), "-U", "postgres"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )
    # As ALTER EXTENSION pg_stat_statements UPDATE would: hold its info view exclusively.
    holder.stdin.write("BEGIN; LOCK TABLE pg_stat_statements_info IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30);\n")
    holder.stdin.flush()
    try:
        for _ in range(100):
            if pg_primary.psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                               "AND relation = 'pg_stat_statements_info'::regclass") == "1":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the lock holder never got its lock")
        session = session_for(make_target(pg_primary.dsn(), timeout=10))
        began = time.monotonic()
        with pytest.raises(CollectorError, match="lock timeout"):
            await collect(StatementsCollector(session.target, session))
        assert time.monotonic() - began < 5
    finally:
        holder.kill()
        holder.wait()
