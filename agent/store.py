"""The latest snapshot of every (target, collector) and a short history of each, in memory.

Collectors write here after every collection; rules read the history; the Prometheus exporter renders
from the latest snapshots. Listeners are told of every new snapshot so that work derived from it (the
rendered exposition, rule evaluation) happens once per collection, not once per reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from dbwatch.model import Snapshot

Listener = Callable[[Snapshot], None]


@dataclass(slots=True)
class JobStats:
    """Bookkeeping of one (target, collector) job, for self-metrics and /api/v1/targets."""

    target: str
    collector: str
    runs: int = 0
    errors: int = 0
    last_duration: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class SnapshotStore:
    history_size: int = 40
    #: per (target, collector), oldest first: lists, as they hold few (a deque's first block is 600 bytes: 11 MiB
    #: of a fleet's memory for its three per collector)
    _history: dict[tuple[str, str], list[Snapshot]] = field(default_factory=dict)
    _stats: dict[tuple[str, str], JobStats] = field(default_factory=dict)
    _listeners: list[Listener] = field(default_factory=list)
    _by_target: dict[str, list[str]] = field(default_factory=dict)
    #: bumped on every change, so readers can cache what they derive from the store
    generation: int = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def put(self, snapshot: Snapshot) -> None:
        key = (snapshot.target, snapshot.collector)
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = []
            self._by_target.setdefault(snapshot.target, []).append(snapshot.collector)
        if not snapshot.keep_history:
            history.clear()
        elif history and len(history) >= self.history_size:
            del history[0]
        history.append(snapshot)
        # The oldest successful collections left with nothing a rule reads (their families and facts thinned
        # away by agent/jobs.py) go, when a newer one succeeded too: a fleet kept ~16 such husks per collector,
        # 30 MiB at 1,400 targets. Failed ones stay: how long a target has been down is counted from them.
        while (len(history) > 2 and (oldest := history[0]).ok and history[1].ok and not oldest.families
               and not oldest.facts):
            del history[0]
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = JobStats(snapshot.target, snapshot.collector)
        stats.runs += 1
        stats.last_duration = snapshot.duration
        if snapshot.ok:
            stats.last_success = snapshot.started_at + snapshot.duration
        else:
            stats.errors += 1
            stats.last_error = snapshot.error
            stats.last_error_at = snapshot.started_at + snapshot.duration
        self.generation += 1
        for listener in self._listeners:
            listener(snapshot)

    def latest(self, target: str, collector: str) -> Snapshot | None:
        history = self._history.get((target, collector))
        return history[-1] if history else None

    def history(self, target: str, collector: str) -> list[Snapshot]:
        return list(self._history.get((target, collector), ()))

    def collectors(self, target: str) -> list[str]:
        return list(self._by_target.get(target, ()))

    def latest_all(self) -> Iterator[Snapshot]:
        for history in self._history.values():
            if history:
                yield history[-1]

    def stats(self) -> list[JobStats]:
        return list(self._stats.values())

    def job_stats(self, target: str, collector: str) -> JobStats | None:
        return self._stats.get((target, collector))

    def targets(self) -> set[str]:
        return {target for target, _ in self._history}

    def forget_target(self, target: str) -> None:
        """Drop everything about a target removed from the config, so its series disappear."""
        for key in [k for k in self._history if k[0] == target]:
            del self._history[key]
        for key in [k for k in self._stats if k[0] == target]:
            del self._stats[key]
        self._by_target.pop(target, None)
        self.generation += 1
