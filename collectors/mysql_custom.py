"""dbwatch's own custom queries (:mod:`.custom_queries`) on a MySQL or MariaDB target.

The target's connection is read-only already (``SET SESSION TRANSACTION READ ONLY``, autocommit) and its
statements are cancelled by the server at the session's limit (``max_statement_time`` on MariaDB,
``max_execution_time`` on MySQL, 80 % of the shortest collector timeout). A query with a shorter ``timeout``
runs with that limit set for it, and the session's put back after.
"""

from __future__ import annotations

from collections.abc import Sequence

from dbwatch.collectors.custom_parse import QuerySpec
from dbwatch.collectors.custom_queries import QueriesCollector, Row
from dbwatch.collectors.mysql import MySQLSession

__all__ = ["MySQLQueriesCollector"]


class MySQLQueriesCollector(QueriesCollector[MySQLSession]):
    async def fetch(self, query: QuerySpec, timeout: float) -> Sequence[Row]:
        session = self.session
        async with session.lock:
            if timeout <= 0 or timeout >= session.statement_timeout:
                rows: list[Row] = await session.run(query.query)
                return rows
            server = await session.connected_server()
            mariadb = server.flavor == "mariadb"
            await session.run(_limit(mariadb, timeout))
            try:
                rows = await session.run(query.query)
            finally:  # (on a connection that broke, the next one opens with the session's limit anyway)
                await session.run(_limit(mariadb, session.statement_timeout))
            return rows


def _limit(mariadb: bool, seconds: float) -> str:
    if mariadb:
        return f"SET SESSION max_statement_time = {seconds:.3f}"
    return f"SET SESSION max_execution_time = {max(1, int(seconds * 1000))}"
