"""Alerts end to end: a real `dbwatch run` watching real PostgreSQL servers, notifying a real HTTP
receiver (a threaded server in the test) and a real Alertmanager (Debian's prometheus-alertmanager).

Starts: the session's throwaway PostgreSQL 15 primary and its streaming standby, a scratch PostgreSQL
that a test stops, an Alertmanager on a free loopback port, a throwaway MariaDB and a redis-server.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.agentproc import AgentProcess, sample_value
from tests.pgcluster import BIN
from tests.mariadbserver import mariadb_primary  # noqa: F401  (a fixture: a throwaway MariaDB)
from tests.redisserver import RedisServer
from tests.test_notify_crash import alertmanager  # noqa: F401  (a fixture: a real Alertmanager)
from tests.helpers import TimedOut, wait_for


class Hook:
    """A webhook receiver that records every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def alerts(self, name: str, status: str) -> list[dict]:
        return [a for body in self.bodies for a in body["alerts"]
                if a["labels"]["alertname"] == name and a["status"] == status]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


@pytest.fixture
def agent(tmp_path):
    started: list[AgentProcess] = []

    def start(config: dict) -> AgentProcess:
        process = AgentProcess(tmp_path, config).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def pg(name: str, dsn: str) -> dict:
    return {"name": name, "engine": "postgres", "dsn": dsn, "interval": "1s", "timeout": "3s",
            "collectors": {"statements": {"enabled": False}}}


def test_a_transaction_held_past_the_threshold_fires_and_resolves_at_the_webhook(agent, hook, pg_primary):
    proc = agent({
        "targets": [pg("main", pg_primary.dsn())],
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "group_wait": "0s"}],
        "rules": {"overrides": {"LongTransaction": {"threshold": 2, "for": "0s"}}},
    })
    holder = subprocess.Popen(
        [str(BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg_primary.port), "-U", "postgres"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    holder.stdin.write("BEGIN; LOCK TABLE pg_class IN ACCESS SHARE MODE; SELECT pg_sleep(8); COMMIT;\n")
    holder.stdin.flush()
    try:
        wait_for(lambda: hook.alerts("LongTransaction", "firing"), 30, "LongTransaction at the webhook")
        [body] = [b for b in hook.bodies if b["alerts"][0]["labels"]["alertname"] == "LongTransaction"][:1]
        assert body["version"] == "4" and body["receiver"] == "oncall"
        alert = hook.alerts("LongTransaction", "firing")[0]
        assert alert["labels"]["target"] == "main" and alert["labels"]["severity"]
        listed = proc.get("/api/v1/alerts")
        assert any(a["labels"]["alertname"] == "LongTransaction" and a["state"] == "firing" for a in listed)
        assert 'dbwatch_alerts{' in proc.metrics()
    finally:
        holder.stdin.close()
        holder.wait(30)
    wait_for(lambda: hook.alerts("LongTransaction", "resolved"), 30, "the resolved notification")
    # Nothing more to come: the agent's outbox is empty and all it sent has arrived.
    def drained() -> str | None:
        metrics = proc.metrics()
        return metrics if sample_value(metrics, "dbwatch_notification_queue_length", receiver="oncall") == 0 else None

    metrics = wait_for(drained, 10, "an empty outbox")
    assert sample_value(metrics, "dbwatch_notifications_total", receiver="oncall", result="sent") == len(hook.bodies)
    fingerprints = {a["fingerprint"] for a in hook.alerts("LongTransaction", "resolved")}
    assert len(hook.alerts("LongTransaction", "resolved")) == len(fingerprints), "one resolve per alert"


def test_a_stopped_target_fires_target_down(agent, hook, pg_primary, pg_scratch):
    proc = agent({
        "targets": [pg("steady", pg_primary.dsn()), pg("flaky", pg_scratch.dsn())],
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "match": {"severity": "critical"}}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    })
    wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "ready")
    pg_scratch.stop()
    wait_for(lambda: hook.alerts("TargetDown", "firing"), 30, "TargetDown at the webhook")
    assert {a["labels"]["target"] for a in hook.alerts("TargetDown", "firing")} == {"flaky"}


def test_a_paused_standby_fires_replication_lag(agent, hook, pg_primary, pg_standby):
    proc = agent({
        "targets": [pg("standby", pg_standby.dsn())],
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url}],
        "rules": {"overrides": {"ReplicationLagHigh": {"threshold": 1, "for": "0s"}}},
    })
    wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "ready")
    # A transaction replayed before the pause gives the standby a last-replay timestamp to measure from.
    pg_primary.psql("CREATE TABLE IF NOT EXISTS lag_probe (x int); INSERT INTO lag_probe VALUES (0)")
    wait_for(lambda: pg_standby.psql("SELECT pg_last_xact_replay_timestamp() IS NOT NULL AND "
                                     "pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()").strip() == "t",
             20, "the standby to replay a transaction")
    pg_standby.psql("SELECT pg_wal_replay_pause()")
    try:
        def written_and_fired() -> list:
            pg_primary.psql("CREATE TABLE IF NOT EXISTS lag_probe (x int); INSERT INTO lag_probe VALUES (1)")
            return hook.alerts("ReplicationLagHigh", "firing")

        try:
            wait_for(written_and_fired, 30, "ReplicationLagHigh at the webhook", interval=0.5)
        except TimedOut as exc:
            raise TimedOut(f"{exc}\n{proc.log()[-2000:]}" + "\n".join(
                line for line in proc.metrics().splitlines() if "lag" in line or "replay" in line
                or "target_up" in line)) from None
    finally:
        pg_standby.psql("SELECT pg_wal_replay_resume()")
    wait_for(lambda: hook.alerts("ReplicationLagHigh", "resolved"), 30, "the lag alert to resolve")


def test_an_alert_reaches_a_real_alertmanager(agent, alertmanager, pg_primary, pg_scratch):  # noqa: F811
    url, _ = alertmanager
    proc = agent({
        "targets": [pg("flaky", pg_scratch.dsn())],
        "receivers": [{"name": "am", "type": "alertmanager", "url": url}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    })
    wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "ready")
    pg_scratch.stop()

    def active() -> list[dict]:
        with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
            return [a for a in json.loads(response.read())
                    if a["labels"].get("alertname") == "TargetDown" and a["status"]["state"] == "active"]

    [alert] = wait_for(active, 30, "TargetDown active in Alertmanager")
    assert alert["labels"]["target"] == "flaky"
    pg_scratch.start()
    wait_for(lambda: not active(), 60, "TargetDown to leave Alertmanager's active alerts")


def test_rules_export_passes_promtool(tmp_path):
    import shutil
    import sys

    out = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "rules", "export"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    path = tmp_path / "dbwatch.rules.yml"
    path.write_text(out.stdout)
    check = subprocess.run([shutil.which("promtool") or "promtool", "check", "rules", str(path)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("TargetDown", "ReplicationLagHigh", "ConnectionsNearMax", "WraparoundNear"):
        assert f"alert: {name}" in out.stdout


def test_the_engine_variants_of_a_rule_fire_on_real_mariadb_and_redis(agent, hook, mariadb_primary):  # noqa: F811
    """A real MariaDB (the session's throwaway primary) and a throwaway redis-server: ConnectionsNearMax's
    mysql and redis variants, with the threshold lowered so that the agent's own connection crosses it."""
    redis_server = RedisServer().start()
    try:
        proc = agent({
            "targets": [
                {"name": "maria", "engine": "mysql", "dsn": mariadb_primary.dsn(), "interval": "1s",
                 "collectors": {"statements": {"enabled": False}}},
                {"name": "cache", "engine": "redis", "dsn": redis_server.dsn(), "interval": "1s",
                 "collectors": {"slowlog": {"enabled": False}}},
            ],
            "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url}],
            "rules": {"overrides": {"ConnectionsNearMax": {"threshold": 0, "for": "0s"}}},
        })
        fired = wait_for(lambda: {(a["labels"]["target"], a["labels"]["engine"])
                                  for a in hook.alerts("ConnectionsNearMax", "firing")} >= {("maria", "mysql"),
                                                                                            ("cache", "redis")},
                         30, "ConnectionsNearMax for both engines")
        assert fired
        listed = {a["labels"]["target"]: a for a in proc.get("/api/v1/alerts")}
        assert 0 < listed["maria"]["value"] < 1 and 0 < listed["cache"]["value"] < 1
        assert "max_connections" in listed["maria"]["annotations"]["summary"]
        assert "maxclients" in listed["cache"]["annotations"]["summary"]
    finally:
        redis_server.stop()


def test_lagging_replication_on_real_mariadb_and_redis_fires_replication_lag_high(agent, hook, mariadb_primary):  # noqa: F811
    """A MariaDB replica of the session's primary applying events 8 s late (MASTER_DELAY), and a Redis
    replica frozen with SIGSTOP so that its primary stops hearing acknowledgements."""
    import pymysql  # the test drives the primary as a client would

    replica = mariadb_primary.replica(server_id=7)
    redis_primary = RedisServer().start()
    redis_replica = RedisServer("--replicaof", "127.0.0.1", str(redis_primary.port)).start()
    try:
        replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=8; START SLAVE")
        proc = agent({
            "targets": [
                {"name": "maria-replica", "engine": "mysql", "dsn": replica.dsn(), "interval": "1s",
                 "collectors": {"statements": {"enabled": False}}},
                {"name": "cache-primary", "engine": "redis", "dsn": redis_primary.dsn(), "interval": "1s",
                 "collectors": {"slowlog": {"enabled": False}}},
            ],
            "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url}],
            "rules": {"overrides": {"ReplicationLagHigh": {"threshold": 3, "for": "0s"}}},
        })
        wait_for(lambda: proc.get("/readyz", check=False) == 200, 30, "ready")
        redis_replica.pause()
        conn = pymysql.connect(host="127.0.0.1", port=mariadb_primary.port, user="root", autocommit=True)
        with conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS lagtest")
            cursor.execute("CREATE TABLE IF NOT EXISTS lagtest.t (x int)")
        def written_and_fired() -> dict[str, dict]:
            with conn.cursor() as cursor:
                cursor.execute("INSERT INTO lagtest.t VALUES (1)")
            fired = {a["labels"]["engine"]: a for a in hook.alerts("ReplicationLagHigh", "firing")}
            return fired if len(fired) == 2 else {}

        try:
            fired = wait_for(written_and_fired, 40, "ReplicationLagHigh on both engines", interval=0.5)
        except TimedOut as exc:
            raise TimedOut(f"{exc}\n{proc.log()[-3000:]}") from None
        finally:
            conn.close()
        assert set(fired) == {"mysql", "redis"}
        assert fired["mysql"]["labels"]["target"] == "maria-replica"
        assert fired["redis"]["labels"]["target"] == "cache-primary"
        assert fired["redis"]["labels"]["slave_port"] == str(redis_replica.port)
    finally:
        redis_replica.resume()
        redis_replica.stop()
        redis_primary.stop()
        replica.destroy()


def test_a_firing_alert_survives_an_agent_restart_without_a_second_notification(agent, hook, pg_primary, pg_scratch):
    """The session's primary (always up) and a scratch PostgreSQL that is stopped: TargetDown fires, the
    agent restarts (SIGTERM, then the same state_dir), the alert is still firing with the same firedAt,
    the receiver hears nothing new before its repeat interval, and the alert resolves normally."""
    config = {
        "targets": [pg("steady", pg_primary.dsn()), pg("flaky", pg_scratch.dsn())],
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "repeat_interval": "1h"}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    }
    first = agent(config)
    wait_for(lambda: first.get("/readyz", check=False) == 200, 20, "ready")
    pg_scratch.stop()
    wait_for(lambda: hook.alerts("TargetDown", "firing"), 30, "TargetDown at the webhook")
    [before] = [a for a in first.get("/api/v1/alerts") if a["labels"]["alertname"] == "TargetDown"]
    assert first.stop() == 0

    second = agent(config)  # the same tmp_path, so the same state_dir
    wait_for(lambda: second.get("/readyz", check=False) == 200, 20, "ready after the restart")
    wait_for(lambda: (sample_value(second.metrics(), "dbwatch_collector_runs_total", target="flaky",
                                   collector="postgres") or 0) >= 3, 20, "three evaluations with the target still down")
    [after] = [a for a in second.get("/api/v1/alerts") if a["labels"]["alertname"] == "TargetDown"]
    assert after["state"] == "firing" and after["firedAt"] == before["firedAt"]
    metrics = second.metrics()  # nothing sent and nothing queued since the restart
    assert sample_value(metrics, "dbwatch_notifications_total", receiver="oncall", result="sent") == 0
    assert sample_value(metrics, "dbwatch_notification_queue_length", receiver="oncall") == 0
    assert len(hook.alerts("TargetDown", "firing")) == 1, "re-notified after the restart"
    pg_scratch.start()
    wait_for(lambda: hook.alerts("TargetDown", "resolved"), 30, "the resolve after the restart")
    assert len(hook.alerts("TargetDown", "resolved")) == 1
