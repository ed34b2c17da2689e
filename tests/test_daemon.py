"""The daemon as a user runs it: a real `dbwatch run` process, real PostgreSQL servers, signals, HTTP.

Starts: the session's throwaway PostgreSQL 15 primary (tests/pgcluster.py) and, where a test stops or
freezes a server, a second throwaway PostgreSQL of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.agentproc import AgentProcess, sample_value
from tests.helpers import declared, free_port, wait_for


def pg_target(name: str, dsn: str, **extra) -> dict:
    return {"name": name, "engine": "postgres", "dsn": dsn, "interval": "1s", "timeout": "3s", **extra}


@pytest.fixture
def agent(tmp_path):
    started: list[AgentProcess] = []

    def start(config: dict, **kwargs) -> AgentProcess:
        process = AgentProcess(tmp_path, config, **kwargs).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_metrics_ready_and_targets_api(agent, pg_primary):
    proc = agent({"targets": [pg_target("main", pg_primary.dsn(), labels={"env": "test"})]})
    wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "/readyz 200")
    metrics = proc.metrics()
    assert sample_value(metrics, "pg_up", target="main", env="test") == 1
    assert sample_value(metrics, "pg_settings_max_connections", target="main") > 0
    assert sample_value(metrics, "dbwatch_collector_last_success_timestamp_seconds", target="main",
                        collector="postgres") > time.time() - 60
    assert 'dbwatch_build_info{' in metrics
    # Every family on /metrics, the agent's own included, is declared in the metric catalog (docs/metrics.md).
    exposed = {line.split()[2] for line in metrics.splitlines() if line.startswith("# TYPE ")}
    assert not {name for name in exposed if not declared(name)}
    [main] = proc.get("/api/v1/targets")
    assert main["name"] == "main" and main["up"] is True


def test_promtool_finds_no_format_error_and_no_lint_problem_on_dbwatch_metrics(agent, pg_primary):
    """Starts PostgreSQL (session primary) and a real agent; runs Debian's promtool on its /metrics."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed"
    proc = agent({"targets": [pg_target("main", pg_primary.dsn())]})
    wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "/readyz 200")
    pg_primary.psql("SELECT 1")
    body = proc.metrics()
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    format_errors = [p for p in problems if "error while linting" in p or "text format parsing error" in p]
    assert not format_errors, format_errors
    own = [p for p in problems if p.startswith("dbwatch_")]
    assert not own, own
    # The rest may only concern names kept for compatibility with postgres_exporter.
    assert all(p.split()[0].startswith(("pg_", "process_")) for p in problems), problems


def test_openmetrics_when_asked(agent, pg_primary):
    proc = agent({"targets": [pg_target("main", pg_primary.dsn())]})
    wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "/readyz 200")
    body = proc.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert body.rstrip().endswith("# EOF")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    names = {family.name for family in text_string_to_metric_families(body)}
    assert "pg_up" in names


def test_sighup_adds_and_removes_targets_and_a_bad_config_keeps_the_old(agent, pg_primary):
    proc = agent({"targets": [pg_target("first", pg_primary.dsn())]})
    wait_for(lambda: "first" in proc.targets(), 20, "target first")
    proc.write_config({"targets": [pg_target("second", pg_primary.dsn())]})
    proc.signal(signal.SIGHUP)
    wait_for(lambda: set(proc.targets()) == {"second"}, 20, "only target second after SIGHUP")
    wait_for(lambda: sample_value(proc.metrics(), "pg_up", target="second") == 1, 20, "pg_up for second")
    assert sample_value(proc.metrics(), "pg_up", target="first") is None

    proc.config_path.write_text("targets:\n  - name: third\n    engine: postgres\n    interval: fast\n")
    proc.signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in proc.log(), 20, "the rejected reload in the log")
    assert 'targets[0].interval: expected a duration like "15s", got "fast"' in proc.log()
    assert set(proc.targets()) == {"second"}  # the rejection is logged once the reload is over
    assert sample_value(proc.metrics(), "pg_up", target="second") == 1


def test_sigterm_exits_0_within_10_seconds(agent, pg_primary):
    proc = agent({"targets": [pg_target("main", pg_primary.dsn())]})
    wait_for(lambda: proc.get("/readyz", check=False) == 200, 20, "/readyz 200")
    began = time.monotonic()
    assert proc.stop(timeout=10) == 0
    assert time.monotonic() - began < 10
    assert "stopped" in proc.log()


def test_stopped_target_is_down_while_others_are_served_and_reconnects(agent, pg_primary, pg_scratch):
    """Starts a second throwaway PostgreSQL, stops it under the agent, then starts it again."""
    proc = agent({"targets": [pg_target("steady", pg_primary.dsn()), pg_target("flaky", pg_scratch.dsn())]})
    wait_for(lambda: sample_value(proc.metrics(), "pg_up", target="flaky") == 1, 20, "flaky up")
    pg_scratch.stop()
    wait_for(lambda: sample_value(proc.metrics(), "pg_up", target="flaky") == 0, 30, "flaky pg_up 0")
    runs = sample_value(proc.metrics(), "dbwatch_collector_runs_total", target="steady", collector="postgres")
    wait_for(lambda: sample_value(proc.metrics(), "dbwatch_collector_runs_total", target="steady",
                                  collector="postgres") >= runs + 2, 20, "steady still collected")
    assert sample_value(proc.metrics(), "pg_up", target="steady") == 1
    assert proc.targets()["flaky"]["up"] is False
    pg_scratch.start()
    # Backoff after a few failures is a few seconds at most here; allow for it.
    wait_for(lambda: sample_value(proc.metrics(), "pg_up", target="flaky") == 1, 60, "flaky back up")
    assert "recovered" in proc.log()


def test_frozen_backend_is_cut_off_by_the_timeout_without_delaying_other_targets(agent, pg_primary, pg_scratch):
    """Starts a second throwaway PostgreSQL and freezes (SIGSTOP) the backend serving the agent."""
    proc = agent({"targets": [pg_target("steady", pg_primary.dsn()),
                              pg_target("frozen", pg_scratch.dsn(), timeout="2s")]})
    wait_for(lambda: sample_value(proc.metrics(), "pg_up", target="frozen") == 1, 20, "frozen target up")
    pids = [int(p) for p in pg_scratch.psql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dbwatch'").split()]
    assert pids, "the agent's backend should be visible"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: "timed out after 2s" in json.dumps(proc.targets()["frozen"]), 30,
                 "the frozen target's collection to time out")
        before = sample_value(proc.metrics(), "dbwatch_collector_runs_total", target="steady", collector="postgres")
        time.sleep(3)
        after = sample_value(proc.metrics(), "dbwatch_collector_runs_total", target="steady", collector="postgres")
        assert after >= before + 2, "the steady target must keep its 1s interval"
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: sample_value(proc.metrics(), "pg_up", target="frozen") == 1, 60, "frozen target back")


def test_check_command_exit_codes_and_json(tmp_path, pg_primary):
    config = tmp_path / "c.yaml"
    dead_port = _closed_port()
    config.write_text(
        "targets:\n"
        f"  - {{name: alive, engine: postgres, dsn: '{pg_primary.dsn()}'}}\n"
    )
    ok = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "check", "-c", str(config)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "alive (postgres): UP, version 15" in ok.stdout
    config.write_text(config.read_text() + (
        f"  - {{name: dead, engine: postgres, dsn: 'postgresql://postgres@127.0.0.1:{dead_port}/postgres',"
        " timeout: 3s}\n"))
    down = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "check", "-c", str(config),
                           "--format", "json"], capture_output=True, text=True, timeout=60)
    assert down.returncode == 1, down.stdout + down.stderr
    results = {r["target"]: r for r in json.loads(down.stdout)}
    assert results["alive"]["up"] is True and results["dead"]["up"] is False
    assert results["dead"]["errors"]["postgres"]


def _closed_port() -> int:

    return free_port()
