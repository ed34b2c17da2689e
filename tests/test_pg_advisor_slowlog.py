"""The PostgreSQL index advisor costing the slow log's samples (literals kept) next to pg_stat_statements.

Starts one throwaway PostgreSQL 15 of its own (tests/pgcluster.py; pg_stat_statements preloaded, HypoPG from
Debian postgresql-15-hypopg) that logs every statement (log_min_duration_statement = 0) to a stderr-format
file; the slowlog and advisor collectors run on one shared PostgresSession, as the daemon runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_advisor import AdvisorCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.slowlog import SlowLogCollector
from tests.auditutil import evaluate, target
from tests.helpers import collect, wait_for
from tests.pgcluster import PostgresServer

SCHEMA = """
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION hypopg;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, ref int NOT NULL, amount numeric);
INSERT INTO orders SELECT g, (g::bigint * 7919) % 20000, g, g % 1000 FROM generate_series(1, 300000) g;
CREATE TABLE tickets (id int PRIMARY KEY, code int NOT NULL, batch int NOT NULL);
INSERT INTO tickets SELECT g, g, g % 20000 FROM generate_series(1, 300000) g;
VACUUM ANALYZE orders, tickets;
"""
Q_CUSTOMER = "SELECT * FROM orders WHERE customer_id = {}"
Q_REF = "SELECT amount FROM orders WHERE ref = {}"  # run before pg_stat_statements_reset(): slow log only
# Sent with bound parameters (extended protocol): logged as "execute <unnamed>: ... $1", slow log only.
Q_CODE = "SELECT id FROM tickets WHERE code = %s"
# A parameter nothing in the text types ($2 IS NOT NULL): the driver declared it (int2), PREPARE cannot infer it.
Q_BATCH = "SELECT id FROM tickets WHERE batch = %s AND %s IS NOT NULL"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    pg = PostgresServer(settings={
        "log_min_duration_statement": "0", "logging_collector": "on", "log_destination": "'stderr'",
        "log_directory": "'log'", "log_filename": "'postgresql.log'", "lc_messages": "'C'",
        "log_line_prefix": "'%m [%p] user=%u,db=%d '"})
    try:
        pg.start()
        pg.psql(SCHEMA)
        pg.psql(";\n".join(Q_REF.format(r) for r in (123456, 654)) + ";")
        import psycopg

        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            for code in (1234, 98765):
                conn.execute(Q_CODE, (code,)).fetchall()
            pg.psql("SELECT pg_stat_statements_reset()")
            for batch in (7, 8, 9):
                conn.execute(Q_BATCH, (batch, 1)).fetchall()
        pg.psql(";\n".join(Q_CUSTOMER.format(c) for c in (4242, 4242, 4242)) + ";")
        log = pg.data / "log" / "postgresql.log"
        wait_for(lambda: Q_CUSTOMER.format(4242) in (log.read_text() if log.exists() else ""), 10,
                 "the logging collector to write the workload")
        yield pg
    finally:
        pg.destroy()


def _target(pg: PostgresServer, log: Path | None) -> object:
    collectors: dict[str, dict[str, object]] = {"advisor": {"min_total_time_share": 0.0}}
    if log is not None:
        collectors["slowlog"] = {"path": str(log), "format": "postgres-stderr", "from_beginning": True}
    return target("postgres", pg.dsn(), collectors)


async def _advise(pg: PostgresServer, with_slowlog: bool) -> tuple[list, PostgresSession]:
    t = _target(pg, pg.data / "log" / "postgresql.log" if with_slowlog else None)
    session = PostgresSession(t)  # one session for the target's collectors, as the daemon does
    store = SnapshotStore()
    try:
        if with_slowlog:
            await collect(SlowLogCollector(t, session), store)
        await collect(AdvisorCollector(t, session), store)
    finally:
        await session.close()
    return evaluate(store, "postgres", "indexes"), session


def _candidate(findings: list, columns: list[str]):
    return next((f for f in findings if f.rule == "PgIndexCandidate" and f.evidence["columns"] == columns), None)


async def test_the_slow_log_sample_with_its_literals_is_the_costed_statement(server):
    findings, session = await _advise(server, with_slowlog=True)
    assert any(s.sample == Q_CUSTOMER.format(4242) for s in session.slow_samples.values())
    found = _candidate(findings, ["customer_id"])
    assert found is not None, [f.summary for f in findings]
    assert found.evidence["method"] == "hypopg" and found.evidence["source"] == "slowlog"
    [statement] = [s for s in found.evidence["statements"] if "customer_id" in s["query"]]
    # the literal statement was planned (custom plan), with pg_stat_statements' numbers for its class
    assert statement["query"] == Q_CUSTOMER.format(4242) and statement["source"] == "slowlog"
    assert statement["calls"] == 3 and statement["queryid"] == int(server.psql(
        "SELECT queryid FROM pg_stat_statements WHERE query = 'SELECT * FROM orders WHERE customer_id = $1'"))
    assert statement["cost_after"] <= 0.5 * statement["cost_before"]
    assert found.evidence["sql"] == "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);"


async def test_a_sample_whose_class_left_pg_stat_statements_is_still_costed_from_the_slow_log(server):
    findings, _ = await _advise(server, with_slowlog=True)
    found = _candidate(findings, ["ref"])
    assert found is not None, [f.summary for f in findings]
    [statement] = found.evidence["statements"]
    assert statement["query"] in (Q_REF.format(123456), Q_REF.format(654)) and statement["source"] == "slowlog"
    assert statement["calls"] == 2  # the slow log's count for the class: both ref lookups, one sample
    assert statement["cost_after"] <= 0.1 * statement["cost_before"]


async def test_without_the_slowlog_collector_the_advice_comes_from_pg_stat_statements(server):
    findings, session = await _advise(server, with_slowlog=False)
    assert session.slow_samples == {}
    found = _candidate(findings, ["customer_id"])
    assert found is not None, [f.summary for f in findings]
    assert found.evidence["source"] == "pg_stat_statements"
    [statement] = found.evidence["statements"]
    assert statement["query"] == "SELECT * FROM orders WHERE customer_id = $1"
    assert statement["source"] == "pg_stat_statements"
    assert _candidate(findings, ["ref"]) is None  # known only to the slow log


async def test_a_sample_logged_with_placeholders_is_planned_generically_not_dropped(server):
    """The extended protocol logs "execute <unnamed>: ... code = $1" (its values on a DETAIL line): the sample
    keeps its $1 and is costed with a generic plan (PREPARE, force_generic_plan) instead of being dropped."""
    findings, session = await _advise(server, with_slowlog=True)
    assert any("code = $1" in s.sample for s in session.slow_samples.values()), list(session.slow_samples.values())
    found = _candidate(findings, ["code"])
    assert found is not None, [f.summary for f in findings]
    [statement] = found.evidence["statements"]
    assert statement["query"] == "SELECT id FROM tickets WHERE code = $1" and statement["source"] == "slowlog"
    assert statement["calls"] == 2 and statement["cost_after"] <= 0.1 * statement["cost_before"]


async def test_a_parameter_the_statement_does_not_type_is_declared_text_and_the_statement_costed(server):
    findings, _ = await _advise(server, with_slowlog=False)
    found = _candidate(findings, ["batch"])
    assert found is not None, [f.summary for f in findings]
    [statement] = found.evidence["statements"]
    assert statement["query"] == "SELECT id FROM tickets WHERE batch = $1 AND $2 IS NOT NULL"
    assert statement["calls"] == 3 and statement["cost_after"] <= 0.1 * statement["cost_before"]
