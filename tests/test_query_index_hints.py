"""rules/query_index_hints.py on a real PostgreSQL: functions or casts on a column that leads a b-tree index.

Starts one throwaway PostgreSQL 15 (tests/pgcluster.py; pg_stat_statements preloaded). The statements
collector (pg_stat_statements) gives the statements, the PostgreSQL advisor collector the index facts
(:class:`IndexKeysList`), both on one session, as the daemon runs them.
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_advisor import AdvisorCollector
from dbwatch.collectors.pg_statements import StatementsCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.sqlshape import ExpressionUse, PostgresAnalyser, Skipped
from tests.auditutil import by_rule, evaluate, target
from tests.helpers import collect
from tests.pgcluster import PostgresServer


def expression_uses(text: str) -> list[ExpressionUse]:
    found = PostgresAnalyser().expression_uses(text)
    return [] if isinstance(found, Skipped) else found


SCHEMA = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO users SELECT g, 'U' || g || '@example.com', '2026-01-01'::timestamptz + g * interval '1 minute'
FROM generate_series(1, 50000) g;
CREATE INDEX users_email_idx ON users (email);
CREATE INDEX users_created_at_idx ON users (created_at);
CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL);
INSERT INTO accounts SELECT g, 'A' || g || '@example.com' FROM generate_series(1, 1000) g;
CREATE INDEX accounts_email_idx ON accounts (email);
CREATE INDEX accounts_lower_email_idx ON accounts (lower(email));
CREATE TABLE plain (id int PRIMARY KEY, email text NOT NULL);
ANALYZE;
"""
Q_LOWER = "SELECT id FROM users WHERE lower(email) = 'u{}@example.com'"
Q_CAST = "SELECT id FROM users WHERE created_at::date = '2026-01-{:02d}'"
Q_SARGABLE = "SELECT id FROM users WHERE email = 'U{}@example.com'"
Q_SERVED = "SELECT id FROM accounts WHERE lower(email) = 'a{}@example.com'"  # an expression index serves it
Q_UNINDEXED = "SELECT id FROM plain WHERE lower(email) = 'p{}@example.com'"  # no index on email at all
WORKLOAD = ";\n".join(q.format(i) for q in (Q_LOWER, Q_CAST, Q_SARGABLE, Q_SERVED, Q_UNINDEXED)
                      for i in (1, 2, 3)) + ";"


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        server.psql("CREATE DATABASE hints")
        server.psql(SCHEMA, database="hints")
        yield server
    finally:
        server.destroy()


async def _findings(pg: PostgresServer, workload: str) -> list:
    t = target("postgres", pg.dsn(database="hints"), {"statements": {"top_n": 500}, "advisor": {}})
    session = PostgresSession(t)
    store = SnapshotStore()
    try:
        statements = StatementsCollector(t, session)
        await collect(statements, store)  # baseline
        pg.psql(workload, database="hints")
        await collect(statements, store)
        await collect(AdvisorCollector(t, session), store)
    finally:
        await session.close()
    return [f for f in by_rule(evaluate(store, "postgres", "query_index_hints"), "QueryRewriteHint")
            if f.evidence.get("datname") == "hints"]


async def test_lower_and_date_cast_on_indexed_columns_are_hinted_and_sargable_or_served_ones_are_not(pg):
    findings = await _findings(pg, WORKLOAD)
    by_query = {f.evidence["query"]: f for f in findings}
    assert set(by_query) == {"SELECT id FROM users WHERE lower(email) = $1",
                             "SELECT id FROM users WHERE created_at::date = $1"}, [f.summary for f in findings]
    lower = by_query["SELECT id FROM users WHERE lower(email) = $1"]
    assert lower.evidence["hint"] == "function_on_indexed_column" and lower.kind == "recommendation"
    assert lower.evidence["index"] == "public.users_email_idx" and lower.evidence["index_columns"] == ["email"]
    assert lower.evidence["expression"] == "lower(email)" and lower.evidence["calls"] == 3
    assert lower.evidence["sql"] == "CREATE INDEX CONCURRENTLY users_lower_email_idx ON public.users ((lower(email)));"
    cast = by_query["SELECT id FROM users WHERE created_at::date = $1"]
    assert cast.evidence["index"] == "public.users_created_at_idx" and cast.evidence["kind"] == "cast"
    assert cast.evidence["sql"] is None and "created_at >= $1" in cast.description


async def test_after_the_recommended_expression_index_the_plan_uses_it_and_the_hint_is_gone(pg):
    [lower] = [f for f in await _findings(pg, WORKLOAD) if "lower(email)" in f.evidence["query"]]
    query = Q_LOWER.format(7)
    before = json.dumps(json.loads(pg.psql(f"EXPLAIN (FORMAT JSON) {query}", database="hints")))
    assert "Seq Scan" in before  # the index on (email) cannot serve lower(email)
    pg.psql(lower.evidence["sql"], database="hints")
    try:
        after = json.dumps(json.loads(pg.psql(f"EXPLAIN (FORMAT JSON) {query}", database="hints")))
        assert "users_lower_email_idx" in after
        remaining = [f.evidence["query"] for f in await _findings(pg, WORKLOAD)]
        assert remaining == ["SELECT id FROM users WHERE created_at::date = $1"]
    finally:
        pg.psql("DROP INDEX users_lower_email_idx", database="hints")


def test_only_a_function_or_cast_of_one_column_compared_with_a_value_counts():
    assert [u.expression for u in expression_uses("SELECT 1 FROM t WHERE lower(a) = lower($1)")] == ["lower(a)"]
    assert expression_uses("SELECT 1 FROM t WHERE a = lower($1)") == []
    assert expression_uses("SELECT 1 FROM t WHERE lower(a) = lower(b)") == []
    assert expression_uses("SELECT 1 FROM t WHERE coalesce(a, b) = $1") == []
    assert expression_uses("INSERT INTO t VALUES (lower($1))") == []
