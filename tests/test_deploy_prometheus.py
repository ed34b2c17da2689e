"""deploy/prometheus/ and deploy/alertmanager/: the rules file in sync with the shipped rules, promtool's unit
tests of every rule, the scrape config, and the Alertmanager example's routing and inhibition.

Starts: promtool and amtool (Debian packages prometheus, prometheus-alertmanager) as commands, and (last
test) a real Alertmanager on a free loopback port loaded with the example's route and inhibit rules, its
receivers replaced by a loopback webhook.

tests/test_rules.py checks that promtool renders the annotations dbwatch renders; these tests check each
rule's life (does not fire / fires / resolves) in the committed file Prometheus users load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "dbwatch.rules.yml"
UNIT_TESTS = PROMETHEUS_DIR / "tests.yml"
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian packages prometheus, prometheus-alertmanager)")
    return path


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def shipped_alerts() -> list[tuple[str, str | None]]:
    """(alert, engine label) of every rule in the committed file: rules of one name exist per engine."""
    return [(rule["alert"], rule.get("labels", {}).get("engine"))
            for rule in yaml.safe_load(RULES_FILE.read_text())["groups"][0]["rules"]]


# -- deploy/prometheus ----------------------------------------------------------------------------------


def test_the_committed_rules_file_is_what_dbwatch_rules_export_writes_today():
    fresh = run(sys.executable, "-m", "dbwatch.agent.cli", "rules", "export", "--format", "prometheus")
    assert fresh.returncode == 0, fresh.stderr
    assert RULES_FILE.read_text() == fresh.stdout, (
        "deploy/prometheus/dbwatch.rules.yml is out of date: run deploy/prometheus/regenerate.sh")


def test_regenerate_sh_writes_the_export_to_the_file_it_is_given(tmp_path):
    out = tmp_path / "rules.yml"
    result = run("sh", str(PROMETHEUS_DIR / "regenerate.sh"), str(out),
                 env={**os.environ, "DBWATCH": str(Path(sys.executable).parent / "dbwatch")})
    assert result.returncode == 0, result.stderr
    assert out.read_text() == RULES_FILE.read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert not list(tmp_path.glob("rules.yml.*")), "the temporary file is left behind"


def test_promtool_check_rules_accepts_the_rules_file():
    result = run(tool("promtool"), "check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(shipped_alerts())} rules found" in result.stdout


def test_promtool_unit_tests_of_every_rule_pass():
    result = run(tool("promtool"), "test", "rules", UNIT_TESTS.name, cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_every_shipped_rule_not_firing_then_firing_then_resolved():
    # A rule is told apart by its alert name and engine label; a case covers the rule its firing
    # expectations name, and must expect it not firing before and not firing again after.
    cases = yaml.safe_load(UNIT_TESTS.read_text())
    assert cases["rule_files"] == [RULES_FILE.name]
    covered: set[tuple[str, str | None]] = set()
    for group in cases["tests"]:
        by_name: dict[str, list[dict]] = {}
        for check in group["alert_rule_test"]:
            by_name.setdefault(check["alertname"], []).append(check)
        for name, checks in by_name.items():
            life = [c["exp_alerts"] for c in sorted(checks, key=lambda c: _seconds(c["eval_time"]))]
            fired = [i for i, alerts in enumerate(life) if alerts]
            if not fired or fired[0] == 0 or not any(not alerts for alerts in life[fired[0]:]):
                continue
            covered.update((name, alert["exp_labels"].get("engine")) for i in fired for alert in life[i])
    missing = [rule for rule in shipped_alerts() if rule not in covered]
    assert not missing, f"(alert, engine) without a does-not-fire/fires/resolves case in tests.yml: {missing}"


def test_promtool_unit_tests_fail_when_an_expectation_is_wrong(tmp_path):
    # The control: the unit tests are not vacuous; expecting TargetDown while the target is still up fails.
    shutil.copy(RULES_FILE, tmp_path / RULES_FILE.name)
    cases = yaml.safe_load(UNIT_TESTS.read_text())
    group = next(g for g in cases["tests"] if g["alert_rule_test"][0]["alertname"] == "TargetDown")
    firing = next(c for c in group["alert_rule_test"] if c["exp_alerts"])
    group["alert_rule_test"][0]["exp_alerts"] = firing["exp_alerts"]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(cases))
    result = run(tool("promtool"), "test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode != 0 and "TargetDown" in result.stdout + result.stderr


def test_promtool_check_config_accepts_the_scrape_config_with_the_rules_loaded(tmp_path):
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["dbwatch-tls"]["scheme"] == "https" and "password_file" in jobs["dbwatch-tls"]["basic_auth"]
    assert all(job["honor_labels"] for job in jobs.values())
    config["rule_files"] = [RULES_FILE.name]  # the commented-out line, switched on
    shutil.copy(RULES_FILE, tmp_path / RULES_FILE.name)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run(tool("promtool"), "check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(shipped_alerts())} rules found" in result.stdout


def _seconds(duration: str) -> float:
    from dbwatch.model.configtypes import parse_duration

    return parse_duration(duration)


# -- deploy/alertmanager --------------------------------------------------------------------------------


def test_amtool_check_config_accepts_the_alertmanager_example():
    result = run(tool("amtool"), "check-config", str(AM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "2 inhibit rules" in result.stdout


@pytest.mark.parametrize("labels, receiver", [
    ({"alertname": "TargetDown", "severity": "critical", "cluster": "payments", "target": "pay-1"}, "payments-pager"),
    ({"alertname": "TargetDown", "severity": "critical", "cluster": "orders", "target": "ord-1"}, "dba-pager"),
    ({"alertname": "ReplicationLagHigh", "severity": "warning", "cluster": "payments", "target": "pay-2"},
     "payments-chat"),
    ({"alertname": "DiskAlmostFull", "severity": "warning", "cluster": "orders", "target": "host-1"}, "db-team"),
    ({"alertname": "Unrouted", "target": "x"}, "db-team"),
])
def test_amtool_routes_each_alert_by_severity_and_cluster(labels, receiver):
    result = run(tool("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}",
                 *(f"{k}={v}" for k, v in labels.items()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_a_real_alertmanager_inhibits_the_other_alerts_of_a_target_that_is_down(tmp_path):
    if not os.access(ALERTMANAGER, os.X_OK):
        pytest.fail("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    config = yaml.safe_load(AM_CONFIG.read_text())
    # The example's routes and inhibit rules as shipped; receivers pointed at a closed loopback port.
    hook = f"http://127.0.0.1:{free_port()}/hook"
    config["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": hook}]} for r in config["receivers"]]
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/v2/alerts"

    def api(method: str, body: object = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def ready() -> bool:
        assert process.poll() is None, "alertmanager exited"
        try:
            api("GET")
            return True
        except OSError:
            return False

    def alert(name: str, target: str, severity: str) -> dict:
        return {"labels": {"alertname": name, "target": target, "severity": severity, "cluster": "orders"},
                "annotations": {"summary": name}}

    try:
        wait_for(ready, 20, "Alertmanager's API")
        api("POST", [alert("TargetDown", "db1", "critical"), alert("ReplicationLagHigh", "db1", "warning"),
                     alert("ReplicationLagHigh", "db2", "warning")])

        def states() -> dict[tuple[str, str], str] | None:
            seen = {(a["labels"]["alertname"], a["labels"]["target"]): a["status"]["state"] for a in api("GET")}
            return seen if len(seen) == 3 and "unprocessed" not in seen.values() else None

        seen = wait_for(states, 10, "Alertmanager to process the alerts", interval=0.2)
        assert seen == {("TargetDown", "db1"): "active", ("ReplicationLagHigh", "db1"): "suppressed",
                        ("ReplicationLagHigh", "db2"): "active"}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
