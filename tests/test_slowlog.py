"""Slow query logs: fingerprints against percona-toolkit's own tools, the follower through rotations and
restarts, and the logs of a real MariaDB and a real PostgreSQL.

Real tools and servers: pt-fingerprint and pt-query-digest (Debian's percona-toolkit) run on the same
queries and the same logs; a throwaway MariaDB 10.11 (mariadb-install-db into a temporary directory,
mariadbd on a free loopback port, ``--slow-query-log --long-query-time=0 --log-slow-verbosity=query_plan``)
and a throwaway PostgreSQL 15 (tests/pgcluster.py, ``log_min_duration_statement = 0``, logging collector
writing stderr, csvlog and jsonlog) write the logs that are parsed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from dbwatch.model import CollectorSettings, Target
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.fingerprint import checksum, class_id, fingerprint
from dbwatch.collectors.logtail import LogFollower
from dbwatch.collectors.slowlog import Aggregator, SlowLogCollector, SlowLogOptions, analyze
from dbwatch.collectors.slowlog_formats import SlowEvent, make_parser
from dbwatch.model.facts.slowlog import SlowClasses, SlowLogPosition
from tests.helpers import collect, free_port
from tests.pgcluster import PostgresServer

# Queries pt-query-digest fingerprints correctly: ours must be identical, character for character.
CORPUS = [
    "SELECT * FROM users WHERE id = 42",
    "select * from users where id=42",
    "SELECT  *\n  FROM users\n WHERE id =\t42",
    "SELECT name FROM users_2009 WHERE id IN (1, 2, 3)",
    "SELECT name FROM t1 WHERE id IN (1,2,3) AND x IN ('a', 'b')",
    "SELECT * FROM t WHERE a = 'it\\'s' AND b = \"dq\"",
    "INSERT INTO t (a, b) VALUES (1, 'x')",
    "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
    "INSERT IGNORE INTO t VALUES (1,2),(3,4)",
    "REPLACE INTO t (a) VALUES (1),(2)",
    "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1",
    "SELECT * FROM t LIMIT 10",
    "SELECT * FROM t LIMIT 10, 20",
    "SELECT * FROM t LIMIT 10 OFFSET 20",
    "SELECT * FROM t ORDER BY a ASC, b DESC, c ASC",
    "SELECT /* a comment */ 1",
    "SELECT /*!40001 SQL_NO_CACHE */ * FROM `db`.`tbl`",
    "SELECT * FROM t WHERE a IS NULL AND b = NULL",
    "SELECT -1, +2, 3.14, 0x1F, 1e10, -.5",
    "SELECT col1, col2 FROM tbl2 WHERE col3 = 5",
    "USE `Shop`",
    "CALL proc(1, 'two')",
    "administrator command: Ping",
    "SELECT a FROM t WHERE b = 1 UNION SELECT a FROM t WHERE b = 1 UNION ALL SELECT a FROM t WHERE b = 1",
    "SELECT * FROM t WHERE d BETWEEN '2020-01-01' AND '2020-12-31'",
    "UPDATE t SET a = 'x', b = 2 WHERE id IN (1,2) LIMIT 1",
    "DELETE FROM t WHERE created < NOW() - INTERVAL 7 DAY",
    "SELECT * FROM `order` WHERE `status` = 'new' AND total > 100.50",
    "select * from t where name = 'héllo' and Ünïcode = 'ß'",
    "SELECT * FROM t WHERE x IN (SELECT y FROM u WHERE z = 3)",
    "select md5('abc'), a1b2 from t3 where c = -7",
    "SHOW VARIABLES LIKE 'log_slow%'",
    "SET NAMES utf8mb4",
    "SELECT * FROM t WHERE a = 1\nAND b = 2\nORDER BY c",
    "SELECT COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 5",
    "SELECT * FROM t WHERE note = 'a -- b' AND id = 1",
    "SELECT * FROM t WHERE a = true OR b = FALSE",
]

# Where pt-query-digest is demonstrably wrong: each pair is one statement shape, which it splits in two.
PT_WRONG = [
    ("SELECT * FROM people WHERE name = 'o''neil'", "SELECT * FROM people WHERE name = 'smith'"),
    ("SELECT * FROM files WHERE path = 'c:\\\\'", "SELECT * FROM files WHERE path = 'c:'"),
    ("SELECT 1 -- why", "SELECT 1"),
]

PT_QUERY_DIGEST = ["pt-query-digest", "--preserve-embedded-numbers", "--output", "json", "--limit", "100%"]


def _run_pt(args: list[str], **kwargs) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def pt_fingerprints(queries: list[str]) -> list[str]:
    """pt-fingerprint --match-embedded-numbers (the digest's --preserve-embedded-numbers), one file."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", encoding="utf-8") as fh:
        fh.write("".join(q + ";\n" for q in queries))
        fh.flush()
        return _run_pt(["pt-fingerprint", "--match-embedded-numbers", fh.name]).splitlines()


def pt_digest(path: Path) -> dict[str, dict]:
    """pt-query-digest's classes of a slow log, by the first 16 digits of their Query ID.

    Its JSON encodes the log's UTF-8 bytes a second time (each byte read as Latin-1); that is undone here,
    its Query IDs (MD5 of the bytes) are right."""
    report = json.loads(_run_pt([*PT_QUERY_DIGEST, str(path)]).lstrip() or '{"classes": []}')
    for c in report["classes"]:
        try:
            c["fingerprint"] = c["fingerprint"].encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    return {c["checksum"][:16]: c for c in report["classes"]}


def mariadb_event(query: str, query_time: float = 0.000123, ts: int = 1795818174, schema: str = "shop",
                  thread: int = 3, rows: int = 1) -> str:
    """One event laid out exactly as MariaDB 10.11 writes it with log_slow_verbosity=query_plan."""
    body = f"# {query};\n" if query.startswith("administrator command: ") else f"SET timestamp={ts};\n{query};\n"
    return (f"# User@Host: root[root] @ localhost [127.0.0.1]\n"
            f"# Thread_id: {thread}  Schema: {schema}  QC_hit: No\n"
            f"# Query_time: {query_time:.6f}  Lock_time: 0.000045  Rows_sent: {rows}  Rows_examined: {rows * 10}\n"
            f"# Rows_affected: 0  Bytes_sent: 56\n"
            f"# Full_scan: Yes  Full_join: No  Tmp_table: No  Tmp_table_on_disk: No\n"
            f"# Filesort: No  Filesort_on_disk: No  Merge_passes: 0  Priority_queue: No\n" + body)


HEADER = ("/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:\n"
          "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\nTime\t\t    Id Command\tArgument\n")


def events(n: int, start: int = 0, template: str = "SELECT * FROM orders WHERE id = {}") -> str:
    return "".join(mariadb_event(template.format(i)) for i in range(start, start + n))


# -- fingerprints ------------------------------------------------------------------------------------------

def test_fingerprints_equal_pt_fingerprint_on_tricky_queries():
    # pt-fingerprint (unlike pt-query-digest) does not turn true/false into ?; that query is checked
    # against pt-query-digest below.
    queries = [q for q in CORPUS if "true" not in q.lower()]
    expected = pt_fingerprints(queries)
    assert len(expected) == len(queries)
    assert [fingerprint(q) for q in queries] == expected


def test_class_ids_are_pt_query_digests_query_ids(tmp_path):
    # Every corpus query as one event of a MariaDB slow log, query i repeated i+1 times so that counts
    # tell the classes apart; pt-query-digest reads the same file.
    queries = [q for q in CORPUS if not q.lower().startswith("use ")]
    log = tmp_path / "slow.log"
    log.write_text(HEADER + "".join(mariadb_event(q) * (i + 1) for i, q in enumerate(queries)), encoding="utf-8")
    theirs = pt_digest(log)
    ours, counters = analyze([str(log)], "mysql")
    assert counters["parse_errors"] == counters["lines_skipped"] == 0
    assert {c.class_id: (c.count, c.fingerprint) for c in ours} == {
        cid: (c["query_count"], c["fingerprint"]) for cid, c in theirs.items()}
    assert all(checksum(c.fingerprint).startswith(c.class_id) for c in ours)
    assert class_id("select ?") == checksum("select ?")[:16] == "1FE1379FE2A31B8D"


def test_one_class_per_statement_shape_where_pt_splits_it():
    for tricky, plain in PT_WRONG:
        assert fingerprint(tricky) == fingerprint(plain), tricky
    theirs = pt_fingerprints([q for pair in PT_WRONG for q in pair])
    wrong = [(theirs[2 * i], theirs[2 * i + 1]) for i in range(len(PT_WRONG))]
    assert all(a != b for a, b in wrong), f"pt-fingerprint got these right now: {wrong}"


def test_fingerprint_details():
    assert fingerprint("SELECT * FROM users_2009 WHERE id = 5") == "select * from users_2009 where id = ?"
    assert fingerprint("use shop") == "use ?"
    assert fingerprint("SELECT /*!40001 SQL_NO_CACHE */ * FROM `t`") == "mysqldump"
    assert fingerprint("SELECT `a#b` FROM t") == "select `a#b` from t"
    assert fingerprint("SELECT * FROM t WHERE x IN (1,2) LIMIT 5 OFFSET 10") == \
        "select * from t where x in(?+) limit ?"
    # PostgreSQL: "quoted identifiers" are not strings (lowercased like the rest), $n parameters are literals.
    assert fingerprint('SELECT "Id" FROM "Users" WHERE id = $1 AND n = E\'a\\\'b\'', postgres=True) == \
        'select "id" from "users" where id = ? and n = ?'


# -- the follower ------------------------------------------------------------------------------------------

class Tail:
    """A follower over a MariaDB slow log, counting events per fingerprint."""

    def __init__(self, path: Path, state: Path | None = None, chunk_size: int = 1 << 20) -> None:
        self.parser = make_parser("mysql")
        self.follower = LogFollower(path, self.parser, str(state) if state else None, from_beginning=True,
                                    chunk_size=chunk_size)
        self.seen: list[SlowEvent] = []

    def poll(self) -> int:
        before = len(self.seen)
        self.follower.poll(self.seen.extend)
        return len(self.seen) - before


def append(path: Path, text: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as fh:
        fh.write(text)


def test_rotation_by_rename_reads_the_old_file_to_its_end(tmp_path):
    log = tmp_path / "slow.log"
    append(log, HEADER + events(10))
    tail = Tail(log)
    assert tail.poll() == 10
    append(log, events(3, 10))  # written before the server reopened its log
    log.rename(tmp_path / "slow.log.1")
    append(log, HEADER + events(4, 13))
    assert tail.poll() == 7
    assert [int(e.query.rsplit(" ", 1)[1]) for e in tail.seen] == list(range(17))
    assert tail.follower.stats.rotations == 1


def test_copytruncate_catches_up_from_the_copy(tmp_path):
    log = tmp_path / "slow.log"
    append(log, HEADER + events(10))
    tail = Tail(log)
    assert tail.poll() == 10
    append(log, events(3, 10))
    shutil.copyfile(log, tmp_path / "slow.log.1")
    os.truncate(log, 0)
    append(log, events(20, 13))  # grows past the old offset before the next poll
    assert tail.poll() == 23
    assert [int(e.query.rsplit(" ", 1)[1]) for e in tail.seen] == list(range(33))


def test_truncation_starts_again_from_the_beginning(tmp_path):
    log = tmp_path / "slow.log"
    append(log, HEADER + events(10))
    tail = Tail(log)
    assert tail.poll() == 10
    append(log, "", "w")
    assert tail.poll() == 0
    append(log, events(2, 100))
    assert tail.poll() == 2
    assert tail.follower.stats.truncations == 1


def test_restart_resumes_at_the_saved_offset_without_double_counting(tmp_path):
    log, state = tmp_path / "slow.log", tmp_path / "state" / "offset.json"
    append(log, HEADER + events(10))
    first = Tail(log, state)
    assert first.poll() == 10
    append(log, events(2, 10))
    assert first.poll() == 2
    first.follower.close()
    append(log, events(5, 12))
    second = Tail(log, state)
    assert second.poll() == 5
    assert [int(e.query.rsplit(" ", 1)[1]) for e in second.seen] == list(range(12, 17))
    second.follower.close()
    # down during a rotation: the rotated file is finished from the saved offset, then the new one read
    append(log, events(3, 17))
    log.rename(tmp_path / "slow.log.1")
    append(log, HEADER + events(4, 20))
    third = Tail(log, state)
    assert third.poll() == 7
    assert [int(e.query.rsplit(" ", 1)[1]) for e in third.seen] == list(range(17, 24))
    third.follower.close()
    assert Tail(log, state).poll() == 0


def test_an_event_cut_by_a_read_is_counted_once(tmp_path):
    log, state = tmp_path / "slow.log", tmp_path / "offset.json"
    text = HEADER + events(6)
    cut = text.index("SELECT * FROM orders WHERE id = 3") + 10
    append(log, text[:cut])  # mid-line, mid-event
    tail = Tail(log, state, chunk_size=64)  # chunks far smaller than an event
    assert tail.poll() == 3
    tail.follower.close()
    restarted = Tail(log, state, chunk_size=64)
    append(log, text[cut:])
    assert restarted.poll() == 3
    assert [int(e.query.rsplit(" ", 1)[1]) for e in restarted.seen] == [3, 4, 5]


def test_bad_records_are_counted_and_skipped(tmp_path):
    log = tmp_path / "slow.log"
    huge = "SELECT '" + ("x" * 1000 + "\n") * 3000 + "'"  # 3 MB over many lines
    with open(log, "wb") as fh:
        fh.write((HEADER + events(2)).encode())
        fh.write(mariadb_event(huge).encode())
        fh.write(mariadb_event("SELECT '" + "y" * (3 << 20) + "'").encode())  # one 3 MB line
        fh.write(mariadb_event("SELECT 'caf\udce9'").encode("utf-8", "surrogateescape"))  # Latin-1 é
        fh.write(b"# User@Host: root[root] @ localhost []\n# Query_time: fast\nSELECT 1;\n")
        fh.write(b"garbage line\n")
        fh.write(events(3, 2).encode())
    classes, counters = analyze([str(log)], "mysql")
    assert counters["events"] == 5
    assert counters["parse_errors"] == 4
    assert [c.count for c in classes] == [5]


# -- a real MariaDB ----------------------------------------------------------------------------------------

class MariaDB:
    """A throwaway mariadbd with the slow log on, every statement logged, on a free loopback port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dbwatch-mariadb-"))
        self.port = free_port()
        self.slow_log = self.root / "slow.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MariaDB":
        installed = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.root / 'data'}",
                                    "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"],
                                   capture_output=True, text=True, timeout=120)
        if installed.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {installed.stderr[-2000:]}")
        for _ in range(3):  # the free port may be taken between choosing it and mariadbd binding it
            if self._serve():
                return self
            self.port = free_port()
        raise RuntimeError(f"mariadbd did not start: {(self.root / 'error.log').read_text()[-2000:]}")

    def _serve(self) -> bool:
        self.proc = subprocess.Popen([
            "mariadbd", "--no-defaults", f"--datadir={self.root / 'data'}", f"--port={self.port}",
            "--bind-address=127.0.0.1", f"--socket={self.root / 'sock'}", f"--pid-file={self.root / 'pid'}",
            "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--skip-name-resolve",
            "--slow-query-log", f"--slow-query-log-file={self.slow_log}", "--long-query-time=0",
            "--log-slow-verbosity=query_plan", f"--log-error={self.root / 'error.log'}",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run(["mariadb-admin", "--no-defaults", "-h127.0.0.1", f"-P{self.port}", "-uroot",
                              "ping"], capture_output=True).returncode != 0:
            if self.proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                raise RuntimeError(f"mariadbd not ready after 30 s: {(self.root / 'error.log').read_text()[-2000:]}")
            time.sleep(0.1)
        return True

    def sql(self, script: str, database: str = "") -> None:
        subprocess.run(["mariadb", "--no-defaults", "--comments", "-h127.0.0.1", f"-P{self.port}", "-uroot",
                        *([database] if database else [])], input=script, text=True, check=True,
                       capture_output=True, timeout=120)

    def destroy(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDB]:
    server = MariaDB()
    try:
        yield server.start()
    finally:
        server.destroy()


def _collector(path: Path, state_dir: Path, fmt: str = "auto", **options) -> SlowLogCollector:
    settings = CollectorSettings(interval=60, timeout=30, options=SlowLogOptions(
        path=str(path), format=fmt, state_dir=str(state_dir), from_beginning=True, **options))
    target = Target(name="db1", engine="mysql", dsn="", labels={}, collectors={"slowlog": settings})
    return SlowLogCollector(target, None)  # type: ignore[arg-type]


WORKLOAD = (
    "CREATE DATABASE shop; USE shop;\n"
    "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(40), total DECIMAL(10,2));\n"
    + "".join(f"INSERT INTO orders VALUES ({i}, 'c{i}', {i}.50), ({i + 1000}, 'd{i}', 1);\n" for i in range(7))
    + "".join(f"SELECT * FROM orders WHERE id = {i};\n" for i in range(25))
    + "".join(f"SELECT total FROM orders WHERE id IN ({', '.join(map(str, range(i + 1)))});\n" for i in range(10))
    + "".join(f"SELECT customer\n  FROM orders\n WHERE total > {i}\n ORDER BY id LIMIT {i}, 5;\n" for i in range(4))
    + "SELECT * FROM orders WHERE customer = 'o''neil';\n" * 3
    + "SELECT * FROM orders WHERE customer = 'smith';\n" * 2
    + "SELECT /* from the app */ COUNT(*) FROM orders WHERE customer LIKE 'c%';\n" * 6
)


async def test_a_real_mariadb_slow_log_gives_the_classes_run_and_agrees_with_pt_query_digest(mariadb, tmp_path):
    mariadb.sql(WORKLOAD)
    collector = _collector(mariadb.slow_log, tmp_path)
    snapshot = await collect(collector)
    assert snapshot.fact(SlowLogPosition).format == "mysql"
    counts = {c.fingerprint: c for c in snapshot.fact(SlowClasses)}
    assert counts["select * from orders where id = ?"].count == 25
    assert counts["select total from orders where id in(?+)"].count == 10
    assert counts["insert into orders values(?+)"].count == 7
    assert counts["select customer from orders where total > ? order by id limit ?"].count == 4
    assert counts["select * from orders where customer = ?"].count == 5  # o'neil and smith: one class
    assert counts["select count(*) from orders where customer like ?"].count == 6
    point = counts["select * from orders where id = ?"]
    assert point.db == "shop" and point.user == "root" and point.rows_sent_total == 7  # ids 0..6 exist
    assert point.sample.startswith("SELECT * FROM orders WHERE id = ")
    assert point.query_time_max >= point.query_time_p95 > 0 and point.first_seen and point.last_seen

    # the same file through pt-query-digest: same classes, same counts, except where it splits o'neil
    theirs = pt_digest(mariadb.slow_log)
    ours = {c.class_id: c.count for c in snapshot.fact(SlowClasses)}
    assert len(snapshot.fact(SlowClasses)) < collector.options.top_n
    differ = {cid: (c["query_count"], ours.get(cid), c["fingerprint"]) for cid, c in theirs.items()
              if ours.get(cid) != c["query_count"]}
    assert {fp for _, _, fp in differ.values()} == {"select * from orders where customer = ?",  # 2 vs 5
                                                   "select * from orders where customer = ??"}, differ  # 3 vs -
    assert sum(c["query_count"] for c in theirs.values()) == sum(ours.values())

    # metrics: class ids only, never a literal
    queries = snapshot.family("dbwatch_slowlog_queries_total")
    assert queries.value(class_id=point.class_id) == 25
    labels = {v for fam in snapshot.families for values, _ in fam.samples for v in values}
    assert not any("o'neil" in v or "smith" in v for v in labels)
    assert snapshot.family("dbwatch_slowlog_parse_errors_total").value() == 0

    # live: rotated by rename + FLUSH SLOW LOGS while followed; counts go on from where they were
    mariadb.sql("".join(f"SELECT * FROM orders WHERE id = {i};\n" for i in range(5)), "shop")
    mariadb.slow_log.rename(mariadb.slow_log.with_name("slow.log.1"))
    mariadb.sql("FLUSH SLOW LOGS;\n" + "".join(f"SELECT * FROM orders WHERE id = {i};\n" for i in range(6)), "shop")
    snapshot = await collect(collector)
    assert {c.fingerprint: c.count for c in snapshot.fact(SlowClasses)}["select * from orders where id = ?"] == 11
    assert snapshot.family("dbwatch_slowlog_queries_total").value(class_id=point.class_id) == 36

    # restart: a new collector on the same state counts only what is new
    mariadb.sql("SELECT * FROM orders WHERE id = 1;\n" * 2, "shop")
    restarted = _collector(mariadb.slow_log, tmp_path)
    snapshot = await collect(restarted)
    assert {c.fingerprint: c.count for c in snapshot.fact(SlowClasses)}["select * from orders where id = ?"] == 2


# -- a real PostgreSQL -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_logging() -> Iterator[PostgresServer]:
    server = PostgresServer(settings={
        "log_min_duration_statement": "0", "logging_collector": "on", "log_destination": "'stderr,csvlog,jsonlog'",
        "log_directory": "'log'", "log_filename": "'postgresql.log'", "lc_messages": "'C'",
        "log_line_prefix": "'%m [%p] user=%u,db=%d '",
    })
    try:
        yield server.start()
    finally:
        server.destroy()


async def test_real_postgresql_logs_in_every_format_give_the_statements_run(pg_logging, tmp_path):
    pg_logging.psql("CREATE TABLE items (id int PRIMARY KEY, name text);\n"
                    + "".join(f"SELECT * FROM items WHERE name = 'n{i}' AND id > {i};\n" for i in range(25))
                    + "".join(f"SELECT id\n  FROM items\n WHERE id IN ({i}, {i + 1});\n" for i in range(3)))
    conn = await asyncpg.connect(pg_logging.dsn())
    try:
        for i in range(12):
            await conn.fetchval("SELECT count(*) FROM items WHERE id > $1", i)
    finally:
        await conn.close()
    logs = pg_logging.data / "log"
    expected = {
        "select * from items where name = ? and id > ?": 25,
        "select id from items where id in(?+)": 3,
        "select count(*) from items where id > ?": 12,
    }
    deadline = time.monotonic() + 10
    for name, fmt in (("postgresql.log", "postgres-stderr"), ("postgresql.csv", "postgres-csv"),
                      ("postgresql.json", "postgres-json")):
        while True:  # the logging collector writes asynchronously
            classes, counters = analyze([str(logs / name)], "auto")
            counts = {c.fingerprint: c.count for c in classes}
            if all(counts.get(fp) == n for fp, n in expected.items()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert {fp: counts.get(fp) for fp in expected} == expected, (name, counts)
        assert counters["parse_errors"] == 0
        row = next(c for c in classes if c.fingerprint == "select count(*) from items where id > ?")
        assert row.user == "postgres" and row.db == "postgres" and row.first_seen and row.query_time_total > 0
    # the same real lines written in two parts, cut inside a multi-line statement, followed live
    for name in ("postgresql.log", "postgresql.csv", "postgresql.json"):
        data = (logs / name).read_bytes()
        cut = data.index(b"  FROM items") + 4
        live = tmp_path / name
        live.write_bytes(data[:cut])
        collector = _collector(live, tmp_path / "state")
        first = {c.fingerprint: c.count for c in (await collect(collector)).fact(SlowClasses)}
        with open(live, "ab") as fh:
            fh.write(data[cut:])
        second = {c.fingerprint: c.count for c in (await collect(collector)).fact(SlowClasses)}
        assert {fp: first.get(fp, 0) + second.get(fp, 0) for fp in expected} == expected, name


async def test_metrics_are_capped_at_top_n_classes_plus_other(tmp_path):
    log = tmp_path / "slow.log"
    append(log, HEADER + "".join(
        mariadb_event(f"SELECT * FROM t{k} WHERE id = {i}", query_time=0.001 * (k + 1))
        for k in range(5) for i in range(k + 1)))
    collector = _collector(log, tmp_path / "state", top_n=2)
    snapshot = await collect(collector)
    queries = snapshot.family("dbwatch_slowlog_queries_total")
    seconds = snapshot.family("dbwatch_slowlog_query_seconds_total")
    by_class = {labels[0]: value for labels, value in queries.samples}
    top = [c.class_id for c in snapshot.fact(SlowClasses)]
    assert len(top) == 2 and set(by_class) == {*top, "other"}
    assert by_class == {top[0]: 5, top[1]: 4, "other": 6}
    assert sum(v for _, v in seconds.samples) == pytest.approx(sum(0.001 * (k + 1) ** 2 for k in range(5)))
    assert {labels[0] for labels, _ in snapshot.family("dbwatch_slowlog_query_max_seconds").samples} == set(top)
    assert snapshot.family("dbwatch_slowlog_events_total").value() == 15
    with pytest.raises(CollectorError, match="format: expected one of auto, mysql"):
        await collect(_collector(log, tmp_path, "syslog"))


def test_p95_is_within_the_5_percent_bucket_of_the_exact_value():
    aggregator = Aggregator()
    aggregator.add(SlowEvent(f"SELECT {i}", i / 1000) for i in range(1, 101))
    [row] = aggregator.close_interval()
    assert row.count == 100 and row.query_time_max == 0.1
    assert row.query_time_p95 == pytest.approx(0.095, rel=0.05)
    assert row.query_time_mean == pytest.approx(0.0505)


def test_the_collector_is_off_by_default_on_postgres_targets_and_configured_with_a_path():
    from dbwatch.agent.config import ConfigError, parse_config

    target = "targets:\n  - name: pg\n    engine: postgres\n    dsn: postgresql://postgres@127.0.0.1:5432/postgres\n"
    assert "slowlog" not in parse_config(target).resolved_targets()[0].collectors
    enabled = parse_config(target + "    collectors:\n      slowlog: {enabled: true, path: /var/log/pg.log, "
                                    "state_dir: /var/lib/dbwatch}\n").resolved_targets()[0]
    options = enabled.collectors["slowlog"].options
    assert options == SlowLogOptions(path="/var/log/pg.log", state_dir="/var/lib/dbwatch", format="auto", top_n=50)
    with pytest.raises(ConfigError) as error:
        parse_config(target + "    collectors:\n      slowlog: {enabled: true, top_n: lots}\n")
    assert error.value.problems == ["targets[0].collectors.slowlog.top_n: expected int, got 'lots'"]
    mysql = parse_config("targets:\n  - name: my\n    engine: mysql\n    host: 127.0.0.1\n    collectors:\n"
                         "      slowlog: {enabled: true, path: /var/log/mysql/slow.log, format: mysql}\n")
    assert mysql.resolved_targets()[0].collectors["slowlog"].options.format == "mysql"


def test_long_statements_fingerprint_in_linear_time():
    distinct_union = " UNION ALL ".join(f"SELECT a{i}, b FROM t WHERE c = {i}" for i in range(2000))
    repeated_union = " UNION ALL ".join(f"SELECT a, b FROM t WHERE c = {i}" for i in range(2000))
    long_order = "SELECT * FROM t ORDER BY a ASC, " + ", ".join(f"c{i} ASC" for i in range(20000))
    began = time.perf_counter()
    assert fingerprint(repeated_union) == "select a, b from t where c = ? /*repeat union all*/"
    assert fingerprint(distinct_union).count(" union all ") == 1999
    assert " asc" not in fingerprint(long_order)
    assert time.perf_counter() - began < 1.0  # the backtracking forms of these regexes take seconds to minutes
