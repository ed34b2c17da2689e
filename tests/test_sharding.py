"""Sharding a fleet across agents by Prometheus' hashmod of the target name, and two agents of one shard (HA)
behind one Alertmanager.

Starts: a real Prometheus (Debian package prometheus) whose hashmod relabeling assigns the same names to
shards; `dbwatch check` and `dbwatch run` processes (tests/agentproc.py) over host targets and PostgreSQL
targets on closed loopback ports (down on purpose); a real Alertmanager (Debian package
prometheus-alertmanager, clustering off) notifying a recording HTTP server (http.server in a thread).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.sharding import ShardingConfig, hashmod, parse_shard, select_shard
from tests.agentproc import AgentProcess, sample_value
from tests.helpers import free_port, wait_for

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
HOSTS = [f"host-{i}" for i in range(8)]


# -- the hash -------------------------------------------------------------------------------------------


def test_hashmod_is_md5s_low_64_bits_big_endian_modulo_n():
    # Published digests: md5 = first half | second half; Prometheus reads the second half, big-endian.
    fox = "The quick brown fox jumps over the lazy dog"  # 9e107d9d372bb682 6bd81d3542a419d6
    assert hashmod(fox, 1000) == int("6bd81d3542a419d6", 16) % 1000 == 0x6BD81D3542A419D6 % 1000
    assert hashmod(fox, 2**64) == 0x6BD81D3542A419D6
    assert hashmod("", 7) == int("e9800998ecf8427e", 16) % 7  # md5("") = d41d8cd98f00b204 e9800998ecf8427e


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed (Debian package prometheus)")
def test_a_real_prometheus_hashmod_relabel_puts_every_name_in_the_shard_dbwatch_computes(tmp_path):
    names = [f"db-{i:03d}.example:5432" for i in range(40)] + ["orders-primary", "billing_replica@eu", "x"]
    modulus = 7
    closed = free_port()  # nothing listens: the scrapes fail, the assignment is what is read
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1m"},
        "scrape_configs": [{
            "job_name": "shards",
            "static_configs": [{"targets": [f"127.0.0.1:{closed}"], "labels": {"dbwatch_target": n}} for n in names],
            "relabel_configs": [{"source_labels": ["dbwatch_target"], "action": "hashmod", "modulus": modulus,
                                 "target_label": "shard"}],
        }],
    }))
    port = free_port()
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def assignment() -> dict[str, int] | None:
        assert prometheus.poll() is None, "prometheus exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as response:
                active = json.load(response)["data"]["activeTargets"]
        except OSError:
            return None
        seen = {t["labels"]["dbwatch_target"]: int(t["labels"]["shard"]) for t in active}
        return seen if len(seen) == len(names) else None

    try:
        prometheus_shards = wait_for(assignment, 60, "Prometheus to list every target", interval=0.3)
    finally:
        prometheus.terminate()
        prometheus.wait(15)
    assert prometheus_shards == {n: hashmod(n, modulus) for n in names}
    assert len(set(prometheus_shards.values())) == modulus, "the names reach every shard"


def test_shards_partition_a_large_fleet_evenly_enough():
    names = [f"pg-{i}" for i in range(3000)]
    shards = [select_shard(names, ShardingConfig(total=3, index=i), str) for i in range(3)]
    assert sorted(n for shard in shards for n in shard) == sorted(names)
    assert all(900 <= len(shard) <= 1100 for shard in shards), [len(s) for s in shards]
    assert select_shard(names, ShardingConfig(), str) == names


# -- configuration and command line ---------------------------------------------------------------------


@pytest.mark.parametrize("text, problem", [
    ("sharding: {total: 2, index: 2}", "sharding.index: expected 0 to 1"),
    ("sharding: {total: 0}", "sharding.total:"),
    ("sharding: {total: 2, idx: 1}", "sharding.idx:"),
])
def test_a_bad_sharding_setting_names_its_path(text, problem):
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_shard_on_the_command_line_reads_index_slash_total():
    assert parse_shard("1/4") == ShardingConfig(index=1, total=4)
    for bad in ("4/4", "1", "a/2", "1/0", "-1/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "check", "-c", "x.yaml", "--shard", "2/2"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--shard" in result.stderr


def write_hosts_config(path: Path, extra: str = "") -> Path:
    targets = "".join(f"  - {{name: {name}, engine: host}}\n" for name in HOSTS)
    path.write_text(f"state_dir: {path.parent / 'state'}\n{extra}targets:\n{targets}")
    return path


def test_two_shards_of_one_config_check_every_target_exactly_once(tmp_path):
    config = write_hosts_config(tmp_path / "fleet.yaml")
    seen = []
    for shard in ("0/2", "1/2"):
        result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "check", "-c", str(config),
                                 "--shard", shard, "--format", "json"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        names = [r["target"] for r in json.loads(result.stdout)]
        assert names, f"shard {shard} is empty"
        assert names == [n for n in HOSTS if hashmod(n, 2) == int(shard[0])]
        seen += names
    assert sorted(seen) == sorted(HOSTS) and len(seen) == len(set(seen))


def test_an_agent_watches_only_its_shard_and_the_command_line_wins_over_the_config(tmp_path):
    config = yaml.safe_load(write_hosts_config(tmp_path / "fleet.yaml", "sharding: {total: 2, index: 1}\n").read_text())
    config["targets"] = [{**t, "interval": "5s"} for t in config["targets"]]
    agent = AgentProcess(tmp_path, config).start()
    try:
        expected = [n for n in HOSTS if hashmod(n, 2) == 1]
        assert sorted(agent.targets()) == sorted(expected)
        assert f"shard 1/2 keeps {len(expected)} of {len(HOSTS)} target(s)" in agent.log()
    finally:
        assert agent.stop() == 0
    (tmp_path / "cli").mkdir()
    other = AgentProcess(tmp_path / "cli", config, args=["--shard", "0/2"]).start()
    try:
        assert sorted(other.targets()) == sorted(n for n in HOSTS if hashmod(n, 2) == 0)
    finally:
        assert other.stop() == 0


# -- HA: two agents of one shard, one Alertmanager, one notification per alert ----------------------------


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_two_agents_of_one_shard_give_one_notification_per_alert_through_a_real_alertmanager(tmp_path):
    if not os.access(ALERTMANAGER, os.X_OK):
        pytest.fail("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    Hook.received = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    am_port = free_port()
    (tmp_path / "am.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "hook", "group_by": ["alertname", "target"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [
            {"url": f"http://127.0.0.1:{hook.server_address[1]}/am", "send_resolved": False}]}],
    }))
    am = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Four PostgreSQL targets on closed loopback ports: down from the first collection; TargetDown at once.
    names = ["orders", "billing", "users", "events"]
    shard = ShardingConfig(total=2, index=0)
    in_shard = select_shard(names, shard, str)
    assert 0 < len(in_shard) < len(names)
    config = {
        "sharding": {"total": 2, "index": 0},
        "targets": [{"name": n, "engine": "postgres", "dsn": f"postgresql://dbwatch@127.0.0.1:{free_port()}/postgres",
                     "interval": "1s", "labels": {"cluster": "c1"}} for n in names],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
        "receivers": [{"name": "am", "type": "alertmanager", "url": f"http://127.0.0.1:{am_port}",
                       "resend_interval": "2s"}],
    }
    agents: list[AgentProcess] = []
    try:
        wait_for(lambda: am.poll() is None and _status(f"http://127.0.0.1:{am_port}/-/ready") == 200, 20,
                 "Alertmanager to be ready")
        for i in range(2):
            (tmp_path / f"agent{i}").mkdir()
            agents.append(AgentProcess(tmp_path / f"agent{i}", config).start())

        def both_pushed() -> bool:
            return all((sample_value(a.metrics(), "dbwatch_notifications_total", receiver="am", result="sent") or 0) >= 2
                       for a in agents)

        wait_for(both_pushed, 30, "both agents to push their alerts to Alertmanager (twice each)", interval=0.3)
        for agent in agents:
            firing = {a["labels"]["target"] for a in agent.get("/api/v1/alerts") if a["state"] == "firing"}
            assert firing == set(in_shard)
        time.sleep(3)  # past group_wait + group_interval + a resend from each agent: any duplicate would be out
        with urllib.request.urlopen(f"http://127.0.0.1:{am_port}/api/v2/alerts", timeout=5) as response:
            active = json.load(response)
        assert sorted(a["labels"]["target"] for a in active) == sorted(in_shard), "one alert per target, not two"
        notified = Counter((a["labels"]["alertname"], a["labels"]["target"])
                           for body in Hook.received for a in body["alerts"] if a["status"] == "firing")
        assert notified == Counter({("TargetDown", n): 1 for n in in_shard})
    finally:
        for agent in agents:
            agent.stop()
        am.terminate()
        am.wait(10)
        hook.shutdown()
        hook.server_close()


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None
