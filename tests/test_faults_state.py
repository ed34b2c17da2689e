"""Issue 15, items 7 and 8: a damaged, read-only or full state directory under a real running agent.

Starts: real `dbwatch run` processes (tests/agentproc.py), a throwaway redis-server stopped and started
again under the agent (so TargetDown fires and resolves), a recording webhook, and real tmpfs mounts
(root only) that are remounted read-only or filled to the last byte.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.agentproc import AgentProcess, sample_value
from tests.faultutil import Hook, fill, remount, tmpfs
from tests.helpers import wait_for
from tests.redisserver import RedisServer


@pytest.fixture
def redis_server():
    server = RedisServer()
    yield server
    server.destroy()


@pytest.fixture
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


def config(redis_server: RedisServer, hook: Hook, state_dir) -> dict:
    return {
        "state_dir": str(state_dir),
        "targets": [{"name": "cache", "engine": "redis", "dsn": redis_server.dsn(), "interval": "1s",
                     "timeout": "2s"}],
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "group_wait": "0s"}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    }


def degraded(proc: AgentProcess, file: str) -> float | None:
    return sample_value(proc.metrics(), "dbwatch_state_store_degraded", file=file)


def rows(db, query: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


def test_damaged_state_files_are_moved_aside_named_in_the_log_and_a_metric_and_the_agent_starts(
        tmp_path, redis_server, hook):
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerts.db").write_bytes(b"this is not an SQLite database\n" * 100)
    (state / "outbox.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 8000)  # a header, then garbage
    redis_server.start()
    proc = AgentProcess(tmp_path, config(redis_server, hook, state)).start()
    try:
        metrics = proc.metrics()
        moved = {}
        for line in metrics.splitlines():
            if line.startswith("dbwatch_state_file_moved_aside{"):
                labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
                moved[labels["file"].strip('"')] = labels["moved_to"].strip('"')
        assert set(moved) == {str(state / "alerts.db"), str(state / "outbox.db")}, metrics
        for original, aside in moved.items():
            assert aside.startswith(original + ".damaged-")
            assert (tmp_path / aside).exists()
            assert f"moved it aside to {aside}" in proc.log()
        assert "Traceback" not in proc.log()
        # the new files work: an alert fires, is delivered and is in alerts.db
        redis_server.stop()
        wait_for(lambda: hook.alerts("TargetDown", "firing"), 30, "TargetDown at the webhook")
        wait_for(lambda: rows(state / "alerts.db", "SELECT state FROM alerts"), 10, "the alert in alerts.db")
        assert degraded(proc, str(state / "alerts.db")) == 0
    finally:
        assert proc.stop() == 0


def test_a_read_only_state_dir_runs_from_memory_says_so_and_saves_the_state_once_writable(
        tmp_path, redis_server, hook):
    with tmpfs("4m") as mount:
        state = mount / "state"
        state.mkdir()
        remount(mount, "ro")
        redis_server.start()
        proc = AgentProcess(tmp_path, config(redis_server, hook, state)).start()
        try:
            assert degraded(proc, str(state / "alerts.db")) == 1
            assert degraded(proc, str(state / "outbox.db")) == 1
            wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "/readyz")
            ready = proc.get("/readyz")
            assert set(ready["state_degraded"]) >= {str(state / "alerts.db"), str(state / "outbox.db")}
            redis_server.stop()
            wait_for(lambda: hook.alerts("TargetDown", "firing"), 30, "TargetDown delivered from memory")
            assert "Traceback" not in proc.log()
            assert len([line for line in proc.log().splitlines() if "cannot be written" in line]) <= 3
            remount(mount, "rw")
            wait_for(lambda: degraded(proc, str(state / "alerts.db")) == 0
                     and degraded(proc, str(state / "outbox.db")) == 0, 30, "the state saved")
            assert rows(state / "alerts.db", "SELECT state FROM alerts") == [("firing",)]
            assert ("delivered",) in rows(state / "outbox.db", "SELECT status FROM outbox")
            assert "state_degraded" not in proc.get("/readyz")
        finally:
            assert proc.stop() == 0


def test_an_alert_that_fires_and_resolves_while_the_disk_is_full_is_delivered_and_saved_afterwards(
        tmp_path, redis_server, hook):
    with tmpfs("8m") as mount:
        state = mount / "state"
        redis_server.start()
        proc = AgentProcess(tmp_path, config(redis_server, hook, state)).start()
        try:
            wait_for(lambda: sample_value(proc.metrics(), "redis_up", target="cache") == 1, 20, "redis up")
            filler = fill(mount)
            redis_server.stop()
            wait_for(lambda: hook.alerts("TargetDown", "firing"), 30, "the firing notification, disk full")
            redis_server.start()
            wait_for(lambda: hook.alerts("TargetDown", "resolved"), 60, "the resolved notification, disk full")
            assert degraded(proc, str(state / "outbox.db")) == 1
            assert degraded(proc, str(state / "alerts.db")) == 1
            assert "Traceback" not in proc.log()
            filler.unlink()
            wait_for(lambda: degraded(proc, str(state / "alerts.db")) == 0
                     and degraded(proc, str(state / "outbox.db")) == 0, 30, "the state saved after the fault")
            assert rows(state / "alerts.db", "SELECT state FROM alerts") == [("resolved",)]
            statuses = rows(state / "outbox.db", "SELECT status FROM outbox ORDER BY id")
            assert statuses == [("delivered",), ("delivered",)]
        finally:
            assert proc.stop() == 0
        # a restart neither pages again nor forgets: nothing more reaches the webhook
        sent = len(hook.bodies)
        restarted = AgentProcess(tmp_path, config(redis_server, hook, state)).start()
        try:
            wait_for(lambda: sample_value(restarted.metrics(), "redis_up", target="cache") == 1, 30, "redis up")
            assert len(hook.bodies) == sent
        finally:
            assert restarted.stop() == 0
