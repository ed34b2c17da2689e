"""Restore drills on real servers and tools: the newest backup restored into a throwaway server, verified,
deleted; broken backups failing with their reason and the rules firing.

Starts: a throwaway PostgreSQL 15 archiving through a real pgBackRest (tests/test_backup.py's PgBackRest) with
a full backup and WAL archived after it; the drills' own throwaway PostgreSQL, MariaDB and Redis servers;
a throwaway MariaDB (tests/mariadbserver.py) dumped with mariadb-dump; a throwaway Redis (tests/redisserver.py)
whose RDB is restored; a 16 MiB tmpfs for the refused drill (mounted and unmounted by the test, as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dbwatch.agent.config import parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.restore_drill import run_drill, save_result
from dbwatch.collectors.restore_job import drill_families
from dbwatch.model import Snapshot, Target
from dbwatch.model.facts.backup import BackupStatuses
from dbwatch.model.facts.restore import DrillStep, RestoreDrill, RestoreDrills
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig, load_rules
from tests.pgcluster import PostgresServer
from tests.test_backup import STANZA, PgBackRest
from tests.helpers import assert_declared, wait_for, wait_until

ROWS = 1000


@pytest.fixture(scope="module")
def stanza() -> Iterator[dict[str, Any]]:
    """A server archiving through pgBackRest: a full backup of 1000 orders, then 500 more archived after it."""
    root = Path(tempfile.mkdtemp(prefix="dbwatch-drill-pgbr-"))
    os.chmod(root, 0o755)
    pgbr = PgBackRest(root / "pgbr")
    server = PostgresServer(settings={"archive_mode": "on", "archive_command": "'/bin/true'"})
    pgbr.configure(server)
    server.settings["archive_command"] = pgbr.archive_command()
    try:
        server.start()
        server.psql(f"CREATE TABLE orders (id int PRIMARY KEY, note text); "
                    f"INSERT INTO orders SELECT i, 'o' || i FROM generate_series(1, {ROWS}) i")
        pgbr.run("stanza-create")
        pgbr.run("--type=full", "backup")
        for first in (ROWS + 1, ROWS + 251):  # two more segments, each holding 250 orders
            server.psql(f"INSERT INTO orders SELECT i, 'late' FROM generate_series({first}, {first + 249}) i")
            server.psql("SELECT pg_switch_wal()")
        archived = "SELECT archived_count FROM pg_stat_archiver"
        wait_for(lambda: int(server.psql(archived)) >= 4, 30, "the segments after the backup archived")
        yield {"server": server, "pgbr": pgbr, "root": root}
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="dbwatch-restore-work-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _target(yaml_text: str) -> Target:
    return parse_config(textwrap.dedent(yaml_text)).resolved_targets()[0]


def _pg_target(server: PostgresServer, conf: Path, workdir: str, verify: str = '["SELECT count(*) FROM orders"]',
               rto: str = "10m") -> Target:
    return _target(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{server.dsn()}"
            backups:
              - type: pgbackrest
                stanza: {STANZA}
                config: {conf}
                restore_test: {{every: 24h, rto: {rto}, workdir: {workdir}, verify: {verify}}}
        """)


def _findings(target: Target, drill: RestoreDrill, now: float) -> list[str]:
    snapshot = Snapshot(target=target.name, engine=target.engine, collector="restore_drill", started_at=now)
    snapshot.families.extend(drill_families([drill], list(target.backups), now, now))
    store = SnapshotStore()
    store.put(snapshot)
    view = TargetView(store, target.name, target.engine, target.labels, now=now)
    return sorted(f.rule for f in RuleEngine(load_rules(RulesConfig())).evaluate(view))


def _left_behind(workdir: str) -> list[str]:
    return [name for name in os.listdir(workdir) if not name.startswith(".")]


async def test_a_pgbackrest_backup_is_restored_replayed_to_the_end_of_the_archive_and_verified(
        stanza: dict[str, Any], workdir: str) -> None:
    server = stanza["server"]
    target = _pg_target(server, stanza["pgbr"].conf, workdir)
    lines: list[str] = []
    drill = await run_drill(target, target.backups[0], lines.append)
    assert drill.ok, (drill.error, lines)
    # the backup held 1000 orders; the 500 after it came from the WAL archive
    assert [(v.statement, v.result) for v in drill.verified] == [("SELECT count(*) FROM orders", str(ROWS + 500))]
    assert drill.compared == (("public.orders", ROWS + 500, drill.compared[0][2]),)
    steps = [s.name for s in drill.steps]
    assert steps == ["check_space", "restore", "start", "recover", "verify", "compare", "cleanup"]
    assert all(s.ok for s in drill.steps) and drill.duration > 0
    assert drill.restored_to is not None and drill.restored_to >= drill.backup_finished_at - 1  # type: ignore[operator]
    assert _left_behind(workdir) == []  # the server stopped and its directory deleted
    assert server.psql("SELECT count(*) FROM orders") == str(ROWS + 500)  # the live server untouched
    assert _findings(target, drill, time.time()) == []
    slow = _pg_target(server, stanza["pgbr"].conf, workdir, rto="1s")
    assert _findings(slow, drill, time.time()) == ["RestoreSlowerThanRTO"]


async def test_a_failing_verification_statement_fails_the_drill_and_fires_restore_test_failed(
        stanza: dict[str, Any], workdir: str) -> None:
    target = _pg_target(stanza["server"], stanza["pgbr"].conf, workdir, verify='["SELECT count(*) FROM nosuch"]')
    drill = await run_drill(target, target.backups[0])
    assert not drill.ok and drill.error is not None
    assert "verification failed: SELECT count(*) FROM nosuch" in drill.error and "nosuch" in drill.error
    assert _left_behind(workdir) == []
    assert _findings(target, drill, time.time()) == ["RestoreTestFailed"]


async def test_a_drill_past_its_timeout_is_stopped_and_its_server_and_files_deleted(
        stanza: dict[str, Any], workdir: str) -> None:
    target = _target(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{stanza['server'].dsn()}"
            backups:
              - type: pgbackrest
                stanza: {STANZA}
                config: {stanza['pgbr'].conf}
                restore_test: {{rto: 10m, timeout: 8s, workdir: {workdir}, verify: ["SELECT pg_sleep(60)"]}}
        """)
    began = time.monotonic()
    drill = await run_drill(target, target.backups[0])
    assert time.monotonic() - began < 30
    assert not drill.ok and drill.error == "the drill did not finish within its timeout of 8s"
    assert drill.steps[-1].name == "cleanup" and drill.steps[-1].ok
    assert _left_behind(workdir) == []
    drills = subprocess.run(["pgrep", "-f", "cluster_name=dbwatch-restore-drill|dbwatch-restore-drill"],
                            capture_output=True, text=True)
    assert drills.stdout == ""  # no throwaway postgres left running


async def test_a_too_small_workdir_is_refused_before_anything_is_restored(stanza: dict[str, Any]) -> None:
    mount = tempfile.mkdtemp(prefix="dbwatch-tiny-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mount], check=True)
    try:
        target = _pg_target(stanza["server"], stanza["pgbr"].conf, mount)
        drill = await run_drill(target, target.backups[0])
        assert not drill.ok and drill.error is not None and drill.error.startswith("refused: the restore needs about")
        assert [s.name for s in drill.steps] == ["check_space", "cleanup"]
        assert _left_behind(mount) == []
    finally:
        subprocess.run(["umount", mount], check=True)
        os.rmdir(mount)


async def test_two_drills_never_run_at_once(stanza: dict[str, Any], workdir: str) -> None:
    import fcntl
    target = _pg_target(stanza["server"], stanza["pgbr"].conf, workdir)
    with open(os.path.join(workdir, ".dbwatch-drill.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        drill = await run_drill(target, target.backups[0])
    assert not drill.ok and drill.error == f"another restore drill is running in {workdir}"


async def test_the_daemons_restore_drill_job_runs_the_drill_in_the_background_and_exports_it(
        stanza: dict[str, Any], workdir: str) -> None:
    target = _pg_target(stanza["server"], stanza["pgbr"].conf, workdir)
    assert "restore_drill" in target.collectors  # on because the source has restore_test:
    jobs = TargetJobs(target)
    try:
        first = await jobs.collect("restore_drill")  # starts the first drill, returns at once
        assert first.family("dbwatch_restore_test_success") is not None
        assert dict(first.family("dbwatch_restore_test_overdue_seconds").samples) == {  # type: ignore[union-attr]
            (f"pgbackrest/{STANZA}",): 0.0}
        assert not dict(first.family("dbwatch_restore_test_success").samples)  # type: ignore[union-attr]

        async def finished() -> Snapshot | None:
            snapshot = await jobs.collect("restore_drill")
            return snapshot if snapshot.family("dbwatch_restore_test_success").samples else None  # type: ignore[union-attr]

        done = await wait_until(finished, 120, "the background drill")
    finally:
        await jobs.close()
    assert_declared(done)
    source = (f"pgbackrest/{STANZA}",)
    assert dict(done.family("dbwatch_restore_test_success").samples) == {source: 1.0}  # type: ignore[union-attr]
    steps = dict(done.family("dbwatch_restore_test_duration_seconds").samples)  # type: ignore[union-attr]
    assert set(steps) == {(source[0], s) for s in ("total", "check_space", "restore", "start", "recover", "verify",
                                                    "compare", "cleanup")}
    assert dict(done.family("dbwatch_restore_test_rto_seconds").samples) == {source: 600.0}  # type: ignore[union-attr]
    assert done.family("dbwatch_restore_test_restored_data_age_seconds").samples  # type: ignore[union-attr]
    drills = done.fact(RestoreDrills)
    assert drills is not None and [d.ok for d in drills] == [True]
    assert _left_behind(workdir) == []

    restarted = TargetJobs(target)  # an agent restart: the recorded drill is exported, none is due
    try:
        again = await restarted.collect("restore_drill")
    finally:
        await restarted.close()
    assert dict(again.family("dbwatch_restore_test_success").samples) == {source: 1.0}  # type: ignore[union-attr]
    assert _left_behind(workdir) == []  # no drill started


async def test_one_shot_commands_never_start_a_drill(stanza: dict[str, Any], workdir: str) -> None:
    from dbwatch.agent.check import check_targets

    target = _pg_target(stanza["server"], stanza["pgbr"].conf, workdir)
    assert "restore_drill" in target.collectors
    [result] = await check_targets([target])
    assert result.up and "postgres" in result.durations
    assert "restore_drill" not in result.durations
    assert os.listdir(workdir) == []  # no drill started (it would have made its lock and data directory here)


def test_the_restore_test_command_runs_one_drill_with_progress_and_a_report(stanza: dict[str, Any], workdir: str,
                                                                           tmp_path: Path) -> None:
    server = stanza["server"]
    config = tmp_path / "dbwatch.yaml"
    config.write_text(textwrap.dedent(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{server.dsn()}"
            backups:
              - type: pgbackrest
                stanza: {STANZA}
                config: {stanza['pgbr'].conf}
                restore_test: {{rto: 10m, workdir: {workdir}, verify: ["SELECT count(*) FROM orders"]}}
        """))
    dbwatch = [sys.executable, "-m", "dbwatch.agent.cli", "backup", "restore-test", "-c", str(config)]
    done = subprocess.run([*dbwatch, "--target", "pg"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "restore: pgbackrest restore --set=" in done.stderr and "recover: done in" in done.stderr
    report = done.stdout
    assert report.startswith(f"Restore drill of pgbackrest/{STANZA} (pgbackrest) for target pg: SUCCEEDED")
    assert "restored up to: " in report and "within the RTO of 600s" in report
    assert f"ok     SELECT count(*) FROM orders -> {ROWS + 500}" in report
    assert f"public.orders: {ROWS + 500} / " in report
    for step in ("check_space", "restore", "start", "recover", "verify", "compare", "cleanup"):
        assert f"    {step} " in report

    unknown = subprocess.run([*dbwatch, "--target", "nosuch"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr == "dbwatch backup restore-test: no target named 'nosuch' (targets: pg)\n"
    source = subprocess.run([*dbwatch, "--target", "pg", "--source", "x"], capture_output=True, text=True, timeout=60)
    assert source.returncode == 2 and "has no backup source 'x'" in source.stderr

    config.write_text(config.read_text().replace("FROM orders", "FROM nosuch"))
    failed = subprocess.run([*dbwatch, "--target", "pg"], capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout.startswith(f"Restore drill of pgbackrest/{STANZA} (pgbackrest) for target pg: FAILED")
    assert "  reason: verification failed: SELECT count(*) FROM nosuch: " in failed.stdout
    assert "FAILED: verification failed" in failed.stderr


async def test_the_pitr_window_runs_from_the_oldest_backup_to_the_newest_archived_segment(
        stanza: dict[str, Any], workdir: str) -> None:
    target = _pg_target(stanza["server"], stanza["pgbr"].conf, workdir)
    snapshot = await _collect_backup(target)
    source = (f"pgbackrest/{STANZA}",)
    backup_end = dict(snapshot.family("dbwatch_backup_last_success_timestamp_seconds").samples)[  # type: ignore[union-attr]
        (source[0], "any")]
    earliest = dict(snapshot.family("dbwatch_pitr_earliest_timestamp_seconds").samples)  # type: ignore[union-attr]
    latest = dict(snapshot.family("dbwatch_pitr_latest_timestamp_seconds").samples)  # type: ignore[union-attr]
    assert earliest == {source: backup_end}
    assert backup_end <= latest[source] <= time.time() + 1
    assert dict(snapshot.family("dbwatch_wal_archive_missing_segments").samples) == {source: 0}  # type: ignore[union-attr]
    assert "WalArchiveGap" not in _rules_on(target, snapshot)


async def _collect_backup(target: Target) -> Snapshot:
    jobs = TargetJobs(target)
    try:
        snapshot = await jobs.collect("backup")
    finally:
        await jobs.close()
    assert_declared(snapshot)
    return snapshot


def _rules_on(target: Target, snapshot: Snapshot) -> list[str]:
    store = SnapshotStore()
    store.put(snapshot)
    view = TargetView(store, target.name, target.engine, target.labels, now=time.time())
    return sorted(f.rule for f in RuleEngine(load_rules(RulesConfig())).evaluate(view))


def test_the_runbook_names_the_replica_to_promote_the_restore_commands_the_drill_and_the_pitr_window(
        stanza: dict[str, Any], workdir: str, tmp_path: Path) -> None:
    server = stanza["server"]
    standby = server.standby()
    try:
        wait_for(lambda: server.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1",
                 30, "the standby streaming")
        config = tmp_path / "dbwatch.yaml"
        config.write_text(textwrap.dedent(f"""
            targets:
              - name: pg-a
                engine: postgres
                dsn: "{server.dsn()}"
                cluster: shop
                backups:
                  - type: pgbackrest
                    stanza: {STANZA}
                    config: {stanza['pgbr'].conf}
                    restore_test: {{rto: 10m, workdir: {workdir}}}
              - name: pg-b
                engine: postgres
                dsn: "{standby.dsn()}"
                cluster: shop
            clusters:
              shop:
                failover: {{action: pg_promote}}
            receivers:
              - {{name: oncall, type: webhook, url: "http://127.0.0.1:9/hook"}}
            """))
        target = parse_config(config.read_text()).resolved_targets()[0]
        now = time.time()
        save_result(target, target.backups[0], RestoreDrill(
            source=target.backups[0].name, kind="pgbackrest", started_at=now - 100, finished_at=now - 90, ok=True,
            rto_seconds=600, every_seconds=86400, steps=(DrillStep("restore", 8.0, True), DrillStep("start", 1.5, True))))
        dbwatch = [sys.executable, "-m", "dbwatch.agent.cli", "runbook", "-c", str(config), "--target", "pg-a"]
        done = subprocess.run(dbwatch, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        book = done.stdout
        assert book.startswith("# Disaster-recovery runbook: pg-a")
        assert "| pg-a | primary | yes | - |" in book and "| pg-b | replica | yes |" in book
        assert "Promote **pg-b** (reachable," in book
        assert f"psql -h 127.0.0.1 -p {standby.port} -U postgres -c 'SELECT pg_promote(true, 60)'" in book
        assert f"pgbackrest --stanza={STANZA} --config={stanza['pgbr'].conf} --delta restore" in book
        assert "--type=time" in book and "Point-in-time recovery window: " in book and "missing" not in book
        assert "Last restore drill: " in book and "restore time 10 s (within the RTO of 10.0 min)" in book
        assert "- oncall (webhook)" in book
        for step in ("## 1. Detect", "## 2. Promote", "## 3. Redirect", "## 4. Monitor lag",
                     "## 5. Rebuild the old primary", "## 6. Restore from backup"):
            assert step in book

        page = subprocess.run([*dbwatch, "--format", "html"], capture_output=True, text=True, timeout=120)
        assert page.returncode == 0 and page.stdout.startswith("<!doctype html>")
        assert "<h1>Disaster-recovery runbook: pg-a</h1>" in page.stdout and "<td>pg-b</td>" in page.stdout
        unknown = subprocess.run([*dbwatch[:-1], "nosuch"], capture_output=True, text=True, timeout=60)
        assert unknown.returncode == 2 and unknown.stderr == (
            "dbwatch runbook: no target named 'nosuch' (targets: pg-a, pg-b)\n")
    finally:
        standby.destroy()


async def test_a_wal_segment_missing_from_the_archive_fails_the_drill_naming_it(
        stanza: dict[str, Any], workdir: str) -> None:
    """Runs last in this module: it removes a segment from the stanza's archive."""
    archive = sorted(glob.glob(str(stanza["root"] / "pgbr" / "repo" / "archive" / STANZA / "*" / "*" / "0*-*")))
    removed = os.path.basename(archive[-2])[:24]  # a segment written after the backup, before the newest one
    os.remove(archive[-2])
    target = _pg_target(stanza["server"], stanza["pgbr"].conf, workdir)
    drill = await run_drill(target, target.backups[0])
    assert not drill.ok and drill.error is not None
    assert f"segment {removed} is missing from the archive" in drill.error, drill.error
    assert _left_behind(workdir) == []
    assert _findings(target, drill, time.time()) == ["RestoreTestFailed"]
    snapshot = await _collect_backup(target)
    assert dict(snapshot.family("dbwatch_wal_archive_missing_segments").samples) == {  # type: ignore[union-attr]
        (f"pgbackrest/{STANZA}",): 1}
    [status] = snapshot.fact(BackupStatuses) or ()
    assert status.wal_missing_first == (removed,)
    assert "WalArchiveGap" in _rules_on(target, snapshot)


# -- dump files and RDB files -----------------------------------------------------------------------


def _files_target(engine: str, dsn: str, pattern: str, workdir: str, verify: str) -> Target:
    return _target(f"""
        targets:
          - name: t
            engine: {engine}
            dsn: "{dsn}"
            backups:
              - type: files
                path: "{pattern}"
                restore_test: {{every: 24h, rto: 10m, workdir: {workdir}, verify: {verify}}}
        """)


async def test_a_mariadb_dump_is_loaded_into_a_throwaway_mariadb_and_verified(workdir: str) -> None:
    from tests.mariadbserver import CLIENT, MariaDBServer
    server = MariaDBServer(performance_schema=False).start()
    dumps = Path(tempfile.mkdtemp(prefix="dbwatch-dumps-"))
    try:
        server.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id int PRIMARY KEY); "
                   "INSERT INTO shop.orders SELECT seq FROM mysql.seq_1_to_300")
        dump = dumps / "shop.sql"
        with open(dump, "w") as fh:
            subprocess.run([CLIENT.replace("mariadb", "mariadb-dump"), "--no-defaults", "-h", "127.0.0.1",
                            "-P", str(server.port), "-u", "root", "--databases", "shop"], stdout=fh, check=True)
        target = _files_target("mysql", server.dsn(), f"{dumps}/*.sql", workdir, '["SELECT count(*) FROM shop.orders"]')
        drill = await run_drill(target, target.backups[0])
        assert drill.ok, drill.error
        assert [(v.statement, v.result) for v in drill.verified] == [("SELECT count(*) FROM shop.orders", "300")]
        assert [s.name for s in drill.steps] == ["check_space", "initdb", "start", "restore", "verify", "compare",
                                                 "cleanup"]
        [(table, restored, live)] = drill.compared
        assert (table, restored) == ("shop.orders", 300) and live is not None and live > 0  # InnoDB's estimate
        assert _left_behind(workdir) == []

        with open(dump, "r+b") as fh:  # cut the dump in the middle: it no longer ends with "-- Dump completed"
            fh.truncate(os.path.getsize(dump) // 2)
        broken = await run_drill(target, target.backups[0])
        assert not broken.ok and broken.error == (f"{dump} is incomplete: it lacks the dump's closing "
                                                  "'-- Dump completed' line (truncated, or the dump failed)")
        assert _findings(target, broken, time.time()) == ["RestoreTestFailed"]
    finally:
        server.destroy()
        shutil.rmtree(dumps, ignore_errors=True)


async def test_an_rdb_file_is_loaded_into_a_throwaway_redis_and_a_damaged_one_fails(workdir: str) -> None:
    from tests.redisserver import RedisServer
    server = RedisServer()
    server.start()
    try:
        client = server.client()
        for i in range(50):
            client.set(f"key:{i}", i)
        client.save()
        rdb = server.root / "dump.rdb"
        target = _files_target("redis", server.dsn(), str(rdb), workdir, '["GET key:7", "DBSIZE"]')
        drill = await run_drill(target, target.backups[0])
        assert drill.ok, drill.error
        assert [(v.statement, v.result) for v in drill.verified] == [("GET key:7", "7"), ("DBSIZE", "50")]
        assert drill.compared == (("dbsize", 50, None),)
        assert _left_behind(workdir) == []

        data = rdb.read_bytes()
        rdb.write_bytes(data[: len(data) // 2])
        broken = await run_drill(target, target.backups[0])
        assert not broken.ok and broken.error is not None
        assert broken.error.startswith("the throwaway Redis exited while loading the RDB"), broken.error
        assert _left_behind(workdir) == []
    finally:
        server.destroy()


async def test_a_truncated_pg_dump_fails_with_pg_restores_reason(stanza: dict[str, Any], workdir: str) -> None:
    server = stanza["server"]
    dumps = Path(tempfile.mkdtemp(prefix="dbwatch-pgdumps-"))
    try:
        dump = dumps / "pg.dump"
        subprocess.run(["/usr/lib/postgresql/15/bin/pg_dump", "-Fc", "-h", "127.0.0.1", "-p", str(server.port),
                        "-U", "postgres", "-f", str(dump), "postgres"], check=True)
        target = _files_target("postgres", server.dsn(), f"{dumps}/*.dump", workdir, '["SELECT count(*) FROM orders"]')
        drill = await run_drill(target, target.backups[0])
        assert drill.ok, drill.error
        assert drill.verified[0].result == str(ROWS + 500)
        with open(dump, "r+b") as fh:
            fh.truncate(os.path.getsize(dump) - 200)
        broken = await run_drill(target, target.backups[0])
        assert not broken.ok and broken.error is not None and "pg_restore exited with status 1" in broken.error
        assert _left_behind(workdir) == []
    finally:
        shutil.rmtree(dumps, ignore_errors=True)


def test_restore_test_settings_are_checked_with_errors_naming_their_path() -> None:
    from dbwatch.agent.config import ConfigError
    with pytest.raises(ConfigError) as err:
        parse_config(textwrap.dedent("""
            targets:
              - name: pg
                engine: postgres
                dsn: postgresql://postgres@127.0.0.1:5432/postgres
                backups:
                  - {type: pgbackrest, stanza: a, restore_test: {rto: 15m, workdir: relative/dir}}
                  - {type: walg, restore_test: {rto: 15m, workdir: /tmp}}
                  - {type: files, path: "/tmp/*.dump", restore_test: {rto: 15m, workdir: /tmp, max_disk: lots}}
                  - {type: files, path: "/tmp/*.sql", restore_test: {workdir: /tmp}}
            """))
    problems = "\n".join(err.value.problems)
    assert "targets[0].backups[0].restore_test.workdir: " in problems and "absolute" in problems
    assert "targets[0].backups[1].restore_test: drills restore pgbackrest, files, pg_basebackup, mariabackup or barman sources, not walg" in problems
    assert "targets[0].backups[2].restore_test.max_disk: " in problems and "expected a size like 50GiB" in problems
    assert "targets[0].backups[3].restore_test.rto: " in problems
    ok = _target("""
        targets:
          - name: pg
            engine: postgres
            dsn: postgresql://postgres@127.0.0.1:5432/postgres
            backups:
              - {type: pgbackrest, stanza: a, restore_test: {rto: 15m, workdir: /var/tmp, max_disk: 50GiB}}
        """)
    test = ok.backups[0].restore_test
    assert test is not None and test.max_disk == 50 * 2**30 and test.every == 86400 and test.timeout == 3600
