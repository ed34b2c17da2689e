"""Rule evaluation and alert latency.

1. CPU per evaluation cycle: 200 targets (PostgreSQL-shaped snapshots cloned from one real collection of
   the local server, 20 collections of history each, plus the host) × the default rules, through the
   same RuleEngine and AlertTracker the daemon uses. Beside it, Prometheus evaluating the exported
   rules (`dbwatch rules export`) over the same series, scraped from the same exposition, in the same
   run: its own `prometheus_rule_group_last_duration_seconds`.
2. Latency: a real `dbwatch run` collecting a real PostgreSQL every INTERVAL; the bench makes a rule's
   condition true (a held ACCESS EXCLUSIVE lock) at a random phase and times until a webhook receives the
   alert, as a multiple of the collection interval.

    .venv/bin/python bench/rules_cycle.py [--targets 200] [--cycles 20] [--latency-runs 8] [--interval 2]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbwatch.agent.alerts import AlertTracker  # noqa: E402
from dbwatch.model import CollectorSettings, Snapshot, Target  # noqa: E402
from dbwatch.agent.store import SnapshotStore  # noqa: E402
from dbwatch.collectors.host import HostCollector, HostSession  # noqa: E402
from dbwatch.collectors.postgres import PostgresCollector, PostgresSession  # noqa: E402
from dbwatch.exporters.prometheus import Exposition  # noqa: E402
from dbwatch.rules.catalog import python_rules  # noqa: E402
from dbwatch.rules.engine import RuleEngine, TargetView  # noqa: E402
from dbwatch.rules.promexport import export_prometheus_rules  # noqa: E402
from dbwatch.rules.spec import load_rules  # noqa: E402
from tests.agentproc import AgentProcess, free_port, wait_for  # noqa: E402

DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def real_snapshots() -> tuple[Snapshot, Snapshot]:
    target = Target(name="seed", engine="postgres", dsn=DSN, labels={},
                    collectors={"postgres": CollectorSettings(15, 10)})
    session = PostgresSession(target)
    pg = Snapshot(target="seed", engine="postgres", collector="postgres", started_at=time.time())
    await PostgresCollector(target, session).collect(pg)
    await session.close()
    host_target = Target(name="h", engine="host", dsn="", labels={},
                         collectors={"host": CollectorSettings(15, 5)})
    hsession = HostSession(host_target)
    host = Snapshot(target="h", engine="host", collector="host", started_at=time.time())
    collector = HostCollector(host_target, hsession)
    await collector.collect(host)
    await asyncio.sleep(0.2)
    host = Snapshot(target="h", engine="host", collector="host", started_at=time.time())
    await collector.collect(host)
    return pg, host


def build_store(pg: Snapshot, host: Snapshot, targets: int, history: int, now: float) -> SnapshotStore:
    store = SnapshotStore()
    for i in range(targets):
        for n in range(history):
            at = now - (history - n) * 15
            for seed in (pg, host):
                snap = copy.copy(seed)
                snap.target, snap.started_at = f"pg{i:03d}", at
                snap.families = [copy.copy(f) for f in seed.families]
                snap._index = None
                for family in snap.families:
                    if family.type == "counter":  # counters grow, so increase/rate have work to do
                        family.samples = [(labels, value + n * (i % 3)) for labels, value in family.samples]
                store.put(snap)
    return store


def measure_dbwatch(store: SnapshotStore, targets: dict[str, Target], cycles: int, workdir: Path) -> dict:
    engine = RuleEngine(load_rules(), python_rules())  # as the daemon builds it: thresholds and Python families
    tracker = AlertTracker(workdir / "alerts.db")
    now = time.time()
    began = time.process_time()
    for cycle in range(cycles):
        for name, target in targets.items():
            view = TargetView(store, name, target.engine, target.labels, now + cycle)
            tracker.update(name, engine.evaluate(view), engine.rule_durations, now + cycle)
    cpu = (time.process_time() - began) / cycles
    tracker.close()
    return {"cpu_ms": cpu * 1000, "rules": len(engine.rules), "python_rules": len(engine.python_rules),
            "alerts": len(tracker.alerts())}


def measure_prometheus(store: SnapshotStore, targets: dict[str, Target], workdir: Path, seconds: float) -> dict:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        return {}
    exposition = Exposition(store, "bench")
    exposition.set_target_labels({name: t.labels for name, t in targets.items()})
    for snapshot in list(store.latest_all()):
        exposition._on_snapshot(snapshot)
    body = exposition.render()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    (workdir / "rules.yml").write_text(export_prometheus_rules(load_rules()))
    (workdir / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(workdir / "rules.yml")],
        "scrape_configs": [{"job_name": "dbwatch", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}]}],
    }))
    proc = subprocess.Popen([prometheus, f"--config.file={workdir / 'prometheus.yml'}",
                             f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    durations: list[float] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("prometheus_rule_group_last_duration_seconds{"):
                    value = float(line.rsplit(" ", 1)[1])
                    if value > 0:
                        durations.append(value)
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()
    return {"eval_ms": statistics.median(durations[2:] or durations) * 1000} if durations else {}


def measure_latency(runs: int, interval: float, workdir: Path) -> list[float]:
    received: list[tuple[float, dict]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((time.time(), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    agent = AgentProcess(workdir, {
        "targets": [{"name": "bench", "engine": "postgres", "dsn": DSN, "interval": f"{interval}s",
                     "collectors": {"statements": {"enabled": False}}}],
        "receivers": [{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{hook.server_address[1]}/"}],
        "rules": {"defaults": False, "custom": [{
            "alert": "BenchLock", "metric": "pg_locks_count", "match": {"mode": "accessexclusivelock"},
            "aggregate": "sum", "op": ">", "threshold": 0, "summary": "lock held"}]},
    }).start()
    latencies = []
    try:
        wait_for(lambda: agent.get("/readyz", check=False) == 200, 30, "ready")
        for _ in range(runs):
            time.sleep(random.uniform(0, interval))  # a random phase against the collection schedule
            holder = subprocess.Popen(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "postgres"],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            holder.stdin.write("BEGIN; CREATE TEMP TABLE bench_lock (x int); LOCK bench_lock;\n")
            holder.stdin.flush()
            began = time.time()  # the lock is taken within milliseconds of this
            seen = len(received)
            wait_for(lambda: any(b["status"] == "firing" for _, b in received[seen:]), 30, "the webhook")
            latencies.append(next(t for t, b in received[seen:] if b["status"] == "firing") - began)
            holder.stdin.write("COMMIT;\n")
            holder.stdin.close()
            holder.wait(10)
            wait_for(lambda: any(b["status"] == "resolved" for _, b in received[seen:]), 30, "the resolve")
    finally:
        agent.stop()
        hook.shutdown()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--latency-runs", type=int, default=8)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--prometheus-seconds", type=float, default=30.0)
    args = parser.parse_args()

    pg, host = asyncio.run(real_snapshots())
    now = time.time()
    store = build_store(pg, host, args.targets, args.history, now)
    targets = {f"pg{i:03d}": Target(f"pg{i:03d}", "postgres", DSN, {"env": "bench"}, {})
               for i in range(args.targets)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mine = measure_dbwatch(store, targets, args.cycles, work)
        series = sum(len(f.samples) for s in store.latest_all() for f in s.families)
        print(f"rule evaluation: {args.targets} targets x {mine['rules']} threshold rules and {mine['python_rules']} "
              f"Python rules, {series:,} series, "
              f"{args.history} collections of history each")
        print(f"  dbwatch:    {mine['cpu_ms']:8.1f} ms CPU per cycle ({mine['cpu_ms'] / args.targets:.2f} ms per target)")
        theirs = measure_prometheus(store, targets, work, args.prometheus_seconds)
        if theirs:
            print(f"  Prometheus: {theirs['eval_ms']:8.1f} ms per rule-group evaluation (the exported rules, same series)"
                  f"  -> ratio Prometheus/dbwatch {theirs['eval_ms'] / mine['cpu_ms']:.2f}x")
        else:
            print("  Prometheus: not measured (no prometheus binary)")
        (work / "agent").mkdir()
        latencies = measure_latency(args.latency_runs, args.interval, work / "agent")
    ratios = [lat / args.interval for lat in latencies]
    print(f"condition -> webhook: {len(latencies)} runs at a {args.interval:g}s collection interval: "
          f"median {statistics.median(latencies):.2f}s ({statistics.median(ratios):.2f} intervals), "
          f"max {max(latencies):.2f}s ({max(ratios):.2f} intervals)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
