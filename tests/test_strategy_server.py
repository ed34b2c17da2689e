"""The server beside the agent (collectors/server_process.py): the workload collector reads the real
postmaster's CPU and its data directory's filesystem, refuses a process that is not the server, and the
capacity rule (rules/capacity.py, DatabaseWillFillDisk) weighs a database's measured growth against that
free space within DiskWillFillIn's horizon."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess

import psutil

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.pg_workload import POSTMASTER, PgWorkloadCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_workload import MYSQLD, MySQLWorkloadCollector
from dbwatch.collectors.server_process import find_server, read_server
from dbwatch.model import Snapshot
from dbwatch.model.facts.server_resources import ServerResources
from dbwatch.model.facts.workload_profile import WorkloadProfile
from dbwatch.rules.capacity import make_rules
from dbwatch.rules.engine import TargetView
from dbwatch.rules.spec import RulesConfig
from dbwatch.rules.strategy_common import server_cpu
from tests.auditutil import collect_once, target
from tests.mariadbserver import MariaDBServer, mariadb_primary  # noqa: F401 (fixture)
from tests.pgcluster import PostgresServer

MB = 1024 * 1024


def _collect(server: PostgresServer) -> Snapshot:
    store = SnapshotStore(history_size=2)
    t = target("postgres", server.dsn(), {"workload": {}})
    snapshot = asyncio.run(collect_once(store, PgWorkloadCollector, PostgresSession, t))
    assert snapshot.error is None, snapshot.error
    return snapshot


def _postmaster(server: PostgresServer) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


def test_the_workload_collector_reads_the_local_postmaster(pg_primary: PostgresServer):
    resources = _collect(pg_primary).fact(ServerResources)
    assert resources is not None
    assert resources.pid == _postmaster(pg_primary)
    assert os.path.realpath(resources.data_path or "") == os.path.realpath(pg_primary.data)
    fs = os.statvfs(pg_primary.data)
    assert resources.filesystem_bytes == fs.f_blocks * fs.f_frsize
    assert abs((resources.filesystem_avail_bytes or 0) - fs.f_bavail * fs.f_frsize) < 256 * MB
    # the postmaster and its backends (this collection's own included) used some CPU, less than every core
    share = resources.cpu_share
    assert resources.cpu_seconds > 0 and share is not None and 0 < share <= 1
    assert resources.cpus == psutil.cpu_count()


def test_a_process_that_did_not_start_when_the_server_did_is_not_the_server(pg_primary: PostgresServer):
    pid = _postmaster(pg_primary)
    started = psutil.Process(pid).create_time()
    assert read_server(pid, started, POSTMASTER) is not None
    assert read_server(pid, started - 100, POSTMASTER) is None  # a reused pid, another PID namespace
    # the start matches (this test's own process, read at its own start time), the program is not the server's
    assert read_server(os.getpid(), psutil.Process().create_time(), POSTMASTER) is None
    assert read_server(2**22 + 7, started, POSTMASTER) is None  # no such process


def _history(resources: ServerResources, profile: WorkloadProfile, *points: tuple[float, int]) -> TargetView:
    store = SnapshotStore(history_size=10)
    for at, size in points:
        snapshot = Snapshot(target="t", engine="postgres", collector="workload", started_at=at, ok=True)
        snapshot.put(dataclasses.replace(profile, database_bytes=size))
        snapshot.put(resources)
        store.put(snapshot)
    return TargetView(store, "t", "postgres", {}, points[-1][0])


def _fill(real: Snapshot, config: dict, avail: int, grown_in_two_hours: int) -> list:
    resources = dataclasses.replace(real.need(ServerResources), filesystem_avail_bytes=avail)
    profile = real.need(WorkloadProfile)
    t0 = resources.read_at
    view = _history(resources, profile, (t0, 1000 * MB), (t0 + 7200, 1000 * MB + grown_in_two_hours))
    return [f for rule in make_rules(RulesConfig.model_validate(config)) for f in rule.evaluate(view)]


def test_database_will_fill_disk_within_the_horizon(pg_primary: PostgresServer):
    real = _collect(pg_primary)
    # 10 MB in 2 h is 120 MB a day: 100 MB free lasts 20 h, inside the default 24 h horizon
    [f] = _fill(real, {}, 100 * MB, 10 * MB)
    assert f.rule == "DatabaseWillFillDisk" and f.labels["datname"] == "postgres"
    assert f.evidence["growth_bytes_per_day"] == 120 * MB and f.evidence["hours_until_full"] == 20.0
    assert f.evidence["data_path"] and "20.0 h" in f.summary
    # the near-misses: a shorter horizon, room enough, a database that shrinks; DiskWillFillIn disabled
    assert _fill(real, {"overrides": {"DiskWillFillIn": {"horizon": "12h"}}}, 100 * MB, 10 * MB) == []
    assert _fill(real, {}, 1000 * MB, 10 * MB) == []
    assert _fill(real, {}, 100 * MB, -10 * MB) == []
    assert _fill(real, {"overrides": {"DiskWillFillIn": {"enabled": False}}}, 100 * MB, 10 * MB) == []


def test_cpu_between_two_readings_of_the_same_server_beats_the_average_since_start(pg_primary: PostgresServer):
    real = _collect(pg_primary)
    first = real.need(ServerResources)
    profile = real.need(WorkloadProfile)
    busy = dataclasses.replace(first, cpu_seconds=first.cpu_seconds + 0.75 * 3600 * first.cpus,
                               read_at=first.read_at + 3600)
    store = SnapshotStore(history_size=10)
    for at, reading in ((first.read_at, first), (busy.read_at, busy)):
        snapshot = Snapshot(target="t", engine="postgres", collector="workload", started_at=at, ok=True)
        snapshot.put(profile)
        snapshot.put(reading)
        store.put(snapshot)
    share, cpus, basis = server_cpu(TargetView(store, "t", "postgres", {}, busy.read_at)) or (0, 0, "")
    assert round(share, 3) == 0.75 and cpus == first.cpus and basis == "over the last 1.0 h"
    # a restarted server (another process) between the readings: only the average since its start is known
    restarted = dataclasses.replace(busy, pid=busy.pid + 1, started_at=busy.started_at + 1800)
    assert restarted.cpu_share_since(first) is None


def test_the_mysql_workload_collector_finds_the_local_mariadbd_by_its_start(mariadb_primary: MariaDBServer):  # noqa: F811
    store = SnapshotStore(history_size=2)
    t = target("mysql", mariadb_primary.dsn(), {"workload": {}})
    snapshot = asyncio.run(collect_once(store, MySQLWorkloadCollector, MySQLSession, t))
    assert snapshot.error is None, snapshot.error
    resources = snapshot.fact(ServerResources)
    # two mariadbd run here (the machine's and this test's): the one whose start matches Uptime is chosen
    assert resources is not None and mariadb_primary.process is not None
    assert resources.pid == mariadb_primary.process.pid
    assert os.path.realpath(resources.data_path or "") == os.path.realpath(mariadb_primary.data)
    assert resources.cpu_seconds > 0 and resources.filesystem_avail_bytes
    assert find_server(MYSQLD, resources.started_at - 10**6) is None  # no mariadbd started 11 days earlier


def test_two_servers_started_in_the_same_second_are_told_apart_by_their_data_directory(tmp_path):
    # a primary and its replica started together: both fit the start time; the working directory decides
    dirs = [tmp_path / "a", tmp_path / "b"]
    procs = []
    for d in dirs:
        d.mkdir()
        procs.append(subprocess.Popen(["sleep", "30"], cwd=d))
    try:
        started = psutil.Process(procs[0].pid).create_time()
        assert find_server(("sleep",), started) is None  # two fit, no directory given: no guess
        assert find_server(("sleep",), started, str(dirs[1])) == procs[1].pid
        assert find_server(("sleep",), started, str(tmp_path)) is None  # neither runs there
    finally:
        for p in procs:
            p.kill()
            p.wait()
