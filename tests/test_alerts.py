"""The alert lifecycle with a clock the test moves: for, keep_firing_for, resolve, restart in each state,
and the notifier's view of it (a real aiohttp receiver on loopback counts what it is told).
"""

from __future__ import annotations

import sqlite3

from dbwatch.agent.alerts import RESOLVED_RETENTION, AlertTracker
from dbwatch.model import AlertState, Finding, FindingKind, Severity
from tests.notifyutil import T0, Clock
from tests.test_notify import hook, notifiers, recorders  # noqa: F401  (fixtures)
from tests.helpers import wait_until

DURATIONS = {"LagHigh": (60.0, 0.0), "Flappy": (0.0, 120.0), "Now": (0.0, 0.0)}


def durations(name: str) -> tuple[float, float]:
    return DURATIONS.get(name, (0.0, 0.0))


def finding(rule: str = "LagHigh", target: str = "db1", value: float = 9.0, **labels: str) -> Finding:
    return Finding(rule=rule, target=target, kind=FindingKind.ALERT, severity=Severity.WARNING,
                   summary=f"{rule} {value}", labels=labels, value=value)


def states(tracker: AlertTracker) -> dict[str, str]:
    return {a.name: str(a.state) for a in tracker.alerts()}


def test_pending_until_for_has_passed_then_firing_then_resolved_once(tmp_path):
    clock = Clock()
    tracker = AlertTracker(tmp_path / "alerts.db", clock)
    [changed] = tracker.update("db1", [finding()], durations)
    assert changed.state == AlertState.PENDING and states(tracker) == {"LagHigh": "pending"}
    clock.advance(59)
    assert tracker.update("db1", [finding(value=12)], durations) == []
    clock.advance(1)
    [changed] = tracker.update("db1", [finding()], durations)
    assert changed.state == AlertState.FIRING and changed.fired_at == T0 + 60 and changed.active_since == T0
    assert changed.labels == {"alertname": "LagHigh", "severity": "warning", "target": "db1"}
    clock.advance(15)
    [changed] = tracker.update("db1", [], durations)
    assert changed.state == AlertState.RESOLVED and changed.resolved_at == T0 + 75
    assert tracker.update("db1", [], durations) == []  # resolved once
    clock.advance(RESOLVED_RETENTION + 1)
    tracker.update("db1", [], durations)
    assert tracker.alerts() == []


def test_a_pending_alert_whose_condition_clears_is_dropped_without_a_trace(tmp_path):
    clock = Clock()
    tracker = AlertTracker(tmp_path / "alerts.db", clock)
    tracker.update("db1", [finding()], durations)
    clock.advance(30)
    assert tracker.update("db1", [], durations) == []
    assert tracker.alerts() == []
    clock.advance(40)
    tracker.update("db1", [finding()], durations)  # holds again: for starts over
    clock.advance(40)
    tracker.update("db1", [finding()], durations)
    assert states(tracker) == {"LagHigh": "pending"}


def test_keep_firing_for_rides_out_a_flap_and_resolves_after_it(tmp_path):
    clock = Clock()
    tracker = AlertTracker(tmp_path / "alerts.db", clock)
    tracker.update("db1", [finding("Flappy")], durations)
    assert states(tracker) == {"Flappy": "firing"}
    for _ in range(7):  # false for 105 s: less than keep_firing_for
        clock.advance(15)
        tracker.update("db1", [], durations)
    assert states(tracker) == {"Flappy": "firing"}
    tracker.update("db1", [finding("Flappy")], durations)  # back: same alert, same fired_at
    [alert] = tracker.alerts()
    assert alert.fired_at == T0
    clock.advance(119)
    tracker.update("db1", [], durations)
    assert states(tracker) == {"Flappy": "firing"}
    clock.advance(1)
    tracker.update("db1", [], durations)
    assert states(tracker) == {"Flappy": "resolved"}


def test_timed_targets_are_those_whose_alerts_change_with_the_clock_alone(tmp_path):
    """Pending (fires after for:), firing in keep_firing_for (resolves after it) and restored-not-yet-judged alerts
    need the tick; one firing with its condition still holding changes only with the target's next snapshot."""
    clock = Clock()
    tracker = AlertTracker(tmp_path / "alerts.db", clock)
    tracker.update("db1", [finding("LagHigh")], durations)
    tracker.update("db2", [finding("Now", target="db2")], durations)
    assert states(tracker) == {"LagHigh": "pending", "Now": "firing"}
    assert tracker.timed_targets() == {"db1"}, "a firing alert whose condition holds needs no tick"
    clock.advance(60)
    tracker.update("db1", [finding("LagHigh")], durations)
    assert tracker.timed_targets() == set(), "both fire, their conditions hold"
    tracker.update("db3", [finding("Flappy", target="db3")], durations)
    clock.advance(15)
    tracker.update("db3", [], durations)  # condition gone, kept firing for keep_firing_for
    assert tracker.timed_targets() == {"db3"}
    tracker.close()
    restored = AlertTracker(tmp_path / "alerts.db", clock)
    assert restored.timed_targets() == {"db1", "db2", "db3"}, "restored alerts wait for their first judgement"
    restored.update("db2", [finding("Now", target="db2")], durations)
    assert restored.timed_targets() == {"db1", "db3"}
    restored.forget_target("db1")
    assert restored.timed_targets() == {"db3"}


def test_series_labels_make_separate_alerts_and_targets_do_not_resolve_each_other(tmp_path):
    tracker = AlertTracker(tmp_path / "alerts.db", Clock())
    tracker.update("db1", [finding("Now", datname="a"), finding("Now", datname="b")], durations)
    tracker.update("db2", [finding("Now", target="db2")], durations)
    assert len(tracker.alerts()) == 3
    tracker.update("db1", [finding("Now", datname="a")], durations)
    by_db = {(a.target, a.labels.get("datname")): str(a.state) for a in tracker.alerts()}
    assert by_db == {("db1", "a"): "firing", ("db1", "b"): "resolved", ("db2", None): "firing"}
    family = tracker.metrics()[0]
    assert family.name == "dbwatch_alerts"
    assert family.value(alertname="Now", target="db1", state="firing") == 1
    assert family.value(alertname="Now", target="db2", state="firing") == 1
    assert len(family.samples) == 2
    listed = tracker.as_json()
    assert [a["state"] for a in listed] == ["firing", "firing", "resolved"]
    assert listed[0]["firedAt"].endswith("Z") and listed[-1]["resolvedAt"]


def test_restart_in_each_state_keeps_pending_start_firing_time_and_resolves_normally(tmp_path):
    clock = Clock()
    path = tmp_path / "alerts.db"
    first = AlertTracker(path, clock)
    first.update("db1", [finding("LagHigh"), finding("Now")], durations)  # LagHigh pending, Now firing
    clock.advance(200)
    first.update("db1", [finding("Now"), finding("Now", datname="gone")], durations)  # LagHigh dropped
    clock.advance(1)
    first.update("db1", [finding("Now"), finding("LagHigh")], durations)  # Now/gone resolved, LagHigh pending
    first.close()

    clock.advance(30)
    second = AlertTracker(path, clock)
    by_key = {(a.name, a.labels.get("datname")): a for a in second.alerts()}
    assert {k: str(a.state) for k, a in by_key.items()} == {
        ("LagHigh", None): "pending", ("Now", None): "firing", ("Now", "gone"): "resolved"}
    assert by_key[("Now", None)].fired_at == T0 and by_key[("LagHigh", None)].active_since == T0 + 201
    clock.advance(30)  # LagHigh has held for 60 s across the restart: it fires now, not 60 s from now
    changed = second.update("db1", [finding("Now"), finding("LagHigh")], durations)
    assert [(a.name, str(a.state)) for a in changed] == [("LagHigh", "firing")]
    changed = second.update("db1", [], durations)
    assert sorted((a.name, str(a.state)) for a in changed) == [("LagHigh", "resolved"), ("Now", "resolved")]
    second.close()
    rows = sqlite3.connect(path).execute("SELECT state, count(*) FROM alerts GROUP BY state").fetchall()
    assert rows == [("resolved", 3)]


def test_forget_target_resolves_its_firing_alerts_only(tmp_path):
    tracker = AlertTracker(tmp_path / "alerts.db", Clock())
    tracker.update("db1", [finding("Now"), finding("LagHigh")], durations)
    tracker.update("db2", [finding("Now", target="db2")], durations)
    tracker.forget_target("db1")
    assert {(a.target, a.name): str(a.state) for a in tracker.alerts()} == {
        ("db1", "Now"): "resolved", ("db2", "Now"): "firing"}
    assert tracker.targets() == {"db2"}


async def test_a_firing_alert_across_a_restart_is_not_renotified_before_repeat_and_resolves_once(
        tmp_path, notifiers, recorders):  # noqa: F811
    server = await recorders()
    clock = Clock()
    receivers = [hook("oncall", server.url, repeat_interval="1h")]

    tracker = AlertTracker(tmp_path / "alerts.db", clock)
    notifier = await notifiers(receivers, clock=clock)
    tracker.update("db1", [finding("Now")], durations)
    notifier.update(tracker.alerts())
    await wait_until(lambda: len(server.requests) == 1, 5, "the firing notification")
    await notifier.stop(grace=1)
    tracker.close()

    clock.advance(600)  # the agent restarts; the condition still holds
    tracker = AlertTracker(tmp_path / "alerts.db", clock)
    notifier = await notifiers(receivers, clock=clock)
    tracker.update("db1", [finding("Now")], durations)
    notifier.update(tracker.alerts())
    assert notifier.outbox.pending_counts() == {}, "re-notified before the repeat interval"
    assert len(server.requests) == 1
    clock.advance(3600)
    tracker.update("db1", [finding("Now")], durations)
    notifier.update(tracker.alerts())
    await wait_until(lambda: len(server.requests) == 2, 5, "the repeat")
    clock.advance(15)
    tracker.update("db1", [], durations)
    notifier.update(tracker.alerts())
    clock.advance(15)
    tracker.update("db1", [], durations)
    notifier.update(tracker.alerts())
    await wait_until(lambda: len(server.requests) == 3, 5, "the resolve")
    assert await notifier.drain(5) and notifier.outbox.pending_counts() == {}  # no fourth message to come
    assert [r.json["status"] for r in server.requests] == ["firing", "firing", "resolved"]
    tracker.close()
