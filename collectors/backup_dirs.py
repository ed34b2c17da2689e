"""Backup sources whose backups are directories: ``pg_basebackup`` and ``mariabackup`` output, found by a glob.

pg_basebackup (plain ``-Fp`` or tar ``-Ft``, PostgreSQL 13+): a directory is a finished backup when it holds
the ``backup_manifest`` pg_basebackup writes last; its ``WAL-Ranges`` name the first WAL segment the backup
needs (the start of the PITR window's archive continuity). A directory without one is an unfinished (or
failed, or ``--no-manifest``) backup and counts as failed.

mariabackup: a directory is a backup when it holds ``xtrabackup_checkpoints`` (MariaDB 11 names it
``mariadb_backup_checkpoints``) and the ``xtrabackup_info`` written at the end of ``--backup``; its
``backup_type`` says full or incremental, and ``xtrabackup_binlog_info`` the binary log file and position
it was taken at (where binary-log replay, and so the binlog archive's continuity, starts).

The finish time is the mtime of the file each tool writes last; the size is the directory's.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
from dataclasses import dataclass

from dbwatch.collectors.backup_sources import SourceError, static_prefix
from dbwatch.model.facts.backup import BackupEntry

__all__ = ["DirBackup", "MARIABACKUP_FILES", "binlog_position", "dump_binlog_position", "scan_basebackups",
           "scan_mariabackups"]

_LSN = re.compile(r"([0-9A-Fa-f]+)/([0-9A-Fa-f]+)")
_CHANGE_MASTER = re.compile(r"CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*"
                            r"(?:MASTER|SOURCE)_LOG_POS=(\d+)")
HEAD_BYTES = 64 * 1024  # a dump's CHANGE MASTER line is in its header
MARIABACKUP_FILES = {"checkpoints": ("xtrabackup_checkpoints", "mariadb_backup_checkpoints"),
                     "info": ("xtrabackup_info", "mariadb_backup_info"),
                     "binlog": ("xtrabackup_binlog_info", "mariadb_backup_binlog_info")}


@dataclass(frozen=True, slots=True)
class DirBackup:
    entry: BackupEntry
    start: str | None  # pg_basebackup: its first WAL segment; mariabackup: its binary log file
    position: int | None = None  # mariabackup: the position in that binary log
    problem: str | None = None  # why it is not usable (entry.ok False)


def scan_basebackups(pattern: str) -> list[DirBackup]:
    return [_basebackup(path) for path in _directories(pattern)]


def scan_mariabackups(pattern: str) -> list[DirBackup]:
    return [_mariabackup(path) for path in _directories(pattern)]


def _directories(pattern: str) -> list[str]:
    base = static_prefix(pattern)
    if not os.path.isdir(base):
        raise SourceError(f"directory {base} does not exist")
    if not os.access(base, os.R_OK | os.X_OK):
        raise SourceError(f"directory {base} is not readable by this user")
    return sorted(p for p in glob.iglob(pattern) if os.path.isdir(p) and not os.path.islink(p))


def _basebackup(path: str) -> DirBackup:
    manifest = os.path.join(path, "backup_manifest")
    try:
        finished = os.stat(manifest).st_mtime
    except OSError:
        return _failed(path, "no backup_manifest (unfinished, failed, or taken with --no-manifest)")
    try:
        with open(manifest, encoding="utf-8") as fh:
            ranges = json.load(fh)["WAL-Ranges"]
        first = ranges[0]
        match = _LSN.fullmatch(str(first["Start-LSN"]))
        timeline = int(first["Timeline"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return _failed(path, "backup_manifest is unreadable or has no WAL-Ranges")
    if match is None:
        return _failed(path, "backup_manifest has an unreadable Start-LSN")
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    start = f"{timeline:08X}{high:08X}{low >> 24:08X}"
    return DirBackup(BackupEntry(path, "full", finished, True, float(_size(path))), start)


def _mariabackup(path: str) -> DirBackup:
    checkpoints = _first_file(path, "checkpoints")
    info = _first_file(path, "info")
    if checkpoints is None or info is None:
        return _failed(path, "no xtrabackup_checkpoints/xtrabackup_info (unfinished or failed --backup)")
    try:
        with open(checkpoints, encoding="utf-8") as fh:
            values = {key.strip(): value.strip() for key, _, value in (line.partition("=") for line in fh)}
        finished = os.stat(info).st_mtime
    except OSError as exc:
        return _failed(path, f"cannot read {os.path.basename(checkpoints)}: {exc.strerror}")
    kind = values.get("backup_type", "")
    type_ = "incr" if kind == "incremental" else "full"
    position = binlog_position(path)
    return DirBackup(BackupEntry(path, type_, finished, True, float(_size(path))),
                     position[0] if position else None, position[1] if position else None)


def binlog_position(path: str) -> tuple[str, int] | None:
    """The binary log file and position a mariabackup directory was taken at (None: the binlog was off)."""
    found = _first_file(path, "binlog")
    if found is None:
        return None
    try:
        with open(found, encoding="utf-8") as fh:
            fields = fh.read().split()
    except OSError:
        return None
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    return fields[0], int(fields[1])


def dump_binlog_position(path: str) -> tuple[str, int] | None:
    """The binary log file and position a mariadb-dump/mysqldump file was taken at: its ``CHANGE MASTER TO``
    line (``--master-data``/``--source-data``), plain or gzip-compressed; None without one."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(HEAD_BYTES).decode(errors="replace")
    except (OSError, EOFError):
        return None
    found = _CHANGE_MASTER.search(head)
    return (found.group(1), int(found.group(2))) if found else None


def _first_file(path: str, what: str) -> str | None:
    for name in MARIABACKUP_FILES[what]:
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _failed(path: str, problem: str) -> DirBackup:
    try:
        at = os.stat(path).st_mtime
    except OSError:
        at = 0.0
    return DirBackup(BackupEntry(path, "full", at, False, None), None, None, problem)


def _size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total
