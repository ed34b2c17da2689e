"""The ``backups:`` list of a target: which backup sources the backup collector reads, and their RPOs.

```yaml
backups:
  - type: files              # files | pgbackrest | barman | walg | pg_basebackup | mariabackup
    path: /var/backups/pg/*.sql.gz
    rpo: 26h
  - type: pgbackrest
    stanza: main
    restore_test: {every: 24h, rto: 15m, workdir: /var/lib/dbwatch/restore, max_disk: 50GiB,
                   verify: ["SELECT count(*) FROM orders"]}
```

``restore_test:`` (opt-in) schedules a restore drill of the source (docs/restore-drills.md).
``pg_basebackup`` and ``mariabackup`` sources are directories of backups (``path:``, a glob) and their
``archive:`` (archive_command's WAL directory; the binary-log directory): their PITR window and gaps.
``verify_every:`` (pgbackrest) runs ``pgbackrest verify`` that often, in the background.

Each entry is checked here, with errors that name their path (``targets[0].backups[1].stanza: required
for type pgbackrest``); :func:`to_specs` turns the list into the model's :class:`BackupSpec` tuple.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, field_validator, model_validator

from dbwatch.model.configtypes import Duration, StrictModel
from dbwatch.model import BackupSpec, RestoreTestSpec

__all__ = ["DEFAULT_BACKUP_RPO", "DEFAULT_BACKUP_TIMEOUT", "BackupConfig", "RestoreTestConfig", "check_backup_names", "to_specs"]

DEFAULT_BACKUP_RPO = 26 * 3600.0  # a nightly backup, with two hours of slack
DEFAULT_BACKUP_TIMEOUT = 60.0

# The keys that only some types take, and which.
_DIRECTORIES = ("pg_basebackup", "mariabackup")  # sources whose backups are directories, with their own archive
_ONLY_FOR = {"path": ("files", *_DIRECTORIES), "stanza": ("pgbackrest",), "repo": ("pgbackrest",),
             "server": ("barman",), "env_file": ("walg",), "config": ("pgbackrest", "walg", "barman"),
             "archive": (*_DIRECTORIES, "files"), "verify_every": ("pgbackrest",), "verify_timeout": ("pgbackrest",)}
_REQUIRED = {"files": "path", "pgbackrest": "stanza", "barman": "server", "pg_basebackup": "path",
             "mariabackup": "path"}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
# the types a drill can restore (files: a pg_dump / mariadb-dump file or a Redis RDB, by the target's engine)
_COMMANDS = ("pgbackrest", "barman", "walg")  # the types whose default command `command:` replaces
_DRILLABLE = ("pgbackrest", "files", *_DIRECTORIES, "barman")


def _size(value: Any) -> Any:
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if not match:
            raise ValueError(f"expected a size like 50GiB or 500MB, got {value!r}")
        return float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    return value


Size = Annotated[float, BeforeValidator(_size)]


class RestoreTestConfig(StrictModel):
    every: Duration = Field(default=24 * 3600.0, gt=0)
    rto: Duration = Field(gt=0)
    workdir: str
    max_disk: Size | None = Field(default=None, gt=0)
    timeout: Duration | None = Field(default=None, gt=0)  # default: 4 x rto, at least 10 min
    verify: list[str] = Field(default_factory=list)
    compare_tables: int = Field(default=5, ge=0, le=100)
    # pgbackrest, pg_basebackup, mariabackup: "latest" (the end of the archive), a time, or a duration before now
    recover_to: str = "latest"

    @field_validator("recover_to")
    @classmethod
    def _recover_to(cls, value: str) -> str:
        _target_time(value)
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"expected an absolute directory, got {value!r}")
        return value

    def to_spec(self) -> RestoreTestSpec:
        timeout = self.timeout or max(600.0, 4 * self.rto)
        at, before = _target_time(self.recover_to)
        return RestoreTestSpec(every=self.every, rto=self.rto, workdir=self.workdir, timeout=timeout,
                               max_disk=self.max_disk, verify=tuple(self.verify), compare_tables=self.compare_tables,
                               recover_to=at, recover_before=before)


def _target_time(value: str) -> tuple[float | None, float | None]:
    """``recover_to``: (a Unix time, None), (None, seconds before the drill) or (None, None) for "latest"."""
    text = value.strip()
    if text == "latest":
        return None, None
    try:
        return None, float(TypeAdapter(Duration).validate_python(text))
    except ValidationError:
        pass
    try:
        at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'expected "latest", a duration before the drill like 1h, or a time like '
                         f'2026-12-04T18:00:00Z, got {value!r}') from None
    return (at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)).timestamp(), None


class BackupConfig(StrictModel):
    type: Literal["files", "pgbackrest", "barman", "walg", "pg_basebackup", "mariabackup"]
    name: str | None = None  # the `source` label; defaults to the type (plus the stanza or server)
    path: str | None = None  # files: a glob; the newest non-empty match counts
    stanza: str | None = None  # pgbackrest
    config: str | None = None  # pgbackrest --config, wal-g --config, barman -c
    repo: int | None = Field(default=None, ge=1, le=256)  # pgbackrest --repo
    server: str | None = None  # barman
    env_file: str | None = None  # walg: KEY=VALUE lines (WALG_*, AWS_*, PG*) passed as the environment
    command: list[str] | None = None  # argv replacing the default command; never run by a shell
    timeout: Duration = Field(default=DEFAULT_BACKUP_TIMEOUT, gt=0)
    rpo: Duration = Field(default=DEFAULT_BACKUP_RPO, gt=0)
    restore_test: RestoreTestConfig | None = None
    archive: str | None = None  # pg_basebackup: archive_command's WAL directory; mariabackup: the binary logs'
    verify_every: Duration | None = Field(default=None, gt=0)  # pgbackrest: `pgbackrest verify` this often
    verify_timeout: Duration | None = Field(default=None, gt=0)  # ... bounded by this (default 1h)

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0]):
            raise ValueError('expected an argv list like ["pgbackrest", "--stanza=main", "--output=json", "info"]')
        return value

    @field_validator("archive")
    @classmethod
    def _archive(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"expected an absolute directory, got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("expected a non-empty name")
        return value

    @model_validator(mode="after")
    def _keys_of_type(self) -> "BackupConfig":
        for key, types in _ONLY_FOR.items():
            if getattr(self, key) is not None and self.type not in types:
                raise ValueError(f"{key}: only for type {' or '.join(types)}, not {self.type}")
        required = _REQUIRED.get(self.type)
        if required and getattr(self, required) is None and not (self.command and self.type in _COMMANDS):
            raise ValueError(f"{required}: required for type {self.type}")
        if self.verify_every is not None and self.command:
            raise ValueError("verify_every: runs pgbackrest verify with the stanza's options; not with command:")
        if self.restore_test is not None and self.type == "barman" and (self.server in (None, "all") or self.command):
            raise ValueError("restore_test: a Barman drill recovers one server's backup: set server:, without command:")
        if self.restore_test is not None and self.type not in _DRILLABLE:
            raise ValueError(f"restore_test: drills restore {', '.join(_DRILLABLE[:-1])} or {_DRILLABLE[-1]} sources, "
                             f"not {self.type}")
        return self

    @property
    def source_name(self) -> str:
        if self.name:
            return self.name
        qualifier = self.stanza or self.server
        return f"{self.type}/{qualifier}" if qualifier else self.type


def check_backup_names(backups: list[BackupConfig]) -> None:
    """Two sources of one target must not share a ``source`` label."""
    seen: dict[str, int] = {}
    for index, backup in enumerate(backups):
        name = backup.source_name
        if name in seen:
            raise ValueError(f"backups[{index}].name: {name!r} is already the source of backups[{seen[name]}]; "
                             "give each source its own name")
        seen[name] = index


def to_specs(backups: list[BackupConfig]) -> tuple[BackupSpec, ...]:
    return tuple(
        BackupSpec(name=b.source_name, type=b.type, rpo=b.rpo, timeout=b.timeout, path=b.path, stanza=b.stanza,
                   config=b.config, repo=b.repo, server=b.server, env_file=b.env_file,
                   command=tuple(b.command or ()),
                   restore_test=b.restore_test.to_spec() if b.restore_test else None, archive=b.archive,
                   verify_every=b.verify_every, verify_timeout=b.verify_timeout or 3600.0)
        for b in backups
    )
