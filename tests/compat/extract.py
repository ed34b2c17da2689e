"""Writes tests/compat/<engine>.yaml from the community artifacts, as checked out by `extract.py SRC_DIR`.

SRC_DIR holds the repositories' files under <owner>+<name>/<path> (see README.md for the commits). Only the
PromQL is kept: the alert rules' and recording rules' `expr`, and every Grafana panel target's `expr`.
Jsonnet's `%(...)s` placeholders get the mixin's own config.libsonnet values (selectors left empty, so that
any job matches).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

# The mixins' config.libsonnet values; selectors that name a job are emptied so any scrape job matches.
JSONNET = {
    "agg": "job, instance, server",
    "aggWithoutServer": "job, instance",
    "postgresExporterSelector": "",
    "dbNameFilter": 'datname!~"template.*"',
    "redisExporterSelector": "",
    "redisConnectionsThreshold": "100",
}

SOURCES: dict[str, list[tuple[str, str]]] = {
    "postgres": [
        ("prometheus-community+postgres_exporter/postgres_mixin/alerts/postgres.libsonnet", "jsonnet"),
        ("prometheus-community+postgres_exporter/postgres_mixin/dashboards/postgres-overview.json", "dashboard"),
        ("samber+awesome-prometheus-alerts/_data/rules.yml", "awesome:PostgreSQL"),
        ("percona+grafana-dashboards/dashboards/PostgreSQL/PostgreSQL_Instance_Summary.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/PostgreSQL/PostgreSQL_Instances_Overview.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/PostgreSQL/PostgreSQL_Checkpoints_Buffers_WAL_Usage.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/PostgreSQL/PostgreSQL_Replication_Overview.json", "dashboard"),
    ],
    "mysql": [
        ("prometheus+mysqld_exporter/mysqld-mixin/alerts/general.yaml", "rules"),
        ("prometheus+mysqld_exporter/mysqld-mixin/rules/rules.yaml", "rules"),
        ("prometheus+mysqld_exporter/mysqld-mixin/dashboards/mysql-overview.json", "dashboard"),
        ("samber+awesome-prometheus-alerts/_data/rules.yml", "awesome:MySQL"),
        ("percona+grafana-dashboards/dashboards/MySQL/MySQL_Instance_Summary.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/MySQL/MySQL_InnoDB_Details.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/MySQL/MySQL_Replication_Summary.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/MySQL/MySQL_InnoDB_Compression_Details.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/MySQL/MySQL_Instances_Overview.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/MySQL/MySQL_Command_Handler_Counters_Compare.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/MySQL/MySQL_MyISAM_Aria_Details.json", "dashboard"),
    ],
    "redis": [
        ("oliver006+redis_exporter/contrib/redis-mixin/alerts/redis.libsonnet", "jsonnet"),
        ("oliver006+redis_exporter/contrib/redis-mixin/dashboards/redis-overview.json", "dashboard"),
        ("oliver006+redis_exporter/contrib/grafana_prometheus_redis_dashboard.json", "dashboard"),
        ("samber+awesome-prometheus-alerts/_data/rules.yml", "awesome:Redis"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_Overview.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_Memory.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_Clients.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_CommandDetails.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_Replication.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_PersistenceDetails.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_Load.json", "dashboard"),
        ("percona+grafana-dashboards/dashboards/Valkey/Valkey_Network.json", "dashboard"),
    ],
}


def main(src: Path) -> None:
    for engine, sources in SOURCES.items():
        entries: list[dict[str, str]] = []
        for path, kind in sources:
            text = (src / path).read_text()
            for name, expr in _extract(text, kind):
                entry = {"source": path.split("/", 1)[0].replace("+", "/") + ":" + path.split("/", 1)[1],
                         "name": name, "expr": " ".join(expr.split())}
                if entry["expr"] and entry not in entries:
                    entries.append(entry)
        (HERE / f"{engine}.yaml").write_text(yaml.safe_dump(entries, sort_keys=False, width=120))
        print(engine, len(entries))


def _extract(text: str, kind: str) -> list[tuple[str, str]]:
    if kind == "rules":
        return [(rule.get("alert") or rule["record"], rule["expr"])
                for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    if kind == "dashboard":
        return [(f"{title} #{i}", expr) for title, i, expr in _targets(json.loads(text))]
    if kind.startswith("awesome:"):
        service = kind.split(":", 1)[1]
        return [(rule["name"], rule["query"]) for group in yaml.safe_load(text)["groups"]
                for s in group["services"] if s["name"] == service
                for exporter in s["exporters"] for rule in exporter.get("rules", [])]
    return _jsonnet_rules(text)


def _targets(node: Any, title: str = "") -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, str]] = []
    if isinstance(node, dict):
        title = node.get("title", title) if isinstance(node.get("title"), str) else title
        for i, target in enumerate(node.get("targets") or []):
            if isinstance(target, dict) and target.get("expr"):
                found.append((title, i, target["expr"]))
        for key, value in node.items():
            if key not in ("targets", "templating"):
                found.extend(_targets(value, title))
    elif isinstance(node, list):
        for value in node:
            found.extend(_targets(value, title))
    return found


_RULE = re.compile(r"(?:alert|record): '([^']+)'.*?expr: (?:\|\|\|\n(.*?)\n\s*\|\|\||'((?:[^'\\]|\\.)*)')",
                   re.S)


def _jsonnet_rules(text: str) -> list[tuple[str, str]]:
    rules = []
    for match in _RULE.finditer(text):
        expr = match.group(2) if match.group(2) is not None else match.group(3)
        rules.append((match.group(1), re.sub(r"%\((\w+)\)s", lambda m: JSONNET[m.group(1)], expr)))
    return rules


if __name__ == "__main__":
    main(Path(sys.argv[1]))
