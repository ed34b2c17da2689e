"""``pgbackrest verify`` run by the backup collector (``verify_every``), on a real stanza: in the background,
never at the first read, its invalid WAL counted as gaps of the archive so ``WalArchiveGap`` fires.

Starts: a throwaway PostgreSQL 15 archiving through a real pgBackRest into a repository of its own (so the
segment this module damages breaks nobody else's fixture), with a full backup and three segments after it.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dbwatch.agent.config import parse_config
from dbwatch.agent.jobs import TargetJobs
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.backup_verify import Verifier, parse_verify
from dbwatch.model import Snapshot, Target
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig, load_rules
from tests.helpers import assert_declared, wait_for, wait_until
from tests.pgcluster import PostgresServer
from tests.test_backup import STANZA, PgBackRest


@pytest.fixture(scope="module")
def stanza() -> Iterator[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="dbwatch-verify-"))
    os.chmod(root, 0o755)
    pgbr = PgBackRest(root / "pgbr")
    server = PostgresServer(settings={"archive_mode": "on", "archive_command": "'/bin/true'"})
    pgbr.configure(server)
    server.settings["archive_command"] = pgbr.archive_command()
    try:
        server.start()
        pgbr.run("stanza-create")
        pgbr.run("--type=full", "backup")
        for _ in range(3):
            server.psql("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t SELECT generate_series(1, 100); "
                        "SELECT pg_switch_wal()")
        wait_for(lambda: int(server.psql("SELECT archived_count FROM pg_stat_archiver")) >= 5, 60,
                 "the segments archived")
        yield {"server": server, "pgbr": pgbr, "root": root}
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _target(env: dict[str, Any], every: str = "1s") -> Target:
    return parse_config(textwrap.dedent(f"""
        targets:
          - name: pg
            engine: postgres
            dsn: "{env['server'].dsn()}"
            backups:
              - {{type: pgbackrest, stanza: {STANZA}, config: {env['pgbr'].conf}, verify_every: {every},
                 verify_timeout: 5m}}
        """)).resolved_targets()[0]


def _rules(target: Target, snapshot: Snapshot) -> list[str]:
    store = SnapshotStore()
    store.put(snapshot)
    view = TargetView(store, target.name, target.engine, target.labels, now=time.time())
    return sorted(f.rule for f in RuleEngine(load_rules(RulesConfig())).evaluate(view))


def _samples(snapshot: Snapshot, metric: str) -> dict[tuple[str, ...], float]:
    family = snapshot.family(metric)
    assert family is not None, metric
    return dict(family.samples)


async def test_verify_of_a_sound_repository_finds_every_file_valid(stanza: dict[str, Any]) -> None:
    target = _target(stanza)
    outcome = await Verifier(target.backups[0]).run()
    assert outcome.error is None and outcome.ok
    assert (outcome.invalid_wal, outcome.invalid_backup_files) == (0, 0)


def test_verify_output_is_parsed_into_invalid_wal_and_backup_files() -> None:
    text = textwrap.dedent("""\
        2026-12-04 20:49:39.962 P01   INFO: invalid checksum '15-1/0000000100000000/000000010000000000000003-158f998763296bc1bc41293c8c9f684bc9ff4260'
        2026-12-04 20:49:40.111 P00   INFO: stanza: demo
                                            status: error
                                              archiveId: 15-1, total WAL checked: 4, total valid WAL: 3
                                              backup: 20261204-204910F, status: invalid, total files checked: 964, total valid files: 962
        stanza: demo
        status: error
          archiveId: 15-1, total WAL checked: 4, total valid WAL: 3
            missing: 0, checksum invalid: 1, size invalid: 0, other: 0
          backup: 20261204-204910F, status: invalid, total files checked: 964, total valid files: 962
            missing: 0, checksum invalid: 2, size invalid: 0, other: 0
        """)
    assert parse_verify(text) == (1, 2, ("000000010000000000000003",), ("20261204-204910F",))


async def test_the_collector_runs_verify_in_the_background_and_a_damaged_segment_fires_wal_archive_gap(
        stanza: dict[str, Any]) -> None:
    target = _target(stanza)
    source = (f"pgbackrest/{STANZA}",)
    jobs = TargetJobs(target)
    try:
        first = await jobs.collect("backup")  # the first read never starts a verify (one-shot commands read once)
        assert_declared(first)
        assert not _samples(first, "dbwatch_backup_verify_success")
        assert _samples(first, "dbwatch_wal_archive_missing_segments") == {source: 0}

        async def verified(expect_ok: bool) -> Snapshot | None:
            snapshot = await jobs.collect("backup")  # the second read (and later ones, when due) starts one
            return snapshot if _samples(snapshot, "dbwatch_backup_verify_success") == {source: float(expect_ok)} \
                else None

        sound = await wait_until(lambda: verified(True), 120, "a verify of the sound repository", interval=0.5)
        assert_declared(sound)
        assert _samples(sound, "dbwatch_backup_verify_invalid_files") == {(source[0], "wal"): 0,
                                                                           (source[0], "backup"): 0}
        assert "WalArchiveGap" not in _rules(target, sound)

        segments = sorted(glob.glob(str(stanza["root"] / "pgbr" / "repo" / "archive" / STANZA / "*" / "*" / "0*-*")))
        damaged = os.path.basename(segments[-2])[:24]
        with open(segments[-2], "r+b") as fh:  # present (a listing sees no gap), but its content is wrong
            fh.truncate(1000)
        broken = await wait_until(lambda: verified(False), 120, "a verify finding the damaged segment", interval=0.5)
    finally:
        await jobs.close()
    assert _samples(broken, "dbwatch_backup_verify_invalid_files")[(source[0], "wal")] == 1
    assert _samples(broken, "dbwatch_wal_archive_missing_segments") == {source: 1}
    assert any(damaged in note for note in broken.notes), broken.notes
    assert "WalArchiveGap" in _rules(target, broken)
