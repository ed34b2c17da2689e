"""SIGTERM with a fleet's collections in flight: a real `dbwatch run` process, 50 targets pointing at a
server that accepts connections and never answers, and a few targets on the session's throwaway PostgreSQL.
The agent ends within its stop grace, exits 0, and says so in a line or two: no traceback, no task
destroyed while pending."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.agentproc import AgentProcess
from tests.helpers import wait_for

SILENT_TARGETS = 50


class SilentServer:
    """A loopback TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_sigterm_with_collections_in_flight_ends_quietly(tmp_path: Path, pg_primary, silent: SilentServer) -> None:
    # A timeout far longer than the test: no attempt ends by itself, each is still running at SIGTERM.
    hung = [{"name": f"silent{i}", "engine": "postgres", "interval": "1s", "timeout": "120s",
             "dsn": f"postgresql://postgres@127.0.0.1:{silent.port}/postgres?sslmode=disable"}
            for i in range(SILENT_TARGETS)]
    real = [{"name": f"real{i}", "engine": "postgres", "interval": "1s", "timeout": "5s", "dsn": pg_primary.dsn()}
            for i in range(3)]
    # Slots for every attempt: with the default 32 connects, silent targets can hold them all and starve the
    # real ones; with the default 16 places per server, only 16 of the silent targets would be connecting.
    config = {"collection": {"max_concurrent_connects": 100, "max_concurrent_per_server": 100},
              "targets": real + hung}
    agent = AgentProcess(tmp_path, config).start()
    try:
        wait_for(lambda: all(t["up"] for n, t in agent.targets().items() if n.startswith("real")), 30,
                 "the real targets up")
        wait_for(lambda: len(silent.held) >= SILENT_TARGETS, 30, "connection attempts hanging on the silent server")
    except BaseException:
        agent.stop()
        raise
    assert agent.proc is not None
    started = time.monotonic()
    code = agent.stop(timeout=15)
    took = time.monotonic() - started
    log = agent.log()
    assert code == 0, log[-3000:]
    assert took < 5.0 + 4.0, f"stopped in {took:.1f}s"  # the stop grace (5 s) plus closing
    for noise in ("Traceback", "CancelledError", "Task was destroyed", "was never retrieved", "Exception ignored"):
        assert noise not in log, log[-3000:]
    after_stop = log[log.index("stopping:"):].splitlines()
    assert len(after_stop) <= 3, "\n".join(after_stop)  # "stopping: ...", maybe a summary, "stopped"
