"""Neo4j: the session (one driver of the official ``neo4j`` package's async API per target) and the collector.

One collection runs, each as an auto-commit read on the ``system`` database (online whenever the server is,
whichever user database is not):

- ``CALL dbms.components()``: version and edition;
- ``SHOW DATABASES``: every database's role, requested and current status;
- ``SHOW SERVERS`` (Neo4j 5): each server's state and health; a 4.x server has no such command, which is
  not even a note;
- ``SHOW TRANSACTIONS``: open transactions of every database, their elapsed time, status and query
  (normalized, no literals);
- ``CALL dbms.queryJmx('neo4j.metrics:*')``: the page cache (hits, faults, evictions, hit and usage ratio)
  and store sizes, read from the metrics beans a server with ``metrics.jmx.enabled`` (Enterprise, on by
  default there) publishes; refused or empty, it is a note and the rest is collected;
- ``SHOW INDEXES`` in each database a long transaction runs in (run in that database), for the rules'
  index advice.

The query log (``db.logs.query``, a file on the server) is not read.

The driver is imported when the first Neo4j target connects, not with this module's registry entry, so the
agent starts as fast without Neo4j targets (tests/test_startup.py).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from dbwatch.model import Snapshot, Target
from dbwatch.collectors.base import Collector
from dbwatch.collectors.neo4j_cypher import (
    database_families, databases, indexes, instance_families, jmx_families, server_families, servers,
    transaction_families, transactions,
)
from dbwatch.collectors.session import DriverSession
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.neo4j import (
    Neo4jDatabases, Neo4jIndexes, Neo4jInstance, Neo4jLongTransactions, Neo4jServers,
)
from dbwatch.model.options import CollectorOptions, Count, Number

if TYPE_CHECKING:
    from neo4j import AsyncDriver

SHOW_TRANSACTIONS = "SHOW TRANSACTIONS"
SYSTEM = "system"
JMX = "CALL dbms.queryJmx('neo4j.metrics:*')"
USER_AGENT = "dbwatch"
Rows = list[dict[str, Any]]


class ServerRefusal(Exception):
    """The server answered a query with a FAILURE (its code and message), the connection still good."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})" if code else message)
        self.code = code


class Neo4jSession(DriverSession["AsyncDriver"]):
    """One AsyncDriver per target (bolt:// for one server, neo4j:// to let the driver route), with a small
    pool, no transaction retries and connect timeouts below the shortest collector timeout."""

    default_port = 7687

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.timeout = max(0.5, self.shortest_timeout * 0.8)
        parsed = urllib.parse.urlsplit(target.dsn)
        self.user = urllib.parse.unquote(parsed.username or "") or "neo4j"
        # the driver takes no user in the URI; the query (a neo4j:// routing context) is kept
        self.uri = urllib.parse.urlunsplit((parsed.scheme, self.endpoint, "", parsed.query, ""))

    async def connect(self, password: str | None) -> "AsyncDriver":
        from neo4j import AsyncGraphDatabase
        return AsyncGraphDatabase.driver(
            self.uri, auth=(self.user, password or ""), user_agent=USER_AGENT,
            connection_timeout=self.timeout, connection_acquisition_timeout=self.timeout,
            max_connection_pool_size=2, max_transaction_retry_time=0,
        )

    async def prepare(self, driver: "AsyncDriver") -> None:
        await driver.verify_connectivity()  # connects and authenticates, or says why not

    async def disconnect(self, driver: "AsyncDriver", graceful: bool) -> None:
        try:
            await driver.close()
        except Exception:  # closing a broken driver: nothing more to do
            pass

    def describe(self, exc: BaseException) -> str:
        return describe(exc)

    async def rows(self, query: str, database: str | None = None) -> tuple[Rows | None, ServerRefusal | None]:
        """Run a read the server may refuse: ``(rows, None)`` or ``(None, the refusal)``. A lost connection
        raises a CollectorError, and the driver is dropped to be reopened next time."""
        from neo4j import READ_ACCESS
        from neo4j.exceptions import DriverError, Neo4jError
        driver = await self.connection()
        try:
            async with driver.session(database=database, default_access_mode=READ_ACCESS) as session:
                result = await session.run(query)
                return [dict(record) async for record in result], None
        except Neo4jError as exc:  # the server answered with a FAILURE: the connection is fine
            return None, ServerRefusal(exc.code or "", _message(exc))
        except (DriverError, OSError) as exc:
            raise self.lost(exc) from None


def _message(exc: Any) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_REASON = re.compile(r"\(reason (.+?)\)\s*$", re.MULTILINE)
_ADDRESS = re.compile(r"\s*\(?(?:Resolved)?IPv[46]Address\(\(.*?\)\)\)?")


def describe(exc: BaseException) -> str:
    """One line: the server's message and code, or the driver's first line."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code.startswith("Neo."):
        return f"{_message(exc)} ({code})"
    full = str(exc).strip() or type(exc).__name__
    reason = _REASON.search(full)
    if reason:  # "Couldn't connect to h:p (resolved to ...):\nFailed to establish ... (reason [Errno 111] ...)"
        return reason.group(1)
    text = _ADDRESS.sub("", full.splitlines()[0]).rstrip(" :")
    if "handshake" in text.lower() or "protocol version" in text.lower():
        text += " (is this port a Neo4j Bolt server?)"
    return text


class Neo4jOptions(CollectorOptions):
    long_tx_seconds: Number = 60.0  # transactions open this long count as long (and get index advice)
    max_index_databases: Count = 10  # SHOW INDEXES in at most this many databases per collection


def refusal_note(what: str, query: str, exc: ServerRefusal) -> str:
    if exc.code.startswith("Neo.ClientError.Security."):
        return f"{query} is not allowed to dbwatch's user ({exc}): {what} not collected"
    return f"{query} failed ({exc}): {what} not collected"


class Neo4jCollector(Collector[Neo4jSession, Neo4jOptions]):
    """Databases, servers, transactions, page cache and store sizes. Facts: :class:`Neo4jInstance`,
    :class:`Neo4jDatabases`, :class:`Neo4jServers` (Neo4j 5), :class:`Neo4jLongTransactions`,
    :class:`Neo4jIndexes` and the Summary."""

    name = "neo4j"
    up_metric = "neo4j_up"
    options_model = Neo4jOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session, options = self.session, self.options
        async with session.lock:
            # on system: it is online whenever the server is, whichever user database is not
            components, _ = await session.rows("CALL dbms.components()", SYSTEM)
            db_rows, db_error = await session.rows("SHOW DATABASES", SYSTEM)
            server_rows, server_error = await session.rows("SHOW SERVERS", SYSTEM)
            tx_rows, tx_error = await session.rows(SHOW_TRANSACTIONS, SYSTEM)  # every database's
            jmx_rows, jmx_error = await session.rows(JMX, SYSTEM)
            all_tx = transactions(tx_rows or [], SHOW_TRANSACTIONS)
            long_tx = [t for t in all_tx if t.elapsed_seconds >= options.long_tx_seconds]
            wanted = list(dict.fromkeys(t.database for t in long_tx if t.database))[:options.max_index_databases]
            found_indexes = []
            for database in wanted:
                index_rows, index_error = await session.rows("SHOW INDEXES", database)
                if index_error is not None:
                    snapshot.notes.append(refusal_note(f"the indexes of {database} are", "SHOW INDEXES",
                                                       index_error))
                    wanted.remove(database)
                else:
                    found_indexes += indexes(database, index_rows or [])
        component = _kernel(components or [])
        instance = Neo4jInstance(version=component[0], edition=component[1])
        snapshot.version = instance.version or None
        snapshot.put(instance)
        snapshot.families.extend(instance_families(instance.version, instance.edition))
        summary: dict[str, Any] = {"version": f"{instance.version} {instance.edition}".strip()}
        dbs = databases(db_rows or [])
        if db_error is not None:
            snapshot.notes.append(refusal_note("database status is", "SHOW DATABASES", db_error))
        else:
            snapshot.put(Neo4jDatabases(tuple(dbs)))
            snapshot.families.extend(database_families(dbs))
            down = sorted({d.name for d in dbs if d.unavailable})
            summary["databases"] = f"{len({d.name for d in dbs})}" + (f" (unavailable: {', '.join(down)})"
                                                                       if down else "")
        if server_error is not None:
            if "SyntaxError" not in server_error.code:  # 4.x: no SHOW SERVERS, nothing to say
                snapshot.notes.append(refusal_note("server health is", "SHOW SERVERS", server_error))
        else:
            found = servers(server_rows or [])
            snapshot.put(Neo4jServers(tuple(found)))
            snapshot.families.extend(server_families(found))
        if tx_error is not None:
            snapshot.notes.append(refusal_note("transactions are", SHOW_TRANSACTIONS, tx_error))
        else:
            snapshot.put(Neo4jLongTransactions(tuple(long_tx)))
            snapshot.families.extend(transaction_families(all_tx, dbs, options.long_tx_seconds))
            summary["transactions"] = f"{len(all_tx)} open, {len(long_tx)} long"
            snapshot.put(Neo4jIndexes(tuple(found_indexes), databases=tuple(wanted)))
        if jmx_error is not None:
            snapshot.notes.append(refusal_note("page cache and store sizes are", "dbms.queryJmx", jmx_error))
        else:
            families, values = jmx_families(jmx_rows or [])
            snapshot.families.extend(families)
            if not families:
                snapshot.notes.append("dbms.queryJmx shows no neo4j.metrics beans (metrics.jmx.enabled is off, or "
                                      "Community edition): page cache and store sizes are not collected")
            if "page_cache.hit_ratio" in values:
                summary["page cache hit ratio"] = round(values["page_cache.hit_ratio"], 3)
        snapshot.put(Summary(summary))


def _kernel(rows: Rows) -> tuple[str, str]:
    for row in rows:
        if row.get("name") == "Neo4j Kernel":
            versions = row.get("versions") or [""]
            return str(versions[0]), str(row.get("edition") or "")
    return "", ""
