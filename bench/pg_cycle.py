"""One PostgreSQL collection cycle, dbwatch beside prometheus-postgres-exporter, in one run.

Starts a throwaway PostgreSQL 15 (pg_stat_statements preloaded), creates 2,000 tables and 5,000
distinct pg_stat_statements entries, then measures:

- dbwatch (`dbwatch run`, its PostgreSQL collectors every 2 s, per-table statistics for every table): CPU
  seconds per cycle, wall time of a cycle, peak RSS, /metrics size, series count and scrape latency;
- postgres_exporter (Debian package) with --auto-discover-databases and the example queries from
  ../shared/bench/pgexp-queries-pg15.yaml: the same figures per scrape (it collects on scrape).

Prints both side by side with ratios. Run: `make bench` (or `.venv/bin/python bench/pg_cycle.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds, median, peak_rss_mib, scrape, table  # noqa: E402
from tests.agentproc import free_port, wait_for  # noqa: E402
from tests.pgcluster import PostgresServer  # noqa: E402

PEER_QUERIES = ROOT.parent / "shared" / "bench" / "pgexp-queries-pg15.yaml"
EXPORTER = "/usr/bin/prometheus-postgres-exporter"
# One dbwatch cycle: every PostgreSQL collector on by default once (per-table statistics of every table:
# max_tables is raised to the table count, as the exporter's queries.yaml has no limit).
COLLECTORS = ("postgres", "statements", "tables", "settings", "stats")


def build_workload(server: PostgresServer, tables: int, statements: int) -> int:
    """2,000 tables and 5,000 distinct statements (three shapes per table), then the entry count."""
    server.psql("CREATE DATABASE bench")
    server.psql(
        f"DO $$ BEGIN FOR i IN 1..{tables} LOOP "
        "EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i); "
        "EXECUTE format('INSERT INTO t%s VALUES (1, ''x'')', i); END LOOP; END $$",
        database="bench",
    )
    shapes = (
        "SELECT v FROM t{i} WHERE id = 1;",
        "SELECT count(*) FROM t{i};",
        "UPDATE t{i} SET v = 'y' WHERE id = 1;",
    )
    lines = [shapes[n % 3].format(i=n // 3 % tables + 1) for n in range(statements)]
    server.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database="bench")
    server.psql("\n".join(lines), database="bench")
    return int(server.psql("SELECT count(*) FROM pg_stat_statements", database="bench"))


def measure_dbwatch(dsn: str, workdir: Path, cycles: int, top_n: int, max_tables: int) -> dict[str, float]:
    port = free_port()
    config = workdir / "bench.yaml"
    config.write_text(
        f"state_dir: {workdir / 'state'}\nserver: {{listen: '127.0.0.1:{port}'}}\nlogging: {{level: warning}}\n"
        "targets:\n"
        f"  - name: bench\n    engine: postgres\n    dsn: '{dsn}'\n    interval: 2s\n    timeout: 30s\n"
        f"    collectors: {{statements: {{interval: 2s, top_n: {top_n}}}, tables: {{max_tables: {max_tables}}}}}\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "dbwatch.agent.cli", "run", "-c", str(config)],
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _runs(url) >= 2, 60, "two dbwatch cycles")
        runs0, cpu0, began = _runs(url), cpu_seconds(proc.pid), time.monotonic()
        wait_for(lambda: _runs(url) >= runs0 + cycles, 30 + 4 * cycles, f"{cycles} more cycles", interval=0.2)
        runs1, cpu1, elapsed = _runs(url), cpu_seconds(proc.pid), time.monotonic() - began
        jobs = _jobs(url)
        wall = sum(jobs[c]["last_duration_seconds"] or 0.0 for c in COLLECTORS)
        scrapes = [scrape(url + "/metrics") for _ in range(20)]
        return {
            "cpu_ms_per_cycle": (cpu1 - cpu0) / (runs1 - runs0) * 1000,
            "wall_ms_per_cycle": wall * 1000,
            "peak_rss_mib": peak_rss_mib(proc.pid),
            "metrics_kib": scrapes[-1].size / 1024,
            "series": scrapes[-1].series,
            "scrape_ms": median([s.seconds for s in scrapes]) * 1000,
            "elapsed_s": elapsed,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def measure_exporter(dsn: str, scrapes_wanted: int) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "DATA_SOURCE_NAME": dsn}
    proc = subprocess.Popen(
        [EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--auto-discover-databases",
         f"--extend.query-path={PEER_QUERIES}"],
        env=env, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _reachable(url), 30, "postgres_exporter")
        scrape(url)  # warm-up: connections and discovery
        results, cpu = [], []
        for _ in range(scrapes_wanted):
            before = cpu_seconds(proc.pid)
            results.append(scrape(url))
            cpu.append(cpu_seconds(proc.pid) - before)
        return {
            "cpu_ms_per_cycle": median(cpu) * 1000,
            "wall_ms_per_cycle": median([r.seconds for r in results]) * 1000,
            "peak_rss_mib": peak_rss_mib(proc.pid),
            "metrics_kib": results[-1].size / 1024,
            "series": results[-1].series,
            "scrape_ms": median([r.seconds for r in results]) * 1000,
        }
    finally:
        proc.terminate()
        proc.wait(15)


def _runs(url: str) -> float:
    jobs = _jobs(url)
    return min((jobs[c]["runs"] if c in jobs else 0) for c in COLLECTORS)


def _jobs(url: str) -> dict[str, dict[str, Any]]:
    """The collectors' figures from /api/v1/targets: a few hundred bytes, where a /metrics scrape per poll
    (every 0.2 s) would add its own CPU to the cycles being measured."""
    try:
        [target] = json.loads(scrape(url + "/api/v1/targets").body)
    except (OSError, ValueError):
        return {}
    return dict(target["collectors"])


def _reachable(url: str) -> bool:
    try:
        scrape(url, timeout=60)
        return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--top-n", type=int, default=100, help="dbwatch's per-statement series cap")
    args = parser.parse_args()
    if not shutil.which(EXPORTER):
        print(f"{EXPORTER} is missing: apt-get install prometheus-postgres-exporter", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dbwatch-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server runs as the postgres user
        server = PostgresServer(Path(tmp) / "pg", settings={"pg_stat_statements.max": "10000", "pg_stat_statements.track": "top"})
        server.start()
        try:
            print(f"setting up {args.tables} tables and {args.statements} statements…", file=sys.stderr)
            entries = build_workload(server, args.tables, args.statements)
            dsn = server.dsn(database="bench")
            print(f"pg_stat_statements entries: {entries}", file=sys.stderr)
            ours = measure_dbwatch(dsn, Path(tmp), args.cycles, args.top_n, max(1000, args.tables))
            peer = measure_exporter(dsn + ("&" if "?" in dsn else "?") + "sslmode=disable", 5)
        finally:
            server.stop()
    rows = [("figure", "dbwatch", "postgres_exporter", "exporter / dbwatch")]
    for key, label in (("cpu_ms_per_cycle", "CPU ms per cycle"), ("wall_ms_per_cycle", "wall ms per cycle"),
                       ("peak_rss_mib", "peak RSS MiB"), ("metrics_kib", "/metrics KiB"),
                       ("series", "series"), ("scrape_ms", "scrape latency ms")):
        ratio = peer[key] / ours[key] if ours[key] else float("inf")
        rows.append((label, f"{ours[key]:.1f}", f"{peer[key]:.1f}", f"{ratio:.1f}x"))
    print(f"PostgreSQL 15, {args.tables} tables, {entries} pg_stat_statements entries, "
          f"dbwatch (top_n {args.top_n}) over {args.cycles} cycles, exporter over 5 scrapes")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
