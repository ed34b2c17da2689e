"""The strategy advice (rules/strategy*.py) on the workload collector, against a real PostgreSQL with planted
workloads: each finding fires on its pattern and stays silent on the near-miss beside it.

One throwaway server (tests/pgcluster.py, pg_stat_statements preloaded), three databases:
``strategy`` (one table per pattern and its near-miss), ``reads`` (read-mostly: replicas) and ``writes``
(update-heavy, one long connection: neither replicas nor a pooler). Workloads are bounded (seconds).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import asyncpg
import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_workload import PgWorkloadCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import Finding
from dbwatch.model.facts.workload_profile import WorkloadProfile
from tests.auditutil import by_rule, collect_once, evaluate, target
from tests.pgcluster import PostgresServer

SCHEMA = """
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION pg_trgm;
CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL, price int NOT NULL);
INSERT INTO plans SELECT g, 'plan ' || g, g FROM generate_series(1, 200) g;
CREATE TABLE counters (id int PRIMARY KEY, hits bigint NOT NULL);
INSERT INTO counters SELECT g, 0 FROM generate_series(1, 200) g;
CREATE TABLE readings (id bigserial PRIMARY KEY, at timestamptz NOT NULL, value float8);
CREATE TABLE visits (id bigserial PRIMARY KEY, at timestamptz NOT NULL, seen int);
CREATE TABLE articles (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO articles SELECT g, md5(g::text) || ' ' || md5((g * 7)::text) FROM generate_series(1, 30000) g;
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO notes SELECT g, md5(g::text) || ' ' || md5((g * 7)::text) FROM generate_series(1, 30000) g;
CREATE INDEX notes_body_trgm ON notes USING gin (body gin_trgm_ops);
CREATE TABLE docs (id int PRIMARY KEY, data jsonb NOT NULL);
INSERT INTO docs SELECT g, jsonb_build_object('kind', g % 50, 'tag', md5(g::text)) FROM generate_series(1, 30000) g;
CREATE TABLE docs_indexed (id int PRIMARY KEY, data jsonb NOT NULL);
INSERT INTO docs_indexed SELECT * FROM docs;
CREATE INDEX docs_indexed_data ON docs_indexed USING gin (data jsonb_path_ops);
CREATE TABLE categories (id int PRIMARY KEY, parent_id int REFERENCES categories);
INSERT INTO categories SELECT g, CASE WHEN g > 1 THEN g / 2 END FROM generate_series(1, 500) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, total int NOT NULL);
INSERT INTO orders SELECT g, g % 5000, g FROM generate_series(1, 100000) g;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE logs (id int PRIMARY KEY, level int NOT NULL, host int NOT NULL);
INSERT INTO logs SELECT g, g % 5, g % 3000 FROM generate_series(1, 100000) g;
CREATE INDEX logs_level ON logs (level);
CREATE INDEX logs_host ON logs (host);
CREATE TABLE flat (id int PRIMARY KEY, parent_id int);
INSERT INTO flat SELECT g, CASE WHEN g > 1 THEN g / 2 END FROM generate_series(1, 500) g;
VACUUM ANALYZE;
SELECT pg_stat_reset();
"""

READS = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE events (id int PRIMARY KEY, kind int NOT NULL, v int NOT NULL);
INSERT INTO events SELECT g, g % 10, g % 1000 FROM generate_series(1, 100000) g;
CREATE TABLE titles (id int PRIMARY KEY, t text NOT NULL);
INSERT INTO titles SELECT g, md5(g::text) FROM generate_series(1, 30000) g;
VACUUM ANALYZE events;
VACUUM ANALYZE titles;
-- the statistics of this database start after the load (its INSERT would otherwise weigh as the app's writes)
SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0);
"""

WRITES = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE stock (id int PRIMARY KEY, qty int NOT NULL);
INSERT INTO stock SELECT g, 0 FROM generate_series(1, 2000) g;
"""

RECURSIVE = ("WITH RECURSIVE t(id) AS (SELECT id FROM {0} WHERE id = $1 UNION ALL "
             "SELECT c.id FROM {0} c JOIN t ON c.parent_id = t.id) SELECT count(*) FROM t")


async def _strategy_workload(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(1500):  # read-mostly lookups (10 writes) vs a hot counter written as often as read
            await conn.fetchrow("SELECT name, price FROM plans WHERE id = $1", 1 + i % 200)
            await conn.fetchrow("SELECT hits FROM counters WHERE id = $1", 1 + i % 200)
            await conn.execute("UPDATE counters SET hits = hits + 1 WHERE id = $1", 1 + i % 200)
        for i in range(10):
            await conn.execute("UPDATE plans SET price = price + 1 WHERE id = $1", 1 + i)
        # append-only in time order, old rows range-deleted; the near-miss: the same, then updated in place
        for table in ("readings", "visits"):
            await conn.execute(f"INSERT INTO {table} (at, {'value' if table == 'readings' else 'seen'}) "
                               "SELECT now() - interval '1 second' * (30000 - g), 0 FROM generate_series(1, 30000) g")
        await conn.execute("DELETE FROM readings WHERE at < now() - interval '25000 seconds'")
        await conn.execute("UPDATE visits SET seen = 1")
        await conn.execute("ANALYZE readings; ANALYZE visits")
        for table, column in (("articles", "title"), ("notes", "body")):
            for _ in range(5):
                await conn.fetch(f"SELECT id FROM {table} WHERE {column} ILIKE $1", "%abc%")
        for table in ("docs", "docs_indexed"):
            for _ in range(5):
                await conn.fetch(f"SELECT id FROM {table} WHERE data @> $1::jsonb", '{"kind": 7}')
        for table in ("categories", "flat"):
            for _ in range(5):
                await conn.fetchval(RECURSIVE.format(table), 1)
        for i in range(200):  # orders: every call by customer_id; logs: half by host, half by level
            await conn.fetch("SELECT id, total FROM orders WHERE customer_id = $1", i)
            await conn.fetch("SELECT id FROM logs WHERE host = $1", i)
            await conn.fetch("SELECT id FROM logs WHERE level = $1 LIMIT 5", i % 5)
    finally:
        await conn.close()
    for _ in range(120):  # connection churn: short sessions, one query each
        c = await asyncpg.connect(dsn)
        await c.fetchval("SELECT 1")
        await c.close()


async def _reads_workload(dsn: str) -> None:
    async def reader() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for i in range(25):
                await conn.fetchval("SELECT sum(v) FROM events WHERE kind = $1", i % 10)
        finally:
            await conn.close()
    await asyncio.gather(*(reader() for _ in range(4)))
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(3):  # pg_trgm not created in this database: the advice creates it first
            await conn.fetch("SELECT id FROM titles WHERE t ILIKE $1", "%ab%")
        await conn.execute("UPDATE events SET v = v + 1 WHERE id = $1", 1)
    finally:
        await conn.close()


async def _writes_workload(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(3000):
            await conn.execute("UPDATE stock SET qty = qty + 1 WHERE id = $1", 1 + i % 2000)
        await conn.fetchval("SELECT qty FROM stock WHERE id = $1", 1)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    pg = PostgresServer(settings={"max_connections": "40"})  # 25 idle connections are then most of them
    try:
        pg.start()
        for name, schema, workload in (("strategy", SCHEMA, _strategy_workload), ("reads", READS, _reads_workload),
                                       ("writes", WRITES, _writes_workload)):
            pg.psql(f"CREATE DATABASE {name}")
            pg.psql(schema, database=name)
            asyncio.run(workload(pg.dsn(database=name)))
        yield pg
    finally:
        pg.destroy()


def _advise(pg: PostgresServer, database: str, **options: Any) -> tuple[WorkloadProfile, list[Finding]]:
    store = SnapshotStore(history_size=2)
    t = target("postgres", pg.dsn(database=database), {"workload": options})
    snapshot = asyncio.run(collect_once(store, PgWorkloadCollector, PostgresSession, t))
    assert snapshot.error is None, snapshot.error
    profile = snapshot.fact(WorkloadProfile)
    assert profile is not None
    return profile, evaluate(store, "postgres", "strategy")


@pytest.fixture(scope="module")
def strategy(server: PostgresServer) -> tuple[WorkloadProfile, list[Finding]]:
    return _advise(server, "strategy")


def test_shard_key_fires_on_the_column_every_call_filters_on_not_on_a_table_filtered_two_ways(server):
    # the size floor is lowered: the test tables are megabytes, not the default 10 GiB
    _, findings = _advise(server, "strategy", shard_min_table_bytes=1024 * 1024)
    assert _tables(findings, "ShardKeyCandidate") == {"public.orders"}
    [f] = by_rule(findings, "ShardKeyCandidate")
    assert f.evidence["column"] == "customer_id" and f.evidence["filter_call_share"] >= 0.99  # the load INSERT
    assert 4000 <= f.evidence["distinct_values"] <= 6000 and not f.evidence["skewed"] and f.evidence["sql"] is None
    _, default = _advise(server, "strategy")
    assert by_rule(default, "ShardKeyCandidate") == []


def _tables(findings: list[Finding], rule: str) -> set[str]:
    return {f.evidence["table"] for f in by_rule(findings, rule)}


def test_profile_counts_lookups_writes_and_features(strategy):
    profile, findings = strategy
    [f] = by_rule(findings, "WorkloadProfile")
    kinds = f.evidence["kinds"]
    assert kinds["point"]["calls"] >= 3000 and kinds["write"]["calls"] >= 1500
    assert {"ilike", "json_contains", "recursive"} <= set(f.evidence["features"])
    assert "public.readings" in f.evidence["append_only_tables"]
    assert "public.visits" not in f.evidence["append_only_tables"]
    assert f.evidence["connections"]["sessions_since_reset"] >= 120
    assert f.evidence["growth_basis"] != "" and f.evidence["database_bytes"] > 0


def test_cache_candidate_fires_on_read_mostly_lookups_not_on_a_counter_written_as_often(strategy):
    _, findings = strategy
    assert _tables(findings, "CacheCandidate") == {"public.plans"}
    [f] = by_rule(findings, "CacheCandidate")
    assert f.evidence["point_reads"] >= 1500 and f.evidence["table_writes"] == 10
    assert f.evidence["estimated_hit_rate"] > 0.99 and f.evidence["sql"] is None
    assert {"observed", "action", "cost", "wrong_when", "confidence", "lock", "risk"} <= set(f.evidence)


def test_time_series_fires_on_append_only_not_on_a_time_keyed_table_updated_in_place(strategy):
    _, findings = strategy
    assert _tables(findings, "TimeSeriesLayout") == {"public.readings"}
    [f] = by_rule(findings, "TimeSeriesLayout")
    assert f.evidence["time_column"] == "at" and f.evidence["correlation"] > 0.9 and f.evidence["deletes"] > 0
    assert f.evidence["sql"].startswith("CREATE INDEX CONCURRENTLY readings_at_brin ON public.readings USING brin")
    assert f.evidence["risk"] == "low" and "SHARE UPDATE EXCLUSIVE" in f.evidence["lock"]


def test_search_index_fires_on_ilike_scans_not_where_a_trigram_index_exists(strategy):
    _, findings = strategy
    assert _tables(findings, "SearchIndexCandidate") == {"public.articles"}
    [f] = by_rule(findings, "SearchIndexCandidate")
    assert f.evidence["column"] == "title" and f.evidence["pg_trgm"] == "installed"
    assert f.evidence["sql"] == "CREATE INDEX CONCURRENTLY articles_title_trgm ON public.articles USING gin (title gin_trgm_ops);"


def test_document_model_fires_on_unindexed_containment_not_on_the_indexed_twin(strategy):
    _, findings = strategy
    assert _tables(findings, "DocumentModelCandidate") == {"public.docs"}
    [f] = by_rule(findings, "DocumentModelCandidate")
    assert "USING gin (data jsonb_path_ops)" in f.evidence["sql"] and f.evidence["risk"] == "low"


def test_graph_query_fires_on_a_self_referencing_table_not_on_a_plain_int_column(strategy):
    _, findings = strategy
    assert _tables(findings, "GraphQueryCandidate") == {"public.categories"}
    [f] = by_rule(findings, "GraphQueryCandidate")
    assert f.evidence["self_reference"] == "parent_id" and f.evidence["recursive_calls"] >= 5


def test_pooler_fires_on_connection_churn_not_on_one_long_session(server, strategy):
    _, findings = strategy
    [f] = by_rule(findings, "ConnectionPoolerAdvised")
    assert f.evidence["sessions"] >= 120 and f.evidence["pool_mode"] == "transaction"
    _, quiet = _advise(server, "writes")
    assert by_rule(quiet, "ConnectionPoolerAdvised") == []


def test_pooler_fires_on_many_idle_connections(server):
    async def hold() -> tuple[WorkloadProfile, list[Finding]]:
        idle = [await asyncpg.connect(server.dsn(database="writes")) for _ in range(25)]
        try:
            return await asyncio.to_thread(_advise, server, "writes")
        finally:
            await asyncio.gather(*(c.close() for c in idle))
    _, findings = asyncio.run(hold())
    [f] = by_rule(findings, "ConnectionPoolerAdvised")
    assert f.evidence["idle"] >= 25 and f.evidence["max_connections"] == 40
    assert "idle connections" in f.summary and f"{f.evidence['idle']} idle" in f.evidence["observed"]


def test_read_replicas_fire_on_a_read_mostly_database_not_on_an_update_heavy_one(server):
    # the busy floor is lowered: a test server counts minutes, a production one weeks
    profile, reads = _advise(server, "reads", replica_min_busy=0.0)
    found = by_rule(reads, "ReadReplicasAdvised")
    assert len(found) == 1, [(s.kind, s.calls, s.seconds, s.tables) for s in profile]
    [f] = found
    assert f.evidence["read_time_share"] >= 0.8
    # the server runs beside the test: its CPU is evidence, with what it covers
    assert f.evidence["server_cpu_share"] is not None and f.evidence["cpu_basis"] == "since the server started"
    assert f"of the machine's {f.evidence['cpus']} CPUs" in f.evidence["observed"]
    assert any("sum(v)" in s["query"] for s in f.evidence["replica_statements"])
    _, writes = _advise(server, "writes", replica_min_busy=0.0)
    assert by_rule(writes, "ReadReplicasAdvised") == []
    [search] = by_rule(reads, "SearchIndexCandidate")
    assert search.evidence["pg_trgm"] == "available" and search.evidence["risk"] == "low"
    assert search.evidence["sql"].startswith("CREATE EXTENSION IF NOT EXISTS pg_trgm;\nCREATE INDEX CONCURRENTLY")


def test_advise_section_strategy_end_to_end(server, tmp_path: Path):
    config = tmp_path / "dbwatch.yaml"
    config.write_text(f"targets:\n  - name: pg\n    engine: postgres\n    dsn: {server.dsn(database='strategy')}\n")
    dbwatch = Path(sys.executable).parent / "dbwatch"
    result = subprocess.run([str(dbwatch), "advise", "-c", str(config), "--section", "strategy", "--format", "json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rules = {r["rule"] for r in json.loads(result.stdout)}
    assert {"WorkloadProfile", "CacheCandidate", "TimeSeriesLayout"} <= rules
    assert rules <= {"WorkloadProfile", "CacheCandidate", "TimeSeriesLayout", "ReadReplicasAdvised",
                     "ConnectionPoolerAdvised", "SearchIndexCandidate", "DocumentModelCandidate",
                     "GraphQueryCandidate"}, rules
