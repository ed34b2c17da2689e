"""The PITR window and archive continuity of the directory sources: a ``pg_basebackup`` source's WAL archive
(the directory ``archive_command`` copies segments into) and a ``mariabackup`` source's binary logs.

Both are local directories listed by name and mtime (nothing is read but each binary log's 4-byte magic):

- WAL: every segment (``000000010000000000000005``, optionally compressed: ``.gz``, ``.zst``, ...) from the
  first one the oldest good base backup needs (its ``backup_manifest``) to the newest archived must be there;
  a timeline switch keeps positions continuous (see :func:`pitr.missing_segments`).
- Binary logs (``mysql-bin.000007``): every file from the one the oldest good backup was taken at
  (``xtrabackup_binlog_info``) to the newest must be there, and start with the binlog magic; a missing or
  emptied file breaks every replay past it (``mariadb-binlog`` stops there).

The earliest recoverable point is the end of the oldest good backup, the latest the mtime of the newest
archived segment or binary log (its last write).
"""

from __future__ import annotations

import asyncio
import os
import re

from dbwatch.collectors.backup_sources import SourceError, SourceResult
from dbwatch.collectors.pitr import MAX_LISTED, ArchiveWindow, missing_segments
from dbwatch.model import BackupSpec

__all__ = ["BINLOG_MAGIC", "binlog_files", "read_dir_window", "wal_files"]

BINLOG_MAGIC = b"\xfebin"
_WAL = re.compile(r"([0-9A-F]{24})(?:\.(?:gz|zst|lz4|bz2|xz|br))?")
_BINLOG = re.compile(r"(.+)\.(\d{6,})")


async def read_dir_window(spec: BackupSpec, result: SourceResult) -> ArchiveWindow:
    """The window of a directory source with ``archive:``; SourceError when the archive cannot be listed."""
    return await asyncio.wait_for(asyncio.to_thread(_window, spec, result), spec.timeout)


def _window(spec: BackupSpec, result: SourceResult) -> ArchiveWindow:
    good = [e for e in result.entries if e.ok]
    earliest = min((e.finished_at for e in good), default=None)
    newest_backup = max((e.finished_at for e in good), default=None)
    archive = spec.archive or ""
    if not os.path.isdir(archive):
        raise SourceError(f"archive directory {archive} does not exist")
    if spec.type == "pg_basebackup":
        segments = wal_files(archive)
        missing = missing_segments(set(segments), result.oldest_backup_wal, max(segments, default=None))
        latest = max((at for at, _ in segments.values()), default=None)
    else:
        missing, latest = _binlog_gaps(archive, result.oldest_backup_wal)
    if newest_backup is not None and (latest is None or newest_backup > latest):
        latest = newest_backup
    return ArchiveWindow(earliest, latest, len(missing), tuple(missing[:MAX_LISTED]))


def wal_files(directory: str) -> dict[str, tuple[float, str]]:
    """The WAL segments in an archive directory: name -> (mtime, file path)."""
    found: dict[str, tuple[float, str]] = {}
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise SourceError(f"cannot list archive directory {directory}: {exc.strerror}") from None
    for name in names:
        match = _WAL.fullmatch(name)
        if match:
            path = os.path.join(directory, name)
            try:
                found[match.group(1)] = (os.stat(path).st_mtime, path)
            except OSError:
                continue  # removed meanwhile
    return found


def binlog_files(directory: str, base: str) -> dict[int, str]:
    """The binary logs named ``base.NNNNNN`` in a directory: number -> path."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise SourceError(f"cannot list binary log directory {directory}: {exc.strerror}") from None
    found = {}
    for name in names:
        match = _BINLOG.fullmatch(name)
        if match and match.group(1) == base:
            found[int(match.group(2))] = os.path.join(directory, name)
    return found


def _binlog_gaps(directory: str, first: str | None) -> tuple[list[str], float | None]:
    """Binary logs missing or damaged from ``first`` (the oldest backup's) to the newest, and the newest's mtime."""
    if not first or not _BINLOG.fullmatch(first):
        return [], None
    base, number = first.rsplit(".", 1)
    width, start = len(number), int(number)
    files = binlog_files(directory, base)
    latest = None
    if files:
        try:
            latest = os.stat(files[max(files)]).st_mtime
        except OSError:
            latest = None
    missing = []
    for n in range(start, max(files, default=start) + 1):
        path = files.get(n)
        if path is None or not _has_magic(path):
            missing.append(f"{base}.{n:0{width}d}")
    return missing, latest


def _has_magic(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == BINLOG_MAGIC
    except OSError:
        return False
