"""The replication and HA review against real servers: PostgreSQL primaries and streaming standbys, MariaDB
primaries and replicas, Redis primaries with replicas, and a MongoDB replica set through the wire-protocol test
server. Each finding fires on its pattern and stays silent on the near miss, and an offered statement, once
run, makes its finding go."""

from __future__ import annotations

import datetime as dt

import redis

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mongo_ha_review import MongoHaReviewCollector
from dbwatch.collectors.mongodb import MongoCollector, MongoSession
from dbwatch.collectors.mysql import MySQLCollector, MySQLSession
from dbwatch.collectors.mysql_ha_review import MySQLHaReviewCollector
from dbwatch.collectors.pg_ha_review import PgHaReviewCollector
from dbwatch.collectors.postgres import PostgresCollector, PostgresSession
from dbwatch.collectors.redis import RedisCollector, RedisSession
from tests.auditutil import by_rule, collect_once, evaluate, target
from tests.helpers import wait_for
from tests.mariadbserver import MariaDBServer
from tests.mongowire import Member, MongoWireServer, Scenario
from tests.pgcluster import PostgresServer
from tests.redisserver import RedisServer


def _rules(findings) -> set[str]:
    return {f.rule for f in findings}


async def _pg(server: PostgresServer):
    t = target("postgres", server.dsn(), {"postgres": {}, "ha": {}})
    store = SnapshotStore()
    await collect_once(store, PostgresCollector, PostgresSession, t)
    await collect_once(store, PgHaReviewCollector, PostgresSession, t)
    return evaluate(store, "postgres", "ha_review")


async def test_postgres_async_standby_unbounded_slot_no_archive_and_standby_feedback_off(pg_primary, pg_standby):
    """pg_primary and its streaming standby (slot standby1), as initdb leaves them: nothing synchronous, no
    slot limit, no archive."""
    wait_for(lambda: pg_primary.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1",
             60, "the standby streaming")
    primary = await _pg(pg_primary)
    assert _rules(primary) == {"HaAsyncReplication", "HaSlotsUnbounded", "HaNoPitr"}
    [async_] = by_rule(primary, "HaAsyncReplication")
    assert async_.evidence["standbys"] == 1
    # A single standby: synchronous replication would stop every commit while it is down, so none is offered.
    assert async_.evidence["sql"] is None and "single standby" in async_.description
    [slots] = by_rule(primary, "HaSlotsUnbounded")
    assert slots.evidence["slots"] == ["standby1"] and slots.evidence["inactive"] == []
    assert slots.evidence["sql"].startswith("ALTER SYSTEM SET max_slot_wal_keep_size = '")
    assert slots.evidence["risk"] == "medium"
    standby = await _pg(pg_standby)
    assert _rules(standby) == {"HaStandbyFeedbackOff"}


async def test_postgres_near_misses_then_a_synchronous_standby_that_is_missing_or_defeated():
    """A primary of its own with a slot limit and an archive, and two standbys (cluster_name s1, s2: their
    application_name) with hot_standby_feedback on."""
    primary = PostgresServer(settings={"max_slot_wal_keep_size": "1GB", "archive_mode": "on",
                                       "synchronous_commit": "on", "archive_command": "'/bin/true'"}).start()
    standbys: list[PostgresServer] = []
    try:
        for name in ("s1", "s2"):
            standbys.append(PostgresServer(settings={**primary.settings, "hot_standby_feedback": "on",
                                                     "cluster_name": f"'{name}'"}, primary=primary).start())
        streaming = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        wait_for(lambda: primary.psql(streaming) == "2", 60, "both standbys streaming")
        assert _rules(await _pg(standbys[0])) == set()
        [async_] = await _pg(primary)
        assert async_.rule == "HaAsyncReplication" and async_.evidence["application_names"] == ["s1", "s2"]
        assert async_.evidence["sql"].startswith(
            """ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ("s1", "s2")'""")
        primary.psql(async_.evidence["sql"])  # as offered: commits wait for either standby
        wait_for(lambda: primary.psql("SELECT string_agg(sync_state, ',') FROM pg_stat_replication")
                 == "quorum,quorum", 30, "both standbys in the quorum")
        primary.psql("CREATE TABLE written (x int); INSERT INTO written VALUES (1)")  # a commit goes through
        assert _rules(await _pg(primary)) == set()
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf()")
        wait_for(lambda: primary.psql("SHOW synchronous_standby_names") == "nobody", 20, "the reload")
        missing = await _pg(primary)
        assert _rules(missing) == {"HaSyncStandbyMissing"}
        assert by_rule(missing, "HaSyncStandbyMissing")[0].severity == "critical"
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = 's1'; "
                     "ALTER SYSTEM SET synchronous_commit = 'local'; SELECT pg_reload_conf()")
        wait_for(lambda: primary.psql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 's1'")
                 == "sync", 30, "s1 synchronous")
        defeated = await _pg(primary)
        assert _rules(defeated) == {"HaSyncCommitLocal"}
        primary.psql(by_rule(defeated, "HaSyncCommitLocal")[0].evidence["sql"])
        wait_for(lambda: primary.psql("SHOW synchronous_commit") == "on", 20, "the reload")
        assert _rules(await _pg(primary)) == set()
    finally:
        for standby in standbys:
            standby.destroy()
        primary.destroy()


async def _maria(server: MariaDBServer):
    t = target("mysql", server.dsn(), {"mysql": {}, "ha": {}})
    store = SnapshotStore()
    await collect_once(store, MySQLCollector, MySQLSession, t)
    await collect_once(store, MySQLHaReviewCollector, MySQLSession, t)
    return evaluate(store, "mysql", "ha_review")


async def test_mariadb_async_replica_binlog_durability_and_a_replica_without_gtid():
    primary = MariaDBServer(server_id=21).start()
    try:
        replica = primary.replica(server_id=22)
        try:
            wait_for(lambda: "Binlog Dump" in primary.sql("SHOW PROCESSLIST"), 60, "the replica connected")
            found = await _maria(primary)
            assert {"HaAsyncReplication", "HaBinlogNotDurable"} <= _rules(found)
            [async_] = by_rule(found, "HaAsyncReplication")
            assert async_.evidence["replicas_connected"] == 1
            assert async_.evidence["sql"].startswith("-- first on each replica: SET GLOBAL rpl_semi_sync_slave_enabled")
            assert async_.evidence["sql"].endswith("SET GLOBAL rpl_semi_sync_master_enabled = ON;")
            # The replica follows GTIDs (MASTER_USE_GTID=slave_pos) and is read-only: the near misses.
            assert not {"HaReplicaWithoutGtid", "HaReplicaWritable"} & _rules(await _maria(replica))
            replica.sql("SET GLOBAL read_only = OFF")
            [writable] = by_rule(await _maria(replica), "HaReplicaWritable")
            replica.sql(writable.evidence["sql"])
            assert "HaReplicaWritable" not in _rules(await _maria(replica))
            replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID=no; START SLAVE")
            [no_gtid] = by_rule(await _maria(replica), "HaReplicaWithoutGtid")
            assert no_gtid.evidence["using_gtid"].lower() == "no"
            durable = by_rule(found, "HaBinlogNotDurable")[0]
            primary.sql(durable.evidence["sql"].replace("\n", " "))
            replica.sql("SET GLOBAL rpl_semi_sync_slave_enabled = ON; STOP SLAVE IO_THREAD; START SLAVE IO_THREAD")
            primary.sql(async_.evidence["sql"].splitlines()[-1])
            assert not {"HaAsyncReplication", "HaBinlogNotDurable"} & _rules(await _maria(primary))
        finally:
            replica.destroy()
    finally:
        primary.destroy()


async def _redis(server: RedisServer):
    t = target("redis", server.dsn(), {"redis": {}})
    store = SnapshotStore()
    await collect_once(store, RedisCollector, RedisSession, t)
    return evaluate(store, "redis", "ha_review")


async def test_redis_primary_with_a_replica_and_no_persistence_until_aof_is_on():
    primary = RedisServer().start()  # save "" and appendonly no
    try:
        assert _rules(await _redis(primary)) == set()  # the near miss: no replica to empty
        replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port)).start()
        try:
            client = redis.Redis(port=primary.port)
            wait_for(lambda: client.info("replication")["connected_slaves"] == 1, 60, "the replica connected")
            [found] = await _redis(primary)
            assert found.rule == "HaRedisPrimaryWithoutPersistence" and found.evidence["connected_replicas"] == 1
            client.config_set("appendonly", "yes")  # what the finding offers (CONFIG REWRITE needs a file)
            assert _rules(await _redis(primary)) == set()
        finally:
            replica.destroy()
    finally:
        primary.destroy()


async def _mongo(members: list[Member], write_concern: dict | None = None):
    server = MongoWireServer(Scenario(members=members, default_write_concern=write_concern)).start()
    try:
        t = target("mongodb", server.dsn(), {"mongodb": {}, "ha": {}})
        store = SnapshotStore()
        await collect_once(store, MongoCollector, MongoSession, t)
        await collect_once(store, MongoHaReviewCollector, MongoSession, t)
        return evaluate(store, "mongodb", "ha_review")
    finally:
        server.stop()


async def test_mongodb_even_voting_members_and_weak_write_concern_with_their_near_misses():
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    members = [Member("a:27017", 1, now, self_=True), Member("b:27017", 2, now), Member("c:27017", 2, now)]
    assert _rules(await _mongo(members)) == set()  # three voters, the implicit w:"majority"
    [even] = await _mongo([*members, Member("d:27017", 2, now)])
    assert even.rule == "HaMongoEvenMembers" and even.evidence["majority"] == 3
    assert even.evidence["votes_from"] == "replSetGetConfig"
    # A fourth member without a vote: three voters, not even.
    assert _rules(await _mongo([*members, Member("d:27017", 2, now, votes=0)])) == set()
    [weak] = await _mongo(members, write_concern={"w": 1})
    assert weak.rule == "HaMongoWeakWriteConcern" and weak.evidence["default_w"] == "1"
    assert "setDefaultRWConcern" in weak.evidence["sql"] and weak.evidence["risk"] == "medium"
    # Primary, secondary, arbiter: the implicit default is w:1, and majority writes would stall with the
    # secondary down, so nothing is offered.
    [psa] = await _mongo([members[0], members[1], Member("c:27017", 7, now)])
    assert psa.rule == "HaMongoWeakWriteConcern" and psa.evidence["sql"] is None
    assert psa.evidence["arbiters"] == 1 and "implicit" in psa.summary
