"""The runbook's restore commands for the directory sources: a ``pg_basebackup`` backup replayed from its
WAL archive directory, a ``mariabackup`` backup prepared, copied back and its binary logs replayed.

Written from the newest backup the source lists (its format, its binary-log position) and the source's
``archive:``; placeholders in capitals where dbwatch cannot know (the server's data directory)."""

from __future__ import annotations

import os
import shlex

from dbwatch.collectors.backup_dirs import binlog_position
from dbwatch.model import BackupSpec

__all__ = ["restore_commands_dirs"]


def restore_commands_dirs(spec: BackupSpec, newest: str | None) -> list[str]:
    backup = shlex.quote(newest) if newest else "BACKUP_DIR"
    if spec.type == "pg_basebackup":
        return _basebackup(spec, newest, backup)
    return _mariabackup(spec, newest, backup)


def _basebackup(spec: BackupSpec, newest: str | None, backup: str) -> list[str]:
    tar = newest is not None and any(os.path.exists(os.path.join(newest, f"base.tar{suffix}"))
                                     for suffix in ("", ".gz", ".zst", ".lz4", ".bz2", ".xz"))
    out = ["# PostgreSQL stopped; $PGDATA empty, owned by postgres, mode 0700"]
    if tar or newest is None:
        out += [f"sudo -u postgres tar -xf {backup}/base.tar* -C $PGDATA",
                f"sudo -u postgres tar -xf {backup}/pg_wal.tar* -C $PGDATA/pg_wal   # when taken with -X stream"]
    if not tar:
        out.append(f"sudo -u postgres cp -a {backup}/. $PGDATA" + ("   # plain format (-Fp)" if newest is None else ""))
    out += [f"sudo -u postgres /usr/lib/postgresql/15/bin/pg_verifybackup -m {backup}/backup_manifest $PGDATA"]
    if spec.archive:
        archive = shlex.quote(spec.archive)
        out += ["# replay the WAL archive to its end",
                f"echo \"restore_command = 'cp {archive}/%f %p'\" | sudo -u postgres tee -a $PGDATA/postgresql.auto.conf",
                "# or to a point in time inside the window above: also",
                "#   recovery_target_time = 'YYYY-MM-DD HH:MM:SS+00' and recovery_target_action = 'promote'"]
    else:
        out.append("# no archive: configured: the backup replays only its own WAL (add archive: for PITR)")
    out += ["sudo -u postgres touch $PGDATA/recovery.signal", "pg_ctl -D $PGDATA start"]
    return out


def _mariabackup(spec: BackupSpec, newest: str | None, backup: str) -> list[str]:
    out = ["# MariaDB stopped; prepare a copy (prepare writes into the directory it is given)",
           f"cp -a {backup} /var/tmp/restore && mariabackup --prepare --target-dir=/var/tmp/restore",
           "mariabackup --copy-back --target-dir=/var/tmp/restore --datadir=/var/lib/mysql   # datadir empty",
           "chown -R mysql:mysql /var/lib/mysql && systemctl start mariadb"]
    position = binlog_position(newest) if newest else None
    if spec.archive:
        archive = shlex.quote(spec.archive)
        if position is not None:
            first, offset = position
            base = first.rsplit(".", 1)[0]
            out += [f"# replay the binary logs after the backup ({first} at {offset}) to their end,",
                    "# or add --stop-datetime='YYYY-MM-DD HH:MM:SS' (local time) for a point in time",
                    f"mariadb-binlog --start-position={offset} $(ls {archive}/{shlex.quote(base)}.[0-9]* | "
                    f"sort | sed -n '/{first.replace('.', '[.]')}$/,$p') | mariadb"]
        else:
            out.append(f"# the backup has no xtrabackup_binlog_info: the binary logs in {archive} cannot be replayed "
                       "after it")
    return out
