"""A CQL native protocol v4 test server: enough of Cassandra for the real DataStax ``cassandra-driver`` to
connect and for dbwatch's cassandra collector to run its queries. It is a test server, not Cassandra.

No Cassandra can be installed on this machine, so the collector is tested against this: a TCP server that
speaks the native protocol as its specification describes it (apache/cassandra doc/native_protocol_v4.spec:
the 9-byte frame header, OPTIONS/SUPPORTED, STARTUP/READY, AUTHENTICATE with
``org.apache.cassandra.auth.PasswordAuthenticator`` and SASL PLAIN in AUTH_RESPONSE, REGISTER, QUERY answered
by RESULT Rows with full column metadata, ERROR with its codes) and answers ``SELECT`` on the tables the driver
reads when it connects (``system.local``, ``system.peers_v2``, ``system.peers``) and on Cassandra 4.x's
virtual tables in ``system_views``. The tables' columns and CQL types are Cassandra's own (SystemKeyspace.java
for system.*, and src/java/org/apache/cassandra/db/virtual/: ThreadPoolsTable, CachesTable, ClientsTable,
SettingsTable, SSTableTasksTable, InternodeInboundTable, InternodeOutboundTable, GossipInfoTable (4.1), and
TableMetricTables for disk_usage, max_partition_size, tombstones_per_read and the coordinator latency tables,
whose columns are ``count``, ``50th``/``99th``/``max`` with an ``_ms`` suffix for latencies, and
``per_second`` for Timers); the rows are whatever the test's :class:`Scenario` says. A frame of another
protocol version is refused with the protocol error Cassandra sends to a client asking for a version it does
not speak, which makes the driver settle on v4 (the collector asks for v4 anyway).

Queries are matched, not parsed: ``SELECT <columns|*> FROM <keyspace>.<table> [WHERE ...]``; WHERE is
ignored (the driver's ``WHERE key='local'`` selects the only row there is).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# opcodes (native_protocol_v4.spec section 2.4)
ERROR, STARTUP, READY, AUTHENTICATE, OPTIONS, SUPPORTED, QUERY, RESULT = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x08
PREPARE, EXECUTE, REGISTER, AUTH_RESPONSE, AUTH_SUCCESS = 0x09, 0x0A, 0x0B, 0x0F, 0x10
# error codes (section 9)
PROTOCOL_ERROR, BAD_CREDENTIALS, SYNTAX_ERROR, UNAUTHORIZED, INVALID = 0x000A, 0x0100, 0x2000, 0x2100, 0x2200
# type option ids (section 4.2.5.2)
TYPES = {"ascii": 0x01, "bigint": 0x02, "blob": 0x03, "boolean": 0x04, "double": 0x07, "float": 0x08, "int": 0x09,
         "timestamp": 0x0B, "uuid": 0x0C, "text": 0x0D, "inet": 0x10}
SET, MAP = 0x22, 0x21

PASSWORD_AUTHENTICATOR = "org.apache.cassandra.auth.PasswordAuthenticator"
LOCAL_ADDRESS = "127.0.0.1"


def _columns(spec: str) -> list[tuple[str, str]]:
    return [tuple(part.split()) for part in spec.split(",")]  # type: ignore[misc]


# TableMetricTables.java: a Timer gets count, 50th/99th/max in ms and the five-minute rate; a Histogram (tombstones
# per read) the same without the rate and without the unit suffix
_LATENCY = "keyspace_name text, table_name text, count bigint, 50th_ms double, 99th_ms double, max_ms double, " \
           "per_second double"
_PER_READ = "keyspace_name text, table_name text, count bigint, 50th double, 99th double, max double"
#: ``keyspace.table`` -> its columns and their CQL types, as Cassandra 4.1 declares them
SCHEMAS: dict[str, list[tuple[str, str]]] = {
    "system.local": _columns(
        "key text, bootstrapped text, broadcast_address inet, broadcast_port int, cluster_name text, "
        "cql_version text, data_center text, gossip_generation int, host_id uuid, listen_address inet, "
        "listen_port int, native_protocol_version text, partitioner text, rack text, release_version text, "
        "rpc_address inet, rpc_port int, schema_version uuid, tokens set<text>"),
    "system.peers_v2": _columns(
        "peer inet, peer_port int, data_center text, host_id uuid, native_address inet, native_port int, "
        "preferred_ip inet, preferred_port int, rack text, release_version text, schema_version uuid, "
        "tokens set<text>"),
    "system.peers": _columns(
        "peer inet, data_center text, host_id uuid, preferred_ip inet, rack text, release_version text, "
        "rpc_address inet, schema_version uuid, tokens set<text>"),
    "system_views.thread_pools": _columns(
        "name text, active_tasks int, active_tasks_limit int, blocked_tasks bigint, blocked_tasks_all_time bigint, "
        "completed_tasks bigint, pending_tasks int"),
    "system_views.caches": _columns(
        "name text, capacity_bytes bigint, entry_count int, hit_count bigint, hit_ratio double, "
        "recent_hit_rate_per_second bigint, recent_request_rate_per_second bigint, request_count bigint, "
        "size_bytes bigint"),
    "system_views.clients": _columns(
        "address inet, port int, connection_stage text, driver_name text, driver_version text, hostname text, "
        "protocol_version int, request_count bigint, ssl_cipher_suite text, ssl_enabled boolean, ssl_protocol text, "
        "username text"),
    "system_views.settings": _columns("name text, value text"),
    "system_views.disk_usage": _columns("keyspace_name text, table_name text, mebibytes bigint"),
    "system_views.max_partition_size": _columns("keyspace_name text, table_name text, mebibytes bigint"),
    "system_views.sstable_tasks": _columns(
        "keyspace_name text, table_name text, task_id uuid, completion_ratio double, kind text, progress bigint, "
        "total bigint, unit text"),
    "system_views.coordinator_read_latency": _columns(_LATENCY),
    "system_views.coordinator_write_latency": _columns(_LATENCY),
    "system_views.tombstones_per_read": _columns(_PER_READ),
    "system_views.internode_inbound": _columns(
        "address inet, port int, dc text, rack text, corrupt_frames_recovered bigint, "
        "corrupt_frames_unrecovered bigint, error_bytes bigint, error_count bigint, expired_bytes bigint, "
        "expired_count bigint, processed_bytes bigint, processed_count bigint, received_bytes bigint, "
        "received_count bigint, scheduled_bytes bigint, scheduled_count bigint, throttled_count bigint, "
        "throttled_nanos bigint, using_bytes bigint, using_reserve_bytes bigint"),
    "system_views.internode_outbound": _columns(
        "address inet, port int, dc text, rack text, active_connections bigint, connection_attempts bigint, "
        "error_bytes bigint, error_count bigint, expired_bytes bigint, expired_count bigint, overload_bytes bigint, "
        "overload_count bigint, pending_bytes bigint, pending_count bigint, sent_bytes bigint, sent_count bigint, "
        "successful_connection_attempts bigint, using_bytes bigint, using_reserve_bytes bigint"),
    # GossipInfoTable.java: one text column per ApplicationState (lower case; TOKENS left out) and one int
    # column <state>_version each; the few read or shown here
    "system_views.gossip_info": _columns(
        "address inet, port int, hostname text, generation int, heartbeat int, dc text, rack text, status text, "
        "status_with_port text, load text, release_version text, host_id text, status_version int"),
}
#: virtual tables a Cassandra 4.0 lacks (gossip_info came with 4.1)
SINCE_41 = {"system_views.gossip_info"}


@dataclass
class Peer:
    """Another node of the cluster, as ``system.peers_v2`` and ``gossip_info`` show it."""

    address: str
    datacenter: str = "dc1"
    rack: str = "rack1"
    status: str = "NORMAL"  # the STATUS gossip state's first word: NORMAL, LEAVING, shutdown, ...
    alive: bool = True  # a live node's heartbeat version grows; a dead one's stays where it stopped
    host_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def thread_pools(**pending: int) -> list[dict[str, Any]]:
    """nodetool tpstats' pools as thread_pools rows (idle, unless ``Pool=pending`` is given)."""
    rows = []
    for name, limit in (("CompactionExecutor", 2), ("MemtableFlushWriter", 2), ("MutationStage", 32),
                        ("ReadStage", 32), ("Native-Transport-Requests", 128), ("GossipStage", 1)):
        rows.append({"name": name, "active_tasks": 0, "active_tasks_limit": limit, "blocked_tasks": 0,
                     "blocked_tasks_all_time": 0, "completed_tasks": 1000, "pending_tasks": pending.get(name, 0)})
    return rows


@dataclass
class Scenario:
    """What the node answers. Mutable while the server runs (the tests change it between collections)."""

    release_version: str = "4.1.5"
    cluster_name: str = "Test Cluster"
    datacenter: str = "dc1"
    rack: str = "rack1"
    peers: list[Peer] = field(default_factory=list)
    user: str = "cassandra"
    password: str | None = None  # None: AllowAllAuthenticator
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "system_views.x" -> rows
    refuse: set[str] = field(default_factory=set)  # tables the user may not SELECT (Unauthorized)
    queries: list[str] = field(default_factory=list)  # every QUERY received, in order

    def __post_init__(self) -> None:
        self.host_id = str(uuid.uuid4())
        self.schema_version = str(uuid.uuid4())
        self.started = time.monotonic()
        self.tables.setdefault("system_views.thread_pools", thread_pools())
        self.tables.setdefault("system_views.settings", [
            {"name": "tombstone_warn_threshold", "value": "1000"},
            {"name": "tombstone_failure_threshold", "value": "100000"},
            {"name": "compaction_large_partition_warning_threshold", "value": "100MiB"},
            {"name": "concurrent_compactors", "value": "2"}])
        self.tables.setdefault("system_views.caches", [
            {"name": "keys", "capacity_bytes": 104857600, "entry_count": 500, "hit_count": 900, "hit_ratio": 0.9,
             "recent_hit_rate_per_second": 9, "recent_request_rate_per_second": 10, "request_count": 1000,
             "size_bytes": 40000}])

    def rows(self, table: str) -> list[dict[str, Any]] | None:
        if table == "system.local":
            return [{"key": "local", "bootstrapped": "COMPLETED", "broadcast_address": LOCAL_ADDRESS,
                     "broadcast_port": 7000, "cluster_name": self.cluster_name, "cql_version": "3.4.6",
                     "data_center": self.datacenter, "gossip_generation": 1700000000, "host_id": self.host_id,
                     "listen_address": LOCAL_ADDRESS, "listen_port": 7000, "native_protocol_version": "5",
                     "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner", "rack": self.rack,
                     "release_version": self.release_version, "rpc_address": LOCAL_ADDRESS, "rpc_port": 9042,
                     "schema_version": self.schema_version, "tokens": {"-9000000000000000000"}}]
        if table in ("system.peers_v2", "system.peers"):
            return [{"peer": p.address, "peer_port": 7000, "data_center": p.datacenter, "host_id": p.host_id,
                     "native_address": p.address, "native_port": 9042, "preferred_ip": None, "preferred_port": None,
                     "rpc_address": p.address, "rack": p.rack, "release_version": self.release_version,
                     "schema_version": self.schema_version, "tokens": {str(1000 * i)}}
                    for i, p in enumerate(self.peers)]
        if table == "system_views.gossip_info":
            beat = 100 + int((time.monotonic() - self.started) * 10)  # Gossiper beats once a second; faster here
            return [{"address": p.address, "port": 7000, "hostname": p.address, "generation": 1700000000,
                     "heartbeat": beat if p.alive else 42, "dc": p.datacenter, "rack": p.rack,
                     "status": f"{p.status},-{i}", "status_with_port": f"{p.status},-{i}", "load": "1.0E9",
                     "release_version": self.release_version,
                     "host_id": p.host_id} for i, p in enumerate(self.peers)]
        return self.tables.get(table, [] if table in SCHEMAS else None)


# -- encoding (section 3: notations) -----------------------------------------------------------------------

def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _long_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def _bytes(b: bytes | None) -> bytes:
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


def _type_option(cql: str) -> bytes:
    if cql.startswith("set<"):
        return struct.pack(">H", SET) + _type_option(cql[4:-1])
    return struct.pack(">H", TYPES[cql])


def _cell(cql: str, value: Any) -> bytes | None:
    if value is None:
        return None
    if cql in ("text", "ascii"):
        return str(value).encode()
    if cql == "int":
        return struct.pack(">i", int(value))
    if cql in ("bigint", "timestamp"):
        return struct.pack(">q", int(value))
    if cql == "double":
        return struct.pack(">d", float(value))
    if cql == "boolean":
        return b"\x01" if value else b"\x00"
    if cql == "uuid":
        return uuid.UUID(str(value)).bytes
    if cql == "inet":
        return ipaddress.ip_address(value).packed
    if cql.startswith("set<"):
        inner = cql[4:-1]
        items = [_bytes(_cell(inner, v)) for v in sorted(value)]
        return struct.pack(">i", len(items)) + b"".join(items)
    raise ValueError(f"no encoding for {cql}")


def rows_result(table: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> bytes:
    keyspace, _, name = table.partition(".")
    body = struct.pack(">iii", 0x0002, 0x0001, len(columns)) + _string(keyspace) + _string(name)
    for column, cql in columns:
        body += _string(column) + _type_option(cql)
    body += struct.pack(">i", len(rows))
    for row in rows:
        body += b"".join(_bytes(_cell(cql, row.get(column))) for column, cql in columns)
    return body


def error_body(code: int, message: str) -> bytes:
    return struct.pack(">i", code) + _string(message)  # none of the codes used here carries more


_SELECT = re.compile(r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+(?P<table>[\w.\"]+)", re.IGNORECASE | re.DOTALL)


class CqlWireServer:
    """The server on a loopback port, in a thread of its own with its own event loop (the driver blocks the
    test's thread while it connects)."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario or Scenario()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> "CqlWireServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cqlwire", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the CQL test server did not start")

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(
            asyncio.start_server(self._serve, LOCAL_ADDRESS, self.port or 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        """Close the listening socket and every connection (a server that went away)."""
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(30)
        self._loop = self._thread = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        authenticated = self.scenario.password is None
        try:
            while True:
                header = await reader.readexactly(9)
                version, _flags, stream, opcode, length = struct.unpack(">BBhBi", header)
                body = await reader.readexactly(length)
                if version & 0x7F != 4:  # what Cassandra answers a version it does not speak, in the client's
                    self._send(writer, version & 0x7F, stream, ERROR, error_body(
                        PROTOCOL_ERROR, f"Invalid or unsupported protocol version ({version & 0x7F}); "
                                        f"supported versions are (3/v3, 4/v4)"))
                    continue
                kind, reply = self._answer(opcode, body, authenticated)
                if kind == AUTH_SUCCESS:
                    authenticated = True
                self._send(writer, 4, stream, kind, reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, version: int, stream: int, opcode: int, body: bytes) -> None:
        writer.write(struct.pack(">BBhBi", 0x80 | version, 0, stream, opcode, len(body)) + body)

    def _answer(self, opcode: int, body: bytes, authenticated: bool) -> tuple[int, bytes]:
        s = self.scenario
        if opcode == OPTIONS:
            multimap = {"CQL_VERSION": ["3.4.6"], "COMPRESSION": [], "PROTOCOL_VERSIONS": ["3/v3", "4/v4"]}
            out = struct.pack(">H", len(multimap))
            for key, values in multimap.items():
                out += _string(key) + struct.pack(">H", len(values)) + b"".join(_string(v) for v in values)
            return SUPPORTED, out
        if opcode == STARTUP:
            if s.password is None:
                return READY, b""
            return AUTHENTICATE, _string(PASSWORD_AUTHENTICATOR)
        if opcode == AUTH_RESPONSE:
            (length,) = struct.unpack(">i", body[:4])
            token = body[4:4 + length] if length >= 0 else b""
            _authzid, user, password = (token.split(b"\x00") + [b"", b""])[:3]  # SASL PLAIN (RFC 4616)
            if user.decode() == s.user and password.decode() == s.password:
                return AUTH_SUCCESS, _bytes(None)
            # PasswordAuthenticator's words (CassandraRoleManager / PasswordAuthenticator.authenticate)
            return ERROR, error_body(BAD_CREDENTIALS, f"Provided username {user.decode()} and/or password are "
                                                      "incorrect")
        if not authenticated:
            return ERROR, error_body(PROTOCOL_ERROR, "Unexpected message, the connection is not authenticated")
        if opcode == REGISTER:
            return READY, b""
        if opcode == QUERY:
            (length,) = struct.unpack(">i", body[:4])
            return self._query(body[4:4 + length].decode())
        if opcode == PREPARE:
            return ERROR, error_body(INVALID, "PREPARE is not supported by this test server")
        return ERROR, error_body(PROTOCOL_ERROR, f"unexpected opcode {opcode:#x}")

    def _query(self, text: str) -> tuple[int, bytes]:
        s = self.scenario
        s.queries.append(text)
        match = _SELECT.match(text)
        if match is None:
            return ERROR, error_body(SYNTAX_ERROR, f"line 1:0 no viable alternative at input '{text[:20]}'")
        table = match["table"].replace('"', "").lower()
        keyspace, _, name = table.partition(".")
        if table in s.refuse:
            return ERROR, error_body(UNAUTHORIZED, f"User {s.user} has no SELECT permission on <table {table}> or "
                                                   f"any of its parents")
        rows = s.rows(table)
        too_new = table in SINCE_41 and not s.release_version.startswith(("4.1", "5."))
        if keyspace == "system_views" and s.release_version.startswith(("2.", "3.")):
            return ERROR, error_body(INVALID, f"keyspace {keyspace} does not exist")
        if rows is None or table not in SCHEMAS or too_new:
            return ERROR, error_body(INVALID, f"table {name} does not exist")
        schema = SCHEMAS[table]
        cols = match["cols"].strip()
        if cols != "*":
            wanted = [c.strip().strip('"') for c in cols.split(",")]
            known = dict(schema)
            missing = [c for c in wanted if c not in known]
            if missing:
                return ERROR, error_body(INVALID, f"Undefined column name {missing[0]} in table {table}")
            schema = [(c, known[c]) for c in wanted]
        return RESULT, rows_result(table, schema, rows)
