"""TargetJobs.collect, the one way a collection runs: failures that are configuration problems, and the history
it leaves in its snapshots.

Starts: nothing for the password file (it cannot be read, so no connection is attempted); a throwaway Redis
(tests/redisserver.py) for the history.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterator

import pytest

from dbwatch.agent.jobs import TargetJobs, share_unchanged
from dbwatch.agent.store import SnapshotStore
from dbwatch.model import CollectorSettings, Target, gauge
from dbwatch.model.facts.common import ReplicationLink, Summary
from dbwatch.model.facts.redis import RedisInfo
from tests.redisserver import RedisServer


async def test_an_unreadable_password_file_is_a_failed_collection_naming_the_file_without_a_traceback(
        tmp_path, caplog):
    missing = tmp_path / "pg-password"
    target = Target(name="db", engine="postgres", dsn="postgresql://dbwatch@127.0.0.1:1/postgres", labels={},
                    collectors={"postgres": CollectorSettings(15, 5)}, password_file=str(missing))
    jobs = TargetJobs(target)
    caplog.set_level(logging.INFO)
    try:
        snapshot = await jobs.collect("postgres")
    finally:
        await jobs.close()
    assert not snapshot.ok
    assert snapshot.error == f"cannot read password_file {missing} (No such file or directory)"
    assert snapshot.family("dbwatch_target_up").value() == 0 and snapshot.family("pg_up").value() == 0
    assert not any(r.exc_info for r in caplog.records), "a configuration problem is not an internal error"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.destroy()


@asynccontextmanager
async def watching(server: RedisServer, name: str = "r", **options: Any) -> AsyncIterator[TargetJobs]:
    """The jobs of a Redis target on ``server`` with its main collector only, closed afterwards."""
    jobs = TargetJobs(Target(name=name, engine="redis", dsn=server.dsn(), labels={},
                             collectors={"redis": CollectorSettings(15, 5)}), **options)
    try:
        yield jobs
    finally:
        await jobs.close()


async def test_older_snapshots_keep_only_what_rules_read_over_time_and_the_newest_successful_one_keeps_all(redis):
    async with watching(redis, history_metrics={"redis_connected_clients": 600.0},
                        history_facts=frozenset({ReplicationLink})) as jobs:
        first, second = [await jobs.collect("redis") for _ in range(2)]
        assert first.ok and second.ok
        everything = set(second.facts)
        assert {RedisInfo, ReplicationLink, Summary} <= everything and len(second.families) > 50
        # a newer successful collection: the first keeps only the fact and family read over time
        assert set(first.facts) == {ReplicationLink}
        assert [f.name for f in first.families] == ["redis_connected_clients"]
        redis.stop()
        failed = [await jobs.collect("redis") for _ in range(3)]
        assert not any(s.ok for s in failed)
        # no successful collection newer than the second: it is where rules read the facts, all of them; its
        # families go once it is older than the newest two (the threshold rules read only theirs over time)
        assert set(second.facts) == everything and second.fact(RedisInfo) is not None
        assert [f.name for f in second.families] == ["redis_connected_clients"]


async def test_the_store_lets_go_of_old_collections_left_with_nothing_a_rule_reads(redis):
    store = SnapshotStore()
    async with watching(redis, history_metrics={}, history_facts=frozenset()) as jobs:
        for _ in range(5):
            store.put(await jobs.collect("redis"))
        history = store.history("r", "redis")
        assert len(history) == 2 and history[-1].facts and history[-1].families  # the newest is whole
        redis.stop()
        for _ in range(3):
            store.put(await jobs.collect("redis"))
        history = store.history("r", "redis")
        # the failed collections stay, and so does the newest successful one before them
        assert [s.ok for s in history] == [True, False, False, False] and history[0].facts


async def test_past_the_horizon_a_collection_keeps_only_the_families_read_over_a_longer_window(redis):
    # every collection but the newest two is past a horizon of 0 s; one family is read over an hour
    async with watching(redis, family_horizon=0.0, history_facts=frozenset(),
                        history_metrics={"redis_connected_clients": 3600.0, "redis_blocked_clients": 0.0}) as jobs:
        first, second, third = [await jobs.collect("redis") for _ in range(3)]
        assert {"redis_connected_clients", "redis_blocked_clients"} <= {f.name for f in third.families}
        assert [f.name for f in first.families] == ["redis_connected_clients"]
        jobs.history_metrics = {"redis_connected_clients": 0.0}  # a reload shortened the window
        await jobs.collect("redis")
        assert first.families == [] and [f.name for f in second.families] == []


async def test_equal_label_values_of_two_targets_are_one_string(redis):
    async with watching(redis, "a") as a_jobs, watching(redis, "b") as b_jobs:
        jobs = [a_jobs, b_jobs]
        first = [await j.collect("redis") for j in jobs]
        second = [await j.collect("redis") for j in jobs]  # shared with the first collection, then across
        for snapshots in (first, second):
            a, b = (s.family("redis_commands_total") for s in snapshots)
            assert a is not None and b is not None
            labels_a = {labels[0]: labels[0] for labels, _ in a.samples}
            common = [labels[0] for labels, _ in b.samples if labels[0] in labels_a]
            assert common and all(labels_a[cmd] is cmd for cmd in common)


def test_a_collection_reuses_what_did_not_change_of_the_previous_one():
    def families(clients: float, version: str, keys: dict[str, float], help_: str = "Clients.") -> list:
        connected = gauge("redis_connected_clients", help_)
        connected.add((), clients)
        info_ = gauge("redis_instance_info", "Info.", ("redis_version",))
        info_.add((version,), 1)
        db_keys = gauge("redis_db_keys", "Keys.", ("db",))
        for db, count in keys.items():
            db_keys.add((db,), count)
        return [connected, info_, db_keys]

    old = families(3, "7.0.15", {"db0": 10, "db1": 0})
    share_unchanged([], old)
    assert all(type(f.samples) is tuple for f in old)
    same = families(3, "7.0.15", {"db0": 10, "db1": 0})
    assert share_unchanged(old, same) and all(a is b for a, b in zip(same, old))

    new = families(4, "7.2.4", {"db0": 11, "db1": 0, "db2": 5})
    assert not share_unchanged(old, new)
    connected, info_, db_keys = new
    assert connected is not old[0] and connected.samples == (((), 4),)
    assert connected.samples[0][0] is old[0].samples[0][0]
    assert info_ is not old[1] and info_.samples == ((("7.2.4",), 1),)  # one series, other labels: a new one
    assert db_keys.samples[1] is old[2].samples[1]  # db1 unchanged: the old sample itself
    assert db_keys.samples[0] == (("db0",), 11) and db_keys.samples[0][0] is old[2].samples[0][0]
    assert db_keys.samples[2] == (("db2",), 5) and type(db_keys.samples) is tuple

    reworded = families(3, "7.0.15", {"db0": 10, "db1": 0}, help_="Connected clients.")
    assert not share_unchanged(old, reworded)
    assert reworded[0] is not old[0] and reworded[0].help == "Connected clients." and reworded[1] is old[1]
