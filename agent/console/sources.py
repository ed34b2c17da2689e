"""Where the console reads from: the agent's objects, behind plain callables so a bench or a test can build one
from synthetic data. Nothing here computes; the page modules do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from dbwatch.agent.console.history import StatementHistory
from dbwatch.agent.store import SnapshotStore
from dbwatch.model import Alert, Finding, Snapshot, Target
from dbwatch.model.snapshot import FactError

F = TypeVar("F")


def _nothing() -> list[Any]:
    return []


@dataclass
class Sources:
    store: SnapshotStore
    targets: Callable[[], dict[str, Target]]
    up_collector: Callable[[str], str | None]
    alerts: Callable[[], list[Alert]]
    recommendations: Callable[[str], list[Finding]] = lambda name: []
    clusters: Callable[[], list[dict[str, Any]]] = _nothing
    #: the newest notifications, newest first (agent/outbox.py ``recent``)
    notifications: Callable[[int], list[dict[str, Any]]] = lambda limit: []
    #: the silences store (agent/silences.py), when the agent has one
    silences: Callable[[], Any] = lambda: None
    #: /api/v1/targets' per-target job figures (the daemon's ``targets_info``)
    targets_info: Callable[[], list[dict[str, Any]]] = _nothing
    #: a target's live client sessions (collectors/pg_backends.py): None for an engine without them
    live_sessions: Callable[[str], Awaitable[list[dict[str, Any]] | None]] | None = None
    actions_enabled: bool = False
    history: StatementHistory = field(default_factory=StatementHistory)
    #: per target, its latest snapshots and the key numbers read from them (agent/console/fleet.py)
    numbers_cache: dict[str, tuple[list[Snapshot], dict[str, Any]]] = field(default_factory=dict)

    def up(self, name: str) -> bool | None:
        collector = self.up_collector(name)
        snapshot = self.store.latest(name, collector) if collector else None
        return None if snapshot is None else snapshot.ok

    def latest(self, name: str) -> list[Snapshot]:
        """The target's latest snapshot of each of its collectors."""
        out = []
        for collector in self.store.collectors(name):
            snapshot = self.store.latest(name, collector)
            if snapshot is not None:
                out.append(snapshot)
        return out


def fact(snapshots: list[Snapshot], kind: type[F]) -> F | None:
    """The first fact of type ``kind`` among successful snapshots (None when none carries it)."""
    for snapshot in snapshots:
        if snapshot.ok and kind in snapshot.facts:
            try:
                return snapshot.fact(kind)
            except FactError:
                return None
    return None


def facts(snapshots: list[Snapshot], kind: type[F]) -> list[F]:
    """Every fact of type ``kind`` among successful snapshots."""
    out = []
    for snapshot in snapshots:
        if snapshot.ok and kind in snapshot.facts:
            try:
                value = snapshot.fact(kind)
            except FactError:
                continue
            if value is not None:
                out.append(value)
    return out
