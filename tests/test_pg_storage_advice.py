"""Storage advice for PostgreSQL (rules/pg_storage.py): table and index bloat estimates, BRIN and
partitioning candidates, against a real server.

Starts one throwaway PostgreSQL 15 of its own (tests/pgcluster.py; pg_stat_statements preloaded,
autovacuum off so the bloat made on purpose stays as made) with a database ``storage`` holding: a table
bloated on purpose (300k rows, 80 % deleted), a small one bloated the same way, an index bloated by
updates of its column, a freshly loaded table with an index (the clean counterpart), and two tables of
timestamps, one appended in time order and one in random order, both queried by time ranges. Runs the
advisor collector directly and the storage rules over its snapshot.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from dbwatch.model import CollectorSettings, Finding, Snapshot, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_advisor import AdvisorCollector, AdvisorOptions
from dbwatch.collectors.pg_advisor_storage import estimate_table_pages
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model.facts.pg_storage import IndexBloats, TableBloats
from tests.auditutil import collect_once, evaluate
from tests.pgcluster import PostgresServer

MIB = 1024**2
SETUP = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE bloated (id int NOT NULL, pad text NOT NULL);
INSERT INTO bloated SELECT g, repeat('x', 40) FROM generate_series(1, 300000) g;
DELETE FROM bloated WHERE id % 5 <> 0;
CREATE TABLE small_bloated (id int NOT NULL, pad text NOT NULL);
INSERT INTO small_bloated SELECT g, repeat('x', 40) FROM generate_series(1, 30000) g;
DELETE FROM small_bloated WHERE id % 5 <> 0;
CREATE TABLE churn (id int NOT NULL, v int NOT NULL);
INSERT INTO churn SELECT g, g FROM generate_series(1, 100000) g;
CREATE INDEX churn_v_idx ON churn (v);
UPDATE churn SET v = v + 100000;
UPDATE churn SET v = v + 100000;
UPDATE churn SET v = v + 100000;
UPDATE churn SET v = v + 100000;
UPDATE churn SET v = v + 100000;
VACUUM churn;
CREATE TABLE clean (id int NOT NULL, a int, name text NOT NULL);
INSERT INTO clean SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g END, 'name ' || g FROM generate_series(1, 200000) g;
CREATE INDEX clean_a_idx ON clean (a);
CREATE TABLE events_seq (id bigint NOT NULL, created_at timestamptz NOT NULL, payload text);
INSERT INTO events_seq SELECT g, timestamptz '2026-01-01' + g * interval '10 seconds', 'event ' || g
FROM generate_series(1, 200000) g;
CREATE TABLE events_rand (id bigint NOT NULL, created_at timestamptz NOT NULL, payload text);
INSERT INTO events_rand SELECT * FROM events_seq ORDER BY random();
CREATE TABLE logs (created_at timestamptz NOT NULL, line text) PARTITION BY RANGE (created_at);
CREATE TABLE logs_2026_01 PARTITION OF logs FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
INSERT INTO logs SELECT timestamptz '2026-01-01' + g * interval '10 seconds', 'line ' || g
FROM generate_series(1, 100000) g;
ANALYZE;
"""
RANGE_QUERIES = [f"SELECT count(*) FROM {table} WHERE created_at >= '2026-01-{day:02d}' "
                 f"AND created_at < '2026-01-{day + 1:02d}'"
                 for table in ("events_seq", "events_rand", "logs", "logs_2026_01") for day in (3, 5, 9)]
LOWERED = {"bloat_min_size_bytes": MIB, "brin_min_size_bytes": MIB, "partition_min_size_bytes": MIB}


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    pg = PostgresServer(settings={"autovacuum": "off"})
    try:
        pg.start()
        pg.psql("CREATE DATABASE storage")
        pg.psql(SETUP, database="storage")
        pg.psql(";\n".join(RANGE_QUERIES) + ";", database="storage")
        yield pg
    finally:
        pg.destroy()


def advise(pg: PostgresServer, **options: Any) -> tuple[Snapshot, list[Finding]]:
    settings = AdvisorOptions(**{"min_total_time_share": 0.0, **options})
    target = Target(name="storage", engine="postgres", dsn=pg.dsn(database="storage"), labels={},
                    collectors={"advisor": CollectorSettings(3600, 120, settings)})

    store = SnapshotStore()
    snapshot = asyncio.run(collect_once(store, AdvisorCollector, PostgresSession, target))
    return snapshot, evaluate(store, "postgres", "pg_storage", target=target.name)


def by(findings: list[Finding], rule: str, **labels: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule and all(f.labels.get(k) == v for k, v in labels.items())]


@pytest.fixture(scope="module")
def lowered(server: PostgresServer) -> tuple[Snapshot, list[Finding]]:
    return advise(server, **LOWERED)


@pytest.fixture(scope="module")
def defaults(server: PostgresServer) -> tuple[Snapshot, list[Finding]]:
    return advise(server)


def test_a_table_with_80_percent_deleted_fires_table_bloat_with_a_ratio_near_80_percent(defaults):
    _, findings = defaults
    [finding] = by(findings, "PgTableBloat", table="public.bloated")
    assert 0.65 <= finding.evidence["ratio"] <= 0.9, finding.evidence
    assert finding.evidence["estimate"] is True and "(estimate)" in finding.summary
    assert finding.evidence["sql"].startswith("VACUUM FULL public.bloated;") and "pg_repack" in finding.evidence["sql"]
    assert finding.evidence["wasted_bytes"] > 10 * MIB


def test_a_small_bloated_table_is_below_the_default_size_floor_and_reported_only_with_a_lower_floor(defaults, lowered):
    assert by(defaults[1], "PgTableBloat", table="public.small_bloated") == []
    [finding] = by(lowered[1], "PgTableBloat", table="public.small_bloated")
    assert 0.65 <= finding.evidence["ratio"] <= 0.9


def test_freshly_loaded_table_and_index_are_not_reported_as_bloated(lowered):
    snapshot, findings = lowered
    assert by(findings, "PgTableBloat", table="public.clean") == []
    assert by(findings, "PgIndexBloat", index="public.clean_a_idx") == []
    [fact] = [t for t in snapshot.fact(TableBloats) if t.table == "clean"]
    assert fact.ratio < 0.2, fact  # the estimate is close for a packed table
    [fact] = [i for i in snapshot.fact(IndexBloats) if i.index == "clean_a_idx"]
    assert fact.ratio < 0.2, fact


def test_an_index_whose_column_was_updated_five_times_fires_index_bloat_with_reindex(lowered):
    _, findings = lowered
    [finding] = by(findings, "PgIndexBloat", index="public.churn_v_idx")
    assert 0.6 <= finding.evidence["ratio"] <= 0.95, finding.evidence
    assert finding.evidence["sql"] == "REINDEX INDEX CONCURRENTLY public.churn_v_idx;"
    assert finding.evidence["estimate"] is True


def test_append_only_table_in_time_order_fires_brin_and_the_random_order_one_does_not(lowered):
    snapshot, findings = lowered
    [finding] = by(findings, "PgBrinCandidate", table="public.events_seq")
    assert finding.labels["column"] == "created_at"
    assert finding.evidence["correlation"] > 0.9
    assert finding.evidence["sql"] == ("CREATE INDEX CONCURRENTLY events_seq_created_at_brin_idx ON public.events_seq "
                                       "USING brin (created_at);")
    assert finding.evidence["btree_estimated"] is True
    assert finding.evidence["btree_size_bytes"] > 50 * finding.evidence["brin_size_bytes"]
    assert finding.evidence["statements"] and "created_at >=" in finding.evidence["statements"][0]["query"]
    assert by(findings, "PgBrinCandidate", table="public.events_rand") == []
    # A partition in time order, appended to and queried by range, is a BRIN candidate like any table.
    assert [f.labels["column"] for f in by(findings, "PgBrinCandidate", table="public.logs_2026_01")] == ["created_at"]


def test_brin_and_partitioning_need_their_size_floors_so_the_defaults_stay_quiet(defaults):
    _, findings = defaults
    assert by(findings, "PgBrinCandidate") == []
    assert by(findings, "PgPartitionCandidate") == []


def test_partitioning_hint_names_the_time_column_with_a_monthly_sketch_when_floors_are_lowered(lowered):
    _, findings = lowered
    tables = sorted(f.labels["table"] for f in by(findings, "PgPartitionCandidate"))
    assert tables == ["public.events_rand", "public.events_seq"]  # order does not matter for partitioning
    [finding] = by(findings, "PgPartitionCandidate", table="public.events_seq")
    # Already partitioned: neither the parent nor its partition (queried directly) gets the hint.
    assert by(findings, "PgPartitionCandidate", table="public.logs") == []
    assert by(findings, "PgPartitionCandidate", table="public.logs_2026_01") == []
    assert finding.summary.startswith("Hint:") and finding.evidence["hint"] is True
    assert finding.labels["column"] == "created_at"
    sql = finding.evidence["sql"]
    assert "PARTITION BY RANGE (created_at)" in sql and sql.count("PARTITION OF public.events_seq_partitioned") == 2


def test_advise_json_takes_the_storage_options_from_the_config_and_lists_the_storage_findings(server, tmp_path: Path):
    config = tmp_path / "dbwatch.yaml"
    config.write_text(f"""
targets:
  - name: pg
    engine: postgres
    dsn: {server.dsn(database="storage")}
    collectors:
      advisor:
        min_total_time_share: 0
        bloat_min_size_bytes: {MIB}
        brin_min_size_bytes: {MIB}
        partition_min_size_bytes: {MIB}
""")
    dbwatch = Path(sys.executable).parent / "dbwatch"
    result = subprocess.run([str(dbwatch), "advise", "-c", str(config), "--format", "json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rules = {(r["rule"], r["evidence"].get("index") or r["evidence"].get("table")) for r in json.loads(result.stdout)}
    assert {("PgTableBloat", "public.bloated"), ("PgIndexBloat", "public.churn_v_idx"),
            ("PgBrinCandidate", "public.events_seq"), ("PgPartitionCandidate", "public.events_seq")} <= rules
    config.write_text(config.read_text().replace("bloat_min_size_bytes: ", "bloat_min_size_bytes: -"))
    bad = subprocess.run([str(dbwatch), "advise", "-c", str(config)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "bloat_min_size_bytes" in bad.stderr


# Last: it repairs the bloat the tests above rely on.
def test_vacuum_full_and_reindex_clear_the_bloat_findings(server, lowered, defaults):
    server.psql("VACUUM FULL bloated; REINDEX INDEX churn_v_idx; ANALYZE bloated; ANALYZE churn;", database="storage")
    snapshot, findings = advise(server, **LOWERED)
    assert by(findings, "PgTableBloat", table="public.bloated") == []
    assert by(findings, "PgIndexBloat", index="public.churn_v_idx") == []
    # Still estimated (above the lowered floor), just no longer bloated.
    assert [t.ratio < 0.2 for t in snapshot.fact(TableBloats) if t.table == "bloated"] == [True]
    assert [i.ratio < 0.2 for i in snapshot.fact(IndexBloats) if i.index == "churn_v_idx"] == [True]


def test_the_table_estimate_follows_the_fill_factor():
    packed = estimate_table_pages(100000, 2, 45.0, False, 100, 8192)
    assert estimate_table_pages(100000, 2, 45.0, False, 50, 8192) == pytest.approx(2 * packed, rel=0.02)
