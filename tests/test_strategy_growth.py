"""Growth in the workload profile, on recorded snapshots: the daemon's history of the workload collector
(sizes seen twice, an hour or more apart) replaces the one-shot estimate from insert/delete counters, and a
history too short leaves the estimate standing and says which it is."""

from __future__ import annotations

from dbwatch.agent.store import SnapshotStore
from dbwatch.model import Snapshot
from dbwatch.model.facts.workload_profile import TableActivity, WorkloadProfile
from dbwatch.rules.engine import TargetView
from dbwatch.rules.strategy import WorkloadProfileRule

T0 = 1_700_000_000.0
MB = 1024 * 1024


def _profile(database_bytes: int, table_bytes: int) -> WorkloadProfile:
    table = TableActivity(schema="public", table="events", rows=1000, size_bytes=table_bytes, seq_scans=0,
                          seq_rows=0, idx_scans=0, inserts=0, updates=0, deletes=0)
    return WorkloadProfile((), database="app", since_seconds=30.0, statements_since_seconds=30.0, tables=(table,),
                           database_bytes=database_bytes, growth_bytes_per_day=None, growth_basis="unknown")


def _evidence(*points: tuple[float, int, int]) -> dict:
    store = SnapshotStore(history_size=10)
    for at, db, table in points:
        snapshot = Snapshot(target="t", engine="postgres", collector="workload", started_at=at, ok=True)
        snapshot.put(_profile(db, table))
        store.put(snapshot)
    [finding] = WorkloadProfileRule().evaluate(TargetView(store, "t", "postgres", {}, points[-1][0]))
    return finding.evidence


def test_two_sizes_two_hours_apart_measure_growth_per_day():
    evidence = _evidence((T0, 1000 * MB, 100 * MB), (T0 + 7200, 1010 * MB, 108 * MB))
    assert evidence["growth_bytes_per_day"] == 120 * MB  # 10 MB in 2 h
    assert evidence["table_growth_bytes_per_day"] == {"public.events": 96 * MB}
    assert evidence["growth_basis"].startswith("measured: size change over the last 2.0 h")


def test_a_history_shorter_than_an_hour_leaves_growth_unknown_and_says_so():
    evidence = _evidence((T0, 1000 * MB, 100 * MB), (T0 + 600, 1010 * MB, 108 * MB))
    assert evidence["growth_bytes_per_day"] is None and evidence["growth_basis"] == "unknown"
