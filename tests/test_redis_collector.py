"""The Redis collectors against real redis-server processes the tests start (tests/redisserver.py), each on a
free loopback port; every test starts its own servers (a few milliseconds each) and names them in its
docstring. Collectors are driven directly, except where the daemon's path (TargetJobs.collect) is the point.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import CollectorSettings, Target
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.redis import CONFIG_READ, RedisCollector, RedisSession
from dbwatch.collectors.redis_slowlog import SlowlogCollector, SlowlogOptions, classify, key_pattern
from dbwatch.model.facts.redis import LatencyEvents, RedisInfo, Slowlog
from tests.redisserver import RedisServer
from tests.helpers import collect, collect_until, free_port

ROOT = Path(__file__).resolve().parent.parent


def make_target(dsn: str, timeout: float = 3, max_series: int = 200, **extra) -> Target:
    return Target(
        name="r", engine="redis", dsn=dsn, labels={},
        collectors={"redis": CollectorSettings(15, timeout),
                    "slowlog": CollectorSettings(15, timeout, SlowlogOptions(max_series=max_series))},
        **extra,
    )


@pytest.fixture
def servers():
    """Start RedisServers for one test; all are killed and removed afterwards."""
    started: list[RedisServer] = []

    def start(*args: str, tls: bool = False) -> RedisServer:
        server = RedisServer(*args, tls=tls)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.destroy()


def core(session: RedisSession) -> RedisCollector:
    return RedisCollector(session.target, session)


def slowlog(session: RedisSession) -> SlowlogCollector:
    return SlowlogCollector(session.target, session)


# -- INFO: names, values, counters ----------------------------------------------------------------------


async def test_info_metrics_carry_redis_exporter_names_and_the_servers_values(servers, session_for):
    """An own Redis with maxmemory 64mb, allkeys-lru and maxclients 123; keys in db0 and db2."""
    server = servers("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru", "--maxclients", "123")
    db0, db2 = server.client(), server.client(db=2)
    for i in range(25):
        db0.set(f"item:{i}", "x", ex=3600 if i < 10 else None)
    for i in range(3):
        db2.set(f"other:{i}", "y")
    collector = core(session_for(make_target(server.dsn())))
    first = await collect(collector)

    assert first.ok and first.notes == []
    assert first.family("redis_up").value() == 1
    keys = {labels[0]: value for labels, value in first.family("redis_db_keys").samples}
    assert keys["db0"] == 25 and keys["db2"] == 3 and keys["db1"] == 0 and len(keys) == 16
    assert first.family("redis_db_keys_expiring").value(db="db0") == 10
    assert first.family("redis_memory_max_bytes").value() == 64 * 1024 * 1024
    assert first.family("redis_config_maxmemory").value() == 64 * 1024 * 1024
    assert first.family("redis_config_maxclients").value() == 123
    assert 0 < first.family("redis_memory_used_bytes").value() < 64 * 1024 * 1024
    assert first.family("redis_connected_clients").value() >= 3  # the two test clients and dbwatch
    assert first.family("redis_mem_fragmentation_ratio").value() > 0
    assert first.family("redis_master_link_up") is None  # a primary has no link to a primary
    [(labels, _)] = first.family("redis_instance_info").samples
    info = dict(zip(first.family("redis_instance_info").labelnames, labels))
    assert info["role"] == "master" and info["maxmemory_policy"] == "allkeys-lru"
    assert info["redis_version"] == first.version and first.version.count(".") == 2
    facts = first.fact(RedisInfo)
    assert facts.role == "master" and facts.keys == 28 and facts.maxclients == 123
    assert facts.memory_used_ratio == facts.used_memory_bytes / (64 * 1024 * 1024)
    assert facts.rdb_save_schedule == "" and facts.aof_enabled is False and facts.rdb_last_bgsave_ok
    assert first.family("dbwatch_redis_rdb_snapshots_enabled").value() == 0

    for _ in range(7):
        db0.get("missing-key")
    for _ in range(4):
        db0.get("item:12")
    db0.set("short-lived", 1, px=1)
    time.sleep(0.01)
    assert db0.get("short-lived") is None  # expired on access: one more miss, one expired key
    second = await collect(collector)
    grew = {name: second.family(name).value() - first.family(name).value()
            for name in ("redis_keyspace_misses_total", "redis_keyspace_hits_total", "redis_expired_keys_total")}
    assert grew == {"redis_keyspace_misses_total": 8, "redis_keyspace_hits_total": 4, "redis_expired_keys_total": 1}
    assert second.family("redis_commands_processed_total").value() > first.family(
        "redis_commands_processed_total").value() + 11
    assert second.family("redis_db_keys").value(db="db0") == 25

    # From the second collection on, Redis >= 7 is asked only the settings read: a change is still seen at once.
    db0.config_set("maxmemory", "32mb")
    db0.config_set("save", "900 1")
    third = await collect(collector)
    assert third.family("redis_config_maxmemory").value() == 32 * 1024 * 1024
    assert third.fact(RedisInfo).rdb_save_schedule == "900 1" and third.fact(RedisInfo).maxclients == 123
    assert third.family("dbwatch_redis_rdb_snapshots_enabled").value() == 1
    assert third.fact(RedisInfo).maxmemory_policy == "allkeys-lru" and third.notes == []
    assert {labels[0] for labels, _ in third.family("redis_db_keys").samples} == set(keys)
    threads = third.family("redis_config_io_threads")
    assert threads is not None and threads.value() == first.family("redis_config_io_threads").value()
    if int(first.version.split(".")[0]) >= 7:
        assert collector._config_get[2:] == CONFIG_READ


async def test_a_server_that_stops_answering_times_out_as_overloaded_and_the_next_collection_reconnects(
        servers, session_for):
    """An own Redis, paused (SIGSTOP) between two collections and resumed after the timeout."""
    server = servers()
    session = session_for(make_target(server.dsn(), timeout=1))
    collector = core(session)
    assert (await collect(collector)).ok
    server.pause()
    try:
        began = time.monotonic()
        with pytest.raises(CollectorError, match=r"lost: Timeout reading from 127\.0\.0\.1:\d+$") as caught:
            await collect(collector)
        # the round trip's deadline, 80 % of the collector's timeout (0.5 s at least), not the collection's own
        assert caught.value.overloaded and time.monotonic() - began < 1.0
        assert not session.connected
    finally:
        server.resume()
    session.record_success()  # no reconnect backoff: the next collection opens a new connection
    after = await collect(collector)
    assert after.ok and after.family("redis_up").value() == 1


async def test_evictions_under_a_small_maxmemory_are_counted(servers, session_for):
    """An own Redis with maxmemory 2mb and allkeys-random, filled past it."""
    server = servers("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-random")
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"fill:{i}", "v" * 1000)
    pipe.execute()
    snapshot = await collect(core(session_for(make_target(server.dsn()))))
    assert snapshot.family("redis_evicted_keys_total").value() > 0
    assert snapshot.fact(RedisInfo).evicted_keys == snapshot.family("redis_evicted_keys_total").value()
    assert snapshot.family("redis_db_keys").value(db="db0") < 3000


# -- replication -------------------------------------------------------------------------------------------


async def test_replica_link_and_lag_from_both_sides_and_link_down_when_the_primary_dies(servers, session_for):
    """An own primary and a replica of it (--replicaof); the replica is paused (SIGSTOP) while the primary takes
    writes, then resumed; then the primary is killed (SIGKILL)."""
    primary = servers("--repl-diskless-sync-delay", "0")  # the default waits 5 s for more replicas
    replica = servers("--replicaof", "127.0.0.1", str(primary.port))
    on_primary = core(session_for(make_target(primary.dsn())))
    on_replica = core(session_for(make_target(replica.dsn())))

    linked = await collect_until(on_replica, lambda s: s.fact(RedisInfo).master_link_status == "up", 10, "the link up")
    assert linked.family("redis_master_link_up").samples == [(("127.0.0.1", str(primary.port)), 1.0)]
    assert linked.fact(RedisInfo).role == "slave" and linked.fact(RedisInfo).master_port == primary.port
    assert 0 <= linked.family("redis_master_last_io_seconds_ago").value() < 5
    seen = await collect_until(on_primary, lambda s: [r.state for r in s.fact(RedisInfo).replicas] == ["online"], 10,
                             "the replica online")
    assert seen.family("redis_connected_slaves").value() == 1
    [(labels, offset)] = seen.family("redis_connected_slave_offset_bytes").samples
    assert labels == ("127.0.0.1", str(replica.port), "online") and offset >= 0

    replica.pause()  # acknowledges nothing while stopped
    try:
        client = primary.client()
        for i in range(200):
            client.set(f"k{i}", "x" * 100)
        behind = await collect(on_primary)
        [replica_facts] = behind.fact(RedisInfo).replicas
        primary_offset = behind.family("redis_master_repl_offset").value()
        assert replica_facts.lag_bytes == primary_offset - replica_facts.offset > 200 * 100
        assert behind.family("dbwatch_redis_connected_slave_lag_bytes").value(
            slave_port=str(replica.port)) == replica_facts.lag_bytes
    finally:
        replica.resume()
    await collect_until(on_primary, lambda s: s.fact(RedisInfo).replicas and s.fact(RedisInfo).replicas[0].lag_bytes == 0,
                        10, "the replica caught up")
    caught_up = await collect(on_replica)
    assert caught_up.family("redis_db_keys").value(db="db0") == 200

    primary.stop(9)
    down = await collect_until(on_replica, lambda s: s.family("redis_master_link_up").value() == 0, 10, "the link down")
    assert down.fact(RedisInfo).master_link_status == "down" and down.fact(RedisInfo).master_last_io_seconds is None
    assert down.ok and down.family("redis_up").value() == 1  # the replica itself is fine


# -- authentication, TLS, hardened servers ------------------------------------------------------------------


async def test_password_auth_and_a_wrong_password_that_never_shows_in_the_error(servers, monkeypatch):
    """An own Redis with --requirepass; collected through the daemon's path (TargetJobs.collect)."""
    server = servers("--requirepass", "s3cret-redis-pw")
    monkeypatch.setenv("T_REDIS_PW", "s3cret-redis-pw")
    jobs = TargetJobs(make_target(server.dsn(), password_env="T_REDIS_PW"))
    try:
        good = await jobs.collect("redis")
        assert good.ok and good.family("redis_up").value() == 1
    finally:
        await jobs.close()

    monkeypatch.setenv("T_REDIS_PW", "wrong-pw-4711")
    jobs = TargetJobs(make_target(server.dsn(), password_env="T_REDIS_PW"))
    try:
        bad = await jobs.collect("redis")
    finally:
        await jobs.close()
    assert not bad.ok and bad.family("redis_up").value() == 0
    assert f"cannot connect to 127.0.0.1:{server.port}" in bad.error and "invalid username-password" in bad.error
    assert "wrong-pw" not in bad.error and "s3cret" not in bad.error

    jobs = TargetJobs(make_target(server.dsn()))  # no password at all
    try:
        missing = await jobs.collect("redis")
    finally:
        await jobs.close()
    assert not missing.ok and "Authentication required" in missing.error


async def test_acl_user_without_config_collects_and_says_what_is_missing(servers, session_for, monkeypatch):
    """An own Redis with an ACL user `watcher` allowed INFO, CLIENT SETNAME, SLOWLOG and LATENCY but not CONFIG."""
    server = servers("--user", "watcher", "on", ">watch-pw", "+info", "+client|setname", "+client|info",
                     "+slowlog", "+latency", "+ping")
    monkeypatch.setenv("T_REDIS_PW", "watch-pw")
    session = session_for(make_target(server.dsn(user="watcher"), password_env="T_REDIS_PW"))
    snapshot = await collect(core(session))
    assert snapshot.ok and snapshot.family("redis_up").value() == 1
    assert snapshot.family("redis_config_maxclients").value() == 10000  # from INFO instead
    [note] = snapshot.notes
    assert note.startswith("CONFIG GET is not available (") and "no permissions" in note and "from INFO" in note
    assert note.endswith("ACL SETUSER <user> +config|get")
    assert snapshot.fact(RedisInfo).config_available is False and snapshot.fact(RedisInfo).rdb_save_schedule is None
    slow = await collect(slowlog(session))  # SLOWLOG is allowed: no note about it
    assert slow.ok and slow.notes == [] and slow.fact(Slowlog).log_slower_than_seconds is None

    monkeypatch.setenv("T_REDIS_PW", "not-watch-pw")
    other = session_for(make_target(server.dsn(user="watcher"), password_env="T_REDIS_PW"))
    with pytest.raises(CollectorError) as wrong:
        await collect(core(other))
    assert "not-watch-pw" not in str(wrong.value) and "invalid username-password" in str(wrong.value)


async def test_config_renamed_away_still_collects_from_info(servers, session_for):
    """An own Redis with --rename-command CONFIG "" and maxclients 77, maxmemory 8mb, volatile-lru."""
    server = servers("--rename-command", "CONFIG", "", "--maxclients", "77", "--maxmemory", "8mb",
                     "--maxmemory-policy", "volatile-lru")
    server.client().set("a", 1)
    session = session_for(make_target(server.dsn()))
    snapshot = await collect(core(session))
    assert snapshot.ok
    assert snapshot.family("redis_config_maxclients").value() == 77
    assert snapshot.family("redis_memory_max_bytes").value() == 8 * 1024 * 1024
    assert snapshot.fact(RedisInfo).maxmemory_policy == "volatile-lru"
    keys = snapshot.family("redis_db_keys").samples  # databases unknown: Redis's default 16, as redis_exporter
    assert keys[0] == (("db0",), 1.0) and len(keys) == 16 and all(value == 0 for _, value in keys[1:])
    [note] = snapshot.notes
    assert "unknown command" in note and "save schedule" in note
    assert (await collect(core(session))).ok  # the same connection carries on


async def test_tls_with_a_self_signed_certificate(servers, session_for):
    """An own Redis serving only TLS (--tls-port, openssl self-signed certificate for 127.0.0.1)."""
    server = servers(tls=True)
    server.client().set("over-tls", 1)
    session = session_for(make_target(server.dsn()))
    assert server.dsn().startswith("rediss://")
    snapshot = await collect(core(session))
    assert snapshot.ok and snapshot.family("redis_db_keys").value(db="db0") == 1

    plain = session_for(make_target(f"redis://127.0.0.1:{server.port}/0", timeout=1))
    with pytest.raises(CollectorError, match=f"cannot connect to 127.0.0.1:{server.port}"):
        await collect(core(plain))  # plain text to a TLS port: a clear error, not a hang


# -- slow log and latency -----------------------------------------------------------------------------------


async def test_slowlog_entries_since_the_last_collection_are_counted_once_by_command_and_key_pattern(
        servers, session_for):
    """An own Redis logging every command (slowlog-log-slower-than 0), latency monitor at 10 ms, DEBUG allowed."""
    server = servers("--slowlog-log-slower-than", "0", "--latency-monitor-threshold", "10",
                     "--enable-debug-command", "local")
    client = server.client()
    client.ping()
    session = session_for(make_target(server.dsn()))
    collector = slowlog(session)
    baseline = await collect(collector)
    assert baseline.fact(Slowlog).baseline and baseline.fact(Slowlog).entries == []

    for i in range(5):
        client.set(f"user:{1000 + i}:profile", "x")
    for _ in range(3):
        client.get(f"session:{uuid.uuid4()}")
    client.execute_command("DEBUG", "SLEEP", "0.05")
    second = await collect(collector)
    facts = second.fact(Slowlog)
    groups = {(g.command, g.key_pattern): g for g in facts.groups}
    assert set(groups) == {("SET", "user:*:profile"), ("GET", "session:*"), ("DEBUG SLEEP", "")}
    assert (groups["SET", "user:*:profile"].count, groups["GET", "session:*"].count) == (5, 3)
    assert groups["DEBUG SLEEP", ""].max_seconds >= 0.05 and facts.groups[0].command == "DEBUG SLEEP"
    assert facts.lost == 0 and not facts.baseline and len(facts.entries) == 9
    assert second.family("dbwatch_redis_slowlog_entries_total").value(command="SET", key_pattern="user:*:profile") == 5
    assert second.family("dbwatch_redis_slowlog_duration_seconds_total").value(command="DEBUG SLEEP") >= 0.05
    assert second.family("redis_slowlog_last_id").value() >= 9
    [event] = second.fact(LatencyEvents)
    assert event.event == "command" and event.latest_seconds >= 0.05
    assert second.family("redis_latency_spike_duration_seconds").value(event_name="command") >= 0.05

    third = await collect(collector)  # nothing new but dbwatch's own commands, which are skipped
    assert third.fact(Slowlog).entries == []
    # Only the newest of the entries already seen is parsed again, still giving the last id and the length.
    # (the second collection's own commands were logged after it read the log: the last id moved on)
    assert third.family("redis_slowlog_last_id").value() > second.family("redis_slowlog_last_id").value()
    assert third.family("redis_slowlog_length").value() == third.fact(Slowlog).length >= 10
    assert third.family("dbwatch_redis_slowlog_entries_total").samples == \
        second.family("dbwatch_redis_slowlog_entries_total").samples

    for i in range(3):
        client.set(f"gone:{i}", 1)
    client.slowlog_reset()
    client.execute_command("INCR", "counter:7")
    after_reset = await collect(collector)
    groups = {(g.command, g.key_pattern): g.count for g in after_reset.fact(Slowlog).groups}
    assert groups == {("SLOWLOG RESET", ""): 1, ("INCR", "counter:*"): 1}
    assert after_reset.fact(Slowlog).lost >= 3  # the three SETs were reset before dbwatch read them
    assert after_reset.family("dbwatch_redis_slowlog_entries_total").value(command="SET") == 5


async def test_slowlog_after_a_server_restart_counts_the_new_entries_although_ids_start_again(
        servers, session_for):
    """An own Redis logging every command, restarted on the same port between collections."""
    server = servers("--slowlog-log-slower-than", "0")
    client = server.client()
    for i in range(40):
        client.set(f"before:{i}", 1)
    session = session_for(make_target(server.dsn()))
    collector = slowlog(session)
    await collect(collector)
    await collect(collector)
    server.stop()
    server.start()
    with pytest.raises(CollectorError, match="lost"):
        await collect(collector)  # the old connection is gone; the next collection reconnects
    client = server.client()
    for i in range(4):
        client.lpush(f"queue:{i}", 1)
    after = await collect(collector)
    groups = {(g.command, g.key_pattern): g.count for g in after.fact(Slowlog).groups}
    assert groups == {("LPUSH", "queue:*"): 4}


async def test_slowlog_series_are_capped_and_newcomers_beyond_the_cap_sum_into_other(servers, session_for):
    """An own Redis logging every command; the collector keeps at most 2 command/key-pattern series."""
    server = servers("--slowlog-log-slower-than", "0")
    client = server.client()
    client.ping()
    collector = slowlog(session_for(make_target(server.dsn(), max_series=2)))
    await collect(collector)
    client.set("a:1", 1)
    client.set("b:1", 1)
    await collect(collector)
    client.set("a:2", 1)
    client.set("c:1", 1)
    client.set("d:1", 1)
    snapshot = await collect(collector)
    counts = {labels: value for labels, value in snapshot.family("dbwatch_redis_slowlog_entries_total").samples}
    assert counts == {("SET", "a:*"): 2, ("SET", "b:*"): 1, ("other", ""): 2}
    assert {(g.command, g.key_pattern) for g in snapshot.fact(Slowlog).groups} == {
        ("SET", "a:*"), ("SET", "c:*"), ("SET", "d:*")}  # the facts keep every group of the interval


async def test_slowlog_renamed_away_is_a_note_and_latency_still_collected(servers, session_for):
    """An own Redis with --rename-command SLOWLOG ""."""
    server = servers("--rename-command", "SLOWLOG", "")
    snapshot = await collect(slowlog(session_for(make_target(server.dsn()))))
    assert snapshot.ok and not snapshot.has(Slowlog) and snapshot.fact(LatencyEvents) == LatencyEvents()
    assert snapshot.notes == [snapshot.notes[0]] and snapshot.notes[0].startswith("SLOWLOG is not available")


@pytest.mark.parametrize("args, expected", [
    (["SET", "user:42:name", "x"], ("SET", "user:42:name")),
    (["config", "set", "maxmemory", "1"], ("CONFIG SET", "")),
    (["OBJECT", "ENCODING", "k:1"], ("OBJECT ENCODING", "k:1")),
    (["EVAL", "return 1", "1", "lock:9"], ("EVAL", "lock:9")),
    (["EVAL", "return 1", "0"], ("EVAL", "")),
    (["KEYS", "*"], ("KEYS", "")),
    (["PING"], ("PING", "")),
])
def test_classify_finds_the_command_and_its_key(args, expected):
    assert classify(args) == expected


@pytest.mark.parametrize("key, pattern", [
    ("user:1042:cart", "user:*:cart"),
    ("session:550e8400-e29b-41d4-a716-446655440000", "session:*"),
    ("blob:da39a3ee5e6b4b0d3255bfef95601890afd80709", "blob:*"),
    ("v2.item_17_18", "v*.item_*_*"),
    ("plain", "plain"),
])
def test_key_pattern_folds_ids(key, pattern):
    assert key_pattern(key) == pattern


# -- failures through the daemon's path -----------------------------------------------------------------------


async def test_server_down_is_redis_up_0_through_the_daemon_path_and_recovers(servers):
    """An own Redis stopped and started again on its port; then a port nobody listens on."""
    server = servers()
    jobs = TargetJobs(make_target(server.dsn()))
    try:
        assert (await jobs.collect("redis")).family("redis_up").value() == 1
        server.stop()
        lost = await jobs.collect("redis")
        assert not lost.ok and lost.family("redis_up").value() == 0 and "lost" in lost.error
        refused = await jobs.collect("redis")
        assert not refused.ok and refused.family("redis_up").samples == [((), 0.0)]
        assert f"cannot connect to 127.0.0.1:{server.port}" in refused.error
        server.start()
        jobs.session.record_success()  # skip the backoff wait
        back = await jobs.collect("redis")
        assert back.ok and back.family("redis_up").value() == 1
    finally:
        await jobs.close()

    nowhere = TargetJobs(make_target(f"redis://127.0.0.1:{free_port()}/0"))
    try:
        snapshot = await nowhere.collect("redis")
        again = await nowhere.collect("redis")
    finally:
        await nowhere.close()
    assert snapshot.family("redis_up").value() == 0 and "cannot connect" in snapshot.error
    assert again.error.startswith("reconnect backoff")


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", b"$100\r\nabc"],
                         ids=["not-redis", "closed-mid-reply"])
async def test_a_non_redis_service_or_a_reply_cut_short_is_a_clear_error_and_up_0(reply):
    """A TCP server of the test's own on a free port: it answers any request with `reply` and hangs up."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(reply)
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    jobs = TargetJobs(make_target(f"redis://127.0.0.1:{port}/0", timeout=2))
    try:
        snapshot = await jobs.collect("redis")
    finally:
        await jobs.close()
        listener.close()
    assert not snapshot.ok and snapshot.family("redis_up").value() == 0
    assert f"127.0.0.1:{port}" in snapshot.error and "internal error" not in snapshot.error


# -- configuration --------------------------------------------------------------------------------------------


def test_redis_targets_in_the_config_take_redis_and_rediss_dsns_or_parts():
    config = parse_config(
        "targets:\n"
        "  - {name: cache, engine: redis, dsn: 'rediss://watcher@cache.internal:6380/2?ssl_ca_certs=/etc/ca.pem'}\n"
        "  - {name: local, engine: redis, host: 127.0.0.1, user: watcher, database: '3', password_env: PW}\n",
        "c.yaml", {})
    cache, local = config.resolved_targets()
    assert set(cache.collectors) == {"redis", "slowlog"} and cache.collectors["redis"].interval == 15
    assert cache.collectors["slowlog"].options == SlowlogOptions(max_entries=1024, max_series=200)
    assert local.dsn == "redis://watcher@127.0.0.1:6379/3" and local.password_env == "PW"
    for text, expected in [
        ("{name: r, engine: redis, dsn: 'postgresql://x@h/db'}", "targets[0]: dsn scheme 'postgresql' does not"),
        ("{name: r, engine: redis, host: h, sslmode: require}", "targets[0]: sslmode is for postgres"),
        ("{name: r, engine: redis, host: h, database: app}", "targets[0].database: expected a redis database"),
        ("{name: r, engine: redis, dsn: 'redis://:pw@h:6379/0'}", "targets[0].dsn: holds a password"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config(f"targets:\n  - {text}\n", "c.yaml", {})
        assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_the_commented_redis_target_of_the_example_config_is_valid_once_uncommented():
    text = (ROOT / "config.example.yaml").read_text()
    start = text.index("  # - name: local-redis")
    end = text.index("\n\n", start)
    block = "\n".join(line.replace("  # ", "  ", 1) for line in text[start:end].splitlines())
    config = parse_config(text[:start] + block + text[end:], "config.example.yaml", {})
    [redis_target] = [t for t in config.resolved_targets() if t.engine == "redis"]
    assert redis_target.dsn == "redis://127.0.0.1:6379/0" and redis_target.password_env is None
    assert set(redis_target.collectors) == {"redis", "slowlog"}
