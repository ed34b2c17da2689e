"""The Grafana dashboards in deploy/grafana/, checked against the metric catalog, promtool and a real
Prometheus scraping a real `dbwatch run`.

Starts (last test): the agent watching the session's PostgreSQL 15 and its own host, and a Prometheus
(Debian package) scraping it every second.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agentproc import AgentProcess
from tests.helpers import declared, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
# Where Grafana substitutes a variable, a value that keeps the expression valid PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s",
                     "$cluster": ".*", "$target": ".*"}
_PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                    "and", "or", "unless", "inf", "nan"}


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel query and every query variable."""
    queries = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*), *\w+\)", variable["query"]["query"])
            assert inner, variable["query"]
            queries.append((f"variable {variable['name']}", inner.group(1)))
    return queries


def promql_metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                  # strings (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)                            # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                           # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\w+", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word, rest = match.group(0), expr[match.end():].lstrip()
        if word.lower() in _PROMQL_KEYWORDS or rest.startswith("(") or expr[match.start() - 1: match.start()].isdigit():
            continue
        names.add(word)
    return names


def test_the_dashboards_are_the_fleet_overview_and_one_per_engine():
    assert [p.name for p in DASHBOARDS] == ["cassandra.json", "mongodb.json", "mysql.json", "neo4j.json", "overview.json",
                                            "pgbouncer.json",
                                            "postgres.json", "redis.json", "timescaledb.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_uses_only_metrics_the_catalog_declares(path):
    dashboard = json.loads(path.read_text())
    assert declared("pg_settings_max_connections") and declared("pg_stat_database_xact_commit")
    assert not declared("pg_no_such_metric_total")
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 10
    for where, expr in queries:
        used = promql_metric_names(expr)
        assert used, f"{where}: no metric in {expr!r}"
        unknown = {n for n in used if not declared(n)}
        assert not unknown, f"{path.name} {where}: {sorted(unknown)} not in the metric catalog (docs/metrics.md)"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_has_datasource_cluster_and_target_variables_used_by_its_panels(path):
    dashboard = json.loads(path.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["cluster"]["allValue"] == ".*" and variables["target"]["allValue"] == ".*"
    assert "$cluster" in variables["target"]["query"]["query"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian package prometheus)")
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_promtool_parses_every_dashboard_query(path, tmp_path):
    # promtool has no bare expression check: each query, variables substituted, becomes a recording rule.
    rules = []
    for index, (_, expr) in enumerate(dashboard_queries(json.loads(path.read_text()))):
        for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
            expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query{index}", "expr": expr})
    rules_file = tmp_path / "queries.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Panels that are empty on a healthy lone primary with no receivers and no WAL archiving; their queries
# must still parse and run.
EMPTY_WHILE_HEALTHY = {
    ("overview.json", "Targets down"), ("overview.json", "Alerts firing"),
    ("overview.json", "Oldest WAL archive (backup freshness)"), ("overview.json", "Notifications"),
    ("overview.json", "Oldest undelivered notification"),
    ("postgres.json", "Standby lag (primary side)"), ("postgres.json", "WAL not yet replayed by standbys"),
    ("postgres.json", "WAL held by replication slots"), ("postgres.json", "Seconds since the last archived WAL"),
}


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed (Debian package prometheus)")
def test_every_postgres_dashboard_query_runs_on_a_real_prometheus_scraping_a_real_agent(tmp_path, pg_primary):
    # Every panel and variable query, variables substituted, through Prometheus' HTTP API. The fleet overview
    # and the other engines' dashboards: tests/test_deploy_grafana_engines.py, against every engine at once.
    agent = AgentProcess(tmp_path, {"targets": [
        {"name": "pg", "engine": "postgres", "dsn": pg_primary.dsn(), "interval": "1s", "labels": {"cluster": "c1"},
         "collectors": {"statements": {"interval": "2s"}}},
        {"name": "host", "engine": "host", "interval": "1s", "labels": {"cluster": "c1"}},
    ]}).start()
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "dbwatch", "static_configs": [{"targets": [f"127.0.0.1:{agent.port}"]}]}],
    }))
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    values = {**GRAFANA_VARIABLES, "$__rate_interval": "10s", "$__range": "30s"}
    queries = []
    for path in [p for p in DASHBOARDS if p.name == "postgres.json"]:
        for where, expr in dashboard_queries(json.loads(path.read_text())):
            for variable in sorted(values, key=len, reverse=True):
                expr = expr.replace(variable, values[variable])
            title = re.match(r"panel '(.*)' [A-Z]$", where)
            expected_empty = bool(title) and (path.name, title.group(1)) in EMPTY_WHILE_HEALTHY
            queries.append((f"{path.name} {where}", expr, expected_empty))

    def run(expr: str) -> int:
        """The number of series the query returns; a query Prometheus rejects fails the test."""
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return len(json.load(response)["data"]["result"])
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode()}") from None

    def scraped() -> bool:
        assert prometheus.poll() is None, "prometheus exited"
        try:
            return run("up") > 0
        except urllib.error.URLError:  # not listening yet
            return False

    without_data: list[str] = []

    def every_panel_has_data() -> bool:
        pg_primary.psql("SELECT count(*) FROM pg_class")  # something for pg_stat_statements and the rates
        without_data[:] = [where for where, expr, empty in queries if run(expr) == 0 and not empty]
        return not without_data

    try:
        wait_for(scraped, 60, "Prometheus to scrape the agent", interval=0.5)
        try:
            wait_for(every_panel_has_data, 60, "every panel to return data", interval=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still without data: {without_data}") from None
    finally:
        prometheus.terminate()
        prometheus.wait(15)
        agent.stop()
