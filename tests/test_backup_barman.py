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
        streaming = root / "home" / "pg" / "streaming"
        for _ in range(2):  # two more segments after the backup, streamed, then archived by Barman
            segment = server.psql("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t SELECT generate_series(1, 100); "
                                  "SELECT pg_walfile_name(pg_current_wal_lsn())")
            server.psql("SELECT pg_switch_wal()")
            wait_for(lambda: (streaming / segment).exists(), 60, f"{segment} streamed")
            run("archive-wal", "pg")
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


async def test_a_wal_file_deleted_behind_barmans_back_is_a_gap_and_a_failing_check_is_reported(
        barman: dict[str, Any]) -> None:
    """Runs last: it deletes a WAL file and stops receive-wal."""
    wals = sorted(p for p in (barman["root"] / "home" / "pg" / "wals").rglob("0*") if p.is_file()
                  and len(p.name) == 24)
    removed = wals[-2]  # after the backup's first segment, before the newest
    removed.unlink()
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
