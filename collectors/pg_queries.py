"""dbwatch's own custom queries (:mod:`.custom_queries`) on a PostgreSQL target.

Each query runs on the target's own connection and database, in a ``READ ONLY`` transaction whose
``statement_timeout`` is the query's ``timeout`` (at most the session's, which is 80 % of the shortest
collector timeout): the server cancels it cleanly and the connection stays. (A postgres_exporter
``queries.yaml``, with its per-database runs, is the ``custom`` collector's: :mod:`.pg_custom`.)
"""

from __future__ import annotations

from collections.abc import Sequence

from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.custom_parse import QuerySpec
from dbwatch.collectors.custom_queries import QueriesCollector, Row
from dbwatch.collectors.postgres import PostgresSession

__all__ = ["PgQueriesCollector"]


class PgQueriesCollector(QueriesCollector[PostgresSession]):
    async def fetch(self, query: QuerySpec, timeout: float) -> Sequence[Row]:
        import asyncpg  # loaded by the session's connect already

        session = self.session
        limit = session.statement_timeout_ms if timeout <= 0 else min(session.statement_timeout_ms,
                                                                       max(1, int(timeout * 1000)))
        async with session.lock:
            conn = await session.connection()
            try:
                async with conn.transaction(readonly=True):
                    await conn.execute(f"SET LOCAL statement_timeout = {limit}")
                    rows: list[asyncpg.Record] = await conn.fetch(query.query)
                    return rows
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
                raise session.lost(exc) from None
            except asyncpg.PostgresError as exc:
                raise CollectorError(f"query failed on {session.endpoint}: {session.safe(session.describe(exc))}") from None
