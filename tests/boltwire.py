"""A Bolt wire-protocol TEST server for the Neo4j collector's tests: it is not Neo4j.

No Neo4j can be installed on this machine, so the tests drive the real ``neo4j`` Python driver against this
server over real loopback sockets. It speaks what the driver needs and nothing more:

- the handshake: the magic preamble ``0x6060B017``, four version proposals (ranges and the manifest offer of
  Bolt 5.7+ drivers are read), and one chosen version out of ``Scenario.bolt`` (5.4 or 4.4 here);
- chunked messages (2-byte length, ``0000`` ends a message) holding PackStream structures;
- HELLO (with the credentials on 4.4), LOGON (5.1+), RUN, PULL, DISCARD, BEGIN, COMMIT, ROLLBACK, RESET,
  GOODBYE, ROUTE; answered with SUCCESS, RECORD, FAILURE and IGNORED as the Bolt protocol documents them
  (neo4j.com/docs/bolt/current/bolt/message/). After a FAILURE every message is IGNORED until RESET.

RUN is answered by the query's first words: ``SHOW DATABASES``, ``SHOW SERVERS``, ``SHOW TRANSACTIONS``,
``SHOW INDEXES``, ``CALL dbms.components()`` and ``CALL dbms.queryJmx(...)``, each with the default columns,
in the order and with the types the Neo4j Cypher and Operations manuals list them (5.x:
neo4j.com/docs/cypher-manual/5/clauses/transaction-clauses, .../operations-manual/5/database-administration/
syntax (SHOW DATABASES), .../operations-manual/5/clustering/servers (SHOW SERVERS), .../cypher-manual/5/
indexes/search-performance-indexes/managing-indexes (SHOW INDEXES); the 4.4 manuals for the 4.4 columns).
elapsedTime is a PackStream Duration structure (tag ``E``), as Neo4j sends it.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import free_port

MAGIC = b"\x60\x60\xb0\x17"

HELLO, GOODBYE, RESET, RUN, DISCARD, PULL = 0x01, 0x02, 0x0F, 0x10, 0x2F, 0x3F
BEGIN, COMMIT, ROLLBACK, ROUTE, LOGON, LOGOFF, TELEMETRY = 0x11, 0x12, 0x13, 0x66, 0x6A, 0x6B, 0x54
SUCCESS, RECORD, IGNORED, FAILURE = 0x70, 0x71, 0x7E, 0x7F


@dataclass(frozen=True)
class Structure:
    tag: int
    fields: tuple[Any, ...]


def duration(seconds: float) -> Structure:
    """A PackStream Duration (months, days, seconds, nanoseconds), as SHOW TRANSACTIONS' elapsedTime."""
    whole = int(seconds)
    return Structure(0x45, (0, 0, whole, int(round((seconds - whole) * 1e9))))


# -- PackStream ---------------------------------------------------------------------------------------------


def pack(value: Any) -> bytes:
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if -16 <= value < 128:
            return struct.pack(">b", value)
        if -128 <= value < 128:
            return b"\xc8" + struct.pack(">b", value)
        if -32768 <= value < 32768:
            return b"\xc9" + struct.pack(">h", value)
        if -(2 ** 31) <= value < 2 ** 31:
            return b"\xca" + struct.pack(">i", value)
        return b"\xcb" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xc1" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return _header(len(data), 0x80, 0xD0) + data
    if isinstance(value, (list, tuple)):
        return _header(len(value), 0x90, 0xD4) + b"".join(pack(v) for v in value)
    if isinstance(value, dict):
        return _header(len(value), 0xA0, 0xD8) + b"".join(pack(k) + pack(v) for k, v in value.items())
    if isinstance(value, Structure):
        return bytes([0xB0 + len(value.fields), value.tag]) + b"".join(pack(v) for v in value.fields)
    raise TypeError(f"cannot pack {type(value).__name__}")


def _header(size: int, tiny: int, sized: int) -> bytes:
    if size < 16:
        return bytes([tiny + size])
    if size < 256:
        return bytes([sized, size])
    if size < 65536:
        return bytes([sized + 1]) + struct.pack(">H", size)
    return bytes([sized + 2]) + struct.pack(">I", size)


class Unpacker:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self) -> Any:
        marker = self.take(1)[0]
        if marker < 0x80:
            return marker
        if marker >= 0xF0:
            return marker - 0x100
        high = marker & 0xF0
        if high == 0x80:
            return self.take(marker & 0x0F).decode()
        if high == 0x90:
            return [self.unpack() for _ in range(marker & 0x0F)]
        if high == 0xA0:
            return self._map(marker & 0x0F)
        if high == 0xB0:
            tag = self.take(1)[0]
            return Structure(tag, tuple(self.unpack() for _ in range(marker & 0x0F)))
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if marker in simple:
            return simple[marker]
        if marker == 0xC1:
            return struct.unpack(">d", self.take(8))[0]
        ints = {0xC8: ">b", 0xC9: ">h", 0xCA: ">i", 0xCB: ">q"}
        if marker in ints:
            fmt = ints[marker]
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        sizes = {0: ">B", 1: ">H", 2: ">I"}
        if marker in (0xD0, 0xD1, 0xD2):
            return self.take(self._size(sizes[marker - 0xD0])).decode()
        if marker in (0xD4, 0xD5, 0xD6):
            return [self.unpack() for _ in range(self._size(sizes[marker - 0xD4]))]
        if marker in (0xD8, 0xD9, 0xDA):
            return self._map(self._size(sizes[marker - 0xD8]))
        if marker in (0xCC, 0xCD, 0xCE):
            return self.take(self._size(sizes[marker - 0xCC]))
        raise ValueError(f"unknown PackStream marker 0x{marker:02X}")

    def _size(self, fmt: str) -> int:
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0])

    def _map(self, size: int) -> dict[Any, Any]:
        out = {}
        for _ in range(size):
            key = self.unpack()
            out[key] = self.unpack()
        return out


def chunked(message: bytes) -> bytes:
    out = b""
    for i in range(0, len(message), 65535):
        part = message[i:i + 65535]
        out += struct.pack(">H", len(part)) + part
    return out + b"\x00\x00"


# -- what the server holds --------------------------------------------------------------------------------


@dataclass
class Database:
    name: str
    current: str = "online"
    requested: str = "online"
    role: str = "primary"
    type: str = "standard"
    default: bool = False
    home: bool = False
    message: str = ""
    address: str = "localhost:7687"


@dataclass
class Server:
    name: str
    address: str
    state: str = "Enabled"
    health: str = "Available"
    hosting: tuple[str, ...] = ("neo4j", "system")


@dataclass
class Transaction:
    database: str
    id: int
    query: str
    elapsed: float
    status: str = "Running"
    username: str = "app"
    client: str = "10.0.0.5:51234"


@dataclass
class Index:
    database: str
    name: str
    labels: tuple[str, ...]
    properties: tuple[str, ...]
    type: str = "RANGE"
    entity: str = "NODE"
    state: str = "ONLINE"


@dataclass
class Scenario:
    version: str = "5.26.0"
    edition: str = "enterprise"
    bolt: tuple[tuple[int, int], ...] = ((5, 4),)
    databases: list[Database] = field(default_factory=lambda: [
        Database("neo4j", default=True, home=True), Database("system")])
    #: SHOW SERVERS' rows; None: the server has no such command (4.4), a syntax error
    servers: list[Server] | None = field(default_factory=lambda: [Server("d2b1b6a8", "localhost:7687")])
    transactions: list[Transaction] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    #: dbms.queryJmx's beans: name -> {attribute: value}; None: the procedure is refused (no privilege)
    jmx: dict[str, dict[str, Any]] | None = field(default_factory=dict)
    auth: tuple[str, str] | None = None  # (user, password) the server accepts; None: any


def default_jmx(version: str = "5") -> dict[str, dict[str, Any]]:
    """The metrics beans (metrics.jmx.enabled) for the page cache and the store size, named as the Operations
    manual's metrics reference gives them: 5.x <prefix>.dbms.<metric> and <prefix>.database.<db>.<metric>,
    4.x <prefix>.<metric> and <prefix>.<db>.<metric> (prefix ``neo4j``)."""
    prefix = "neo4j.dbms." if version.startswith("5") else "neo4j."
    store = "neo4j.database.neo4j." if version.startswith("5") else "neo4j.neo4j."
    return {
        f"neo4j.metrics:name={prefix}page_cache.hits": {"Count": 98000},
        f"neo4j.metrics:name={prefix}page_cache.page_faults": {"Count": 2000},
        f"neo4j.metrics:name={prefix}page_cache.evictions": {"Count": 150},
        f"neo4j.metrics:name={prefix}page_cache.hit_ratio": {"Value": 0.98},
        f"neo4j.metrics:name={prefix}page_cache.usage_ratio": {"Value": 0.61},
        f"neo4j.metrics:name={store}store.size.total": {"Value": 734003200},
        f"neo4j.metrics:name={store}store.size.database": {"Value": 524288000},
    }


class BoltWireServer:
    """The server, in a thread with its own event loop, on ``127.0.0.1:<port>``."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.port = free_port()
        self.queries: list[tuple[str, str]] = []  # (database, query) of every RUN, in order
        self.messages: list[str] = []  # the names of the messages received
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"boltwire-{self.port}")
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def dsn(self, user: str | None = None, scheme: str = "bolt") -> str:
        return f"{scheme}://{user + '@' if user else ''}{self.address}"

    def start(self) -> "BoltWireServer":
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("boltwire server did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if await reader.readexactly(4) != MAGIC:
                return
            proposals = await reader.readexactly(16)
            version = self._choose(proposals)
            if version is None:
                writer.write(b"\x00\x00\x00\x00")
                return
            writer.write(bytes([0, 0, version[1], version[0]]))
            await writer.drain()
            conversation = _Conversation(self, version)
            while not conversation.done:
                message = await _read_message(reader)
                if message is None:
                    continue  # a NOOP chunk
                writer.write(b"".join(chunked(reply) for reply in conversation.answer(message)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the driver hung up, or the server is stopping
        finally:
            self._writers.discard(writer)
            writer.close()

    def _choose(self, proposals: bytes) -> tuple[int, int] | None:
        offered: list[tuple[int, int]] = []
        for i in range(0, 16, 4):
            _, span, minor, major = proposals[i:i + 4]
            if major == 0xFF or (major, minor) == (0, 0):
                continue  # the manifest offer (Bolt 5.7+): left alone, a plain version is chosen
            offered += [(major, minor - k) for k in range(span + 1) if minor - k >= 0]
        for version in self.scenario.bolt:
            if version in offered:
                return version
        return None


async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
    data = b""
    while True:
        size = struct.unpack(">H", await reader.readexactly(2))[0]
        if size == 0:
            return data or None
        data += await reader.readexactly(size)


def _success(meta: dict[str, Any] | None = None) -> bytes:
    return pack(Structure(SUCCESS, (meta or {},)))


def _failure(code: str, message: str) -> bytes:
    return pack(Structure(FAILURE, ({"code": code, "message": message},)))


NAMES = {HELLO: "HELLO", GOODBYE: "GOODBYE", RESET: "RESET", RUN: "RUN", DISCARD: "DISCARD", PULL: "PULL",
         BEGIN: "BEGIN", COMMIT: "COMMIT", ROLLBACK: "ROLLBACK", ROUTE: "ROUTE", LOGON: "LOGON",
         LOGOFF: "LOGOFF", TELEMETRY: "TELEMETRY"}


class _Conversation:
    """One connection's state: authenticated or not, failed (IGNORED until RESET), the result being pulled."""

    def __init__(self, server: BoltWireServer, version: tuple[int, int]) -> None:
        self.server, self.version = server, version
        self.failed = False
        self.done = False
        self.database = "neo4j"
        self.tx_database: str | None = None
        self.pending: tuple[list[str], list[list[Any]]] | None = None

    def answer(self, message: bytes) -> list[bytes]:
        request = Unpacker(message).unpack()
        tag, fields = request.tag, request.fields
        self.server.messages.append(NAMES.get(tag, hex(tag)))
        if tag == GOODBYE:
            self.done = True
            return []
        if tag == RESET:
            self.failed, self.pending, self.tx_database = False, None, None
            return [_success()]
        if self.failed:
            return [pack(Structure(IGNORED, ()))]
        if tag == HELLO:
            meta = {"server": f"Neo4j/{self.server.scenario.version}", "connection_id": "bolt-7", "hints": {}}
            if self.version < (5, 1) and not self._authenticated(fields[0]):
                return self._fail_auth()
            return [_success(meta)]
        if tag == LOGON:
            return [_success()] if self._authenticated(fields[0]) else self._fail_auth()
        if tag in (LOGOFF, TELEMETRY, ROLLBACK):
            self.tx_database = None
            return [_success()]
        if tag == BEGIN:
            self.tx_database = (fields[0] if fields else {}).get("db") or "neo4j"
            return [_success()]
        if tag == COMMIT:
            self.tx_database = None
            return [_success({"bookmark": "FB:kcwQ"})]
        if tag == ROUTE:  # a one-server cluster: this server routes, reads and writes
            address = self.server.address
            servers = [{"addresses": [address], "role": role} for role in ("ROUTE", "READ", "WRITE")]
            extra = fields[2] if len(fields) > 2 and isinstance(fields[2], dict) else {}
            return [_success({"rt": {"ttl": 300, "db": extra.get("db") or "neo4j", "servers": servers}})]
        if tag == RUN:
            return self._run(fields)
        if tag in (PULL, DISCARD):
            return self._pull(tag)
        self.failed = True
        return [_failure("Neo.ClientError.Request.Invalid", f"message 0x{tag:02X} is not supported here")]

    def _authenticated(self, token: dict[str, Any]) -> bool:
        expected = self.server.scenario.auth
        if expected is None:
            return True
        return (token.get("scheme") == "basic" and token.get("principal") == expected[0]
                and token.get("credentials") == expected[1])

    def _fail_auth(self) -> list[bytes]:
        self.failed = True
        self.done = True  # Neo4j closes the connection after an authentication failure
        return [_failure("Neo.ClientError.Security.Unauthorized",
                         "The client is unauthorized due to authentication failure.")]

    def _run(self, fields: tuple[Any, ...]) -> list[bytes]:
        query = str(fields[0])
        extra = fields[2] if len(fields) > 2 and isinstance(fields[2], dict) else {}
        database = self.tx_database or extra.get("db") or "neo4j"
        self.server.queries.append((database, query))
        try:
            columns, rows = _result(self.server.scenario, self.version, database, query)
        except _QueryFailure as exc:
            self.failed = True
            return [_failure(exc.code, exc.message)]
        self.pending = (columns, rows)
        meta: dict[str, Any] = {"fields": columns, "t_first": 1}
        if self.tx_database is not None:
            meta["qid"] = 0
        return [_success(meta)]

    def _pull(self, tag: int) -> list[bytes]:
        if self.pending is None:
            self.failed = True
            return [_failure("Neo.ClientError.Request.Invalid", "nothing to pull")]
        _, rows = self.pending
        self.pending = None
        records = [pack(Structure(RECORD, (row,))) for row in rows] if tag == PULL else []
        return records + [_success({"has_more": False, "type": "r", "t_last": 1, "db": self.database})]


class _QueryFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _result(scenario: Scenario, version: tuple[int, int], database: str,
            query: str) -> tuple[list[str], list[list[Any]]]:
    words = " ".join(query.split()).upper()
    five = version[0] >= 5
    status = next((d.current for d in scenario.databases if d.name == database), "online")
    if status != "online":  # what Neo4j answers a query to a database that is not online
        raise _QueryFailure("Neo.TransientError.General.DatabaseUnavailable",
                            f"Database '{database}' is unavailable.")
    if words.startswith("SHOW DATABASES"):
        if five:  # the 5.x default columns
            columns = ["name", "type", "aliases", "access", "address", "role", "writer", "requestedStatus",
                       "currentStatus", "statusMessage", "default", "home", "constituents"]
            rows = [[d.name, "system" if d.name == "system" else d.type, [], "read-write", d.address, d.role,
                     d.role == "primary", d.requested, d.current, d.message, d.default, d.home, []]
                    for d in scenario.databases]
        else:  # 4.4
            columns = ["name", "aliases", "access", "address", "role", "requestedStatus", "currentStatus",
                       "error", "default", "home"]
            rows = [[d.name, [], "read-write", d.address, d.role, d.requested, d.current, d.message, d.default,
                     d.home] for d in scenario.databases]
        return columns, rows
    if words.startswith("SHOW SERVERS"):
        if scenario.servers is None or not five:
            raise _QueryFailure("Neo.ClientError.Statement.SyntaxError",
                                "Invalid input 'SERVERS': expected ... (line 1, column 6 (offset: 5))")
        return (["name", "address", "state", "health", "hosting"],
                [[s.name, s.address, s.state, s.health, list(s.hosting)] for s in scenario.servers])
    if words.startswith("SHOW TRANSACTIONS"):
        columns = ["database", "transactionId", "currentQueryId", "connectionId", "clientAddress", "username",
                   "currentQuery", "startTime", "status", "elapsedTime"]
        rows = [[t.database, f"{t.database}-transaction-{t.id}", f"query-{t.id}", f"bolt-{t.id}", t.client,
                 t.username, t.query, "2026-12-04T21:00:00.000Z", t.status, duration(t.elapsed)]
                for t in scenario.transactions]
        return columns, rows
    if words.startswith("SHOW INDEXES"):
        columns = ["id", "name", "state", "populationPercent", "type", "entityType", "labelsOrTypes",
                   "properties", "indexProvider", "owningConstraint"]
        rows = [[n, i.name, i.state, 100.0, i.type, i.entity, list(i.labels), list(i.properties),
                 "range-1.0", None] for n, i in enumerate(scenario.indexes, 1) if i.database == database]
        return columns, rows
    if words.startswith("CALL DBMS.COMPONENTS()"):
        return ["name", "versions", "edition"], [["Neo4j Kernel", [scenario.version], scenario.edition]]
    if words.startswith("CALL DBMS.QUERYJMX("):
        if scenario.jmx is None:
            raise _QueryFailure("Neo.ClientError.Security.Forbidden",
                                "Executing procedure is not allowed for user 'dbwatch' with roles [PUBLIC].")
        return ["name", "description", "attributes"], [
            [name, "Metric", {attr: {"description": attr, "value": value} for attr, value in attrs.items()}]
            for name, attrs in scenario.jmx.items()]
    raise _QueryFailure("Neo.ClientError.Statement.SyntaxError", f"this test server does not know: {query[:60]}")
