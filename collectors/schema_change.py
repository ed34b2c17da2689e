"""The live facts ``dbwatch migrate lint --target`` judges a migration by, read through the target's session.

Two readings of the tables' write counters ``sample_seconds`` apart give writes per second (PostgreSQL's
pg_stat_user_tables; performance_schema's table I/O summary on MySQL/MariaDB, None when it is off). A
PostgreSQL backend hands its counters to the statistics at most once a second, so the default interval is
2 s: a shorter one can read no change on a busy table. The rest
is one reading: sizes and row estimates, the oldest open transaction, replication lag. A fact the server
will not give (a privilege missing) is None and the lint says less; it is never an error.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from dbwatch.collectors.base import CollectorError, Session
from dbwatch.model.facts.schema_change import SchemaChangeFacts, ServerLoad, TableLoad

__all__ = ["read_schema_change_facts"]

PG_TABLES = """
SELECT n.name, c.oid IS NOT NULL AS exists, coalesce(pg_table_size(c.oid), 0) AS size,
       (CASE WHEN c.reltuples > 0 THEN c.reltuples ELSE coalesce(s.n_live_tup, 0) END)::bigint AS rows,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::float8 AS writes,
       (SELECT format_type(a.atttypid, NULL) FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1) AS key_type
FROM unnest($1::text[]) AS n(name)
LEFT JOIN pg_class c ON c.oid = to_regclass(n.name)
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
"""
PG_SERVER = """
SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num,
       (SELECT extract(epoch FROM max(now() - xact_start))::float8 FROM pg_stat_activity
         WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend') AS longest,
       CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
            ELSE (SELECT extract(epoch FROM max(replay_lag))::float8 FROM pg_stat_replication) END AS lag
"""
MY_TABLE = """
SELECT TABLE_ROWS AS `rows`, DATA_LENGTH + INDEX_LENGTH AS size FROM information_schema.TABLES
WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s
"""
MY_WRITES = """
SELECT COUNT_INSERT + COUNT_UPDATE + COUNT_DELETE AS writes FROM performance_schema.table_io_waits_summary_by_table
WHERE OBJECT_SCHEMA = COALESCE(%s, DATABASE()) AND OBJECT_NAME = %s
"""
MY_KEY = """
SELECT MAX(DATA_TYPE) AS key_type, COUNT(*) AS n FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s AND COLUMN_KEY = 'PRI'
"""
MY_LONGEST = "SELECT MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())) AS longest FROM information_schema.INNODB_TRX"
MY_SERVER = "SELECT VERSION() AS version, DATABASE() AS db"


async def read_schema_change_facts(session: Session, dialect: str, tables: Sequence[str],
                                   sample_seconds: float = 2.0) -> SchemaChangeFacts:
    """The facts about ``tables`` (names as the migration wrote them) on the session's server, read with the
    catalog queries of its SQL ``dialect`` (the engine registry's ``dialect``)."""
    names = sorted(set(tables))
    read = _READERS[dialect]
    server, first = await read(session, names)
    if not any(t.exists for t in first):
        return SchemaChangeFacts(server, tuple(first))
    started = asyncio.get_running_loop().time()
    await asyncio.sleep(sample_seconds)  # the measurement interval of writes per second
    _, second = await read(session, names)
    elapsed = max(1e-3, asyncio.get_running_loop().time() - started)
    rated = []
    for a, b in zip(first, second):
        rate = None
        if a.writes_per_second is not None and b.writes_per_second is not None:
            rate = max(0.0, b.writes_per_second - a.writes_per_second) / elapsed  # counters in this field, here
        rated.append(TableLoad(b.name, b.exists, b.size_bytes, b.rows, rate, b.key_type))
    return SchemaChangeFacts(server, tuple(rated))


async def _pg(session: Any, names: list[str]) -> tuple[ServerLoad, list[TableLoad]]:
    async with session.lock:
        [row] = await session.run(PG_SERVER)
        rows = await session.run(PG_TABLES, names)
    num = int(row["num"])
    server = ServerLoad(engine="postgres", version=str(row["version"]), version_num=(num // 10000, num % 10000),
                        longest_transaction_seconds=row["longest"], replication_lag_seconds=row["lag"])
    # writes_per_second holds the raw counter until read_schema_change_facts turns two readings into a rate
    return server, [TableLoad(r["name"], bool(r["exists"]), int(r["size"]), int(r["rows"]), float(r["writes"]),
                              str(r["key_type"] or "")) for r in rows]


async def _mysql(session: Any, names: list[str]) -> tuple[ServerLoad, list[TableLoad]]:
    loads = []
    async with session.lock:
        [row] = await session.run(MY_SERVER)
        for name in names:
            schema, _, table = name.rpartition(".")
            found = await session.run(MY_TABLE, (schema or None, table))
            if not found:
                loads.append(TableLoad(name, False))
                continue
            writes = await _optional(session, MY_WRITES, (schema or None, table))
            key = await _optional(session, MY_KEY, (schema or None, table))
            loads.append(TableLoad(name, True, int(found[0]["size"] or 0), int(found[0]["rows"] or 0),
                                   float(writes["writes"]) if writes and writes["writes"] is not None else None,
                                   str(key["key_type"] or "") if key and key["n"] == 1 else ""))
        longest = await _optional(session, MY_LONGEST)
        lag = await _replica_lag(session)
    version = str(row["version"])
    digits = [int(p) for p in version.split("-")[0].split(".")[:3] if p.isdigit()]
    server = ServerLoad(
        engine="mysql", version=version, version_num=tuple(digits),
        longest_transaction_seconds=float(longest["longest"]) if longest and longest["longest"] is not None else None,
        replication_lag_seconds=lag, host=getattr(session, "host", ""), port=getattr(session, "port", 0),
        database=str(row["db"] or ""))
    return server, loads


async def _optional(session: Any, query: str, args: Any = None) -> dict[str, Any] | None:
    try:
        rows = await session.run(query, args)
    except CollectorError:  # a privilege or performance_schema missing: the fact is unknown, not an error
        return None
    return rows[0] if rows else None


async def _replica_lag(session: Any) -> float | None:
    for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            rows = await session.run(statement)
        except CollectorError:
            continue
        lags = [r.get("Seconds_Behind_Master", r.get("Seconds_Behind_Source")) for r in rows]
        known = [float(v) for v in lags if v is not None]
        return max(known) if known else None
    return None


#: SQL dialect -> the reader of one round of facts
_READERS = {"postgres": _pg, "mysql": _mysql}
