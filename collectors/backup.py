"""The backup collector: when did each configured backup source last have a good backup?

Runs on any engine whose target lists ``backups:`` (see agent/backupconfig.py). Every source is read on
its own, concurrently, with its own timeout (:mod:`backup_sources`); a source that fails, hangs or prints
garbage is ``dbwatch_backup_source_up{source} 0`` with the error in a note and in the facts, and never
stops the other sources or the target's other collectors. A failing source keeps exporting the
timestamps it last read, so its backups keep ageing (and ``BackupTooOld`` can still fire) while it fails.

Facts: :class:`~dbwatch.model.facts.backup.BackupStatuses`, one :class:`BackupSourceStatus` per configured source.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from dbwatch.model import BackupSpec, MetricFamily, Snapshot, Target, gauge
from dbwatch.collectors.backup_sources import SourceError, SourceResult, read_source
from dbwatch.collectors.backup_verify import Verifier, VerifyOutcome
from dbwatch.collectors.base import Collector, Session
from dbwatch.collectors.pitr import MAX_LISTED, ArchiveWindow, read_window
from dbwatch.collectors.pitr_barman import read_barman
from dbwatch.collectors.pitr_dirs import read_dir_window
from dbwatch.model.options import CollectorOptions
from dbwatch.model.facts.backup import ANY_TYPE, BackupEntry, BackupSourceStatus, BackupStatuses
from dbwatch.model.facts.common import Summary

__all__ = ["BackupCollector"]

KEPT_ENTRIES = 20  # newest backups kept in the facts per source


class BackupCollector(Collector[Session, CollectorOptions]):
    name = "backup"
    options_model = CollectorOptions

    def __init__(self, target: Target, session: Session) -> None:
        super().__init__(target, session)
        self._last_good: dict[str, BackupSourceStatus] = {}
        self._checks: dict[str, tuple[str, ...]] = {}  # barman check: the failing checks of each source
        self._verifiers = {s.name: Verifier(s) for s in target.backups
                           if s.type == "pgbackrest" and s.verify_every and not s.command}

    async def collect(self, snapshot: Snapshot) -> None:
        for verifier in self._verifiers.values():
            verifier.tick()
        statuses = await asyncio.gather(*(self._read(spec) for spec in self.target.backups))
        verified = {name: v.last for name, v in self._verifiers.items() if v.last is not None}
        snapshot.families.extend(_families(statuses, _windowed(self.target.backups), verified))
        checks = gauge("dbwatch_backup_check_failures",
                       "Barman: the checks `barman check` reports FAILED for the source's server.", ("source",))
        for name, failing in sorted(self._checks.items()):
            checks.add((name,), len(failing))
            if failing:
                snapshot.notes.append(f"backup source {name}: barman check: {'; '.join(failing)}")
        snapshot.families.append(checks)
        for name, outcome in sorted(verified.items()):
            if outcome.error:
                snapshot.notes.append(f"backup source {name}: pgbackrest verify failed: {outcome.error}")
            elif outcome.invalid_backup_files:
                snapshot.notes.append(f"backup source {name}: pgbackrest verify found {outcome.invalid_backup_files} "
                                      f"invalid file(s) in backup(s) {', '.join(outcome.bad_backups)}")
        snapshot.put(BackupStatuses(tuple(statuses)), Summary({f"backup {s.source}": _summary(s) for s in statuses}))
        for status in statuses:
            if status.error:
                snapshot.notes.append(f"backup source {status.source}: {status.error}")
            if status.archive_error:
                snapshot.notes.append(f"backup source {status.source}: {status.archive_error}")
            if status.wal_missing:
                what = "binary log(s)" if status.kind == "mariabackup" else "WAL segment(s)"
                snapshot.notes.append(f"backup source {status.source}: {status.wal_missing} {what} missing "
                                      f"from the archive or invalid, first: {', '.join(status.wal_missing_first)}")

    def failed_families(self) -> list[MetricFamily]:
        # The whole collection failed (timed out): every source is down, never silently absent.
        up = _up_family()
        for spec in self.target.backups:
            up.add((spec.name,), 0)
        return [up]

    async def _read(self, spec: BackupSpec) -> BackupSourceStatus:
        checked_at = time.time()
        try:
            result = await read_source(spec)
        except (SourceError, TimeoutError, OSError) as exc:
            error = str(exc) if not isinstance(exc, TimeoutError) else f"timed out after {spec.timeout:g}s"
            previous = self._last_good.get(spec.name)
            if previous is None:
                return BackupSourceStatus(spec.name, spec.type, False, checked_at, spec.rpo, error=error)
            return replace(previous, up=False, checked_at=checked_at, error=error, stale=True)
        good = sorted((e for e in result.entries if e.ok), key=lambda e: e.finished_at, reverse=True)
        last: dict[str, float] = {}
        counts: dict[str, int] = {}
        for entry in good:
            last.setdefault(entry.type, entry.finished_at)
            counts[entry.type] = counts.get(entry.type, 0) + 1
        if good:
            last[ANY_TYPE] = good[0].finished_at
        window, archive_error = None, None
        if spec.name in _windowed((spec,)):
            try:
                window = await self._window(spec, result)
            except (SourceError, TimeoutError, OSError) as exc:
                archive_error = f"listing the {'binary logs' if spec.type == 'mariabackup' else 'WAL archive'}: {exc}"
            verifier = self._verifiers.get(spec.name)
            if window is not None and verifier is not None and verifier.last is not None:
                window = _with_verify(window, verifier.last)
        status = BackupSourceStatus(
            spec.name, spec.type, True, checked_at, spec.rpo, last_success=last, counts=counts,
            failed_backups=sum(1 for e in result.entries if not e.ok), newest=tuple(good[:KEPT_ENTRIES]),
            wal_min=result.wal_min, wal_max=result.wal_max, archive_error=archive_error,
            pitr_earliest=window.earliest if window else None, pitr_latest=window.latest if window else None,
            wal_missing=window.missing if window else 0, wal_missing_first=window.first_missing if window else (),
        )
        self._last_good[spec.name] = status
        return status

    async def _window(self, spec: BackupSpec, result: SourceResult) -> ArchiveWindow | None:
        if spec.type == "pgbackrest":
            return await read_window(spec, result)
        if spec.type == "barman":
            state = await read_barman(spec, result)
            self._checks[spec.name] = state.failing_checks if state else ()
            return state.window if state else None
        return await read_dir_window(spec, result)


def _summary(status: BackupSourceStatus) -> str:
    if not status.up:
        return f"unreadable ({status.error})"
    newest = status.newest_success
    if newest is None:
        return "no good backup"
    return f"newest {round((status.checked_at - newest) / 3600, 1)} h old (rpo {round(status.rpo_seconds / 3600, 1)} h)"


def _up_family() -> MetricFamily:
    return gauge("dbwatch_backup_source_up",
                 "Whether the backup source could be read (1 = yes; 0: its command failed, hung or printed "
                 "something unreadable).", ("source",))


def _with_verify(window: ArchiveWindow, outcome: VerifyOutcome) -> ArchiveWindow:
    """The listing's missing segments and the ones verify found invalid, together."""
    if not outcome.invalid_wal:
        return window
    names = sorted({*window.first_missing, *outcome.bad_wal})[:MAX_LISTED]
    return replace(window, missing=window.missing + outcome.invalid_wal, first_missing=tuple(names))


def _windowed(specs: tuple[BackupSpec, ...]) -> set[str]:
    """The sources with an archive whose continuity is checked (so a 0 means "no gap", not "not looked")."""
    return {s.name for s in specs if s.type == "pgbackrest" or s.archive
            or (s.type == "barman" and not s.command and s.server not in (None, "all"))}


def _families(statuses: list[BackupSourceStatus], windowed: set[str],
              verified: dict[str, VerifyOutcome]) -> list[MetricFamily]:
    up = _up_family()
    last = gauge("dbwatch_backup_last_success_timestamp_seconds",
                 "When the newest good backup of this source and type finished (Unix time; type=\"any\": of any type).",
                 ("source", "type"))
    age = gauge("dbwatch_backup_age_seconds",
                "Age of the newest good backup of this source and type when the source was read.", ("source", "type"))
    rpo = gauge("dbwatch_backup_rpo_seconds",
                "The configured recovery point objective: how old the newest good backup may get.", ("source", "type"))
    count = gauge("dbwatch_backup_count", "Good backups the source lists, by type.", ("source", "type"))
    failed = gauge("dbwatch_backup_failed_count", "Backups the source lists as failed or unusable.", ("source",))
    earliest = gauge("dbwatch_pitr_earliest_timestamp_seconds",
                     "The earliest point the target can be recovered to: the end of the oldest good backup (Unix time).",
                     ("source",))
    latest = gauge("dbwatch_pitr_latest_timestamp_seconds",
                   "The latest point the target can be recovered to: when the newest WAL segment was archived (Unix time).",
                   ("source",))
    missing = gauge("dbwatch_wal_archive_missing_segments",
                    "WAL segments (mariabackup: binary logs) missing from the archive, or found invalid by "
                    "pgbackrest verify, between the oldest good backup and the newest one archived.",
                    ("source",))
    for status in statuses:
        if status.pitr_earliest is not None and not status.stale:
            earliest.add((status.source,), status.pitr_earliest)
        if status.pitr_latest is not None and not status.stale:
            latest.add((status.source,), status.pitr_latest)
        if status.source in windowed and status.up and not status.archive_error:
            missing.add((status.source,), status.wal_missing)
        up.add((status.source,), int(status.up))
        rpo.add((status.source, ANY_TYPE), status.rpo_seconds)
        for kind, at in sorted(status.last_success.items()):
            last.add((status.source, kind), at)
            age.add((status.source, kind), max(0.0, status.checked_at - at))
        if not status.stale:
            failed.add((status.source,), status.failed_backups)
            for kind, number in sorted(status.counts.items()):
                count.add((status.source, kind), number)
    verify_last = gauge("dbwatch_backup_verify_last_run_timestamp_seconds",
                        "pgBackRest: when the last `pgbackrest verify` finished (Unix time).", ("source",))
    verify_ok = gauge("dbwatch_backup_verify_success",
                      "pgBackRest: whether the last verify ran and found every file valid (1) or not (0).", ("source",))
    invalid = gauge("dbwatch_backup_verify_invalid_files",
                    "pgBackRest: files the last verify found invalid (checksum, size, unreadable), by kind (wal, backup).",
                    ("source", "kind"))
    for name, outcome in sorted(verified.items()):
        verify_last.add((name,), outcome.finished_at)
        verify_ok.add((name,), int(outcome.ok))
        if outcome.error is None:
            invalid.add((name, "wal"), outcome.invalid_wal)
            invalid.add((name, "backup"), outcome.invalid_backup_files)
    return [up, last, age, rpo, count, failed, earliest, latest, missing, verify_last, verify_ok, invalid]
