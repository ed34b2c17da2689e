"""The TimescaleDB collector, its alerts and its advice against a real TimescaleDB 2.28.3.

Builds the vendored TimescaleDB once when it is not installed (tests/timescaleserver.py; skipped, with the
reason, where ../shared is absent) and starts one throwaway PostgreSQL 15 preloading it, with three
databases: ``tsdb`` (the extension and everything below), ``plain`` (no extension: nothing is exported
for it) and ``postgres``. In ``tsdb``:

- ``metrics``: 1-day chunks over 20 days, compression on, a compression policy (compress_after 7 days,
  first run tomorrow) and every chunk older than 7 days compressed by hand: a ratio, nothing to advise;
- ``readings``: a compression policy (compress_after 2 days) that has not run: 8 old chunks uncompressed;
- ``events``: no compression at all, 20 days of 1-day chunks;
- ``bigchunks``: one 30-day chunk far larger than its memory budget (lowered for the test);
- ``ticks``: an integer time dimension, with an integer compression policy and a continuous aggregate: no
  interval, lag or age in seconds, and no advice about them;
- continuous aggregates: ``metrics_hourly`` never refreshed, with a refresh policy (lagging), and
  ``metrics_daily`` refreshed up to its policy's end_offset (not lagging);
- user-defined actions: one that raises (failing), one that raised and was then paused, one not yet run;
- plain tables: ``log_lines`` (append-only, time-ordered: a hypertable candidate), ``log_shuffled`` (the same
  rows in random order), ``log_edited`` (time-ordered, 10 % updated), ``orders`` (time-ordered but its
  primary key lacks the time column: a candidate whose create_hypertable would fail, so no statement).

TimescaleDB's background jobs fail on this machine's PostgreSQL 15.20 whatever they run (``cannot drop
portal "" while it is being set up``, see ../shared/vendor/README.md), so policies here start tomorrow and
are never run by the scheduler during the test; the user-defined action fails by raising, as it would
anywhere.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_advisor import AdvisorCollector
from dbwatch.collectors.pg_schema_design import PgSchemaDesignCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.timescale import TimescaleCollector, TimescaleOptions
from dbwatch.model import CollectorSettings, Finding, Snapshot, Target
from dbwatch.model.facts.timescale import ContinuousAggregates, Hypertables, Jobs
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig, shipped_rules
from dbwatch.rules.timescale import make_rules
from tests import auditutil, timescaleserver
from tests.helpers import collect, collect_until, wait_for
from tests.pgcluster import PostgresServer

MIB = 1024**2
SETUP = """
CREATE EXTENSION timescaledb;
CREATE TABLE metrics (time timestamptz NOT NULL, device int NOT NULL, value float8);
SELECT create_hypertable('metrics', by_range('time', INTERVAL '1 day'));
INSERT INTO metrics SELECT t, d, random()
    FROM generate_series(now() - interval '20 days', now(), interval '1 minute') t,
    generate_series(1, 5) d;
ALTER TABLE metrics SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
SELECT add_compression_policy('metrics', INTERVAL '7 days', initial_start => now() + interval '1 day');
SELECT count(compress_chunk(c)) FROM show_chunks('metrics', older_than => INTERVAL '7 days') c;

CREATE TABLE readings (time timestamptz NOT NULL, sensor int NOT NULL, value float8);
SELECT create_hypertable('readings', by_range('time', INTERVAL '1 day'));
INSERT INTO readings SELECT t, s, random()
    FROM generate_series(now() - interval '12 days', now(), interval '1 minute') t,
    generate_series(1, 3) s;
ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor');
SELECT add_compression_policy('readings', INTERVAL '2 days', initial_start => now() + interval '1 day');

CREATE TABLE events (time timestamptz NOT NULL, kind text NOT NULL);
SELECT create_hypertable('events', by_range('time', INTERVAL '1 day'));
INSERT INTO events SELECT t, 'click' FROM generate_series(now() - interval '20 days', now(), interval '30 seconds') t;

CREATE TABLE bigchunks (time timestamptz NOT NULL, device int NOT NULL, payload text);
SELECT create_hypertable('bigchunks', by_range('time', INTERVAL '30 days'));
INSERT INTO bigchunks SELECT t, 1, repeat('x', 40)
    FROM generate_series(now() - interval '2 days', now(), interval '2 seconds') t;

CREATE TABLE ticks (t bigint NOT NULL, v int);
SELECT create_hypertable('ticks', by_range('t', 1000));
CREATE FUNCTION ticks_now() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT coalesce(max(t), 0) FROM ticks $$;
SELECT set_integer_now_func('ticks', 'ticks_now');
INSERT INTO ticks SELECT g, g FROM generate_series(1, 10000) g;
ALTER TABLE ticks SET (timescaledb.compress);
SELECT add_compression_policy('ticks', compress_after => 5000, initial_start => now() + interval '1 day');
CREATE MATERIALIZED VIEW ticks_sums WITH (timescaledb.continuous) AS
    SELECT time_bucket(100, t) AS bucket, sum(v) FROM ticks GROUP BY 1 WITH NO DATA;

CREATE MATERIALIZED VIEW metrics_hourly WITH (timescaledb.continuous) AS
    SELECT time_bucket('1 hour', time) AS bucket, device, avg(value) FROM metrics GROUP BY 1, 2 WITH NO DATA;
SELECT add_continuous_aggregate_policy('metrics_hourly', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', initial_start => now() + interval '1 day');
CREATE MATERIALIZED VIEW metrics_daily WITH (timescaledb.continuous) AS
    SELECT time_bucket('1 day', time) AS bucket, device, max(value) FROM metrics GROUP BY 1, 2 WITH NO DATA;
SELECT add_continuous_aggregate_policy('metrics_daily', start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour', initial_start => now() + interval '1 day');

CREATE PROCEDURE raising_action(job_id int, config jsonb) LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'dbwatch test: this action always fails'; END $$;
CREATE PROCEDURE quiet_action(job_id int, config jsonb) LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; END $$;
SELECT add_job('raising_action', '1 hour', job_name => 'failing action');
SELECT add_job('raising_action', '1 hour', job_name => 'paused action');
SELECT add_job('quiet_action', '1 hour', initial_start => now() + interval '1 day', job_name => 'waiting action');

CREATE TABLE log_lines (id bigint NOT NULL, created_at timestamptz NOT NULL, line text);
INSERT INTO log_lines SELECT g, now() - interval '30 days' + g * interval '10 seconds', 'line ' || g
FROM generate_series(1, 60000) g;
CREATE TABLE log_shuffled (id bigint NOT NULL, created_at timestamptz NOT NULL, line text);
INSERT INTO log_shuffled SELECT * FROM log_lines ORDER BY random();
CREATE TABLE log_edited (id bigint NOT NULL, created_at timestamptz NOT NULL, line text);
INSERT INTO log_edited SELECT * FROM log_lines;
UPDATE log_edited SET line = line || '!' WHERE id % 10 = 0;
CREATE TABLE orders (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, item text);
INSERT INTO orders SELECT * FROM log_lines;
"""
# Thresholds lowered to the test's sizes: a 1.6 MB chunk budget (5 % of shared_buffers' 32 MB), 64 kB of old
# uncompressed chunks, 1 MB tables.
OPTIONS = {"chunk_memory_fraction": 0.05, "uncompressed_min_bytes": 64 * 1024, "hypertable_min_size_bytes": MIB,
           "include_databases": ("tsdb", "plain", "postgres")}
JOB_TIMEOUT = 180.0  # the scheduler starts new jobs within seconds; the machine is loaded


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    reason = timescaleserver.unavailable()
    if reason:
        pytest.skip(reason)
    timescaleserver.ensure_installed()
    pg = timescaleserver.timescale_server()
    try:
        pg.psql("CREATE DATABASE tsdb")
        pg.psql("CREATE DATABASE plain")
        pg.psql("CREATE TABLE t (x int)", database="plain")
        pg.psql(SETUP, database="tsdb")
        pg.psql("CALL refresh_continuous_aggregate('metrics_daily', NULL, now() - interval '1 day')", database="tsdb")
        pg.psql("ANALYZE", database="tsdb")
        yield pg
    finally:
        pg.destroy()


def job_id(pg: PostgresServer, name: str) -> int:
    # a job's application_name is its job_name and its id: "failing action [1004]"
    return int(pg.psql(f"SELECT job_id FROM timescaledb_information.jobs WHERE application_name LIKE '{name} [%'",
                       database="tsdb"))


def target(pg: PostgresServer, **options: Any) -> Target:
    return Target(name="ts", engine="postgres", dsn=pg.dsn(database="tsdb"), labels={},
                  collectors={"timescaledb": CollectorSettings(60, 30, TimescaleOptions(**{**OPTIONS, **options}))})


async def _collect(pg: PostgresServer, until: Any = None, **options: Any) -> tuple[SnapshotStore, Snapshot]:
    t = target(pg, **options)
    session = PostgresSession(t)
    store = SnapshotStore()
    try:
        collector = TimescaleCollector(t, session)
        if until is None:
            snapshot = await collect(collector, store)
        else:
            snapshot = await collect_until(collector, until, timeout=JOB_TIMEOUT, what="the failing job to fail")
            store.put(snapshot)
    finally:
        await session.close()
    return store, snapshot


@pytest.fixture(scope="module")
def collected(server: PostgresServer) -> tuple[SnapshotStore, Snapshot]:
    """One collection, once the failing action has failed and the paused one has failed and been paused."""
    failing, paused = job_id(server, "failing action"), job_id(server, "paused action")

    def failed(snapshot: Snapshot) -> bool:
        jobs = {j.job_id: j for j in snapshot.fact(Jobs) or ()}
        return all(i in jobs and jobs[i].consecutive_failures >= 1 for i in (failing, paused))

    asyncio.run(_collect(server, until=failed))
    server.psql(f"SELECT alter_job({paused}, scheduled => false)", database="tsdb")
    return asyncio.run(_collect(server))


def samples(snapshot: Snapshot, name: str) -> dict[tuple[str, ...], float]:
    [family] = [f for f in snapshot.families if f.name == name]
    return dict(family.samples)


def findings(store: SnapshotStore) -> list[Finding]:
    alerts = ("TimescaleJobFailing", "ContinuousAggregateLagging")
    engine = RuleEngine([r for r in shipped_rules() if r.alert in alerts], make_rules(RulesConfig()))
    found = engine.evaluate(TargetView(store, "ts", "postgres"))
    errors = {f.name: f for f in engine.metrics()}["dbwatch_rule_errors_total"]
    assert not errors.samples, f"a rule raised: {errors.samples}"
    return found


def by(found: list[Finding], rule: str, **labels: str) -> list[Finding]:
    return [f for f in found if f.rule == rule and all(f.labels.get(k) == v for k, v in labels.items())]


def test_only_databases_with_the_extension_are_reported(collected):
    _, snapshot = collected
    assert samples(snapshot, "dbwatch_timescaledb_info") == {("tsdb", "2.28.3"): 1.0}
    assert {k[0] for k in samples(snapshot, "dbwatch_timescaledb_hypertable_chunks")} == {"tsdb"}


def test_hypertables_report_chunks_interval_size_and_compression_ratio(collected, server):
    _, snapshot = collected
    chunks = samples(snapshot, "dbwatch_timescaledb_hypertable_chunks")
    expected = int(server.psql("SELECT count(*) FROM show_chunks('metrics')", database="tsdb"))
    assert chunks[("tsdb", "public.metrics")] == expected >= 20
    compressed = samples(snapshot, "dbwatch_timescaledb_hypertable_compressed_chunks")
    assert compressed[("tsdb", "public.metrics")] == int(server.psql(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'metrics' AND is_compressed",
        database="tsdb")) >= 12
    assert compressed[("tsdb", "public.events")] == 0
    assert samples(snapshot, "dbwatch_timescaledb_hypertable_chunk_interval_seconds")[("tsdb", "public.bigchunks")] \
        == 30 * 86400
    ratio = samples(snapshot, "dbwatch_timescaledb_hypertable_compression_ratio")
    assert 2.0 < ratio[("tsdb", "public.metrics")] < 50, ratio  # 5 devices of floats compress well
    assert ("tsdb", "public.events") not in ratio and ("tsdb", "public.readings") not in ratio
    sizes = samples(snapshot, "dbwatch_timescaledb_hypertable_size_bytes")
    assert sizes[("tsdb", "public.bigchunks")] > 2 * MIB
    assert samples(snapshot, "dbwatch_timescaledb_hypertable_compression_enabled") == {
        ("tsdb", "public.metrics"): 1, ("tsdb", "public.readings"): 1, ("tsdb", "public.events"): 0,
        ("tsdb", "public.bigchunks"): 0, ("tsdb", "public.ticks"): 1}


def test_jobs_report_failures_schedule_and_policies(collected, server):
    _, snapshot = collected
    failing, paused, waiting = (job_id(server, n) for n in ("failing action", "paused action", "waiting action"))
    consecutive = {k[1]: (k[3], v)
                   for k, v in samples(snapshot, "dbwatch_timescaledb_job_consecutive_failures").items()}
    assert consecutive[str(failing)][0] == "true" and consecutive[str(failing)][1] >= 1
    assert consecutive[str(paused)][0] == "false" and consecutive[str(paused)][1] >= 1
    assert consecutive[str(waiting)] == ("true", 0)
    success = {k[1]: v for k, v in samples(snapshot, "dbwatch_timescaledb_job_last_run_success").items()}
    assert success[str(failing)] == 0 and str(waiting) not in success  # never ran: no last run
    failures = {k[1]: v for k, v in samples(snapshot, "dbwatch_timescaledb_job_failures_total").items()}
    assert failures[str(failing)] >= 1
    next_start = {k[1] for k in samples(snapshot, "dbwatch_timescaledb_job_next_start_timestamp_seconds")}
    assert str(waiting) in next_start and str(paused) not in next_start
    policies = {(k[1], k[2]) for k in samples(snapshot, "dbwatch_timescaledb_policy_info")}
    assert {("public.metrics", "compression"), ("public.readings", "compression"),
            ("public.metrics_hourly", "refresh"), ("public.metrics_daily", "refresh")} <= policies
    after = samples(snapshot, "dbwatch_timescaledb_policy_after_seconds")
    assert after[("tsdb", "public.metrics", "compression")] == 7 * 86400
    assert after[("tsdb", "public.metrics_daily", "refresh")] == 86400


def test_continuous_aggregates_report_their_lag(collected):
    _, snapshot = collected
    lag = samples(snapshot, "dbwatch_timescaledb_continuous_aggregate_lag_seconds")
    assert 20 * 86400 <= lag[("tsdb", "public.metrics_hourly")] < 22 * 86400  # never refreshed: all 20 days
    assert 86400 <= lag[("tsdb", "public.metrics_daily")] < 3 * 86400  # refreshed up to yesterday's bucket
    watermarks = samples(snapshot, "dbwatch_timescaledb_continuous_aggregate_watermark_timestamp_seconds")
    assert list(watermarks) == [("tsdb", "public.metrics_daily")]
    expected = samples(snapshot, "dbwatch_timescaledb_continuous_aggregate_expected_lag_seconds")
    assert expected[("tsdb", "public.metrics_daily")] == 86400 + 3600 + 86400
    caggs = {c.view: c for c in snapshot.fact(ContinuousAggregates)}
    assert caggs["metrics_hourly"].hypertable == "public.metrics" and caggs["metrics_hourly"].refresh_job_id


def test_a_failing_job_fires_timescale_job_failing_and_the_paused_and_waiting_ones_stay_silent(collected, server):
    store, _ = collected
    found = by(findings(store), "TimescaleJobFailing")
    ids = {f.labels["job_id"] for f in found}
    assert str(job_id(server, "failing action")) in ids
    assert str(job_id(server, "paused action")) not in ids and str(job_id(server, "waiting action")) not in ids
    [failing] = [f for f in found if f.labels["job_id"] == str(job_id(server, "failing action"))]
    assert failing.labels["datname"] == "tsdb" and "failing action" in failing.summary


def test_a_never_refreshed_aggregate_fires_continuous_aggregate_lagging_and_a_fresh_one_stays_silent(collected):
    store, _ = collected
    views = {f.labels["view"] for f in by(findings(store), "ContinuousAggregateLagging")}
    assert views == {"public.metrics_hourly"}


def test_a_chunk_larger_than_its_memory_budget_gets_a_shorter_interval(collected, server):
    store, snapshot = collected
    found = by(findings(store), "TimescaleChunkIntervalTooLarge")
    assert [f.labels["hypertable"] for f in found] == ["public.bigchunks"]  # 1-day chunks of the others fit
    [finding] = found
    evidence = finding.evidence
    assert evidence["recent_chunk_bytes"] > evidence["budget_bytes"] == int(0.05 * 32 * MIB)
    assert evidence["sql"].startswith("SELECT set_chunk_time_interval('public.bigchunks', INTERVAL '")
    assert evidence["risk"] == "low" and "only chunks created afterwards" in evidence["lock"]
    # the statement runs on the real server and changes the interval of new chunks only
    before = server.psql("SELECT count(*) FROM show_chunks('bigchunks')", database="tsdb")
    server.psql(evidence["sql"], database="tsdb")
    try:
        interval = float(server.psql("SELECT extract(epoch FROM time_interval) FROM timescaledb_information.dimensions "
                                     "WHERE hypertable_name = 'bigchunks'", database="tsdb"))
        assert interval < 30 * 86400 and interval * evidence["recent_chunk_bytes"] / (30 * 86400) \
            <= evidence["budget_bytes"]
        assert server.psql("SELECT count(*) FROM show_chunks('bigchunks')", database="tsdb") == before
    finally:
        server.psql("SELECT set_chunk_time_interval('bigchunks', INTERVAL '30 days')", database="tsdb")


def test_old_uncompressed_chunks_are_advised_by_their_policy_state_and_compressed_ones_are_not(collected, server):
    store, _ = collected
    found = {f.labels["hypertable"]: f for f in by(findings(store), "TimescaleUncompressedChunks")}
    assert "public.metrics" not in found  # its old chunks are compressed
    events = found["public.events"].evidence
    assert events["compression_enabled"] is False and events["policy_job_id"] is None
    assert events["sql"] == ("ALTER TABLE public.events SET (timescaledb.compress = true);\n"
                             "SELECT add_compression_policy('public.events', INTERVAL '7 days');")
    assert events["risk"] == "medium" and "ACCESS EXCLUSIVE" in events["lock"]
    assert events["old_uncompressed_chunks"] >= 12
    readings = found["public.readings"].evidence
    policy = int(server.psql("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression' "
                             "AND hypertable_name = 'readings'", database="tsdb"))
    assert readings["policy_job_id"] == policy and readings["sql"] == f"CALL run_job({policy});"
    assert readings["compress_age_seconds"] == 2 * 86400 + 2 * 12 * 3600  # compress_after + two schedule intervals
    # the advice holds: running the policy once in the foreground compresses the backlog, and the advice goes
    server.psql(readings["sql"], database="tsdb")
    store2, _ = asyncio.run(_collect(server))
    advised = {f.labels["hypertable"] for f in by(findings(store2), "TimescaleUncompressedChunks")}
    assert "public.readings" not in advised and "public.events" in advised
    [readings_now] = [h for h in store2.latest("ts", "timescaledb").fact(Hypertables) if h.name == "readings"]
    assert readings_now.old_uncompressed_chunks == 0 and readings_now.compressed_chunks >= 8


def test_an_append_only_time_ordered_table_is_a_hypertable_candidate_and_the_near_misses_are_not(collected):
    store, _ = collected
    found = {f.labels["table"]: f for f in by(findings(store), "TimescaleHypertableCandidate")}
    assert set(found) == {"public.log_lines", "public.orders"}  # not shuffled, not edited
    lines = found["public.log_lines"].evidence
    assert lines["column"] == "created_at" and lines["correlation"] > 0.99 and lines["updates_deletes"] == 0
    assert lines["sql"].startswith("SELECT create_hypertable('public.log_lines', by_range('created_at', INTERVAL '")
    assert lines["sql"].endswith("), migrate_data => true);") and lines["risk"] == "high"
    orders = found["public.orders"].evidence
    assert orders["sql"] is None and orders["blockers"] == [
        "unique index orders_pkey does not include created_at, and create_hypertable refuses a unique index "
        "without the partitioning column"]


def test_the_candidate_statement_runs_on_the_real_server(collected, server):
    store, _ = collected
    [finding] = by(findings(store), "TimescaleHypertableCandidate", table="public.log_lines")
    server.psql("CREATE TABLE log_copy (LIKE log_lines INCLUDING ALL); INSERT INTO log_copy SELECT * FROM log_lines",
                database="tsdb")
    server.psql(finding.evidence["sql"].replace("public.log_lines", "public.log_copy"), database="tsdb")
    chunks = int(server.psql("SELECT count(*) FROM show_chunks('log_copy')", database="tsdb"))
    assert chunks >= 2 and server.psql("SELECT count(*) FROM log_copy", database="tsdb") == "60000"


def test_a_target_without_timescaledb_exports_nothing_and_puts_no_facts(server):
    t = Target(name="ts", engine="postgres", dsn=server.dsn(database="plain"), labels={},
               collectors={"timescaledb": CollectorSettings(60, 30, TimescaleOptions(
                   auto_discover_databases=False))})

    async def run() -> Snapshot:
        session = PostgresSession(t)
        try:
            return await collect(TimescaleCollector(t, session))
        finally:
            await session.close()

    snapshot = asyncio.run(run())
    assert snapshot.families == [] and snapshot.fact(Hypertables) is None and snapshot.notes == []


def test_without_the_shared_folder_and_no_timescaledb_installed_the_tests_skip_with_that_reason(monkeypatch,
                                                                                                tmp_path):
    monkeypatch.setattr(timescaleserver, "installed", lambda: False)
    monkeypatch.setattr(timescaleserver, "SHARED", tmp_path / "shared")
    reason = timescaleserver.unavailable()
    assert reason == (f"{tmp_path / 'shared'} is absent (a user's checkout): no vendored TimescaleDB 2.28.3 source "
                      f"to build")


def test_a_pg_monitor_role_collects_everything_but_the_aggregates_it_may_not_read_and_says_so(server):
    server.psql("DO $$ BEGIN CREATE ROLE ts_watcher LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; "
                "GRANT pg_monitor TO ts_watcher")
    t = Target(name="ts", engine="postgres", dsn=server.dsn(user="ts_watcher", database="tsdb"), labels={},
               collectors={"timescaledb": CollectorSettings(60, 30, TimescaleOptions(auto_discover_databases=False))})

    async def run() -> Snapshot:
        session = PostgresSession(t)
        try:
            return await collect(TimescaleCollector(t, session))
        finally:
            await session.close()

    snapshot = asyncio.run(run())
    assert samples(snapshot, "dbwatch_timescaledb_hypertable_chunks")[("tsdb", "public.metrics")] >= 20
    assert samples(snapshot, "dbwatch_timescaledb_job_consecutive_failures")
    assert samples(snapshot, "dbwatch_timescaledb_continuous_aggregate_lag_seconds") == {}
    assert snapshot.notes == ["database tsdb: no SELECT on continuous aggregate(s) public.metrics_daily, "
                              "public.metrics_hourly, whose watermark it takes to read; GRANT SELECT ON them to the "
                              "monitoring role"]


def test_another_database_without_the_extension_is_not_reconnected_to_at_every_collection(server):
    t = target(server)

    def sessions() -> int:
        # pg_stat_database counts the sessions started; a backend's count reaches the view when it exits
        return int(server.psql("SELECT sessions FROM pg_stat_database WHERE datname = 'plain'"))

    async def twice() -> tuple[int, int]:
        session = PostgresSession(t)
        collector = TimescaleCollector(t, session)
        try:
            before = sessions()
            await collect(collector)
            first = wait_for(lambda: sessions() == before + 1 and before + 1, 60, "the visit to plain to count")
            await collect(collector)
            return first, before
        finally:
            await session.close()

    first, before = asyncio.run(twice())
    # one more session of our own, after the second collection: once it is counted, anything the collector
    # started before it would be too
    server.psql("SELECT 1", database="plain")
    after = wait_for(lambda: sessions() >= first + 1 and sessions(), 60, "psql's session to count")
    assert after == first + 1 == before + 2  # the second collection did not connect to plain


def test_an_integer_time_dimension_is_counted_but_has_no_seconds_and_no_advice(collected):
    store, snapshot = collected
    assert samples(snapshot, "dbwatch_timescaledb_hypertable_chunks")[("tsdb", "public.ticks")] == 11
    assert ("tsdb", "public.ticks") not in samples(snapshot, "dbwatch_timescaledb_hypertable_chunk_interval_seconds")
    assert ("tsdb", "public.ticks", "compression") not in samples(snapshot, "dbwatch_timescaledb_policy_after_seconds")
    lags = samples(snapshot, "dbwatch_timescaledb_continuous_aggregate_lag_seconds")
    assert ("tsdb", "public.ticks_sums") not in lags
    assert not [f for f in findings(store) if "ticks" in f.summary]


def test_the_index_storage_and_schema_advice_leaves_timescaledb_internals_alone(server):
    """TimescaleDB's catalog (_timescaledb_catalog, extension-owned, some tables without a primary key) and
    its chunks (_timescaledb_internal) are the extension's: advice to drop, add or rebuild anything there
    would fight the extension. The hypertables and plain tables are the application's and are advised."""
    store = SnapshotStore()
    dsn = server.dsn(database="tsdb")
    advisor = auditutil.target("postgres", dsn, {"advisor": {"min_total_time_share": 0.0}})
    design = auditutil.target("postgres", dsn, {"schema_design": {"min_rows": 1}})
    asyncio.run(auditutil.collect_once(store, AdvisorCollector, PostgresSession, advisor))
    asyncio.run(auditutil.collect_once(store, PgSchemaDesignCollector, PostgresSession, design))
    found = auditutil.evaluate(store, "postgres", "indexes", "pg_storage", "schema_design")
    internal = [f"{f.rule}: {f.summary}" for f in found
                if "timescaledb" in f"{f.summary} {dict(f.labels)} {dict(f.evidence)}".lower()]
    assert not internal, internal
    assert {"PgTableWithoutPrimaryKey"} <= {f.rule for f in found if "log_lines" in f.summary}, \
        [f"{f.rule}: {f.summary}" for f in found]
