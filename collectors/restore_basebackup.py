"""PostgreSQL restore drills of a ``pg_basebackup`` directory replayed from an ``archive_command`` directory.

The newest good base backup (plain ``-Fp``: copied; tar ``-Ft``: ``base.tar`` and ``pg_wal.tar`` extracted,
compressed or not) becomes the drill's data directory; ``pg_verifybackup`` checks every file against the
backup's ``backup_manifest`` (checksums, sizes, and the WAL it needs), so a truncated or altered file fails
the drill before any server starts. Then ``recovery.signal`` and a ``restore_command`` reading the source's
``archive:`` directory (plain or gzip-compressed segments) are written, and the server (see
:func:`restore_pg.start`) replays the archive to its end, or to ``recover_to``, and promotes. A replay that
stops before the archive's newest segment met a missing one: the drill fails naming it. A backup with
tablespaces is refused: its tablespace links name the live server's directories.
"""

from __future__ import annotations

import os
import shutil

from dbwatch.collectors.backup_sources import SourceError, read_source
from dbwatch.collectors.pitr_dirs import wal_files
from dbwatch.collectors.restore_drill import Drill, DrillError, run_as, wait_until
from dbwatch.collectors.restore_pg import (BIN, USER, check_gap, compare, dsn_database, last_transaction, promoted,
                                           psql, recovery_target_settings, start, target_time)

__all__ = ["restore", "restore_command"]

_TAR_NAMES = ("", ".gz", ".lz4", ".zst", ".bz2", ".xz")


async def restore(drill: Drill, kind: str) -> None:
    spec = drill.spec
    async with drill.step("check_space"):
        try:
            info = await read_source(spec)
        except SourceError as exc:
            raise DrillError(str(exc)) from None
        good = sorted((e for e in info.entries if e.ok), key=lambda e: e.finished_at)
        if not good:
            raise DrillError(f"no finished base backup (a directory with a backup_manifest) matches {spec.path}")
        newest = good[-1]
        drill.backup, drill.backup_finished_at, drill.restored_to = newest.label, newest.finished_at, newest.finished_at
        drill.check_space(newest.size_bytes)
    user = run_as(USER)
    directory = drill.make_directory(user)
    data = os.path.join(directory, "data")
    source = newest.label
    tar = _tar(source, "base")
    async with drill.step("restore", f"{'extract' if tar else 'copy'} {source}"):
        await _copy(drill, source, data, tar, user)
    async with drill.step("check_backup", "pg_verifybackup against backup_manifest"):
        await _verify(drill, source, data, user)
    archive = spec.archive
    settings = recovery_target_settings(drill)
    if archive:
        settings["restore_command"] = restore_command(archive)
    _write_recovery(data, settings, user)
    port = await start(drill, directory, data)
    target = target_time(drill)
    what = "replaying the WAL archive " + ("to the recovery target" if target else "to its end") if archive else \
        "replaying the backup's own WAL (no archive: configure archive:)"
    async with drill.step("recover", what):
        await wait_until(lambda: promoted(drill, directory, port), "recovery did not reach the end of the archive",
                         drill.test.timeout, 0.2)
        with open(os.path.join(directory, "server.log"), encoding="utf-8", errors="replace") as fh:
            log = fh.read()
        drill.restored_to = last_transaction(log) or newest.finished_at
        if archive and target is None:
            check_gap(log, max(wal_files(archive), default=None))
    database = dsn_database(drill.target.dsn)
    await drill.verify_all(lambda statement: psql(drill, directory, port, database, statement))
    if drill.test.compare_tables:
        async with drill.step("compare", "row counts of the largest tables against the live target"):
            await compare(drill, directory, port, database)


def restore_command(archive: str) -> str:
    """A restore_command copying a segment from the archive directory, plain or gzip-compressed."""
    quoted = "'" + archive.replace("'", "'\\''") + "'"
    return (f"if [ -f {quoted}/%f ]; then cp {quoted}/%f %p; "
            f"elif [ -f {quoted}/%f.gz ]; then gzip -dc {quoted}/%f.gz > %p; else exit 1; fi")


def _tar(source: str, name: str) -> str | None:
    for suffix in _TAR_NAMES:
        path = os.path.join(source, f"{name}.tar{suffix}")
        if os.path.isfile(path):
            return path
    return None


async def _copy(drill: Drill, source: str, data: str, tar: str | None, user: str | None) -> None:
    """The backup into ``data`` (copied or extracted as the agent), owned by the server's user."""
    os.mkdir(data, 0o700)
    if tar is None:
        if not os.path.isfile(os.path.join(source, "PG_VERSION")):
            raise DrillError(f"{source} is neither a plain-format backup (no PG_VERSION) nor a tar-format one "
                             "(no base.tar)")
        await drill.command(["cp", "-R", "--preserve=mode,timestamps", f"{source}/.", data])
    else:
        await drill.command(["tar", "-x", "-f", tar, "-C", data])
        wal = _tar(source, "pg_wal")
        if wal is not None:
            await drill.command(["tar", "-x", "-f", wal, "-C", os.path.join(data, "pg_wal")])
    links = os.path.join(data, "pg_tblspc")
    mapped = os.path.join(data, "tablespace_map")  # tar format: written even when empty
    if (os.path.isfile(mapped) and os.path.getsize(mapped) > 0) or (os.path.isdir(links) and os.listdir(links)):
        raise DrillError(f"{source} has tablespaces: a restored server would use their original directories "
                         "(the live server's, on this host), so it is not drilled")
    for leftover in ("standby.signal", "recovery.signal", "postmaster.pid"):
        path = os.path.join(data, leftover)
        if os.path.exists(path):
            os.remove(path)
    if user:
        await drill.command(["chown", "-R", f"{user}:{user}", data])


async def _verify(drill: Drill, source: str, data: str, user: str | None) -> None:
    manifest = os.path.join(source, "backup_manifest")
    argv = [f"{BIN}/pg_verifybackup", "--quiet", "-m", manifest]
    wal = os.path.join(data, "pg_wal")
    if not any(len(name) == 24 for name in os.listdir(wal)):
        argv.append("--no-parse-wal")  # -X none: its WAL is in the archive only, checked by the replay
    copy = os.path.join(os.path.dirname(data), "backup_manifest")
    shutil.copyfile(manifest, copy)  # readable by the server's user, whatever the backup directory's mode
    if user:
        shutil.chown(copy, user, user)
    argv[3] = copy
    try:
        await drill.command([*argv, data], user)
    except DrillError as exc:
        raise DrillError(f"the base backup {source} is damaged: {exc}") from None


def _write_recovery(data: str, settings: dict[str, str], user: str | None) -> None:
    """recovery.signal and the recovery settings, last in postgresql.auto.conf (later lines win)."""
    auto = os.path.join(data, "postgresql.auto.conf")
    with open(auto, "a", encoding="utf-8") as fh:
        fh.write("\n# dbwatch restore drill\n")
        for key, value in settings.items():
            fh.write(f"{key} = '{value.replace(chr(39), chr(39) * 2)}'\n")
    signal = os.path.join(data, "recovery.signal")
    open(signal, "w", encoding="utf-8").close()
    if user:
        shutil.chown(auto, user, user)
        shutil.chown(signal, user, user)
