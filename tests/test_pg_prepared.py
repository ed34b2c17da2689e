"""The PostgreSQL session's prepared statements (collectors/postgres.py): the monitoring statements are
prepared once per connection and reused by every later collection; through a pooler that loses them between
transactions (PgBouncer in transaction mode, here resetting every server connection after each transaction),
the session says so once and goes on with unnamed statements. Real servers: the session's primary
(``pg_primary``), a throwaway PostgreSQL and PgBouncer of the test's own."""

from __future__ import annotations

import logging

import pytest

from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.pg_migrations import PgMigrationsCollector
from dbwatch.collectors.pg_stats_more import MoreStatsCollector
from dbwatch.collectors.postgres import PostgresCollector
from dbwatch.model import CollectorSettings, Target
from tests.helpers import collect
from tests.pgbouncerserver import PASSWORDS, PgBouncerServer

COUNT = "SELECT count(*) AS n FROM pg_prepared_statements"


def make_target(dsn: str, **extra) -> Target:
    return Target(name="t", engine="postgres", dsn=dsn, labels={},
                  collectors={name: CollectorSettings(15, 5) for name in ("postgres", "stats", "migrations")},
                  **extra)


async def prepared(session) -> int:
    async with session.lock:
        return int((await session.run(COUNT))[0]["n"])


async def test_statements_are_prepared_once_and_reused_by_later_collections(pg_primary, session_for):
    target = make_target(pg_primary.dsn())
    session = session_for(target)
    collectors = [cls(target, session) for cls in (PostgresCollector, MoreStatsCollector, PgMigrationsCollector)]
    for collector in collectors:
        await collect(collector)
    first = await prepared(session)
    assert first >= 3, f"only {first} statements prepared after one collection of each collector"
    for _ in range(2):
        for collector in collectors:
            assert (await collect(collector)).families
    assert await prepared(session) == first, "a later collection prepared its statements again"


@pytest.fixture
def pooler(pg_scratch):
    # Transaction mode, and every server connection reset (DISCARD ALL) after each transaction: a statement
    # prepared in one transaction is gone by the next, as behind any pooler that hands out server connections
    # per transaction. The session's startup parameters are ignored, as a pooler in front of dbwatch needs.
    bouncer = PgBouncerServer({"app": (pg_scratch.port, None)}, pool_mode="transaction", extra=(
        "server_reset_query = DISCARD ALL", "server_reset_query_always = 1",
        "ignore_startup_parameters = extra_float_digits,statement_timeout,lock_timeout,"
        "default_transaction_read_only,idle_in_transaction_session_timeout,application_name")).start()
    yield bouncer
    bouncer.destroy()


async def test_a_pooler_losing_prepared_statements_turns_them_off_and_collections_go_on(
        pooler, session_for, monkeypatch, caplog):
    monkeypatch.setenv("DBWATCH_TEST_APP_PASSWORD", PASSWORDS["app"])
    target = make_target(pooler.dsn(user="app", database="app"), password_env="DBWATCH_TEST_APP_PASSWORD")
    session = session_for(target)
    collector = PostgresCollector(target, session)
    outcomes = []
    with caplog.at_level(logging.WARNING, logger="dbwatch.collectors.postgres"):
        # The first collection prepares each statement and uses it at once; the second reuses one, which the
        # pooler lost: that collection fails, and the session reconnects without prepared statements.
        for _ in range(6):
            try:
                outcomes.append(bool((await collect(collector)).families))
            except CollectorError as exc:
                outcomes.append(str(exc))
    failures = [o for o in outcomes if isinstance(o, str)]
    assert len(failures) == 1 and outcomes[0] is True, outcomes
    assert "lost" in failures[0] and PASSWORDS["app"] not in failures[0]
    assert outcomes[outcomes.index(failures[0]) + 1:] == [True] * (5 - outcomes.index(failures[0])), outcomes
    assert session.statement_cache_size == 0
    assert sum("prepared statements do not survive" in r.getMessage() for r in caplog.records) == 1
