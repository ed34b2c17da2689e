"""systemd's notify protocol from a real `dbwatch run`, received on a real unix datagram socket.

Starts: the session's throwaway PostgreSQL 15 primary, and the agent with NOTIFY_SOCKET set.
"""

from __future__ import annotations

import signal
import socket
import time

from tests.agentproc import AgentProcess
from tests.helpers import wait_for


def test_ready_watchdog_reloading_and_stopping_reach_the_notify_socket(tmp_path, pg_primary):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    messages: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return messages

    config = {"targets": [{"name": "main", "engine": "postgres", "dsn": pg_primary.dsn(), "interval": "1s"}]}
    proc = AgentProcess(tmp_path, config, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}).start()
    try:
        wait_for(lambda: any("READY=1" in m for m in drain()), 20, "READY=1")
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=" in ready and "target(s)" in ready
        # STATUS follows the targets: once the first collection lands, systemctl status says it is up
        wait_for(lambda: any("STATUS=1 of 1 target(s) up, 0 not yet tried" in m for m in drain()), 20,
                 "a STATUS line counting the target up")
        began = len([m for m in messages if m == "WATCHDOG=1"])
        time.sleep(2.2)  # WATCHDOG_USEC of 1 s: a ping every 0.5 s
        assert len([m for m in drain() if m == "WATCHDOG=1"]) - began >= 3

        messages.clear()
        proc.signal(signal.SIGHUP)
        wait_for(lambda: any("READY=1" in m for m in drain()), 20, "READY=1 after the reload")
        reload_index = next(i for i, m in enumerate(messages) if "RELOADING=1" in m)
        assert "MONOTONIC_USEC=" in messages[reload_index]
        assert any("READY=1" in m for m in messages[reload_index + 1:])
    finally:
        assert proc.stop() == 0
    assert any("STOPPING=1" in m for m in drain())
    sock.close()
