"""Issue 15, items 10 and 11: the real `dbwatch` command on real files and a real redis-server.

Starts: a throwaway redis-server (tests/redisserver.py); runs Debian's pt-query-digest (percona-toolkit) on
the same slow log as `dbwatch slowlog analyze`.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import yaml

from tests.redisserver import RedisServer

MARIADB_HEADER = ("/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:\n"
                  "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\nTime\t\t    Id Command\tArgument\n")


def event(query: str, seconds: float) -> str:
    """One event as MariaDB 10.11 writes it."""
    return ("# User@Host: app[app] @ localhost [127.0.0.1]\n# Thread_id: 3  Schema: shop  QC_hit: No\n"
            f"# Query_time: {seconds:.6f}  Lock_time: 0.000045  Rows_sent: 1  Rows_examined: 10\n"
            f"# Rows_affected: 0  Bytes_sent: 56\nSET timestamp=1795818174;\n{query};\n")


def dbwatch(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", *args], capture_output=True, text=True,
                          timeout=120, **kwargs)


# -- 10: slowlog analyze --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["auto", "mysql", "postgres"])
def test_analyze_on_a_file_that_is_not_a_slow_log_says_what_it_read_and_exits_1(tmp_path, kind):
    not_a_log = tmp_path / "services"
    not_a_log.write_text("".join(f"service{i}\t{1000 + i}/tcp\t# some daemon\n" for i in range(120)))
    result = dbwatch("slowlog", "analyze", "--type", kind, str(not_a_log))
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"dbwatch slowlog analyze: {not_a_log}: no slow query event in 120 line(s) read as ")
    assert "--type" in line
    # a slow log beside it: events were recognised, so the report stands (and still names the odd file)
    log = tmp_path / "slow.log"
    log.write_text(MARIADB_HEADER + event("SELECT 1", 0.5))
    both = dbwatch("slowlog", "analyze", "--type", "mysql" if kind != "postgres" else "auto", str(not_a_log), str(log))
    assert both.returncode == 0 and "1 events" in both.stdout
    assert str(not_a_log) in both.stderr


def test_analyze_p95_and_class_ids_are_pt_query_digests(tmp_path):
    rng = random.Random(15)
    text = MARIADB_HEADER
    for name, count in (("a", 1), ("b", 2), ("c", 5), ("d", 9), ("e", 10), ("f", 37), ("g", 500)):
        text += "".join(event(f"SELECT * FROM t_{name} WHERE id = {i}", rng.lognormvariate(-5, 1.5))
                        for i in range(count))
    text += "".join(event("DELETE FROM sessions WHERE created_at < now() - interval 1 day", rng.uniform(0.1, 2))
                    for _ in range(40))
    log = tmp_path / "slow.log"
    log.write_text(text)
    pt = subprocess.run(["pt-query-digest", "--preserve-embedded-numbers", "--output", "json", "--limit", "100%",
                         str(log)], capture_output=True, text=True, timeout=120, check=True)
    theirs = {c["checksum"][:16]: float(c["metrics"]["Query_time"]["pct_95"]) for c in json.loads(pt.stdout)["classes"]}
    result = dbwatch("slowlog", "analyze", "--format", "json", "--limit", "0", str(log))
    assert result.returncode == 0, result.stderr
    ours = {c["class_id"]: c["query_time_p95"] for c in json.loads(result.stdout)}
    assert set(ours) == set(theirs)
    for class_id, p95 in ours.items():
        assert p95 == pytest.approx(theirs[class_id], abs=1e-6), class_id  # pt prints 6 decimals
    text_report = dbwatch("slowlog", "analyze", str(log)).stdout
    assert "pt-query-digest --preserve-embedded-numbers Query IDs" in text_report
    assert "p95 is computed as pt-query-digest computes it" in text_report


# -- 11: the command line ---------------------------------------------------------------------------------------

def test_output_cut_short_by_head_ends_quietly(tmp_path):
    log = tmp_path / "slow.log"
    log.write_text(MARIADB_HEADER + "".join(event(f"SELECT c{i} FROM t{i}", 0.1) for i in range(3000)))
    pipeline = subprocess.run(
        f"{sys.executable} -m dbwatch.agent.cli slowlog analyze --limit 0 {log} | head -1; "
        "echo \"status ${PIPESTATUS[0]}\" >&2",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120)
    assert pipeline.stdout.startswith("# 3,000 events")
    assert "Traceback" not in pipeline.stderr and "BrokenPipeError" not in pipeline.stderr, pipeline.stderr
    assert pipeline.stderr.strip().splitlines()[-1] == "status 141"


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.destroy()


def test_check_on_redis_prints_no_warning_and_its_json_numbers_are_numbers(tmp_path, redis_server):
    config = tmp_path / "dbwatch.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "targets": [
        {"name": "cache", "engine": "redis", "dsn": redis_server.dsn()}]}))
    text = dbwatch("check", "-c", str(config))
    assert text.returncode == 0, text.stderr
    assert "Warning" not in text.stderr and text.stderr == "", text.stderr
    assert "clients: " in text.stdout  # the text report keeps its "n/max" form
    result = dbwatch("check", "-c", str(config), "--format", "json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    [cache] = json.loads(result.stdout)
    assert cache["numbers"] and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                    for v in cache["numbers"].values()), cache["numbers"]
    assert cache["numbers"]["clients"] >= 1 and cache["numbers"]["clients max"] >= cache["numbers"]["clients"]
    assert cache["details"]["role"] == "master"

