"""The agent's process metrics (prometheus-client's ``ProcessCollector``), read on the agent's event loop once a
second and served from that reading.

``ProcessCollector`` reads ``/proc`` at every collect: the process' stat and limits, and a listing of its open
files, which in a fleet's agent is a socket per target (1,500 entries at 1,400 targets). Each read lets go of
the interpreter's lock and takes it back; on the HTTP listener's thread (agent/httpthread.py), while the agent's
loop and a worker thread are busy, each take-back can wait a switch interval or more, and the reads made at
scrape time were about a third of a whole scrape's time there (py-spy, 1,400 targets). So the agent's loop reads
them every :data:`REFRESH` seconds and a scrape serves the last reading: ``process_*`` are at most that old, as
a scrape's other figures computed by the agent are (untimestamped, as before). Before :meth:`start` and after
:meth:`stop` (a test's exposition, the agent stopping) a scrape reads them itself.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import Metric

__all__ = ["REFRESH", "ProcessSnapshot"]

REFRESH = 1.0  # seconds between two readings of /proc


class ProcessSnapshot:
    """A collector for ``registry`` serving ``ProcessCollector``'s last reading (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._reader = ProcessCollector(registry=None)
        self._last: list[Metric] | None = None
        self._timer: asyncio.TimerHandle | None = None
        registry.register(self)

    def collect(self) -> list[Metric]:
        """The last reading (any thread: a list replaced whole, never changed), or one made now."""
        last = self._last
        return list(self._reader.collect()) if last is None else last

    def refresh(self) -> None:
        self._last = list(self._reader.collect())

    def start(self) -> None:
        """Read now and every :data:`REFRESH` seconds on the running loop, until :meth:`stop`."""
        if self._timer is None:
            self._tick()

    def _tick(self) -> None:
        self.refresh()
        self._timer = asyncio.get_running_loop().call_later(REFRESH, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last = None
