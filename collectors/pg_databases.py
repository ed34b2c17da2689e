"""Every database of a PostgreSQL target, as postgres_exporter's ``--auto-discover-databases`` finds them.

Per-table statistics and per-database custom queries only see the database they run in, so the collectors
that need them ask :func:`per_database` for a session on each database the role may connect to, filtered
by the include and exclude lists. The target's own database reuses the target's session; every other
database gets a session of its own for the length of one collection, then closed: no idle backend is left
behind in every database between collections (the price is one backend start per other database per
interval, which is why these collectors run less often than the server-wide one).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model.options import CollectorOptions, Count, Flag, Texts

__all__ = ["DISCOVER", "DatabaseScope", "database_dsn", "describe_failure", "discover", "per_database"]

# Databases a session could open: not templates, open to connections, and CONNECT granted to the role.
DISCOVER = """
SELECT datname FROM pg_database
WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT')
ORDER BY datname
"""


class DatabaseScope(CollectorOptions):
    """Which databases a per-database collector visits (postgres_exporter's discovery flags)."""

    auto_discover_databases: Flag = True  # False: only the database of the target's DSN
    include_databases: Texts = ()  # empty: every database found
    exclude_databases: Texts = ()
    max_databases: Count = 50  # a bound on connections per collection


def database_dsn(dsn: str, database: str) -> str:
    """The target's DSN with another database in its path (query parameters such as sslmode kept)."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database, safe="")))


async def discover(session: PostgresSession, scope: DatabaseScope) -> tuple[str, list[str]]:
    """The session's own database and the databases to visit, own first, in name order, at most
    ``max_databases`` (the ones left over are reported by the caller as a note)."""
    async with session.lock:
        own = (await session.run("SELECT current_database() AS d"))[0]["d"]
        names = [row["datname"] for row in await session.run(DISCOVER)] if scope.auto_discover_databases else []
    wanted = [own] + [n for n in names if n != own]
    if scope.include_databases:
        wanted = [n for n in wanted if n in scope.include_databases]
    return own, [n for n in wanted if n not in scope.exclude_databases]


@asynccontextmanager
async def per_database(session: PostgresSession, own: str, database: str) -> AsyncIterator[PostgresSession]:
    """A session on ``database``: the target's own (under its lock) or a short-lived one (closed after)."""
    if database == own:
        async with session.lock:
            yield session
        return
    target = dataclasses.replace(session.target, dsn=database_dsn(session.target.dsn, database))
    other = PostgresSession(target)
    try:
        async with other.lock:
            await other.connection()
            yield other
    finally:
        await other.close()


def describe_failure(database: str, exc: CollectorError) -> str:
    """The note a skipped database leaves in the snapshot (the error text is already secret-free)."""
    return f"database {database} skipped: {exc}"
