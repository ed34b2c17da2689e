"""MySQL and MariaDB: the session (one aiomysql connection per target) and the server-wide collector.

Metric names are mysqld_exporter's where it has the metric (``mysql_global_status_*``,
``mysql_global_variables_*``, ``mysql_slave_status_*``, ``mysql_heartbeat_*``), so its dashboards and the
mysqld-mixin alerts work unchanged; what only dbwatch has is prefixed ``dbwatch_mysql_``. Replication
columns are exported with the master/slave spelling on MySQL 8's ``SHOW REPLICA STATUS`` too, so one
dashboard serves both syntaxes.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import urllib.parse
from typing import Any

import aiomysql
import pymysql

from dbwatch.model import Snapshot, Target
from dbwatch.collectors import mysql_families as fams
from dbwatch.collectors import mysql_innodb_cmp as innodb_cmp
from dbwatch.collectors import mysql_innodb_metrics as innodb
from dbwatch.collectors import mysql_sql as sql
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.session import DriverSession
from dbwatch.model.options import CollectorOptions, Count, Flag, Text
from dbwatch.model.facts.common import PRIMARY, REPLICA, ReplicationLink, Summary
from dbwatch.model.facts.mysql import (
    Activity, Channel, Channels, Gtid, Heartbeat, ServerInfo, Settings, Status,
)

DEFAULT_PORT = 3306
# Server error numbers that mean "not allowed": the collector then says what to grant and carries on.
ACCESS_DENIED = {1044, 1045, 1142, 1143, 1227, 1370}


class QueryError(CollectorError):
    """The server refused or cancelled one statement; the connection is still good."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class MySQLSession(DriverSession[aiomysql.Connection]):
    """One long-lived connection: read-only, autocommit, statements cancelled by the server before the
    daemon's timeout (``max_statement_time`` on MariaDB, ``max_execution_time`` on MySQL)."""

    default_port = DEFAULT_PORT
    connect_errors = (Exception,)  # OSError, pymysql errors, asyncio timeouts...

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.server: ServerInfo | None = None
        # 80 % of the shortest collector timeout, as for PostgreSQL: a clean server-side cancel keeps the
        # connection, where the daemon's timeout has to drop it.
        self.statement_timeout = max(0.1, self.shortest_timeout * 0.8)
        # Metadata locks: a monitoring query queued behind an ALTER TABLE makes every later query on that
        # table queue behind it (mysqld_exporter #167). Give up within 2 s.
        self.lock_wait_timeout = max(1, min(2, int(self.statement_timeout)))
        parsed = urllib.parse.urlsplit(target.dsn)
        query = urllib.parse.parse_qs(parsed.query)
        try:
            self.port = parsed.port or DEFAULT_PORT
        except ValueError:
            self.port = DEFAULT_PORT
        self.host = parsed.hostname or "localhost"
        self.user = urllib.parse.unquote(parsed.username or "root")
        self.database = urllib.parse.unquote(parsed.path.lstrip("/")) or None
        self.unix_socket = query.get("unix_socket", [None])[0]
        self.sslmode = query.get("sslmode", ["prefer"])[0]

    def endpoint_of(self, dsn: str) -> str:
        socket = urllib.parse.parse_qs(urllib.parse.urlsplit(dsn).query).get("unix_socket", [None])[0]
        return socket or super().endpoint_of(dsn)

    async def connected_server(self) -> ServerInfo:
        """What the server said about itself when the (possibly new) connection was opened."""
        await self.connection()
        assert self.server is not None
        return self.server

    async def connect(self, password: str | None) -> aiomysql.Connection:
        return await aiomysql.connect(
            host=self.host, port=self.port, user=self.user, password=password or "", db=self.database,
            unix_socket=self.unix_socket, connect_timeout=max(1.0, self.statement_timeout),
            autocommit=True, charset="utf8mb4", ssl=_ssl_context(self.sslmode),
            program_name="dbwatch",  # performance_schema.session_connect_attrs, like application_name
        )

    async def prepare(self, conn: aiomysql.Connection) -> None:
        async with conn.cursor(aiomysql.DictCursor) as cur:
            await cur.execute(sql.SERVER)
            row = await cur.fetchone()
            await cur.execute(sql.PRIVILEGES)
            privileges = frozenset(str(r["privilege"]).upper() for r in await cur.fetchall())
            version = str(row["version"])
            mariadb = "mariadb" in (version + str(row["version_comment"] or "")).lower()
            if mariadb:
                limit = f"max_statement_time = {self.statement_timeout:.3f}"
            else:
                limit = f"max_execution_time = {int(self.statement_timeout * 1000)}"
            # long_query_time: dbwatch's own statements stay out of the slow log (mysqld_exporter #775).
            await cur.execute(f"SET SESSION {limit}, lock_wait_timeout = {self.lock_wait_timeout}, "
                              f"innodb_lock_wait_timeout = {self.lock_wait_timeout}, long_query_time = 31536000")
            await cur.execute("SET SESSION TRANSACTION READ ONLY")
        self.server = ServerInfo(
            version=version, version_tuple=_version_tuple(version), flavor="mariadb" if mariadb else "mysql",
            version_comment=str(row["version_comment"] or ""),
            user=str(row["user"]), server_id=int(row["server_id"]), privileges=privileges,
        )

    async def disconnect(self, conn: aiomysql.Connection, graceful: bool) -> None:
        # close(), not ensure_closed(), when not graceful: it drops the socket without waiting for a server
        # that may be stuck.
        if graceful:
            try:
                await asyncio.wait_for(conn.ensure_closed(), 2)
                return
            except Exception:  # closing a broken connection: nothing more to do than drop it
                pass
        conn.close()

    def is_open(self, conn: aiomysql.Connection) -> bool:
        return not conn.closed

    def describe(self, exc: BaseException) -> str:
        return _describe(exc)

    async def run(self, query: str, args: Any = None, tuples: bool = False) -> list[Any]:
        """Run a query, rows as dicts (or tuples, for big reads); a lost connection is dropped (reconnect
        next time) and reported plainly; a refused or cancelled statement raises :class:`QueryError`."""
        conn = await self.connection()
        try:
            async with conn.cursor(aiomysql.Cursor if tuples else aiomysql.DictCursor) as cur:
                await cur.execute(query, args)
                return list(await cur.fetchall())
        except pymysql.err.MySQLError as exc:
            errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            if isinstance(exc, pymysql.err.InterfaceError) or 2000 <= errno < 3000:  # client side: link is gone
                raise self.lost(exc) from None
            raise QueryError(f"query failed on {self.endpoint}: {self.safe(_describe(exc))}", errno) from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise self.lost(exc) from None


def _ssl_context(mode: str) -> ssl.SSLContext | None:
    # aiomysql cannot fall back to plain text, so "prefer" and "allow" connect without TLS.
    if mode in ("require", "verify-ca", "verify-full"):
        context = ssl.create_default_context()
        context.check_hostname = mode == "verify-full"
        if mode == "require":
            context.verify_mode = ssl.CERT_NONE
        return context
    return None



def _describe(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        return f"{str(exc.args[1]).strip().splitlines()[0]} (error {exc.args[0]})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _version_tuple(version: str) -> tuple[int, int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", version.split("-")[0])[:3]]
    return tuple(numbers + [0] * (3 - len(numbers)))  # type: ignore[return-value]


def grantee(user: str) -> str:
    """CURRENT_USER()'s ``name@host`` as a GRANT statement writes it: ``'name'@'host'``."""
    name, _, host = user.rpartition("@")
    return f"'{name}'@'{host}'"


class MySQLOptions(CollectorOptions):
    heartbeat_table: Text = ""  # e.g. percona.heartbeat: pt-heartbeat's table, for true replica lag
    heartbeat_utc: Flag = False  # true when pt-heartbeat runs with --utc
    query_text_length: Count = 200  # characters of a running statement kept in the process-list facts


class MySQLCollector(Collector[MySQLSession, MySQLOptions]):
    """The server as a whole: global status and variables, InnoDB, replication per channel, the process
    list, and optionally a pt-heartbeat table. Facts (see :mod:`dbwatch.model.facts.mysql`): ServerInfo, Settings,
    Status, Activity, Channels, Gtid, Heartbeat (when configured), the neutral ReplicationLink and the Summary."""

    name = "mysql"
    up_metric = "mysql_up"
    options_model = MySQLOptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._buffer_pool: tuple[float, float] | None = None  # (reads, read requests) at the last reading

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        notes: list[str] = []
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            status = {r["Variable_name"]: r["Value"] for r in await session.run(sql.GLOBAL_STATUS)}
            variables = {r["Variable_name"]: r["Value"] for r in await session.run(sql.GLOBAL_VARIABLES)}
            deadlocks = _number(status.get("Innodb_deadlocks"))
            if deadlocks is None:
                deadlocks = await _innodb_deadlocks(session)
            [gtid_row] = await session.run(sql.GTID_MARIADB if server.mariadb else sql.GTID_MYSQL)
            channels_rows = await self._replication(session, server, notes)
            processes = await session.run(sql.PROCESSLIST_MARIADB if server.mariadb else sql.PROCESSLIST_MYSQL,
                                          (self.options.query_text_length,))
            connections = await session.run(sql.CONNECTIONS)
            innodb_rows = await self._innodb_metrics(session, server, notes)
            # The same PROCESS privilege as INNODB_METRICS (whose note covers both when it is missing).
            cmp_rows = [await session.run(sql_cmp) for sql_cmp in (innodb_cmp.INNODB_CMP, innodb_cmp.INNODB_CMPMEM)
                        ] if innodb_rows else [[], []]
            heartbeat = await self._heartbeat(session, notes)
        gtid = Gtid(executed=fams.clean_gtid(gtid_row["executed"]), slave_pos=fams.clean_gtid(gtid_row["slave_pos"]),
                    binlog_pos=fams.clean_gtid(gtid_row["binlog_pos"]))
        settings = fams.settings_of(variables)
        status_fact = self._status(status, settings, deadlocks)
        activity = fams.activity_of(processes, connections)
        channels = [fams.channel_of(row, server, gtid) for row in channels_rows]
        snapshot.families.extend(fams.server_families(server, variables))
        snapshot.families.extend(fams.status_families(status))
        snapshot.families.extend(fams.variable_families(variables))
        snapshot.families.extend(fams.derived_families(status_fact, deadlocks))
        snapshot.families.extend(fams.processlist_families(processes, connections, activity))
        snapshot.families.extend(innodb.innodb_metrics_families(innodb_rows))
        snapshot.families.extend(innodb_cmp.cmp_families(*cmp_rows))
        snapshot.families.extend(innodb_cmp.variable_info_families(variables))
        snapshot.families.extend(fams.replication_families(channels_rows, channels))
        snapshot.families.extend(fams.gtid_families(gtid))
        if heartbeat is not None:
            snapshot.families.extend(fams.heartbeat_families(heartbeat))
        snapshot.put(server, settings, status_fact, activity, Channels(tuple(channels)), gtid,
                     replication_link(settings, channels),
                     Summary(_summary(settings, status_fact, activity, channels, heartbeat)))
        if heartbeat is not None:
            snapshot.put(heartbeat)
        snapshot.notes.extend(notes)
        snapshot.notes.extend(_privilege_notes(server))

    async def _replication(self, session: MySQLSession, server: ServerInfo, notes: list[str]) -> list[dict[str, Any]]:
        try:
            return await session.run(sql.replication_sql(server.mariadb, server.version_tuple))
        except QueryError as exc:
            if exc.errno not in ACCESS_DENIED:
                raise
        if server.mariadb and server.version_tuple >= (10, 5, 9):
            grant = "SLAVE MONITOR"  # MariaDB split it from REPLICATION CLIENT (now BINLOG MONITOR)
        elif server.mariadb and server.version_tuple >= (10, 5, 0):
            grant = "REPLICATION SLAVE ADMIN"  # 10.5.0 - 10.5.8: before SLAVE MONITOR existed
        else:
            grant = "REPLICATION CLIENT"
        notes.append(f"user {server.user} may not read the replication status, so replication is not "
                     f"monitored; run GRANT {grant} ON *.* TO {grantee(server.user)};")
        return []

    async def _innodb_metrics(self, session: MySQLSession, server: ServerInfo, notes: list[str]
                              ) -> list[dict[str, Any]]:
        try:
            return await session.run(innodb.INNODB_METRICS)
        except QueryError as exc:
            if exc.errno not in ACCESS_DENIED:
                raise
        notes.append(f"user {server.user} may not read information_schema.INNODB_METRICS (the history list "
                     f"length, ...); run GRANT PROCESS ON *.* TO {grantee(server.user)};")
        return []

    async def _heartbeat(self, session: MySQLSession, notes: list[str]) -> Heartbeat | None:
        table_name = self.options.heartbeat_table
        if not table_name:
            return None
        if not _TABLE_NAME.match(table_name):
            notes.append(f"heartbeat_table {table_name!r} is not a table name like percona.heartbeat; "
                         f"heartbeat lag is not collected")
            return None
        table = ".".join(f"`{part}`" for part in table_name.split("."))
        query = (sql.HEARTBEAT_UTC if self.options.heartbeat_utc else sql.HEARTBEAT).format(table=table)
        try:
            rows = await session.run(query)
        except QueryError as exc:
            server = session.server
            assert server is not None
            notes.append(f"cannot read heartbeat table {table_name} ({exc}); run GRANT SELECT ON "
                         f"{table} TO {grantee(server.user)}; and check that pt-heartbeat --update runs on the "
                         f"primary")
            return None
        if not rows or rows[0]["stored"] is None:
            notes.append(f"heartbeat table {table_name} is empty: is pt-heartbeat --update running "
                         f"on the primary?")
            return None
        row = rows[0]
        return Heartbeat(server_id=int(row["server_id"] or 0), stored=float(row["stored"]), now=float(row["now"]))

    def _status(self, status: dict[str, str], settings: Settings, deadlocks: float | None) -> Status:
        def num(name: str) -> float:
            return _number(status.get(name)) or 0.0

        reads, requests = num("Innodb_buffer_pool_reads"), num("Innodb_buffer_pool_read_requests")
        previous = self._buffer_pool
        if previous is not None and reads >= previous[0] and requests > previous[1]:
            hit_ratio: float | None = 1 - (reads - previous[0]) / (requests - previous[1])
        elif previous is not None and reads >= previous[0] and requests == previous[1]:
            hit_ratio = 1.0  # no reads at all this interval
        else:  # first reading or a restart: since the server started
            hit_ratio = 1 - reads / requests if requests else None
        self._buffer_pool = (reads, requests)
        total = num("Innodb_buffer_pool_pages_total")
        uptime = num("Uptime")
        connected = int(num("Threads_connected"))
        return Status(
            uptime=uptime, start_time=time.time() - uptime, threads_connected=connected,
            threads_running=int(num("Threads_running")), max_used_connections=int(num("Max_used_connections")),
            connections=int(num("Connections")), aborted_connects=int(num("Aborted_connects")),
            aborted_clients=int(num("Aborted_clients")), slow_queries=int(num("Slow_queries")),
            created_tmp_tables=int(num("Created_tmp_tables")),
            created_tmp_disk_tables=int(num("Created_tmp_disk_tables")),
            innodb_row_lock_waits=int(num("Innodb_row_lock_waits")),
            innodb_row_lock_time_seconds=num("Innodb_row_lock_time") / 1000,
            innodb_deadlocks=None if deadlocks is None else int(deadlocks),
            buffer_pool_hit_ratio=hit_ratio,
            buffer_pool_dirty_ratio=num("Innodb_buffer_pool_pages_dirty") / total if total else None,
            connections_used_ratio=connected / settings.max_connections if settings.max_connections else 0.0,
        )


_TABLE_NAME = re.compile(r"^[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)?$")


async def _innodb_deadlocks(session: MySQLSession) -> float | None:
    """MySQL's deadlock count (MariaDB has Innodb_deadlocks in its status); None without PROCESS."""
    try:
        rows = await session.run(sql.INNODB_DEADLOCKS)
    except QueryError as exc:
        if exc.errno not in ACCESS_DENIED:
            raise
        return None  # the privilege note says what to grant
    return _number(rows[0]["count"]) if rows else None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def replication_link(settings: Settings, channels: list[Channel]) -> ReplicationLink:
    """The server's role and its first replication channel in the engine-neutral words the cluster rules read."""
    if not channels:
        return ReplicationLink(PRIMARY, writable=not settings.read_only)
    channel = channels[0]
    error = "; ".join(e for e in (channel.last_io_error, channel.last_sql_error) if e)
    return ReplicationLink(
        REPLICA, link_up=channel.io_running and channel.sql_running,
        link_state=f"Slave_IO_Running: {channel.io_state}, Slave_SQL_Running: {channel.sql_state}",
        link_error=error, lag_seconds=channel.seconds_behind_master,
        upstream=(channel.master_host, int(channel.master_port)) if channel.master_host else None,
        writable=not settings.read_only,
    )


def _privilege_notes(server: ServerInfo) -> list[str]:
    granted = server.privileges
    if "PROCESS" in granted or "SUPER" in granted or "ALL PRIVILEGES" in granted:
        return []
    return [f"user {server.user} lacks PROCESS: other sessions are hidden from the process list (long-running "
            f"queries, connections per user) and InnoDB metrics may be missing; run GRANT PROCESS ON *.* TO "
            f"{grantee(server.user)};"]


def _summary(settings: Settings, status: Status, activity: Activity, channels: list[Channel],
             heartbeat: Heartbeat | None) -> dict[str, Any]:
    """What ``dbwatch check`` prints: a handful of human-readable numbers."""
    summary: dict[str, Any] = {
        "role": "replica" if channels else "primary",
        "connections": f"{status.threads_connected}/{settings.max_connections}",
        "threads running": status.threads_running,
        "longest query (s)": round(activity.oldest_query_seconds, 1),
    }
    if status.buffer_pool_hit_ratio is not None:
        summary["buffer pool hit ratio"] = round(status.buffer_pool_hit_ratio, 4)
    for channel in channels:
        name = channel.channel_name or "default"
        state = "running" if channel.io_running and channel.sql_running else "STOPPED"
        lag = "?" if channel.seconds_behind_master is None else f"{channel.seconds_behind_master:g}s"
        summary[f"replication {name}"] = f"{state}, {lag} behind"
    if heartbeat is not None:
        summary["heartbeat lag (s)"] = round(heartbeat.lag_seconds, 3)
    return summary
