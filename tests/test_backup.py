"""Backup freshness: the backup collector's sources and the backup rules, on real servers and commands.

Starts: a throwaway PostgreSQL 15 (tests/pgcluster.py) archiving its WAL with a real pgBackRest (the Debian
package) into a repository in a temporary directory, with a stanza and a full backup; a second PostgreSQL
whose archive_command is `false`; the shared pg_primary for pg_dump and the end-to-end agent (a real
`dbwatch run`). Barman and WAL-G are not installed here: small scripts print their documented JSON
(`barman -f json list-backups`, `wal-g backup-list --json --detail`) and are configured as the `command`.
"""

from __future__ import annotations

import json
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

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import Snapshot, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.rules.backups import BackupTooOld, WalArchiveTooOld
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig, load_rules
from dbwatch.model.facts.backup import BackupStatuses
from tests.agentproc import AgentProcess
from tests.pgcluster import BIN, RUN_AS, PostgresServer
from tests.helpers import assert_declared, wait_for

STANZA = "demo"


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *argv] if RUN_AS else list(argv)


class PgBackRest:
    """A pgBackRest configuration with a local repository, for one throwaway server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "pgbackrest.conf"
        for sub in ("repo", "log", "lock"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        if RUN_AS:
            for path in (root, root / "repo", root / "log", root / "lock"):
                shutil.chown(path, RUN_AS, RUN_AS)

    def configure(self, server: PostgresServer) -> None:
        self.conf.write_text(textwrap.dedent(f"""\
            [global]
            repo1-path={self.root / 'repo'}
            log-path={self.root / 'log'}
            lock-path={self.root / 'lock'}
            log-level-file=off
            start-fast=y
            compress-type=none

            [{STANZA}]
            pg1-path={server.data}
            pg1-port={server.port}
            pg1-socket-path={server.root}
            pg1-user=postgres
            """))
        os.chmod(self.conf, 0o644)

    def archive_command(self) -> str:
        return f"'pgbackrest --config={self.conf} --stanza={STANZA} archive-push %p'"

    def run(self, *args: str) -> str:
        result = subprocess.run(_as_postgres("pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", *args),
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"pgbackrest {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout


@pytest.fixture(scope="module")
def backed_up() -> Iterator[dict[str, Any]]:
    """A server archiving through pgBackRest, its stanza, and one full backup with the wall-clock span it took."""
    root = Path(tempfile.mkdtemp(prefix="dbwatch-pgbr-"))  # pytest's tmp dirs are root's only; postgres reads this
    os.chmod(root, 0o755)
    pgbr = PgBackRest(root / "pgbr")
    server = PostgresServer(settings={"archive_mode": "on", "archive_command": "'/bin/true'"})
    pgbr.configure(server)
    server.settings["archive_command"] = pgbr.archive_command()
    try:
        server.start()
        pgbr.run("stanza-create")
        before = time.time()
        pgbr.run("--type=full", "backup")
        after = time.time()
        yield {"server": server, "pgbr": pgbr, "before": before, "after": after}
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _target(yaml_text: str) -> Target:
    return parse_config(textwrap.dedent(yaml_text)).resolved_targets()[0]


async def _collect(target: Target, collector: str = "backup") -> Snapshot:
    """One collection through the daemon's job (its timeout and error handling), checked against the catalog."""
    jobs = TargetJobs(target)
    try:
        snapshot = await jobs.collect(collector)
    finally:
        await jobs.close()
    assert_declared(snapshot)
    return snapshot


def _samples(snapshot: Snapshot, metric: str) -> dict[tuple[str, ...], float]:
    family = snapshot.family(metric)
    assert family is not None, f"{metric} missing; notes: {snapshot.notes}"
    return dict(family.samples)


def _view(snapshots: list[Snapshot], target: Target, now: float) -> TargetView:
    store = SnapshotStore()
    for snapshot in snapshots:
        store.put(snapshot)
    return TargetView(store, target.name, target.engine, target.labels, now=now)


def _pg_target(server: PostgresServer, backups: str = "") -> Target:
    return _target(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{server.dsn()}"
        """ + textwrap.indent(textwrap.dedent(backups), " " * 12))


# -- pgBackRest -----------------------------------------------------------------------------------


async def test_pgbackrest_full_backup_is_reported_with_its_real_finish_time(backed_up: dict[str, Any]) -> None:
    pgbr: PgBackRest = backed_up["pgbr"]
    target = _pg_target(backed_up["server"], f"""
        backups:
          - type: pgbackrest
            stanza: {STANZA}
            config: {pgbr.conf}
            rpo: 1h
        """)
    snapshot = await _collect(target)
    source = f"pgbackrest/{STANZA}"
    assert snapshot.ok and _samples(snapshot, "dbwatch_backup_source_up") == {(source,): 1.0}
    last = _samples(snapshot, "dbwatch_backup_last_success_timestamp_seconds")
    # pgBackRest stamps whole seconds; the backup ran between before and after
    assert int(backed_up["before"]) <= last[(source, "full")] <= backed_up["after"] + 1
    assert last[(source, "any")] == last[(source, "full")]
    age = _samples(snapshot, "dbwatch_backup_age_seconds")[(source, "any")]
    assert 0 <= age <= time.time() - backed_up["before"] + 1
    assert _samples(snapshot, "dbwatch_backup_rpo_seconds") == {(source, "any"): 3600.0}
    status = snapshot.fact(BackupStatuses)[0]
    assert status.up and status.counts == {"full": 1} and status.newest[0].label.endswith("F")
    assert status.wal_max is not None  # the archive holds the backup's WAL


async def test_backup_too_old_fires_only_once_the_rule_clock_passes_the_rpo(backed_up: dict[str, Any]) -> None:
    target = _pg_target(backed_up["server"], f"""
        backups:
          - {{type: pgbackrest, stanza: {STANZA}, config: {backed_up['pgbr'].conf}, rpo: 1h}}
        """)
    snapshot = await _collect(target)
    finished = snapshot.fact(BackupStatuses)[0].newest_success
    engine = RuleEngine([], [BackupTooOld()])
    assert engine.evaluate(_view([snapshot], target, now=finished + 3600 - 5)) == []
    findings = engine.evaluate(_view([snapshot], target, now=finished + 3600 + 5))
    assert [(f.rule, dict(f.labels)) for f in findings] == [("BackupTooOld", {"source": f"pgbackrest/{STANZA}"})]
    assert findings[0].value == pytest.approx(3605, abs=0.01) and findings[0].severity == "critical"


async def test_a_stanza_that_does_not_exist_is_a_failing_source(backed_up: dict[str, Any]) -> None:
    target = _pg_target(backed_up["server"], f"""
        backups:
          - {{type: pgbackrest, stanza: nosuch, config: {backed_up['pgbr'].conf}}}
        """)
    snapshot = await _collect(target)
    assert _samples(snapshot, "dbwatch_backup_source_up") == {("pgbackrest/nosuch",): 0.0}
    assert "missing stanza path" in snapshot.fact(BackupStatuses)[0].error


async def test_wal_archive_too_old_fires_when_rows_wait_unarchived_and_not_on_an_idle_server(
        backed_up: dict[str, Any]) -> None:
    server: PostgresServer = backed_up["server"]
    target = _pg_target(server)
    server.psql("SELECT pg_switch_wal()")  # archived by pgBackRest: a fresh last_archived_time
    wait_for(lambda: server.psql("SELECT last_archived_wal IS NOT NULL AND last_failed_wal IS NULL "
                                 "FROM pg_stat_archiver") == "t", 20, "the archiver to archive")
    rule = RuleEngine([], [WalArchiveTooOld()])
    idle = [await _collect(target, "postgres"), await _collect(target, "postgres")]
    later = idle[-1].started_at + 600
    assert rule.evaluate(_view(idle, target, now=later)) == []  # nothing written: nothing at risk
    inserted = "SELECT tup_inserted FROM pg_stat_database WHERE datname = 'postgres'"
    before = int(server.psql(inserted))
    server.psql("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t SELECT generate_series(1, 50)")
    # a backend publishes its counters when it exits, just after psql returns
    wait_for(lambda: int(server.psql(inserted)) >= before + 50, 10, "the inserts in pg_stat_database")
    written = [idle[-1], await _collect(target, "postgres")]
    assert rule.evaluate(_view(written, target, now=written[-1].started_at + 60)) == []  # within the RPO
    findings = rule.evaluate(_view(written, target, now=written[-1].started_at + 600))
    assert [f.rule for f in findings] == ["WalArchiveTooOld"]
    assert findings[0].evidence["rows_written"] >= 50


async def test_a_failing_archive_command_makes_the_archiver_alert_fire(tmp_path: Path) -> None:
    server = PostgresServer(settings={"archive_mode": "on", "archive_command": "'false'"}).start()
    try:
        server.psql("CREATE TABLE t (i int); INSERT INTO t VALUES (1); SELECT pg_switch_wal()")
        wait_for(lambda: int(server.psql("SELECT failed_count FROM pg_stat_archiver")) > 0, 30,
                 "archive_command to fail")
        target = _pg_target(server)
        snapshot = await _collect(target, "postgres")
        assert _samples(snapshot, "dbwatch_pg_archiver_failing") == {(): 1.0}
        rules = load_rules(RulesConfig.model_validate({"overrides": {"ArchivingFailing": {"for": "0s"}}}))
        engine = RuleEngine(rules)
        assert engine.rule_durations("ArchivingFailing") == (0.0, 0.0)
        names = [f.rule for f in engine.evaluate(_view([snapshot], target, now=time.time()))]
        assert "ArchivingFailing" in names
    finally:
        server.destroy()


# -- files, Barman, WAL-G -------------------------------------------------------------------------


async def test_files_source_takes_the_newest_non_empty_dump_and_ignores_an_empty_one(
        pg_primary: PostgresServer, tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    dump = dumps / "nightly.sql"
    subprocess.run([str(BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(pg_primary.port), "-U", "postgres",
                    "-f", str(dump), "postgres"], check=True, timeout=60, capture_output=True)
    old = time.time() - 7200
    os.utime(dump, (old, old))
    (dumps / "broken.sql").touch()  # newer, but empty: a dump that failed
    target = _pg_target(pg_primary, f"""
        backups:
          - {{type: files, path: "{dumps}/*.sql", rpo: 1h}}
        """)
    snapshot = await _collect(target)
    assert _samples(snapshot, "dbwatch_backup_last_success_timestamp_seconds") == {
        ("files", "any"): pytest.approx(old), ("files", "file"): pytest.approx(old)}
    assert snapshot.fact(BackupStatuses)[0].newest[0].label == str(dump)
    findings = RuleEngine([], [BackupTooOld()]).evaluate(_view([snapshot], target, now=time.time()))
    assert [f.rule for f in findings] == ["BackupTooOld"] and findings[0].value > 7200


async def test_files_source_in_a_missing_directory_fails_and_an_empty_match_has_no_backup(
        pg_primary: PostgresServer, tmp_path: Path) -> None:
    target = _pg_target(pg_primary, f"""
        backups:
          - {{type: files, name: gone, path: "{tmp_path}/nowhere/*.sql"}}
          - {{type: files, name: empty, path: "{tmp_path}/*.sql.gz"}}
        """)
    snapshot = await _collect(target)
    assert _samples(snapshot, "dbwatch_backup_source_up") == {("gone",): 0.0, ("empty",): 1.0}
    findings = RuleEngine([], [BackupTooOld()]).evaluate(_view([snapshot], target, now=time.time()))
    assert [(f.rule, f.labels["source"], f.value) for f in findings] == [("BackupTooOld", "empty", None)]


def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


BARMAN_LIST = {  # `barman -f json list-backups main`, as barman/output.py's JsonOutputWriter renders it
    "main": [
        {"backup_id": "20260102T010000", "status": "FAILED"},
        {"backup_id": "20260101T010000", "end_time_timestamp": "1767230000", "end_time": "Thu Jan  1 01:13:20 2026",
         "size_bytes": 52428800, "wal_size_bytes": 16777216, "size": "50.0 MiB", "wal_size": "16.0 MiB",
         "status": "DONE", "retention_status": "VALID", "tablespaces": []},
        {"backup_id": "20251231T010000", "end_time_timestamp": "1767143600", "end_time": "Wed Dec 31 01:13:20 2025",
         "size_bytes": 52428800, "wal_size_bytes": 0, "size": "50.0 MiB", "wal_size": "0 B",
         "status": "DONE", "retention_status": "VALID", "tablespaces": []},
        {"backup_id": "20260103T010000", "status": "WAITING_FOR_WALS"},
    ]
}

WALG_LIST = [  # `wal-g backup-list --json --detail`
    {"backup_name": "base_000000010000000000000004", "time": "2026-01-01T01:00:10.123456789Z",
     "wal_file_name": "000000010000000000000004", "start_time": "2026-01-01T01:00:00.5Z",
     "finish_time": "2026-01-01T01:00:09.987654321Z", "hostname": "db1", "data_dir": "/var/lib/postgresql/15/main",
     "pg_version": 150004, "start_lsn": 67108904, "finish_lsn": 67109160, "is_permanent": False,
     "system_identifier": 7300000000000000000, "uncompressed_size": 30000000, "compressed_size": 4000000,
     "user_data": None},
    {"backup_name": "base_000000010000000000000008_D_000000010000000000000004",
     "time": "2026-01-02T01:00:10Z", "wal_file_name": "000000010000000000000008",
     "start_time": "2026-01-02T01:00:00Z", "finish_time": "2026-01-02T01:00:05Z", "hostname": "db1",
     "data_dir": "/var/lib/postgresql/15/main", "pg_version": 150004, "start_lsn": 134217768,
     "finish_lsn": 134218024, "is_permanent": False, "system_identifier": 7300000000000000000,
     "uncompressed_size": 1000000, "compressed_size": 200000, "user_data": None},
]


async def test_barman_and_walg_json_outputs_give_the_newest_good_backup_by_type(
        pg_primary: PostgresServer, tmp_path: Path) -> None:
    barman = _script(tmp_path, "barman.py", f"import json, sys\nassert sys.argv[1:] == []\n"
                                            f"print(json.dumps({BARMAN_LIST!r}))\n")
    walg_env = tmp_path / "walg.env"
    walg_env.write_text("# WAL-G settings\nexport WALG_FILE_PREFIX=/srv/walg\nPGHOST='127.0.0.1'\n")
    walg = _script(tmp_path, "walg.py", f"import json, os\nassert os.environ['WALG_FILE_PREFIX'] == '/srv/walg'\n"
                                        f"print(json.dumps({WALG_LIST!r}))\n")
    target = _pg_target(pg_primary, f"""
        backups:
          - {{type: barman, server: main, command: {json.dumps(barman)}}}
          - {{type: walg, env_file: "{walg_env}", command: {json.dumps(walg)}}}
        """)
    snapshot = await _collect(target)
    assert _samples(snapshot, "dbwatch_backup_source_up") == {("barman/main",): 1.0, ("walg",): 1.0}, snapshot.notes
    last = _samples(snapshot, "dbwatch_backup_last_success_timestamp_seconds")
    assert last[("barman/main", "any")] == last[("barman/main", "full")] == 1767230000
    assert last[("walg", "full")] == pytest.approx(1767229209.987654)  # 2026-01-01T01:00:09.987654Z
    assert last[("walg", "delta")] == last[("walg", "any")] == 1767315605  # 2026-01-02T01:00:05Z
    assert _samples(snapshot, "dbwatch_backup_failed_count")[("barman/main",)] == 1
    assert _samples(snapshot, "dbwatch_backup_count") == {
        ("barman/main", "full"): 2, ("walg", "delta"): 1, ("walg", "full"): 1}


# -- failing sources ------------------------------------------------------------------------------


async def test_a_hanging_failing_or_garbage_printing_command_is_a_down_source_that_alerts(
        pg_primary: PostgresServer, tmp_path: Path) -> None:
    pidfile = tmp_path / "hang.pid"
    hang = _script(tmp_path, "hang.py", f"import os, subprocess, time\n"
                                        f"child = subprocess.Popen(['sleep', '60'])\n"
                                        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
                                        f"time.sleep(60)\n")
    fail = _script(tmp_path, "fail.py", "import sys\nsys.stderr.write('repository is locked\\n')\nsys.exit(3)\n")
    garbage = _script(tmp_path, "garbage.py", "print('<html>502 Bad Gateway</html>')\n")
    target = _pg_target(pg_primary, f"""
        backups:
          - {{type: walg, name: hangs, timeout: 1s, command: {json.dumps(hang)}}}
          - {{type: walg, name: fails, command: {json.dumps(fail)}}}
          - {{type: pgbackrest, name: garbage, command: {json.dumps(garbage)}}}
        """)
    began = time.monotonic()
    snapshot = await _collect(target)
    assert time.monotonic() - began < 10
    assert snapshot.ok
    assert _samples(snapshot, "dbwatch_backup_source_up") == {("hangs",): 0, ("fails",): 0, ("garbage",): 0}
    errors = {s.source: s.error for s in snapshot.fact(BackupStatuses)}
    assert "did not finish within 1s" in errors["hangs"]
    assert "status 3" in errors["fails"] and "repository is locked" in errors["fails"]
    assert "not JSON" in errors["garbage"] and "502 Bad Gateway" in errors["garbage"]
    assert len([n for n in snapshot.notes if n.startswith("backup source")]) == 3
    # the hung command's whole process group was killed, its child too
    child = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), 5, "the pid file"))
    wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z" in _proc_state(child), 5, "the child to die")
    rules = [r for r in load_rules() if r.alert == "BackupSourceFailing"]
    findings = RuleEngine(rules).evaluate(_view([snapshot], target, now=time.time()))
    assert sorted(f.labels["source"] for f in findings) == ["fails", "garbage", "hangs"]


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return "Z"


def test_backup_config_errors_name_their_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(textwrap.dedent("""
            targets:
              - name: pg
                engine: postgres
                dsn: postgresql://u@127.0.0.1:5432/x
                backups:
                  - {type: pgbackrest}
                  - {type: files, path: /x/*.gz, stanza: main}
                  - {type: tape}
                  - {type: walg, rpo: soon, command: []}
        """))
    problems = "\n".join(err.value.problems)
    assert "targets[0].backups[0].stanza: required for type pgbackrest" in problems
    assert "targets[0].backups[1].stanza: only for type pgbackrest, not files" in problems
    assert "targets[0].backups[2].type:" in problems
    assert "targets[0].backups[3].rpo:" in problems and "targets[0].backups[3].command:" in problems
    with pytest.raises(ConfigError) as err:
        parse_config(textwrap.dedent("""
            targets:
              - name: pg
                engine: postgres
                dsn: postgresql://u@127.0.0.1:5432/x
                backups:
                  - {type: files, path: /a/*.gz}
                  - {type: files, path: /b/*.gz}
        """))
    assert any(p.startswith("targets[0].backups[1].name:") for p in err.value.problems), err.value.problems


def test_the_backup_collector_is_on_exactly_when_backups_are_configured() -> None:
    with_backups = _target("""
        targets:
          - name: r
            engine: redis
            dsn: redis://127.0.0.1:6379/0
            timeout: 2s
            backups: [{type: files, path: /var/backups/redis/*.rdb, timeout: 90s}]
        """)
    assert "backup" in with_backups.collectors
    assert with_backups.collectors["backup"].timeout == 95  # outlasts its slowest source, not the target's 2s
    without = _target("""
        targets:
          - {name: r, engine: redis, dsn: "redis://127.0.0.1:6379/0"}
        """)
    assert "backup" not in without.collectors and without.backups == ()


async def test_the_agent_carries_on_and_alerts_while_a_backup_source_hangs(
        pg_primary: PostgresServer, tmp_path: Path) -> None:
    config = {
        "targets": [{
            "name": "pg", "engine": "postgres", "dsn": pg_primary.dsn(), "interval": "1s",
            "collectors": {"statements": {"enabled": False}, "backup": {"interval": "2s"}},
            "backups": [{"type": "barman", "name": "stuck", "timeout": "1s", "command": ["sleep", "30"]}],
        }],
    }
    agent = AgentProcess(tmp_path, config).start()
    try:
        wait_for(lambda: 'dbwatch_backup_source_up{target="pg",source="stuck"} 0' in agent.metrics(), 20,
                 "the hung source to be down")
        alerts = wait_for(lambda: [a for a in agent.get("/api/v1/alerts")
                                   if a["labels"]["alertname"] == "BackupSourceFailing"], 20, "BackupSourceFailing")
        assert alerts[0]["labels"]["source"] == "stuck"
        runs = agent.targets()["pg"]["collectors"]["postgres"]["runs"]
        wait_for(lambda: agent.targets()["pg"]["collectors"]["postgres"]["runs"] > runs + 1, 10,
                 "the postgres collector to keep collecting")
        assert 'pg_up{target="pg"} 1' in agent.metrics()
    finally:
        assert agent.stop() == 0


async def test_redis_unsaved_writes_past_the_save_schedule_and_a_failing_bgsave_alert() -> None:
    from dbwatch.rules.backups import RedisPersistenceStale
    from tests.redisserver import RedisServer

    server = RedisServer("--save", "3600 1 300 100", "--enable-protected-configs", "local").start()
    try:
        client = server.client()
        client.set("k", "v")
        target = _target(f"""
            targets:
              - {{name: r, engine: redis, dsn: "{server.dsn()}"}}
            """)
        snapshot = await _collect(target, "redis")
        rule = RuleEngine([], [RedisPersistenceStale()])
        # one change: the schedule saves it within 3600 s; the rule allows twice that
        assert rule.evaluate(_view([snapshot], target, now=snapshot.started_at + 7000)) == []
        findings = rule.evaluate(_view([snapshot], target, now=snapshot.started_at + 7300))
        assert [f.rule for f in findings] == ["RedisPersistenceStale"] and findings[0].value > 7200
        client.save()
        saved = await _collect(target, "redis")
        assert rule.evaluate(_view([saved], target, now=saved.started_at + 100000)) == []  # nothing unsaved

        gone = server.root / "gone"
        gone.mkdir()
        client.config_set("dir", str(gone))
        shutil.rmtree(gone)  # the snapshot cannot be written any more
        client.set("k2", "v")
        client.bgsave()
        wait_for(lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err", 10, "BGSAVE to fail")
        failed = await _collect(target, "redis")
        bgsave_rules = [r for r in load_rules() if r.alert == "RedisBgsaveFailing"]
        assert [f.rule for f in RuleEngine(bgsave_rules).evaluate(_view([failed], target, now=time.time()))] == [
            "RedisBgsaveFailing"]
    finally:
        server.destroy()
