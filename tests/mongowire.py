"""A MongoDB wire-protocol test server: no real mongod can be installed on this machine.

It listens on a free loopback port in a thread of its own and speaks what the real PyMongo driver sends
over a real socket: OP_MSG (opcode 2013) for every command, and the legacy OP_QUERY ``isMaster``/``hello``
handshake answered with OP_REPLY. The replies follow the documented shapes of the commands in MongoDB's
manual (``hello``, ``serverStatus``, ``replSetGetStatus``, the database profiler's ``system.profile``
documents, ``$indexStats``, ``$currentOp``, cursor replies of ``find``/``getMore``/``aggregate``,
``listDatabases``/``listCollections``); their values come from a :class:`Scenario` that a test fills in and
may change between collections. Authentication is SCRAM-SHA-256 (tests/mongoscram.py, as mongod does it),
so a wrong password fails as it would on a real server, with code 18.

Bad servers for failure tests: ``Scenario.close_on`` makes the server close the connection half way through
the reply to one command, ``Scenario.stall_on`` makes it never answer one, and :class:`NotMongoServer` is
a web server that answers every request with an HTTP 400.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.timestamp import Timestamp

from tests.mongoscram import ScramConversation
from tests.helpers import free_port

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
CODEC = CodecOptions(tz_aware=True, tzinfo=dt.timezone.utc)
UTC = dt.timezone.utc

# Codes and names as mongod's error_codes.yml has them.
UNAUTHORIZED = (13, "Unauthorized")
NO_REPLICATION = (76, "NoReplicationEnabled")
COMMAND_NOT_FOUND = (59, "CommandNotFound")



@dataclass
class Member:
    """One entry of replSetGetStatus ``members[]``."""

    name: str
    state: int  # 1 PRIMARY, 2 SECONDARY, 7 ARBITER, 8 DOWN, ...
    optime: dt.datetime
    health: int = 1
    self_: bool = False
    votes: int = 1

    STATES = {0: "STARTUP", 1: "PRIMARY", 2: "SECONDARY", 3: "RECOVERING", 5: "STARTUP2", 6: "UNKNOWN",
              7: "ARBITER", 8: "DOWN", 9: "ROLLBACK", 10: "REMOVED"}

    def document(self, index: int, now: dt.datetime) -> dict[str, Any]:
        down = self.health == 0
        # A member that cannot be reached: mongod reports health 0, state 8 and the string below, with its
        # optimes zeroed (the manual's example of an unreachable member).
        optime = dt.datetime(1970, 1, 1, tzinfo=UTC) if down else self.optime
        seconds = int(optime.timestamp())
        doc: dict[str, Any] = {
            "_id": index,
            "name": self.name,
            "health": float(self.health),
            "state": 8 if down else self.state,
            "stateStr": "(not reachable/healthy)" if down else self.STATES.get(self.state, "UNKNOWN"),
            "uptime": 0 if down else 86400,
            "optime": {"ts": Timestamp(seconds, 1 if seconds else 0), "t": bson.Int64(-1 if down else 3)},
            "optimeDurable": {"ts": Timestamp(seconds, 1 if seconds else 0), "t": bson.Int64(-1 if down else 3)},
            "optimeDate": optime,
            "optimeDurableDate": optime,
            "lastAppliedWallTime": optime,
            "lastDurableWallTime": optime,
            "syncSourceHost": "",
            "syncSourceId": -1,
            "infoMessage": "",
            "configVersion": 5,
            "configTerm": 3,
        }
        if self.self_:
            doc["self"] = True
            if self.state == 1:
                doc["electionTime"] = Timestamp(int(now.timestamp()) - 86000, 1)
                doc["electionDate"] = now - dt.timedelta(seconds=86000)
        else:
            doc["lastHeartbeat"] = now - dt.timedelta(seconds=1)
            doc["lastHeartbeatRecv"] = now - dt.timedelta(seconds=1)
            doc["pingMs"] = bson.Int64(0)
            doc["lastHeartbeatMessage"] = "Error connecting to " + self.name + " :: caused by :: Connection refused" \
                if down else ""
        return doc


@dataclass
class Scenario:
    """What the server answers. Tests change its fields between collections (the server reads them live)."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC).replace(microsecond=0))
    version: str = "7.0.14"
    set_name: str | None = "rs0"
    members: list[Member] = field(default_factory=list)
    connections: dict[str, int] = field(default_factory=lambda: {
        "current": 12, "available": 838848, "totalCreated": 250, "active": 3})
    opcounters: dict[str, int] = field(default_factory=lambda: {
        "insert": 1500, "query": 4200, "update": 310, "delete": 12, "getmore": 880, "command": 9100})
    asserts: dict[str, int] = field(default_factory=lambda: {
        "regular": 0, "warning": 2, "msg": 0, "user": 41, "tripwire": 0, "rollovers": 0})
    page_faults: int = 77
    uptime: float = 86400.0
    cache: dict[str, int] = field(default_factory=lambda: {
        "bytes currently in the cache": 805306368, "maximum bytes configured": 1073741824,
        "tracked dirty bytes in the cache": 52428800})
    #: database -> profiling level ("was" of the profile command); databases listed by listDatabases
    profiling: dict[str, int] = field(default_factory=lambda: {"shop": 1})
    slowms: int = 100
    #: database -> system.profile documents
    profile: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: "db.collection" -> $indexStats documents
    index_stats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    current_ops: list[dict[str, Any]] = field(default_factory=list)
    #: "db.collection" -> its documents (listCollections lists them; $sample returns the first ``size``)
    collections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: getDefaultRWConcern's defaultWriteConcern (None: none set, the server's implicit default applies)
    default_write_concern: dict[str, Any] | None = None
    #: "db.collection" -> its validator (listCollections' options.validator)
    validators: dict[str, dict[str, Any]] = field(default_factory=dict)
    oplog: tuple[Timestamp, Timestamp] | None = None  # first, last entry's ts
    #: (user, password) to require SCRAM-SHA-256 authentication against the admin database
    auth: tuple[str, str] | None = None
    #: command names refused with Unauthorized (a user without clusterMonitor, say)
    unauthorized: set[str] = field(default_factory=set)
    #: a command name whose reply is cut off half way, then the connection is closed
    close_on: str | None = None
    #: a command name the server never answers (it waits until the client hangs up)
    stall_on: str | None = None

    def hello(self) -> dict[str, Any]:
        me = next((m for m in self.members if m.self_), None)
        primary = me is None or me.state == 1
        doc: dict[str, Any] = {
            "isWritablePrimary": primary, "ismaster": primary, "helloOk": True,
            "topologyVersion": None,
            "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000,
            "localTime": dt.datetime.now(UTC), "logicalSessionTimeoutMinutes": 30, "connectionId": 1,
            "minWireVersion": 0, "maxWireVersion": 21, "readOnly": False, "ok": 1.0,
        }
        del doc["topologyVersion"]  # no streaming monitoring: the driver polls, as with an older server
        if self.set_name and me is not None:
            doc.update({
                "setName": self.set_name, "setVersion": 5, "secondary": me.state == 2, "me": me.name,
                "hosts": [m.name for m in self.members if m.state in (1, 2) or m.health == 0],
                "primary": next((m.name for m in self.members if m.state == 1 and m.health), None),
            })
            if doc["primary"] is None:
                del doc["primary"]
        if self.auth:
            doc["saslSupportedMechs"] = ["SCRAM-SHA-256"]
        return doc


class MongoWireServer:
    """The server, in a thread with its own event loop, on ``127.0.0.1:<port>``."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.port = free_port()
        self.commands: list[str] = []  # names of the commands received, in order (handshakes included)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"mongowire-{self.port}")
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._cursors: dict[int, list[dict[str, Any]]] = {}
        self._next_cursor = 1000

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def dsn(self, user: str | None = None, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"mongodb://{user + '@' if user else ''}{self.address}/{'?' + query if query else ''}"

    def start(self) -> "MongoWireServer":
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("mongowire server did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conversation = ScramConversation(self.scenario.auth)
        try:
            while True:
                header = await reader.readexactly(16)
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                body = await reader.readexactly(length - 16)
                if opcode == OP_QUERY:
                    command = _parse_query(body)
                    reply = self._dispatch(command, conversation)
                    writer.write(_op_reply(request_id, reply))
                elif opcode == OP_MSG:
                    command = _parse_msg(body)
                    name = next(iter(command))
                    reply = self._dispatch(command, conversation)
                    data = _op_msg(request_id, reply)
                    if name == self.scenario.stall_on:
                        await reader.read()  # until the driver gives up and closes
                        break
                    if name == self.scenario.close_on:
                        writer.write(data[: len(data) // 2])
                        await writer.drain()
                        break
                    writer.write(data)
                else:
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _dispatch(self, command: dict[str, Any], conversation: ScramConversation) -> dict[str, Any]:
        name = next(iter(command))
        self.commands.append(name)
        lowered = name.lower()
        scenario = self.scenario
        if lowered in ("hello", "ismaster"):
            return scenario.hello()
        if name in ("saslStart", "saslContinue"):
            return conversation.step(command)
        if scenario.auth and not conversation.authenticated and name not in ("ping", "buildInfo", "endSessions"):
            return _error(UNAUTHORIZED, f"Command {name} requires authentication")
        if scenario.auth and not conversation.authenticated and name == "ping":
            return _error(UNAUTHORIZED, "Command ping requires authentication")
        if name in scenario.unauthorized:
            return _error(UNAUTHORIZED, f"not authorized on {command.get('$db', 'admin')} to execute command "
                                        f"{{ {name}: 1 }}")
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            return _error(COMMAND_NOT_FOUND, f"no such command: '{name}'")
        return handler(command)

    # -- commands ------------------------------------------------------------------------------------

    def _cmd_ping(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"ok": 1.0}

    def _cmd_endSessions(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"ok": 1.0}

    def _cmd_buildInfo(self, command: dict[str, Any]) -> dict[str, Any]:
        parts = [int(p) for p in self.scenario.version.split(".")]
        return {"version": self.scenario.version, "versionArray": parts + [0], "gitVersion": "0" * 40,
                "bits": 64, "maxBsonObjectSize": 16777216, "storageEngines": ["devnull", "wiredTiger"], "ok": 1.0}

    def _cmd_serverStatus(self, command: dict[str, Any]) -> dict[str, Any]:
        s = self.scenario
        doc: dict[str, Any] = {
            "host": "mongo-test", "version": s.version, "process": "mongod", "pid": bson.Int64(4242),
            "uptime": s.uptime, "uptimeMillis": bson.Int64(int(s.uptime * 1000)),
            "uptimeEstimate": bson.Int64(int(s.uptime)), "localTime": dt.datetime.now(UTC),
            "asserts": dict(s.asserts),
            "connections": {**s.connections, "threaded": s.connections.get("current", 0)},
            "extra_info": {"note": "fields vary by platform", "user_time_us": bson.Int64(123456),
                           "system_time_us": bson.Int64(65432), "maximum_resident_set_kb": bson.Int64(204800),
                           "input_blocks": bson.Int64(0), "output_blocks": bson.Int64(0),
                           "page_reclaims": bson.Int64(9000), "page_faults": bson.Int64(s.page_faults),
                           "voluntary_context_switches": bson.Int64(1), "involuntary_context_switches": bson.Int64(1)},
            "globalLock": {"totalTime": bson.Int64(int(s.uptime * 1e6)),
                           "currentQueue": {"total": 0, "readers": 0, "writers": 0},
                           "activeClients": {"total": 0, "readers": 0, "writers": 0}},
            "opcounters": {k: bson.Int64(v) for k, v in s.opcounters.items()},
            "opcountersRepl": {"insert": bson.Int64(0), "query": bson.Int64(0), "update": bson.Int64(0),
                               "delete": bson.Int64(0), "getmore": bson.Int64(0), "command": bson.Int64(0)},
            "storageEngine": {"name": "wiredTiger", "supportsCommittedReads": True, "persistent": True},
            "wiredTiger": {"cache": {k: bson.Int64(v) for k, v in s.cache.items()},
                           "concurrentTransactions": {"write": {"out": 0, "available": 128, "totalTickets": 128},
                                                      "read": {"out": 1, "available": 127, "totalTickets": 128}}},
            "mem": {"bits": 64, "resident": 200, "virtual": 2800, "supported": True},
            "opLatencies": {"reads": {"latency": bson.Int64(250000), "ops": bson.Int64(5000)},
                            "writes": {"latency": bson.Int64(90000), "ops": bson.Int64(1500)},
                            "commands": {"latency": bson.Int64(40000), "ops": bson.Int64(9100)},
                            "transactions": {"latency": bson.Int64(0), "ops": bson.Int64(0)}},
            "metrics": {"cursor": {"timedOut": bson.Int64(3), "totalOpened": bson.Int64(40),
                                   "open": {"noTimeout": bson.Int64(0), "pinned": bson.Int64(0),
                                            "total": bson.Int64(2)}},
                        "document": {"deleted": bson.Int64(10), "inserted": bson.Int64(1500),
                                     "returned": bson.Int64(4800), "updated": bson.Int64(300)},
                        "ttl": {"deletedDocuments": bson.Int64(7), "passes": bson.Int64(1440)}},
            "ok": 1.0,
        }
        if s.set_name and s.members:
            me = next(m for m in s.members if m.self_)
            doc["repl"] = {"setName": s.set_name, "isWritablePrimary": me.state == 1, "secondary": me.state == 2,
                           "hosts": [m.name for m in s.members], "me": me.name}
        return doc

    def _cmd_replSetGetStatus(self, command: dict[str, Any]) -> dict[str, Any]:
        s = self.scenario
        if not s.set_name or not s.members:
            return _error(NO_REPLICATION, "not running with --replSet")
        me = next(m for m in s.members if m.self_)
        last = max(m.optime for m in s.members if m.health)
        ts = {"ts": Timestamp(int(last.timestamp()), 1), "t": bson.Int64(3)}
        return {
            "set": s.set_name, "date": s.now, "myState": me.state, "term": bson.Int64(3),
            "syncSourceHost": "", "syncSourceId": -1, "heartbeatIntervalMillis": bson.Int64(2000),
            "majorityVoteCount": len(s.members) // 2 + 1, "writeMajorityCount": len(s.members) // 2 + 1,
            "votingMembersCount": len(s.members), "writableVotingMembersCount": len(s.members),
            "optimes": {"lastCommittedOpTime": ts, "lastCommittedWallTime": last, "appliedOpTime": ts,
                        "durableOpTime": ts, "lastAppliedWallTime": last, "lastDurableWallTime": last},
            "members": [m.document(i, s.now) for i, m in enumerate(s.members)],
            "ok": 1.0,
        }

    def _cmd_replSetGetConfig(self, command: dict[str, Any]) -> dict[str, Any]:
        s = self.scenario
        if not s.set_name or not s.members:
            return _error(NO_REPLICATION, "not running with --replSet")
        members = [{"_id": i, "host": m.name, "arbiterOnly": m.state == 7, "votes": m.votes,
                    "priority": 0.0 if m.state == 7 or not m.votes else 1.0, "hidden": False}
                   for i, m in enumerate(s.members)]
        return {"config": {"_id": s.set_name, "version": 5, "term": 3, "members": members}, "ok": 1.0}

    def _cmd_getDefaultRWConcern(self, command: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {"defaultReadConcernSource": "implicit", "ok": 1.0,
                               "defaultWriteConcernSource": "global" if self.scenario.default_write_concern
                               else "implicit"}
        if self.scenario.default_write_concern:
            doc["defaultWriteConcern"] = self.scenario.default_write_concern
        return doc

    def _cmd_listDatabases(self, command: dict[str, Any]) -> dict[str, Any]:
        names = ["admin", "config", "local", *sorted(set(self.scenario.profiling)
                                                     | {ns.split(".", 1)[0] for ns in self.scenario.collections})]
        return {"databases": [{"name": n, "sizeOnDisk": bson.Int64(8192), "empty": False} for n in names],
                "totalSize": bson.Int64(8192 * len(names)), "totalSizeMb": bson.Int64(0), "ok": 1.0}

    def _cmd_profile(self, command: dict[str, Any]) -> dict[str, Any]:
        level = self.scenario.profiling.get(command["$db"], 0)
        return {"was": level, "slowms": self.scenario.slowms, "sampleRate": 1.0, "ok": 1.0}

    def _cmd_listCollections(self, command: dict[str, Any]) -> dict[str, Any]:
        db = command["$db"]
        names = sorted({ns.split(".", 1)[1] for ns in [*self.scenario.index_stats, *self.scenario.collections]
                        if ns.split(".", 1)[0] == db})
        if db in self.scenario.profile:
            names.append("system.profile")
        docs = [{"name": n, "type": "collection",
                 "options": {"validator": self.scenario.validators[f"{db}.{n}"]}
                 if f"{db}.{n}" in self.scenario.validators else {}} for n in names]
        return self._cursor(f"{db}.$cmd.listCollections", docs, command)

    def _cmd_find(self, command: dict[str, Any]) -> dict[str, Any]:
        db, coll = command["$db"], command["find"]
        if (db, coll) == ("local", "oplog.rs"):
            if self.scenario.oplog is None:
                docs = []
            else:
                first, last = self.scenario.oplog
                natural = (command.get("sort") or {}).get("$natural", 1)
                docs = [{"ts": first if natural > 0 else last}]
        elif coll == "system.profile":
            docs = [d for d in self.scenario.profile.get(db, []) if _matches(d, command.get("filter") or {})]
            key, direction = next(iter((command.get("sort") or {"ts": 1}).items()))
            docs.sort(key=lambda d: d[key], reverse=direction < 0)
        else:
            docs = []
        limit = int(command.get("limit") or 0)
        if limit:
            docs = docs[:limit]
        return self._cursor(f"{db}.{coll}", docs, command)

    def _cmd_aggregate(self, command: dict[str, Any]) -> dict[str, Any]:
        db, pipeline = command["$db"], command["pipeline"]
        first = next(iter(pipeline[0]))
        if first == "$indexStats":
            ns = f"{db}.{command['aggregate']}"
            docs = [dict(d) for d in self.scenario.index_stats.get(ns, [])]
        elif first == "$currentOp":
            if db != "admin" or command["aggregate"] != 1:
                return _error((73, "InvalidNamespace"), "$currentOp must be run against the 'admin' database "
                                                       "with {aggregate: 1}")
            docs = [dict(d) for d in self.scenario.current_ops]
        elif first == "$sample":
            docs = [dict(d) for d in self.scenario.collections.get(f"{db}.{command['aggregate']}", [])]
            docs = docs[:int(pipeline[0]["$sample"]["size"])]
        else:
            return _error((40324, "Location40324"), f"Unrecognized pipeline stage name: '{first}'")
        for stage in pipeline[1:]:
            if "$match" in stage:
                docs = [d for d in docs if _matches(d, stage["$match"])]
        ns = f"{db}.$cmd.aggregate" if first == "$currentOp" else f"{db}.{command['aggregate']}"
        return self._cursor(ns, docs, command.get("cursor") or {})

    def _cmd_getMore(self, command: dict[str, Any]) -> dict[str, Any]:
        cursor_id = int(command["getMore"])
        remaining = self._cursors.pop(cursor_id, None)
        if remaining is None:
            return _error((43, "CursorNotFound"), f"cursor id {cursor_id} not found")
        size = int(command.get("batchSize") or 0) or len(remaining)
        batch, rest = remaining[:size], remaining[size:]
        if rest:
            self._cursors[cursor_id] = rest
        ns = f"{command['$db']}.{command['collection']}"
        return {"cursor": {"nextBatch": batch, "id": bson.Int64(cursor_id if rest else 0), "ns": ns}, "ok": 1.0}

    def _cmd_killCursors(self, command: dict[str, Any]) -> dict[str, Any]:
        killed = [c for c in command.get("cursors", []) if self._cursors.pop(int(c), None) is not None]
        return {"cursorsKilled": killed, "cursorsNotFound": [], "cursorsAlive": [], "cursorsUnknown": [],
                "ok": 1.0}

    def _cursor(self, ns: str, docs: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
        # mongod's default first batch is 101 documents; getMore returns the rest.
        size = int(options.get("batchSize") or 101)
        first, rest = docs[:size], docs[size:]
        cursor_id = 0
        if rest:
            self._next_cursor += 1
            cursor_id = self._next_cursor
            self._cursors[cursor_id] = rest
        return {"cursor": {"firstBatch": first, "id": bson.Int64(cursor_id), "ns": ns}, "ok": 1.0}


class NotMongoServer:
    """Something else on the port: reads whatever comes and answers as a web server would, then closes."""

    def __init__(self) -> None:
        self.port = free_port()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "NotMongoServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)

    def _run(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        # As a keep-alive web server would: one error page per request, until the client hangs up.
        with conn:
            conn.settimeout(5)
            try:
                while conn.recv(65536) and not self._stop.is_set():
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: 11\r\n\r\nBad Request")
            except OSError:
                pass


# -- the wire format ---------------------------------------------------------------------------------


def _parse_msg(body: bytes) -> dict[str, Any]:
    flags = struct.unpack_from("<I", body)[0]
    end = len(body) - (4 if flags & 1 else 0)
    pos, command, sequences = 4, None, {}
    while pos < end:
        kind = body[pos]
        pos += 1
        if kind == 0:
            size = struct.unpack_from("<i", body, pos)[0]
            command = bson.decode(body[pos:pos + size], CODEC)
            pos += size
        else:
            size = struct.unpack_from("<i", body, pos)[0]
            section = body[pos + 4:pos + size]
            name, _, docs = section.partition(b"\x00")
            sequences[name.decode()] = bson.decode_all(docs, CODEC)
            pos += size
    assert command is not None, "OP_MSG without a body section"
    command.update(sequences)
    return command


def _parse_query(body: bytes) -> dict[str, Any]:
    pos = 4
    end = body.index(b"\x00", pos)
    collection = body[pos:end].decode()
    pos = end + 1 + 8  # numberToSkip, numberToReturn
    size = struct.unpack_from("<i", body, pos)[0]
    query = bson.decode(body[pos:pos + size], CODEC)
    if "$query" in query:
        query = query["$query"]
    query.setdefault("$db", collection.split(".", 1)[0])
    return query


def _op_msg(response_to: int, doc: dict[str, Any]) -> bytes:
    payload = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(payload), response_to + 1, response_to, OP_MSG) + payload


def _op_reply(response_to: int, doc: dict[str, Any]) -> bytes:
    payload = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(payload), response_to + 1, response_to, OP_REPLY) + payload


def _error(code: tuple[int, str], message: str) -> dict[str, Any]:
    return {"ok": 0.0, "errmsg": message, "code": code[0], "codeName": code[1]}


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    """The few query operators the collector's filters use: equality, $gt, $gte, $ne."""
    for key, condition in query.items():
        value = doc.get(key)
        if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
            for op, operand in condition.items():
                if op == "$gt" and not (value is not None and value > operand):
                    return False
                if op == "$gte" and not (value is not None and value >= operand):
                    return False
                if op == "$ne" and value == operand:
                    return False
        elif value != condition:
            return False
    return True
