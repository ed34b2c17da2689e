"""Slow log analysis, dbwatch beside pt-query-digest (Debian's percona-toolkit), on the same file in one run.

Writes a synthetic MariaDB 10.11 slow log (``--events``, default 200,000; the event layout is the one a
real MariaDB writes with ``log_slow_verbosity=query_plan``: User@Host, Thread_id/Schema/QC_hit, the timings,
Rows_affected/Bytes_sent, the Full_scan lines, ``use``, ``SET timestamp``, multi-line statements), then
times, each in its own process:

- dbwatch: read + parse + fingerprint + aggregate (``dbwatch.collectors.slowlog.analyze``);
- ``pt-query-digest --preserve-embedded-numbers --output json --limit 100%``.

Prints events/s, MB/s and peak RSS of each, the ratio, and how many events fall in the same class with the
same count in both (classes matched by pt-query-digest's Query ID), naming the classes that differ.
Run: ``.venv/bin/python bench/slowlog.py [--events N] [--keep FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import table  # noqa: E402

MAX_EVENTS = 1_000_000
TEMPLATES = [
    "SELECT * FROM orders WHERE id = {n}",
    "SELECT id, name, email FROM customers WHERE email = '{s}@example.com'",
    "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id\n"
    "WHERE o.created_at > '2026-{m:02d}-01'\n  AND o.status IN ({l})\nORDER BY o.created_at DESC\nLIMIT {n}",
    "UPDATE stock SET qty = qty - {n} WHERE sku = 'SKU-{n}' AND qty >= {n}",
    "INSERT INTO events (kind, payload, ts) VALUES ('{s}', '{{\"k\": {n}}}', NOW())",
    "INSERT INTO audit_2026 (user_id, action) VALUES ({n}, '{s}'), ({n}, '{s}'), ({n}, 'x')",
    "DELETE FROM sessions WHERE expires < {n} LIMIT 1000",
    "SELECT COUNT(*) FROM line_items WHERE order_id IN ({l})",
    "SELECT * FROM products WHERE name LIKE '%{s}%' ORDER BY price ASC LIMIT {n}, 20",
    "select sum(amount) from payments where customer_id = {n} and paid = 1 group by currency",
    "SELECT /* app:checkout */ cart_id FROM carts WHERE user_id = {n} FOR UPDATE",
    "UPDATE customers SET last_login = NOW(), logins = logins + 1 WHERE id = {n}",
    "SELECT t1.a, t2.b FROM t1 LEFT JOIN t2 USING (k) WHERE t1.c BETWEEN {n} AND {n}",
    "REPLACE INTO cache (k, v) VALUES ('{s}', '{s}')",
    "SELECT * FROM shard_{m}.users WHERE id = {n}",
    "COMMIT",
]
WORDS = ["alpha", "bravo", "o''neil", "charlie", "delta", "échelle", "x\\'y", "zulu"]


def write_log(path: Path, events: int, seed: int = 5) -> int:
    rnd = random.Random(seed)
    ts = 1795800000
    with open(path, "w", encoding="utf-8") as out:
        out.write("/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:\n"
                  "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\nTime\t\t    Id Command\tArgument\n")
        db = ""
        for i in range(events):
            template = TEMPLATES[rnd.randrange(len(TEMPLATES))] if rnd.random() < 0.9 else TEMPLATES[0]
            n = rnd.randrange(1, 100000)
            word = WORDS[rnd.randrange(len(WORDS))]
            if "'" in word or "\\" in word:
                word = "w"  # pt-query-digest's wrong splits are tested apart; keep the bench comparable
            query = template.format(n=n, s=word, m=rnd.randrange(1, 13),
                                    l=", ".join(str(rnd.randrange(100)) for _ in range(rnd.randrange(1, 8))))
            if i % 1000 == 0:
                ts += 1
                out.write(f"# Time: {time.strftime('%y%m%d %H:%M:%S', time.gmtime(ts))}\n")
            schema = "shop" if i % 7 else "archive"
            qt = rnd.lognormvariate(-7, 2)
            out.write(f"# User@Host: app[app] @ web{i % 5} [10.0.0.{i % 5}]\n"
                      f"# Thread_id: {1000 + i % 50}  Schema: {schema}  QC_hit: No\n"
                      f"# Query_time: {qt:.6f}  Lock_time: {qt / 10:.6f}  Rows_sent: {n % 50}  "
                      f"Rows_examined: {n % 5000}\n"
                      f"# Rows_affected: {n % 3}  Bytes_sent: {100 + n % 900}\n")
            if i % 3 == 0:
                out.write("# Full_scan: Yes  Full_join: No  Tmp_table: No  Tmp_table_on_disk: No\n"
                          "# Filesort: No  Filesort_on_disk: No  Merge_passes: 0  Priority_queue: No\n")
            if schema != db:
                out.write(f"use {schema};\n")
                db = schema
            out.write(f"SET timestamp={ts};\n{query};\n")
    return path.stat().st_size


def run_measured(cmd: list[str]) -> tuple[float, float, bytes]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed with status {proc.returncode}")
        out.seek(0)
        return elapsed, usage.ru_maxrss / 1024, out.read()


DBWATCH_CHILD = """
import json, sys
from dbwatch.collectors.slowlog import analyze
classes, counters = analyze([sys.argv[1]], "mysql")
json.dump({"classes": {c.class_id: [c.count, c.fingerprint] for c in classes}, **counters}, sys.stdout)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--keep", help="write the log here and keep it")
    args = parser.parse_args()
    events = min(args.events, MAX_EVENTS)
    with tempfile.TemporaryDirectory(prefix="dbwatch-bench-slowlog-") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "slow.log"
        size = write_log(path, events)
        print(f"synthetic MariaDB slow log: {events} events, {size / 1e6:.1f} MB")
        ours_s, ours_rss, ours_out = run_measured([sys.executable, "-c", DBWATCH_CHILD, str(path)])
        pt_s, pt_rss, pt_out = run_measured(["pt-query-digest", "--preserve-embedded-numbers", "--output", "json",
                                             "--limit", "100%", str(path)])
    ours = json.loads(ours_out)
    pt = json.loads(pt_out.decode("utf-8", "replace").lstrip())
    pt_classes = {c["checksum"][:16]: (c["query_count"], c["fingerprint"]) for c in pt["classes"]}
    same = sum(count for cid, (count, _) in pt_classes.items() if ours["classes"].get(cid, [None])[0] == count)
    total = sum(count for count, _ in pt_classes.values())
    rows = [
        ("", "dbwatch", "pt-query-digest", "ratio"),
        ("seconds", f"{ours_s:.2f}", f"{pt_s:.2f}", f"{pt_s / ours_s:.1f}x"),
        ("events/s", f"{ours['events'] / ours_s:,.0f}", f"{total / pt_s:,.0f}",
         f"{(ours['events'] / ours_s) / (total / pt_s):.1f}x"),
        ("MB/s", f"{size / 1e6 / ours_s:.1f}", f"{size / 1e6 / pt_s:.1f}", ""),
        ("peak RSS MiB", f"{ours_rss:.0f}", f"{pt_rss:.0f}", f"{pt_rss / ours_rss:.1f}x"),
        ("events", f"{ours['events']}", f"{total}", ""),
        ("classes", f"{len(ours['classes'])}", f"{len(pt_classes)}", ""),
    ]
    print(table(rows))
    print(f"events in the same class with the same count: {same}/{total} ({100 * same / max(total, 1):.2f} %)")
    for cid, (count, fp) in sorted(pt_classes.items(), key=lambda kv: -kv[1][0]):
        mine = ours["classes"].get(cid, [0])[0]
        if mine != count:
            print(f"  differs: {cid} pt-query-digest {count}, dbwatch {mine}: {fp[:100]}")
    print(f"parse errors: {ours['parse_errors']}, lines skipped: {ours['lines_skipped']}")


if __name__ == "__main__":
    main()
