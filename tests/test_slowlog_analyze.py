"""``dbwatch slowlog analyze``: the real command on slow logs written by real servers.

Real servers: a throwaway MariaDB 10.11 (tests/mariadbserver.py: mariadb-install-db into a temporary
directory, mariadbd on a free loopback port, ``--slow-query-log --long-query-time=0
--log-slow-verbosity=query_plan``) and a throwaway PostgreSQL 15 (tests/pgcluster.py,
``log_min_duration_statement = 0``, stderr through the logging collector with pgBadger's usual
``log_line_prefix``). The command runs as a child process (``.venv/bin/dbwatch``), as a user would run it.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mariadbserver import MariaDBServer
from tests.pgcluster import PostgresServer

DBWATCH = str(Path(sys.executable).with_name("dbwatch"))

# statement shape -> (fingerprint, how many times it runs); literals vary, some hold what pt-query-digest
# misreads (a doubled quote, an escaped backslash, UTF-8): each shape must still be one class.
NAMES = ["smith", "o''neil", "c:\\\\", "Zürich", "東京", "d''arcy", "plain"]
WORKLOAD = (
    "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40), city VARCHAR(40));\n"
    + "".join(f"INSERT INTO people VALUES ({i}, 'p{i}', 'c{i % 3}');\n" for i in range(30))
    + "".join(f"SELECT * FROM people WHERE name = '{NAMES[i % len(NAMES)]}';\n" for i in range(21))
    + "".join(f"SELECT id FROM people WHERE id IN ({', '.join(map(str, range(i + 1)))});\n" for i in range(8))
    + "".join(f"UPDATE people SET city = '{NAMES[i % len(NAMES)]}' WHERE id = {i};\n" for i in range(14))
    + "".join(f"SELECT city, COUNT(*)\n  FROM people\n WHERE id > {i}\n GROUP BY city\n LIMIT {i};\n" for i in range(5))
    + "SELECT SLEEP(0.2);\n"
)
EXPECTED = {
    "insert into people values(?+)": 30,
    "select * from people where name = ?": 21,
    "select id from people where id in(?+)": 8,
    "update people set city = ? where id = ?": 14,
    "select city, count(*) from people where id > ? group by city limit ?": 5,
    "select sleep(?)": 1,
}
JSON_KEYS = {"rank", "class_id", "fingerprint", "count", "query_time_total", "query_time_mean", "query_time_p95",
             "query_time_max", "lock_time_total", "rows_examined_total", "rows_sent_total", "rows_affected_total",
             "db", "user", "first_seen", "last_seen", "sample"}


def analyze(*args: str, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([DBWATCH, "slowlog", "analyze", *args], stdout=subprocess.PIPE, stderr=stderr, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def mariadb_log() -> Iterator[Path]:
    """The slow log of a real MariaDB after WORKLOAD, the server stopped so the log is complete."""
    server = MariaDBServer(server_id=7, performance_schema=False)
    log = server.root / "slow.log"
    for key in ("log-bin", "binlog-format", "log-slave-updates"):
        server.options.pop(key)
    server.options.update({"slow-query-log": "ON", "slow-query-log-file": str(log), "long-query-time": "0",
                           "log-slow-verbosity": "query_plan", "character-set-server": "utf8mb4"})
    try:
        server.start()
        server.sql("CREATE DATABASE app")
        server.sql(WORKLOAD, database="app")
        server.stop()
        yield log
    finally:
        server.destroy()


def test_counts_per_class_are_the_statements_the_server_ran(mariadb_log):
    result = analyze("--format", "json", "--limit", "0", str(mariadb_log))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar, and nothing was malformed
    classes = json.loads(result.stdout)
    counts = {c["fingerprint"]: c["count"] for c in classes}
    assert {fp: counts.get(fp) for fp in EXPECTED} == EXPECTED
    by_name = next(c for c in classes if c["fingerprint"] == "select * from people where name = ?")
    assert by_name["db"] == "app" and by_name["user"] == "root"
    assert by_name["rows_sent_total"] == 0 and by_name["rows_examined_total"] == 21 * 30  # full scans, no match
    assert by_name["sample"].startswith("SELECT * FROM people WHERE name = '")
    sleep = next(c for c in classes if c["fingerprint"] == "select sleep(?)")
    assert sleep["rank"] == 1 and sleep["query_time_total"] >= 0.2  # ranked by total time
    assert sleep["query_time_max"] == sleep["query_time_p95"] == sleep["query_time_mean"] == sleep["query_time_total"]


def test_json_is_a_ranked_list_of_classes_with_the_documented_keys(mariadb_log):
    classes = json.loads(analyze("--format", "json", "--limit", "0", str(mariadb_log)).stdout)
    assert all(set(c) == JSON_KEYS for c in classes)
    assert [c["rank"] for c in classes] == list(range(1, len(classes) + 1))
    totals = [c["query_time_total"] for c in classes]
    assert totals == sorted(totals, reverse=True)
    for c in classes:
        assert len(c["class_id"]) == 16 and c["class_id"] == c["class_id"].upper()
        assert c["query_time_max"] >= c["query_time_p95"] > 0 or c["query_time_total"] == 0
        assert c["query_time_mean"] == pytest.approx(c["query_time_total"] / c["count"])
        assert isinstance(c["rows_examined_total"], int) and isinstance(c["rows_sent_total"], int)


def test_limit_keeps_the_costliest_classes_and_0_keeps_all(mariadb_log):
    every = json.loads(analyze("--format", "json", "--limit", "0", str(mariadb_log)).stdout)
    two = json.loads(analyze("--format", "json", "--limit", "2", str(mariadb_log)).stdout)
    assert len(every) > 6 and two == every[:2]
    text = analyze("--limit", "2", str(mariadb_log)).stdout
    assert f"and {len(every) - 2} more classes" in text
    assert text.count("\n# Query ") == 2
    assert analyze("--limit", "-1", str(mariadb_log)).returncode == 2


def test_text_report_shows_the_profile_the_classes_and_the_parse_counters(mariadb_log, tmp_path):
    broken = tmp_path / "broken.log"
    data = mariadb_log.read_bytes()
    broken.write_bytes(b"this line is no slow log\n" + data + b"# User@Host: x[x] @ h []\n# Query_time: soon\nSELECT 1;\n"
                       + b"# User@Host: root[root] @ localhost [127.0.0.1]\n# Query_time: 0.1  Lock_time: 0  "
                       b"Rows_sent: 0  Rows_examined: 0\nSELECT 'caf\xe9';\n")  # Latin-1, not UTF-8
    result = analyze("--limit", "3", str(broken))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    sleep_id = next(c["class_id"] for c in json.loads(analyze("--format", "json", str(mariadb_log)).stdout)
                    if c["fingerprint"] == "select sleep(?)")
    profile = lines.index("# Profile (classes ranked by total query time)")
    assert lines[profile + 1].split()[:5] == ["Rank", "Query", "ID", "Total", "%"]
    assert lines[profile + 2].split()[:2] == ["1", sleep_id]
    assert f"# Query 1: {sleep_id}  1 events" in result.stdout
    assert "    SELECT SLEEP(0.2)" in lines
    assert lines[-1].startswith("# parse errors (records skipped: malformed, not UTF-8 or over 1 MiB): 2; "
                                "lines belonging to no event: 1")
    events = sum(c["count"] for c in json.loads(analyze("--format", "json", "--limit", "0", str(mariadb_log)).stdout))
    assert lines[0].startswith(f"# {events:,} events, ")  # the malformed records are not events


def test_a_missing_file_exits_2_with_a_clear_message(mariadb_log, tmp_path):
    result = analyze(str(mariadb_log), str(tmp_path / "nope.log"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"dbwatch slowlog analyze: {tmp_path / 'nope.log'}: no such file"
    directory = analyze(str(tmp_path))
    assert directory.returncode == 2 and "is a directory" in directory.stderr and "Traceback" not in directory.stderr


def test_big_files_show_a_progress_bar_on_a_terminal_and_nothing_on_a_pipe(mariadb_log, tmp_path):
    big = tmp_path / "big.log"
    data = mariadb_log.read_bytes()
    copies = (9 << 20) // len(data) + 1  # past the 8 MiB from which a bar is drawn
    with open(big, "wb") as fh:
        for _ in range(copies):
            fh.write(data)
    master, slave = pty.openpty()
    try:
        result = analyze("--format", "json", "--limit", "0", str(big), str(mariadb_log), stderr=slave)
        os.close(slave)
        slave = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert result.returncode == 0
    counts = {c["fingerprint"]: c["count"] for c in json.loads(result.stdout)}
    assert {fp: counts[fp] for fp in EXPECTED} == {fp: n * (copies + 1) for fp, n in EXPECTED.items()}
    bar = drawn.decode()
    assert "[##############################] 100.0 %" in bar and "events/s" in bar
    assert f"/{(big.stat().st_size + mariadb_log.stat().st_size) / 1e6:,.1f} MB" in bar
    piped = analyze("--limit", "1", str(big))
    assert piped.returncode == 0 and piped.stderr == ""


@pytest.fixture(scope="module")
def postgres_log() -> Iterator[Path]:
    server = PostgresServer(settings={
        "log_min_duration_statement": "0", "logging_collector": "on", "log_directory": "'log'",
        "log_filename": "'postgresql.log'", "lc_messages": "'C'",
        "log_line_prefix": "'%t [%p]: user=%u,db=%d,app=%a,client=%h '",
    })
    try:
        server.start()
        server.psql("CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int);\n"
                    + "".join(f"INSERT INTO accounts VALUES ({i}, '{NAMES[i % len(NAMES)]}', {i});\n"
                              for i in range(12))
                    + "".join(f"UPDATE accounts SET balance = balance + {i} WHERE id = {i % 12};\n" for i in range(9))
                    + "".join(f"SELECT owner\n  FROM accounts\n WHERE balance > {i};\n" for i in range(4)))
        server.stop()
        yield server.data / "log" / "postgresql.log"
    finally:
        server.destroy()


def test_a_postgresql_log_gives_the_statements_run(postgres_log):
    for kind in ("postgres", "auto"):
        result = analyze("--type", kind, "--format", "json", "--limit", "0", str(postgres_log))
        assert result.returncode == 0, result.stderr
        counts = {c["fingerprint"]: c for c in json.loads(result.stdout)}
        assert {fp: counts[fp]["count"] for fp in (
            "insert into accounts values(?+)", "update accounts set balance = balance + ? where id = ?",
            "select owner from accounts where balance > ?")} == {
            "insert into accounts values(?+)": 12, "update accounts set balance = balance + ? where id = ?": 9,
            "select owner from accounts where balance > ?": 4}, kind
        update = counts["update accounts set balance = balance + ? where id = ?"]
        assert update["user"] == "postgres" and update["db"] == "postgres" and update["query_time_total"] > 0
    text = analyze("--type", "postgres", str(postgres_log)).stdout
    assert "(postgres-stderr)" in text.splitlines()[1]


def test_past_the_class_cap_the_cheapest_classes_are_folded_and_the_costliest_stay_exact(mariadb_log):
    from dbwatch.agent.slowreport import analyze_files, render_text

    exact = analyze_files([str(mariadb_log)])
    capped = analyze_files([str(mariadb_log)], max_classes=4)
    assert len(exact.classes) > 6 and capped.folded_events > 0
    assert len(capped.classes) <= 4 + 1
    assert capped.events == exact.events == sum(c.count for c in capped.classes) + capped.folded_events
    assert capped.classes[0].fingerprint == exact.classes[0].fingerprint == "select sleep(?)"
    assert capped.classes[0].count == 1
    assert f"{capped.folded_events:,} events" in render_text(capped).splitlines()[-3]


def test_the_shape_cache_answers_as_fingerprint_even_where_digits_are_kept():
    from dbwatch.collectors.fingerprint import ShapeCache, fingerprint

    # pairs with the same masked shape where fingerprint keeps the digits: each must keep its own answer
    pairs = [("SELECT * FROM `t 1` WHERE a = 1", "SELECT * FROM `t 2` WHERE a = 2"),
             ("SELECT /*!40001 SQL_NO_CACHE */ * FROM `t`", "SELECT /*!40002 SQL_NO_CACHE */ * FROM `t`"),
             ("CALL p1(1)", "CALL p2(1)"), ("call 5(1)", "call 6(1)"),
             ("administrator command: Ping 1", "administrator command: Ping 2"),
             ("SELECT users_2009.a FROM users_2009", "SELECT users_2010.a FROM users_2010"),
             ("SELECT 1abc FROM t", "SELECT 2abc FROM t"), ("SELECT 0x1F, 1e5", "SELECT 0x2F, 2e5"),
             ('SELECT "Id 1" FROM t', 'SELECT "Id 2" FROM t')]
    variants = ["SELECT * FROM t WHERE a = 1 AND b IN (1, 2, 3) LIMIT 5, 10",
                "SELECT * FROM t WHERE a = 22 AND b IN (4, 5) LIMIT 50, 1",
                "INSERT INTO t2 (a) VALUES (1, 'o''neil'), (2, 'x\\\\')", "INSERT INTO t2 (a) VALUES (3, 'é')",
                "SELECT -5, +3.5e-2, é1 FROM t3", "SELECT -6, +4.5e-3, é2 FROM t3", "use db1", "USE db2"]
    cache = ShapeCache()
    for query in [q for pair in pairs for q in pair] + variants:
        for postgres in (False, True):
            assert cache(query, postgres) == fingerprint(query, postgres), (query, postgres)
    assert len({cache(q) for q in variants[:2]}) == 1 and len({cache(q) for q in variants[2:4]}) == 1
