"""The rules engine: threshold rules (YAML) and rules written in Python, over one target at a time.

Rules see a target through a read-only :class:`TargetView` of its recent snapshots and return findings.
A rule that raises is counted (``dbwatch_rule_errors_total{rule}``), logged once per distinct error, and
never stops the other rules or targets.

Rules written in Python (recommendations, failover triggers) implement :class:`PythonRule`: a ``name``, the
``engines`` they apply to (empty: all), and ``evaluate(view)`` returning findings. Alert-kind findings may
set ``for_``/``keep_firing_for`` on the rule object; recommendation-kind findings are never paged.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Iterable, Mapping, Protocol, Sequence

from dbwatch.model import Finding, FindingKind, MetricFamily, Severity, Snapshot, counter, gauge
from dbwatch.rules.spec import ThresholdRule
from dbwatch.rules.thresholds import evaluate_rule, render_template

__all__ = ["PythonRule", "RuleEngine", "SnapshotSource", "TargetView"]

logger = logging.getLogger(__name__)


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

    def facts(self, collector: str, key: str) -> Any:
        """A fact from the collector's newest successful snapshot (None when there is none)."""
        for snapshot in reversed(self.history(collector)):
            if snapshot.ok:
                return snapshot.facts.get(key)
        return None

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
        if metric not in self._owner:
            self._owner[metric] = None
            for collector in self.collectors():
                newest_ok = next((s for s in reversed(self.history(collector)) if s.ok), None)
                latest = self.latest_snapshot(collector)
                if any(s is not None and s.family(metric) is not None for s in (latest, newest_ok)):
                    self._owner[metric] = collector
                    break
        return self._owner[metric]


class PythonRule(Protocol):
    name: str
    engines: tuple[str, ...]

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
        self._errors: collections.Counter[str] = collections.Counter()
        self._last_error: dict[tuple[str, str], str] = {}

    def rule_durations(self, name: str) -> tuple[float, float]:
        """``(for, keep_firing_for)`` of a rule; (0, 0) for one no longer loaded."""
        return self._durations.get(name, (0.0, 0.0))

    def evaluate(self, view: TargetView) -> list[Finding]:
        findings: list[Finding] = []
        for rule in self.rules:
            if rule.engines and view.engine not in rule.engines:
                continue
            try:
                findings.extend(self._threshold(rule, view))
            except Exception as exc:  # one broken rule never stops the others
                self._failed(rule.alert, view.target, exc)
        for prule in self.python_rules:
            if prule.engines and view.engine not in prule.engines:
                continue
            try:
                findings.extend(prule.evaluate(view))
            except Exception as exc:
                self._failed(prule.name, view.target, exc)
        return findings

    def evaluate_cluster(self, view: Any) -> list[Finding]:
        """Findings of the cluster rules on one cluster (a rules.cluster.ClusterView), each about one member."""
        findings: list[Finding] = []
        for rule in self.cluster_rules:
            try:
                findings.extend(rule.evaluate_cluster(view))
            except Exception as exc:
                self._failed(rule.name, f"cluster {view.name}", exc)
        return findings

    def metrics(self) -> list[MetricFamily]:
        loaded = gauge("dbwatch_rules_loaded", "Rules in force, by kind.", ("kind",))
        loaded.add(("threshold",), len(self.rules))
        loaded.add(("python",), len(self.python_rules) + len(self.cluster_rules))
        errors = counter("dbwatch_rule_errors_total", "Evaluations of a rule that raised an error.", ("rule",))
        for name in sorted(self._errors):
            errors.add((name,), self._errors[name])
        return [loaded, errors]

    def _threshold(self, rule: ThresholdRule, view: TargetView) -> Iterable[Finding]:
        for series in evaluate_rule(rule, view, view.now):
            labels = {**view.labels, **series.labels, **rule.alert_labels}
            shown = {**labels, "alertname": rule.alert, "severity": rule.severity, "target": view.target}
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

    def _failed(self, rule: str, target: str, exc: Exception) -> None:
        self._errors[rule] += 1
        message = f"{type(exc).__name__}: {exc}"
        if self._last_error.get((rule, target)) != message:  # once per distinct error, not every tick
            self._last_error[(rule, target)] = message
            logger.error("rule %s failed on %s: %s", rule, target, message, extra={"target": target, "rule": rule},
                         exc_info=not isinstance(exc, ValueError))
