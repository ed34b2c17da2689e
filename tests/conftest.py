"""Shared fixtures: throwaway PostgreSQL 15 servers (see tests/pgcluster.py)."""

from __future__ import annotations

import pytest

from tests.pgcluster import PostgresServer


@pytest.fixture(scope="session")
def pg_primary():
    """A PostgreSQL 15 primary with pg_stat_statements preloaded, for the whole test session."""
    server = PostgresServer().start()
    server.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def pg_standby(pg_primary):
    """A streaming standby of pg_primary (pg_basebackup -R with a replication slot)."""
    server = pg_primary.standby()
    yield server
    server.destroy()


@pytest.fixture
def pg_scratch():
    """A PostgreSQL 15 of the test's own, to stop or break without disturbing the others."""
    server = PostgresServer().start()
    yield server
    server.destroy()
