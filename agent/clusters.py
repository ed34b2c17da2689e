"""Clusters in the running agent: membership (configured and discovered), cluster-rule evaluation, actions.

The alerting loop hands over the targets that have new snapshots; every cluster with such a member is
evaluated with the cluster rules, the failover controller acts on the result, and each finding is kept for
the member it is about, so that the member's own evaluation carries it into the alert tracker (which
tracks alerts per target).

Replication links are remembered once seen: a standby whose primary died no longer reports an upstream
(its WAL receiver stopped), and a promoted one never will again; the cluster stays together meanwhile.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from dbwatch.agent.failover import FailoverController
from dbwatch.collectors.base import Session
from dbwatch.model import Finding, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.engines import ENGINE_NAMES, engine
from dbwatch.model.facts.common import ReplicationLink
from dbwatch.model.snapshot import FactError
from dbwatch.rules.cluster import ClusterView, discover_clusters
from dbwatch.rules.clusterconfig import ClusterConfig
from dbwatch.rules.engine import RuleEngine, TargetView

__all__ = ["Clusters"]

#: the name cluster membership's errors are counted under in dbwatch_rule_errors_total
MEMBERSHIP = "ClusterMembership"


class Clusters:
    def __init__(self, clusters: dict[str, ClusterConfig], store: SnapshotStore,
                 targets: Callable[[], dict[str, Target]], state_dir: Path,
                 clock: Callable[[], float] = time.time,
                 sessions: Callable[[str], Session | None] = lambda name: None) -> None:
        self.store = store
        self.targets = targets
        self.clock = clock
        self.controller = FailoverController(clusters, state_dir, targets, clock, sessions)
        self._upstreams: dict[str, tuple[str, int]] = {}
        self._ports = {name: engine(name).default_port for name in ENGINE_NAMES}
        self._members: dict[str, list[str]] = {}
        self._grouped: tuple[dict[str, Target], dict[str, tuple[str, int]]] | None = None  # what _members is of
        self._findings: dict[str, list[Finding]] = {}
        self._views: dict[str, ClusterView] = {}

    def reconfigure(self, clusters: dict[str, ClusterConfig]) -> None:
        self.controller.clusters = clusters

    def forget_target(self, name: str) -> None:
        self._upstreams.pop(name, None)
        self._findings.pop(name, None)

    def evaluate(self, rules: RuleEngine, dirty: set[str]) -> set[str]:
        """Evaluate every cluster with a member in ``dirty``; returns the members of those clusters."""
        targets = self.targets()
        self._learn(targets, rules, dirty)
        # Grouping looks at every target: redone only when the targets or a replication link changed (each
        # pass of a fleet's agent has a few dirty targets, and was spending most of its time here).
        if self._grouped is None or self._grouped[0] is not targets or self._grouped[1] != self._upstreams:
            self._members = discover_clusters(targets, self._upstreams, self._ports)
            self._grouped = (targets, dict(self._upstreams))
        for gone in set(self._views) - set(self._members):
            del self._views[gone]
        in_cluster = {m for members in self._members.values() for m in members}
        for target in set(self._findings) - in_cluster:
            del self._findings[target]
        now = self.clock()
        touched: set[str] = set()
        for name, members in self._members.items():
            if not set(members) & dirty:
                continue
            view = ClusterView(
                name, {m: TargetView(self.store, m, targets[m].engine, targets[m].labels, now) for m in members},
                self.controller.settings(name), now,
            )
            findings = rules.evaluate_cluster(view)
            self.controller.consider(name, findings)
            findings = self.controller.annotate(name, findings) + self.controller.findings(name)
            for member in members:
                self._findings[member] = [f for f in findings if f.target == member]
            self._views[name] = view
            touched.update(members)
        return touched

    def findings(self, target: str) -> list[Finding]:
        return list(self._findings.get(target, ()))

    def as_json(self) -> list[dict[str, Any]]:
        """/api/v1/clusters: per cluster, its members' roles, links and lag, and the recent actions."""
        out = []
        for name, view in sorted(self._views.items()):
            members = view.members()
            settings = self.controller.settings(name)
            out.append({
                "name": name,
                "primary": next((m.name for m in members.values() if m.role == "primary" and m.reachable), None),
                "members": view.evidence(),
                "failover": {"action": settings.action, "dry_run": settings.dry_run, "probes": settings.probes,
                             "probe_interval_seconds": settings.probe_interval,
                             "maximum_lag_on_failover_bytes": settings.maximum_lag_on_failover},
                "actions": [a.as_json() for a in self.controller.actions(name)],
            })
        return out

    async def stop(self) -> None:
        await self.controller.stop()

    def _learn(self, targets: dict[str, Target], rules: RuleEngine, dirty: set[str]) -> None:
        """Remember the replication links of the targets with new snapshots (``dirty``): the others' did not
        change since they were last looked at."""
        for name in set(self._upstreams) - set(targets):
            del self._upstreams[name]
        for name in dirty & targets.keys():
            for collector in self.store.collectors(name):
                snapshot = self.store.latest(name, collector)
                if snapshot is None or not snapshot.ok or snapshot.family("dbwatch_target_up") is None:
                    continue
                try:
                    link = snapshot.fact(ReplicationLink)
                except FactError as exc:  # counted and logged like a rule's error; the loop goes on
                    rules.failed(MEMBERSHIP, name, exc)
                    continue
                rules.recovered(MEMBERSHIP, name)
                if link is not None and link.upstream is not None:
                    self._upstreams[name] = link.upstream
