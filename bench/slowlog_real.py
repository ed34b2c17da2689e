"""Slow log analysis on logs written by real servers: dbwatch beside pt-query-digest and pgBadger, one run.

1. A throwaway MariaDB (``slow_query_log=1, long_query_time=0, log_slow_verbosity=query_plan``) runs a
   bounded mixed workload (36 statement shapes, varying literals; about 4 % of the string literals hold a
   doubled quote ``'o''neil'``, a backslash ``'c:\\\\tmp'`` or UTF-8 text) through two ``mariadb`` clients
   until its slow log passes ``--mb`` MB (default 100). ``dbwatch slowlog analyze --format json --limit 0``
   and ``pt-query-digest --preserve-embedded-numbers --output json --limit 100%`` read it, each in its own
   process: events/s, MB/s, peak RSS, and how many events fall in the same class with the same count in
   both. pt-query-digest's classes are matched to dbwatch's by Query ID; where it splits one dbwatch class
   into several, the split is attributed by the sample of each extra class (doubled quote, backslash,
   UTF-8) and counted apart, as pt-query-digest's error, not a disagreement.
2. A throwaway PostgreSQL 15 (``log_min_duration_statement=0``, stderr through the logging collector,
   ``log_line_prefix='%t [%p]: user=%u,db=%d,app=%a,client=%h '``) runs ``pgbench -i`` then bounded pgbench
   runs until its log passes ``--mb`` MB. ``dbwatch slowlog analyze`` and ``pgbadger -j 1`` read it:
   statements/s of each and the ratio, peak RSS.

Both logs are cached in ``--cache`` (default /tmp/dbwatch-bench-slowlog-real) and reused by later runs.
Run: ``.venv/bin/python bench/slowlog_real.py [--mb 100] [--cache DIR] [--regenerate]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import table  # noqa: E402
from bench.slowlog import run_measured  # noqa: E402
from dbwatch.collectors.fingerprint import class_id, fingerprint  # noqa: E402
from tests.mariadbserver import CLIENT, MariaDBServer  # noqa: E402
from tests.pgcluster import BIN, PostgresServer  # noqa: E402

DBWATCH = str(Path(sys.executable).with_name("dbwatch"))
PG_PREFIX = "%t [%p]: user=%u,db=%d,app=%a,client=%h "
MAX_ROUNDS = 200  # workload rounds, whatever the log size reached
ROUND_STATEMENTS = 10_000  # per client per round
CLIENTS = 2

SCHEMA = """
CREATE DATABASE IF NOT EXISTS shop; USE shop;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(80), email VARCHAR(120), city VARCHAR(80),
  last_login DATETIME, logins INT DEFAULT 0, KEY (email));
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, status INT, total DECIMAL(10,2), note VARCHAR(200),
  created_at DATETIME, KEY (customer_id));
CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, name VARCHAR(100), price DECIMAL(10,2), qty INT);
CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(40), payload TEXT);
CREATE TABLE cache (k VARCHAR(80) PRIMARY KEY, v VARCHAR(200));
CREATE TABLE sessions (id INT PRIMARY KEY, user_id INT, expires INT);
CREATE TABLE audit_2026 (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT, action VARCHAR(80));
CREATE TABLE files (id INT PRIMARY KEY, path VARCHAR(200));
"""
SEED = ("INSERT INTO customers VALUES " + ", ".join(
    f"({i}, 'name{i}', 'u{i}@example.com', 'city{i % 20}', NOW(), 0)" for i in range(500)) + ";\n"
    "INSERT INTO orders VALUES " + ", ".join(
        f"({i}, {i % 500}, {i % 5}, {i}.25, 'n{i}', NOW())" for i in range(2000)) + ";\n"
    "INSERT INTO products VALUES " + ", ".join(f"('SKU-{i}', 'product {i}', {i}.99, 1000000)" for i in range(300))
    + ";\nINSERT INTO files VALUES " + ", ".join(f"({i}, '/srv/f{i}')" for i in range(100)) + ";\n")

PLAIN = ["smith", "jones", "alpha", "bravo", "charlie", "delta", "zulu", "kilo", "lima", "mike", "oscar",
         "papa", "romeo", "sierra", "tango", "victor", "whiskey", "yankee", "echo", "golf", "hotel", "india",
         "juliet"]
DOUBLED = ["o''neil", "d''arcy", "l''oreal"]
BACKSLASH = ["c:\\\\", "a\\\\b\\\\"]  # an escaped backslash before the closing quote
UTF8 = ["échelle", "Zürich", "東京", "naïve café", "Ελλάδα"]

SHAPES = [
    "SELECT * FROM orders WHERE id = {n}",
    "SELECT id, name, email FROM customers WHERE email = '{s}@example.com'",
    "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id\n"
    "WHERE o.created_at > '2026-{m:02d}-01'\n  AND o.status IN ({l})\nORDER BY o.created_at DESC\nLIMIT {k}",
    "UPDATE products SET qty = qty - 1 WHERE sku = 'SKU-{p}' AND qty >= {k}",
    "INSERT INTO events (kind, payload) VALUES ('{s}', '{{\"k\": {n}}}')",
    "INSERT INTO audit_2026 (user_id, action) VALUES ({n}, '{s}'), ({n}, '{s}'), ({n}, 'x')",
    "DELETE FROM sessions WHERE expires < {n} LIMIT 10",
    "SELECT COUNT(*) FROM orders WHERE customer_id IN ({l})",
    "SELECT * FROM products WHERE name LIKE '%{s}%' ORDER BY price ASC LIMIT {k}, 20",
    "select sum(total) from orders where customer_id = {c} and status = 1 group by status",
    "SELECT /* app:checkout */ id FROM orders WHERE customer_id = {c} AND status = {k}",
    "UPDATE customers SET last_login = NOW(), logins = logins + 1 WHERE id = {c}",
    "SELECT c.city, COUNT(*) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
    "WHERE c.id BETWEEN {c} AND {c2} GROUP BY c.city",
    "REPLACE INTO cache (k, v) VALUES ('key{p}', '{s}')",
    "SELECT v FROM cache WHERE k = 'key{p}'",
    "SELECT * FROM customers WHERE name = '{s}'",
    "SELECT * FROM customers WHERE city = '{s}' AND id > {c}",
    "SELECT id FROM files WHERE path = '{s}'",
    "UPDATE orders SET note = '{s}' WHERE id = {o}",
    "INSERT INTO sessions (id, user_id, expires) VALUES ({n}, {c}, {n}) ON DUPLICATE KEY UPDATE expires = {n}",
    "SELECT name, price FROM products WHERE price > {k}.5 AND qty > 0 ORDER BY price DESC LIMIT 5",
    "SELECT * FROM orders WHERE status = {k} AND total > {n} ORDER BY id LIMIT 10 OFFSET {k}",
    "SELECT MAX(total), MIN(total) FROM orders WHERE created_at < NOW() - INTERVAL {k} DAY",
    "SELECT id FROM customers WHERE email IS NULL OR logins = {k}",
    "SELECT * FROM orders WHERE id IN (SELECT id FROM orders WHERE customer_id = {c}) LIMIT 3",
    "SELECT 'constant {s}' AS label, {n} AS n",
    "SELECT * FROM customers WHERE id = {c} FOR UPDATE",
    "SELECT COUNT(*) FROM audit_2026 WHERE user_id = {n} AND action = '{s}'",
    "SELECT payload FROM events WHERE kind = '{s}' ORDER BY id DESC LIMIT 1",
    "UPDATE cache SET v = CONCAT(v, '{s}') WHERE k = 'key{p}'",
    "SELECT a.id FROM orders a, customers b WHERE a.customer_id = b.id AND b.name LIKE '{s}%' LIMIT 2",
    "SELECT SQL_NO_CACHE COUNT(*) FROM products WHERE sku IN ('SKU-{p}', 'SKU-{k}')",
    "SELECT id FROM orders WHERE note = '{s}' OR note IS NULL LIMIT {k}",
    "SELECT * FROM products WHERE sku = 'SKU-{p}' -- price check\n",  # the client sends the comment
    "SHOW STATUS LIKE 'Threads_%'",
    "COMMIT",
]


def _word(rnd: random.Random) -> str:
    r = rnd.random()
    if r < 0.015:
        return rnd.choice(DOUBLED)
    if r < 0.025:
        return rnd.choice(BACKSLASH)
    if r < 0.04:
        return rnd.choice(UTF8)
    return rnd.choice(PLAIN)


def _statement(rnd: random.Random) -> str:
    shape = SHAPES[rnd.randrange(len(SHAPES))]
    c = rnd.randrange(500)
    return shape.format(n=rnd.randrange(1, 100000), s=_word(rnd), m=rnd.randrange(1, 13), k=rnd.randrange(1, 9),
                        l=", ".join(str(rnd.randrange(500)) for _ in range(rnd.randrange(1, 8))),
                        p=rnd.randrange(300), c=c, c2=c + rnd.randrange(1, 50), o=rnd.randrange(2000))


def make_mariadb_log(path: Path, megabytes: int) -> tuple[float, int]:
    """Run the workload on a throwaway MariaDB until its slow log passes ``megabytes``; (seconds, statements)."""
    server = MariaDBServer(server_id=1, performance_schema=False, settings={
        "slow-query-log": "ON", "slow-query-log-file": str(path.with_suffix(".writing")), "long-query-time": "0",
        "log-slow-verbosity": "query_plan", "innodb-flush-log-at-trx-commit": "0", "character-set-server": "utf8mb4",
    })
    for key in ("log-bin", "binlog-format", "log-slave-updates"):
        server.options.pop(key)  # no binary log: the workload's writes need not be kept
    began = time.perf_counter()
    statements = 0
    try:
        server.start()
        server.sql(SCHEMA + SEED)
        writing = path.with_suffix(".writing")
        rnd = random.Random(5)
        for _ in range(MAX_ROUNDS):
            if writing.stat().st_size >= megabytes * 1_000_000:
                break
            clients = [subprocess.Popen([CLIENT, "--no-defaults", "--comments", "--force", "-h", "127.0.0.1",
                                         "-P", str(server.port), "-u", "root", "-N", "-B", "shop"],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for _ in range(CLIENTS)]
            for client in clients:
                script = "".join(_statement(rnd) + ";\n" for _ in range(ROUND_STATEMENTS))
                client.stdin.write(script.encode("utf-8"))
                client.stdin.close()
                statements += ROUND_STATEMENTS
            for client in clients:
                client.wait(timeout=300)
        server.stop()
        writing.rename(path)
    finally:
        server.destroy()
    return time.perf_counter() - began, statements


def make_pgbench_log(path: Path, megabytes: int) -> tuple[float, int]:
    """pgbench -i, then bounded pgbench runs until the statement log passes ``megabytes``."""
    server = PostgresServer(settings={
        "log_min_duration_statement": "0", "logging_collector": "on", "log_directory": "'log'",
        "log_filename": "'postgresql.log'", "lc_messages": "'C'", "log_line_prefix": f"'{PG_PREFIX}'",
        "shared_preload_libraries": "''",
    })
    began = time.perf_counter()
    rounds = 0
    try:
        server.start()
        pg = ["-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"]
        subprocess.run([str(BIN / "pgbench"), *pg, "-i", "-s", "2", "-q", "postgres"], check=True,
                       capture_output=True, timeout=300)
        log = server.data / "log" / "postgresql.log"
        for rounds in range(1, MAX_ROUNDS + 1):
            subprocess.run([str(BIN / "pgbench"), *pg, "-c", "2", "-j", "2", "-t", "5000", "-M", "simple", "-n",
                            "postgres"], check=True, capture_output=True, timeout=300)
            if log.stat().st_size >= megabytes * 1_000_000:
                break
        server.stop()
        shutil.copyfile(log, path)
    finally:
        server.destroy()
    return time.perf_counter() - began, rounds


def _pt_text(text: str) -> str:
    """pt-query-digest's JSON encodes UTF-8 bytes a second time (each byte as Latin-1): undo it."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _reason(sample: str) -> str | None:
    if "--" in sample:
        return "trailing -- comment"
    if "''" in sample:
        return "doubled quote"
    if "\\" in sample:
        return "backslash"
    if not sample.isascii():
        return "UTF-8"
    return None


def compare_mysql(ours: list[dict], pt: dict) -> dict:
    """Which events both tools put in the same class, and where pt-query-digest splits a class.

    Each pt-query-digest class is mapped to the dbwatch class of its sample. A dbwatch class that maps to
    one pt class with the same id and count agrees whole. One that maps to several is a split when the
    counts add up and every extra class's sample holds what pt-query-digest misreads (a doubled quote, a
    backslash, UTF-8, a trailing ``--`` comment): the extra classes' events are pt-query-digest's errors,
    the events of the class with dbwatch's id are in the same class in both (with a lower count there)."""
    mine = {c["class_id"]: c for c in ours}
    groups: dict[str, list[dict]] = defaultdict(list)
    for c in pt["classes"]:
        c["sample"] = _pt_text(c["example"]["query"])
        groups[class_id(fingerprint(c["sample"]))].append(c)
    exact = same_class = split_groups = differ = 0
    wrong: dict[str, int] = defaultdict(int)
    differing = []
    for cid, members in groups.items():
        expected = mine.get(cid, {}).get("count", 0)
        counts = sum(c["query_count"] for c in members)
        if len(members) == 1 and members[0]["checksum"][:16] == cid and counts == expected:
            exact += counts
            continue
        extra = [c for c in members if c["checksum"][:16] != cid]
        reasons = [_reason(c["sample"]) for c in extra]
        if counts == expected and None not in reasons:
            split_groups += counts
            for c, reason in zip(extra, reasons):
                wrong[reason] += c["query_count"]  # type: ignore[index]
            same_class += counts - sum(c["query_count"] for c in extra)
            continue
        differ += counts
        differing.append((cid, expected, [(c["checksum"][:16], c["query_count"], c["fingerprint"][:80])
                                          for c in members]))
    return {"total": exact + split_groups + differ, "exact": exact, "split_groups": split_groups,
            "same_class": exact + same_class, "pt_wrong": dict(wrong), "differ": differ, "differing": differing}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "-"


def bench_mysql(path: Path) -> None:
    size = path.stat().st_size
    ours_s, ours_rss, ours_out = run_measured([DBWATCH, "slowlog", "analyze", "--type", "mysql", "--format", "json",
                                               "--limit", "0", str(path)])
    pt_s, pt_rss, pt_out = run_measured(["pt-query-digest", "--preserve-embedded-numbers", "--output", "json",
                                         "--limit", "100%", str(path)])
    ours = json.loads(ours_out)
    pt = json.loads(pt_out.decode("utf-8", "surrogateescape").lstrip())
    events = sum(c["count"] for c in ours)
    pt_events = sum(c["query_count"] for c in pt["classes"])
    result = compare_mysql(ours, pt)
    print(f"\n== MariaDB slow log: {size / 1e6:.1f} MB, {events:,} events (dbwatch), {pt_events:,} (pt-query-digest)")
    print(table([
        ("", "dbwatch", "pt-query-digest", "pt / dbwatch"),
        ("seconds", f"{ours_s:.2f}", f"{pt_s:.2f}", _ratio(pt_s, ours_s)),
        ("events/s", f"{events / ours_s:,.0f}", f"{pt_events / pt_s:,.0f}",
         f"dbwatch {_ratio(events / ours_s, pt_events / pt_s)} faster"),
        ("MB/s", f"{size / 1e6 / ours_s:.1f}", f"{size / 1e6 / pt_s:.1f}", ""),
        ("peak RSS MiB", f"{ours_rss:.0f}", f"{pt_rss:.0f}", _ratio(pt_rss, ours_rss)),
        ("classes", f"{len(ours)}", f"{len(pt['classes'])}", ""),
    ]))
    total, wrong = result["total"], sum(result["pt_wrong"].values())
    comparable = total - result["split_groups"]
    print(f"events in the same class with the same count: {result['exact']:,}/{comparable:,} "
          f"({100 * result['exact'] / max(comparable, 1):.2f} %), not counting the {result['split_groups']:,} events "
          f"of the classes pt-query-digest splits")
    print(f"events in the same class (whatever the counts): {result['same_class']:,}/{total - wrong:,} "
          f"({100 * result['same_class'] / max(total - wrong, 1):.2f} %), not counting the {wrong:,} events "
          "pt-query-digest puts in a class of their own:")
    for reason in ("doubled quote", "backslash", "UTF-8", "trailing -- comment"):
        print(f"  pt-query-digest wrong ({reason}): {result['pt_wrong'].get(reason, 0):,} events")
    for cid, expected, members in result["differing"][:10]:
        print(f"  differs: dbwatch {cid} {expected}; pt-query-digest {members}")


def bench_postgres(path: Path) -> None:
    size = path.stat().st_size
    ours_s, ours_rss, ours_out = run_measured([DBWATCH, "slowlog", "analyze", "--type", "postgres", "--format",
                                               "json", "--limit", "0", str(path)])
    with tempfile.TemporaryDirectory(prefix="dbwatch-bench-pgbadger-") as tmp:
        out = Path(tmp) / "out.json"
        pgb_s, pgb_rss, _ = run_measured(["pgbadger", "-j", "1", "-f", "stderr", "--prefix", PG_PREFIX, "-q",
                                          "--no-progressbar", "-x", "json", "-o", str(out), str(path)])
        pgb = json.loads(out.read_text(errors="replace"))
    ours = json.loads(ours_out)
    events = sum(c["count"] for c in ours)
    pgb_statements = _pgbadger_queries(pgb)
    theirs = [int(q["count"]) for queries in pgb.get("normalyzed_info", {}).values() for q in queries.values()]
    print(f"\n== PostgreSQL log (pgbench): {size / 1e6:.1f} MB, {events:,} statements (dbwatch), "
          f"{pgb_statements:,} (pgBadger)")
    print(table([
        ("", "dbwatch", "pgBadger -j 1", "pgBadger / dbwatch"),
        ("seconds", f"{ours_s:.2f}", f"{pgb_s:.2f}", _ratio(pgb_s, ours_s)),
        ("statements/s", f"{events / ours_s:,.0f}", f"{pgb_statements / pgb_s:,.0f}",
         f"dbwatch {_ratio(events / ours_s, pgb_statements / pgb_s)} faster"),
        ("MB/s", f"{size / 1e6 / ours_s:.1f}", f"{size / 1e6 / pgb_s:.1f}", ""),
        ("peak RSS MiB", f"{ours_rss:.0f}", f"{pgb_rss:.0f}", _ratio(pgb_rss, ours_rss)),
        ("classes", f"{len(ours)}", f"{len(theirs)}", ""),
    ]))
    # pgBadger normalises differently (keeps the final ";", no IN/VALUES collapse): classes are paired by count
    mine, other = Counter(c["count"] for c in ours), Counter(theirs)
    paired = sum(count * min(n, other[count]) for count, n in mine.items())
    print(f"statements in a class whose count pgBadger also has for a class: {paired:,}/{events:,} "
          f"({100 * paired / max(events, 1):.2f} %)")


def _pgbadger_queries(report: dict) -> int:
    overall = report.get("overall_stat", {})
    return int(overall.get("queries_number", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="minimum size of each log, in MB")
    parser.add_argument("--cache", default="/tmp/dbwatch-bench-slowlog-real", help="where the logs are kept")
    parser.add_argument("--regenerate", action="store_true", help="write the logs again")
    parser.add_argument("--only", choices=("mysql", "postgres"))
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    for name, make, bench in (("mysql", make_mariadb_log, bench_mysql), ("postgres", make_pgbench_log, bench_postgres)):
        if args.only and name != args.only:
            continue
        log = cache / ("mariadb-slow.log" if name == "mysql" else "pgbench-postgresql.log")
        if args.regenerate or not log.exists() or log.stat().st_size < args.mb * 1_000_000:
            seconds, amount = make(log, args.mb)
            print(f"wrote {log} ({log.stat().st_size / 1e6:.1f} MB) in {seconds:.0f} s")
        else:
            print(f"reusing {log} ({log.stat().st_size / 1e6:.1f} MB; --regenerate writes it again)")
        bench(log)
    print(f"\nwhole bench: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
