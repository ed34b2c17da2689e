"""Whole bodies made ahead of the scrapes expected (exporters/ahead.py), on recorded snapshots: a scraper at a steady
spacing is served a body made before it came, which holds what the store held then (what landed after is in the
next scrape); a scrape much later than expected, or a scraper seen once, makes its own; gzip bodies too."""

from __future__ import annotations

import asyncio
import gzip
import time
from typing import Awaitable, Callable

import pytest

from dbwatch.exporters.ahead import Ahead, Ready
from dbwatch.exporters.joined import DeflateCache, Joined, Packed
from tests.test_exposition_freshness import exposition, lines, snapshot

SPACING = 0.4  # seconds between two scrapes of the test's "Prometheus"


def _setup():
    store, exp = exposition()
    store.put(snapshot(["app"], time.time()))
    made: list[float] = []
    join = exp._joined_async

    async def counted(openmetrics: bool, now: float) -> Joined:
        made.append(time.monotonic())
        return await join(openmetrics, now)

    exp.ahead = Ahead(counted, exp._live)
    exp.ahead.young_for = 0.0  # no stand-ins but by a test's choice: each scrape is made for, or makes its own

    async def scrape(gzipped: bool = False, who: str = "10.0.0.9:4711") -> tuple[float, bytes]:
        asked = time.monotonic()
        body = b"".join((await exp.scrape_chunks(gzip=gzipped, scraper=who))[1])
        return asked, gzip.decompress(body) if gzipped else body

    return store, exp, made, scrape


async def _until(condition, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


def test_a_steady_scraper_is_served_a_body_made_ahead_and_a_late_one_makes_its_own():
    store, exp, made, scrape = _setup()

    async def main() -> None:
        exp.ahead.start()
        try:
            await scrape()  # seen once: no spacing yet
            await asyncio.sleep(SPACING)
            await scrape()  # a spacing: the next is expected SPACING from now
            assert len(made) == 2  # both made at their scrape
            store.put(snapshot(["app", "new"], time.time()))  # lands before the next body is made
            await asyncio.sleep(SPACING)
            asked, body = await scrape()
            assert len(made) == 3 and made[2] < asked  # made ahead of the scrape, not by it
            assert any("new" in line for line in lines(body, "pg_stat_database_xact_commit"))
            # A collection landing after the body was made is in the next scrape, not this one.
            await _until(lambda: len(made) == 4)
            store.put(snapshot(["app", "new", "later"], time.time()))
            await asyncio.sleep(max(0.0, asked + SPACING - time.monotonic()))  # at its spacing: steady still
            asked, body = await scrape()
            assert made[3] < asked and len(made) == 4
            assert not any("later" in line for line in lines(body, "pg_stat_database_xact_commit"))
            # Much later than expected: what was made then is too old, the scrape makes its own (and sees "later").
            await _until(lambda: len(made) == 5)
            cadence = exp.ahead._cadences[("10.0.0.9", False, False)]
            await _until(lambda: cadence.ready is not None)
            await _until(lambda: cadence.ready is None)  # its scrape did not come: let go of, not kept
            await asyncio.sleep(2 * SPACING)
            _, body = await scrape()
            assert len(made) == 6 and any("later" in line for line in lines(body, "pg_stat_database_xact_commit"))
        finally:
            await exp.ahead.stop()

    asyncio.run(main())


def test_gzip_bodies_are_made_ahead_per_scraper():
    store, exp, made, scrape = _setup()

    async def main() -> None:
        exp.ahead.start()
        try:
            for _ in range(2):
                await scrape(gzipped=True, who="10.0.0.7:80")
                await asyncio.sleep(SPACING)
            assert len(made) == 3  # two made at their scrapes, then the next one's ahead of it
            await scrape(gzipped=False, who="10.0.0.8:80")  # another scraper: seen once, made at its scrape
            asked, body = await scrape(gzipped=True, who="10.0.0.7:80")
            assert len(made) == 4 and made[2] < asked  # the gzip scraper's made ahead of it
            assert lines(body, "pg_up") and lines(body, "dbwatch_build_info") and body.endswith(b"\n")
        finally:
            await exp.ahead.stop()
        assert not exp.ahead._cadences

    asyncio.run(main())


def _nothing_live(openmetrics: bool, at: float) -> bytes:
    return b""


def _slow_builder() -> tuple[asyncio.Event, list[float], Callable[[bool, float], Awaitable[Joined]]]:
    """A builder that waits for the test to release it, counting the builds started."""
    release = asyncio.Event()
    started: list[float] = []

    async def slow(openmetrics: bool, now: float) -> Joined:
        started.append(now)
        key = len(started)
        await release.wait()
        return Joined(key, [], DeflateCache())

    return release, started, slow


def test_scrapes_during_a_build_of_their_kind_wait_for_that_one_and_stopping_leaves_none_waiting():
    async def main() -> None:
        release, started, slow = _slow_builder()
        ahead = Ahead(slow, _nothing_live)
        ahead.young_for = 0.0  # the body before is never young enough to stand in: a scrape waits
        ahead.start()
        first = asyncio.create_task(ahead.take("h", False, False))
        second = asyncio.create_task(ahead.take("other", False, False))
        await _until(lambda: len(started) == 1)
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()
        release.set()
        ready = await first
        assert ready is not None and ready.joined.key == 1 and ready.at == started[0]
        assert await second is ready and len(started) == 1  # one build for both
        # The next build is under way when the agent stops: a scrape waiting for it gets None, not a hang.
        release.clear()
        await asyncio.sleep(0.5)  # the first body is too old now (young_for 0, three times its build)
        waiting = asyncio.create_task(ahead.take("h", False, False))
        await _until(lambda: len(started) == 2)
        await asyncio.sleep(0.05)
        await ahead.stop()
        assert await asyncio.wait_for(waiting, 2) is None

    asyncio.run(main())


def test_a_scrape_with_no_body_of_its_own_ready_is_served_the_newest_young_one_and_a_newer_one_is_started():
    async def main() -> None:
        release, started, slow = _slow_builder()
        ahead = Ahead(slow, _nothing_live)
        ahead.young_for = 1.0
        ahead.start()
        try:
            own = Ready(Joined(0, [], DeflateCache()), time.time(), time.monotonic(), 1.0)  # a fleet's 1 s build
            ahead.made((False, False), own)  # e.g. a body made for another scraper
            # A scraper nothing was made for: the newest body stands in at once, a newer one is started.
            assert await asyncio.wait_for(ahead.take("b", False, False), 0.5) is own
            await _until(lambda: len(started) == 1)
            assert await asyncio.wait_for(ahead.take("c", False, False), 0.5) is own  # one build at a time
            gzipped = asyncio.create_task(ahead.take("d", False, True))  # another kind: nothing stands in for it
            await _until(lambda: len(started) == 2)
            assert not gzipped.done()
            release.set()
            packed = await gzipped
            assert packed is not None and isinstance(packed.joined, Packed)  # kept without the lines
            await _until(lambda: ahead._young((False, False)) is not own)
            newer = await ahead.take("b", False, False)
            assert newer is not None and newer.joined.key == 1 and newer.at == started[0]
            # Too old to stand in: not kept in memory meanwhile, and the next scrape waits for a new one.
            await _until(lambda: not ahead._newest, seconds=5)
            latest = await ahead.take("e", False, False)
            assert latest is not None and len(started) >= 3 and latest.at == started[-1]
        finally:
            await ahead.stop()

    asyncio.run(main())


def test_a_steady_scrapers_body_made_ahead_joins_the_build_under_way_and_young_bodies_stand_in_meanwhile():
    async def main() -> None:
        release, started, slow = _slow_builder()
        ahead = Ahead(slow, _nothing_live)
        ahead.start()
        try:
            own = Ready(Joined(0, [], DeflateCache()), time.time(), time.monotonic(), 1.0)  # a fleet's 1 s build
            ahead.made((False, False), own)
            assert await ahead.take("h", False, False) is own  # a newer one started for the scrapes after
            await _until(lambda: len(started) == 1)
            await asyncio.sleep(SPACING)
            assert await ahead.take("h", False, False) is own  # its build still under way: not waited for
            cadence = ahead._cadences[("h", False, False)]
            await asyncio.sleep(SPACING)  # the body for its next scrape is due: the build under way is it
            assert len(started) == 1 and cadence.ready is None
            release.set()
            await _until(lambda: cadence.ready is not None)
            assert cadence.ready is not None and cadence.ready.joined.key == 1 and len(started) == 1
            ready = cadence.ready
            assert await ahead.take("h", False, False) is ready  # its scrape is served it
        finally:
            await ahead.stop()

    asyncio.run(main())


def test_a_small_agents_body_is_made_for_each_scrape_not_stood_in_for_by_an_older_one():
    store, exp, made, scrape = _setup()
    exp.ahead.young_for = 5.0  # as in the agent: only the build's own time keeps a body from standing in

    async def main() -> None:
        exp.ahead.start()
        try:
            await scrape(who="10.0.0.1:1")
            store.put(snapshot(["app", "new"], time.time()))  # lands right after: the next scrape must show it
            await asyncio.sleep(0.05)  # longer than five times a build of a few series
            _, body = await scrape(who="10.0.0.2:1")  # a scraper nothing was made for
            assert any("new" in line for line in lines(body, "pg_stat_database_xact_commit"))
        finally:
            await exp.ahead.stop()

    asyncio.run(main())


def _timed_builder(exp, delays: list[float], then: float) -> Callable[[bool, float], Awaitable[Joined]]:
    """A builder of ``exp``'s bodies whose builds take ``delays`` in turn, then ``then`` each."""

    async def build(openmetrics: bool, now: float) -> Joined:
        joined = await exp._joined_async(openmetrics, now)
        await asyncio.sleep(delays.pop(0) if delays else then)
        return joined

    return build


async def _third_scrape_waited(ahead: Ahead, spacing: float, first_takes: float) -> float:
    """A new scraper's first three gzip scrapes at ``spacing`` (its first build taking ``first_takes``): checks that
    the third's body was made before it came; returns the seconds the third scrape waited."""
    assert await ahead.take("10.0.0.9", False, True) is not None  # the first two make their own
    await asyncio.sleep(spacing - first_takes)
    assert await ahead.take("10.0.0.9", False, True) is not None
    cadence = ahead._cadences[("10.0.0.9", False, True)]
    expected = cadence.last + spacing
    await _until(lambda: cadence.ready is not None)
    assert time.monotonic() < expected  # made before the third scrape comes, not while it waits
    await asyncio.sleep(expected - time.monotonic())
    asked = time.monotonic()
    assert await ahead.take("10.0.0.9", False, True) is not None
    return time.monotonic() - asked


def test_a_new_scrapers_first_body_made_ahead_starts_as_long_before_its_scrape_as_the_last_build_took():
    store, exp, _, _ = _setup()
    build_takes = 0.5  # a fleet's body on a busy machine: longer than the lead a first body would start with

    async def main() -> None:
        ahead = Ahead(_timed_builder(exp, [], build_takes), _nothing_live)
        ahead.young_for = 0.0
        ahead.start()
        try:
            waited = await _third_scrape_waited(ahead, 3 * build_takes, build_takes)
            assert waited < build_takes / 2  # served the body made ahead
        finally:
            await ahead.stop()

    asyncio.run(main())


def test_a_body_made_ahead_starts_early_enough_for_a_build_as_slow_as_a_recent_slow_one_and_then_some():
    store, exp, _, _ = _setup()
    slow, slower = 0.3, 0.55  # one slow build among fast ones, then one slower still (a busy machine's spread)

    async def main() -> None:
        ahead = Ahead(_timed_builder(exp, [slow, 0.01, slower], 0.01), _nothing_live)
        ahead.young_for = 0.0  # no stand-ins: a late body would make its scrape wait
        ahead.start()
        try:
            waited = await _third_scrape_waited(ahead, 1.2, slow)  # the third's body made in 0.55 s
            assert waited < 0.05  # served the body made ahead, not waiting for it
        finally:
            await ahead.stop()

    asyncio.run(main())


def test_a_scraper_whose_spacing_jumped_is_not_anticipated_until_it_is_steady_again():
    ahead = Ahead(lambda openmetrics, now: asyncio.sleep(0), _nothing_live)  # type: ignore[arg-type, return-value]
    for at in (0.0, 0.1, 0.2):  # polled every 0.1 s: steady
        ahead.took("10.0.0.9", False, False, at)
    cadence = ahead._cadences[("10.0.0.9", False, False)]
    assert cadence.due(0.05) == pytest.approx(0.2 + 0.1 - 0.05)
    ahead.took("10.0.0.9", False, False, 3.2)  # then 3 s later: a body made 3 s early would be served 3 s old
    assert cadence.due(0.05) is None
    ahead.took("10.0.0.9", False, False, 6.1)  # 2.9 s again: steady, its next body made just before it
    assert cadence.due(0.05) == pytest.approx(6.1 + 2.9 - 0.05 - abs(2.9 - 3.0))
