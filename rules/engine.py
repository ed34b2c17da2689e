"""The rules engine: threshold rules (YAML) and rules written in Python, over one target at a time.

Rules see a target through a read-only :class:`TargetView` of its recent snapshots and return findings.
A rule that raises is counted (``dbwatch_rule_errors_total{rule,target,reason}``), logged once when the error
starts (again only after the rule has evaluated cleanly in between), and never stops the other rules or
targets. A fact a rule needs (``view.need(T)``) that is missing or of the wrong type is such an error, with
``reason`` ``missing`` or ``wrong_type``; any other exception has ``reason="exception"``.
A rule that reads statements holds a :class:`~dbwatch.sqlshape.ParseFailures` as ``failures``: the statements
it could not parse (and so skipped) are exported as ``dbwatch_rule_sql_parse_failures_total{rule,dialect}``.

Rules read facts by type, never by collector: ``view.fact(T)`` is the newest successful snapshot's fact of type
``T`` (None when no collector of the target produced one: an optional collector not configured);
``view.need(T)`` is for facts the target's main collector always produces.

Rules written in Python (recommendations, failover triggers) implement :class:`PythonRule`: a ``name``, the
``engines`` they apply to (empty: all), and ``evaluate(view)`` returning findings. Alert-kind findings may
set ``for_``/``keep_firing_for`` on the rule object; recommendation-kind findings are never paged.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Iterable, Mapping, Protocol, Sequence, TypeVar

from dbwatch.model import Finding, FindingKind, MetricFamily, Severity, Snapshot, counter, gauge
from dbwatch.model.facts.mongodb import MongoProfiler, MongoSlowOps
from dbwatch.model.facts.schema_design import SchemaDesignFacts
from dbwatch.model.facts.server_resources import ServerResources
from dbwatch.model.facts.statements import Statements
from dbwatch.model.facts.workload_profile import WorkloadProfile
from dbwatch.model.snapshot import FactError, FactMissing
from dbwatch.rules.spec import ThresholdRule
from dbwatch.rules.thresholds import evaluate_rule, info_labels, render_template
from dbwatch.rules.statement_risk import with_risk
from dbwatch.sqlshape import ParseFailures

__all__ = ["FACTS_OVER_HISTORY", "NotCollected", "PythonRule", "RuleEngine", "SnapshotSource", "TargetView", "main_collector"]

logger = logging.getLogger(__name__)

F = TypeVar("F")

#: the family the daemon adds to each main collector's snapshots: it marks the collector that probes the target
TARGET_UP = "dbwatch_target_up"

#: the facts rules read from older snapshots too (:meth:`TargetView.history_with`), not only from the newest
#: successful one: the older snapshots of the store's history keep only these (agent/jobs.py), as they keep only
#: the families the threshold rules read over time
FACTS_OVER_HISTORY: frozenset[type] = frozenset({
    Statements, MongoSlowOps, MongoProfiler, SchemaDesignFacts, WorkloadProfile, ServerResources,
})


class NotCollected(Exception):
    """The target's main collector has no successful newest snapshot (down, or not yet collected): a rule that
    needs its facts has nothing to judge. Not a rule error: TargetDown reports the target."""


class SnapshotSource(Protocol):
    def collectors(self, target: str) -> list[str]: ...
    def history(self, target: str, collector: str) -> list[Snapshot]: ...


class TargetView:
    """Read-only access to one target's recent snapshots, for one evaluation."""

    def __init__(self, source: SnapshotSource, target: str, engine: str = "",
                 labels: Mapping[str, str] | None = None, now: float | None = None) -> None:
        self.target = target
        self.engine = engine
        self.labels: Mapping[str, str] = dict(labels or {})
        self.now = time.time() if now is None else now
        self._source = source
        self._histories: dict[str, list[Snapshot]] = {}
        self._owner: dict[str, str | None] = {}
        self._collectors: list[str] | None = None
        self._newest_ok: list[Snapshot] | None = None
        self._with: dict[type, Snapshot | None] = {}

    def collectors(self) -> list[str]:
        if self._collectors is None:
            self._collectors = self._source.collectors(self.target)
        return self._collectors

    def history(self, collector: str) -> list[Snapshot]:
        """The collector's snapshots, oldest first (failed collections included)."""
        if collector not in self._histories:
            self._histories[collector] = self._source.history(self.target, collector)
        return self._histories[collector]

    def latest_snapshot(self, collector: str) -> Snapshot | None:
        history = self.history(collector)
        return history[-1] if history else None

    def fact(self, kind: type[F]) -> F | None:
        """The fact of type ``kind`` from the collectors' newest successful snapshots, whichever collector made it
        (None when none carries one: the collector producing it is not configured, has not succeeded yet, or
        no longer says it, like a standby's WAL receiver after a promotion)."""
        snapshot = self.snapshot_with(kind)
        return snapshot.fact(kind) if snapshot is not None else None

    def need(self, kind: type[F]) -> F:
        """A fact the target's main collector always produces, from the newest successful snapshot carrying one.

        When none does: :class:`NotCollected` while the main collector's newest snapshot failed (or there is
        none yet), else :class:`~dbwatch.model.snapshot.FactMissing` (a rule error).
        """
        return self.need_snapshot(kind).need(kind)

    def need_snapshot(self, kind: type) -> Snapshot:
        """The newest successful snapshot carrying a ``kind`` fact, for rules that also need its time; raises
        as :meth:`need` does."""
        snapshot = self.snapshot_with(kind)
        if snapshot is not None:
            return snapshot
        main = self.main_collector()
        history = self.history(main) if main is not None else []
        if not history or not history[-1].ok:
            raise NotCollected(self.target)
        raise FactMissing(kind, f"the snapshots of {self.target}")

    def snapshot_with(self, kind: type) -> Snapshot | None:
        """Of each collector's newest successful snapshot, the newest one carrying a fact of type ``kind``."""
        if kind not in self._with:
            if self._newest_ok is None:
                self._newest_ok = [ok for c in self.collectors()
                                   if (ok := next((s for s in reversed(self.history(c)) if s.ok), None))]
            carrying = [s for s in self._newest_ok if s.has(kind)]
            self._with[kind] = max(carrying, key=lambda s: s.started_at) if carrying else None
        return self._with[kind]

    def history_with(self, kind: type) -> list[Snapshot]:
        """The history of the collector whose newest successful snapshot carries a ``kind`` fact (oldest first).

        Only the kinds of :data:`FACTS_OVER_HISTORY` are kept in older snapshots: another raises, in tests
        rather than in a rule that would silently see its fact in the newest snapshots only."""
        if kind not in FACTS_OVER_HISTORY:
            raise ValueError(f"{kind.__name__} is not kept over history: add it to FACTS_OVER_HISTORY")
        snapshot = self.snapshot_with(kind)
        return self.history(snapshot.collector) if snapshot is not None else []

    def peers(self) -> list["TargetView"]:
        """The other targets the source holds snapshots of, as views at the same time, for rules that compare
        targets (SchemaDrift); none when the source does not list its targets (a recorded history)."""
        targets = getattr(self._source, "targets", None)
        if targets is None:
            return []
        return [TargetView(self._source, name, "", {}, self.now) for name in sorted(targets()) if name != self.target]

    def main_collector(self) -> str | None:
        """The collector that probes the target (its snapshots carry ``dbwatch_target_up``); the first one when
        none does yet (recorded histories in tests)."""
        return main_collector(self)

    # -- MetricHistory, for threshold rules --------------------------------------------------------

    def latest(self, metric: str) -> MetricFamily | None:
        collector = self._collector_of(metric)
        if collector is None:
            return None
        snapshot = self.latest_snapshot(collector)
        return snapshot.family(metric) if snapshot is not None else None

    def window(self, metric: str, seconds: float, now: float) -> Sequence[tuple[float, MetricFamily]]:
        collector = self._collector_of(metric)
        if collector is None:
            return []
        since = now - seconds
        out = []
        for snapshot in self.history(collector):
            if snapshot.started_at >= since and (family := snapshot.family(metric)) is not None:
                out.append((snapshot.started_at, family))
        return out

    def _collector_of(self, metric: str) -> str | None:
        # The newest snapshot says, unless it failed: then the newest successful one does.
        owner = self._owner
        if metric not in owner:
            owner[metric] = None
            for collector in self.collectors():
                history = self.history(collector)
                if not history:
                    continue
                latest = history[-1]
                has = latest.family(metric) is not None
                if not has and not latest.ok:  # else the newest successful one is the latest
                    newest_ok = next((s for s in reversed(history) if s.ok), None)
                    has = newest_ok is not None and newest_ok.family(metric) is not None
                if has:
                    owner[metric] = collector
                    break
        return owner[metric]


def main_collector(view: "TargetView") -> str | None:
    for name in view.collectors():
        history = view.history(name)
        if history and history[-1].family(TARGET_UP) is not None:
            return name
    return next(iter(view.collectors()), None)


class PythonRule(Protocol):
    # Read-only members, so that a rule may declare ``engines = ("postgres",)`` (a ``tuple[str]``).
    @property
    def name(self) -> str: ...

    @property
    def engines(self) -> tuple[str, ...]: ...

    def evaluate(self, view: TargetView) -> Iterable[Finding]: ...


class RuleEngine:
    def __init__(self, rules: Sequence[ThresholdRule], python_rules: Sequence[PythonRule] = ()) -> None:
        self.rules = list(rules)
        # Cluster rules (rules.cluster.PythonClusterRule) come from the same catalog; they see a cluster.
        self.cluster_rules = [r for r in python_rules if hasattr(r, "evaluate_cluster")]
        self.python_rules = [r for r in python_rules if not hasattr(r, "evaluate_cluster")]
        self._durations: dict[str, tuple[float, float]] = {r.alert: (r.for_, r.keep_firing_for) for r in self.rules}
        for rule in [*self.python_rules, *self.cluster_rules]:
            self._durations[rule.name] = (float(getattr(rule, "for_", 0.0)),
                                          float(getattr(rule, "keep_firing_for", 0.0)))
        self._errors: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._failing: dict[tuple[str, str], str] = {}  # (rule, target) -> the error logged when it started
        self._by_engine: dict[str, tuple[list[ThresholdRule], list[PythonRule]]] = {}

    def rule_durations(self, name: str) -> tuple[float, float]:
        """``(for, keep_firing_for)`` of a rule; (0, 0) for one no longer loaded."""
        return self._durations.get(name, (0.0, 0.0))

    def _for_engine(self, engine: str) -> tuple[list[ThresholdRule], list[PythonRule]]:
        """The rules that apply to ``engine``'s targets, sorted out once per engine: a Redis target has 16 of
        100, and going over all of them for each of a fleet's evaluations was a tenth of the rules' time."""
        found = self._by_engine.get(engine)
        if found is None:
            found = self._by_engine[engine] = (
                [r for r in self.rules if not r.engines or engine in r.engines],
                [r for r in self.python_rules if not r.engines or engine in r.engines])
        return found

    def evaluate(self, view: TargetView) -> list[Finding]:
        findings: list[Finding] = []
        rules, python_rules = self._for_engine(view.engine)
        for rule in rules:
            try:
                findings.extend(self._threshold(rule, view))
            except Exception as exc:  # one broken rule never stops the others
                self.failed(rule.alert, view.target, exc)
            else:
                self.recovered(rule.alert, view.target)
        for prule in python_rules:
            try:
                # Every statement offered carries its lock and risk (rules/statement_risk.py).
                findings.extend(with_risk(f) for f in prule.evaluate(view))
            except NotCollected:
                continue
            except Exception as exc:
                self.failed(prule.name, view.target, exc)
            else:
                self.recovered(prule.name, view.target)
        return findings

    def evaluate_cluster(self, view: Any) -> list[Finding]:
        """Findings of the cluster rules on one cluster (a rules.cluster.ClusterView), each about one member."""
        findings: list[Finding] = []
        for rule in self.cluster_rules:
            try:
                findings.extend(rule.evaluate_cluster(view))
            except Exception as exc:
                self.failed(rule.name, f"cluster {view.name}", exc)
            else:
                self.recovered(rule.name, f"cluster {view.name}")
        return findings

    def metrics(self) -> list[MetricFamily]:
        loaded = gauge("dbwatch_rules_loaded", "Rules in force, by kind.", ("kind",))
        loaded.add(("threshold",), len(self.rules))
        loaded.add(("python",), len(self.python_rules) + len(self.cluster_rules))
        errors = counter("dbwatch_rule_errors_total",
                         "Evaluations of a rule that failed: a needed fact missing or of the wrong type, or an "
                         "exception.", ("rule", "target", "reason"))
        for key in sorted(self._errors):
            errors.add(key, self._errors[key])
        parse = counter("dbwatch_rule_sql_parse_failures_total",
                        "Statements a rule's SQL analysis could not parse (skipped: no hint from them).",
                        ("rule", "dialect"))
        for prule in self.python_rules:
            failures = getattr(prule, "failures", None)  # rules that read statements (queries, index hints)
            if isinstance(failures, ParseFailures):
                for dialect, count in failures.counts().items():
                    parse.add((prule.name, dialect), count)
        return [loaded, errors, parse]

    def failed(self, rule: str, target: str, exc: Exception) -> None:
        """Count one failed evaluation of ``rule`` on ``target``; log it when this error starts."""
        reason = exc.reason if isinstance(exc, FactError) else "exception"
        self._errors[(rule, target, reason)] += 1
        message = f"{type(exc).__name__}: {exc}"
        if self._failing.get((rule, target)) != message:  # when it starts (or changes), not every tick
            self._failing[(rule, target)] = message
            logger.error("rule %s failed on %s: %s", rule, target, message, extra={"target": target, "rule": rule},
                         exc_info=not isinstance(exc, (ValueError, FactError)))

    def _threshold(self, rule: ThresholdRule, view: TargetView) -> Iterable[Finding]:
        for series in evaluate_rule(rule, view, view.now):
            labels = {**view.labels, **series.labels, **rule.alert_labels}
            shown = {**info_labels(rule, series.labels, view), **labels, "alertname": rule.alert,
                     "severity": rule.severity, "target": view.target}
            yield Finding(
                rule=rule.alert,
                target=view.target,
                kind=FindingKind.ALERT,
                severity=Severity(rule.severity),
                summary=render_template(rule.summary, shown, series.value),
                description=render_template(rule.description, shown, series.value),
                labels=labels,
                value=series.value,
            )

    def recovered(self, rule: str, target: str) -> None:
        """``rule`` evaluated cleanly on ``target``: its next error is logged again."""
        self._failing.pop((rule, target), None)
