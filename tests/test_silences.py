"""Silences: the store (state_dir/silences.json), the notifier muting dbwatch's own receivers, and the API on a
real agent.

Starts: real aiohttp HTTP servers on loopback as receivers (tests/notifyutil.Recorder) for the notifier cases;
for the end-to-end cases a real `dbwatch run` process whose PostgreSQL target points at a loopback port
nothing listens on (so `TargetDown` fires), a threaded webhook receiver and a real Alertmanager
(Debian's prometheus-alertmanager, the fixture of test_notify_crash.py).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dbwatch.agent.notify import SILENCED_BY, Notifier
from dbwatch.agent.silences import SilenceError, SilenceStore
from dbwatch.exporters.receivers import NotificationsConfig, parse_receivers
from tests.agentproc import AgentProcess, sample_value
from tests.helpers import free_port, wait_for, wait_until
from tests.notifyutil import T0, Clock, Recorder, make_alert, resolved
from tests.test_alerting_e2e import Hook
from tests.test_notify_crash import alertmanager  # noqa: F401  (a fixture: a real Alertmanager)

DOWN = [{"name": "alertname", "value": "TargetDown"}, {"name": "target", "value": "down1"}]


# -- the store ----------------------------------------------------------------------------------------------


def test_a_silence_matches_as_alertmanager_does(tmp_path):
    store = SilenceStore(tmp_path, Clock())
    silence = store.add([{"name": "alertname", "value": "TargetDown"},
                         {"name": "target", "value": "pg-.*", "isRegex": True},
                         {"name": "env", "value": "dev", "isEqual": False}],
                        duration="2h", created_by="ann", comment="maintenance")
    assert store.silencing({"alertname": "TargetDown", "target": "pg-1"}) == silence
    assert store.silencing({"alertname": "TargetDown", "target": "pg-1", "env": "prod"}) == silence
    assert store.silencing({"alertname": "TargetDown", "target": "pg-1", "env": "dev"}) is None
    assert store.silencing({"alertname": "TargetDown", "target": "xpg-1"}) is None, "regexes are anchored"
    assert store.silencing({"alertname": "ReplicationLagHigh", "target": "pg-1"}) is None
    body = silence.as_json(T0)
    assert body["status"] == {"state": "active"} and body["createdBy"] == "ann"
    assert body["matchers"][1] == {"name": "target", "value": "pg-.*", "isRegex": True, "isEqual": True}
    assert body["startsAt"] == "2023-11-14T22:13:20.000Z" and body["endsAt"] == "2023-11-15T00:13:20.000Z"


def test_pending_active_expired_follow_the_clock_and_expire_ends_it_now(tmp_path):
    clock = Clock()
    store = SilenceStore(tmp_path, clock)
    later = store.add(DOWN, ends_at=T0 + 600, starts_at=T0 + 60, created_by="ann", comment="tonight")
    now = store.add(DOWN, duration="10m", created_by="bob", comment="now")
    assert [s.state(clock()) for s in store.list()] == ["active", "pending"]
    assert store.silencing({"alertname": "TargetDown", "target": "down1"}) == now
    store.expire(now.id)
    assert store.silencing({"alertname": "TargetDown", "target": "down1"}) is None
    clock.advance(61)
    assert store.silencing({"alertname": "TargetDown", "target": "down1"}).id == later.id
    families = {f.name: dict(f.samples) for f in store.metrics()}
    assert families["dbwatch_silences"] == {("active",): 1, ("pending",): 0, ("expired",): 1}
    with pytest.raises(SilenceError, match="already expired"):
        store.expire(now.id)
    with pytest.raises(KeyError):
        store.expire("no-such-id")


def test_bad_silences_are_refused_with_every_problem_naming_its_field(tmp_path):
    store = SilenceStore(tmp_path, Clock())
    with pytest.raises(SilenceError) as caught:
        store.add([{"name": "1bad", "value": 3}, {"name": "x", "value": "(", "isRegex": True, "extra": 1}],
                  duration="soon", created_by="", comment=5)
    assert caught.value.problems == [
        'matchers[0].name: expected a label name like "alertname", got "1bad"',
        "matchers[0].value: expected a string, got 3",
        "matchers[1]: unknown field(s) extra",
        "matchers[1].value: not a valid regular expression (missing ), unterminated subpattern at position 0)",
        'duration: expected a duration like "15s", got "soon"',
        "createdBy: required, and not empty",
        "comment: expected a string, got 5",
    ]
    with pytest.raises(SilenceError) as caught:
        store.add([{"name": "alertname", "value": ".*", "isRegex": True}], ends_at="2020-01-01T00:00:00Z",
                  created_by="a", comment="b")
    assert caught.value.problems == [
        "matchers: at least one matcher must not match an empty or missing label",
        "endsAt: 2020-01-01T00:00:00.000Z is in the past",
    ]
    with pytest.raises(SilenceError, match=r"^endsAt: required \(or a duration"):
        store.add(DOWN, created_by="a", comment="b")
    assert store.list() == []


def test_silences_persist_and_a_damaged_file_is_moved_aside_with_one_log_line(tmp_path, caplog):
    clock = Clock()
    kept = SilenceStore(tmp_path, clock).add(DOWN, duration="1h", created_by="ann", comment="kept")
    again = SilenceStore(tmp_path, clock)
    assert [s.id for s in again.list()] == [kept.id] and again.list()[0] == kept
    (tmp_path / "silences.json").write_text('{"silences": [{"id": "not-a-uuid"')
    caplog.set_level(logging.INFO)
    fresh = SilenceStore(tmp_path, clock)
    assert fresh.list() == []
    assert fresh.moved_aside is not None and fresh.moved_aside.name.startswith("silences.json.damaged-")
    lines = [r.getMessage() for r in caplog.records if "silences" in r.getMessage()]
    assert len(lines) == 1 and "moved it aside" in lines[0]
    fresh.add(DOWN, duration="1h", created_by="ann", comment="new")
    assert len(json.loads((tmp_path / "silences.json").read_text())["silences"]) == 1


def test_a_state_dir_that_cannot_be_written_keeps_silences_in_memory_until_it_can(tmp_path, caplog):
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state directory should be")
    caplog.set_level(logging.INFO)
    store = SilenceStore(blocked, Clock())
    first = store.add(DOWN, duration="1h", created_by="ann", comment="one")
    second = store.add(DOWN, duration="2h", created_by="ann", comment="two")
    assert store.error is not None and {s.id for s in store.list()} == {first.id, second.id}
    assert len([r for r in caplog.records if "cannot be written" in r.getMessage()]) == 1, "said once"
    blocked.unlink()
    store.retry()  # what a scrape of the metrics does
    assert store.error is None
    assert {s.id for s in SilenceStore(blocked, Clock()).list()} == {first.id, second.id}


# -- the notifier -------------------------------------------------------------------------------------------


async def test_a_silenced_alert_skips_dbwatchs_receivers_reaches_alertmanager_noted_and_goes_out_after(tmp_path):
    clock = Clock()
    hook, am = await Recorder().start(), await Recorder().start()
    store = SilenceStore(tmp_path, clock)
    notifier = Notifier(parse_receivers([{"name": "oncall", "type": "webhook", "url": hook.url + "/hook"},
                                         {"name": "am", "type": "alertmanager", "url": am.url}]),
                        tmp_path, clock, settings=NotificationsConfig(min_backoff=0.05, max_backoff=0.2))
    notifier.silenced_by = store.silenced_by
    await notifier.start()
    try:
        silence = store.add([{"name": "target", "value": "pg1"}], duration="10m", created_by="ann", comment="m")
        down = make_alert(target="pg1")
        notifier.update([down], clock())
        await wait_until(lambda: am.requests, 10, "the alert at Alertmanager")
        [sent] = am.requests[0].json
        assert sent["annotations"][SILENCED_BY] == silence.id
        assert await notifier.drain(10)
        assert hook.requests == [], "muted for the webhook"
        notifier.update([down], clock.advance(300))
        assert await notifier.drain(10) and hook.requests == []
        posted = len(am.requests)  # the first post, and the resend 300 s later: both noted
        assert all(r.json[0]["annotations"][SILENCED_BY] == silence.id for r in am.requests)
        store.expire(silence.id)
        notifier.update([down], clock.advance(1))
        await wait_until(lambda: hook.requests, 10, "the alert at the webhook once the silence ended")
        assert hook.requests[0].json["alerts"][0]["status"] == "firing"
        # Alertmanager hears at once that dbwatch no longer mutes it (not only at its next resend).
        await wait_until(lambda: len(am.requests) > posted, 10, "a re-post to Alertmanager without the note")
        assert SILENCED_BY not in am.requests[-1].json[0]["annotations"]
        # A receiver told of an alert still hears it resolve, even while a new silence mutes its repeats.
        store.add([{"name": "target", "value": "pg1"}], duration="10m", created_by="ann", comment="again")
        notifier.update([resolved(down, clock.advance(5))], clock())
        await wait_until(lambda: len(hook.requests) == 2, 10, "the resolve at the webhook")
        assert hook.requests[1].json["alerts"][0]["status"] == "resolved"
    finally:
        await notifier.stop(grace=0.5)
        await hook.stop()
        await am.stop()


# -- a real agent ---------------------------------------------------------------------------------------------


@pytest.fixture
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


def down_target() -> dict:
    """A PostgreSQL target on a loopback port nothing listens on: TargetDown fires at its first collection."""
    return {"name": "down1", "engine": "postgres", "dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
            "interval": "1s", "timeout": "2s", "collectors": {"statements": {"enabled": False}}}


def agent_config(hook_url: str, am_url: str, targets: list[dict]) -> dict:
    return {
        "targets": targets,
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook_url, "group_wait": "0s"},
                      {"name": "am", "type": "alertmanager", "url": am_url, "resend_interval": "2s"}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    }


def send(agent: AgentProcess, method: str, path: str, body: object = None,
         content_type: str = "application/json") -> tuple[int, object]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(agent.url(path), data=data, method=method,
                                     headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def am_alerts(url: str) -> list[dict]:
    query = urllib.parse.quote('alertname="TargetDown"')
    with urllib.request.urlopen(f"{url}/api/v2/alerts?filter={query}", timeout=5) as response:
        return json.loads(response.read())


def muted_alert(agent: AgentProcess) -> dict | None:
    return next((a for a in agent.get("/api/v1/alerts")
                 if a["labels"]["alertname"] == "TargetDown" and a["state"] == "firing" and a["silenced"]), None)


def test_a_silence_posted_to_the_agent_mutes_the_webhook_until_it_expires(tmp_path, hook, alertmanager):  # noqa: F811
    am_url, _ = alertmanager
    agent = AgentProcess(tmp_path, agent_config(hook.url, am_url, [])).start()
    try:
        status, answer = send(agent, "POST", "/api/v1/silences", {
            "matchers": DOWN, "duration": "12s", "createdBy": "ann", "comment": "planned restart"})
        assert status == 200, answer
        silence_id = answer["silenceID"]
        [listed] = agent.get("/api/v1/silences")
        assert listed["id"] == silence_id and listed["status"]["state"] == "active"
        agent.write_config(agent_config(hook.url, am_url, [down_target()]))
        agent.signal(1)  # SIGHUP: the target is added while the silence is in force
        alert = wait_for(lambda: muted_alert(agent), 30, "TargetDown firing and silenced")
        assert alert["silencedBy"] == [silence_id]
        noted = wait_for(lambda: [a for a in am_alerts(am_url) if a["labels"].get("target") == "down1"], 30,
                         "TargetDown at Alertmanager")
        assert noted[0]["annotations"].get("dbwatch_silenced_by") == silence_id
        metrics = agent.metrics()
        # Queued for Alertmanager in the same transaction as it would have been for the webhook: nothing is.
        assert sample_value(metrics, "dbwatch_notification_queue_length", receiver="oncall") == 0
        assert sample_value(metrics, "dbwatch_notifications_total", receiver="oncall", result="sent") == 0
        assert sample_value(metrics, "dbwatch_silences", state="active") == 1
        assert hook.alerts("TargetDown", "firing") == []
        ends = _parse(listed["endsAt"])
        wait_for(lambda: hook.alerts("TargetDown", "firing"), 40, "TargetDown at the webhook after the silence")
        print(f"delivered {time.time() - ends:.1f}s after the silence ended")
        assert sample_value(agent.metrics(), "dbwatch_silences", state="expired") == 1
        assert not agent.get("/api/v1/alerts")[0]["silenced"]
    finally:
        agent.stop()


def test_a_silence_survives_a_restart_and_expiring_it_by_delete_delivers_the_alert(tmp_path, hook, alertmanager):  # noqa: F811
    am_url, _ = alertmanager
    config = agent_config(hook.url, am_url, [down_target()])
    agent = AgentProcess(tmp_path, config)
    # Created before the agent ever runs the target: the store is the same file the agent reads.
    silence = SilenceStore(tmp_path / "state").add(DOWN, duration="1h", created_by="ann", comment="long")
    agent.start()
    try:
        wait_for(lambda: muted_alert(agent), 30, "TargetDown firing and silenced")
        status, answer = send(agent, "POST", "/api/v1/silences", {
            "matchers": [{"name": "severity", "value": "critical"}], "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "bob", "comment": "too long"})
        assert status == 400 and answer == "endsAt: a silence lasts at most 366 days\n"
        agent.stop()
        agent.start()
        assert [s["id"] for s in agent.get("/api/v1/silences")] == [silence.id]
        alert = wait_for(lambda: muted_alert(agent), 30, "TargetDown firing and silenced after the restart")
        assert alert["silencedBy"] == [silence.id]
        assert hook.alerts("TargetDown", "firing") == []
        status, answer = send(agent, "DELETE", f"/api/v1/silence/{silence.id}")
        assert status == 200 and answer["status"]["state"] == "expired"
        wait_for(lambda: hook.alerts("TargetDown", "firing"), 30, "TargetDown at the webhook after the DELETE")
        assert send(agent, "DELETE", f"/api/v1/silence/{silence.id}") == (
            400, f"id: silence {silence.id} has already expired\n")
        assert send(agent, "DELETE", "/api/v1/silence/nope") == (404, "id: no silence 'nope'\n")
    finally:
        agent.stop()


def test_the_silences_api_refuses_bad_input_with_one_line(tmp_path):
    agent = AgentProcess(tmp_path, {"targets": [down_target()]}).start()
    try:
        assert send(agent, "POST", "/api/v1/silences", b"{nope") == (
            400, "body: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))\n")
        assert send(agent, "POST", "/api/v1/silences", b'{"matchers": []}', content_type="text/plain") == (
            400, "body: expected JSON with Content-Type: application/json, got text/plain\n")
        status, answer = send(agent, "POST", "/api/v1/silences", {
            "id": "x", "matchers": [{"name": "target"}], "duration": 5, "createdBy": "a", "comment": "b", "by": 1})
        assert status == 400
        assert answer == ("id: a silence cannot be changed; expire it and create a new one; body: unknown field(s) "
                          "by; matchers[0].value: expected a string, got null\n")
        assert agent.get("/api/v1/silences") == []
    finally:
        agent.stop()


def _parse(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
