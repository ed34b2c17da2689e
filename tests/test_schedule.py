"""The daemon's schedule (agent/schedule.py): runs at each job's interval on a shared tick, never overlapping a
job's previous run, missed runs coalesced, a run's error said and survived, removal and pause respected."""

from __future__ import annotations

import asyncio
import logging
import math
import time

from dbwatch.agent.schedule import Schedule
from tests.helpers import wait_until


async def test_jobs_due_within_a_tick_start_together_and_keep_their_interval():
    schedule = Schedule(tick=0.2)
    started: dict[str, list[float]] = {"a": [], "b": []}

    def job(name: str):
        async def run() -> None:
            started[name].append(time.monotonic())
        return run

    tick = math.ceil(time.monotonic() / 0.2) * 0.2 + 0.2  # a tick of the grid, in the future
    schedule.add("a", 0.4, job("a"), at=tick + 0.01)
    schedule.add("b", 0.4, job("b"), at=tick + 0.15)
    schedule.start()
    try:
        await wait_until(lambda: len(started["a"]) >= 4 and len(started["b"]) >= 4, 5, "four runs of each job")
    finally:
        await schedule.stop()
    # a (due 0.01 after a tick) and b (0.15 after it) fall in one tick: they start in the same pass of the loop
    assert abs(started["a"][0] - started["b"][0]) < 0.05, started
    gaps = [later - earlier for earlier, later in zip(started["a"], started["a"][1:])]
    assert all(0.3 <= gap <= 0.55 for gap in gaps), gaps


async def test_a_job_given_a_second_run_keeps_that_phase_after_it():
    schedule = Schedule(tick=0.05)
    started: list[float] = []

    async def run() -> None:
        started.append(time.monotonic())

    now = time.monotonic()
    schedule.add("a", 0.4, run, at=now, then=now + 0.7)  # first at once, then at 0.7, 1.1, 1.5, ...
    schedule.start()
    try:
        await wait_until(lambda: len(started) >= 4, 5, "four runs")
    finally:
        await schedule.stop()
    assert started[1] - started[0] >= 0.65, started
    gaps = [later - earlier for earlier, later in zip(started[1:], started[2:])]
    assert all(0.3 <= gap <= 0.5 for gap in gaps), gaps


async def test_a_run_still_going_is_skipped_said_once_and_missed_runs_are_coalesced(caplog):
    schedule = Schedule(tick=0.05)
    release = asyncio.Event()
    runs: list[float] = []

    async def slow() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            await release.wait()

    schedule.add("slow", 0.1, slow)
    schedule.start()
    try:
        with caplog.at_level(logging.WARNING, logger="dbwatch.agent.schedule"):
            await wait_until(lambda: runs, 5, "the first run")
            await asyncio.sleep(0.6)  # ~6 runs due meanwhile, each skipped: the first one has not ended
            assert len(runs) == 1, "a job's run overlapped its previous one"
            skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
            assert len(skipped) == 1 and '"slow"' in skipped[0].getMessage(), [r.getMessage() for r in skipped]
            release.set()
            await wait_until(lambda: len(runs) >= 3, 5, "runs again once the first one ended")
        # after the skips, the runs come at the interval again, not in a burst of the missed ones
        assert runs[2] - runs[1] >= 0.05, runs
    finally:
        await schedule.stop()


async def test_a_failing_run_is_said_and_the_job_runs_again_and_a_removed_or_paused_job_does_not(caplog):
    schedule = Schedule(tick=0.05)
    calls = {"bad": 0, "gone": 0, "kept": 0}

    async def bad() -> None:
        calls["bad"] += 1
        raise RuntimeError("a bug in the run")

    async def count(name: str) -> None:
        calls[name] += 1

    schedule.add("bad", 0.1, bad)
    schedule.add("gone", 0.1, lambda: count("gone"))
    schedule.add("kept", 0.1, lambda: count("kept"))
    schedule.start()
    try:
        with caplog.at_level(logging.ERROR, logger="dbwatch.agent.schedule"):
            await wait_until(lambda: calls["bad"] >= 2 and calls["gone"] >= 1, 5, "the failing job run twice")
        assert any('run of "bad" failed' in r.getMessage() and r.exc_info for r in caplog.records)
        schedule.remove("gone")
        assert "gone" not in schedule and "kept" in schedule
        gone, kept = calls["gone"], calls["kept"]
        await wait_until(lambda: calls["kept"] >= kept + 2, 5, "the kept job runs on")
        assert calls["gone"] <= gone + 1, "a removed job kept running"  # one run may have been under way
        schedule.pause()
        await asyncio.sleep(0.1)
        paused = calls["kept"]
        await asyncio.sleep(0.4)
        assert calls["kept"] == paused, "a paused schedule started runs"
    finally:
        await schedule.stop()
