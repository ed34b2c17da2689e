"""The per-job figures on /metrics (exporters/job_lines.py): written when a collection lands, the age as of the
scrape, a target that goes takes its lines with it; the same lines as the store's figures say."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from dbwatch.agent.store import SnapshotStore
from dbwatch.exporters.job_lines import JobLines
from dbwatch.model import Snapshot

T0 = 1_700_000_000.0


def _snap(target: str, collector: str, started: float, ok: bool = True) -> Snapshot:
    snap = Snapshot(target=target, engine="redis", collector=collector, started_at=started, duration=0.5)
    snap.ok = ok
    if not ok:
        snap.error = "refused"
    return snap


def _values(lines: JobLines, now: float) -> dict[tuple[str, str, str], float]:
    body = lines.figures(False) + lines.ages(False, now)  # the five families, the ages as of `now`
    return {(s.name, s.labels["target"], s.labels["collector"]): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_figures_follow_the_collections_and_a_forgotten_target_goes():
    store = SnapshotStore()
    lines = JobLines(store)
    store.subscribe(lines.landed)
    store.put(_snap("a", "redis", T0))
    store.put(_snap("b", "redis", T0, ok=False))
    store.put(_snap("a", "redis", T0 + 15))
    values = _values(lines, T0 + 20)
    assert values[("dbwatch_collector_runs_total", "a", "redis")] == 2
    assert values[("dbwatch_collector_errors_total", "b", "redis")] == 1
    assert values[("dbwatch_collector_last_success_timestamp_seconds", "a", "redis")] == T0 + 15.5
    assert ("dbwatch_collector_last_success_timestamp_seconds", "b", "redis") not in values  # never succeeded
    assert values[("dbwatch_collect_age_seconds", "a", "redis")] == 4.5  # as of the scrape
    assert values[("dbwatch_collect_age_seconds", "b", "redis")] == 19.5
    assert values[("dbwatch_collector_duration_seconds", "b", "redis")] == 0.5
    store.forget_target("b")
    later = _values(lines, T0 + 30)
    assert {target for _, target, _ in later} == {"a"}
    assert later[("dbwatch_collect_age_seconds", "a", "redis")] == 14.5
    # A listener that came late (an exposition made after collections landed) reads the store.
    fresh = JobLines(store)
    assert _values(fresh, T0 + 30) == later
