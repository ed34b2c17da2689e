"""A target to watch and its configured collectors and backup sources, as the daemon hands them down."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from dbwatch.model.options import CollectorOptions


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to watch. ``dsn`` never holds the password: that is resolved at connect time."""

    name: str
    engine: str
    dsn: str
    labels: Mapping[str, str]
    collectors: Mapping[str, "CollectorSettings"]
    password_env: str | None = None
    password_file: str | None = None
    cluster: str | None = None  # the replication cluster it belongs to, when configured (``cluster: NAME``)
    backups: tuple["BackupSpec", ...] = ()  # the configured backup sources (``backups:``)
    schema_group: str | None = None  # targets whose schemas must be the same (``schema_group: NAME``)

    def password(self) -> str | None:
        """Read the secret from the environment or a file, each time (credentials rotate).

        Raises :class:`SecretUnavailable` (naming the file, never its content) when the file cannot be read.
        """
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            try:
                with open(self.password_file, encoding="utf-8") as fh:
                    return fh.read().rstrip("\r\n")
            except OSError as exc:
                raise SecretUnavailable(f"cannot read password_file {self.password_file} ({exc.strerror})") from None
        return None


class SecretUnavailable(Exception):
    """A target's password could not be read: a configuration problem, reported like a failed connection."""


@dataclass(frozen=True, slots=True)
class BackupSpec:
    """One configured backup source of a target (``backups:``), read by the backup collector.

    ``command`` is an argv list that replaces the default command of the source's type (never run by a
    shell); ``rpo`` is how old the newest good backup may get before ``BackupTooOld``, in seconds.
    """

    name: str
    type: str  # files | pgbackrest | barman | walg | pg_basebackup | mariabackup
    rpo: float
    timeout: float
    path: str | None = None
    stanza: str | None = None
    config: str | None = None
    repo: int | None = None
    server: str | None = None
    env_file: str | None = None
    command: tuple[str, ...] = ()
    restore_test: "RestoreTestSpec | None" = None  # a scheduled restore drill of this source (opt-in)
    archive: str | None = None  # pg_basebackup: archive_command's WAL directory; mariabackup: the binlog directory
    verify_every: float | None = None  # pgbackrest: run `pgbackrest verify` this often (None: never)
    verify_timeout: float = 3600.0


@dataclass(frozen=True, slots=True)
class RestoreTestSpec:
    """A backup source's restore drill (``restore_test:``): how often, how fast it must be, where it may
    restore, how much disk it may use, and what to check on the restored copy. Times in seconds."""

    every: float
    rto: float
    workdir: str
    timeout: float  # the whole drill; past it, everything is stopped and deleted
    max_disk: float | None = None  # bytes the drill may use in workdir (None: whatever is free)
    verify: tuple[str, ...] = ()  # statements (SQL; Redis: commands) that must succeed on the restored copy
    compare_tables: int = 5  # row counts of this many largest tables compared with the live target
    recover_to: float | None = None  # PITR drills: a Unix time to recover to (None: the end of the archive)
    recover_before: float | None = None  # ... or this many seconds before the drill starts


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    interval: float
    timeout: float
    #: the collector's options model, validated (``None``: the collector's defaults)
    options: CollectorOptions | None = None
