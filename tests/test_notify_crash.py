"""Notifications across a SIGKILL, and into a real Alertmanager.

Starts: real aiohttp HTTP receivers on loopback (tests/notifyutil.Recorder); agent subprocesses
(tests/notify_proc.py) that are killed with SIGKILL; a real Alertmanager (Debian package
prometheus-alertmanager) on a free loopback port with clustering off and its own storage directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from dbwatch.agent.notify import Notifier
from dbwatch.exporters.receivers import parse_receivers
from tests.notifyutil import Recorder, make_alert, resolved
from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def spawn_agent(state_dir: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.notify_proc", str(state_dir), url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def outbox_rows(state_dir: Path, columns: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(state_dir / "outbox.db")) as db:
        return db.execute(f"SELECT {columns} FROM outbox ORDER BY id").fetchall()


async def test_sigkill_during_a_delivery_then_restart_delivers_it_once_per_idempotency_key(tmp_path):
    receiver = Recorder(respond=lambda request: "hang" if len(receiver.requests) == 1 else 200)
    await receiver.start()
    first = second = None
    try:
        first = spawn_agent(tmp_path, receiver.url + "/hook")
        await wait_until(lambda: len(receiver.requests) == 1 or first.poll() is not None, 20, "the first request")
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        first.kill()  # SIGKILL while the receiver holds the request open
        await asyncio.to_thread(first.wait, 10)
        assert first.returncode == -9
        assert outbox_rows(tmp_path, "status") == [("pending",)]
        receiver.release()

        second = spawn_agent(tmp_path, receiver.url + "/hook")
        out, err = await asyncio.to_thread(second.communicate, timeout=30)
        assert second.returncode == 0, err
        assert "drained" in out
    finally:
        for process in (first, second):
            if process is not None:
                if process.poll() is None:
                    process.kill()
                process.communicate(timeout=5)  # reaps it and closes its pipes
        await receiver.stop()
    assert 1 <= len(receiver.requests) <= 2
    assert len({request.key for request in receiver.requests}) == 1
    [seen] = receiver.unique()
    assert seen.json["alerts"][0]["labels"]["alertname"] == "TargetDown"
    assert outbox_rows(tmp_path, "status, idempotency_key") == [("delivered", seen.key)]


@pytest.fixture
async def alertmanager(tmp_path):
    """A real Alertmanager on loopback, routing everything to a recording webhook (AM's own notifications)."""
    if not os.access(ALERTMANAGER, os.X_OK):
        pytest.fail("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    hook = await Recorder().start()
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook.url}/am\n        send_resolved: true\n"
    )
    (tmp_path / "am-data").mkdir()
    process = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def ready() -> bool:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    async with session.get(url + "/-/ready", timeout=aiohttp.ClientTimeout(total=1)) as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(ready, 20, "Alertmanager ready", interval=0.1)
        yield url, hook
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr is not None:
            process.stderr.close()
        await hook.stop()


async def am_alerts(url: str) -> list[dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/api/v2/alerts", timeout=aiohttp.ClientTimeout(total=5)) as response:
            assert response.status == 200
            return await response.json()


async def test_an_alert_pushed_to_a_real_alertmanager_is_active_there_and_resolves(alertmanager, tmp_path):
    url, am_hook = alertmanager
    notifier = Notifier(parse_receivers([{"name": "am", "type": "alertmanager", "url": url}]), tmp_path / "state")
    await notifier.start()
    try:
        firing = make_alert("ReplicationLagHigh", target="replica1", fired_at=time.time())
        notifier.update([firing])
        listed: list[dict] = []

        async def active() -> bool:
            listed[:] = [a for a in await am_alerts(url) if a["labels"].get("alertname") == "ReplicationLagHigh"]
            return bool(listed) and listed[0]["status"]["state"] == "active"

        await wait_until(active, 10, "the alert active in Alertmanager", interval=0.1)
        [alert] = listed
        assert alert["labels"] == firing.labels and alert["fingerprint"]
        assert alert["annotations"]["summary"] == "replica1 is not answering"
        ends = dt.datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
        assert ends > time.time() + 60  # re-posted before it runs out; resolves by itself if dbwatch dies
        await wait_until(lambda: any(r.json["status"] == "firing" for r in am_hook.requests), 10,
                         "Alertmanager's own webhook notification")

        notifier.update([resolved(firing, time.time())])

        async def gone() -> bool:
            return not [a for a in await am_alerts(url) if a["labels"].get("alertname") == "ReplicationLagHigh"]

        await wait_until(gone, 10, "the alert no longer active in Alertmanager", interval=0.1)
        await wait_until(lambda: any(r.json["status"] == "resolved" for r in am_hook.requests), 10,
                         "Alertmanager's resolved notification")
    finally:
        await notifier.stop(grace=1)
