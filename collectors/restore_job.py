"""The scheduled restore drills of a target: the ``restore_drill`` collector, on when a backup source of the
target has ``restore_test:`` (opt-in).

A drill takes minutes to hours, far longer than a collection may: the collector (every minute) only starts
the due drills in a background task, one after another (and :mod:`restore_drill`'s lock keeps drills of
all targets and of ``dbwatch backup restore-test`` from overlapping), and exports the last result of each
source. The last drill of each source is recorded in its workdir, so a restart keeps the schedule: a
source never drilled is drilled at the first collection, then every ``every``. Stopping the agent cancels a running drill (asyncio cancels the task at shutdown), which still
stops and deletes what it started; after a reload a running drill finishes before the next one may start.

Facts: :class:`~dbwatch.model.facts.restore.RestoreDrills`, the last drill of each source.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dbwatch.collectors.base import Collector, Session
from dbwatch.collectors.restore_drill import last_result, run_drill
from dbwatch.model import BackupSpec, MetricFamily, Snapshot, Target, gauge
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.restore import RestoreDrill, RestoreDrills
from dbwatch.model.options import CollectorOptions

__all__ = ["RestoreDrillCollector", "drill_families"]

log = logging.getLogger(__name__)


class RestoreDrillCollector(Collector[Session, CollectorOptions]):
    name = "restore_drill"
    options_model = CollectorOptions
    one_shot = False  # `dbwatch backup restore-test` runs a drill on demand; check and advise never start one

    def __init__(self, target: Target, session: Session) -> None:
        super().__init__(target, session)
        self._last: dict[str, RestoreDrill] = {}
        for spec in target.backups:  # the last drills recorded in the workdirs survive a restart
            if (recorded := last_result(target, spec)) is not None:
                self._last[spec.name] = recorded
        self._since = time.time()
        self._task: asyncio.Task[None] | None = None

    async def collect(self, snapshot: Snapshot) -> None:
        specs = [s for s in self.target.backups if s.restore_test is not None]
        now = time.time()
        due = [s for s in specs if _due(self._last.get(s.name), s, self._since) <= now]
        if due and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._drill(due))
        drills = [self._last[s.name] for s in specs if s.name in self._last]
        snapshot.families.extend(drill_families(drills, specs, now, self._since))
        snapshot.put(RestoreDrills(tuple(drills)),
                     Summary({f"restore drill {d.source}": _summary(d) for d in drills}))

    async def _drill(self, specs: list[BackupSpec]) -> None:
        for spec in specs:
            log.info("restore drill of %s (target %s) starting", spec.name, self.target.name)
            result = await run_drill(self.target, spec)
            self._last[spec.name] = result
            log.info("restore drill of %s (target %s): %s", spec.name, self.target.name, _summary(result))


def drill_families(drills: list[RestoreDrill], specs: list[BackupSpec], now: float,
                   since: float) -> list[MetricFamily]:
    success = gauge("dbwatch_restore_test_success", "Whether the last restore drill succeeded (1) or failed (0).",
                    ("source",))
    duration = gauge("dbwatch_restore_test_duration_seconds",
                     'How long the last restore drill took, per step and in total (step="total": up to a verified, '
                     "running copy; compare and cleanup excluded).", ("source", "step"))
    last = gauge("dbwatch_restore_test_last_run_timestamp_seconds", "When the last restore drill finished (Unix time).",
                 ("source",))
    rto = gauge("dbwatch_restore_test_rto_seconds", "The configured recovery time objective of the source.",
                ("source",))
    age = gauge("dbwatch_restore_test_restored_data_age_seconds",
                "How old the newest data in the last drill's restored copy was when the drill finished.", ("source",))
    overdue = gauge("dbwatch_restore_test_overdue_seconds",
                    "How long past its schedule (plus the drill's timeout) the next restore drill is (0: not late).", ("source",))
    by_source = {d.source: d for d in drills}
    for spec in specs:
        assert spec.restore_test is not None
        rto.add((spec.name,), spec.restore_test.rto)
        # a drill has its timeout to finish: overdue once that has passed beyond its due time too
        late = now - _due(by_source.get(spec.name), spec, since) - spec.restore_test.timeout
        overdue.add((spec.name,), max(0.0, late))
    for drill in drills:
        success.add((drill.source,), int(drill.ok))
        last.add((drill.source,), drill.finished_at)
        if drill.ok:
            duration.add((drill.source, "total"), drill.duration)
        for step in drill.steps:
            duration.add((drill.source, step.name), step.seconds)
        if drill.restored_to is not None:
            age.add((drill.source,), max(0.0, drill.finished_at - drill.restored_to))
    return [success, duration, last, rto, age, overdue]


def _due(last: RestoreDrill | None, spec: BackupSpec, since: float) -> float:
    assert spec.restore_test is not None
    if last is None:
        return since  # the first drill runs at the first collection
    return last.started_at + spec.restore_test.every


def _summary(drill: RestoreDrill) -> str:
    if not drill.ok:
        return f"failed: {drill.error}"
    return f"restored and verified in {drill.duration:.0f}s (rto {drill.rto_seconds:.0f}s)"
