"""Several monitoring queries in one round trip: each becomes a JSON array column of one statement.

A collection of the server-wide collectors reads a dozen small views (settings, activity, locks, databases,
slots, the archiver, the checkpointer, WAL, progress, ...). Sent one by one, every query costs a round trip:
a write and a wake-up on both sides, which on a fleet is most of the agent's CPU per collection and a good
part of the server's. Batched, the server plans and runs them as subqueries of one statement
(``SELECT (SELECT coalesce(json_agg(q), '[]') FROM (<query>) q) AS <name>, ...``) and the agent decodes one
row of JSON text with the standard library's C decoder.

The rows come back as dicts of JSON values: text, booleans, null and numbers (an integral number as an
``int``, PostgreSQL's ``NaN``/``Infinity`` as the strings ``float()`` reads). Queries batched here return only
such columns (times as epoch seconds, LSNs as byte differences), which is how the collectors' SQL is written.
A query that fails fails the batch, as one failing query failed its collection before.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Protocol, Sequence

__all__ = ["Rows", "batch_sql", "fetch_batch"]

Rows = list[dict[str, Any]]


class QuerySession(Protocol):
    async def run(self, query: str, *args: Any) -> Sequence[Mapping[str, Any]]: ...


def batch_sql(queries: Mapping[str, str]) -> str:
    """One statement whose columns, named as ``queries``' keys, hold each query's rows as a JSON array (the
    queries' parameters, if any, are numbered across the batch: they share ``$1``, ``$2``, ...)."""
    columns = [f"(SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql.strip()}) q) AS {name}"
               for name, sql in queries.items()]
    return "SELECT " + ",\n       ".join(columns)


async def fetch_batch(session: QuerySession, queries: Mapping[str, str], *args: Any) -> dict[str, Rows]:
    """Each query's rows (as dicts) by name, read in one round trip."""
    if not queries:
        return {}
    [row] = await session.run(batch_sql(queries), *args)
    loads = json.loads
    return {name: loads(row[name]) for name in queries}
