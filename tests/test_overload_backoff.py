"""An overloaded server is not asked harder: a real `dbwatch run` process and a throwaway PostgreSQL frozen
(SIGSTOP on the postmaster and every backend) until the collections time out. The effective interval
grows to 4 times the configured one (dbwatch_collector_effective_interval_seconds) and is back to the
configured one, with the target up, as soon as the server answers again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.agentproc import AgentProcess, sample_value
from tests.helpers import wait_for


def _cluster_pids(data: Path) -> list[int]:
    """The postmaster of the data directory and all its children."""
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == postmaster:
                children.append(int(entry))
    return [postmaster, *children]


def _effective(agent: AgentProcess) -> float | None:
    return sample_value(agent.metrics(), "dbwatch_collector_effective_interval_seconds", target="busy",
                        collector="postgres")


def _stamp(agent: AgentProcess) -> float | None:
    """When the busy target's latest postgres collection ran, by the agent's own clock: the timestamp (ms) its
    samples carry (the middle of the collection), so that how quickly this test polls does not matter."""
    for line in agent.metrics().splitlines():
        if line.startswith("dbwatch_collector_effective_interval_seconds{") and 'target="busy"' in line \
                and 'collector="postgres"' in line:
            fields = line.split()
            return int(fields[2]) / 1000 if len(fields) == 3 else None
    return None


def _next_run(agent: AgentProcess) -> float:
    """The time (agent's clock) of the busy target's next postgres collection after the one exported now."""
    before = _stamp(agent)
    return wait_for(lambda: (stamp := _stamp(agent)) != before and stamp, 30, "the next run")


def test_timeouts_lengthen_the_interval_and_an_answer_restores_it(tmp_path: Path, pg_scratch) -> None:
    target = {"name": "busy", "engine": "postgres", "dsn": pg_scratch.dsn(), "interval": "1s", "timeout": "1s"}
    agent = AgentProcess(tmp_path, {"targets": [target]}).start()
    try:
        wait_for(lambda: sample_value(agent.metrics(), "pg_up", target="busy") == 1, 30, "the target up")
        assert _effective(agent) == 1.0
        pids = _cluster_pids(pg_scratch.data)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: _effective(agent) == 4.0, 40, "the effective interval at 4x while the server is frozen")
            assert sample_value(agent.metrics(), "dbwatch_target_up", target="busy") == 0
            # Backed off: a run comes about 4 s after the one before, not every second (the agent's timestamps
            # say when they ran, whatever the machine's load does to this test's polling).
            first = _next_run(agent)
            second = _next_run(agent)
            assert second - first >= 2.5, f"runs {second - first:.1f}s apart"
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        wait_for(lambda: sample_value(agent.metrics(), "pg_up", target="busy") == 1, 30, "the target up again")
        assert _effective(agent) == 1.0
        log = agent.log()
        assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    finally:
        assert agent.stop() == 0
