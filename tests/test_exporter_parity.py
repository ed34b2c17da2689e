"""Names the reference exporters have and dbwatch had not (issue 22): each checked side by side with the Debian
exporter scraping the same throwaway server.

Real servers: a PostgreSQL 15 of this module's own with prometheus-postgres-exporter 0.11; a redis-server with
prometheus-redis-exporter 1.45; the session's MariaDB (mariadb_primary) with prometheus-mysqld-exporter 0.14
(its info_schema.processlist and info_schema.innodb_metrics collectors on).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dbwatch.collectors.mysql import MySQLCollector, MySQLOptions
from dbwatch.collectors.postgres import PostgresCollector
from dbwatch.collectors.redis import RedisCollector
from dbwatch.model import CollectorSettings, MetricFamily, Target
from dbwatch.model.options import CollectorOptions
from tests.helpers import collect, free_port, wait_for
from tests.mariadbserver import CLIENT, mariadb_primary  # noqa: F401
from tests.pgcluster import PostgresServer
from tests.pgexporter import parse_exposition, running_exporter, scrape
from tests.redisserver import RedisServer


def target(engine: str, dsn: str, collector: str, options: object) -> Target:
    return Target(name="t", engine=engine, dsn=dsn, labels={},
                  collectors={collector: CollectorSettings(15, 10, options)})  # type: ignore[arg-type]


def by_labels(family: MetricFamily) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(zip(family.labelnames, values))): value for values, value in family.samples}


@contextmanager
def exporter(binary: str, *flags: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A Debian exporter on a free loopback port; yields its /metrics URL."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed (Debian package {binary})")
    port = free_port()
    proc = subprocess.Popen([path, f"--web.listen-address=127.0.0.1:{port}", *flags],
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _answers(url), 30, f"{binary} to answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def _answers(url: str) -> bool:
    try:
        scrape(url)
        return True
    except OSError:
        return False


# -- PostgreSQL -----------------------------------------------------------------------------------------


async def test_pg_stat_database_and_sizes_show_templates_and_the_shared_row_as_postgres_exporter_does(session_for):
    server = PostgresServer().start()
    try:
        server.psql("CREATE DATABASE app")
        collector = PostgresCollector(t := target("postgres", server.dsn(), "postgres", CollectorOptions()),
                                      session_for(t))
        families = {f.name: f for f in (await collect(collector)).families}
        with running_exporter(server.dsn()) as url:
            theirs = parse_exposition(scrape(url), ignore_labels=("server",))
    finally:
        server.destroy()
    commits = families["pg_stat_database_xact_commit"]
    ours = {tuple(sorted(zip(commits.labelnames, values))) for values, _ in commits.samples}
    expected = {tuple(sorted(labels.items())) for labels, _ in theirs["pg_stat_database_xact_commit"].samples}
    assert ours == expected
    assert (("datid", "0"), ("datname", "")) in ours  # the shared catalogs' row
    sizes = {values[0] for values, _ in families["pg_database_size_bytes"].samples}
    assert sizes == {labels["datname"] for labels, _ in theirs["pg_database_size_bytes"].samples}
    assert {"template0", "template1", "app", "postgres"} <= sizes
    # The facts rules read still describe the databases one can use, not the templates.
    assert families["pg_replication_lag"].samples == [((), 0.0)] == families["pg_replication_lag_seconds"].samples


# -- Redis ----------------------------------------------------------------------------------------------


async def test_redis_command_statistics_and_instance_info_as_redis_exporter_names_them(session_for):
    server = RedisServer().start()
    try:
        dsn = f"redis://127.0.0.1:{server.port}"
        client = [shutil.which("redis-cli") or "redis-cli", "-p", str(server.port)]
        for command in (["SET", "k", "v"], ["SET", "k", "w"], ["GET", "k"], ["CLIENT", "ID"], ["GET"]):
            subprocess.run([*client, *command], capture_output=True, timeout=10)
        collector = RedisCollector(t := target("redis", dsn, "redis", CollectorOptions()), session_for(t))
        families = {f.name: f for f in (await collect(collector)).families}
        with exporter("prometheus-redis-exporter", f"--redis.addr={dsn}") as url:
            theirs = parse_exposition(scrape(url))
    finally:
        server.destroy()
    for name in ("redis_commands_total", "redis_commands_duration_seconds_total",
                 "redis_commands_rejected_calls_total", "redis_commands_failed_calls_total"):
        assert families[name].labelnames == ("cmd",) and theirs[name].labelnames == {("cmd",)}, name
        assert families[name].type.value == theirs[name].type == "counter"
    calls = by_labels(families["redis_commands_total"])
    assert calls[(("cmd", "set"),)] == 2 and calls[(("cmd", "client|id"),)] == 1
    their_calls = {labels["cmd"]: value for labels, value in theirs["redis_commands_total"].samples}
    assert their_calls["set"] == 2 and their_calls["client|id"] == 1
    rejected = by_labels(families["redis_commands_rejected_calls_total"])
    assert rejected[(("cmd", "get"),)] == 1  # GET without its key: refused before running
    assert families["redis_commands_duration_seconds_total"].value(cmd="set") > 0
    info = families["redis_instance_info"]
    replid = info.samples[0][0][info.labelnames.index("master_replid")]
    assert len(replid) == 40, replid


# -- MySQL/MariaDB --------------------------------------------------------------------------------------


async def test_mysql_processlist_threads_and_innodb_metrics_as_mysqld_exporter_names_them(mariadb_primary,
                                                                                        session_for):
    sleepers = [subprocess.Popen([CLIENT, "-h", "127.0.0.1", "-P", str(mariadb_primary.port), "-u", "root",
                                  "-e", "SELECT SLEEP(20)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(2)]
    try:
        wait_for(lambda: mariadb_primary.sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User sleep'") == "2", 10,
            "two sessions in SLEEP()")
        collector = MySQLCollector(t := target("mysql", mariadb_primary.dsn(), "mysql", MySQLOptions()),
                                   session_for(t))
        families = {f.name: f for f in (await collect(collector)).families}
        with exporter("prometheus-mysqld-exporter", "--collect.info_schema.processlist",
                      "--collect.info_schema.innodb_metrics",
                      env={"DATA_SOURCE_NAME": f"root@(127.0.0.1:{mariadb_primary.port})/"}) as url:
            theirs = parse_exposition(scrape(url))
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait(10)
    threads = families["mysql_info_schema_processlist_threads"]
    assert threads.labelnames == ("command", "state")
    assert threads.value(command="query", state="user_sleep") == 2
    their_threads = {(labels["command"], labels["state"]): value
                     for labels, value in theirs["mysql_info_schema_processlist_threads"].samples}
    assert their_threads[("query", "user_sleep")] == 2
    ours = {name for name in families if name.startswith("mysql_info_schema_innodb_metrics_")}
    expected = {name for name in theirs if name.startswith("mysql_info_schema_innodb_metrics_")}
    assert ours == expected
    for name in expected:
        assert families[name].type.value == theirs[name].type, name
    assert families["mysql_info_schema_innodb_metrics_transaction_trx_rseg_history_len"].value() is not None
    pages = by_labels(families["mysql_info_schema_innodb_metrics_buffer_pool_pages"])
    assert {labels[0][1] for labels in pages} == {"data", "free", "misc"}

