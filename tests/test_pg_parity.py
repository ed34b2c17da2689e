"""postgres_exporter parity: per-table and per-index statistics on every database, every setting, the other
pg_stat_* views and custom queries from a queries.yaml.

Real servers: a throwaway PostgreSQL 15 of this module's own (``parity_pg``: databases ``app`` with 30
tables, ``small`` with 3, ``skipped`` with 1), and Debian's prometheus-postgres-exporter 0.11.1 scraping that
same server for the side-by-side checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dbwatch.agent.config import ConfigError, load_config
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_custom import CustomQueriesCollector
from dbwatch.collectors.pg_custom_parse import parse_queries
from dbwatch.collectors.pg_settings import SESSION_SETTINGS, SettingsCollector, setting_metric
from dbwatch.collectors.pg_stats_more import MoreStatsCollector
from dbwatch.collectors.pg_tables import TablesCollector
from dbwatch.collectors.postgres import PostgresCollector
from dbwatch.exporters.job_lines import JobLines
from dbwatch.exporters.pg_exporter_compat import PG_EXPORTER_COLUMNS
from dbwatch.exporters.prometheus import render_families
from dbwatch.model import CollectorSettings, MetricFamily, Snapshot, Target, gauge
from tests.helpers import collect
from tests.pgcluster import PostgresServer
from tests.pgexporter import EXAMPLE_QUERIES, Family, parse_exposition, running_exporter, scrape

TABLES_IN_APP = 30


@pytest.fixture(scope="module")
def parity_pg() -> Iterator[PostgresServer]:
    server = PostgresServer(settings={"track_io_timing": "on"}).start()
    try:
        for database in ("app", "small", "skipped"):
            server.psql(f"CREATE DATABASE {database}")
        # app: table t<i> holds i*300 rows, so sizes differ; t1 is the busiest (many rows written and deleted).
        server.psql(
            f"DO $$ BEGIN FOR i IN 1..{TABLES_IN_APP} LOOP "
            "EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i); "
            "EXECUTE format('INSERT INTO t%s SELECT g, ''x'' FROM generate_series(1, %s) g', i, i * 300); "
            "END LOOP; END $$", database="app")
        server.psql("INSERT INTO t1 SELECT g, 'y' FROM generate_series(100001, 150000) g; "
                    "DELETE FROM t1 WHERE id > 100000", database="app")
        server.psql("VACUUM ANALYZE", database="app")
        # Separate sessions: a session's row counts reach the statistics when it ends, after its own VACUUM.
        server.psql("CREATE TABLE s1 (id int PRIMARY KEY); CREATE TABLE s2 (id int); CREATE TABLE s3 (id int); "
                    "INSERT INTO s1 SELECT generate_series(1, 42)", database="small")
        server.psql("VACUUM s1; ANALYZE", database="small")
        server.psql("SET enable_seqscan = off; SELECT * FROM s1 WHERE id = 7", database="small")
        server.psql("CREATE TABLE hidden (id int)", database="skipped")
        yield server
    finally:
        server.destroy()


def target(server: PostgresServer, collector: str, **options: object) -> Target:
    return Target(name="t", engine="postgres", dsn=server.dsn(), labels={},
                  collectors={collector: CollectorSettings(30, 20, options)})


def samples(snapshot: Snapshot, name: str) -> dict[tuple[str, ...], float]:
    [family] = [f for f in snapshot.families if f.name == name]
    return dict(family.samples)


# -- tables and indexes --------------------------------------------------------------------------------


async def test_every_database_tables_and_indexes_come_with_postgres_exporter_names_and_labels(parity_pg,
                                                                                               session_for):
    """parity_pg: all databases but the excluded one; s1 has 42 rows, was vacuumed, and had one index scan."""
    session = session_for(target(parity_pg, "tables", exclude_databases=["skipped"]))
    snapshot = await collect(TablesCollector(session.target, session))
    live = samples(snapshot, "pg_stat_user_tables_n_live_tup")
    assert live[("small", "public", "s1")] == 42
    assert {key[0] for key in live} == {"app", "small"}
    assert len([key for key in live if key[0] == "app"]) == TABLES_IN_APP  # under max_tables: every table
    assert abs(samples(snapshot, "pg_stat_user_tables_last_vacuum")[("small", "public", "s1")] - time.time()) < 600
    assert samples(snapshot, "pg_stat_user_tables_last_autovacuum")[("small", "public", "s2")] == 0  # never
    assert samples(snapshot, "pg_stat_user_tables_table_size_bytes")[("small", "public", "s1")] >= 8192
    assert samples(snapshot, "pg_stat_user_indexes_idx_scans_total")[("small", "public", "s1", "s1_pkey")] >= 1
    assert ("small", "public", "s1") in samples(snapshot, "pg_statio_user_tables_heap_blocks_hit")
    assert samples(snapshot, "dbwatch_pg_tables_folded") == {("postgres",): 0, ("app",): 0, ("small",): 0}
    types = {f.name: f.type.value for f in snapshot.families}
    assert types["pg_stat_user_tables_seq_scan"] == "counter" and types["pg_stat_user_tables_n_dead_tup"] == "gauge"


async def test_a_table_whose_statistics_changed_is_read_anew_and_unchanged_columns_are_handed_out_again(
        parity_pg, session_for):
    """parity_pg: a scratch database whose one table gets rows between two collections by the same collector."""
    parity_pg.psql("CREATE DATABASE scratch")
    parity_pg.psql("CREATE TABLE c (id int); CREATE TABLE idle (id int)", database="scratch")
    session = session_for(target(parity_pg, "tables", include_databases=["scratch"], indexes=False))
    collector = TablesCollector(session.target, session)
    try:
        first = await collect(collector)
        parity_pg.psql("INSERT INTO c SELECT generate_series(1, 5)", database="scratch")  # counted when psql ends
        second = await collect(collector)
    finally:
        await session.close()
        parity_pg.psql("DROP DATABASE scratch")  # the other tests count the databases
    inserted = samples(second, "pg_stat_user_tables_n_tup_ins")
    assert inserted[("scratch", "public", "c")] == 5 and inserted[("scratch", "public", "idle")] == 0
    [before] = [f for f in first.families if f.name == "pg_stat_user_tables_last_autoanalyze"]
    [after] = [f for f in second.families if f.name == "pg_stat_user_tables_last_autoanalyze"]
    assert after.samples == before.samples and all(a is b for a, b in zip(after.samples, before.samples))
    # in the column that changed, the idle table's sample is still the last collection's
    [before] = [dict((s[0][2], s) for s in f.samples) for f in first.families if f.name.endswith("_n_tup_ins")]
    [after] = [dict((s[0][2], s) for s in f.samples) for f in second.families if f.name.endswith("_n_tup_ins")]
    assert after["idle"] is before["idle"] and after["c"] is not before["c"]


async def test_include_list_limits_the_databases_visited(parity_pg, session_for):
    """parity_pg: only ``skipped`` is included (the target's own database, postgres, is then not visited)."""
    session = session_for(target(parity_pg, "tables", include_databases=["skipped"], statio_names="blks"))
    snapshot = await collect(TablesCollector(session.target, session))
    assert list(samples(snapshot, "pg_stat_user_tables_n_live_tup")) == [("skipped", "public", "hidden")]
    assert "pg_statio_user_tables_heap_blks_read" in {f.name for f in snapshot.families}


async def test_beyond_max_tables_the_largest_and_busiest_keep_series_and_the_rest_fold_into_other(parity_pg,
                                                                                                 session_for):
    """parity_pg: app's 30 tables with max_tables 10 and top_n 3."""
    session = session_for(target(parity_pg, "tables", include_databases=["app"], max_tables=10, top_n=3))
    snapshot = await collect(TablesCollector(session.target, session))
    by_size = parity_pg.psql(
        "SELECT relname FROM pg_stat_user_tables ORDER BY pg_table_size(relid) + pg_indexes_size(relid) DESC, "
        "schemaname, relname LIMIT 3", database="app").split()
    by_activity = parity_pg.psql(
        "SELECT relname FROM pg_stat_user_tables ORDER BY seq_scan + coalesce(idx_scan, 0) + n_tup_ins + n_tup_upd "
        "+ n_tup_del DESC, schemaname, relname LIMIT 3", database="app").split()
    live = samples(snapshot, "pg_stat_user_tables_n_live_tup")
    kept = {key[2] for key in live} - {"other"}
    assert kept == set(by_size) | set(by_activity) and "t1" in kept and "t30" in kept
    assert samples(snapshot, "dbwatch_pg_tables_folded") == {("app",): TABLES_IN_APP - len(kept)}
    total = float(parity_pg.psql("SELECT sum(n_live_tup) FROM pg_stat_user_tables", database="app"))
    assert live[("app", "", "other")] == total - sum(v for k, v in live.items() if k[2] != "other")
    for family in snapshot.families:  # every per-table family: the kept tables and one "other"
        if family.name.startswith(("pg_stat_user_tables_", "pg_statio_user_tables_")):
            assert len(family.samples) == len(kept) + 1, family.name


# -- side by side with the exporter ----------------------------------------------------------------------


def dbwatch_exposition(families: list[MetricFamily]) -> dict[str, Family]:
    return parse_exposition(render_families(families))


async def collect_all(server: PostgresServer, session_for, **table_options: object) -> list[MetricFamily]:
    settings = {name: CollectorSettings(30, 20, dict(table_options) if name == "tables" else {})
                for name in ("postgres", "tables", "settings", "stats")}
    session = session_for(Target(name="t", engine="postgres", dsn=server.dsn(), labels={}, collectors=settings))
    # The server-wide collector is another's: collected here without its catalog check.
    server_wide = Snapshot(target="t", engine="postgres", collector="postgres", started_at=time.time())
    await PostgresCollector(session.target, session).collect(server_wide)
    families = server_wide.families
    for kind in (TablesCollector, SettingsCollector, MoreStatsCollector):
        families.extend((await collect(kind(session.target, session))).families)
    return families


def example_queries(tmp_path: Path, *namespaces: str) -> str:
    """Debian's examples/queries.yaml, only the given queries (its pg_stat_statements fails on 13+)."""
    queries = yaml.safe_load(Path(EXAMPLE_QUERIES).read_text())
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({name: queries[name] for name in namespaces}))
    return str(path)


async def test_names_labels_and_types_match_the_exporter_family_by_family(parity_pg, session_for, tmp_path):
    """parity_pg and the exporter (--auto-discover-databases, the example per-table queries): every family the
    exporter emits for what dbwatch covers is in dbwatch with the same labels (``server`` aside) and type."""
    queries = example_queries(tmp_path, "pg_stat_user_tables", "pg_statio_user_tables", "pg_postmaster")
    with running_exporter(parity_pg.dsn(), "--auto-discover-databases", f"--extend.query-path={queries}") as url:
        theirs = parse_exposition(scrape(url), ignore_labels=("server",))
    families = await collect_all(parity_pg, session_for, statio_names="blks")
    names = [family.name for family in families]
    assert len(names) == len(set(names)), "two collectors of one target export the same family"
    ours = dbwatch_exposition(families)
    session_only = {f"pg_settings_{name}" for name in SESSION_SETTINGS} | {
        f"pg_settings_{name}_seconds" for name in SESSION_SETTINGS}
    problems = []
    for name, family in sorted(theirs.items()):
        if not name.startswith("pg_") or name.startswith(("pg_exporter_", "pg_scrape_")) or name in session_only:
            continue  # the exporter's own metrics, and settings dbwatch's session sets for itself
        if name not in ours:
            problems.append(f"{name}: missing")
        elif ours[name].labelnames != family.labelnames:
            problems.append(f"{name}: labels {ours[name].labelnames}, the exporter's {family.labelnames}")
        elif family.type != "untyped" and ours[name].type != family.type:
            problems.append(f"{name}: a {ours[name].type}, the exporter's a {family.type}")
    assert not problems, "\n".join(problems)
    relations = {(s[0]["datname"], s[0]["relname"]) for s in theirs["pg_stat_user_tables_n_live_tup"].samples}
    assert relations == {(s[0]["datname"], s[0]["relname"]) for s in ours["pg_stat_user_tables_n_live_tup"].samples}
    for name in ("pg_stat_user_tables_n_live_tup", "pg_stat_user_tables_last_vacuum",
                 "pg_stat_user_tables_vacuum_count", "pg_statio_user_tables_heap_blks_hit",
                 "pg_settings_work_mem_bytes",
                 "pg_settings_checkpoint_timeout_seconds"):  # units agree: spot checks on settled values
        assert value_of(ours[name], relname="s1") == pytest.approx(value_of(theirs[name], relname="s1"), abs=1), name


def value_of(family: Family, **labels: str) -> float:
    """The value of the sample whose labels include ``labels`` (any sample of a family without them)."""
    for sample_labels, value in family.samples:
        if all(sample_labels.get(name, wanted) == wanted for name, wanted in labels.items()):
            return value
    raise AssertionError(f"no sample with {labels}")


async def test_every_numeric_setting_has_the_exporters_name_and_value(parity_pg, session_for):
    """parity_pg and the exporter: pg_settings_* name by name, value by value (session settings aside)."""
    with running_exporter(parity_pg.dsn()) as url:
        theirs = {name: f.samples[0][1] for name, f in parse_exposition(scrape(url)).items()
                  if name.startswith("pg_settings_")}
    ours = {name: f.samples[0][1] for name, f in dbwatch_exposition(await collect_all(parity_pg, session_for)).items()
            if name.startswith("pg_settings_")}
    missing = set(theirs) - set(ours)
    assert missing == {"pg_settings_default_transaction_read_only", "pg_settings_transaction_read_only",
                       "pg_settings_statement_timeout_seconds", "pg_settings_lock_timeout_seconds",
                       "pg_settings_idle_in_transaction_session_timeout_seconds"}
    assert set(ours) <= set(theirs)
    differ = {name for name in ours if name != "pg_settings_extra_float_digits" and ours[name] != theirs[name]}
    assert not differ, {name: (ours[name], theirs[name]) for name in differ}
    assert ours["pg_settings_wal_buffers_bytes"] > 0 and ours["pg_settings_autovacuum_naptime_seconds"] == 60


# -- other statistics -----------------------------------------------------------------------------------


async def test_slots_wal_conflicts_and_session_counters_are_exported(parity_pg, session_for):
    """parity_pg with an inactive physical slot holding WAL (reserved)."""
    parity_pg.psql("SELECT pg_create_physical_replication_slot('parity_slot', true)")
    session = session_for(target(parity_pg, "stats"))
    snapshot = await collect(MoreStatsCollector(session.target, session))
    assert samples(snapshot, "pg_replication_slot_slot_is_active") == {("parity_slot", "physical"): 0}
    assert samples(snapshot, "pg_replication_slot_wal_status") == {("parity_slot", "physical", "reserved"): 1}
    assert samples(snapshot, "pg_replication_slot_slot_current_wal_lsn")[("parity_slot", "physical")] > 0
    assert samples(snapshot, "pg_stat_wal_wal_records_total")[()] > 0
    assert samples(snapshot, "dbwatch_pg_wal_position_bytes")[()] > 0
    assert samples(snapshot, "pg_wal_segments")[()] >= 1
    sessions = samples(snapshot, "pg_stat_database_sessions")
    assert sessions[(parity_pg.psql("SELECT oid FROM pg_database WHERE datname = 'app'"), "app")] >= 1
    assert ("0", "") in sessions  # the shared row, as the exporter shows it
    assert all(v == 0 for v in samples(snapshot, "pg_stat_database_conflicts_confl_lock").values())
    assert samples(snapshot, "pg_stat_bgwriter_stats_reset_total")[()] > 0


# -- custom queries -------------------------------------------------------------------------------------


async def test_the_exporters_example_queries_file_runs_unchanged_with_the_same_names(parity_pg, session_for):
    """parity_pg and the exporter, both on Debian's examples/queries.yaml as shipped (its pg_stat_statements
    query uses pre-13 columns and fails on both), with an idle session for pg_process_idle."""
    conn = await asyncpg.connect(parity_pg.dsn(), server_settings={"application_name": "idler"})
    try:
        with running_exporter(parity_pg.dsn(), f"--extend.query-path={EXAMPLE_QUERIES}") as url:
            theirs = parse_exposition(scrape(url), ignore_labels=("server",))  # the exporter adds it to these
        session = session_for(target(parity_pg, "custom", queries_file=EXAMPLE_QUERIES))
        snapshot = Snapshot(target="t", engine="postgres", collector="custom", started_at=time.time())
        await CustomQueriesCollector(session.target, session).collect(snapshot)
    finally:
        await conn.close()
    ours = dbwatch_exposition(snapshot.families)
    prefixes = ("pg_replication_lag", "pg_postmaster_", "pg_process_idle_", "pg_stat_user_tables_",
                "pg_statio_user_tables_")
    theirs_names = {n for n in theirs if n.startswith(prefixes)}
    assert theirs_names and theirs_names == {n for n in ours if n.startswith(prefixes)}
    for name in theirs_names:
        assert ours[name].labelnames == theirs[name].labelnames, name
    idle_buckets = {s[0]["le"]: s[1] for s in ours["pg_process_idle_seconds_bucket"].samples
                    if s[0]["application_name"] == "idler"}
    assert idle_buckets["+Inf"] >= 1 and list(idle_buckets)[:2] == ["1", "2"]
    success = samples(snapshot, "dbwatch_pg_custom_query_success")
    assert success[("pg_stat_statements", "postgres")] == 0 and success[("pg_replication", "postgres")] == 1
    assert any("pg_stat_statements" in note for note in snapshot.notes)


async def test_custom_query_options_cache_master_version_and_usages(parity_pg, session_for, tmp_path):
    """parity_pg, databases postgres and small (include list, discovery on)."""
    path = tmp_path / "q.yaml"
    path.write_text("""
pg_cached:
  query: "SELECT random() AS r"
  cache_seconds: 3600
  metrics: [{r: {usage: GAUGE, description: "random, cached"}}]
pg_once:
  query: "SELECT 1 AS one, 'up' AS state, interval '1 minute' AS uptime, '1m30s' AS go"
  master: true
  metrics:
    - one: {usage: COUNTER}
    - state: {usage: MAPPEDMETRIC, mapping: {up: 1, down: 0}}
    - uptime: {usage: DURATION}
    - go: {usage: DURATION}
pg_ancient:
  query: "SELECT 1 AS x"
  runonserver: "<10.0.0 || =9.6"
  metrics: [{x: {usage: GAUGE}}]
""")
    session = session_for(target(parity_pg, "custom", queries_file=str(path), auto_discover_databases=True,
                                 include_databases=["postgres", "small"]))
    collector = CustomQueriesCollector(session.target, session)

    async def once() -> dict[str, Family]:
        snapshot = Snapshot(target="t", engine="postgres", collector="custom", started_at=time.time())
        await collector.collect(snapshot)
        return dbwatch_exposition(snapshot.families)

    first, second = await once(), await once()
    cached = {s[0]["datname"]: s[1] for s in first["pg_cached_r"].samples}
    assert set(cached) == {"postgres", "small"}  # on each database, told apart by an added datname label
    assert cached == {s[0]["datname"]: s[1] for s in second["pg_cached_r"].samples}  # served from the cache
    assert [s[1] for s in first["pg_once_one"].samples] == [1] and first["pg_once_one"].type == "counter"
    assert first["pg_once_state"].samples[0][1] == 1
    assert first["pg_once_uptime_milliseconds"].samples[0][1] == 60000
    assert first["pg_once_go_milliseconds"].samples[0][1] == 90000
    assert not any(name.startswith("pg_ancient") for name in first)


def test_a_bad_queries_file_gets_one_line_per_problem_naming_the_query_and_field():
    _, problems = parse_queries("""
good:
  query: "SELECT 1 AS x"
  metrics: [{x: {usage: GAUGE}}]
no_query:
  metrics: [{x: {usage: GAUGE}}]
bad_usage:
  query: "SELECT 1 AS x"
  cache_second: 5
  runonserver: ">=ten"
  metrics:
    - x: {usage: GAUGES}
    - y: {usage: MAPPEDMETRIC}
""")
    assert problems == [
        "no_query.query: required: the SQL to run, as a string",
        "bad_usage.cache_second: unknown key (expected cache_seconds, master, metrics, query, runonserver)",
        "bad_usage.runonserver: cannot read '>=ten' (expected comparisons like \">=10.0.0 <16.0.0\", "
        "alternatives joined by ||)",
        "bad_usage.metrics[0].x.usage: expected one of LABEL, COUNTER, GAUGE, MAPPEDMETRIC, DURATION, HISTOGRAM, "
        "DISCARD, got 'GAUGES'",
        "bad_usage.metrics[1].y.mapping: required for MAPPEDMETRIC: the column's values mapped to numbers",
    ]
    assert parse_queries("a: [unclosed")[1][0].startswith("line 1: not valid YAML")


def test_validate_names_each_problem_of_the_queries_file_with_the_config_path(tmp_path):
    """No server: the configuration check reads the queries file a custom collector names."""
    queries = tmp_path / "queries.yaml"
    queries.write_text("pg_a:\n  query: SELECT 1 AS x\n  metrics: [{x: {usage: GAUGES}}]\npg_b:\n  metrics: []\n")
    config = tmp_path / "dbwatch.yaml"
    config.write_text("targets:\n  - name: pg\n    engine: postgres\n    dsn: postgresql://u@127.0.0.1:5432/postgres\n"
                      f"    collectors: {{custom: {{enabled: true, queries_file: {queries}}}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    prefix = f"targets[0].collectors.custom.queries_file: {queries}: "
    assert info.value.problems == [
        prefix + "pg_a.metrics[0].x.usage: expected one of LABEL, COUNTER, GAUGE, MAPPEDMETRIC, DURATION, "
                 "HISTOGRAM, DISCARD, got 'GAUGES'",
        prefix + "pg_b.query: required: the SQL to run, as a string",
        prefix + "pg_b.metrics: required: a list of columns, each with a usage",
    ]


def test_postgres_exporters_own_metrics_come_from_the_postgres_collectors_jobs():
    """No server: a store with one good and one failed collection of a PostgreSQL target, and a Redis one."""
    store = SnapshotStore()
    lines = JobLines(store, PG_EXPORTER_COLUMNS)
    store.subscribe(lines.landed)
    for target, engine, collector, ok in (("pg", "postgres", "postgres", False), ("pg", "postgres", "tables", True),
                                          ("r", "redis", "redis", True)):
        store.put(Snapshot(target=target, engine=engine, collector=collector, started_at=time.time(),
                           duration=0.25, ok=ok))
    families = {f.name: {tuple(s.labels.values()): s.value for s in f.samples}
                for f in text_string_to_metric_families(lines.figures(False).decode())}
    assert families["pg_exporter_last_scrape_error"] == {("pg",): 1}
    assert families["pg_exporter_scrapes"] == {("pg",): 1}  # a counter: the parser names the family without _total
    assert families["pg_scrape_collector_success"] == {("pg", "postgres"): 0, ("pg", "tables"): 1}
    assert families["pg_scrape_collector_duration_seconds"] == {("pg", "postgres"): 0.25, ("pg", "tables"): 0.25}
    assert set(families) == {"pg_exporter_last_scrape_error", "pg_exporter_scrapes",
                             "pg_exporter_last_scrape_duration_seconds",
                             "pg_scrape_collector_success", "pg_scrape_collector_duration_seconds"}


def test_the_store_keeps_only_the_latest_collection_of_per_table_statistics():
    """No server: 40 snapshots of history are kept for rules, but not of a collection that opts out."""
    store = SnapshotStore()
    for _ in range(3):
        up = gauge("pg_up", "Up.")
        up.add((), 1)  # (a collection with nothing a rule reads goes: agent/store.py)
        store.put(Snapshot(target="pg", engine="postgres", collector="postgres", started_at=time.time(),
                           families=[up]))
        store.put(Snapshot(target="pg", engine="postgres", collector="tables", started_at=time.time(),
                           keep_history=False))
    assert len(store.history("pg", "postgres")) == 3 and len(store.history("pg", "tables")) == 1


@pytest.mark.parametrize("version, present, absent", [
    (110000, ["stats_reset"], ["checksum_failures", "sessions", "confl_active_logicalslot", "safe_wal_size"]),
    (140000, ["checksum_failures", "sessions", "active_time_seconds", "safe_wal_size", "max_dead_tuples"],
     ["confl_active_logicalslot", "max_dead_tuple_bytes"]),
    (170000, ["confl_active_logicalslot", "max_dead_tuple_bytes::float8 AS max_dead_tuples", "wal_write"], []),
    (180000, ["wal_records"], ["wal_write"]),
])
def test_sql_follows_the_server_version_where_the_catalogs_differ(version, present, absent):
    """No server (only PostgreSQL 15 runs here): the version gates of the other statistics' SQL."""
    from dbwatch.collectors import pg_stats_more_sql as sql

    text = "\n".join([sql.database_extra_sql(version), sql.conflicts_sql(version), sql.slots_sql(version),
                      sql.vacuum_progress_sql(version), sql.stat_wal_sql(version) or ""])
    assert all(column in text for column in present), [c for c in present if c not in text]
    assert not [column for column in absent if column in text]
    assert (sql.stat_wal_sql(version) is None) == (version < 140000)


async def test_custom_queries_leave_out_what_the_tables_collector_already_exports(parity_pg, session_for, tmp_path):
    """parity_pg: the example per-table queries beside the tables collector of the same target."""
    queries = example_queries(tmp_path, "pg_stat_user_tables", "pg_postmaster")
    settings = {"tables": CollectorSettings(30, 20, {}),
                "custom": CollectorSettings(30, 20, {"queries_file": queries, "auto_discover_databases": True,
                                                     "include_databases": ["small"]})}
    session = session_for(Target(name="t", engine="postgres", dsn=parity_pg.dsn(), labels={}, collectors=settings))
    snapshot = Snapshot(target="t", engine="postgres", collector="custom", started_at=time.time())
    await CustomQueriesCollector(session.target, session).collect(snapshot)
    names = {family.name for family in snapshot.families}
    assert "pg_postmaster_start_time_seconds" in names  # master: on the target's own database, not excluded
    assert not [name for name in names if name.startswith("pg_stat_user_tables_")]
    assert any("pg_stat_user_tables_n_live_tup" in note for note in snapshot.notes)


async def test_the_other_statistics_and_tables_are_read_on_a_standby_too(pg_standby, session_for):
    """The session's streaming standby (pg_standby): WAL position is the replayed one, slots and WAL files read."""
    session = session_for(Target(name="t", engine="postgres", dsn=pg_standby.dsn(), labels={},
                                 collectors={"stats": CollectorSettings(30, 20, {}),
                                             "tables": CollectorSettings(30, 20, {})}))
    stats = await collect(MoreStatsCollector(session.target, session))
    assert samples(stats, "dbwatch_pg_wal_position_bytes")[()] > 0
    tables = await collect(TablesCollector(session.target, session))
    assert ("postgres",) in samples(tables, "dbwatch_pg_tables_folded")


def test_settings_of_many_targets_share_their_names() -> None:
    """A fleet's targets report the same ~250 settings: each name and help is one string, not one per target
    and collection (agent memory, issue 14); the values stay each row's own, converted as the exporter does."""
    first = setting_metric("work_mem", "4096", "kB", "integer")
    second = setting_metric("work_mem", "8192", "kB", "integer")
    assert first is not None and second is not None
    assert first[0] is second[0] and first[1] is second[1]
    assert (first[2], second[2]) == (4096 * 1024, 8192 * 1024)
    assert setting_metric("statement_timeout", "-1", "ms", "integer") == (
        "pg_settings_statement_timeout_seconds", "Server Parameter: statement_timeout [Units converted to seconds.]",
        -1)
    assert setting_metric("fsync", "off", "", "bool") == ("pg_settings_fsync", "Server Parameter: fsync", 0.0)
    assert setting_metric("odd", "3", "furlongs", "integer") is None
