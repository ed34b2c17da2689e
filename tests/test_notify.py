"""Notifications: formats, routing, grouping, repeats, retries and restarts.

Starts: real aiohttp HTTP servers on loopback as receivers (tests/notifyutil.Recorder), which record every
request. The crash (SIGKILL) and real-Alertmanager cases are in test_notify_crash.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import shutil
import subprocess
import time

import pytest

from dbwatch.model import MetricType
from dbwatch.agent.notify import Notifier
from dbwatch.exporters.receivers import NotificationsConfig, parse_receivers
from tests.notifyutil import T0, Clock, Recorder, make_alert, resolved
from tests.helpers import free_port, wait_until

FAST = NotificationsConfig(min_backoff=0.05, max_backoff=0.2)


@pytest.fixture
async def notifiers(tmp_path):
    """Make notifiers on ``tmp_path`` (the state dir); stops them at the end of the test."""
    made: list[Notifier] = []

    async def make(receivers: list[dict], clock=time.time, settings=FAST, start=True) -> Notifier:
        notifier = Notifier(parse_receivers(receivers), tmp_path, clock, settings=settings,
                            external_url="http://dbwatch.test:9847")
        made.append(notifier)
        if start:
            await notifier.start()
        return notifier

    yield make
    for notifier in made:
        if notifier._session is not None:
            await notifier.stop(grace=0.5)


@pytest.fixture
async def recorders():
    started: list[Recorder] = []

    async def make(respond=lambda request: 200, port: int = 0, start=True) -> Recorder:
        recorder = Recorder(respond=respond, port=port)
        started.append(recorder)
        return await recorder.start() if start else recorder

    yield make
    for recorder in started:
        await recorder.stop()


def hook(name: str, url: str, **extra) -> dict:
    return {"name": name, "type": "webhook", "url": url, **extra}


def parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- formats ----------------------------------------------------------------------------------------------


async def test_webhook_body_is_alertmanager_payload_v4_signed_with_custom_headers(
    notifiers, recorders, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HOOK_SECRET", "s3cr3t-hmac-value")
    server = await recorders()
    notifier = await notifiers([hook("oncall", server.url + "/hook", headers={"X-Team": "dba"},
                                     hmac_secret_env="HOOK_SECRET")])
    firing = make_alert()
    notifier.update([firing], T0)
    await wait_until(lambda: len(server.requests) == 1, 5, "the webhook")
    [request] = server.requests
    body = request.json
    assert request.path == "/hook"
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "oncall"
    assert body["truncatedAlerts"] == 0 and body["externalURL"] == "http://dbwatch.test:9847"
    assert body["commonLabels"] == firing.labels
    [alert] = body["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert alert["fingerprint"] == firing.fingerprint and alert["labels"]["alertname"] == "TargetDown"
    assert parse_time(alert["startsAt"]) == T0 and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["annotations"]["summary"] == "pg1 is not answering"
    assert request.headers["X-Team"] == "dba"
    assert request.headers["Content-Type"] == "application/json"
    assert len(request.key) == 32
    expected = "sha256=" + hmac.new(b"s3cr3t-hmac-value", request.raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Dbwatch-Signature"], expected)

    notifier.update([resolved(firing, T0 + 60)], T0 + 60)
    await wait_until(lambda: len(server.requests) == 2, 5, "the resolved webhook")
    body = server.requests[1].json
    assert body["status"] == "resolved" and body["alerts"][0]["status"] == "resolved"
    assert parse_time(body["alerts"][0]["endsAt"]) == T0 + 60
    assert server.requests[1].key != request.key
    assert "s3cr3t-hmac-value" not in caplog.text and "s3cr3t-hmac-value" not in repr(notifier.receivers)


async def test_slack_message_names_severity_alert_target_and_summary(notifiers, recorders, monkeypatch, caplog):
    server = await recorders()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url + "/services/T000/B000/XXXXsecretXXXX")
    notifier = await notifiers([{"name": "slack", "type": "slack", "url_env": "SLACK_WEBHOOK_URL"}])
    notifier.update([make_alert(summary="no answer for 30s"), make_alert("LongTransaction", severity="warning")], T0)
    await wait_until(lambda: len(server.requests) == 1, 5, "the Slack message")
    text = server.requests[0].json["text"]
    assert server.requests[0].path == "/services/T000/B000/XXXXsecretXXXX"
    assert "[FIRING:2]" in text
    assert "*critical* `TargetDown` on `pg1`: no answer for 30s" in text
    assert "*warning* `LongTransaction` on `pg1`" in text
    assert "XXXXsecretXXXX" not in caplog.text


async def test_pagerduty_trigger_then_resolve_with_the_fingerprint_as_dedup_key(
    notifiers, recorders, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PD_KEY", "R0UT1NGKEY0123456789")
    server = await recorders(lambda request: 202)
    notifier = await notifiers([{"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY",
                                 "url": server.url + "/v2/enqueue"}])
    firing = make_alert(severity="warning")
    notifier.update([firing], T0)
    await wait_until(lambda: len(server.requests) == 1, 5, "the trigger")
    notifier.update([resolved(firing, T0 + 30)], T0 + 30)
    await wait_until(lambda: len(server.requests) == 2, 5, "the resolve")
    trigger, resolve = (r.json for r in server.requests)
    assert trigger["routing_key"] == "R0UT1NGKEY0123456789" and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == firing.fingerprint
    assert trigger["payload"]["source"] == "pg1" and trigger["payload"]["severity"] == "warning"
    assert "TargetDown" in trigger["payload"]["summary"]
    assert trigger["payload"]["custom_details"]["labels"] == firing.labels
    assert resolve == {"routing_key": "R0UT1NGKEY0123456789", "event_action": "resolve",
                       "dedup_key": firing.fingerprint}
    assert "R0UT1NGKEY0123456789" not in caplog.text
    # the routing key is added at send time, never stored in the outbox
    assert "R0UT1NGKEY0123456789" not in repr(notifier.outbox.rows())


async def test_alertmanager_body_is_api_v2_with_endsAt_ahead_while_firing(notifiers, recorders):
    server = await recorders()
    clock = Clock()
    notifier = await notifiers([{"name": "am", "type": "alertmanager", "url": server.url,
                                 "resend_interval": "1m"}], clock=clock)
    firing = make_alert()
    notifier.update([firing], T0)
    await wait_until(lambda: len(server.requests) == 1, 5, "the post")
    assert server.requests[0].path == "/api/v2/alerts"
    [posted] = server.requests[0].json
    assert set(posted) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert posted["labels"] == firing.labels and parse_time(posted["startsAt"]) == T0
    assert parse_time(posted["endsAt"]) == T0 + 240
    notifier.update([firing], clock.advance(30))
    notifier.update([firing], clock.advance(31))  # past resend_interval: posted again
    await wait_until(lambda: len(server.requests) == 2, 5, "the re-post")
    assert parse_time(server.requests[1].json[0]["endsAt"]) == T0 + 61 + 240
    notifier.update([resolved(firing, T0 + 70)], clock.advance(9))
    await wait_until(lambda: len(server.requests) == 3, 5, "the resolve")
    assert parse_time(server.requests[2].json[0]["endsAt"]) == T0 + 70


# -- routing, grouping, repeat, resolve ------------------------------------------------------------------


async def test_routes_match_on_labels_and_group_wait_batches_alerts_firing_together(notifiers, recorders):
    critical, everything = await recorders(), await recorders()
    clock = Clock()
    notifier = await notifiers([
        hook("critical", critical.url, match={"severity": "critical", "env": "prod"}, group_wait="10s"),
        hook("everything", everything.url),
    ], clock=clock)
    down = make_alert(env="prod")
    lag = make_alert("ReplicationLagHigh", env="prod")
    staging = make_alert(target="pg2", env="staging")
    notifier.update([down, staging], T0)
    notifier.update([down, staging, lag], clock.advance(5))
    await wait_until(lambda: len(everything.requests) == 2, 5, "the ungrouped receiver")
    assert not critical.requests  # still in its group wait
    notifier.update([down, staging, lag], clock.advance(5))
    await wait_until(lambda: len(critical.requests) == 1, 5, "one grouped message")
    names = sorted(a["labels"]["alertname"] for a in critical.requests[0].json["alerts"])
    assert names == ["ReplicationLagHigh", "TargetDown"]
    assert critical.requests[0].json["commonLabels"] == {"severity": "critical", "target": "pg1", "env": "prod"}
    assert await notifier.drain(5)  # nothing left to send: the outbox holds every message there will be
    assert len(notifier.outbox.rows("critical")) == 1 and len(notifier.outbox.rows("everything")) == 2
    assert len(critical.requests) == 1 and len(everything.requests) == 2


async def test_firing_is_repeated_after_repeat_interval_and_resolve_is_sent_once(notifiers, recorders):
    server = await recorders()
    clock = Clock()
    notifier = await notifiers([hook("oncall", server.url, repeat_interval="4h")], clock=clock)
    firing = make_alert()
    notifier.update([firing], T0)
    for _ in range(3):
        notifier.update([firing], clock.advance(3600))  # 1h, 2h, 3h: nothing new
    await wait_until(lambda: len(server.requests) == 1, 5, "the first notification")
    notifier.update([firing], clock.advance(3600))
    await wait_until(lambda: len(server.requests) == 2, 5, "the repeat")
    gone = resolved(firing, clock.advance(60))
    for _ in range(3):
        notifier.update([gone], clock.advance(15))
    await wait_until(lambda: len(server.requests) == 3, 5, "the resolve")
    assert await notifier.drain(5) and len(notifier.outbox.rows("oncall")) == 3  # and no fourth is queued
    statuses = [r.json["status"] for r in server.requests]
    assert statuses == ["firing", "firing", "resolved"]
    assert len({r.key for r in server.requests}) == 3


async def test_an_alert_resolving_within_group_wait_is_never_sent(notifiers, recorders):
    server = await recorders()
    clock = Clock()
    notifier = await notifiers([hook("oncall", server.url, group_wait="30s")], clock=clock)
    firing = make_alert()
    notifier.update([firing], T0)
    notifier.update([resolved(firing, T0 + 10)], clock.advance(10))
    notifier.update([], clock.advance(60))
    assert notifier.outbox.rows() == []  # never queued, so never sent
    assert server.requests == []


# -- receivers that fail ---------------------------------------------------------------------------------


async def test_a_receiver_that_is_down_for_a_while_gets_everything_once_it_is_up(notifiers, recorders):
    port = free_port()
    notifier = await notifiers([hook("late", f"http://127.0.0.1:{port}")])
    alerts = [make_alert(target=f"pg{i}") for i in range(3)]
    notifier.update(alerts, T0)
    await wait_until(lambda: notifier._counts[("late", "retried")] >= 2, 5, "failed attempts")
    server = await recorders(port=port)
    await wait_until(lambda: notifier.outbox.pending_counts() == {}, 5, "delivery")
    [request] = server.unique()
    assert len(server.requests) == 1
    assert sorted(a["labels"]["target"] for a in request.json["alerts"]) == ["pg0", "pg1", "pg2"]
    [row] = notifier.outbox.rows()
    assert row["status"] == "delivered" and row["attempts"] >= 3 and row["key"] == request.key


async def test_a_receiver_answering_500_is_retried_with_the_same_idempotency_key(notifiers, recorders):
    answers = iter([500, 503, 500])
    server = await recorders(lambda request: next(answers, 200))
    notifier = await notifiers([hook("flaky", server.url)])
    notifier.update([make_alert()], T0)
    await wait_until(lambda: notifier.outbox.pending_counts() == {}, 5, "delivery")
    assert len(server.requests) == 4 and len(server.unique()) == 1
    metrics = {m.name: m for m in notifier.metrics()}
    assert metrics["dbwatch_notifications_total"].value(receiver="flaky", result="retried") == 3
    assert metrics["dbwatch_notifications_total"].value(receiver="flaky", result="sent") == 1
    assert metrics["dbwatch_notification_queue_length"].value(receiver="flaky") == 0


async def test_a_hanging_receiver_times_out_and_never_delays_the_others(notifiers, recorders):
    hanging = await recorders(lambda request: "hang" if len(hanging.requests) == 1 else 200)
    healthy = await recorders()
    notifier = await notifiers([hook("slow", hanging.url, timeout="1.5s"), hook("fast", healthy.url)])
    started = time.monotonic()
    notifier.update([make_alert()], T0)
    await wait_until(lambda: len(healthy.requests) == 1, 5, "the healthy receiver")
    assert healthy.requests[0].at - started < 0.5  # not after the hanging one's 1.5 s timeout
    notifier.update([make_alert(target="pg2")], T0 + 1)
    await wait_until(lambda: len(healthy.requests) == 2, 5, "the healthy receiver's second message")
    assert healthy.requests[1].at - started < 1.0
    await wait_until(lambda: notifier.outbox.pending_counts() == {}, 8, "the slow receiver's delivery")
    hanging.release()
    assert time.monotonic() - started >= 1.5
    first, *others = hanging.requests
    assert others[0].key == first.key  # the timed-out request is retried with its key
    assert len(hanging.unique()) == 2  # pg1, then pg2: in order, each once after dedup


async def test_a_permanent_client_error_is_given_up_at_once_and_counted(notifiers, recorders, caplog):
    server = await recorders(lambda request: 400)
    notifier = await notifiers([hook("broken", server.url)])
    notifier.update([make_alert()], T0)
    await wait_until(lambda: notifier.outbox.pending_counts() == {}, 5, "the failure")
    assert len(server.requests) == 1
    assert notifier.outbox.rows()[0]["status"] == "failed"
    failed = {m.name: m for m in notifier.metrics()}["dbwatch_notifications_failed_total"]
    assert failed.type == MetricType.COUNTER and failed.value(receiver="broken") == 1
    assert "given up" in caplog.text and "HTTP 400" in caplog.text


async def test_delivery_is_given_up_after_max_age(notifiers, caplog):
    clock = Clock()
    settings = NotificationsConfig(min_backoff=0.05, max_backoff=0.1, max_age="1h")
    notifier = await notifiers([hook("dead", f"http://127.0.0.1:{free_port()}")], clock=clock, settings=settings)
    notifier.update([make_alert()], T0)
    await wait_until(lambda: notifier._counts[("dead", "retried")] >= 1, 5, "a failed attempt")
    clock.advance(3600)
    await wait_until(lambda: notifier.outbox.pending_counts() == {}, 5, "giving up")
    assert notifier.outbox.rows()[0]["status"] == "failed"
    assert "given up" in caplog.text and "cannot connect" in caplog.text


# -- restarts --------------------------------------------------------------------------------------------


async def test_rows_queued_before_a_restart_are_delivered_after_it(notifiers, recorders):
    server = await recorders()
    first = await notifiers([hook("oncall", server.url)], start=False)
    first.update([make_alert()], T0)  # queued, never started: as if the agent stopped right after
    first.outbox.close()
    assert server.requests == []
    await notifiers([hook("oncall", server.url)])
    await wait_until(lambda: len(server.requests) == 1, 5, "delivery after the restart")


async def test_after_a_restart_a_delivered_alert_is_not_resent_before_repeat_and_resolves_once(notifiers, recorders):
    server = await recorders()
    clock = Clock()
    receivers = [hook("oncall", server.url, repeat_interval="1h")]
    firing = make_alert()
    first = await notifiers(receivers, clock=clock)
    first.update([firing], T0)
    await wait_until(lambda: len(server.requests) == 1, 5, "the first notification")
    await first.stop(grace=1)

    second = await notifiers(receivers, clock=clock)
    second.update([firing], clock.advance(600))
    second.update([firing], clock.advance(600))
    assert second.outbox.pending_counts() == {}  # nothing queued: the delivered alert is not resent
    assert len(server.requests) == 1
    second.update([resolved(firing, clock.advance(60))], clock())
    await wait_until(lambda: len(server.requests) == 2, 5, "the resolve")
    await second.stop(grace=1)

    third = await notifiers(receivers, clock=clock)
    third.update([resolved(firing, T0 + 1260)], clock.advance(10))
    assert third.outbox.pending_counts() == {}  # the resolve was delivered before the restart: not queued again
    assert [r.json["status"] for r in server.requests] == ["firing", "resolved"]


# -- metrics ---------------------------------------------------------------------------------------------


async def test_notification_metrics_pass_promtool_lint(notifiers, recorders):
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed"
    server = await recorders()
    notifier = await notifiers([hook("oncall", server.url), hook("other", server.url)])
    notifier.update([make_alert()], T0)
    await wait_until(lambda: notifier.outbox.pending_counts() == {}, 5, "delivery")
    lines = []
    for family in notifier.metrics():
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.type}"]
        for values, value in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in zip(family.labelnames, values))
            lines.append(f"{family.name}{{{labels}}} {value}")
    exposition = "\n".join(lines) + "\n"
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dbwatch_notification_queue_length" in exposition


async def test_group_wait_is_flushed_between_evaluations(notifiers, recorders):
    server = await recorders()
    notifier = await notifiers([hook("oncall", server.url, group_wait="300ms")])
    start = time.monotonic()
    notifier.update([make_alert(fired_at=time.time())], time.time())  # no further evaluation comes
    await wait_until(lambda: len(server.requests) == 1, 5, "the message after group_wait")
    assert 0.25 <= time.monotonic() - start < 2


async def test_reconfigure_adds_and_removes_receivers(notifiers, recorders):
    old, new = await recorders(), await recorders()
    notifier = await notifiers([hook("old", old.url)])
    await notifier.reconfigure(parse_receivers([hook("new", new.url)]))
    notifier.update([make_alert()], T0)
    await wait_until(lambda: len(new.requests) == 1, 5, "the new receiver")
    assert notifier.outbox.rows("old") == []
    assert old.requests == []


# -- configuration ---------------------------------------------------------------------------------------

CONTRACT = """
receivers:
  - name: oncall
    type: webhook
    url: http://127.0.0.1:9000/hook
    match: {severity: critical}
    group_wait: 0s
    repeat_interval: 4h
    headers: {X-Team: dba}
    hmac_secret_env: HOOK_SECRET
    timeout: 10s
  - name: am
    type: alertmanager
    url: http://127.0.0.1:9093
  - name: pd
    type: pagerduty
    routing_key_env: PD_KEY
    url: https://events.pagerduty.com/v2/enqueue
  - name: slack
    type: slack
    url_env: SLACK_WEBHOOK_URL
notifications:
  max_age: 12h
  max_backoff: 1m
"""


def test_the_receivers_contract_parses():
    from dbwatch.agent.config import parse_config

    config = parse_config(CONTRACT)
    oncall, am, pd, slack = config.receivers
    assert (oncall.type, oncall.repeat_interval, oncall.timeout, oncall.headers) == ("webhook", 14400, 10, {"X-Team": "dba"})
    assert oncall.matches({"severity": "critical", "target": "x"}) and not oncall.matches({"severity": "warning"})
    assert am.target_url() == "http://127.0.0.1:9093/api/v2/alerts" and am.resend_interval == 60
    assert pd.routing_key_env == "PD_KEY" and slack.url_env == "SLACK_WEBHOOK_URL"
    assert config.notifications.max_age == 43200 and config.notifications.max_backoff == 60


@pytest.mark.parametrize("receiver, problem", [
    ({"name": "x", "type": "email"}, "receivers[0].type: expected one of webhook, alertmanager, slack, pagerduty"),
    ({"name": "x", "type": "webhook", "url": "http://a", "colour": "red"}, "receivers[0].colour: unknown key"),
    ({"name": "x", "type": "webhook", "url": "http://u:hunter2@a/"}, "receivers[0].url: holds a password"),
    ({"name": "x", "type": "webhook", "url": "http://a", "timeout": "soon"}, "receivers[0].timeout: expected a duration"),
    ({"name": "x", "type": "slack"}, "receivers[0]: needs one of url_env, url_file"),
    ({"name": "x", "type": "pagerduty"}, "receivers[0]: needs one of routing_key_env, routing_key_file"),
    ({"name": "x", "type": "alertmanager", "url": "http://a", "repeat_interval": "1h"},
     "receivers[0].repeat_interval: not for Alertmanager receivers"),
    ({"name": "x", "type": "webhook", "url": "http://a", "headers": {"Idempotency-Key": "1"}},
     "receivers[0].headers: header Idempotency-Key is set by dbwatch"),
])
def test_bad_receivers_name_the_path_and_never_show_a_secret(receiver, problem):
    import yaml

    from dbwatch.agent.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump({"receivers": [receiver]}))
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems
    assert "hunter2" not in "\n".join(caught.value.problems)


def test_two_receivers_with_one_name_are_an_error():
    from dbwatch.agent.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config("receivers: [{name: a, type: webhook, url: 'http://a'}, {name: a, type: webhook, url: 'http://b'}]")
    assert caught.value.problems == ["receivers[1].name: 'a' is already the name of another receiver"]
