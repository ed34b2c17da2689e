"""Reading one backup source: run its command (argv, never a shell, with a timeout) or scan its files, and
parse what it says into :class:`BackupEntry` rows.

Each reader returns the good backups it found or raises :class:`SourceError` with a message fit for a
user (the command's exit status and the tail of its stderr; what was wrong with its output). The shapes
parsed are the documented JSON of ``pgbackrest info --output=json``, ``barman -f json list-backups SERVER``
and ``wal-g backup-list --json --detail``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import json
import os
import signal
import stat
from dataclasses import dataclass
from typing import IO, Any

from dbwatch.model import BackupSpec
from dbwatch.model.facts.backup import BackupEntry

__all__ = ["SourceError", "SourceResult", "barman_base", "default_command", "read_source", "run_command", "static_prefix"]

MAX_OUTPUT = 32 * 1024 * 1024  # bytes of stdout read from a command; more is an error, not a memory leak
STDERR_TAIL = 300  # characters of stderr kept in an error message


class SourceError(Exception):
    """The source could not be read: the command failed, hung or printed something unreadable."""


@dataclass(frozen=True, slots=True)
class SourceResult:
    entries: list[BackupEntry]
    wal_min: str | None = None  # pgBackRest: the oldest and newest WAL segment in the archive
    wal_max: str | None = None
    archive_id: str | None = None  # pgBackRest: the newest archive id ("15-1"), the archive's folder in the repo
    oldest_backup_wal: str | None = None  # pgBackRest: the first WAL segment the oldest good backup needs


def default_command(spec: BackupSpec) -> list[str]:
    """The argv a source of this type runs when ``command`` is not configured."""
    if spec.command:
        return list(spec.command)
    if spec.type == "pgbackrest":
        argv = ["pgbackrest", "--output=json", "--log-level-console=error", "--log-level-file=off"]
        if spec.stanza:
            argv.append(f"--stanza={spec.stanza}")
        if spec.config:
            argv.append(f"--config={spec.config}")
        if spec.repo:
            argv.append(f"--repo={spec.repo}")
        return [*argv, "info"]
    if spec.type == "barman":
        return [*barman_base(spec), "-f", "json", "list-backups", spec.server or "all"]
    if spec.type == "walg":
        return ["wal-g", *(["--config", spec.config] if spec.config else []), "backup-list", "--json", "--detail"]
    raise ValueError(f"{spec.type} sources run no command")


def barman_base(spec: BackupSpec) -> list[str]:
    return ["barman", *(["-c", spec.config] if spec.config else [])]


async def read_source(spec: BackupSpec) -> SourceResult:
    if spec.type == "files":
        entries = await asyncio.wait_for(asyncio.to_thread(_scan_files, spec.path or ""), spec.timeout)
        if not spec.archive:
            return SourceResult(entries)
        from dbwatch.collectors import backup_dirs  # it imports this module
        dumps = sorted((e for e in entries if e.ok), key=lambda e: e.finished_at)
        position = await asyncio.to_thread(backup_dirs.dump_binlog_position, dumps[0].label) if dumps else None
        return SourceResult(entries, oldest_backup_wal=position[0] if position else None)
    if spec.type in ("pg_basebackup", "mariabackup"):
        from dbwatch.collectors import backup_dirs  # it imports this module
        scan = backup_dirs.scan_basebackups if spec.type == "pg_basebackup" else backup_dirs.scan_mariabackups
        found = await asyncio.wait_for(asyncio.to_thread(scan, spec.path or ""), spec.timeout)
        good = sorted((d for d in found if d.entry.ok), key=lambda d: d.entry.finished_at)
        return SourceResult([d.entry for d in found], oldest_backup_wal=good[0].start if good else None)
    out = await run_command(default_command(spec), spec.timeout, _environment(spec))
    data = _json(out, spec)
    if spec.type == "pgbackrest":
        return _pgbackrest(data, spec.stanza)
    if spec.type == "barman":
        return SourceResult(_barman(data, spec.server))
    return SourceResult(_walg(data))


async def run_command(argv: list[str], timeout: float, env: dict[str, str] | None = None,
                      stdin: IO[bytes] | None = None, ok_codes: tuple[int, ...] = (0,),
                      stderr_tail: int = STDERR_TAIL) -> bytes:
    """Run ``argv`` in its own process group (``stdin``: an open file it reads, else nothing); its stdout, or
    SourceError. On a timeout (or when the collection is cancelled) the whole group is killed, so a hung
    command leaves nothing behind."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
        )
    except OSError as exc:
        raise SourceError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = await asyncio.wait_for(_read_all(proc), timeout)
        code = await proc.wait()
    except TimeoutError:
        raise SourceError(f"{argv[0]} did not finish within {timeout:g}s (killed)") from None
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                pass
    if code not in ok_codes:
        said = stderr.decode(errors="replace").strip() or stdout.decode(errors="replace").strip()
        tail = said[-stderr_tail:] or "no output"
        raise SourceError(f"{argv[0]} exited with status {code}: {tail}")
    return stdout


async def _read_all(proc: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None

    async def bounded(stream: asyncio.StreamReader) -> bytes:
        chunks, size = [], 0
        while chunk := await stream.read(65536):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SourceError(f"printed more than {MAX_OUTPUT // (1024 * 1024)} MiB")
            chunks.append(chunk)
        return b"".join(chunks)

    stdout, stderr = await asyncio.gather(bounded(proc.stdout), bounded(proc.stderr))
    return stdout, stderr


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _environment(spec: BackupSpec) -> dict[str, str] | None:
    if not spec.env_file:
        return None
    env = dict(os.environ)
    try:
        with open(spec.env_file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                key, sep, value = line.removeprefix("export ").partition("=")
                if not sep or not key.strip():
                    raise SourceError(f"env_file {spec.env_file} line {number}: expected KEY=VALUE")
                env[key.strip()] = value.strip().strip("'\"")
    except OSError as exc:
        raise SourceError(f"cannot read env_file {spec.env_file}: {exc.strerror}") from None
    return env


def _json(out: bytes, spec: BackupSpec) -> Any:
    try:
        return json.loads(out)
    except (ValueError, UnicodeDecodeError):
        text = out.decode(errors="replace").strip()
        shown = (text[:80] + "...") if len(text) > 80 else text
        raise SourceError(f"{spec.type} printed something that is not JSON: {shown!r}") from None


def _shape(ok: bool, what: str) -> None:
    if not ok:
        raise SourceError(f"unexpected output: {what}")


# -- pgBackRest -----------------------------------------------------------------------------------

# pgBackRest's stanza status codes: 0 ok, 2 "no valid backups" (a source that works, with nothing in it).
_PGBACKREST_READABLE = {0, 2}


def _pgbackrest(data: Any, stanza: str | None) -> SourceResult:
    _shape(isinstance(data, list), "pgbackrest info should print a JSON list of stanzas")
    stanzas = [s for s in data if isinstance(s, dict) and (stanza is None or s.get("name") == stanza)]
    if not stanzas:
        raise SourceError(f"pgbackrest info lists no stanza {stanza!r}" if stanza else "pgbackrest info lists no stanza")
    entries: list[BackupEntry] = []
    wal_min = wal_max = archive_id = oldest_wal = None
    for item in stanzas:
        status = item.get("status") or {}
        code = status.get("code")
        if code not in _PGBACKREST_READABLE:
            raise SourceError(f"stanza {item.get('name')}: {status.get('message', 'unknown status')} (code {code})")
        for backup in item.get("backup") or []:
            try:
                stop = float(backup["timestamp"]["stop"])
                kind = str(backup["type"])
            except (KeyError, TypeError, ValueError):
                raise SourceError("unexpected output: a backup without type or timestamp.stop") from None
            size = (backup.get("info") or {}).get("size")
            entries.append(BackupEntry(str(backup.get("label", "")), kind, stop, not backup.get("error", False),
                                       float(size) if isinstance(size, (int, float)) else None))
        archives = [a for a in item.get("archive") or [] if isinstance(a, dict)]
        if archives:
            wal_min = min((a["min"] for a in archives if a.get("min")), default=None)
            wal_max = max((a["max"] for a in archives if a.get("max")), default=None)
            archive_id = str(archives[-1].get("id") or "") or None
        starts = [((b.get("timestamp") or {}).get("stop", 0), (b.get("archive") or {}).get("start"))
                  for b in item.get("backup") or [] if isinstance(b, dict) and not b.get("error", False)]
        starts = [s for s in starts if isinstance(s[1], str)]
        if starts:
            oldest_wal = min(starts)[1]
    return SourceResult(entries, wal_min, wal_max, archive_id, oldest_wal)


# -- Barman ---------------------------------------------------------------------------------------


def _barman(data: Any, server: str | None) -> list[BackupEntry]:
    _shape(isinstance(data, dict), "barman -f json list-backups should print a JSON object of servers")
    if server is not None and server != "all":
        _shape(server in data, f"barman lists no server {server!r}")
        lists = [data[server]]
    else:
        lists = list(data.values())
    entries = []
    for backups in lists:
        _shape(isinstance(backups, list), "each server should map to a list of backups")
        for backup in backups:
            if not isinstance(backup, dict) or backup.get("status") not in ("DONE", "FAILED"):
                continue  # STARTED, WAITING_FOR_WALS, EMPTY, SYNCING: not a finished backup yet
            ok = backup["status"] == "DONE"
            try:
                end = float(backup["end_time_timestamp"]) if ok else 0.0
            except (KeyError, TypeError, ValueError):
                raise SourceError("unexpected output: a DONE backup without end_time_timestamp") from None
            size = backup.get("size_bytes")
            entries.append(BackupEntry(str(backup.get("backup_id", "")), str(backup.get("backup_type") or "full"),
                                       end, ok, float(size) if isinstance(size, (int, float)) else None))
    return entries


# -- WAL-G ----------------------------------------------------------------------------------------


def _walg(data: Any) -> list[BackupEntry]:
    if data is None:
        return []  # `wal-g backup-list --json` prints null when the storage holds no backup
    _shape(isinstance(data, list), "wal-g backup-list --json --detail should print a JSON list of backups")
    entries = []
    for backup in data:
        _shape(isinstance(backup, dict) and "backup_name" in backup, "a backup without backup_name")
        finished = backup.get("finish_time") or backup.get("time")
        try:
            at = _rfc3339(str(finished))
        except ValueError:
            raise SourceError(f"unexpected output: {backup['backup_name']}: no readable finish_time") from None
        name = str(backup["backup_name"])
        size = backup.get("compressed_size")
        entries.append(BackupEntry(name, "delta" if "_D_" in name else "full", at, True,
                                   float(size) if isinstance(size, (int, float)) else None))
    return entries


def _rfc3339(text: str) -> float:
    """WAL-G writes Go's RFC 3339 with up to nanoseconds; Python reads up to microseconds."""
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:min(digits, 6)] + rest[digits:]
        text = f"{head}.{rest}" if rest[:1].isdigit() else head + rest
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


# -- files ----------------------------------------------------------------------------------------


def _scan_files(pattern: str) -> list[BackupEntry]:
    """Every non-empty regular file matching the glob. A missing or unreadable directory is an error
    (a glob silently matches nothing there); a directory without matches is a source with no backup."""
    base = static_prefix(pattern)
    if not os.path.isdir(base):
        raise SourceError(f"directory {base} does not exist")
    if not os.access(base, os.R_OK | os.X_OK):
        raise SourceError(f"directory {base} is not readable by this user")
    entries = []
    for path in glob.iglob(pattern, recursive=True):
        try:
            info = os.stat(path)
        except OSError:
            continue  # removed meanwhile (rotation)
        if stat.S_ISREG(info.st_mode) and info.st_size > 0:
            entries.append(BackupEntry(path, "file", info.st_mtime, True, float(info.st_size)))
    return entries


def static_prefix(pattern: str) -> str:
    parts = pattern.split(os.sep)
    static = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        static.append(part)
    return os.sep.join(static) or (os.sep if pattern.startswith(os.sep) else ".")
