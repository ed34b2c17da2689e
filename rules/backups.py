"""Backup freshness: is the newest good backup, the WAL archive and Redis' last save within its RPO?

Written in Python rather than as threshold rules because each compares a *timestamp* with the rule's own
clock (``view.now``): a backup read at 09:00 is older at 15:00 although no collection ran in between, and
the age must keep growing while a source cannot be read. Each needs a guard a threshold cannot express:

- ``BackupTooOld``: per configured source (facts of the backup collector), ``now - newest good backup``
  over the source's ``rpo``; also when a readable source holds no good backup at all.
- ``WalArchiveTooOld``: the last WAL segment archived more than :data:`WAL_RPO` ago *while rows were
  written since* (pg_stat_database's inserted/updated/deleted rose): an idle server switches no segment,
  so an old archive alone is no risk. Primaries only; a server that never archived (archive_mode off) has
  no ``last_archived_time`` and is not judged.
- ``RedisPersistenceStale``: writes wait unsaved longer than the server's own ``save`` schedule says they
  should (the first rule of the schedule that the pending changes satisfy, doubled, at least 5 min more).
"""

from __future__ import annotations

from typing import Any, Iterable

from dbwatch.model import Finding, FindingKind, Severity, Snapshot
from dbwatch.model.facts.backup import BackupStatuses
from dbwatch.model.facts.postgres import Archiver, ServerInfo
from dbwatch.model.facts.redis import RedisInfo
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["BackupTooOld", "RedisPersistenceStale", "WAL_RPO", "WalArchiveTooOld", "backup_rules"]

WAL_RPO = 300.0  # seconds: the default recovery point objective of WAL archiving
REDIS_MIN_SLACK = 300.0
_WRITE_COUNTERS = ("pg_stat_database_tup_inserted", "pg_stat_database_tup_updated", "pg_stat_database_tup_deleted")


def backup_rules(config: RulesConfig) -> list[PythonRule]:
    return [BackupTooOld(), WalArchiveTooOld(), RedisPersistenceStale()]


class BackupTooOld:
    name = "BackupTooOld"
    engines: tuple[str, ...] = ()
    for_ = 0.0
    keep_firing_for = 0.0

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        statuses = view.fact(BackupStatuses) or ()
        for status in statuses:
            newest = status.newest_success
            if newest is None:
                if not status.up:
                    continue  # never read: BackupSourceFailing says so
                yield _alert(self.name, view, Severity.CRITICAL, {"source": status.source},
                             f"{status.source} on {view.target} holds no good backup",
                             f"The backup source {status.source} ({status.kind}) was read, and lists no completed, "
                             f"usable backup ({status.failed_backups} failed). Take a backup now.",
                             None, {"rpo_seconds": status.rpo_seconds, "failed_backups": status.failed_backups})
                continue
            age = view.now - newest
            if age <= status.rpo_seconds:
                continue
            label = status.newest[0].label if status.newest else ""
            stale = " (the source cannot be read now: its last good read is used)" if status.stale else ""
            yield _alert(self.name, view, Severity.CRITICAL, {"source": status.source},
                         f"The newest good backup of {view.target} in {status.source} is {_human(age)} old",
                         f"The newest good backup ({label}) in {status.source} ({status.kind}) finished "
                         f"{_human(age)} ago; the RPO is {_human(status.rpo_seconds)}{stale}. Check the backup "
                         "job's schedule and its log.",
                         age, {"age_seconds": round(age, 1), "rpo_seconds": status.rpo_seconds,
                               "newest_backup": label, "finished_at": newest, "source_up": status.up,
                               "last_success_by_type": dict(status.last_success)})


class WalArchiveTooOld:
    name = "WalArchiveTooOld"
    engines = ("postgres",)
    for_ = 0.0
    keep_firing_for = 0.0

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        snapshot = view.need_snapshot(Archiver)
        archiver, server = snapshot.need(Archiver), snapshot.need(ServerInfo)
        if archiver.last_archive_age is None or server.in_recovery:
            return
        archived_at = snapshot.started_at - archiver.last_archive_age
        age = view.now - archived_at
        if age <= WAL_RPO:
            return
        written = _rows_written_since(view.history(snapshot.collector), archived_at, snapshot)
        if not written:
            return  # nothing written in between: an idle server has nothing to archive
        failing = " The archiver is failing: see ArchivingFailing and the server log." if archiver.failing else ""
        yield _alert(self.name, view, Severity.CRITICAL, {},
                     f"WAL of {view.target} was last archived {_human(age)} ago while rows are being written",
                     f"The last WAL segment was archived {_human(age)} ago and {written:g} rows were written since "
                     f"(as far as the agent's history reaches); the RPO of WAL archiving is {_human(WAL_RPO)}. "
                     "Either archive_command hangs or is slow, or no segment fills: set archive_timeout "
                     f"(at most {_human(WAL_RPO)}) so a partly filled segment is archived in time.{failing}",
                     age, {"age_seconds": round(age, 1), "rpo_seconds": WAL_RPO, "rows_written": written,
                           "archived_count": archiver.archived_count, "failed_count": archiver.failed_count})


class RedisPersistenceStale:
    name = "RedisPersistenceStale"
    engines = ("redis",)
    for_ = 0.0
    keep_firing_for = 0.0

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        snapshot = view.need_snapshot(RedisInfo)
        info = snapshot.need(RedisInfo)
        if info.rdb_changes_since_last_save <= 0 or info.rdb_bgsave_in_progress:
            return
        due = _save_due(info.rdb_save_schedule, info.rdb_changes_since_last_save)
        if due is None:
            return  # snapshots off (or too few changes for any rule of the schedule): nothing is late
        limit = due + max(REDIS_MIN_SLACK, due)
        age = info.rdb_last_save_age_seconds + max(0.0, view.now - snapshot.started_at)
        if age <= limit:
            return
        status = "the last BGSAVE failed" if not info.rdb_last_bgsave_ok else "the last BGSAVE succeeded"
        yield _alert(self.name, view, Severity.WARNING, {},
                     f"{view.target} has {info.rdb_changes_since_last_save} unsaved writes, last saved {_human(age)} ago",
                     f"The save schedule ({info.rdb_save_schedule!r}) should have written a snapshot within "
                     f"{_human(due)} of these {info.rdb_changes_since_last_save} changes, but the last save was "
                     f"{_human(age)} ago ({status}). A restart now loses these writes. Look at the Redis log "
                     "(fork failures, a full disk, a read-only dump directory).",
                     age, {"age_seconds": round(age, 1), "limit_seconds": limit,
                           "changes_since_last_save": info.rdb_changes_since_last_save,
                           "last_bgsave_ok": info.rdb_last_bgsave_ok})


# -- helpers --------------------------------------------------------------------------------------


def _rows_written(snapshot: Snapshot) -> float | None:
    total, seen = 0.0, False
    for name in _WRITE_COUNTERS:
        family = snapshot.family(name)
        if family is not None:
            seen = True
            total += sum(value for _, value in family.samples)
    return total if seen else None


def _rows_written_since(history: list[Snapshot], since: float, newest: Snapshot) -> float:
    """Rows written between the newest collection at or before ``since`` (else the oldest one kept) and
    ``newest``; 0 when that cannot be told (one collection, or counters reset by a restart)."""
    ok = [s for s in history if s.ok and s is not newest and s.started_at < newest.started_at]
    if not ok:
        return 0.0
    before = [s for s in ok if s.started_at <= since]
    base = before[-1] if before else ok[0]
    start, end = _rows_written(base), _rows_written(newest)
    if start is None or end is None or end < start:
        return 0.0
    return end - start


def _save_due(schedule: str | None, changes: int) -> float | None:
    """Seconds after the last save by which Redis' ``save`` schedule ("3600 1 300 100 ...") saves
    ``changes`` pending changes; None when snapshots are off or no rule applies yet."""
    if schedule is None:
        schedule = "3600 1 300 100 60 10000"  # CONFIG unavailable: Redis' default
    numbers = schedule.split()
    if len(numbers) % 2 or not all(n.isdigit() for n in numbers):
        return None
    pairs = [(float(numbers[i]), int(numbers[i + 1])) for i in range(0, len(numbers), 2)]
    due = [seconds for seconds, needed in pairs if changes >= needed]
    return min(due) if due else None


def _alert(rule: str, view: TargetView, severity: Severity, labels: dict[str, str], summary: str,
           description: str, value: float | None, evidence: dict[str, Any]) -> Finding:
    return Finding(rule=rule, target=view.target, kind=FindingKind.ALERT, severity=severity, summary=summary,
                   description=description, labels={**view.labels, **labels}, evidence=evidence, value=value)


def _human(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return " ".join(parts[:2]) or "0s"
