"""The web console at fleet size: overview render time and page weight at 1,400 targets.

A synthetic fleet (no server needed): 1,000 Redis-shaped and 400 PostgreSQL-shaped targets, each with its
main collector's latest snapshot carrying the facts the overview reads (role and replication link, the
key-number summary, a Statements fact of 50 statements on the PostgreSQL ones, a host filesystem family),
5 % down and 10 % with a firing alert. The same Console the agent mounts renders:

- the overview's first page (50 rows, problems first) and a filtered, sorted page, and the page at 500 rows;
- beside them, in the same run, the JSON of ``/api/v1/targets`` (every target's jobs, as before the console)
  for the same fleet: the cheapest thing the agent already serves about every target.

Budget: ≤ 100 ms server-side render of the overview at 1,400 targets. Prints median and p95 over --runs,
the bytes of HTML (plain and gzip), and the ratios.

    .venv/bin/python bench/console.py [--targets 1400] [--runs 30]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbwatch.agent.console.sources import Sources  # noqa: E402
from dbwatch.agent.console.web import Console  # noqa: E402
from dbwatch.agent.store import SnapshotStore  # noqa: E402
from dbwatch.model import Alert, AlertState, CollectorSettings, Snapshot, Target, gauge  # noqa: E402
from dbwatch.model.facts.common import PRIMARY, REPLICA, ReplicationLink, Summary  # noqa: E402
from dbwatch.model.facts.statements import StatementStats, Statements  # noqa: E402

BUDGET_MS = 100.0


def synthetic_fleet(count: int, seed: int = 1) -> tuple[Sources, dict[str, Target]]:
    """``count`` targets (5 in 7 Redis, the rest PostgreSQL) with a latest main snapshot each, and alerts."""
    rng = random.Random(seed)
    store = SnapshotStore()
    targets: dict[str, Target] = {}
    alerts: list[Alert] = []
    now = time.time()
    for i in range(count):
        engine = "redis" if i % 7 < 5 else "postgres"
        name = f"{engine}-{i:04d}"
        collector = "redis" if engine == "redis" else "postgres"
        targets[name] = Target(name=name, engine=engine, dsn="", labels={"env": rng.choice(["prod", "staging"]),
                               "team": f"t{i % 12}"}, collectors={collector: CollectorSettings(15, 10)})
        ok = rng.random() > 0.05
        snap = Snapshot(target=name, engine=engine, collector=collector, started_at=now - rng.random() * 15,
                        duration=0.02, ok=ok, error=None if ok else "connection refused",
                        version="7.0.15" if engine == "redis" else "15.6")
        if ok:
            replica = i % 3 == 2
            snap.put(ReplicationLink(role=REPLICA if replica else PRIMARY, link_up=True if replica else None,
                                     lag_seconds=rng.random() * 5 if replica else None),
                     Summary({"role": "replica" if replica else "primary",
                              "connections": f"{rng.randint(1, 500)}/500"}))
            fs = gauge("dbwatch_host_filesystem_used_ratio", "Share of the filesystem's space in use.", ("mountpoint",))
            fs.add(("/",), rng.random())
            snap.families.append(fs)
            if engine == "postgres":
                snap.put(Statements(tuple(_statement(j, rng) for j in range(50))))
        store.put(snap)
        if rng.random() < 0.10:
            alerts.append(Alert(f"fp{i}", {"alertname": "ReplicationLagHigh", "target": name, "severity": "warning"},
                                {"summary": "lag"}, AlertState.FIRING, 1.0, active_since=now - 300, fired_at=now - 200))
        if not ok:
            alerts.append(Alert(f"down{i}", {"alertname": "TargetDown", "target": name, "severity": "critical"},
                                {"summary": "down"}, AlertState.FIRING, 0.0, active_since=now - 90, fired_at=now - 60))
    collectors = {name: next(iter(t.collectors)) for name, t in targets.items()}
    sources = Sources(store=store, targets=lambda: targets, up_collector=collectors.get, alerts=lambda: alerts,
                      targets_info=lambda: _targets_info(store, targets, collectors))
    return sources, targets


def _statement(j: int, rng: random.Random) -> StatementStats:
    calls = rng.randint(1, 10_000)
    total = rng.random() * 100
    return StatementStats(queryid=j, user="app", datname="app", toplevel=True, query=f"SELECT * FROM t{j} WHERE id = $1",
                          calls=calls, total_time_seconds=total, max_time_seconds=0.5, rows=calls, shared_blks_hit=0,
                          shared_blks_read=0, temp_blks_written=0, delta_calls=calls // 10,
                          delta_time_seconds=total / 10, delta_rows=0, delta_shared_blks_hit=0,
                          delta_shared_blks_read=0, delta_temp_blks_written=0, interval_seconds=60.0)


def _targets_info(store: SnapshotStore, targets: dict[str, Target], collectors: dict[str, str]) -> list[dict[str, Any]]:
    """What the daemon's targets_info returns (agent/daemon.py), for the same fleet."""
    stats = {(s.target, s.collector): s for s in store.stats()}
    out = []
    for name, target in targets.items():
        collector = collectors[name]
        job = stats.get((name, collector))
        latest = store.latest(name, collector)
        out.append({"name": name, "engine": target.engine, "labels": dict(target.labels),
                    "up": latest.ok if latest else None, "version": latest.version if latest else None,
                    "collectors": {collector: {"runs": job.runs if job else 0, "errors": job.errors if job else 0,
                                               "last_error": job.last_error if job else None}}})
    return out


def timed(fn: Any, runs: int) -> tuple[float, float, Any]:
    """Median and p95 of ``fn()`` in ms, and its last result."""
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))], result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=1400)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    sources, _ = synthetic_fleet(args.targets)
    console = Console(sources, version="bench")
    console.overview_html({})  # templates compiled once, as in the agent after its first request
    cases = [("overview, first page (50 rows, problems first)", {}),
             ("overview, filtered and sorted (env=prod, by connections)", {"q": "env=prod", "sort": "connections"}),
             ("overview, 500 rows per page", {"per": "500"})]
    print(f"console at {args.targets} targets, {args.runs} runs each (budget {BUDGET_MS:.0f} ms)")
    _, _, _ = timed(lambda: json.dumps(sources.targets_info()), 3)
    api_median, api_p95, api_body = timed(lambda: json.dumps(sources.targets_info()), args.runs)
    print(f"  peer: /api/v1/targets JSON (jobs only) {api_median:7.1f} ms median, {api_p95:7.1f} ms p95, "
          f"{len(api_body) / 1024:7.1f} KiB")
    worst = 0.0
    for label, query in cases:
        median, p95, html = timed(lambda q=query: console.overview_html(q), args.runs)
        body = html.encode()
        worst = max(worst, p95) if query.get("per") is None else worst
        print(f"  {label}: {median:7.1f} ms median, {p95:7.1f} ms p95, {len(body) / 1024:7.1f} KiB "
              f"({len(gzip.compress(body)) / 1024:.1f} KiB gzip); {median / api_median:.2f}x the JSON peer")
    css = (ROOT / "agent/console/static/console.css").stat().st_size
    js = (ROOT / "agent/console/static/console.js").stat().st_size
    print(f"  static: console.css {css / 1024:.1f} KiB, console.js {js / 1024:.1f} KiB (cached 5 min)")
    print(f"  worst p95 of a default-size page: {worst:.1f} ms = {worst / BUDGET_MS:.2f}x the budget "
          f"({'within' if worst <= BUDGET_MS else 'OVER'})")
    return 0 if worst <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
