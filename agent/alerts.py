"""The life of an alert: pending → firing (after ``for``) → resolved, kept in SQLite across restarts.

:meth:`AlertTracker.update` takes one target's alert findings from one evaluation. A finding whose
fingerprint (rule + target + labels) is new starts pending; it fires once its condition has held for the
rule's ``for``. A pending alert whose condition stops holding is dropped (nobody was told of it). A
firing alert whose condition stops holding stays firing for the rule's ``keep_firing_for`` (flap
damping), then resolves. Resolved alerts are kept for :data:`RESOLVED_RETENTION` so that the notifier
and ``/api/v1/alerts`` see them, then forgotten.

Each state change is written to SQLite in one transaction before the evaluation returns; after a restart
pending alerts keep their start (``for`` is not restarted), firing alerts keep their ``fired_at`` (so the
notifier, which remembers per fingerprint and ``fired_at`` what it told each receiver, does not notify
them again before their repeat interval) and resolve normally. When the file cannot be written (disk full,
read-only ``state_dir``: agent/statefile.py) the lifecycle goes on in memory, the notifier still hears of
every change, and the changes not yet written are written at the first evaluation after it recovers.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from dbwatch.agent.statefile import StateFile
from dbwatch.model import Alert, AlertState, Finding, FindingKind, MetricFamily, gauge

__all__ = ["AlertTracker", "RESOLVED_RETENTION"]

RESOLVED_RETENTION = 900.0
#: how far ``last_seen`` may run ahead of its stored copy (it only matters for ``keep_firing_for``)
LAST_SEEN_SLACK = 10.0
EXPIRE_EVERY = 60.0

Durations = Callable[[str], tuple[float, float]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint  TEXT PRIMARY KEY,
    target       TEXT NOT NULL,
    labels       TEXT NOT NULL,
    annotations  TEXT NOT NULL,
    state        TEXT NOT NULL,
    value        REAL,
    active_since REAL NOT NULL,
    fired_at     REAL,
    resolved_at  REAL,
    last_seen    REAL
)
"""


class AlertTracker:
    def __init__(self, db_path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.state = StateFile(db_path, _SCHEMA, ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"),
                               flush=lambda: self._save([]))
        self._alerts: dict[str, Alert] = {}
        self._by_target: dict[str, set[str]] = {}
        self._stored_last_seen: dict[str, float | None] = {}
        self._unsaved: dict[str, Alert | None] = {}  # changes the file has not taken yet (None: a deletion)
        self._expired_at = float("-inf")
        self._judged_at: dict[str, float] = {}  # each target's latest evaluation (update's now)
        self._metrics_cache: MetricFamily | None = None  # dbwatch_alerts as last given (see metrics())
        rows: list[tuple[Any, ...]] = self.state.read(_load, [])
        for row in rows:
            alert = Alert(row[0], json.loads(row[1]), json.loads(row[2]), AlertState(row[3]), row[4],
                          row[5], row[6], row[7], row[8])
            self._put(alert)
            self._stored_last_seen[alert.fingerprint] = alert.last_seen

    def close(self) -> None:
        self._save([])  # a last try for what a fault kept in memory
        self.state.close()

    # -- the lifecycle ------------------------------------------------------------------------------

    def update(self, target: str, findings: Iterable[Finding], durations: Durations,
               now: float | None = None) -> list[Alert]:
        """Apply one evaluation of ``target``; returns the alerts that changed state."""
        now = self.clock() if now is None else now
        self._judged_at[target] = now
        changed: list[Alert] = []
        dirty: list[Alert] = []
        seen: set[str] = set()
        for finding in findings:
            if finding.kind != FindingKind.ALERT or finding.target != target:
                continue
            fp = finding.fingerprint
            if fp in seen:
                continue
            seen.add(fp)
            hold_for, _ = durations(finding.rule)
            alert = self._alerts.get(fp)
            annotations = {"summary": finding.summary, "description": finding.description}
            if alert is None or alert.state == AlertState.RESOLVED:
                labels = {**finding.labels, "alertname": finding.rule, "severity": str(finding.severity),
                          "target": target}
                alert = Alert(fp, labels, annotations, AlertState.PENDING, finding.value, active_since=now)
                self._put(alert)
                changed.append(alert)
                dirty.append(alert)
            alert.value, alert.annotations = finding.value, annotations
            alert.last_seen = now
            if alert.state == AlertState.PENDING and now - alert.active_since >= hold_for:
                alert.state, alert.fired_at = AlertState.FIRING, now
                if alert not in changed:
                    changed.append(alert)
                    dirty.append(alert)
            elif (alert not in dirty and now - (self._stored_last_seen.get(fp) or 0.0) > LAST_SEEN_SLACK):
                dirty.append(alert)
        for fp in list(self._by_target.get(target, ())):
            alert = self._alerts[fp]
            if fp in seen:
                continue
            if alert.state == AlertState.PENDING:
                self._delete(fp)  # never fired: nobody was told, nothing to resolve
            elif alert.state == AlertState.FIRING:
                _, keep = durations(alert.name)
                if now - (alert.last_seen or alert.fired_at or now) >= keep:
                    self._resolve(alert, now)
                    changed.append(alert)
                    dirty.append(alert)
        self._expire(now)
        self._save(dirty)
        return changed

    def forget_target(self, target: str, now: float | None = None) -> None:
        """The target left the config: its firing alerts resolve, its pending ones go."""
        now = self.clock() if now is None else now
        self._judged_at.pop(target, None)
        dirty = []
        for fp in list(self._by_target.get(target, ())):
            alert = self._alerts[fp]
            if alert.state == AlertState.PENDING:
                self._delete(fp)
            elif alert.state == AlertState.FIRING:
                self._resolve(alert, now)
                dirty.append(alert)
        self._save(dirty)

    def targets(self) -> set[str]:
        """The targets with an alert pending or firing."""
        return {alert.target for alert in self._alerts.values() if alert.state != AlertState.RESOLVED}

    def timed_targets(self) -> set[str]:
        """The targets whose alerts change with the clock alone: one pending (it fires once its ``for`` has
        passed), or firing while its condition no longer held at the latest evaluation (it resolves once its
        ``keep_firing_for`` has passed), or restored from the state file and not judged since. An alert firing
        with its condition still holding changes only with the target's next snapshot: judging it again on a
        timer (a fleet's long-firing alerts, every few seconds) found the same thing each time."""
        judged = self._judged_at
        return {alert.target for alert in self._alerts.values()
                if alert.state == AlertState.PENDING
                or (alert.state == AlertState.FIRING and alert.last_seen != judged.get(alert.target))}

    # -- what the rest of the agent reads ------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """Every pending, firing and recently resolved alert."""
        return list(self._alerts.values())

    def metrics(self) -> list[MetricFamily]:
        """``dbwatch_alerts``: the same object while the counts are the same (/metrics keeps its text)."""
        counts: dict[tuple[str, str, str, str], int] = {}
        for alert in self._alerts.values():
            if alert.state != AlertState.RESOLVED:
                key = (alert.name, alert.severity, str(alert.state), alert.target)
                counts[key] = counts.get(key, 0) + 1
        family = self._metrics_cache
        if family is None or dict(family.samples) != counts:
            family = gauge("dbwatch_alerts", "Alerts by name, severity, state (pending or firing) and target.",
                           ("alertname", "severity", "state", "target"))
            for key in sorted(counts):
                family.add(key, counts[key])
            self._metrics_cache = family
        return [family]

    def as_json(self) -> list[dict[str, Any]]:
        order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2}
        alerts = sorted(self._alerts.values(), key=lambda a: (order[a.state], a.target, a.name, a.fingerprint))
        return [
            {
                "fingerprint": a.fingerprint,
                "state": str(a.state),
                "labels": a.labels,
                "annotations": a.annotations,
                "value": a.value,
                "activeSince": _iso(a.active_since),
                "firedAt": _iso(a.fired_at),
                "resolvedAt": _iso(a.resolved_at),
            }
            for a in alerts
        ]

    # -- storage ------------------------------------------------------------------------------------

    def _resolve(self, alert: Alert, now: float) -> None:
        alert.state, alert.resolved_at = AlertState.RESOLVED, now

    def _put(self, alert: Alert) -> None:
        self._alerts[alert.fingerprint] = alert
        self._by_target.setdefault(alert.target, set()).add(alert.fingerprint)

    def _expire(self, now: float) -> None:
        if now - self._expired_at < EXPIRE_EVERY:
            return
        self._expired_at = now
        for fp, alert in list(self._alerts.items()):
            if alert.state == AlertState.RESOLVED and now - (alert.resolved_at or now) > RESOLVED_RETENTION:
                self._delete(fp)

    def _save(self, alerts: list[Alert]) -> bool:
        """Write ``alerts`` and whatever an earlier failed write left; on failure they wait for the next.
        True when nothing is left unwritten."""
        for a in alerts:
            self._unsaved[a.fingerprint] = a
        if not self._unsaved:
            return True
        changes = dict(self._unsaved)

        def write(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(a.fingerprint, a.target, json.dumps(a.labels), json.dumps(a.annotations), str(a.state), a.value,
                  a.active_since, a.fired_at, a.resolved_at, a.last_seen) for a in changes.values() if a is not None],
            )
            db.executemany("DELETE FROM alerts WHERE fingerprint = ?",
                           [(fp,) for fp, a in changes.items() if a is None])

        if not self.state.write(write):
            return False
        self._unsaved.clear()
        for fp, change in changes.items():
            if change is None:
                self._stored_last_seen.pop(fp, None)
            else:
                self._stored_last_seen[fp] = change.last_seen
        return True

    def _delete(self, fingerprint: str) -> None:
        alert = self._alerts.pop(fingerprint, None)
        if alert is not None:
            self._by_target.get(alert.target, set()).discard(fingerprint)
        self._unsaved[fingerprint] = None


def _load(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return db.execute("SELECT fingerprint, labels, annotations, state, value, active_since, fired_at, resolved_at, "
                      "last_seen FROM alerts").fetchall()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
