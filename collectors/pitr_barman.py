"""The PITR window, WAL continuity and ``barman check`` of a Barman server (``type: barman``, one ``server``).

Three commands, each with the source's timeout:

- ``barman -f json show-backup SERVER OLDEST``: the first WAL segment the oldest good backup needs
  (``begin_wal``);
- ``barman list-files --target wal SERVER OLDEST``: every WAL file Barman's catalog (``xlog.db``) holds from
  there on. A segment absent from the list is a gap; a listed file that is not on disk (when the agent can
  see Barman's ``wals`` directory, as on the Barman host) was deleted behind Barman's back: a gap too, which
  ``barman check`` does not notice. The newest file's mtime is the latest recoverable point;
- ``barman -f json check SERVER``: its failing checks (exit status 1 when any fails), reported by name and
  hint (``dbwatch_backup_check_failures``).

The earliest recoverable point is the end of the oldest good backup.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from dbwatch.collectors.backup_sources import SourceError, SourceResult, barman_base, run_command
from dbwatch.collectors.pitr import MAX_LISTED, ArchiveWindow, missing_segments
from dbwatch.model import BackupSpec

__all__ = ["BarmanState", "read_barman"]

_WAL = re.compile(r"[0-9A-F]{24}")


@dataclass(frozen=True, slots=True)
class BarmanState:
    window: ArchiveWindow
    failing_checks: tuple[str, ...]  # "name: hint" of each FAILED check of `barman check`


async def read_barman(spec: BackupSpec, result: SourceResult) -> BarmanState | None:
    """The window and checks of the source's server; None for a custom command or ``server: all``."""
    server = spec.server
    if spec.command or not server or server == "all":
        return None
    good = sorted((e for e in result.entries if e.ok), key=lambda e: e.finished_at)
    failing = await _check(spec, server)
    if not good:
        return BarmanState(ArchiveWindow(None, None, 0, ()), failing)
    oldest = good[0].label
    shown = _json(await run_command([*barman_base(spec), "-f", "json", "show-backup", server, oldest], spec.timeout),
                  "show-backup")
    try:
        begin = str(shown[server]["base_backup_information"]["begin_wal"])
    except (KeyError, TypeError):
        raise SourceError("unexpected output: barman show-backup lists no begin_wal") from None
    listed = await run_command([*barman_base(spec), "list-files", "--target", "wal", server, oldest], spec.timeout)
    present, latest = _present(listed.decode(errors="replace").splitlines())
    newest_backup = good[-1].finished_at
    if latest is None or newest_backup > latest:
        latest = newest_backup
    missing = missing_segments(present, begin, max(present | set(_names(listed)), default=None))
    return BarmanState(ArchiveWindow(good[0].finished_at, latest, len(missing), tuple(missing[:MAX_LISTED])), failing)


async def _check(spec: BackupSpec, server: str) -> tuple[str, ...]:
    out = await run_command([*barman_base(spec), "-f", "json", "check", server], spec.timeout, ok_codes=(0, 1))
    data = _json(out, "check")
    checks = data.get(server) if isinstance(data, dict) else None
    if not isinstance(checks, dict):
        raise SourceError(f"unexpected output: barman check lists no server {server!r}")
    return tuple(sorted(f"{name}: {value.get('hint') or 'FAILED'}" for name, value in checks.items()
                        if isinstance(value, dict) and value.get("status") == "FAILED"))


def _present(lines: list[str]) -> tuple[set[str], float | None]:
    """The listed segments that are there (or cannot be looked at), and the newest one's mtime."""
    present: set[str] = set()
    latest = None
    for line in lines:
        path = line.strip()
        name = os.path.basename(path)
        if not _WAL.fullmatch(name):
            continue  # .history, .backup, .partial
        try:
            at = os.stat(path).st_mtime
        except OSError:
            if os.path.isdir(os.path.dirname(path)):
                continue  # Barman lists it, its directory is here, the file is not: deleted
            present.add(name)  # Barman's storage is not visible from here: trust its catalog
            continue
        present.add(name)
        latest = at if latest is None else max(latest, at)
    return present, latest


def _names(listed: bytes) -> list[str]:
    return [n for n in (os.path.basename(line.strip()) for line in listed.decode(errors="replace").splitlines())
            if _WAL.fullmatch(n)]


def _json(out: bytes, what: str) -> Any:
    try:
        return json.loads(out)
    except ValueError:
        raise SourceError(f"barman {what} printed something that is not JSON") from None
