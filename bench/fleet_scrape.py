"""Scraping an agent the way Prometheus does with the per-target job (deploy/prometheus/prometheus.yml,
``dbwatch-targets``): every target on its own (``GET /metrics?target=NAME``, gzip) once per interval, spread
over the interval, on keep-alive connections (Prometheus keeps one per scrape loop; here a few threads share
the loops), plus the agent's own metrics (``?collected=false``) once per interval. Used by bench/fleet.py."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse

__all__ = ["PerTargetScrapes"]


class PerTargetScrapes:
    """Scrapes ``targets`` on ``port`` every ``interval`` seconds from ``threads`` threads until stopped."""

    def __init__(self, port: int, targets: list[str], interval: float, threads: int = 8) -> None:
        self.port = port
        self.interval = interval
        self.latencies_ms: list[float] = []
        self.sizes: list[int] = []
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        shares = [targets[i::threads] for i in range(threads)]
        self._threads = [threading.Thread(target=self._loop, args=(share, i == 0), daemon=True)
                         for i, share in enumerate(shares) if share]

    def start(self) -> "PerTargetScrapes":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.interval + 30)

    def _loop(self, share: list[str], agent_too: bool) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        paths = [f"/metrics?target={urllib.parse.quote(name)}" for name in share]
        if agent_too:
            paths.append("/metrics?collected=false")
        began = time.monotonic()
        cycle = 0
        while not self._stop.is_set():
            for index, path in enumerate(paths):  # spread over the interval, as scrape loops are
                due = began + cycle * self.interval + index * self.interval / len(paths)
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                started = time.perf_counter()
                try:
                    connection.request("GET", path, headers={"Accept-Encoding": "gzip"})
                    response = connection.getresponse()
                    size = len(response.read())
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    ok, size = False, 0
                elapsed = (time.perf_counter() - started) * 1000
                with self._lock:
                    if ok:
                        if not path.endswith("collected=false"):
                            self.latencies_ms.append(elapsed)
                            self.sizes.append(size)
                    else:
                        self.failures += 1
            cycle += 1
        connection.close()


def scrape_loop(port: int, scrapes: int, every: float) -> list[float]:
    """The whole ``/metrics`` scraped as one Prometheus scrape loop does: gzip, at a steady spacing of ``every``
    seconds, on one kept-alive connection; the milliseconds of each scrape (to its last byte read). A scrape that
    fails ends the loop (the caller reports how many there were)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out: list[float] = []
    began = time.monotonic()
    try:
        for index in range(scrapes):
            delay = began + index * every - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            started = time.perf_counter()
            connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                break
            out.append((time.perf_counter() - started) * 1000)
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()
    return out
