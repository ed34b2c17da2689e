"""Shared fixtures: throwaway PostgreSQL 15 servers (see tests/pgcluster.py), and sessions to any target.

A server that cannot start fails the tests that need it, with the server log's tail in the error; nothing
is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dbwatch.model import Target
from dbwatch.collectors.base import Session
from dbwatch.collectors.engines import engine
from tests.pgcluster import PostgresServer


def _serve(make: Callable[[], PostgresServer]) -> Iterator[PostgresServer]:
    server = make()
    try:
        server.start()
        yield server
    finally:
        server.destroy()  # pg_ctl stop -m immediate, then the directory goes


@pytest.fixture(scope="session")
def pg_primary() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 primary with pg_stat_statements preloaded and created, for the whole test session."""
    for server in _serve(PostgresServer):
        server.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        yield server


@pytest.fixture(scope="session")
def pg_standby(pg_primary: PostgresServer) -> Iterator[PostgresServer]:
    """A streaming standby of pg_primary (pg_basebackup -R -X stream -C -S standby1)."""
    yield from _serve(lambda: PostgresServer(settings=pg_primary.settings, primary=pg_primary))


@pytest.fixture
def pg_scratch() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 of the test's own, to stop or break without disturbing the others."""
    yield from _serve(PostgresServer)


@pytest.fixture
async def session_for():
    """Open the engine's own session for a target (as the daemon would); all are closed after the test."""
    sessions: list[Session] = []

    def make(target: Target) -> Session:
        session = engine(target.engine).session(target)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()
