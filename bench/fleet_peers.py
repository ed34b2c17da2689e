"""The reference exporters of bench/fleet.py: CPU per scrape of redis_exporter and postgres_exporter.

Both are one-target-per-process exporters that collect when scraped. Each is measured in the two ways a
fleet can deploy it, against the same throwaway servers the agent watches, in the same run:

- multi-target: one process, Prometheus scraping ``/scrape?target=`` once per target and interval; every
  scrape opens its own connection (redis_exporter only: Debian's postgres_exporter 0.11.1 has no ``/probe``,
  which came with 0.12);
- one process per target: ``/metrics`` of a process started for one server, which keeps its connection
  (postgres_exporter) between scrapes. One such process per server stands for the fleet's N.

A figure is the exporter's CPU (user + system, from /proc, all its threads) over a batch of sequential
scrapes, divided by the number of scrapes: what one target costs it per collection. The reference for a
target is the CHEAPER of the two modes (the comparison is the most favourable to the exporters); both are
printed. The exporters' idle CPU between scrapes (Go's runtime, per process) is not counted at all.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from bench.measure import cpu_seconds, peak_rss_mib, scrape
from tests.helpers import free_port, wait_for

REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
PG_EXPORTER = "/usr/bin/prometheus-postgres-exporter"


@dataclass
class PeerFigures:
    mode: str
    cpu_ms_per_scrape: float
    scrapes: int
    series: int
    rss_mib: float  # peak RSS of one process


class _Process:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([*args, f"--web.listen-address=127.0.0.1:{self.port}"],
                                     env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ready, 30, f"{Path(args[0]).name} on port {self.port}", interval=0.1)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"exporter exited with {self.proc.returncode}")
        try:
            scrape(f"http://127.0.0.1:{self.port}/", timeout=5)
            return True
        except OSError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _batch(procs_and_paths: list[tuple[_Process, str]], scrapes: int) -> tuple[float, int, int]:
    """``scrapes`` sequential scrapes spread round robin over the pairs: CPU ms per scrape, series, scrapes."""
    for proc, path in procs_and_paths:  # warm-up: connections, discovery, first allocations
        scrape(proc.url(path))
    before = sum(cpu_seconds(p.proc.pid) for p in {id(p): p for p, _ in procs_and_paths}.values())
    series = 0
    for i in range(scrapes):
        proc, path = procs_and_paths[i % len(procs_and_paths)]
        series = scrape(proc.url(path)).series
    after = sum(cpu_seconds(p.proc.pid) for p in {id(p): p for p, _ in procs_and_paths}.values())
    return (after - before) / scrapes * 1000, series, scrapes


def redis_exporter(addresses: list[str], scrapes: int) -> list[PeerFigures]:
    """``addresses``: redis://127.0.0.1:port of the servers the agent watches."""
    out = []
    multi = _Process([REDIS_EXPORTER, "--redis.addr="])
    try:
        pairs = [(multi, "/scrape?target=" + urllib.parse.quote(a, safe="")) for a in addresses]
        ms, series, n = _batch(pairs, scrapes)
        out.append(PeerFigures("multi-target /scrape", ms, n, series, peak_rss_mib(multi.proc.pid)))
    finally:
        multi.stop()
    singles = [_Process([REDIS_EXPORTER, f"--redis.addr={a}"]) for a in addresses]
    try:
        ms, series, n = _batch([(p, "/metrics") for p in singles], scrapes)
        out.append(PeerFigures(f"process per target (x{len(singles)})", ms, n, series,
                               max(peak_rss_mib(p.proc.pid) for p in singles)))
    finally:
        for p in singles:
            p.stop()
    return out


def postgres_exporter(dsns: list[str], scrapes: int, queries: Path | None) -> list[PeerFigures]:
    """``dsns``: the servers the agent watches. With ``queries`` (the pg_stat_user_tables & co. of the
    exporter's example queries.yaml, what dbwatch's default tables collector also reads), it loads them."""
    extra = [f"--extend.query-path={queries}"] if queries else []
    out = []
    singles = [_Process([PG_EXPORTER, *extra], env={"DATA_SOURCE_NAME": d}) for d in dsns]
    try:
        ms, series, n = _batch([(p, "/metrics") for p in singles], scrapes)
        out.append(PeerFigures(f"process per target (x{len(singles)})", ms, n, series,
                               max(peak_rss_mib(p.proc.pid) for p in singles)))
    finally:
        for p in singles:
            p.stop()
    return out


def cheapest(figures: list[PeerFigures]) -> PeerFigures:
    """The mode that costs the exporter least per scrape (series > 0: a mode that answered)."""
    answered = [f for f in figures if f.series > 0] or figures
    return min(answered, key=lambda f: f.cpu_ms_per_scrape)
