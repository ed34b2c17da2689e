"""``pgbackrest verify`` run by the backup collector, in the background, at most every ``verify_every``.

Verify reads the whole repository (every WAL segment and backup file, checksummed), which takes as long as
reading the repository does: it never runs inside a collection. The collector starts it (under ``nice`` and
``ionice -c 3``) when it is due and not already running, and uses the last finished result at each read:
invalid or missing WAL segments count as gaps of the archive (``dbwatch_wal_archive_missing_segments``,
``WalArchiveGap``), invalid backup files are ``dbwatch_backup_verify_invalid_files{kind="backup"}``.

The first verify of a source starts at its *second* read (5 minutes after the agent starts, by default), so
one-shot commands (``dbwatch check``, ``advise``, ``runbook``), which read once, never start one. A run past
``verify_timeout`` is killed with its process group.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from dbwatch.collectors.backup_sources import SourceError, default_command, run_command
from dbwatch.model import BackupSpec

__all__ = ["VerifyOutcome", "Verifier", "parse_verify"]

LOW_PRIORITY = ("nice", "-n", "19", "ionice", "-c", "3")
MAX_NAMES = 10
_ARCHIVE = re.compile(r"archiveId: (\S+), total WAL checked: (\d+), total valid WAL: (\d+)")
_BACKUP = re.compile(r"backup: (\S+), status: ([^,]+), total files checked: (\d+), total valid files: (\d+)")
_BAD_FILE = re.compile(r"INFO: (invalid checksum|invalid size|file missing|invalid [a-z ]+) '([^']+)'")
_SEGMENT = re.compile(r"([0-9A-F]{24})-[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    finished_at: float
    seconds: float
    error: str | None = None  # verify could not run (the counts below are then 0)
    invalid_wal: int = 0  # WAL segments checked and found invalid (checksum, size, unreadable)
    invalid_backup_files: int = 0
    bad_wal: tuple[str, ...] = ()  # the first invalid segments, by name
    bad_backups: tuple[str, ...] = ()  # labels of backups with invalid files

    @property
    def ok(self) -> bool:
        return self.error is None and not self.invalid_wal and not self.invalid_backup_files


def parse_verify(text: str) -> tuple[int, int, tuple[str, ...], tuple[str, ...]]:
    """Invalid WAL segments, invalid backup files, the bad segments' names and the bad backups' labels, from
    ``pgbackrest verify --output=text --verbose`` with console logging at info."""
    # the summary is printed twice (the info log echoes it): each archive id and backup counts once
    archives = {archive: int(checked) - int(valid) for archive, checked, valid in _ARCHIVE.findall(text)}
    backups = {label: int(checked) - int(valid) for label, _status, checked, valid in _BACKUP.findall(text)}
    invalid_wal, invalid_files = sum(archives.values()), sum(backups.values())
    bad_backups = [label for label, bad in backups.items() if bad]
    bad_wal: list[str] = []
    for _why, path in _BAD_FILE.findall(text):
        segment = _SEGMENT.search(path)
        if segment and segment.group(1) not in bad_wal:
            bad_wal.append(segment.group(1))
    return invalid_wal, invalid_files, tuple(sorted(bad_wal)[:MAX_NAMES]), tuple(bad_backups[:MAX_NAMES])


def verify_command(spec: BackupSpec) -> list[str]:
    base = [a for a in default_command(spec)[:-1] if not a.startswith(("--output=", "--log-level-console="))]
    return [*LOW_PRIORITY, *base, "--output=text", "--verbose", "--log-level-console=info",
            "--log-level-stderr=off", "verify"]


class Verifier:
    """The background ``pgbackrest verify`` of one source: started when due, its last outcome kept."""

    def __init__(self, spec: BackupSpec) -> None:
        self.spec = spec
        self.last: VerifyOutcome | None = None
        self._reads = 0
        self._task: asyncio.Task[VerifyOutcome] | None = None

    def tick(self) -> None:
        """Called at each read of the source: start a verify when one is due (never at the first read)."""
        self._reads += 1
        every = self.spec.verify_every
        if every is None or self._reads < 2 or (self._task is not None and not self._task.done()):
            return
        if self.last is not None and time.time() - self.last.finished_at < every:
            return
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> VerifyOutcome:
        began = time.monotonic()
        try:
            out = (await run_command(verify_command(self.spec), self.spec.verify_timeout)).decode(errors="replace")
        except SourceError as exc:
            outcome = VerifyOutcome(time.time(), time.monotonic() - began,
                                    error=str(exc).replace(LOW_PRIORITY[0], "pgbackrest verify", 1))
        else:
            wal, files, bad_wal, bad_backups = parse_verify(out)
            outcome = VerifyOutcome(time.time(), time.monotonic() - began, None, wal, files, bad_wal, bad_backups)
        self.last = outcome
        return outcome

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
