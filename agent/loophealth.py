"""How late the event loop runs, and how long Python's cyclic garbage collector holds it: the agent's own latency.

Everything the agent does runs on one event loop: a scrape, a collection's round trip, an alert's evaluation
waits behind whatever was ready before it. Two histograms say how long that is, so that a slow ``/metrics``
or a late collection can be told apart from a slow server:

- ``dbwatch_event_loop_lag_seconds``: how late a timer set every :data:`PROBE_EVERY` seconds fired, the wait
  any callback had at that moment (the burst of collections starting on a tick, a large render);
- ``dbwatch_gc_pause_seconds{generation}``: each run of the cyclic collector, which holds every thread while it
  walks its generation (agent/gcpace.py runs it in short steps on a timer, and says why).

Both go into the process registry of the exposition, beside ``process_*``: they are true at scrape time.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics

__all__ = ["LoopHealth"]

PROBE_EVERY = 0.25  # seconds between two lag probes
#: upper bounds of the histograms' buckets, seconds: a scrape's budget is 50 ms, a collection's timeout seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopHealth:
    """Measures the running loop's lag and the collector's pauses into ``registry`` from :meth:`start` on."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # No ``*_created`` series (prometheus-client's start time of each histogram): the process' start time is in
        # process_start_time_seconds already. The switch is process-wide; nothing else of the agent uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
        self.lag = Histogram("dbwatch_event_loop_lag_seconds", "how late a timer of the agent's event loop fired "
                             f"(probed every {PROBE_EVERY:g} s): the wait of anything ready then", buckets=BUCKETS,
                             registry=registry)
        self.gc_pause = Histogram("dbwatch_gc_pause_seconds", "runs of Python's cyclic garbage collector and how "
                                  "long each held the agent", ("generation",), buckets=BUCKETS, registry=registry)
        self._by_generation = [self.gc_pause.labels(str(g)) for g in range(3)]
        self._gc_started = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Probe the running loop and time the collector's runs (until :meth:`stop`)."""
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._next_probe(loop, loop.time())
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _next_probe(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        due = now + PROBE_EVERY
        self._timer = loop.call_at(due, self._probe, loop, due)

    def _probe(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        self.lag.observe(max(0.0, now - due))
        self._next_probe(loop, now)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._gc_started)
            self._gc_started = 0.0
