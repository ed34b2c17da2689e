"""A real Barman server (the Debian package): its backups, PITR window, WAL continuity and ``barman check``
read by the backup collector; a WAL file deleted behind Barman's back fires ``WalArchiveGap``.

Starts: a throwaway PostgreSQL 15 (tests/pgcluster.py); Barman configured in a temporary directory (its
``barman_user`` is whoever runs the tests) streaming the WAL with ``barman receive-wal`` (pg_receivewal) and
taking a ``backup_method = postgres`` backup (pg_basebackup).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dbwatch.agent.config import parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.agent.store import SnapshotStore
from dbwatch.model import Snapshot, Target
from dbwatch.model.facts.backup import BackupStatuses
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig, load_rules
from tests.helpers import assert_declared, wait_for
from tests.pgcluster import BIN, PostgresServer

pytestmark = pytest.mark.skipif(shutil.which("barman") is None, reason="barman is not installed (make setup)")


@pytest.fixture(scope="module")
def barman() -> Iterator[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="dbwatch-barman-"))
    os.chmod(root, 0o755)
    (root / "home").mkdir()
    (root / "conf.d").mkdir()
    server = PostgresServer(settings={"max_replication_slots": "5"})
    receiver: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        conf = root / "barman.conf"
        conf.write_text(textwrap.dedent(f"""\
            [barman]
            barman_home = {root / 'home'}
            barman_user = {_user()}
            log_file = {root / 'barman.log'}
            configuration_files_directory = {root / 'conf.d'}

            [pg]
            conninfo = host=127.0.0.1 port={server.port} user=postgres dbname=postgres
            streaming_conninfo = host=127.0.0.1 port={server.port} user=postgres
            backup_method = postgres
            streaming_archiver = on
            slot_name = barman
            path_prefix = {BIN}
            """))

        def run(*args: str) -> str:
            done = subprocess.run(["barman", "-c", str(conf), *args], capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, f"barman {' '.join(args)}: {done.stdout}{done.stderr}"
            return done.stdout

        run("receive-wal", "--create-slot", "pg")
        receiver = subprocess.Popen(["barman", "-c", str(conf), "receive-wal", "pg"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        wait_for(lambda: server.psql("SELECT count(*) FROM pg_stat_replication") == "1", 60, "receive-wal streaming")
        run("switch-wal", "--force", "--archive", "--archive-timeout", "60", "pg")
        run("backup", "--wait", "pg")
        for _ in range(2):  # two segments of 100 rows each after the backup
            server.psql("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t SELECT generate_series(1, 100); "
                        "SELECT pg_switch_wal()")
        run("switch-wal", "--force", "--archive", "--archive-timeout", "60", "pg")  # waits until Barman has it all
        yield {"server": server, "conf": conf, "root": root, "receiver": receiver}
    finally:
        if receiver is not None and receiver.poll() is None:
            receiver.terminate()
            receiver.wait(30)
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def _target(env: dict[str, Any]) -> Target:
    return parse_config(textwrap.dedent(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{env['server'].dsn()}"
            backups:
              - {{type: barman, server: pg, config: {env['conf']}}}
        """)).resolved_targets()[0]


async def _collect(target: Target) -> Snapshot:
    jobs = TargetJobs(target)
    try:
        snapshot = await jobs.collect("backup")
    finally:
        await jobs.close()
    assert_declared(snapshot)
    return snapshot


def _samples(snapshot: Snapshot, metric: str) -> dict[tuple[str, ...], float]:
    family = snapshot.family(metric)
    assert family is not None, f"{metric} missing; notes: {snapshot.notes}"
    return dict(family.samples)


def _rules(target: Target, snapshot: Snapshot) -> list[str]:
    store = SnapshotStore()
    store.put(snapshot)
    view = TargetView(store, target.name, target.engine, target.labels, now=time.time())
    return sorted(f.rule for f in RuleEngine(load_rules(RulesConfig())).evaluate(view))


async def test_barmans_backups_window_and_checks_are_read(barman: dict[str, Any]) -> None:
    target = _target(barman)
    snapshot = await _collect(target)
    source = ("barman/pg",)
    assert _samples(snapshot, "dbwatch_backup_source_up") == {source: 1}
    end = _samples(snapshot, "dbwatch_backup_last_success_timestamp_seconds")[("barman/pg", "any")]
    assert _samples(snapshot, "dbwatch_pitr_earliest_timestamp_seconds") == {source: end}
    latest = _samples(snapshot, "dbwatch_pitr_latest_timestamp_seconds")[source]
    assert end <= latest <= time.time() + 1
    assert _samples(snapshot, "dbwatch_wal_archive_missing_segments") == {source: 0}
    assert _samples(snapshot, "dbwatch_backup_check_failures") == {source: 0}, snapshot.notes
    assert "WalArchiveGap" not in _rules(target, snapshot)


def _drill_target(env: dict[str, Any], workdir: str, extra: str = "") -> Target:
    return parse_config(textwrap.dedent(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{env['server'].dsn()}"
            backups:
              - type: barman
                server: pg
                config: {env['conf']}
                restore_test: {{rto: 10m, workdir: {workdir}, verify: ["SELECT count(*) FROM t"]{extra}}}
        """)).resolved_targets()[0]


@pytest.fixture
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="dbwatch-restore-work-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_barman_backup_is_recovered_replayed_and_verified_by_a_drill(barman: dict[str, Any],
                                                                            workdir: str) -> None:
    from dbwatch.collectors.restore_drill import run_drill
    target = _drill_target(barman, workdir)
    lines: list[str] = []
    drill = await run_drill(target, target.backups[0], lines.append)
    assert drill.ok, (drill.error, lines)
    assert drill.kind == "barman"
    # the table was created and filled after the backup: its 200 rows came from the WAL Barman copied
    assert [(v.statement, v.result) for v in drill.verified] == [("SELECT count(*) FROM t", "200")]
    assert [s.name for s in drill.steps] == ["check_space", "restore", "start", "recover", "verify", "compare",
                                             "cleanup"]
    assert [name for name in os.listdir(workdir) if not name.startswith(".")] == []
    assert barman["server"].psql("SELECT count(*) FROM t") == "200"  # the live server untouched


async def test_a_wal_file_deleted_behind_barmans_back_is_a_gap_and_a_failing_check_is_reported(
        barman: dict[str, Any]) -> None:
    """Runs last: it deletes a WAL file and stops receive-wal."""
    wals = sorted(p for p in (barman["root"] / "home" / "pg" / "wals").rglob("0*") if p.is_file()
                  and len(p.name) == 24)
    removed = wals[-2]  # after the backup's first segment, before the newest
    removed.unlink()
    barman["removed"] = removed.name
    barman["receiver"].terminate()
    barman["receiver"].wait(30)
    target = _target(barman)
    snapshot = await _collect(target)
    source = ("barman/pg",)
    assert _samples(snapshot, "dbwatch_wal_archive_missing_segments") == {source: 1}
    [status] = snapshot.fact(BackupStatuses) or ()
    assert status.wal_missing_first == (removed.name,)
    assert "WalArchiveGap" in _rules(target, snapshot)
    assert _samples(snapshot, "dbwatch_backup_check_failures")[source] >= 1
    assert any("barman check: " in note and "receive_wal_running" in note for note in snapshot.notes), snapshot.notes


async def test_a_barman_drill_fails_when_a_wal_file_it_needs_is_gone(barman: dict[str, Any], workdir: str) -> None:
    """After the test above deleted a WAL file from Barman's storage."""
    from dbwatch.collectors.restore_drill import run_drill
    target = _drill_target(barman, workdir)
    drill = await run_drill(target, target.backups[0])
    assert not drill.ok and drill.error is not None, drill
    assert drill.error.startswith("barman recover failed: ERROR: Failure copying WAL files"), drill.error
    assert f'{barman["removed"]}" failed: No such file or directory' in drill.error, drill.error
    assert [name for name in os.listdir(workdir) if not name.startswith(".")] == []
