"""Per-target scrapes (``GET /metrics?target=NAME``, exporters/target_exposition.py): one target's series,
each family once, cached until that target's part changes, its tombstones retired once its own scrapers
fetched them; the agent's own part alone (``?collected=false``). On recorded snapshots, then end to end: a
real agent watching two real Redis servers, its bodies linted by Debian's promtool."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families as parse_text

from dbwatch.exporters.target_exposition import TargetScrapes
from tests.agentproc import AgentProcess
from tests.helpers import free_port, wait_for
from tests.redisserver import RedisServer
from tests.test_exposition_freshness import STARTED, exposition, lines, snapshot


def test_a_target_body_has_only_its_series_each_family_once_and_is_cached_until_it_changes():
    store, exp = exposition({"db": {"cluster": "c1"}, "other": {}})
    scrapes = TargetScrapes(exp)
    store.put(snapshot(["app"], STARTED))
    store.put(snapshot(["app", "b"], STARTED, target="other"))
    body = asyncio.run(scrapes.scrape("other"))
    assert lines(body, "pg_up") == ['pg_up{target="other"} 1.0 1700000000125']
    assert len(lines(body, "pg_stat_database_xact_commit")) == 2 and b'target="db"' not in body
    assert [f.name for f in parse_text(body.decode())] == ["pg_stat_database_xact_commit", "pg_up"]
    assert asyncio.run(scrapes.scrape("other")) is body  # nothing of "other" changed: the same bytes
    store.put(snapshot(["app"], STARTED + 15))  # another target's collection
    assert asyncio.run(scrapes.scrape("other")) is body
    store.put(snapshot(["app", "b"], STARTED + 15, target="other"))
    fresh = asyncio.run(scrapes.scrape("other"))
    assert fresh is not body and lines(fresh, "pg_up") == ['pg_up{target="other"} 1.0 1700000015125']
    packed = asyncio.run(scrapes.scrape("other", gzip=True))
    assert gzip.decompress(packed) == fresh
    assert asyncio.run(scrapes.scrape("db", openmetrics=True)).endswith(b"# EOF\n")


def test_a_vanished_series_is_served_to_its_targets_scrapers_until_they_fetched_it():
    store, exp = exposition({"db": {"cluster": "c1"}})
    scrapes = TargetScrapes(exp)
    store.put(snapshot(["app", "gone"], STARTED))
    for _ in range(2):  # one scrape loop on the target, seen twice: active
        asyncio.run(scrapes.scrape("db", scraper="prom:1"))
    store.put(snapshot(["app"], STARTED + 15))
    gone = 'pg_stat_database_xact_commit{target="db",cluster="c1",datname="gone"} 101.0'
    assert gone in lines(asyncio.run(scrapes.scrape("db", scraper="prom:1")), "pg_stat_database")
    assert exp.tombstones() == 1  # fetched by the target's scraper: it goes before the next scrape
    after = asyncio.run(scrapes.scrape("db", scraper="prom:1"))
    assert exp.tombstones() == 0 and not [line for line in lines(after, "pg_stat") if "gone" in line]


def _get(agent: AgentProcess, path: str, encoding: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(agent.url(path), headers={"Accept-Encoding": encoding} if encoding else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return response.status, gzip.decompress(body) if encoding else body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _promtool_problems(body: bytes) -> list[str]:
    result = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=body,
                            capture_output=True, timeout=60)
    text = (result.stdout + result.stderr).decode()
    return [line for line in text.splitlines() if "error while linting" in line or "parsing error" in line]


def test_an_agent_serves_each_target_and_itself_on_their_own(tmp_path: Path):
    servers = [RedisServer().start(), RedisServer().start()]
    agent = AgentProcess(tmp_path, {"targets": [{"name": f"cache{i}", "engine": "redis", "dsn": s.dsn(),
                                                 "interval": "1s"} for i, s in enumerate(servers)]}).start()
    try:
        # First collections are spread over the interval: both targets reported before anything is asserted.
        wait_for(lambda: all(f'redis_up{{target="cache{i}"}} 1'.encode() in _get(agent, f"/metrics?target=cache{i}")[1]
                             for i in (0, 1)), 30, "both targets' own scrapes")
        status, one = _get(agent, "/metrics?target=cache1", encoding="gzip")
        assert status == 200 and b'target="cache0"' not in one and b"dbwatch_build_info" not in one
        names = [f.name for f in parse_text(one.decode())]
        assert len(names) == len(set(names)) and "redis_up" in names
        assert _promtool_problems(one) == []
        status, own = _get(agent, "/metrics?collected=false")
        assert status == 200 and b"dbwatch_build_info" in own and b"redis_up{" not in own
        assert b'dbwatch_collector_runs_total{target="cache0"' in own
        # the agent's own latency (agent/loophealth.py): the loop probed, the young collections timed
        assert b"dbwatch_event_loop_lag_seconds_count " in own
        assert b'dbwatch_gc_pause_seconds_count{generation="0"}' in own
        assert _promtool_problems(own) == []
        status, text = _get(agent, "/metrics?target=nosuch")
        assert status == 404 and text == b"target='nosuch': no target of that name in the configuration\n"
        assert _get(agent, "/metrics?target=cache0&target=cache1")[0] == 400
        servers[1].stop()  # its series vanish from its own scrapes, its up goes to 0
        wait_for(lambda: b'redis_up{target="cache1"} 0' in _get(agent, "/metrics?target=cache1")[1], 30,
                 "cache1 down in its own scrape")
        assert b'redis_up{target="cache0"} 1' in _get(agent, "/metrics?target=cache0")[1]
    finally:
        agent.stop()
        for server in servers:
            server.stop()


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return list(json.load(response)["data"]["result"])
    except urllib.error.URLError:  # not listening yet
        return []


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed (Debian package prometheus)")
def test_a_real_prometheus_discovers_and_scrapes_each_target_on_its_own(tmp_path: Path):
    servers = [RedisServer().start(), RedisServer().start()]
    agent = AgentProcess(tmp_path, {"targets": [{"name": f"cache{i}", "engine": "redis", "dsn": s.dsn(),
                                                 "interval": "1s"} for i, s in enumerate(servers)]}).start()
    shipped = {job["job_name"]: job for job in
               yaml.safe_load((Path(__file__).parent.parent / "deploy/prometheus/prometheus.yml").read_text())[
                   "scrape_configs"]}
    address = f"127.0.0.1:{agent.port}"
    targets_job = {**shipped["dbwatch-targets"], "http_sd_configs": [{"url": f"http://{address}/api/v1/sd",
                                                                      "refresh_interval": "1s"}]}
    agents_job = {**shipped["dbwatch-agents"], "static_configs": [{"targets": [address]}]}
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"},
                                                             "scrape_configs": [targets_job, agents_job]}))
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # one scrape target per watched target, each up, each bringing only its own series
        wait_for(lambda: len(_query(port, 'up{job="dbwatch-targets"} == 1')) == 2
                 and len(_query(port, "redis_up == 1")) == 2, 60, "both targets scraped on their own")
        ups = {r["metric"]["instance"]: r["metric"]["target"] for r in _query(port, 'redis_up{job="dbwatch-targets"}')}
        assert ups == {"cache0": "cache0", "cache1": "cache1"}
        # the agent's own metrics from the agents' job, no target series twice
        wait_for(lambda: _query(port, 'dbwatch_build_info{job="dbwatch-agents"}'), 30, "the agent's own metrics")
        assert _query(port, 'redis_up{job="dbwatch-agents"}') == []
        assert len(_query(port, 'dbwatch_collector_runs_total{job="dbwatch-agents"}')) >= 2
    finally:
        prometheus.terminate()
        prometheus.wait(30)
        agent.stop()
        for server in servers:
            server.stop()
