"""Community dashboards and alert rules work on dbwatch as on the reference exporters (issue 13).

Per engine, one throwaway server is watched by the Debian reference exporter and by a real `dbwatch run`;
two real Prometheus servers scrape them every second, one each. Every PromQL expression kept in
tests/compat/<engine>.yaml (the exporters' mixins, their Grafana dashboards and awesome-prometheus-alerts;
sources and licences in tests/compat/README.md) is then evaluated on both. The share that matters is the one
the issue states: of the expressions that return data with the exporter, how many also return data with
dbwatch.

Starts: PostgreSQL 15 (its own) with prometheus-postgres-exporter 0.11 and the package's example queries.yaml
(per-table statistics); the session's MariaDB with prometheus-mysqld-exporter 0.14 (default collectors plus
info_schema.processlist and info_schema.innodb_metrics) on the session's MariaDB replica; a redis-server
replica (of a primary of its own) with prometheus-redis-exporter 1.45.

To answer "does it return data", expressions are made neutral to the server's health: Grafana variables
(and PMM's own `role="primary"` label) match anything, and a comparison gets `bool` (`x > 80` becomes
`x > bool 80`), so an alert's condition on a healthy server still answers with its operands' series instead
of nothing; an `offset` reaches 5 s back, into the few seconds of history the test's Prometheus holds. The
metric names the answered expressions use must also have the exporter's label names and unit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agentproc import AgentProcess
from tests.helpers import free_port, wait_for
from tests.mariadbserver import mariadb_primary, mariadb_replica  # noqa: F401
from tests.pgcluster import PostgresServer
from tests.pgexporter import EXAMPLE_QUERIES
from tests.redisserver import RedisServer

COMPAT = Path(__file__).resolve().parent / "compat"
SCRAPE = "1s"
COLLECT = "1s"
# Samples each Prometheus must hold before the expressions run: enough for rate()/irate()/changes() and for
# every dbwatch collector (the slowest here runs every COLLECT) to have reported twice.
SAMPLES = 8
# The target: of the expressions that return data with the exporter, the share that also do with
# dbwatch, per engine.
TARGET = 0.95

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus")


def neutral(expr: str) -> str:
    """``expr`` with Grafana's variables filled in and every comparison made a ``bool`` one."""
    expr = re.sub(r',?\s*\w+\s*(?:=~|!~|!=|=)\s*"[^"]*\$[^"]*"', "", expr)
    # PMM's own label for a Redis primary (its agent adds it; the exporter's `role` says "master").
    expr = re.sub(r',?\s*role\s*=~?\s*"primary"', "", expr)
    expr = re.sub(r"\$\{?(__rate_interval|__interval|interval|__range)\}?", "1m", expr.replace("{,", "{"))
    # Prometheus holds seconds of history here: an offset reaches back into it rather than before it.
    expr = re.sub(r"(?i)\boffset\s+\w+", "offset 5s", expr)
    return _with_bool(expr)


def returns_data(expr: str, query: Any) -> bool:
    return bool(query(neutral(expr)))


@pytest.mark.parametrize("engine", ["postgres", "mysql", "redis"])
def test_community_expressions_that_return_data_with_the_exporter_also_do_with_dbwatch(engine, request, tmp_path):
    expressions = yaml.safe_load((COMPAT / f"{engine}.yaml").read_text())
    with ExitStack() as stack:
        dsn, exporter_url = stack.enter_context(SETUPS[engine](request, tmp_path))
        (tmp_path / "agent").mkdir()
        agent = AgentProcess(tmp_path / "agent", {"targets": [
            {"name": engine, "engine": engine, "dsn": dsn, "interval": COLLECT, "timeout": COLLECT}]})
        agent.start()
        stack.callback(agent.stop)
        theirs = stack.enter_context(prometheus(tmp_path / "p-exporter", exporter_url))
        ours = stack.enter_context(prometheus(tmp_path / "p-dbwatch", agent.url("/metrics")))
        for api in (theirs, ours):
            wait_for(lambda api=api: _samples(api) >= SAMPLES, 60, "Prometheus to hold enough scrapes", interval=0.5)
        results = [(entry, returns_data(entry["expr"], theirs), returns_data(entry["expr"], ours))
                   for entry in expressions]
        names = {name for entry, exporter_has, _ in results if exporter_has
                 for name in re.findall(r"\b[a-z][a-z0-9_]*_[a-z0-9_]+\b", entry["expr"])}
        names = {name for name in names if theirs(name) and ours(name)}  # metric names, not functions or labels
        disagreements = [d for name in sorted(names) if (d := disagreement(name, theirs, ours))]
    with_exporter = [entry for entry, exporter_has, _ in results if exporter_has]
    missing = [entry for entry, exporter_has, dbwatch_has in results if exporter_has and not dbwatch_has]
    share = 1 - len(missing) / len(with_exporter)
    report = "\n".join(f"  {e['source'].split(':')[1]} / {e['name']}: {' '.join(e['expr'].split())}" for e in missing)
    unanswered = "\n".join(f"  {e['name']}: {e['expr']}" for e, exporter_has, _ in results if not exporter_has)
    print(f"\n{engine}: {len(with_exporter) - len(missing)} of {len(with_exporter)} expressions with the exporter's "
          f"data also return data with dbwatch ({share:.0%}); {len(expressions)} expressions in all; "
          f"{len(names)} metric names they use compared in label names and units.\n"
          f"With the exporter only:\n{report}\nNo data with the exporter either:\n{unanswered}")
    assert len(with_exporter) >= len(expressions) // 2, "the exporter answers too few: the setup is broken"
    assert not disagreements, "label names or units differ from the exporter's:\n" + "\n".join(disagreements)
    assert share >= TARGET, f"{engine}: {share:.0%} < {TARGET:.0%}; with the exporter only:\n{report}"


# Labels a scrape adds or a setup has on one side only: Prometheus's own, dbwatch's target label, and
# postgres_exporter's `server` (it adds it to per-table rows read through --extend.query-path).
SCRAPE_LABELS = {"__name__", "instance", "job", "target", "server"}
# Labels dbwatch has as the current exporter releases do, which the Debian (bookworm) ones predate.
NEWER_LABELS = {
    "pg_replication_slots_": {"slot_type"},  # postgres_exporter's replication_slot collector (0.12+)
    "redis_instance_info": {"master_replid"},  # redis_exporter 1.50+
}


def disagreement(name: str, theirs: Any, ours: Any) -> str | None:
    """How ``name``'s series differ between the exporter and dbwatch in label names, or in unit (values of
    one series a factor of 100 or more apart), or None when they agree (or one side lacks ``name``)."""
    mine = {_key(r["metric"]): float(r["value"][1]) for r in ours(name)}
    their = {_key(r["metric"]): float(r["value"][1]) for r in theirs(name)}
    if not mine or not their:
        return None
    newer = next((labels for prefix, labels in NEWER_LABELS.items() if name.startswith(prefix)), set())
    my_labels = {tuple(k for k, _ in key if k not in newer) for key in mine}
    their_labels = {tuple(k for k, _ in key) for key in their}
    if my_labels != their_labels:
        return f"  {name}: labels {sorted(my_labels)} here, {sorted(their_labels)} with the exporter"
    mine = {tuple(kv for kv in key if kv[0] not in newer): value for key, value in mine.items()}
    # A unit is every series' property: one latency quantile that moved between the two scrapes (a PING's
    # p50 at 1 ns, then 1 us) is the server changing, not a unit, so most compared series must be apart.
    ratios = {}
    for key in mine.keys() & their.keys():
        low, high = sorted((abs(mine[key]), abs(their[key])))
        if low > 0:
            ratios[key] = high / low
    apart = [key for key, ratio in ratios.items() if ratio >= 100]
    if apart and len(apart) * 2 > len(ratios):
        key = apart[0]
        return (f"  {name}{dict(key)}: {mine[key]} here, {their[key]} with the exporter "
                f"({len(apart)} of {len(ratios)} series)")
    return None


def _key(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in metric.items() if k not in SCRAPE_LABELS))


def test_expressions_are_made_neutral_to_health_without_touching_label_matchers_or_strings():
    assert neutral('rate(x{job=~"$job", instance=~"$instance"}[$__rate_interval]) > 0') == "rate(x{}[1m]) > bool  0"
    assert neutral('a{l="x>1"} == 1 and b != bool 2') == 'a{l="x>1"} == bool  1 and b != bool 2'
    assert neutral('redis_aof_enabled{service_name=~"$service_name",role=~"primary"}') == "redis_aof_enabled{}"
    assert neutral("x offset 5m") == "x offset 5s"


def test_a_disagreement_is_a_label_name_or_a_unit_apart_and_newer_labels_are_not_one():
    def answers(*series: tuple[dict[str, str], float]) -> Any:
        return lambda name: [{"metric": {"__name__": name, "instance": "i", **labels}, "value": [0, str(value)]}
                             for labels, value in series]

    exporter_ = answers(({"datname": "app"}, 2.0))
    assert disagreement("pg_x", exporter_, answers(({"datname": "app", "target": "t"}, 3.0))) is None
    assert "labels" in (disagreement("pg_x", exporter_, answers(({"db": "app"}, 2.0))) or "")
    assert "with the exporter" in (disagreement("pg_x", exporter_, answers(({"datname": "app"}, 2000.0))) or "")
    assert disagreement("pg_x", exporter_, answers()) is None  # one side lacks it: the share counts that
    quantiles = answers(*[({"cmd": cmd, "quantile": "50"}, 1.0) for cmd in ("ping", "get", "set")])
    moved = answers(({"cmd": "ping", "quantile": "50"}, 0.001), ({"cmd": "get", "quantile": "50"}, 1.0),
                    ({"cmd": "set", "quantile": "50"}, 1.0))
    assert disagreement("redis_x", quantiles, moved) is None  # one series moved between scrapes: not a unit
    assert "3 of 3" in (disagreement("redis_x", quantiles, answers(*[({"cmd": c, "quantile": "50"}, 1e-6)
                                                                       for c in ("ping", "get", "set")])) or "")
    slots = answers(({"slot_name": "s"}, 1.0))
    assert disagreement("pg_replication_slots_active", slots, answers(({"slot_name": "s", "slot_type": "p"}, 1.0))
                        ) is None


# -- one server, one exporter per engine ----------------------------------------------------------------


@contextmanager
def _postgres(request: Any, tmp_path: Path) -> Iterator[tuple[str, str]]:
    server = PostgresServer().start()
    try:
        # An application's database beside `postgres` (rules leave `postgres` and the templates out), a table
        # in each with live and dead rows, and a replication slot no standby uses yet.
        server.psql("CREATE DATABASE app")
        for database in ("postgres", "app"):
            server.psql("CREATE TABLE orders (id serial PRIMARY KEY, note text); "
                        "INSERT INTO orders (note) SELECT 'n' || i FROM generate_series(1, 500) i; "
                        "DELETE FROM orders WHERE id % 3 = 0; ANALYZE orders; SELECT count(*) FROM orders",
                        database=database)
        server.psql("SELECT pg_create_physical_replication_slot('spare')")
        with exporter("prometheus-postgres-exporter", f"--extend.query-path={EXAMPLE_QUERIES}",
                      env={"DATA_SOURCE_NAME": server.dsn()}) as url:
            yield server.dsn(), url
    finally:
        server.destroy()


@contextmanager
def _mysql(request: Any, tmp_path: Path) -> Iterator[tuple[str, str]]:
    # A replica (of the session's primary), so that the replication panels and rules have data too.
    server = request.getfixturevalue("mariadb_replica")
    with exporter("prometheus-mysqld-exporter", "--collect.info_schema.processlist",
                  "--collect.info_schema.innodb_metrics",
                  env={"DATA_SOURCE_NAME": f"root@(127.0.0.1:{server.port})/"}) as url:
        yield server.dsn(), url


@contextmanager
def _redis(request: Any, tmp_path: Path) -> Iterator[tuple[str, str]]:
    # A replica, as for MySQL, so that the replication panels and rules have data too.
    primary = RedisServer().start()
    server = RedisServer("--replicaof", "127.0.0.1", str(primary.port))
    try:
        server.start()
        client = primary.client()
        client.set("k", "v")
        client.get("k")
        client.get("absent")
        wait_for(lambda: server.client().info("replication").get("master_link_status") == "up", 30,
                 "the Redis replica's link")
        dsn = f"redis://127.0.0.1:{server.port}"
        with exporter("prometheus-redis-exporter", f"--redis.addr={dsn}") as url:
            yield dsn, url
    finally:
        server.destroy()
        primary.destroy()


SETUPS = {"postgres": _postgres, "mysql": _mysql, "redis": _redis}


@contextmanager
def exporter(binary: str, *flags: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A Debian exporter on a free loopback port; yields its /metrics URL."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed (Debian package {binary}; `make setup` installs it)")
    port = free_port()
    proc = subprocess.Popen([path, f"--web.listen-address=127.0.0.1:{port}", *flags], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _answers(url), 30, f"{binary} to answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


@contextmanager
def prometheus(directory: Path, url: str) -> Iterator[Any]:
    """A real Prometheus scraping ``url`` alone every SCRAPE; yields a query function (instant queries)."""
    directory.mkdir(parents=True)
    parts = urllib.parse.urlsplit(url)
    (directory / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": SCRAPE, "scrape_timeout": SCRAPE},
        "scrape_configs": [{"job_name": "db", "honor_labels": True, "metrics_path": parts.path,
                            "static_configs": [{"targets": [parts.netloc]}]}]}))
    port = free_port()
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(directory / "prometheus.log", "wb"))

    def query(expr: str) -> list[Any]:
        assert proc.poll() is None, "prometheus exited"
        request = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                result = json.load(response)["data"]["result"]
        except urllib.error.HTTPError as exc:  # a bad expression: no data
            assert exc.code in (400, 422), exc
            return []
        except urllib.error.URLError:  # not listening yet
            return []
        return result if isinstance(result, list) else [result]

    try:
        yield query
    finally:
        proc.terminate()
        proc.wait(15)


def _samples(query: Any) -> float:
    result = query('count_over_time(up{job="db"}[1m])')
    return float(result[0]["value"][1]) if result else 0.0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=30):
            return True
    except OSError:
        return False


_COMPARISON = re.compile(r"==|!=|>=|<=|>|<")


def _with_bool(expr: str) -> str:
    """Adds ``bool`` after every comparison operator outside label matchers and strings."""
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(expr):
        char = expr[i]
        if char == '"':
            end = expr.index('"', i + 1)
            while expr[end - 1] == "\\":
                end = expr.index('"', end + 1)
            out.append(expr[i:end + 1])
            i = end + 1
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        match = _COMPARISON.match(expr, i) if depth == 0 else None
        if match:
            out.append(match.group())
            i = match.end()
            if not re.match(r"\s*bool\b", expr[i:]):
                out.append(" bool ")
            continue
        out.append(char)
        i += 1
    return "".join(out)
