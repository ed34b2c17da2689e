"""Periodic jobs on a shared tick: what the daemon runs its collections with.

A fleet has thousands of jobs (one per target and collector), each every 15 s or so at a phase of its own. A
job keeps its phase but starts on a grid of :data:`TICK`: the jobs due within one tick start in the same pass
of the event loop, their round trips overlap, and the agent wakes a few times a second instead of once per job.
One timer per job (APScheduler's way, with a datetime, a trigger and an event per run) cost about as much CPU
as collecting a small target (bench/fleet.py measured it: 0.25 ms per run, 0.6 ms per target and cycle).

The tick is a trade between CPU and latency. The jobs due within one tick run together, and so does the work
they cause when their answers come back: at 1,400 targets a one-second tick starts ~170 collections at once
and holds the event loop (a scrape waiting on it) for 0.1-0.4 s after each tick. Measured with bench/fleet.py
(2026-12-06, 1,000 Redis + 400 PostgreSQL targets, the collector paced by agent/gcpace.py), CPU per target and
cycle and per-target scrapes' p99: a 1 s tick 2.5-2.6 ms, 145-161 ms; 0.2 s 2.4-2.7 ms, 44-53 ms; 0.1 s
2.7 ms, 39 ms. Below a second the CPU differs by less than the runs' own spread.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

logger = logging.getLogger(__name__)

TICK = 0.1  # seconds: jobs start at multiples of it (a run is late by less than a tick); see above
SAY_SKIPPED_EVERY = 60.0  # seconds between two "skipped" lines of one job


@dataclass(slots=True)
class _Job:
    id: str
    interval: float
    run: Callable[[], Awaitable[None]]
    due: float  # time.monotonic() of its next run
    seq: int  # its entry in the heap (older entries of a job re-added or removed are stale)
    then: float | None = None  # its second run, when not one interval after the first (then every interval)
    task: asyncio.Task[None] | None = None
    said_skipped: float = -math.inf


class Schedule:
    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self._jobs: dict[str, _Job] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None
        self._paused = False

    def add(self, job_id: str, interval: float, run: Callable[[], Awaitable[None]], at: float | None = None,
            then: float | None = None) -> None:
        """Run ``run()`` every ``interval`` seconds, the first time at ``at`` (``time.monotonic()``; None: now),
        the second at ``then`` when given (the job's phase from then on; None: ``at`` + ``interval``). A job of
        the same id is replaced."""
        if interval <= 0:
            raise ValueError(f"job {job_id}: the interval must be positive, not {interval}")
        job = _Job(job_id, interval, run, time.monotonic() if at is None else at, next(self._seq), then)
        old = self._jobs.get(job_id)
        if old is not None:
            job.task = old.task  # a run in flight still counts: no overlap with the replaced job's run
        self._jobs[job_id] = job
        heapq.heappush(self._heap, (job.due, job.seq, job_id))
        if self._wake is not None:
            self._wake.set()

    def remove(self, job_id: str) -> None:
        """No more runs of the job (a run in flight goes on: its caller cancels it if it must)."""
        self._jobs.pop(job_id, None)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def next_runs(self) -> dict[str, float]:
        """Every job's next run (``time.monotonic()``), by id."""
        return {job_id: job.due for job_id, job in self._jobs.items()}

    def start(self) -> None:
        self._paused = False
        if self._driver is None:
            self._wake = asyncio.Event()
            self._driver = asyncio.create_task(self._drive(), name="schedule")

    def pause(self) -> None:
        """No new runs (runs in flight go on); the schedule keeps its phases."""
        self._paused = True

    async def stop(self) -> None:
        self._paused = True
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.cancel()
            await asyncio.wait({driver}, timeout=1.0)

    async def _drive(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, seq, job_id = heapq.heappop(heap)
                job = self._jobs.get(job_id)
                if job is not None and job.seq == seq:
                    self._fire(job, now)
            # Wake at the tick on or after the next run: runs due within a tick start together.
            wake_at = math.ceil(heap[0][0] / self.tick) * self.tick if heap else now + 60.0
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, wake_at - time.monotonic())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _fire(self, job: _Job, now: float) -> None:
        if not self._paused:
            if job.task is not None and not job.task.done():
                if now - job.said_skipped >= SAY_SKIPPED_EVERY:
                    job.said_skipped = now
                    logger.warning('run of "%s" skipped: its previous run has not ended (said once a minute)',
                                   job.id, extra={"job": job.id})
            else:
                logger.debug('run of "%s" started', job.id)
                job.task = asyncio.create_task(self._run(job), name=job.id)
        if job.then is not None:  # the first run: the phase starts at the second
            job.due, job.then = job.then, None
        if job.due <= now:
            # The next run at the job's phase, after now: runs missed while the loop was held become this one.
            job.due += job.interval * max(1, math.ceil((now - job.due) / job.interval + 1e-9))
        job.seq = next(self._seq)
        heapq.heappush(self._heap, (job.due, job.seq, job.id))

    @staticmethod
    async def _run(job: _Job) -> None:
        try:
            await job.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # the run's own bug: said, and the schedule goes on
            logger.exception('run of "%s" failed', job.id, extra={"job": job.id})
