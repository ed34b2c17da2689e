"""Redis: the session (one redis.asyncio connection per target) and the server-wide collector.

Everything comes from one ``INFO`` (default sections) and one ``CONFIG GET`` per collection, under
redis_exporter's metric names so its dashboards and alert rules work unchanged; what only dbwatch has is
prefixed ``dbwatch_redis_``. CONFIG is often renamed away or denied by ACL on hardened servers: the collector
then takes what INFO also says (maxclients, maxmemory, the eviction policy) and notes what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any, AsyncIterator

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError, TimeoutError as RedisTimeout
from redis.asyncio.retry import Retry  # the asyncio client warns about (and mishandles) a synchronous Retry

from dbwatch.model import MetricFamily, MetricType, Snapshot, Target, counter, gauge, info
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.redis_info_more import more_families
from dbwatch.collectors.redis_reply import parse_info
from dbwatch.model.options import CollectorOptions
from dbwatch.collectors.session import DriverSession
from dbwatch.model.facts.common import PRIMARY, REPLICA, ReplicationLink, Summary
from dbwatch.model.facts.redis import RedisInfo, RedisKeyspace, RedisReplica

#: CLIENT SETNAME of dbwatch's connection: CLIENT LIST shows who it is, and the slowlog collector skips
#: the entries of its own commands.
CLIENT_NAME = "dbwatch"
#: redis-py's table of reply parsers (RESP2), the first client's, shared by every later one (RedisSession.connect)
_callbacks: dict[str, Any] = {}


class RedisSession(DriverSession[aioredis.Redis]):
    """One long-lived connection (``single_connection_client``), bounded by socket timeouts.

    redis-py's own retries are off: a failed command fails the collection at once, and reconnection waits
    for the template's backoff, so a dead server is not hammered.
    """

    default_port = 6379
    connect_errors = (RedisError, OSError, ValueError, TypeError)
    timeout_errors = (TimeoutError, RedisTimeout)  # redis-py's socket timeouts, set below the collectors'

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        # A socket read gives up at 80 % of the shortest collector timeout, so the usual failure is redis-py's
        # clean timeout error rather than the daemon cancelling the collection mid-reply.
        self.socket_timeout = max(0.5, self.shortest_timeout * 0.8)
        #: whether CLIENT SETNAME was accepted (it may be renamed away or denied)
        self.named = False
        #: the server's view (ip:port) of this session's latest connections, for the slowlog to skip our entries
        self.addresses: deque[str] = deque(maxlen=4)

    async def connect(self, password: str | None) -> aioredis.Redis:
        # The DSN carries the ACL user (redis://user@host/db), the database and, for rediss://, the TLS
        # options as query parameters (ssl_ca_certs, ssl_cert_reqs, ...), as redis-py reads them.
        client = aioredis.Redis.from_url(
            self.target.dsn,
            single_connection_client=True,
            password=password,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            encoding_errors="backslashreplace",  # SLOWLOG arguments may be any bytes
            protocol=2,
        )
        # Every client gets the same table of reply parsers (all made with protocol=2): one per client was
        # ~6 KiB each, 6 MiB for a fleet's 1,000 targets. INFO's parser is collectors/redis_reply.py's (the
        # same dict, cheaper).
        table = _callbacks.get("resp2")
        if table is None:
            table = _callbacks["resp2"] = client.response_callbacks
            table["INFO"] = parse_info
        client.response_callbacks = table
        try:
            await client.initialize()  # connects, AUTH, SELECT
        except BaseException:
            await _close(client)
            raise
        return client

    async def prepare(self, client: aioredis.Redis) -> None:
        try:
            await client.execute_command("CLIENT", "SETNAME", CLIENT_NAME)  # type: ignore[no-untyped-call]
            self.named = True
        except ResponseError:
            self.named = False
        try:
            # What the server logs before SETNAME (SELECT, CLIENT SETINFO) is recognised by the address.
            info_ = str(await client.execute_command("CLIENT", "INFO"))  # type: ignore[no-untyped-call]
            fields = dict(f.split("=", 1) for f in info_.split() if "=" in f)
            if fields.get("addr"):
                self.addresses.append(fields["addr"])
        except ResponseError:  # before Redis 6.2, or CLIENT renamed or denied: the name has to do
            pass
        if client.connection is not None:
            # From here on one deadline per round trip (:meth:`_deadline`), not redis-py's per command sent
            # and per reply read (a task and two timers per command: ~3 % of a fleet's CPU).
            client.connection.socket_timeout = None

    async def disconnect(self, client: aioredis.Redis, graceful: bool) -> None:
        await _close(client)

    def describe(self, exc: BaseException) -> str:
        return _describe(exc)

    async def run(self, *args: Any) -> Any:
        """Run a command the collection cannot do without; any failure is a CollectorError."""
        result, error = await self.try_run(*args)
        if error is not None:
            raise CollectorError(f"{args[0]} failed on {self.endpoint}: {error}")
        return result

    async def try_many(self, *commands: tuple[Any, ...]) -> list[tuple[Any, str | None]]:
        """:meth:`try_run` for several commands sent at once (one round trip, one wake-up of the agent instead
        of one per command): per command ``(result, None)`` or ``(None, error)``, in order."""
        client = await self.connection()
        conn = client.connection  # single_connection_client: the session's one connection
        if conn is None:
            return [await self.try_run(*command) for command in commands]
        try:
            async with self._deadline():
                await conn.send_packed_command(conn.pack_commands(commands))
                out: list[tuple[Any, str | None]] = []
                for command in commands:  # every reply is read, an error reply too: the next one follows it
                    try:
                        out.append((await client.parse_response(conn, command[0]), None))
                    except ResponseError as exc:
                        out.append((None, self.safe(_describe(exc))))
            return out
        except (RedisError, OSError) as exc:
            raise self.lost(exc) from None

    async def try_run(self, *args: Any) -> tuple[Any, str | None]:
        """Run a command the server may refuse (renamed, denied by ACL): ``(result, None)`` or
        ``(None, error)``. A lost connection still raises, and is dropped to be reopened next time."""
        client = await self.connection()
        try:
            async with self._deadline():
                return await client.execute_command(*args), None  # type: ignore[no-untyped-call]
        except ResponseError as exc:
            return None, self.safe(_describe(exc))
        except (RedisError, OSError) as exc:
            raise self.lost(exc) from None

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """A round trip gets :attr:`socket_timeout` in all, and fails as redis-py's own timeout would: the
        connection, left mid-reply, is dropped (redis-py closes it when cancelled) and reopened next time."""
        try:
            async with asyncio.timeout(self.socket_timeout):
                yield
        except TimeoutError:
            raise RedisTimeout(f"Timeout reading from {self.endpoint}") from None


async def _close(client: aioredis.Redis) -> None:
    try:
        await asyncio.wait_for(client.aclose(close_connection_pool=True), 2)
    except Exception:  # closing a broken connection: nothing more to do
        pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class RedisCollector(Collector[RedisSession, CollectorOptions]):
    """The server as a whole: clients, memory and eviction, keyspace, replication (both sides), persistence.
    Facts: :class:`RedisInfo`, the neutral ReplicationLink and the Summary."""

    name = "redis"
    up_metric = "redis_up"
    options_model = CollectorOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # CONFIG GET * until the server is known to be Redis >= 7, which takes several parameters at once: the
        # ones read here (the 200-odd settings of ``*`` cost as much again as the INFO sections to read).
        self._config_get: tuple[str, ...] = ("CONFIG", "GET", "*")

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            # One round trip: INFO commandstats and latencystats are not in INFO's default sections
            # (latencystats: Redis >= 7, empty before).
            (raw, info_error), (config_raw, config_error), (commands, _), (latency, _) = await session.try_many(
                ("INFO",), self._config_get, ("INFO", "commandstats"), ("INFO", "latencystats"))
        if info_error is not None:
            raise CollectorError(f"INFO failed on {session.endpoint}: {info_error}")
        if not isinstance(raw, dict):
            raise CollectorError(f"INFO on {session.endpoint} gave an unexpected reply")
        config = _pairs(config_raw) if config_error is None else None
        if config is None:
            snapshot.notes.append(
                f"CONFIG GET is not available ({config_error}): maxclients, maxmemory and the eviction policy "
                f"are read from INFO; the RDB save schedule, the number of databases and the slowlog and latency "
                f"thresholds are unknown; where CONFIG is not renamed, allow it to dbwatch's user: "
                f"ACL SETUSER <user> +config|get"
            )
        facts = _facts(raw, config)
        self._config_get = ("CONFIG", "GET", *CONFIG_READ) if _major(facts.version) >= 7 else ("CONFIG", "GET", "*")
        snapshot.version = facts.version
        snapshot.families.extend(_families(raw, config, facts))
        snapshot.families.extend(_command_families(commands if isinstance(commands, dict) else {}))
        snapshot.families.extend(more_families(raw, config, latency))
        snapshot.put(facts, replication_link(facts), Summary(_summary(facts)))


def replication_link(info: RedisInfo) -> ReplicationLink:
    """The server's role and master link in the engine-neutral words the cluster rules read."""
    if info.role != "slave":
        return ReplicationLink(PRIMARY, writable=True)
    upstream = (info.master_host, int(info.master_port)) if info.master_host and info.master_port else None
    return ReplicationLink(REPLICA, link_up=info.master_link_status == "up",
                           link_state=f"master_link_status:{info.master_link_status}",
                           lag_seconds=info.master_last_io_seconds, upstream=upstream)


#: the settings this collector reads (CONFIG GET of several parameters: Redis >= 7)
CONFIG_READ = ("maxclients", "maxmemory", "maxmemory-policy", "save", "databases", "io-threads")


def _major(version: str) -> int:
    head = version.partition(".")[0]
    return int(head) if head.isdigit() else 0


def _pairs(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    items = list(reply or [])
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _num(raw: dict[str, Any], key: str, default: float | None = None) -> Any:
    value = raw.get(key, default)
    return value if isinstance(value, (int, float)) else default


def _ok(raw: dict[str, Any], key: str) -> bool:
    return bool(raw.get(key, "ok") == "ok")


def _now(raw: dict[str, Any]) -> float:
    # The server's clock (Redis >= 5) for ages of the server's own timestamps; ours as a fallback.
    usec = _num(raw, "server_time_usec")
    return usec / 1e6 if usec else time.time()


def _facts(raw: dict[str, Any], config: dict[str, str] | None) -> RedisInfo:
    config = config or {}
    replica = raw.get("role") == "slave"
    primary_offset = _num(raw, "master_repl_offset", 0)
    replicas = []
    for index in range(int(_num(raw, "connected_slaves", 0))):
        entry = raw.get(f"slave{index}")
        if not isinstance(entry, dict):
            continue
        offset = int(entry.get("offset", 0))
        replicas.append(RedisReplica(
            ip=str(entry.get("ip", "")), port=int(entry.get("port", 0)), state=str(entry.get("state", "")),
            offset=offset, lag_bytes=max(0, int(primary_offset) - offset), lag_seconds=float(entry.get("lag", 0)),
        ))
    keyspace = []
    for key, value in raw.items():
        if key.startswith("db") and key[2:].isdigit() and isinstance(value, dict):
            keyspace.append(RedisKeyspace(db=int(key[2:]), keys=int(value.get("keys", 0)),
                                          expires=int(value.get("expires", 0)),
                                          avg_ttl_seconds=float(value.get("avg_ttl", 0)) / 1000))
    keyspace.sort(key=lambda db: db.db)
    maxclients = int(config["maxclients"]) if "maxclients" in config else _num(raw, "maxclients")
    maxmemory = int(config["maxmemory"]) if "maxmemory" in config else int(_num(raw, "maxmemory", 0))
    last_io = _num(raw, "master_last_io_seconds_ago") if replica else None
    last_save = float(_num(raw, "rdb_last_save_time", 0))
    return RedisInfo(
        version=str(raw.get("redis_version", "")),
        mode=str(raw.get("redis_mode", "standalone")),
        role=str(raw.get("role", "")),
        uptime_seconds=float(_num(raw, "uptime_in_seconds", 0)),
        connected_clients=int(_num(raw, "connected_clients", 0)),
        blocked_clients=int(_num(raw, "blocked_clients", 0)),
        maxclients=int(maxclients) if maxclients is not None else None,
        rejected_connections=int(_num(raw, "rejected_connections", 0)),
        used_memory_bytes=int(_num(raw, "used_memory", 0)),
        maxmemory_bytes=maxmemory,
        maxmemory_policy=config.get("maxmemory-policy") or raw.get("maxmemory_policy"),
        fragmentation_ratio=_num(raw, "mem_fragmentation_ratio"),
        evicted_keys=int(_num(raw, "evicted_keys", 0)),
        expired_keys=int(_num(raw, "expired_keys", 0)),
        keyspace_hits=int(_num(raw, "keyspace_hits", 0)),
        keyspace_misses=int(_num(raw, "keyspace_misses", 0)),
        commands_processed=int(_num(raw, "total_commands_processed", 0)),
        master_host=str(raw.get("master_host")) if replica else None,
        master_port=int(_num(raw, "master_port", 0)) if replica else None,
        master_link_status=str(raw.get("master_link_status")) if replica else None,
        master_last_io_seconds=float(last_io) if last_io is not None and last_io >= 0 else None,
        master_link_down_seconds=_num(raw, "master_link_down_since_seconds") if replica else None,
        connected_replicas=int(_num(raw, "connected_slaves", 0)),
        replicas=replicas,
        rdb_last_save_time=last_save,
        rdb_last_save_age_seconds=max(0.0, _now(raw) - last_save),
        rdb_saves=_num(raw, "rdb_saves"),
        rdb_changes_since_last_save=int(_num(raw, "rdb_changes_since_last_save", 0)),
        rdb_last_bgsave_ok=_ok(raw, "rdb_last_bgsave_status"),
        rdb_bgsave_in_progress=bool(_num(raw, "rdb_bgsave_in_progress", 0)),
        rdb_save_schedule=config.get("save"),
        aof_enabled=bool(_num(raw, "aof_enabled", 0)),
        aof_last_rewrite_ok=_ok(raw, "aof_last_bgrewrite_status"),
        aof_last_write_ok=_ok(raw, "aof_last_write_status"),
        keyspace=keyspace,
        config_available=bool(config),
    )


G, C = MetricType.GAUGE, MetricType.COUNTER

# redis_exporter's names for INFO fields (exporter/exporter.go's metric maps), in INFO's order.
_INFO_METRICS: tuple[tuple[str, str, MetricType, str], ...] = (
    ("uptime_in_seconds", "redis_uptime_in_seconds", G, "Seconds since the server started."),
    ("connected_clients", "redis_connected_clients", G, "Client connections (replicas excluded)."),
    ("blocked_clients", "redis_blocked_clients", G, "Clients waiting in a blocking call (BLPOP, XREAD, ...)."),
    ("maxclients", "redis_max_clients", G, "maxclients as INFO reports it."),
    ("used_memory", "redis_memory_used_bytes", G, "Bytes allocated by Redis (used_memory)."),
    ("used_memory_rss", "redis_memory_used_rss_bytes", G, "Resident set size of the server process."),
    ("used_memory_peak", "redis_memory_used_peak_bytes", G, "Peak of used_memory."),
    ("maxmemory", "redis_memory_max_bytes", G, "maxmemory (0 = no limit)."),
    ("total_system_memory", "redis_total_system_memory_bytes", G, "Memory of the host Redis runs on."),
    ("mem_fragmentation_ratio", "redis_mem_fragmentation_ratio", G, "used_memory_rss over used_memory."),
    ("loading", "redis_loading_dump_file", G, "Whether the server is loading its dump (1 = yes)."),
    ("rdb_changes_since_last_save", "redis_rdb_changes_since_last_save", G, "Writes since the last RDB save."),
    ("rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress", G, "Whether a BGSAVE runs (1 = yes)."),
    ("rdb_last_save_time", "redis_rdb_last_save_timestamp_seconds", G,
     "Time of the last successful RDB save (Unix time; the start time if none since)."),
    ("rdb_last_bgsave_time_sec", "redis_rdb_last_bgsave_duration_sec", G,
     "Duration of the last BGSAVE (-1 if none)."),
    ("rdb_saves", "dbwatch_redis_rdb_saves_total", C, "Successful RDB saves since startup."),
    ("aof_enabled", "redis_aof_enabled", G, "Whether the append-only file is on (1 = yes)."),
    ("aof_rewrite_in_progress", "redis_aof_rewrite_in_progress", G, "Whether an AOF rewrite runs (1 = yes)."),
    ("aof_last_rewrite_time_sec", "redis_aof_last_rewrite_duration_sec", G,
     "Duration of the last AOF rewrite (-1 if none)."),
    ("total_connections_received", "redis_connections_received_total", C, "Connections accepted."),
    ("total_commands_processed", "redis_commands_processed_total", C, "Commands processed."),
    ("total_net_input_bytes", "redis_net_input_bytes_total", C, "Bytes read from the network."),
    ("total_net_output_bytes", "redis_net_output_bytes_total", C, "Bytes written to the network."),
    ("rejected_connections", "redis_rejected_connections_total", C, "Connections refused because of maxclients."),
    ("expired_keys", "redis_expired_keys_total", C, "Keys removed because their TTL passed."),
    ("evicted_keys", "redis_evicted_keys_total", C, "Keys evicted because of maxmemory."),
    ("keyspace_hits", "redis_keyspace_hits_total", C, "Successful key lookups."),
    ("keyspace_misses", "redis_keyspace_misses_total", C, "Key lookups that found nothing."),
    ("connected_slaves", "redis_connected_slaves", G, "Replicas connected to this server."),
    ("master_repl_offset", "redis_master_repl_offset", G, "Replication offset of this server's stream."),
    ("used_cpu_sys", "redis_cpu_sys_seconds_total", C, "System CPU used by the server."),
    ("used_cpu_user", "redis_cpu_user_seconds_total", C, "User CPU used by the server."),
)

# Fields only a replica has, labelled with its primary as redis_exporter does.
_REPLICA_METRICS: tuple[tuple[str, str, MetricType, str], ...] = (
    ("master_last_io_seconds_ago", "redis_master_last_io_seconds_ago", G,
     "Seconds since the last interaction with the primary (-1 while the link is down)."),
    ("master_sync_in_progress", "redis_master_sync_in_progress", G, "Whether a full sync runs (1 = yes)."),
    ("master_link_down_since_seconds", "redis_master_link_down_since_seconds", G,
     "Seconds since the link to the primary went down."),
    ("slave_repl_offset", "redis_slave_repl_offset", G, "Replication offset this replica has processed."),
)

_INSTANCE_LABELS = ("role", "redis_version", "redis_build_id", "redis_mode", "os", "maxmemory_policy", "tcp_port",
                    "run_id", "process_id", "master_replid")


def _families(raw: dict[str, Any], config: dict[str, str] | None, facts: RedisInfo) -> list[MetricFamily]:
    up = gauge("redis_up", "Whether the last collection could reach the server (1 = yes).")
    up.add((), 1)
    instance = info("redis_instance_info", "Information about the Redis instance", _INSTANCE_LABELS)
    instance.add([facts.maxmemory_policy if name == "maxmemory_policy" else raw.get(name, "")
                  for name in _INSTANCE_LABELS], 1)
    start = gauge("redis_start_time_seconds", "Start time of the Redis instance (Unix time).")
    start.add((), _now(raw) - facts.uptime_seconds)
    families = [up, instance, start]
    for field, name, kind, help in _INFO_METRICS:
        value = _num(raw, field)
        if value is not None:
            fam = MetricFamily(name, kind, help)
            fam.add((), value)
            families.append(fam)
    if facts.role == "slave":
        primary = (facts.master_host, facts.master_port)
        for field, name, kind, help in _REPLICA_METRICS:
            value = _num(raw, field)
            if value is not None:
                fam = MetricFamily(name, kind, help, ("master_host", "master_port"))
                fam.add(primary, value)
                families.append(fam)
    for field, name, help in (
        ("rdb_last_bgsave_status", "redis_rdb_last_bgsave_status", "Whether the last BGSAVE succeeded (1 = ok)."),
        ("aof_last_bgrewrite_status", "redis_aof_last_bgrewrite_status",
         "Whether the last AOF rewrite succeeded (1 = ok)."),
        ("aof_last_write_status", "redis_aof_last_write_status", "Whether the last AOF write succeeded (1 = ok)."),
    ):
        if field in raw:
            fam = gauge(name, help)
            fam.add((), int(_ok(raw, field)))
            families.append(fam)
    save_age = gauge("dbwatch_redis_rdb_last_save_age_seconds",
                     "Seconds since the last successful RDB save (since startup if none).")
    save_age.add((), facts.rdb_last_save_age_seconds)
    families.append(save_age)
    families.extend(_config_families(config, facts))
    families.extend(_keyspace_families(config, facts))
    families.extend(_replication_families(facts))
    return families


def _command_families(stats: dict[str, Any]) -> list[MetricFamily]:
    """INFO commandstats as redis_exporter names it: one series per command run since the start (or
    CONFIG RESETSTAT), ``cmd`` as Redis names it (``client|setname`` for a subcommand)."""
    cmd = ("cmd",)
    calls = counter("redis_commands_total", "Total number of calls per command", cmd)
    seconds = counter("redis_commands_duration_seconds_total", "Total amount of time in seconds spent per command",
                      cmd)
    rejected = counter("redis_commands_rejected_calls_total",
                       "Calls refused before running, per command (arity, ACL, OOM, ...).", cmd)
    failed = counter("redis_commands_failed_calls_total", "Calls that failed while running, per command.", cmd)
    for key, fields in stats.items():
        if not key.startswith("cmdstat_") or not isinstance(fields, dict):
            continue
        name = (key.removeprefix("cmdstat_"),)
        calls.add(name, fields.get("calls"))
        seconds.add(name, None if fields.get("usec") is None else float(fields["usec"]) / 1e6)
        rejected.add(name, fields.get("rejected_calls"))  # Redis >= 6.2
        failed.add(name, fields.get("failed_calls"))
    return [fam for fam in (calls, seconds, rejected, failed) if fam.samples]


def _config_families(config: dict[str, str] | None, facts: RedisInfo) -> list[MetricFamily]:
    # With CONFIG unavailable these still exist, from INFO's copies of the same settings.
    maxclients = gauge("redis_config_maxclients", "maxclients setting.")
    maxclients.add((), facts.maxclients)
    maxmemory = gauge("redis_config_maxmemory", "maxmemory setting (0 = no limit).")
    maxmemory.add((), facts.maxmemory_bytes)
    families = [maxclients, maxmemory]
    if config is not None and "save" in config:
        rdb = gauge("dbwatch_redis_rdb_snapshots_enabled", "Whether the save setting schedules RDB snapshots.")
        rdb.add((), int(bool(config["save"].strip())))
        families.append(rdb)
    return families


def _keyspace_families(config: dict[str, str] | None, facts: RedisInfo) -> list[MetricFamily]:
    keys = gauge("redis_db_keys", "Total number of keys by DB", ("db",))
    expiring = gauge("redis_db_keys_expiring", "Total number of expiring keys by DB", ("db",))
    avg_ttl = gauge("redis_db_avg_ttl_seconds", "Avg TTL in seconds", ("db",))
    # As redis_exporter: every database gets a series, 0 when empty, so "keys dropped to 0" is visible. Without
    # CONFIG the number of databases is Redis's default, 16 (a cluster has only db0).
    known = {db.db: db for db in facts.keyspace}
    if config and config.get("databases", "").isdigit():
        count = int(config["databases"])
    else:
        count = 1 if facts.mode == "cluster" else 16
    for number in sorted(set(range(count)) | set(known)):
        db = known.get(number, RedisKeyspace(number, 0, 0, 0.0))
        keys.add((f"db{number}",), db.keys)
        expiring.add((f"db{number}",), db.expires)
        if number in known:
            avg_ttl.add((f"db{number}",), db.avg_ttl_seconds)
    return [keys, expiring, avg_ttl]


def _replication_families(facts: RedisInfo) -> list[MetricFamily]:
    families = []
    if facts.role == "slave":
        link = gauge("redis_master_link_up", "Whether the link to the primary is up (1 = yes).",
                     ("master_host", "master_port"))
        link.add((facts.master_host, facts.master_port), int(facts.master_link_status == "up"))
        families.append(link)
    labels = ("slave_ip", "slave_port", "slave_state")
    offset = gauge("redis_connected_slave_offset_bytes", "Offset of connected replica", labels)
    lag = gauge("redis_connected_slave_lag_seconds", "Lag of connected replica", labels)
    lag_bytes = gauge("dbwatch_redis_connected_slave_lag_bytes",
                      "Replication stream bytes the replica has not acknowledged (primary offset - replica offset).",
                      labels)
    for replica in facts.replicas:
        key = (replica.ip, replica.port, replica.state)
        offset.add(key, replica.offset)
        lag.add(key, replica.lag_seconds)
        lag_bytes.add(key, replica.lag_bytes)
    return [*families, offset, lag, lag_bytes]


def _summary(facts: RedisInfo) -> dict[str, Any]:
    """What ``dbwatch check`` prints."""
    summary: dict[str, Any] = {
        "role": facts.role,
        "version": facts.version,
        "memory": f"{facts.used_memory_bytes}/{facts.maxmemory_bytes or 'unlimited'} ({facts.maxmemory_policy})",
        "clients": f"{facts.connected_clients}/{facts.maxclients}",
        "keys": facts.keys,
        "last save (s ago)": round(facts.rdb_last_save_age_seconds),
    }
    if facts.role == "slave":
        summary["master link"] = f"{facts.master_link_status} ({facts.master_host}:{facts.master_port})"
    else:
        summary["replicas"] = facts.connected_replicas
    return summary
