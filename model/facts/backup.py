"""What the backup collector (collectors/backup.py) read from each configured backup source: the newest good
backups by type, and whether the source could be read. Times are Unix seconds."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbwatch.model.facts.common import FactList

__all__ = ["ANY_TYPE", "BackupEntry", "BackupSourceStatus", "BackupStatuses"]

#: the ``type`` label of the newest good backup of whatever type: the one the RPO applies to
ANY_TYPE = "any"


@dataclass(frozen=True, slots=True)
class BackupEntry:
    """One backup a source knows of."""

    label: str  # pgBackRest's label, Barman's backup id, WAL-G's backup name, the file's path
    type: str  # full | diff | incr (pgBackRest), full | incremental (Barman), full | delta (WAL-G), file
    finished_at: float  # Unix time the backup completed (a file's mtime)
    ok: bool  # False: listed but not usable (pgBackRest's error flag, Barman's FAILED)
    size_bytes: float | None = None


@dataclass(frozen=True, slots=True)
class BackupSourceStatus:
    """What one read of one backup source found ."""

    source: str  # the ``source`` label: the configured name, or the type plus stanza/server
    kind: str  # files | pgbackrest | barman | walg
    up: bool
    checked_at: float
    rpo_seconds: float
    error: str | None = None
    stale: bool = False  # the source failed; the backups below are from its last good read
    last_success: dict[str, float] = field(default_factory=dict)  # newest good backup, by backup type
    counts: dict[str, int] = field(default_factory=dict)  # good backups listed, by backup type
    failed_backups: int = 0  # listed but unusable (pgBackRest's error flag, Barman's FAILED)
    newest: tuple[BackupEntry, ...] = ()  # the newest good backups, newest first
    wal_min: str | None = None
    wal_max: str | None = None
    pitr_earliest: float | None = None  # pgBackRest: the earliest point recoverable (the oldest good backup's end)
    pitr_latest: float | None = None  # ... and the latest (when the newest WAL segment was archived)
    wal_missing: int = 0  # segments missing from the archive between the oldest backup and the newest segment
    wal_missing_first: tuple[str, ...] = ()  # the first of them
    archive_error: str | None = None  # the archive could not be listed (the window is then unknown)

    @property
    def newest_success(self) -> float | None:
        """When the newest good backup of any type finished (None: the source has none)."""
        return self.last_success.get(ANY_TYPE)


@dataclass(frozen=True, slots=True)
class BackupStatuses(FactList[BackupSourceStatus]):
    """One status per configured backup source."""
