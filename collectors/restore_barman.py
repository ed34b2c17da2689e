"""PostgreSQL restore drills of a Barman server's newest backup: ``barman recover`` into the drill's directory.

Barman runs on the same host as the agent (it reads its own ``barman_home``): ``barman [-c CONFIG] recover
[--target-time T --target-action promote] SERVER BACKUP_ID DRILL/data`` copies the backup and the WAL files
it needs into ``DRILL/data/barman_wal`` and writes the ``restore_command`` reading them and the
``recovery.signal``; Barman drops to its ``barman_user`` itself when run as root, so while it writes, the
drill's directory belongs to that user. Then the copy is handed to ``postgres`` and the throwaway server
(:func:`restore_pg.start`) replays to the end (or ``recover_to``) and promotes; a replay stopping before the
newest segment Barman lists met a missing one and fails the drill naming it. Nothing is written to Barman's
storage: ``recover`` only reads it. A backup with tablespaces is refused (Barman would recover them into
their original directories).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil

from dbwatch.collectors.backup_sources import SourceError, barman_base, read_source, run_command
from dbwatch.collectors.restore_drill import Drill, DrillError, low_priority, run_as, wait_until
from dbwatch.collectors.restore_pg import (USER, check_gap, compare, dsn_database, last_transaction, promoted, psql,
                                           start, target_time)
from dbwatch.model import BackupSpec

__all__ = ["restore"]


async def restore(drill: Drill, kind: str) -> None:
    spec = drill.spec
    server = spec.server or ""
    async with drill.step("check_space"):
        try:
            info = await read_source(spec)
        except SourceError as exc:
            raise DrillError(f"barman list-backups: {exc}") from None
        good = sorted((e for e in info.entries if e.ok), key=lambda e: e.finished_at)
        if not good:
            raise DrillError(f"Barman lists no finished backup of server {server}")
        newest = good[-1]
        drill.backup, drill.backup_finished_at, drill.restored_to = newest.label, newest.finished_at, newest.finished_at
        drill.check_space(newest.size_bytes)
        await _refuse_tablespaces(spec, server, newest.label)
    directory = drill.make_directory(None)
    data = os.path.join(directory, "data")
    writer = _barman_user(spec.config)
    if writer:
        shutil.chown(directory, writer, writer)  # barman writes as its barman_user
    target = target_time(drill)
    options = []
    if target is not None:
        at = _utc(target)
        options = ["--target-time", at, "--target-action", "promote"]
    async with drill.step("restore", f"barman recover {server} {newest.label}"):
        try:
            await run_command(low_priority([*barman_base(spec), "recover", *options, server, newest.label, data]),
                              drill.test.timeout, stderr_tail=4000)
        except SourceError as exc:
            raise DrillError(f"barman recover failed: {_reason(str(exc))}") from None
    postgres = run_as(USER)
    if postgres:
        await drill.command(["chown", "-R", f"{postgres}:{postgres}", directory])
    wal_max = await _newest_wal(drill, server, newest.label)
    port = await start(drill, directory, data)
    async with drill.step("recover", "replaying the WAL Barman copied " + ("to the recovery target" if target
                                                                           else "to its end")):
        await wait_until(lambda: promoted(drill, directory, port), "recovery did not reach the end of the WAL",
                         drill.test.timeout, 0.2)
        with open(os.path.join(directory, "server.log"), encoding="utf-8", errors="replace") as fh:
            log = fh.read()
        drill.restored_to = last_transaction(log) or newest.finished_at
        if target is None:
            check_gap(log, wal_max)
    database = dsn_database(drill.target.dsn)
    await drill.verify_all(lambda statement: psql(drill, directory, port, database, statement))
    if drill.test.compare_tables:
        async with drill.step("compare", "row counts of the largest tables against the live target"):
            await compare(drill, directory, port, database)


async def _refuse_tablespaces(spec: BackupSpec, server: str, backup: str) -> None:
    """Barman recovers tablespaces to their original directories (the live server's, if on this host)."""
    try:
        out = await run_command([*barman_base(spec), "-f", "json", "show-backup", server, backup], spec.timeout)
        shown = json.loads(out)[server]
    except (SourceError, ValueError, KeyError, TypeError) as exc:
        raise DrillError(f"barman show-backup {server} {backup}: {exc}") from None
    if shown.get("tablespaces"):
        raise DrillError(f"backup {backup} has tablespaces: barman recover would write them into their original "
                         "directories, so it is not drilled")


async def _newest_wal(drill: Drill, server: str, backup: str) -> str | None:
    try:
        out = await run_command([*barman_base(drill.spec), "list-files", "--target", "wal", server, backup],
                                drill.spec.timeout)
    except SourceError as exc:
        raise DrillError(f"barman list-files: {exc}") from None
    names = [os.path.basename(line.strip()) for line in out.decode(errors="replace").splitlines()]
    return max((n for n in names if len(n) == 24 and all(c in "0123456789ABCDEF" for c in n)), default=None)


def _reason(error: str) -> str:
    """Barman's own ERROR line and the file rsync could not find, from its stderr (else its tail)."""
    lines = [line.strip() for line in error.splitlines()]
    wanted = [line[line.index("ERROR:"):] if "ERROR:" in line else line for line in lines
              if "ERROR:" in line or "No such file" in line]
    return " | ".join(wanted)[:600] if wanted else error[-300:]


def _barman_user(config: str | None) -> str | None:
    """The user barman writes as when the agent (root) runs it: its ``barman_user`` (default ``barman``)."""
    if os.geteuid() != 0:
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config or "/etc/barman.conf")
    except configparser.Error:
        return None
    user = parser.get("barman", "barman_user", fallback="barman")
    return None if user == "root" else run_as(user)


def _utc(at: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00:00")
