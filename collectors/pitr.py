"""The point-in-time recovery window of a pgBackRest stanza, and gaps in its WAL archive.

The earliest point a target can be recovered to is the end of its oldest good backup; the latest is when
the newest WAL segment reached the archive (the time pgBackRest's ``repo-ls`` reports for its file: any
repository type, S3 included). Between the first segment the oldest good backup needs and the newest
segment archived, every segment must be there: one missing breaks every recovery that has to replay past
it. The archive is listed with ``pgbackrest repo-ls --recurse archive/STANZA/ID`` (names and times only;
nothing is read or checksummed, unlike ``pgbackrest verify``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from dbwatch.collectors.backup_sources import SourceError, SourceResult, default_command, run_command
from dbwatch.model import BackupSpec

__all__ = ["ArchiveWindow", "MAX_LISTED", "missing_segments", "read_window"]

MAX_LISTED = 10  # missing segments named in the facts; the metric counts all of them
_SEGMENT = re.compile(r"(?:^|/)([0-9A-F]{24})-[0-9a-f]+(?:\.[a-z0-9]+)?$")
SEGMENTS_PER_LOG = 0x100  # 16 MiB segments: 256 per 4 GiB "log" (the middle 8 hex digits)


@dataclass(frozen=True, slots=True)
class ArchiveWindow:
    earliest: float | None  # Unix time: the end of the oldest good backup
    latest: float | None  # Unix time: when the newest segment was archived (else the newest backup's end)
    missing: int  # segments missing between the oldest backup's first segment and the newest archived
    first_missing: tuple[str, ...]  # the first of them, by name


async def read_window(spec: BackupSpec, result: SourceResult) -> ArchiveWindow:
    """List the stanza's archive and compute its window; SourceError when it cannot be listed."""
    good = [e for e in result.entries if e.ok]
    earliest = min((e.finished_at for e in good), default=None)
    newest_backup = max((e.finished_at for e in good), default=None)
    if spec.command or not result.archive_id or not spec.stanza:
        return ArchiveWindow(earliest, newest_backup, 0, ())  # a custom command: no repository to list
    argv = [*default_command(spec)[:-1], "repo-ls", "--recurse", f"archive/{spec.stanza}/{result.archive_id}"]
    out = await run_command(argv, spec.timeout)
    try:
        listing = json.loads(out)
    except ValueError:
        raise SourceError("pgbackrest repo-ls printed something that is not JSON") from None
    if not isinstance(listing, dict):
        raise SourceError("unexpected output: pgbackrest repo-ls --output=json should print an object")
    segments: dict[str, float] = {}
    for name, entry in listing.items():
        match = _SEGMENT.search(name)
        if match and isinstance(entry, dict) and entry.get("type") == "file":
            segments[match.group(1)] = float(entry.get("time") or 0)
    latest = max(segments.values(), default=None)
    if newest_backup is not None and (latest is None or newest_backup > latest):
        latest = newest_backup
    missing = missing_segments(set(segments), result.oldest_backup_wal, max(segments, default=None))
    return ArchiveWindow(earliest, latest, len(missing), tuple(missing[:MAX_LISTED]))


def missing_segments(present: set[str], first: str | None, last: str | None) -> list[str]:
    """The segment positions from ``first`` to ``last`` with no segment of any timeline in ``present``,
    named on ``last``'s timeline. A timeline switch keeps positions continuous, so it is no gap."""
    if not first or not last or first[8:] > last[8:]:
        return []
    have = {_position(name) for name in present}
    timeline = last[:8]
    return [_name(timeline, position) for position in range(_position(first), _position(last) + 1)
            if position not in have]


def _position(name: str) -> int:
    return int(name[8:16], 16) * SEGMENTS_PER_LOG + int(name[16:24], 16)


def _name(timeline: str, position: int) -> str:
    log, segment = divmod(position, SEGMENTS_PER_LOG)
    return f"{timeline}{log:08X}{segment:08X}"
