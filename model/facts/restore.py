"""What the restore drills (collectors/restore_drill.py) measured: one result per drilled backup source.
Times are Unix seconds, durations seconds."""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList

__all__ = ["DrillStep", "RestoreDrill", "RestoreDrills", "VerifyResult"]


@dataclass(frozen=True, slots=True)
class DrillStep:
    name: str  # check_space | initdb | restore | check_backup | prepare | start | recover | verify | compare | cleanup
    seconds: float
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    statement: str
    ok: bool
    result: str  # the first value it returned, or the error


@dataclass(frozen=True, slots=True)
class RestoreDrill:
    """One finished drill of one backup source."""

    source: str
    kind: str  # pgbackrest | pg_basebackup | barman | pg_dump | mariabackup | mariadb_dump | redis_rdb
    started_at: float
    finished_at: float
    ok: bool
    rto_seconds: float
    every_seconds: float
    error: str | None = None  # why it failed, in one line
    backup: str = ""  # the backup restored: pgBackRest's label, the file's path
    backup_finished_at: float | None = None
    restored_to: float | None = None  # the newest point the restored copy holds (end of WAL replay, dump time)
    steps: tuple[DrillStep, ...] = ()
    verified: tuple[VerifyResult, ...] = ()
    compared: tuple[tuple[str, int, int | None], ...] = ()  # (table, restored rows, live rows or None)

    @property
    def duration(self) -> float:
        """The measured restore time: the drill's steps up to a verified, running copy. Left out: the row-count
        comparison (dbwatch's own check, not part of a real restore) and the cleanup."""
        return sum(step.seconds for step in self.steps if step.name not in ("compare", "cleanup"))


@dataclass(frozen=True, slots=True)
class RestoreDrills(FactList[RestoreDrill]):
    """The last drill of each source that has one."""
