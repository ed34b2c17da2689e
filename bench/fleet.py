"""One agent, a fleet: 1,000 Redis + 400 PostgreSQL targets at 15 s, beside the reference exporters.

Starts throwaway servers on free loopback ports (4 Redis, 2 PostgreSQL 15 by default; targets are spread
over them round robin), runs `dbwatch run` with every target at the default collectors and a 15 s interval,
and measures, in the same run and against the same servers:

- dbwatch: CPU per target-cycle (the agent's CPU over a window, divided by targets x window / 15 s; it
  includes a /metrics scrape with gzip every 15 s, as Prometheus does), peak and final RSS against the
  budget 100 MiB + 0.25 MiB per target, /metrics latency p50/p99 (plain and gzip alternating every 0.5 s, and
  gzip every 3 s on one kept-alive connection, as a Prometheus scrape loop does), targets up, internal errors;
- redis_exporter and postgres_exporter (Debian packages), each in multi-target mode and one process per
  target (bench/fleet_peers.py says how): CPU per scrape. The reference is the cheaper mode of each,
  weighted by the fleet's mix; the ratio is dbwatch's CPU per target-cycle over it.

Then the overloaded case: 300 PostgreSQL targets on one server kept busy by pgbench (bounded by -T),
reporting % of targets up over the window and internal errors.

Run: `.venv/bin/python bench/fleet.py` (about 15 minutes; --redis/--postgres/--window/--overloaded to size it,
--overloaded 0 to skip that part). Every server, exporter and agent it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench import fleet_peers  # noqa: E402
from bench.fleet_scrape import PerTargetScrapes, scrape_loop  # noqa: E402
from bench.measure import cpu_seconds, peak_rss_mib  # noqa: E402
from tests.helpers import free_port, wait_for  # noqa: E402
from tests.pgcluster import BIN, PostgresServer  # noqa: E402
from tests.redisserver import RedisServer  # noqa: E402

PEER_QUERIES = ROOT.parent / "shared" / "bench" / "pgexp-queries-pg15.yaml"
INTERVAL = 15.0
LOOP_EVERY = 3.0  # seconds between the scrapes of the Prometheus-like scrape loop (a fast scrape_interval)


class Agent:
    """A `dbwatch run` process watching ``targets`` (name, engine, dsn); its log goes to a file."""

    def __init__(self, workdir: Path, targets: list[tuple[str, str, str]], extra: str = "") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = workdir / "dbwatch.log"
        lines = [f"state_dir: {workdir / 'state'}", f"server: {{listen: '127.0.0.1:{self.port}'}}",
                 "logging: {level: warning}", extra, "targets:"]
        for name, engine, dsn in targets:
            # The engines' default collectors at their default intervals: the main ones every 15 s.
            lines.append(f"  - {{name: {name}, engine: {engine}, dsn: '{dsn}'}}")
        config = workdir / "dbwatch.yaml"
        config.write_text("\n".join(lines) + "\n")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "dbwatch.agent.cli", "run", "-c", str(config)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._get("/healthz") is not None, 60, "the agent's /healthz", interval=0.2)

    def _get(self, path: str, gzip: bool = False, timeout: float = 60) -> bytes | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"dbwatch exited with {self.proc.returncode}: see {self.log_path}")
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers={"Accept-Encoding": "gzip"} if gzip else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return bytes(response.read())
        except OSError:
            return None

    def targets(self) -> list[dict[str, Any]]:
        body = self._get("/api/v1/targets")
        return json.loads(body) if body else []

    def up(self) -> int:
        return sum(1 for t in self.targets() if t["up"])

    def scrape_seconds(self, gzip: bool) -> tuple[float, int]:
        began = time.perf_counter()
        body = self._get("/metrics", gzip=gzip)
        if body is None:
            raise RuntimeError("a /metrics scrape failed")
        return time.perf_counter() - began, len(body)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))

    def internal_errors(self) -> int:
        text = self.log_path.read_text(errors="replace")
        in_log = text.count("internal error")
        first = next((line for line in text.splitlines() if "internal error" in line), None)
        if first:
            print(f"  first internal error: {first[:300]}", file=sys.stderr)
        in_api = sum(1 for t in self.targets() for c in t["collectors"].values()
                     if (c["last_error"] or "").startswith("internal error"))
        return max(in_log, in_api)

    def own_latency(self, names: tuple[str, ...] = ("dbwatch_event_loop_lag_seconds", "dbwatch_gc_pause_seconds")
                    ) -> list[str]:
        """The agent's histograms ``names`` since it started (agent/loophealth.py, agent/http.py), one line per
        series: runs, mean, and how many took over 50 and 100 ms."""
        body = self._get("/metrics?collected=false")
        out = []
        for family in text_string_to_metric_families((body or b"").decode()):
            if family.name not in names:
                continue
            series: dict[str, dict[str, float]] = {}
            for sample in family.samples:
                key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
                if sample.name.endswith("_bucket"):
                    series.setdefault(key, {})["le" + sample.labels["le"]] = sample.value
                elif sample.name.endswith(("_count", "_sum")):
                    series.setdefault(key, {})[sample.name.rpartition("_")[2]] = sample.value
            for key, figures in sorted(series.items()):
                count = figures.get("count", 0.0)
                if not count:
                    continue
                over = count - figures.get("le0.05", 0.0)
                label = family.name + (f"{{{key}}}" if key else "")
                out.append(f"{label}: {count:.0f} runs, mean {figures.get('sum', 0.0) / count * 1000:.1f} ms, "
                           f"{over:.0f} over 50 ms, {count - figures.get('le0.1', 0.0):.0f} over 100 ms")
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@dataclass
class FleetFigures:
    targets: int
    up: int = 0
    cpu_ms_per_target_cycle: float = 0.0
    peak_rss_mib: float = 0.0
    rss_mib: float = 0.0
    #: (phase, RSS, peak RSS) at the end of each phase: which one raised the peak
    rss_by_phase: list[tuple[str, float, float]] = field(default_factory=list)
    scrape_ms: dict[str, list[float]] = field(default_factory=dict)
    #: the same, less the first two of each kind in each phase: a scraper's spacing is learnt from its first two
    #: scrapes, and the agent makes the body ahead of the next ones (exporters/ahead.py), as for Prometheus
    steady_ms: dict[str, list[float]] = field(default_factory=dict)
    metrics_kib: dict[str, float] = field(default_factory=dict)
    internal_errors: int = 0
    window_s: float = 0.0
    #: scraped per target (deploy/prometheus/prometheus.yml's dbwatch-targets job) instead of whole
    per_target_cpu_ms: float = 0.0
    per_target_ms: list[float] = field(default_factory=list)
    per_target_kib: float = 0.0
    per_target_failures: int = 0
    #: the agent's own dbwatch_event_loop_lag_seconds and dbwatch_gc_pause_seconds at the end, summed up
    own_latency: list[str] = field(default_factory=list)
    #: whole gzip scraped as one Prometheus scrape loop does (kept-alive, every LOOP_EVERY s), first two left out
    loop_ms: list[float] = field(default_factory=list)
    loop_scrapes: int = 0
    #: dbwatch_scrape_seconds after the whole-body phases: how those scrapes were answered, and how fast
    whole_served: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure_fleet(agent: Agent, targets: int, window: float, latency_scrapes: int, loop_scrapes: int
                  ) -> FleetFigures:
    out = FleetFigures(targets)
    print(f"waiting for {targets} targets up…", file=sys.stderr)
    try:
        wait_for(lambda: agent.up() >= targets, 3 * INTERVAL + targets / 20, "every target up", interval=2)
    except Exception as exc:  # measured all the same: the report says how many were up
        print(f"  not all up: {exc}", file=sys.stderr)
    # One more interval: the slower collectors (tables at 30 s) ran at least once, memory is at its plateau.
    time.sleep(INTERVAL)
    out.scrape_ms = {"plain": [], "gzip": []}
    out.steady_ms = {"plain": [], "gzip": []}
    print(f"measuring CPU over {window:g}s, scraping /metrics (gzip) every {INTERVAL:g}s…", file=sys.stderr)
    cpu0, began = agent.cpu(), time.monotonic()
    for tick in _ticks(began, window, INTERVAL):
        seconds, size = agent.scrape_seconds(gzip=True)
        out.scrape_ms["gzip"].append(seconds * 1000)
        if tick >= 2:
            out.steady_ms["gzip"].append(seconds * 1000)
        out.metrics_kib["gzip"] = size / 1024
    out.window_s = time.monotonic() - began
    out.rss_by_phase.append(("whole gzip every 15 s", agent.rss_mib(), peak_rss_mib(agent.proc.pid)))
    cycles = out.window_s / INTERVAL
    out.cpu_ms_per_target_cycle = (agent.cpu() - cpu0) * 1000 / (targets * cycles)
    print(f"scraping /metrics {latency_scrapes} more times (plain and gzip, every 0.5 s)…", file=sys.stderr)
    deadline = time.monotonic() + 120  # bounded, however slow the scrapes are
    for i in range(latency_scrapes):
        if time.monotonic() > deadline:
            break
        kind = "gzip" if i % 2 else "plain"
        seconds, size = agent.scrape_seconds(gzip=kind == "gzip")
        out.scrape_ms[kind].append(seconds * 1000)
        if i >= 4:
            out.steady_ms[kind].append(seconds * 1000)
        out.metrics_kib[kind] = size / 1024
        time.sleep(0.5)
    out.rss_by_phase.append(("whole plain and gzip every 0.5 s", agent.rss_mib(), peak_rss_mib(agent.proc.pid)))
    print(f"scraping /metrics (gzip) {loop_scrapes} times every {LOOP_EVERY:g}s on one kept-alive connection, as "
          "a Prometheus scrape loop does…", file=sys.stderr)
    loop = scrape_loop(agent.port, loop_scrapes, LOOP_EVERY)
    out.loop_ms, out.loop_scrapes = loop[2:], len(loop)  # the first two: the spacing is learnt
    out.rss_by_phase.append((f"whole gzip every {LOOP_EVERY:g} s, kept alive", agent.rss_mib(),
                             peak_rss_mib(agent.proc.pid)))
    out.whole_served = agent.own_latency(("dbwatch_scrape_seconds",))  # how the whole scrapes were answered
    measure_per_target(agent, out, window)
    out.rss_by_phase.append(("each target on its own", agent.rss_mib(), peak_rss_mib(agent.proc.pid)))
    listed = agent.targets()
    out.up = sum(1 for t in listed if t["up"])
    reasons = collections.Counter(f'{t["engine"]}: {(t.get("last_error") or "no error recorded")[:120]}'
                                  for t in listed if not t["up"])
    for reason, count in reasons.most_common(5):  # why the others are down, so the next fix is aimed
        print(f"  down: {count} x {reason}", file=sys.stderr)
    out.own_latency = agent.own_latency()
    out.peak_rss_mib = peak_rss_mib(agent.proc.pid)
    out.rss_mib = agent.rss_mib()
    out.internal_errors = agent.internal_errors()
    return out


def measure_per_target(agent: Agent, out: FleetFigures, window: float) -> None:
    """The same agent scraped as the per-target job does: every target on its own once per interval."""
    names = [t["name"] for t in agent.targets()]
    print(f"measuring CPU over {window:g}s, scraping each of {len(names)} targets on its own every "
          f"{INTERVAL:g}s…", file=sys.stderr)
    scrapes = PerTargetScrapes(agent.port, names, INTERVAL).start()
    try:
        time.sleep(INTERVAL)  # one round first: every target's body cached once, as in a steady state
        cpu0, began = agent.cpu(), time.monotonic()
        skip = len(scrapes.latencies_ms)
        time.sleep(window)
        seconds = time.monotonic() - began
        out.per_target_cpu_ms = (agent.cpu() - cpu0) * 1000 / (out.targets * seconds / INTERVAL)
    finally:
        scrapes.stop()
    out.per_target_ms = scrapes.latencies_ms[skip:]
    out.per_target_kib = statistics.mean(scrapes.sizes) / 1024 if scrapes.sizes else 0.0
    out.per_target_failures = scrapes.failures


def _ticks(began: float, window: float, every: float) -> Iterator[int]:
    """Yields at began, began + every, ... while within the window, then waits for its end."""
    n = 0
    while began + n * every < began + window:
        delay = began + n * every - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield n
        n += 1
    rest = began + window - time.monotonic()
    if rest > 0:
        time.sleep(rest)


def _cleanup(*groups: list[Any]) -> None:
    """Stop everything started, each on its own (one that fails, or a ^C, does not leave the others running)."""
    interrupted: BaseException | None = None
    for stop in (s for group in groups for s in group):
        try:
            stop()
        except BaseException as exc:  # noqa: BLE001 - report and go on stopping the rest
            print(f"cleanup: {exc!r}", file=sys.stderr)
            if not isinstance(exc, Exception):
                interrupted = exc
    if interrupted is not None:  # a ^C during the cleanup still stops the bench once all is stopped
        raise interrupted


def start_pg(root: Path, name: str, max_connections: int) -> PostgresServer:
    server = PostgresServer(root / name, settings={"max_connections": str(max_connections),
                                                   "shared_buffers": "16MB"})
    server.start()
    # A little schema, so that the per-table collectors (dbwatch's tables, the exporter's queries.yaml) read rows.
    server.psql("DO $$ BEGIN FOR i IN 1..20 LOOP EXECUTE format("
                "'CREATE TABLE IF NOT EXISTS t%s (id int PRIMARY KEY, v text)', i); END LOOP; END $$")
    return server


def fleet(args: argparse.Namespace, tmp: Path) -> tuple[FleetFigures, dict[str, list[fleet_peers.PeerFigures]]]:
    redis_servers: list[RedisServer] = []
    pg_servers: list[PostgresServer] = []
    agent: Agent | None = None
    try:
        print(f"starting {args.redis_servers} Redis and {args.pg_servers} PostgreSQL servers…", file=sys.stderr)
        redis_servers = [RedisServer("--maxclients", "4000").start() for _ in range(args.redis_servers)]
        per_pg = -(-args.postgres // max(1, args.pg_servers))
        pg_servers = [start_pg(tmp, f"pg{i}", per_pg + 40) for i in range(args.pg_servers)]
        targets = [(f"redis-{i:04d}", "redis", redis_servers[i % len(redis_servers)].dsn())
                   for i in range(args.redis)]
        targets += [(f"pg-{i:04d}", "postgres", pg_servers[i % len(pg_servers)].dsn())
                    for i in range(args.postgres)]
        agent = Agent(tmp / "agent", targets)
        ours = measure_fleet(agent, len(targets), args.window, args.latency_scrapes, args.loop_scrapes)
        agent.stop()
        agent = None
        print("measuring redis_exporter and postgres_exporter on the same servers…", file=sys.stderr)
        peers: dict[str, list[fleet_peers.PeerFigures]] = {}
        if args.redis:
            peers["redis"] = fleet_peers.redis_exporter([s.dsn() for s in redis_servers], args.peer_scrapes)
        if args.postgres:
            queries = PEER_QUERIES if PEER_QUERIES.exists() else None
            peers["postgres"] = fleet_peers.postgres_exporter([s.dsn() for s in pg_servers], args.peer_scrapes,
                                                              queries)
        return ours, peers
    finally:
        _cleanup([agent.stop] if agent is not None else [], [r.destroy for r in redis_servers],
                 [p.destroy for p in pg_servers])


@dataclass
class OverloadFigures:
    targets: int
    up_pct_mean: float = 0.0
    up_pct_min: float = 0.0
    up_pct_final: float = 0.0
    internal_errors: int = 0
    failed_collections: int = 0
    pgbench_tps: str = ""


def overloaded(args: argparse.Namespace, tmp: Path) -> OverloadFigures:
    out = OverloadFigures(args.overloaded)
    server = start_pg(tmp, "busy", args.overloaded + args.pgbench_clients + 30)
    agent: Agent | None = None
    bench: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([str(BIN / "pgbench"), "-i", "-q", "-s", "5", "-h", "127.0.0.1", "-p", str(server.port),
                        "-U", "postgres", "postgres"], check=True, capture_output=True, timeout=300)
        duration = int(3 * INTERVAL + args.overloaded / 20 + args.window + 60)  # bounded: pgbench stops by itself
        bench = subprocess.Popen([str(BIN / "pgbench"), "-n", "-c", str(args.pgbench_clients), "-j", "2",
                                  "-T", str(duration), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
                                  "postgres"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets = [(f"busy-{i:03d}", "postgres", server.dsn()) for i in range(args.overloaded)]
        agent = Agent(tmp / "busy-agent", targets)
        print(f"overloaded: {args.overloaded} targets on one server under pgbench -c {args.pgbench_clients}…",
              file=sys.stderr)
        try:
            wait_for(lambda: agent.up() >= args.overloaded, 3 * INTERVAL + args.overloaded / 20,
                     "every busy target up", interval=2)
        except Exception as exc:
            print(f"  not all up: {exc}", file=sys.stderr)
        commits0, began = _commits(server), time.monotonic()
        samples = []
        for _ in _ticks(time.monotonic(), args.window, 5.0):
            listed = agent.targets()
            samples.append(100.0 * sum(1 for t in listed if t["up"]) / max(1, args.overloaded))
        out.up_pct_mean, out.up_pct_min, out.up_pct_final = statistics.mean(samples), min(samples), samples[-1]
        out.pgbench_tps = f"{(_commits(server) - commits0) / (time.monotonic() - began):.0f}"
        out.internal_errors = agent.internal_errors()
        out.failed_collections = sum(c["errors"] for t in agent.targets() for c in t["collectors"].values())
        return out
    finally:
        _cleanup([agent.stop] if agent is not None else [],
                 [bench.terminate, lambda: bench.wait(30)] if bench is not None else [], [server.destroy])


def _commits(server: PostgresServer) -> int:
    return int(server.psql("SELECT sum(xact_commit) FROM pg_stat_database"))


def report(args: argparse.Namespace, ours: FleetFigures, peers: dict[str, list[fleet_peers.PeerFigures]],
           busy: OverloadFigures | None) -> None:
    print(f"\nfleet: {args.redis} Redis on {args.redis_servers} servers + {args.postgres} PostgreSQL on "
          f"{args.pg_servers} servers, interval {INTERVAL:g}s, default collectors, window {ours.window_s:.0f}s")
    weights = {"redis": args.redis, "postgres": args.postgres}
    reference = 0.0
    for engine, figures in peers.items():
        best = fleet_peers.cheapest(figures)
        for f in figures:
            mark = "  <- reference" if f is best else ""
            print(f"  {engine}_exporter {f.mode}: {f.cpu_ms_per_scrape:.2f} ms CPU per scrape over {f.scrapes} "
                  f"scrapes, {f.series} series, RSS {f.rss_mib:.0f} MiB per process{mark}")
        reference += best.cpu_ms_per_scrape * weights[engine] / max(1, args.redis + args.postgres)
    ratio = ours.cpu_ms_per_target_cycle / reference if reference else float("nan")
    budget = 100 + 0.25 * ours.targets
    rows = [
        ("targets up", f"{ours.up}/{ours.targets}", "all"),
        ("CPU ms per target-cycle", f"{ours.cpu_ms_per_target_cycle:.2f}",
         f"exporters' weighted {reference:.2f} ms per scrape; ratio {ratio:.2f}x (target <= 1.0x, aim 0.5x)"),
        ("agent CPU, % of a core", f"{ours.cpu_ms_per_target_cycle * ours.targets / INTERVAL / 10:.0f}%", ""),
        ("RSS MiB (peak / end)", f"{ours.peak_rss_mib:.0f} / {ours.rss_mib:.0f}",
         f"budget {budget:.0f} (100 + 0.25 per target)"),
        *((f"  after {phase}", f"{rss:.0f} / peak {peak:.0f}", "") for phase, rss, peak in ours.rss_by_phase),
    ]
    for kind in ("plain", "gzip"):
        values = ours.scrape_ms.get(kind, [])
        rows.append((f"/metrics {kind} p50 / p99 ms", f"{pct(values, 0.5):.1f} / {pct(values, 0.99):.1f}",
                     f"{len(values)} scrapes, {ours.metrics_kib.get(kind, 0):.0f} KiB (target p99 <= 50 ms)"))
        steady = ours.steady_ms.get(kind, [])
        rows.append((f"  at a steady spacing p50 / p99 ms", f"{pct(steady, 0.5):.1f} / {pct(steady, 0.99):.1f}",
                     f"{len(steady)} scrapes: each kind's first two in each phase left out (the spacing is learnt); "
                     f"{sum(1 for v in steady if v > 50)} over 50 ms"))
    rows.append((f"  one scrape loop, every {LOOP_EVERY:g}s p50 / p99 ms",
                 f"{pct(ours.loop_ms, 0.5):.1f} / {pct(ours.loop_ms, 0.99):.1f}",
                 f"gzip on one kept-alive connection, as Prometheus scrapes; {len(ours.loop_ms)} of "
                 f"{ours.loop_scrapes} (the first two left out), {sum(1 for v in ours.loop_ms if v > 50)} over 50 ms"))
    per_ratio = ours.per_target_cpu_ms / reference if reference else float("nan")
    rows += [("scraped per target: CPU ms per target-cycle", f"{ours.per_target_cpu_ms:.2f}",
              f"ratio {per_ratio:.2f}x; each target scraped on its own every {INTERVAL:g}s (gzip)"),
             ("  per-target /metrics p50 / p99 ms",
              f"{pct(ours.per_target_ms, 0.5):.1f} / {pct(ours.per_target_ms, 0.99):.1f}",
              f"{len(ours.per_target_ms)} scrapes, {ours.per_target_kib:.1f} KiB on average, "
              f"{ours.per_target_failures} failed, {sum(1 for v in ours.per_target_ms if v > 50)} over 50 ms "
              "(target p99 <= 50 ms)")]
    rows.append(("internal errors", str(ours.internal_errors), "target 0"))
    width = max(len(r[0]) for r in rows)
    for label, value, note in rows:
        print(f"  {label.ljust(width)}  {value:<14} {note}")
    for line in ours.own_latency:
        print(f"  agent's own: {line}")
    for line in ours.whole_served:
        print(f"  whole scrapes (all three phases), as the agent timed them: {line}")
    if busy is not None:
        print(f"\noverloaded: {busy.targets} PostgreSQL targets on one server under pgbench "
              f"(-c {args.pgbench_clients}: {busy.pgbench_tps} commits/s), window {args.window:g}s")
        print(f"  targets up: mean {busy.up_pct_mean:.1f}%, min {busy.up_pct_min:.1f}%, end {busy.up_pct_final:.1f}% "
              f"(target >= 95%); failed collections {busy.failed_collections}; internal errors "
              f"{busy.internal_errors} (target 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", type=int, default=1000, help="Redis targets")
    parser.add_argument("--postgres", type=int, default=400, help="PostgreSQL targets")
    parser.add_argument("--redis-servers", type=int, default=4)
    parser.add_argument("--pg-servers", type=int, default=2)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of measurement (each part)")
    parser.add_argument("--latency-scrapes", type=int, default=60, help="extra /metrics scrapes for p50/p99")
    parser.add_argument("--loop-scrapes", type=int, default=40,
                        help=f"whole gzip scrapes every {LOOP_EVERY:g}s on one kept-alive connection")
    parser.add_argument("--peer-scrapes", type=int, default=200, help="scrapes per exporter mode")
    parser.add_argument("--overloaded", type=int, default=300, help="targets on the busy server (0: skip)")
    parser.add_argument("--pgbench-clients", type=int, default=8)
    args = parser.parse_args()
    missing = [p for p in (fleet_peers.REDIS_EXPORTER, fleet_peers.PG_EXPORTER) if not shutil.which(p)]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install prometheus-redis-exporter "
              "prometheus-postgres-exporter)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dbwatch-fleet-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o755)  # the PostgreSQL servers run as the postgres user
        ours, peers = fleet(args, tmp)
        busy = overloaded(args, tmp) if args.overloaded else None
    report(args, ours, peers, busy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
