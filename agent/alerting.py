"""From snapshots to notifications: evaluate a target's rules, track its alerts, tell the receivers.

A target is evaluated as soon as one of its snapshots arrives (so an alert with ``for: 0s`` fires within
one collection) and on a steady tick (so ``for`` and ``keep_firing_for`` run out on time even when a
target collects rarely, and the Alertmanager receiver re-posts firing alerts before they time out).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

from dbwatch.agent.alerts import AlertTracker
from dbwatch.agent.clusters import Clusters
from dbwatch.agent.config import Config
from dbwatch.model import Finding, FindingKind, MetricFamily, Snapshot, Target, info
from dbwatch.agent.notify import Notifier
from dbwatch.agent.silences import SilenceStore
from dbwatch.agent.statefile import StateFile, degraded_files, state_metrics
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.base import Session
from dbwatch.rules.catalog import python_rules
from dbwatch.rules.engine import TARGET_UP, RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig, load_rules

logger = logging.getLogger(__name__)

#: seconds between evaluations of a target with an alert that changes with time (pending, or firing in its
#: keep_firing_for: AlertTracker.timed_targets)
TICK = 5.0
#: ... and of every other target, whose judgement changes with its snapshots (each one is judged as it lands);
#: the few rules that read the clock rather than a snapshot (backup ages) are late by at most this
IDLE_TICK = 30.0
#: a target's collections of one cycle run one after the other on its session (agent/daemon.py gives them one
#: phase): judged once they stopped landing for SETTLE seconds, or SETTLE_MAX after the first, not each on its own
SETTLE = 0.2
SETTLE_MAX = 1.0
SLICE = 0.005  # seconds a pass runs before it lets the rest of the agent (scrapes, collections) run
PASS_SPACING = 4.0  # after a pass, wait this many times its duration before the next (rules take <= 1/5 of a core)
PASS_SPACING_MAX = 1.0  # ... but never longer than this (an alert with for: 0s fires within a second)


class Alerting:
    def __init__(self, config: Config, store: SnapshotStore, targets: Callable[[], dict[str, Target]],
                 external_url: str = "", clock: Callable[[], float] = time.time,
                 sessions: Callable[[str], Session | None] = lambda name: None) -> None:
        state = Path(config.state_dir)
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # the state files report it (agent/statefile.py) and the agent runs from memory
        self.store = store
        self.targets = targets  # the targets configured now, by name
        self.clock = clock
        self.rules = _engine(config.rules)
        self.tracker = AlertTracker(state / "alerts.db", clock)
        self.notifier = Notifier(config.receivers, state, clock, settings=config.notifications,
                                 external_url=external_url)
        self.silences = SilenceStore(state, clock)  # muted alerts skip dbwatch's own receivers (agent/notify.py)
        self.notifier.silenced_by = self.silences.silenced_by
        self.clusters = Clusters(config.clusters, store, targets, state, clock, sessions)
        self._recommendations: dict[str, list[Finding]] = {}
        self._recommendation_cache: MetricFamily | None = None
        #: targets to judge -> (first, last) time a snapshot of theirs landed since their last judgement; -inf:
        #: judged in the next pass, without settling (the tick, a reload)
        self._dirty: dict[str, tuple[float, float]] = {}
        self._evaluated: dict[str, float] = {}  # target -> when (monotonic) its rules were last evaluated
        self._ticked = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        store.subscribe(self._on_snapshot)

    async def start(self) -> None:
        await self.notifier.start()
        for name in self.tracker.targets() - set(self.targets()):
            self.forget_target(name)  # alerts of targets removed from the config while the agent was down
        self._task = asyncio.create_task(self._loop(), name="alerting")

    async def stop(self, grace: float) -> None:
        if self._task is not None:
            for _ in range(10):  # bounded: a cancellation swallowed once is asked again
                self._task.cancel()
                done, _ = await asyncio.wait({self._task}, timeout=0.5)
                if done:
                    break
        await self.clusters.stop()
        await self.notifier.stop(grace)
        self.tracker.close()

    async def reconfigure(self, config: Config) -> None:
        self.rules = _engine(config.rules)
        self.clusters.reconfigure(config.clusters)
        await self.notifier.reconfigure(config.receivers)
        self._dirty.update(dict.fromkeys(self.targets(), _NOW))
        self._wake.set()

    def forget_target(self, name: str) -> None:
        """A target left the config: its alerts resolve (and the receivers hear so once)."""
        self.tracker.forget_target(name)
        self.clusters.forget_target(name)
        self._recommendations.pop(name, None)
        self._evaluated.pop(name, None)
        self.notifier.update(self.tracker.alerts())

    def evaluate(self, name: str) -> None:
        """Judge one target now and tell the receivers what changed."""
        if self._judge(name):
            self.notifier.update(self.tracker.alerts(), self.clock())

    def _judge(self, name: str) -> bool:
        """Evaluate one target's rules and track its alerts (the receivers are told by the caller, once per
        pass); False when there was nothing to judge."""
        target = self.targets().get(name)
        if target is None:
            return False
        now = self.clock()
        view = TargetView(self.store, name, target.engine, target.labels, now)
        if view.latest(TARGET_UP) is None:
            # Nothing says yet whether the target is up (its main collector has not reported since the start):
            # judging it now would resolve an alert restored from the state file because another of its
            # collectors happened to report first, and rules would look for the main collector's facts in
            # another collector's snapshot (a rule error). Its first report comes within one interval.
            return False
        findings = self.rules.evaluate(view) + self.clusters.findings(name)
        self._recommendations[name] = [f for f in findings if f.kind == FindingKind.RECOMMENDATION]
        self.tracker.update(name, findings, self.rules.rule_durations, now)
        return True

    def metrics(self) -> list[MetricFamily]:
        return [*self.tracker.metrics(), *self.rules.metrics(), *self.notifier.metrics(), *self.silences.metrics(),
                self._recommendation_family(), *state_metrics(self.state_files())]

    def state_files(self) -> list[StateFile]:
        return [self.tracker.state, self.notifier.outbox.state, self.clusters.controller.state]

    def degraded_state(self) -> dict[str, str]:
        """The state files that cannot be written now, and why (``/readyz`` shows them)."""
        return degraded_files(self.state_files())

    def alerts_json(self) -> list[dict[str, Any]]:
        """Every alert; a firing one muted by a silence says so (``silenced``, ``silencedBy``)."""
        alerts = self.tracker.as_json()
        for alert in alerts:
            muting = self.silences.silenced_by(alert["labels"]) if alert["state"] == "firing" else None
            alert["silenced"], alert["silencedBy"] = muting is not None, [muting] if muting else []
        return alerts

    def recommendations(self, target: str | None = None) -> list[Finding]:
        """The latest recommendations, per target in evaluation order (never paged: not alerts)."""
        return [f for name, found in sorted(self._recommendations.items()) if target in (None, name) for f in found]

    def recommendations_json(self) -> list[dict[str, Any]]:
        return [finding_json(f) for f in self.recommendations()]

    def _recommendation_family(self) -> MetricFamily:
        """The same object while the recommendations are the same: /metrics keeps its text (a fleet has 1,000)."""
        found = [(f.rule, f.target, str(f.severity), f.fingerprint, f.summary) for f in self.recommendations()]
        family = self._recommendation_cache
        if family is None or [labels for labels, _ in family.samples] != found:
            family = info("dbwatch_recommendation", "A recommendation in force (1): what a rule advises, by target.",
                          ("rule", "target", "severity", "fingerprint", "summary"))
            for labels in found:
                family.add(labels, 1)
            self._recommendation_cache = family
        return family

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        first = self._dirty.get(snapshot.target, (now, now))[0]
        self._dirty[snapshot.target] = (first, now)
        self._wake.set()

    def _settled(self, now: float) -> set[str]:
        """The dirty targets to judge now (taken out of the dirty ones)."""
        ready = {t for t, entry in self._dirty.items() if _ready_at(entry) <= now}
        for target in ready:
            del self._dirty[target]
        return ready

    async def _loop(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that comes as
                # its timeout fires, and stop() would then wait on this loop for ever.
                async with asyncio.timeout(SETTLE if self._dirty else TICK):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            began = time.monotonic()
            if began - self._ticked >= TICK:
                # Judged at least every TICK while an alert is in flight, new snapshots or not (a pending alert
                # fires on time): in a fleet, snapshots land all the time and the wait above never times out.
                self._ticked = began
                evaluated, timed = self._evaluated, self.tracker.timed_targets()
                self._dirty.update((t, _NOW) for t in self.targets()
                                   if began - evaluated.get(t, -IDLE_TICK) >= (TICK if t in timed else IDLE_TICK))
            targets = self._settled(began)
            if not targets:  # collections still landing: back when the first of them has settled
                await asyncio.sleep(max(0.0, min(map(_ready_at, self._dirty.values()), default=began + SETTLE) - began))
                continue
            try:
                targets |= self.clusters.evaluate(self.rules, targets)
            except Exception:  # a cluster's evaluation must never stop the targets'
                logger.exception("evaluating clusters failed")
            await self._pass(sorted(targets), began)
            # A pass has a part that grows with the fleet (cluster membership looks at every target) whatever
            # the number of targets that changed: snapshots landing meanwhile are batched into the next pass, so
            # that a fleet's ~100 collections a second do not each pay for it. A small agent waits a few ms.
            await asyncio.sleep(min(PASS_SPACING_MAX, (time.monotonic() - began) * PASS_SPACING))

    async def _pass(self, targets: list[str], began: float) -> None:
        """Judge ``targets``, giving the event loop back every SLICE seconds (a fleet's pass takes longer than
        a scrape may wait), then tell the receivers once what the whole pass changed."""
        judged, sliced = False, time.monotonic()
        for target in targets:
            self._evaluated[target] = began
            try:
                judged = self._judge(target) or judged
            except Exception:  # one target's evaluation must never stop the others
                logger.exception("evaluating rules failed", extra={"target": target})
            if time.monotonic() - sliced >= SLICE:
                await asyncio.sleep(0)
                sliced = time.monotonic()
        if judged:
            self.notifier.update(self.tracker.alerts(), self.clock())


_NOW = (-math.inf, -math.inf)  # a _dirty entry judged in the next pass


def _ready_at(entry: tuple[float, float]) -> float:
    """When a dirty target's collections have settled: SETTLE after the last landed, SETTLE_MAX after the first."""
    first, last = entry
    return min(last + SETTLE, first + SETTLE_MAX)


def _engine(config: RulesConfig) -> RuleEngine:
    return RuleEngine(load_rules(config), python_rules(config))


def finding_json(finding: Finding) -> dict[str, Any]:
    """A finding as the API and ``--format json`` reports show it (evidence must be JSON-serialisable)."""
    return {
        "rule": finding.rule,
        "target": finding.target,
        "kind": str(finding.kind),
        "severity": str(finding.severity),
        "summary": finding.summary,
        "description": finding.description,
        "labels": dict(finding.labels),
        "evidence": dict(finding.evidence),
        "fingerprint": finding.fingerprint,
    }
