"""Restore drills and archive continuity of the directory sources, on real servers and tools:
``pg_basebackup`` backups replayed from an ``archive_command`` directory, ``mariabackup`` backups prepared and
their binary logs replayed; broken ones (a WAL segment or binary log removed, a backup file truncated)
failing with their reason, and ``RestoreTestFailed`` / ``WalArchiveGap`` firing.

Starts: a throwaway PostgreSQL 15 archiving with ``cp`` into a directory, backed up with pg_basebackup (tar
and plain format); a throwaway MariaDB with the binary log, backed up with mariabackup; the drills' own
throwaway servers. Data is small (a few thousand rows) so the module runs in about a minute.
"""

from __future__ import annotations

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
from dbwatch.collectors.restore_drill import run_drill
from dbwatch.collectors.restore_job import drill_families
from dbwatch.model import Snapshot, Target
from dbwatch.model.facts.backup import BackupStatuses
from dbwatch.model.facts.restore import RestoreDrill
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig, load_rules
from tests.helpers import assert_declared, wait_for
from tests.pgcluster import BIN, RUN_AS, PostgresServer

ROWS = 1000


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *args] if RUN_AS else list(args)


def _target(yaml_text: str) -> Target:
    return parse_config(textwrap.dedent(yaml_text)).resolved_targets()[0]


def _rules(target: Target, snapshot: Snapshot) -> list[str]:
    store = SnapshotStore()
    store.put(snapshot)
    view = TargetView(store, target.name, target.engine, target.labels, now=time.time())
    return sorted(f.rule for f in RuleEngine(load_rules(RulesConfig())).evaluate(view))


def _drill_rules(target: Target, drill: RestoreDrill) -> list[str]:
    now = time.time()
    snapshot = Snapshot(target=target.name, engine=target.engine, collector="restore_drill", started_at=now)
    snapshot.families.extend(drill_families([drill], list(target.backups), now, now))
    return _rules(target, snapshot)


async def _collect_backup(target: Target) -> Snapshot:
    jobs = TargetJobs(target)
    try:
        snapshot = await jobs.collect("backup")
    finally:
        await jobs.close()
    assert_declared(snapshot)
    return snapshot


def _missing(snapshot: Snapshot) -> dict[tuple[str, ...], float]:
    family = snapshot.family("dbwatch_wal_archive_missing_segments")
    assert family is not None
    return dict(family.samples)


def _left_behind(workdir: str) -> list[str]:
    return [name for name in os.listdir(workdir) if not name.startswith(".")]


@pytest.fixture
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="dbwatch-restore-work-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- pg_basebackup ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def basebackups() -> Iterator[dict[str, Any]]:
    """A server archiving into a directory; a tar-format base backup of 1000 orders, then 500 more orders in two
    segments archived after it (the time between them noted), and a plain-format backup in another directory."""
    root = Path(tempfile.mkdtemp(prefix="dbwatch-basebackup-"))
    os.chmod(root, 0o755)
    archive, backups, plain = root / "archive", root / "backups", root / "plain"
    for path in (archive, backups, plain):
        path.mkdir()
        if RUN_AS:
            shutil.chown(path, RUN_AS, RUN_AS)
    server = PostgresServer(settings={"archive_mode": "on",
                                      "archive_command": f"'test ! -f {archive}/%f && cp %p {archive}/%f'"})
    try:
        server.start()
        server.psql(f"CREATE TABLE orders (id int PRIMARY KEY, note text); "
                    f"INSERT INTO orders SELECT i, 'o' || i FROM generate_series(1, {ROWS}) i")
        conn = ["-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-c", "fast"]
        subprocess.run(_as_postgres(str(BIN / "pg_basebackup"), *conn, "-D", str(backups / "base-1"), "-Ft",
                                    "-X", "stream"), check=True, capture_output=True, timeout=120)
        server.psql(f"INSERT INTO orders SELECT i, 'late' FROM generate_series({ROWS + 1}, {ROWS + 250}) i")
        server.psql("SELECT pg_switch_wal()")
        time.sleep(1.1)  # the recovery target must fall strictly between the two batches' commit times
        between = time.time()
        time.sleep(1.1)
        server.psql(f"INSERT INTO orders SELECT i, 'late' FROM generate_series({ROWS + 251}, {ROWS + 500}) i")
        server.psql("SELECT pg_switch_wal()")
        server.psql("SELECT pg_switch_wal()")  # an empty segment after the last one holding rows
        wait_for(lambda: int(server.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"))
                 == 0, 60, "every segment archived")
        subprocess.run(_as_postgres(str(BIN / "pg_basebackup"), *conn, "-D", str(plain / "base-plain"), "-Fp",
                                    "-X", "stream"), check=True, capture_output=True, timeout=120)
        yield {"server": server, "root": root, "archive": archive, "backups": backups, "plain": plain,
               "between": between}
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _basebackup_target(env: dict[str, Any], workdir: str, pattern: str | None = None, extra: str = "",
                       verify: str = '["SELECT count(*) FROM orders"]') -> Target:
    return _target(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{env['server'].dsn()}"
            backups:
              - type: pg_basebackup
                path: "{pattern or str(env['backups']) + '/base-*'}"
                archive: {env['archive']}
                restore_test: {{every: 24h, rto: 10m, workdir: {workdir}, verify: {verify}{extra}}}
        """)


async def test_a_tar_base_backup_is_checked_restored_and_replayed_to_the_end_of_the_archive(
        basebackups: dict[str, Any], workdir: str) -> None:
    target = _basebackup_target(basebackups, workdir)
    lines: list[str] = []
    drill = await run_drill(target, target.backups[0], lines.append)
    assert drill.ok, (drill.error, lines)
    assert drill.kind == "pg_basebackup" and drill.backup.endswith("/base-1")
    # the backup held 1000 orders; the 500 after it came from the archive directory
    assert [(v.statement, v.result) for v in drill.verified] == [("SELECT count(*) FROM orders", str(ROWS + 500))]
    assert [s.name for s in drill.steps] == ["check_space", "restore", "check_backup", "start", "recover", "verify",
                                             "compare", "cleanup"]
    assert drill.compared[0][:2] == ("public.orders", ROWS + 500)
    assert drill.restored_to is not None and drill.restored_to >= basebackups["between"]
    assert _left_behind(workdir) == []
    assert _drill_rules(target, drill) == []


async def test_a_base_backup_recovered_to_a_point_in_time_holds_the_rows_committed_before_it(
        basebackups: dict[str, Any], workdir: str) -> None:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(basebackups["between"]))
    target = _basebackup_target(basebackups, workdir, extra=f", recover_to: '{at}'")
    drill = await run_drill(target, target.backups[0])
    assert drill.ok, drill.error
    assert drill.verified[0].result == str(ROWS + 250)  # the first batch after the backup, not the second
    assert drill.restored_to is not None and drill.restored_to <= basebackups["between"] + 1


async def test_a_plain_base_backup_is_restored_and_the_pitr_window_read_from_its_manifest(
        basebackups: dict[str, Any], workdir: str) -> None:
    target = _basebackup_target(basebackups, workdir, pattern=f"{basebackups['plain']}/base-*")
    drill = await run_drill(target, target.backups[0])
    assert drill.ok, drill.error
    assert drill.verified[0].result == str(ROWS + 500)
    snapshot = await _collect_backup(_basebackup_target(basebackups, workdir))
    source = ("pg_basebackup",)
    assert _missing(snapshot) == {source: 0}
    end = dict(snapshot.family("dbwatch_backup_last_success_timestamp_seconds").samples)[  # type: ignore[union-attr]
        ("pg_basebackup", "any")]
    assert dict(snapshot.family("dbwatch_pitr_earliest_timestamp_seconds").samples) == {source: end}  # type: ignore[union-attr]
    latest = dict(snapshot.family("dbwatch_pitr_latest_timestamp_seconds").samples)[source]  # type: ignore[union-attr]
    assert end <= latest <= time.time() + 1
    assert "WalArchiveGap" not in _rules(target, snapshot)


async def test_a_truncated_file_in_a_base_backup_fails_the_drill_before_any_server_starts(
        basebackups: dict[str, Any], workdir: str) -> None:
    broken = basebackups["root"] / "broken"
    shutil.copytree(basebackups["plain"], broken)
    try:
        victim = broken / "base-plain" / "global" / "pg_control"
        with open(victim, "r+b") as fh:
            fh.truncate(100)
        target = _basebackup_target(basebackups, workdir, pattern=f"{broken}/base-*")
        drill = await run_drill(target, target.backups[0])
        assert not drill.ok and drill.error is not None
        assert drill.error.startswith(f"the base backup {broken}/base-plain is damaged: pg_verifybackup exited")
        assert '"global/pg_control" has size 100 on disk but size 8192 in the manifest' in drill.error, drill.error
        assert [s.name for s in drill.steps] == ["check_space", "restore", "check_backup", "cleanup"]
        assert _drill_rules(target, drill) == ["RestoreTestFailed"]
        assert _left_behind(workdir) == []
    finally:
        shutil.rmtree(broken, ignore_errors=True)


async def test_a_base_backup_with_tablespaces_is_refused_before_any_server_starts(
        basebackups: dict[str, Any], workdir: str) -> None:
    linked = basebackups["root"] / "linked"
    shutil.copytree(basebackups["plain"], linked, symlinks=True)
    try:  # a tablespace link names a directory outside the backup: the live server's own, on its host
        os.symlink("/var/lib/postgresql/tablespaces/fast", linked / "base-plain" / "pg_tblspc" / "16400")
        target = _basebackup_target(basebackups, workdir, pattern=f"{linked}/base-*")
        drill = await run_drill(target, target.backups[0])
        assert not drill.ok and drill.error == (f"{linked}/base-plain has tablespaces: a restored server would use "
                                                "their original directories (the live server's, on this host), so "
                                                "it is not drilled")
        assert [s.name for s in drill.steps] == ["check_space", "restore", "cleanup"]
        assert _left_behind(workdir) == []
    finally:
        shutil.rmtree(linked, ignore_errors=True)


def test_the_runbook_writes_the_base_backup_restore_commands_and_window(basebackups: dict[str, Any], workdir: str,
                                                                         tmp_path: Path) -> None:
    book = _runbook(tmp_path, f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{basebackups['server'].dsn()}"
            backups:
              - {{type: pg_basebackup, path: "{basebackups['backups']}/base-*", archive: {basebackups['archive']}}}
        """, "pg")
    backup = f"{basebackups['backups']}/base-1"
    assert f"Newest good backup: `{backup}`" in book
    assert "Point-in-time recovery window: " in book and "missing" not in book
    assert f"sudo -u postgres tar -xf {backup}/base.tar* -C $PGDATA" in book
    assert f"pg_verifybackup -m {backup}/backup_manifest $PGDATA" in book
    assert f"restore_command = 'cp {basebackups['archive']}/%f %p'" in book


def _runbook(tmp_path: Path, yaml_text: str, target: str) -> str:
    config = tmp_path / "dbwatch.yaml"
    config.write_text(textwrap.dedent(yaml_text))
    done = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "runbook", "-c", str(config), "--target", target],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_wal_segment_missing_from_the_archive_directory_fails_the_drill_and_fires_wal_archive_gap(
        basebackups: dict[str, Any], workdir: str) -> None:
    """Runs last among the pg_basebackup tests: it removes a segment from the archive."""
    archive = basebackups["archive"]
    segments = sorted(name for name in os.listdir(archive) if len(name) == 24)
    removed = segments[-2]  # written after the tar backup, before the newest
    os.remove(archive / removed)
    target = _basebackup_target(basebackups, workdir)
    drill = await run_drill(target, target.backups[0])
    assert not drill.ok and drill.error is not None
    assert f"segment {removed} is missing from the archive" in drill.error, drill.error
    assert _drill_rules(target, drill) == ["RestoreTestFailed"]
    assert _left_behind(workdir) == []
    snapshot = await _collect_backup(target)
    assert _missing(snapshot) == {("pg_basebackup",): 1}
    [status] = snapshot.fact(BackupStatuses) or ()
    assert status.wal_missing_first == (removed,)
    assert "WalArchiveGap" in _rules(target, snapshot)


# -- mariabackup -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariabackups() -> Iterator[dict[str, Any]]:
    """A MariaDB with the binary log: a mariabackup full backup of 300 orders, then 200 and 100 more orders in
    later binary logs (the time between them noted), the binary logs copied into an archive directory."""
    from tests.mariadbserver import MariaDBServer
    server = MariaDBServer(performance_schema=False).start()
    root = Path(tempfile.mkdtemp(prefix="dbwatch-mariabackup-"))
    backups, archive = root / "backups", root / "binlogs"
    backups.mkdir()
    try:
        server.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id int PRIMARY KEY, note varchar(20)); "
                   "INSERT INTO shop.orders SELECT seq, 'o' FROM mysql.seq_1_to_300; FLUSH BINARY LOGS")
        done = subprocess.run(["mariabackup", "--no-defaults", "--backup", f"--target-dir={backups / 'full-1'}",
                               f"--socket={server.socket}", "-u", "root", f"--datadir={server.data}"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        (root / "dumps").mkdir()
        with open(root / "dumps" / "shop.sql", "w") as dump:  # a dump at the same point, with its binlog position
            subprocess.run([shutil.which("mariadb-dump") or "mariadb-dump", "--no-defaults", f"--socket={server.socket}",
                            "-u", "root", "--master-data=2", "--single-transaction", "--databases", "shop"],
                           stdout=dump, check=True, timeout=120)
        server.sql("INSERT INTO shop.orders SELECT seq, 'late' FROM mysql.seq_301_to_500; FLUSH BINARY LOGS")
        time.sleep(1.1)  # the recovery target falls strictly between the two batches' event times
        between = time.time()
        time.sleep(1.1)
        server.sql("INSERT INTO shop.orders SELECT seq, 'later' FROM mysql.seq_501_to_600; FLUSH BINARY LOGS")
        archive.mkdir()
        for binlog in sorted(server.data.glob("mysql-bin.0*")):
            shutil.copy2(binlog, archive / binlog.name)
        yield {"server": server, "root": root, "backups": backups, "archive": archive, "between": between}
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _mariabackup_target(env: dict[str, Any], workdir: str, archive: Path | None = None, extra: str = "",
                        backups: Path | None = None) -> Target:
    return _target(f"""
        targets:
          - name: db
            engine: mysql
            dsn: "{env['server'].dsn()}"
            backups:
              - type: mariabackup
                path: "{backups or env['backups']}/full-*"
                archive: {archive or env['archive']}
                restore_test: {{every: 24h, rto: 10m, workdir: {workdir},
                                verify: ["SELECT count(*) FROM shop.orders"]{extra}}}
        """)


async def test_a_mariabackup_backup_is_prepared_started_and_its_binary_logs_replayed(
        mariabackups: dict[str, Any], workdir: str) -> None:
    target = _mariabackup_target(mariabackups, workdir)
    lines: list[str] = []
    drill = await run_drill(target, target.backups[0], lines.append)
    assert drill.ok, (drill.error, lines)
    assert drill.kind == "mariabackup" and drill.backup.endswith("/full-1")
    # 300 orders in the backup, 300 more from the binary logs after it
    assert [(v.statement, v.result) for v in drill.verified] == [("SELECT count(*) FROM shop.orders", "600")]
    assert [s.name for s in drill.steps] == ["check_space", "restore", "prepare", "start", "recover", "verify",
                                             "compare", "cleanup"]
    assert drill.compared[0][:2] == ("shop.orders", 600)
    assert drill.restored_to is not None and drill.restored_to >= mariabackups["between"] - 1
    assert _left_behind(workdir) == []
    assert _drill_rules(target, drill) == []
    assert mariabackups["server"].sql("SELECT count(*) FROM shop.orders") == "600"  # the live server untouched


async def test_a_mariabackup_drill_to_a_point_in_time_stops_the_binlog_replay_there(
        mariabackups: dict[str, Any], workdir: str) -> None:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mariabackups["between"]))
    target = _mariabackup_target(mariabackups, workdir, extra=f", recover_to: '{at}'")
    drill = await run_drill(target, target.backups[0])
    assert drill.ok, drill.error
    assert drill.verified[0].result == "500"


async def test_the_binlog_window_and_a_missing_binary_log_firing_wal_archive_gap(
        mariabackups: dict[str, Any], workdir: str) -> None:
    target = _mariabackup_target(mariabackups, workdir)
    snapshot = await _collect_backup(target)
    source = ("mariabackup",)
    assert _missing(snapshot) == {source: 0}
    end = dict(snapshot.family("dbwatch_backup_last_success_timestamp_seconds").samples)[  # type: ignore[union-attr]
        ("mariabackup", "any")]
    assert dict(snapshot.family("dbwatch_pitr_earliest_timestamp_seconds").samples) == {source: end}  # type: ignore[union-attr]
    newest = max(mariabackups["archive"].iterdir()).stat().st_mtime
    assert dict(snapshot.family("dbwatch_pitr_latest_timestamp_seconds").samples) == {source: newest}  # type: ignore[union-attr]
    assert "WalArchiveGap" not in _rules(target, snapshot)

    gappy = mariabackups["root"] / "gappy"
    shutil.copytree(mariabackups["archive"], gappy)
    binlogs = sorted(p.name for p in gappy.iterdir())
    removed = binlogs[-2]  # after the backup's binary log, before the newest
    (gappy / removed).unlink()
    broken = _mariabackup_target(mariabackups, workdir, archive=gappy)
    snapshot = await _collect_backup(broken)
    assert _missing(snapshot) == {source: 1}
    [status] = snapshot.fact(BackupStatuses) or ()
    assert status.wal_missing_first == (removed,)
    assert "WalArchiveGap" in _rules(broken, snapshot)
    drill = await run_drill(broken, broken.backups[0])
    assert not drill.ok and drill.error is not None
    assert drill.error.startswith(f"binary log {removed} is missing from {gappy} (a gap)"), drill.error
    assert _drill_rules(broken, drill) == ["RestoreTestFailed"]
    assert _left_behind(workdir) == []


def test_the_runbook_writes_the_mariabackup_restore_commands_and_binlog_replay(mariabackups: dict[str, Any],
                                                                              tmp_path: Path) -> None:
    book = _runbook(tmp_path, f"""
        targets:
          - name: db
            engine: mysql
            dsn: "{mariabackups['server'].dsn()}"
            backups:
              - {{type: mariabackup, path: "{mariabackups['backups']}/full-*", archive: {mariabackups['archive']}}}
        """, "db")
    backup = f"{mariabackups['backups']}/full-1"
    assert f"Newest good backup: `{backup}`" in book and "Point-in-time recovery window: " in book
    assert f"cp -a {backup} /var/tmp/restore && mariabackup --prepare --target-dir=/var/tmp/restore" in book
    assert "mariabackup --copy-back --target-dir=/var/tmp/restore --datadir=/var/lib/mysql" in book
    first, offset = (mariabackups["backups"] / "full-1" / "xtrabackup_binlog_info").read_text().split()[:2]
    assert f"mariadb-binlog --start-position={offset} $(ls {mariabackups['archive']}/mysql-bin.[0-9]*" in book
    assert f"# replay the binary logs after the backup ({first} at {offset})" in book


async def test_a_dump_with_its_binlog_position_is_loaded_then_the_binary_logs_after_it_replayed(
        mariabackups: dict[str, Any], workdir: str) -> None:
    def target(archive: Path) -> Target:
        return _target(f"""
            targets:
              - name: db
                engine: mysql
                dsn: "{mariabackups['server'].dsn()}"
                backups:
                  - type: files
                    path: "{mariabackups['root']}/dumps/*.sql"
                    archive: {archive}
                    restore_test: {{rto: 10m, workdir: {workdir}, verify: ["SELECT count(*) FROM shop.orders"]}}
            """)
    good = target(mariabackups["archive"])
    drill = await run_drill(good, good.backups[0])
    assert drill.ok, drill.error
    assert drill.kind == "mariadb_dump" and drill.verified[0].result == "600"  # 300 dumped, 300 replayed
    assert [s.name for s in drill.steps] == ["check_space", "initdb", "start", "restore", "recover", "verify",
                                             "compare", "cleanup"]
    snapshot = await _collect_backup(good)
    assert _missing(snapshot) == {("files",): 0}

    gappy = mariabackups["root"] / "gappy-dump"
    shutil.copytree(mariabackups["archive"], gappy)
    removed = sorted(p.name for p in gappy.iterdir())[-2]
    (gappy / removed).unlink()
    broken = target(gappy)
    snapshot = await _collect_backup(broken)
    assert _missing(snapshot) == {("files",): 1}
    assert "WalArchiveGap" in _rules(broken, snapshot)
    drill = await run_drill(broken, broken.backups[0])
    assert not drill.ok and drill.error is not None
    assert drill.error.startswith(f"binary log {removed} is missing from {gappy} (a gap)"), drill.error
    assert _left_behind(workdir) == []


async def test_a_truncated_binary_log_or_backup_file_fails_the_drill_with_its_reason(
        mariabackups: dict[str, Any], workdir: str) -> None:
    cut = mariabackups["root"] / "cut"
    shutil.copytree(mariabackups["archive"], cut)
    middle = sorted(cut.iterdir())[-2]  # the one holding the last 100 orders
    with open(middle, "r+b") as fh:
        fh.truncate(middle.stat().st_size // 2)  # cut in the middle of its events
    drill = await run_drill(*_drill_args(_mariabackup_target(mariabackups, workdir, archive=cut)))
    assert not drill.ok and drill.error is not None
    assert drill.error.startswith("the binary logs ") and "cannot be read (damaged or truncated)" in drill.error, \
        drill.error
    assert "Event truncated" in drill.error  # mariadb-binlog's own reason
    assert _drill_rules(_mariabackup_target(mariabackups, workdir, archive=cut), drill) == ["RestoreTestFailed"]
    assert _left_behind(workdir) == []

    damaged = mariabackups["root"] / "damaged"
    shutil.copytree(mariabackups["backups"], damaged)
    with open(damaged / "full-1" / "ib_logfile0", "r+b") as fh:
        fh.truncate(4096)
    drill = await run_drill(*_drill_args(_mariabackup_target(mariabackups, workdir, backups=damaged)))
    assert not drill.ok and drill.error is not None
    assert drill.error.startswith(f"the backup {damaged}/full-1 could not be prepared: mariabackup exited"), drill.error
    assert "ib_logfile0 is too small" in drill.error
    assert _left_behind(workdir) == []


def _drill_args(target: Target) -> tuple[Target, Any]:
    return target, target.backups[0]


# -- configuration and unfinished backups ------------------------------------------------------------


def test_the_new_source_keys_are_checked_with_errors_naming_their_path() -> None:
    from dbwatch.agent.config import ConfigError
    with pytest.raises(ConfigError) as err:
        parse_config(textwrap.dedent("""
            targets:
              - name: pg
                engine: postgres
                dsn: postgresql://postgres@127.0.0.1:5432/postgres
                backups:
                  - {type: pg_basebackup, path: "/b/*", archive: relative/wal}
                  - {type: pg_basebackup, archive: /wal}
                  - {type: pgbackrest, stanza: t, archive: /wal}
                  - {type: files, path: "/e/*", verify_every: 1d}
                  - {type: pgbackrest, stanza: s, restore_test: {rto: 5m, workdir: /tmp, recover_to: yesterday}}
                  - {type: barman, server: all, restore_test: {rto: 5m, workdir: /tmp}}
            """))
    problems = "\n".join(err.value.problems)
    assert "targets[0].backups[0].archive: " in problems and "expected an absolute directory" in problems
    assert "targets[0].backups[1].path: required for type pg_basebackup" in problems
    # a dump file may have an archive (the binary logs after a mariadb-dump --master-data), pgBackRest may not
    assert "archive: only for type pg_basebackup or mariabackup or files, not pgbackrest" in problems
    assert "verify_every: only for type pgbackrest, not files" in problems
    assert "targets[0].backups[4].restore_test.recover_to: " in problems and "'yesterday'" in problems
    assert "a Barman drill recovers one server's backup" in problems
    ok = _target("""
        targets:
          - name: pg
            engine: postgres
            dsn: postgresql://postgres@127.0.0.1:5432/postgres
            backups:
              - {type: pgbackrest, stanza: s, verify_every: 12h, restore_test: {rto: 5m, workdir: /tmp, recover_to: 2h}}
              - {type: pg_basebackup, path: "/b/*", archive: /wal,
                 restore_test: {rto: 5m, workdir: /tmp, recover_to: "2026-12-04T18:00:00Z"}}
        """)
    first, second = ok.backups
    assert first.verify_every == 43200 and first.verify_timeout == 3600
    assert first.restore_test is not None and first.restore_test.recover_before == 7200
    assert second.archive == "/wal" and second.restore_test is not None
    assert second.restore_test.recover_to == 1796407200.0 and second.restore_test.recover_before is None


async def test_an_unfinished_base_backup_directory_counts_as_failed(tmp_path: Path) -> None:
    (tmp_path / "base-1").mkdir()  # pg_basebackup still running (or failed): no backup_manifest yet
    (tmp_path / "base-1" / "base.tar").write_bytes(b"x" * 100)
    target = _target(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: postgresql://postgres@127.0.0.1:5432/postgres
            backups:
              - {{type: pg_basebackup, path: "{tmp_path}/base-*"}}
        """)
    snapshot = await _collect_backup(target)
    assert dict(snapshot.family("dbwatch_backup_failed_count").samples) == {("pg_basebackup",): 1}  # type: ignore[union-attr]
    assert dict(snapshot.family("dbwatch_backup_count").samples) == {}  # type: ignore[union-attr]
    from dbwatch.rules.backups import BackupTooOld
    store = SnapshotStore()
    store.put(snapshot)
    view = TargetView(store, target.name, target.engine, target.labels, now=time.time())
    [finding] = BackupTooOld().evaluate(view)  # readable, and no good backup at all
    assert finding.summary == "pg_basebackup on pg holds no good backup"
