"""The schema designer on a real PostgreSQL 15 with a planted schema: each finding fires on its pattern and
stays silent on its near miss, and every statement it offers runs on the server as offered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_schema_design import PgSchemaDesignCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model.facts.schema_design import SchemaDesignFacts
from tests.auditutil import by_rule, collect_once, evaluate, target
from tests.agentproc import AgentProcess
from tests.helpers import collect, wait_for
from tests.pgcluster import PostgresServer

PLANTED = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 300) g;
CREATE TABLE products (id bigint PRIMARY KEY, title text);
INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 50) g;
CREATE TABLE warehouses (id int PRIMARY KEY);
INSERT INTO warehouses SELECT generate_series(1, 5);
CREATE TABLE orders (
  id serial PRIMARY KEY,
  customer_id int,                             -- MissingForeignKey, no orphans: NOT VALID + VALIDATE
  product_id int REFERENCES products (id),     -- near miss: has its foreign key
  warehouse_id int,                            -- MissingForeignKey with orphans: only the orphan query
  partner_id int,                              -- near miss: no table named partner(s)
  note text,                                   -- ColumnNeverNull (nullable, never null)
  comment text,                                -- near miss: nullable and has NULLs
  total_amount double precision,               -- FloatForMoney
  latitude double precision,                   -- near miss: a float not named like money
  created_at timestamp,                        -- TimestampWithoutTimeZone
  created_tz timestamptz,                      -- near miss: has a zone
  status text,                                 -- SchemaLowCardinalityText
  tags text,                                   -- SchemaDelimitedList
  remark text,                                 -- near miss: sentences with commas
  ext_ref varchar(36),                         -- SchemaUuidAsText
  payload json,                                -- SchemaJsonNotJsonb
  payload_b jsonb                              -- near miss: already jsonb
);
INSERT INTO orders (customer_id, product_id, warehouse_id, partner_id, note, comment, total_amount, latitude,
                    created_at, created_tz, status, tags, remark, ext_ref, payload, payload_b)
SELECT 1 + g % 300, 1 + g % 50, 1 + g % 7, g, 'n' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'x' END, g * 1.5,
       g * 0.01, now(), now(), (ARRAY['new', 'paid', 'shipped'])[1 + g % 3],
       'red,green,blue' || (g % 20), 'Hello, world number ' || g || ', again',
       md5(g::text)::uuid::text, '{"a": 1}', '{"a": 1}'
FROM generate_series(1, 2000) g;
CREATE TABLE item_attributes (entity_id int, attribute text, value text);    -- EAV
INSERT INTO item_attributes SELECT g, 'colour', 'red' FROM generate_series(1, 10) g;
CREATE TABLE tickets (id serial PRIMARY KEY, title text);                   -- key overflow
SELECT setval('tickets_id_seq', 1800000000);
CREATE TABLE events (id serial PRIMARY KEY);                                -- near miss: far from the end
SELECT setval('events_id_seq', 1000);
ANALYZE;
"""

SCHEMA_RULES = {"MissingForeignKey", "ColumnNeverNull", "FloatForMoney", "TimestampWithoutTimeZone"}


@pytest.fixture(scope="module")
def planted():
    server = PostgresServer().start()
    try:
        server.psql("CREATE DATABASE design")
        server.psql(PLANTED, database="design")
        yield server
    finally:
        server.destroy()


async def _advise(server: PostgresServer, **options):
    t = target("postgres", server.dsn(database="design"), {"schema_design": options})
    session = PostgresSession(t)
    store = SnapshotStore()
    try:
        snapshot = await collect(PgSchemaDesignCollector(t, session), store)
    finally:
        await session.close()
    return snapshot.fact(SchemaDesignFacts), evaluate(store, "postgres", "schema_design")


def _columns(findings, rule: str) -> set[str]:
    return {f.labels.get("column", f.labels["table"]) for f in by_rule(findings, rule)}


async def _run(server: PostgresServer, sql: str) -> None:
    conn = await asyncpg.connect(server.dsn(database="design"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_each_finding_fires_on_its_pattern_and_not_on_its_near_miss(planted):
    facts, findings = await _advise(planted)
    assert facts is not None and facts.engine == "postgres"
    assert _columns(findings, "MissingForeignKey") == {"customer_id", "warehouse_id"}
    assert _columns(findings, "ColumnNeverNull") >= {"note"}
    assert "comment" not in _columns(findings, "ColumnNeverNull")
    assert _columns(findings, "FloatForMoney") == {"total_amount"}
    assert _columns(findings, "TimestampWithoutTimeZone") == {"created_at"}
    assert _columns(findings, "SchemaLowCardinalityText") == {"status"}
    assert _columns(findings, "SchemaDelimitedList") == {"tags"}
    assert _columns(findings, "SchemaUuidAsText") == {"ext_ref"}
    assert _columns(findings, "SchemaJsonNotJsonb") == {"payload"}
    assert _columns(findings, "SchemaEntityAttributeValue") == {"public.item_attributes"}
    assert _columns(findings, "SchemaKeyOverflow") == {"id"}
    [overflow] = by_rule(findings, "SchemaKeyOverflow")
    assert overflow.labels["table"] == "public.tickets" and overflow.evidence["used"] > 0.8
    assert overflow.severity == "warning"
    assert all(f.evidence["lock"] and f.evidence["risk"] in ("low", "medium", "high") for f in findings)

    fks = {f.labels["column"]: f for f in by_rule(findings, "MissingForeignKey")}
    assert fks["customer_id"].evidence["orphans"] == 0
    assert fks["customer_id"].evidence["references"] == "public.customers.id"
    assert "NOT VALID" in fks["customer_id"].evidence["sql"] and "VALIDATE" in fks["customer_id"].evidence["sql"]
    # warehouse_id runs 1..7 against warehouses 1..5: two of every seven rows are orphans.
    assert fks["warehouse_id"].evidence["orphans"] == sum(1 for g in range(1, 2001) if 1 + g % 7 > 5)
    assert fks["warehouse_id"].evidence["sql"].startswith("SELECT")
    assert fks["warehouse_id"].evidence["risk"] == "low"


async def test_offered_statements_run_as_offered_and_then_the_finding_goes(planted):
    _, findings = await _advise(planted)
    for rule, column in (("MissingForeignKey", "customer_id"), ("ColumnNeverNull", "note"),
                         ("SchemaLowCardinalityText", "status"), ("SchemaUuidAsText", "ext_ref"),
                         ("FloatForMoney", "total_amount")):
        [finding] = [f for f in by_rule(findings, rule) if f.labels["column"] == column]
        await _run(planted, finding.evidence["sql"])
    _, after = await _advise(planted)
    assert "customer_id" not in _columns(after, "MissingForeignKey")
    assert "note" not in _columns(after, "ColumnNeverNull")
    assert "ext_ref" not in _columns(after, "SchemaUuidAsText")
    assert not by_rule(after, "FloatForMoney")
    # numeric without a scale kept every value: g * 1.5 for g in 1..2000
    assert planted.psql("SELECT sum(total_amount) FROM orders", database="design") == str(1.5 * 2000 * 2001 / 2)
    assert planted.psql("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND "
                        "attname = 'note'", database="design") == "t"


async def test_a_table_over_the_check_limit_gets_findings_but_no_unchecked_statement(planted):
    _, findings = await _advise(planted, check_rows_limit=10)
    [wh] = [f for f in by_rule(findings, "MissingForeignKey") if f.labels["column"] == "warehouse_id"]
    assert wh.evidence["orphans"] is None and wh.evidence["sql"].startswith("SELECT")
    assert all(f.evidence["sql"] is None for f in by_rule(findings, "ColumnNeverNull"))


def test_advise_sections_select_the_schema_designer_or_the_ha_review(planted, tmp_path):
    """``dbwatch advise --section schema`` runs the schema_design collector on demand and shows only the schema
    families; ``--section ha`` only the HA review (this standalone server has no WAL archive)."""
    config = tmp_path / "dbwatch.yaml"
    config.write_text(f"targets:\n  - name: design\n    engine: postgres\n    dsn: {planted.dsn(database='design')}\n")
    dbwatch = Path(sys.executable).parent / "dbwatch"
    sections = {}
    for section in ("schema", "ha"):
        result = subprocess.run([str(dbwatch), "advise", "-c", str(config), "--section", section, "--format", "json"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        sections[section] = {r["rule"] for r in json.loads(result.stdout)}
    assert {"MissingForeignKey", "TimestampWithoutTimeZone", "SchemaKeyOverflow", "ColumnNeverNull"} \
        <= sections["schema"]
    assert all(r.startswith("Schema") or r in SCHEMA_RULES for r in sections["schema"]), sections["schema"]
    assert sections["ha"] == {"HaNoPitr"}


async def test_key_overflow_says_how_many_days_are_left_at_the_observed_growth(planted):
    t = target("postgres", planted.dsn(database="design"), {"schema_design": {}})
    store = SnapshotStore()
    first = await collect_once(store, PgSchemaDesignCollector, PostgresSession, t)
    [once] = by_rule(evaluate(store, "postgres", "schema_design"), "SchemaKeyOverflow")
    assert once.evidence["days_left"] is None and "No growth observed yet" in once.description
    before = int(planted.psql("SELECT last_value FROM tickets_id_seq", database="design"))
    planted.psql(f"SELECT setval('tickets_id_seq', {before + 50_000_000})", database="design")
    second = await collect_once(store, PgSchemaDesignCollector, PostgresSession, t)
    [overflow] = by_rule(evaluate(store, "postgres", "schema_design"), "SchemaKeyOverflow")
    per_day = 50_000_000 / (second.started_at - first.started_at) * 86400
    assert overflow.evidence["per_day"] == pytest.approx(per_day, rel=1e-6)
    assert overflow.evidence["days_left"] == pytest.approx((2147483647 - before - 50_000_000) / per_day, abs=0.1)
    assert overflow.severity == "warning" and "days left" in overflow.summary


def test_the_daemon_with_the_designer_and_ha_review_enabled_serves_their_recommendations(planted, tmp_path):
    """The planted database watched by a real `dbwatch run` with schema_design and ha enabled."""
    config = {"targets": [{"name": "designed", "engine": "postgres", "dsn": planted.dsn(database="design"),
                           "collectors": {"statements": {"enabled": False}, "schema_design": {"enabled": True},
                                          "ha": {"enabled": True}}}]}
    agent = AgentProcess(tmp_path, config).start()
    try:
        wanted = {"SchemaKeyOverflow", "TimestampWithoutTimeZone", "HaNoPitr"}
        wait_for(lambda: {r["rule"] for r in agent.get("/api/v1/recommendations")} >= wanted, 60,
                 "the designer's and the HA review's recommendations")
    finally:
        agent.stop()
