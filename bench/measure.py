"""Measuring a running process from outside: CPU seconds, peak memory, and HTTP scrapes."""

from __future__ import annotations

import os
import statistics
import time
import urllib.request
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (children excluded), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Scrape:
    seconds: float
    size: int
    series: int
    body: str


def scrape(url: str, timeout: float = 120) -> Scrape:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
    elapsed = time.perf_counter() - began
    text = body.decode()
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return Scrape(elapsed, len(body), series, text)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows)
