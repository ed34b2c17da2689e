"""A PostgreSQL server's live client sessions, read on demand (the web console's target page), not on a schedule.

Who is connected, what each runs and for how long, and who blocks whom (``pg_blocking_pids``): what the
collectors keep only as counts (the postgres collector's Activity fact). One read-only query through the
target's own session (its ``statement_timeout`` and ``lock_timeout`` apply), taking its turn on the session's
lock like a collector; the agent's own sessions are left out, and string literals become ``'?'``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dbwatch.collectors.base import CollectorError, Session
from dbwatch.collectors.migrations_common import statement_label
from dbwatch.collectors.postgres import PostgresSession

__all__ = ["BACKENDS_SQL", "live_backends"]

#: at most this many sessions, those with the oldest transaction (or statement) first
BACKENDS_SQL = """
SELECT pid, usename AS "user", datname AS "database", application_name, client_addr::text AS client,
       coalesce(state, '') AS state, coalesce(wait_event_type || ': ' || wait_event, '') AS wait_event,
       extract(epoch FROM now() - xact_start)::float8 AS xact_seconds,
       CASE WHEN state = 'active' THEN extract(epoch FROM now() - query_start)::float8 END AS query_seconds,
       pg_blocking_pids(pid) AS blocked_by,
       left(query, 1000) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'dbwatch'
ORDER BY xact_start NULLS LAST, query_start NULLS LAST
LIMIT $1
"""


async def live_backends(session: Session, limit: int = 50, timeout: float = 5.0) -> list[dict[str, Any]] | None:
    """The server's client sessions now, or None when the target is not PostgreSQL. Raises
    :class:`CollectorError` (one line, no secret) when they cannot be read within ``timeout``."""
    if not isinstance(session, PostgresSession):
        return None

    async def read() -> list[dict[str, Any]]:
        async with session.lock:
            rows = await session.run(BACKENDS_SQL, limit)
        # Literals out: another session's statement may carry a password (ALTER ROLE ... PASSWORD '...') or data.
        return [{**dict(row), "blocked_by": list(row["blocked_by"] or []),
                 "query": statement_label(row["query"] or "", 1000)} for row in rows]

    try:
        return await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise CollectorError(f"no answer within {timeout:g}s (the target's collectors hold its session)") from None
